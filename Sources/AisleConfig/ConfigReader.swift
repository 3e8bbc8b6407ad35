import Foundation
import TOMLKit

/// One problem in a configuration file: the dotted key at fault and why.
public struct ConfigIssue: Error, Sendable, Equatable, CustomStringConvertible {
    public var key: String
    public var reason: String
    public init(key: String, reason: String) { (self.key, self.reason) = (key, reason) }
    public var description: String { "\(key): \(reason)" }
}

/// A configuration file that could not be used, with every problem found.
public struct ConfigError: Error, Sendable, CustomStringConvertible {
    public var path: String
    public var issues: [ConfigIssue]
    public init(path: String, issues: [ConfigIssue]) { (self.path, self.issues) = (path, issues) }
    public var description: String {
        "\(path): \(issues.count) error\(issues.count == 1 ? "" : "s")\n" + issues.map { "  \($0)" }.joined(separator: "\n")
    }
}

/// Reads typed values by dotted key from a TOML document, applying defaults and collecting
/// every error (wrong type, out of range, unknown key) instead of stopping at the first.
struct ConfigReader {
    private let root: TOMLTable
    private(set) var issues: [ConfigIssue] = []
    private var known: Set<String> = []

    init(toml: String) throws(ConfigError) {
        do {
            root = try TOMLTable(string: toml)
        } catch let e as TOMLParseError {
            throw ConfigError(path: "", issues: [ConfigIssue(key: "(syntax)", reason: "line \(e.source.begin.line), column \(e.source.begin.column): \(e.description)")])
        } catch {
            throw ConfigError(path: "", issues: [ConfigIssue(key: "(syntax)", reason: "\(error)")])
        }
    }

    private mutating func lookup(_ key: String) -> TOMLValueConvertible? {
        known.insert(key)
        var parts = key.split(separator: ".").map(String.init)
        let last = parts.removeLast()
        var table = root
        for p in parts {
            guard let next = table[p] else { return nil }
            guard let t = next.table else {
                issues.append(ConfigIssue(key: p, reason: "expected a table"))
                return nil
            }
            table = t
        }
        return table[last]
    }

    mutating func string(_ key: String, _ fallback: String, oneOf allowed: [String]? = nil) -> String {
        guard let v = lookup(key) else { return fallback }
        guard let s = v.string else { return wrongType(key, v, "a string", fallback) }
        if let allowed, !allowed.contains(s) {
            issues.append(ConfigIssue(key: key, reason: "must be one of \(allowed.joined(separator: ", ")); got \"\(s)\""))
            return fallback
        }
        return s
    }

    mutating func int(_ key: String, _ fallback: Int, in range: ClosedRange<Int>) -> Int {
        guard let v = lookup(key) else { return fallback }
        guard let n = v.int else { return wrongType(key, v, "an integer", fallback) }
        guard range.contains(n) else {
            issues.append(ConfigIssue(key: key, reason: "must be between \(range.lowerBound) and \(range.upperBound); got \(n)"))
            return fallback
        }
        return n
    }

    mutating func double(_ key: String, _ fallback: Double, in range: ClosedRange<Double>) -> Double {
        guard let v = lookup(key) else { return fallback }
        guard let n = v.double ?? v.int.map(Double.init) else { return wrongType(key, v, "a number", fallback) }
        guard range.contains(n) else {
            issues.append(ConfigIssue(key: key, reason: "must be between \(range.lowerBound) and \(range.upperBound); got \(n)"))
            return fallback
        }
        return n
    }

    mutating func bool(_ key: String, _ fallback: Bool) -> Bool {
        guard let v = lookup(key) else { return fallback }
        guard let b = v.bool else { return wrongType(key, v, "true or false", fallback) }
        return b
    }

    /// Adds an issue found by a cross-field check.
    mutating func fail(_ key: String, _ reason: String) { issues.append(ConfigIssue(key: key, reason: reason)) }

    private mutating func wrongType<T>(_ key: String, _ v: TOMLValueConvertible, _ expected: String, _ fallback: T) -> T {
        issues.append(ConfigIssue(key: key, reason: "expected \(expected), got a \(v.type)"))
        return fallback
    }

    /// Reports keys the program does not know (typos), then throws if anything was wrong.
    mutating func finish(path: String) throws(ConfigError) {
        func walk(_ table: TOMLTable, _ prefix: String) {
            for key in table.keys.sorted() {
                let dotted = prefix.isEmpty ? key : "\(prefix).\(key)"
                if let sub = table[key]?.table, !known.contains(dotted) {
                    walk(sub, dotted)
                } else if !known.contains(dotted) {
                    issues.append(ConfigIssue(key: dotted, reason: "unknown key"))
                }
            }
        }
        walk(root, "")
        if !issues.isEmpty { throw ConfigError(path: path, issues: issues) }
    }
}

/// Loads a TOML file's text, or reports why not.
func readConfigText(_ path: String) throws(ConfigError) -> String {
    guard let data = FileManager.default.contents(atPath: path) else {
        throw ConfigError(path: path, issues: [ConfigIssue(key: "(file)", reason: "cannot read the file")])
    }
    guard let text = String(data: data, encoding: .utf8) else {
        throw ConfigError(path: path, issues: [ConfigIssue(key: "(file)", reason: "not UTF-8")])
    }
    return text
}
