import Foundation
import TOMLKit

/// The kiosk assistant's answers, edited by the store (firmware-config/answers.toml): a `[store]`
/// table of facts (opening hours, return window, loyalty rules …) and, per request intent, an
/// answer template whose `{slots}` name those facts. Every slot and key is checked when the file
/// is read, so a typo is an error naming the intent and the slot, not a broken sentence at the
/// kiosk (the agent also logs intents its model has without an answer, and answers for intents
/// it does not have).
public struct Answers: Sendable, Equatable {
    public struct Answer: Sendable, Equatable {
        /// The text with its slots filled.
        public var text: String
        /// Whether products matching the request are shown with it.
        public var showProducts: Bool
    }

    /// Store facts by slot name.
    public var facts: [String: String]
    /// Answers by intent.
    public var intents: [String: Answer]
    /// Said when the request is none of the intents (products matching it follow, if any).
    public var outOfScope: String
    /// Said before the products when the request reads as a product search.
    public var products: String
    /// Said for an intent the file has no answer for.
    public var unanswered: String

    /// Reads and checks the file; every problem is reported with its key.
    public static func load(_ path: String) throws(ConfigError) -> Answers {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(path: path, issues: [ConfigIssue(key: "(file)", reason: "cannot read")])
        }
        return try parse(String(decoding: data, as: UTF8.self), path: path)
    }

    /// Reads and checks the text of an answers file; `path` names it in errors.
    public static func parse(_ toml: String, path: String = "(answers)") throws(ConfigError) -> Answers {
        let root: TOMLTable
        do {
            root = try TOMLTable(string: toml)
        } catch let e as TOMLParseError {
            throw ConfigError(path: path, issues: [ConfigIssue(key: "(syntax)", reason: "line \(e.source.begin.line), column \(e.source.begin.column): \(e.description)")])
        } catch {
            throw ConfigError(path: path, issues: [ConfigIssue(key: "(syntax)", reason: "\(error)")])
        }
        var issues: [ConfigIssue] = []
        /// The table `name` (empty when absent); anything else there is an issue (`[[intents]]`
        /// would otherwise load no intent at all, silently).
        func table(_ name: String) -> TOMLTable {
            guard let value = root[name] else { return TOMLTable() }
            guard let t = value.table else {
                issues.append(ConfigIssue(key: name, reason: "expected a table [\(name)]"))
                return TOMLTable()
            }
            return t
        }
        var facts: [String: String] = [:]
        for (key, value) in table("store") {
            if let s = value.string { facts[key] = s } else if let n = value.int { facts[key] = String(n) } else if let d = value.double { facts[key] = String(d) } else {
                issues.append(ConfigIssue(key: "store.\(key)", reason: "expected text or a number"))
            }
        }
        func text(_ key: String, _ value: TOMLValueConvertible?) -> String? {
            guard let s = value?.string, !s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                issues.append(ConfigIssue(key: key, reason: value == nil ? "missing" : "expected non-empty text"))
                return nil
            }
            var out = "", rest = Substring(s)
            while let open = rest.firstIndex(of: "{") {
                out += rest[..<open]
                guard let close = rest[open...].firstIndex(of: "}") else {
                    issues.append(ConfigIssue(key: key, reason: "a \"{\" is never closed"))
                    return nil
                }
                let slot = String(rest[rest.index(after: open)..<close])
                guard let fact = facts[slot] else {
                    issues.append(ConfigIssue(key: key, reason: "unknown slot {\(slot)}; [store] has \(facts.keys.sorted().joined(separator: ", "))"))
                    return nil
                }
                out += fact
                rest = rest[rest.index(after: close)...]
            }
            return out + rest
        }
        let fallback = table("fallback")
        let outOfScope = text("fallback.out_of_scope", fallback["out_of_scope"])
        let products = text("fallback.products", fallback["products"])
        let unanswered = text("fallback.unanswered", fallback["unanswered"])
        for key in fallback.keys where !["out_of_scope", "products", "unanswered"].contains(key) {
            issues.append(ConfigIssue(key: "fallback.\(key)", reason: "unknown key (out_of_scope, products, unanswered)"))
        }
        var intents: [String: Answer] = [:]
        for (intent, value) in table("intents") {
            guard let table = value.table else {
                issues.append(ConfigIssue(key: "intents.\(intent)", reason: "expected a table with answer = \"…\""))
                continue
            }
            for key in table.keys where !["answer", "products"].contains(key) {
                issues.append(ConfigIssue(key: "intents.\(intent).\(key)", reason: "unknown key (answer, products)"))
            }
            let showProducts = table["products"].map { $0.bool } ?? false
            if showProducts == nil { issues.append(ConfigIssue(key: "intents.\(intent).products", reason: "expected true or false")) }
            if let answer = text("intents.\(intent).answer", table["answer"]) { intents[intent] = Answer(text: answer, showProducts: showProducts ?? false) }
        }
        for key in root.keys where !["store", "fallback", "intents"].contains(key) {
            issues.append(ConfigIssue(key: key, reason: "unknown table (store, fallback, intents)"))
        }
        guard issues.isEmpty, let outOfScope, let products, let unanswered else { throw ConfigError(path: path, issues: issues.sorted { $0.key < $1.key }) }
        return Answers(facts: facts, intents: intents, outOfScope: outOfScope, products: products, unanswered: unanswered)
    }
}
