import Foundation
import Logging

/// Structured log lines on standard error: one JSON object per line (for journald and log
/// collectors) or readable text. Log messages never carry customer identifiers.
public struct StructuredLogHandler: LogHandler {
    public var metadata: Logger.Metadata = [:]
    public var logLevel: Logger.Level
    private let label: String
    private let json: Bool

    public init(label: String, level: Logger.Level, json: Bool) {
        self.label = label
        self.logLevel = level
        self.json = json
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let extra = event.metadata { all.merge(extra) { $1 } }
        let ts = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        let line: String
        if json {
            var object: [String: String] = ["ts": ts, "level": event.level.rawValue, "logger": label, "msg": event.message.description]
            for (k, v) in all { object[k] = v.description }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = String(decoding: data, as: UTF8.self)
        } else {
            let meta = all.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            line = "\(ts) \(event.level.rawValue.uppercased()) \(label): \(event.message)\(meta.isEmpty ? "" : " " + meta)"
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    /// Installs the handler for the whole process.
    public static func bootstrap(level: String, format: String) {
        let lvl = Logger.Level(rawValue: level) ?? .info
        LoggingSystem.bootstrap { StructuredLogHandler(label: $0, level: lvl, json: format == "json") }
    }
}
