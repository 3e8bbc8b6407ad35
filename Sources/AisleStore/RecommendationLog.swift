import AisleCore
import Foundation
import GRDB

/// The served slates' log (`rec_slates`, a row per slate, with `rec_explore` and `rec_feedback`
/// by request id; the view `rec_impressions` has a row per item shown), which `aislectl eval
/// policy` and `aislectl experiments report` read. It is kept for a number of days, not for ever.
public enum RecommendationLog {
    /// How `erased_sessions` names an erased customer's kiosk session: its stored key's SHA-256.
    public static func sessionDigest(_ key: String) -> Data { Digests.sha256(key) }

    /// Deletes the oldest `rows` slates served before `ts` (seconds), with
    /// their explored positions and feedback, in one transaction; returns how many slates went.
    /// Call it until it returns 0 (small batches keep the writer free for events between them),
    /// then ``pruneFeedback(_:before:)``.
    public static func prune(_ db: Database, before ts: Int64, rows: Int) throws -> Int {
        // By the time index, oldest first.
        let requests = try String.fetchAll(db, sql: "SELECT request_id FROM rec_slates WHERE ts < ? ORDER BY ts LIMIT ?", arguments: [ts, rows])
        guard !requests.isEmpty else { return 0 }
        try deleteSlates(db, in: "(" + repeatElement("?", count: requests.count).joined(separator: ",") + ")", arguments: StatementArguments(requests))
        return requests.count
    }

    /// Deletes feedback given before `ts` whose slate was never logged (its flush failed, or it
    /// was erased meanwhile), by the time index.
    public static func pruneFeedback(_ db: Database, before ts: Int64) throws {
        try db.execute(sql: "DELETE FROM rec_feedback WHERE ts < ?", arguments: [ts])
    }

    /// Deletes the slates whose request ids are `set` — a parenthesised list or a table — from
    /// the three tables.
    static func deleteSlates(_ db: Database, in set: String, arguments: StatementArguments = []) throws {
        for table in ["rec_explore", "rec_feedback", "rec_slates"] {
            try db.execute(sql: "DELETE FROM \(table) WHERE request_id IN \(set)", arguments: arguments)
        }
    }

    /// An explored position's arms as `rec_explore.arms` holds them: the context's length (one
    /// byte, at most 16), then per arm its item (Int32), which context values are exactly 0 or 1
    /// (a UInt16 mask) and which of those are 1 (UInt16), then the others as Float32, in order;
    /// little-endian. Exact, and small on purpose: 31 arms of the bandit's 8 (six of them 0/1)
    /// take 497 bytes and stay on the row's page, where the JSON that rows logged before v15 hold
    /// (1–2 KB) spilled each row onto an overflow page of its own — 4.7 KB of the store, and of
    /// its write-ahead log, per slate.
    public static func encodeArms(items: [Int32], contexts: [[Double]]) -> Data {
        let dimensions = contexts.first?.count ?? 0
        precondition(dimensions <= 16 && contexts.allSatisfy { $0.count == dimensions }, "arm contexts: at most 16 values, as many for every arm")
        var out = Data(capacity: 1 + items.count * (8 + 4 * dimensions))
        out.append(UInt8(dimensions))
        func append<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { out.append(contentsOf: $0) } }
        for (item, context) in zip(items, contexts) {
            var binary: UInt16 = 0, ones: UInt16 = 0
            for (d, x) in context.enumerated() where x == 0 || x == 1 {
                binary |= 1 << d
                if x == 1 { ones |= 1 << d }
            }
            append(item)
            append(binary)
            append(ones)
            for (d, x) in context.enumerated() where binary & (1 << d) == 0 { append(Float(x).bitPattern) }
        }
        return out
    }

    /// The arms' contexts of a `rec_explore.arms` value, either form; nil if it is neither.
    public static func armContexts(_ value: DatabaseValue) -> [[Double]]? {
        switch value.storage {
        case .blob(let data):
            let bytes = [UInt8](data)
            guard let dimensions = bytes.first.map(Int.init), dimensions <= 16 else { return nil }
            var at = 1
            func read(_ count: Int) -> UInt32? {
                guard at + count <= bytes.count else { return nil }
                defer { at += count }
                return (0..<count).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * $1) }
            }
            var contexts: [[Double]] = []
            while at < bytes.count {
                guard read(4) != nil, let binary = read(2), let ones = read(2) else { return nil }
                var context: [Double] = []
                for d in 0..<dimensions {
                    if binary & (1 << d) != 0 {
                        context.append(ones & (1 << d) != 0 ? 1 : 0)
                    } else {
                        guard let word = read(4) else { return nil }
                        context.append(Double(Float(bitPattern: word)))
                    }
                }
                contexts.append(context)
            }
            return contexts
        case .string(let text):  // [[item, context…], …]
            guard case .array(let arms)? = try? JSONParser.parse(Array(text.utf8)) else { return nil }
            let contexts = arms.compactMap { arm -> [Double]? in
                guard case .array(let v) = arm else { return nil }
                return v.dropFirst().compactMap { if case .double(let d) = $0 { d } else if case .int(let i) = $0 { Double(i) } else { nil } }
            }
            return contexts.count == arms.count ? contexts : nil
        default:
            return nil
        }
    }
}
