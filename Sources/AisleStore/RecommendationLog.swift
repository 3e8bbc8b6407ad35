import AisleCore
import Foundation
import GRDB

/// The served slates' log (`rec_slates`, a row per slate, with `rec_explore` and `rec_feedback`
/// by request id; the view `rec_impressions` has a row per item shown), which `aislectl eval
/// policy` and `aislectl experiments report` read. It is kept for a number of days, not for ever.
public enum RecommendationLog {
    /// Deletes the oldest `rows` slates served before `ts` (seconds), with
    /// their explored positions and feedback, in one transaction; returns how many slates went.
    /// Call it until it returns 0 (small batches keep the writer free for events between them),
    /// then ``pruneFeedback(_:before:)``.
    public static func prune(_ db: Database, before ts: Int64, rows: Int) throws -> Int {
        // By the time index (a DISTINCT over the table would read it in key order, all of it
        // when nothing is old).
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
    /// byte), then per arm its item (Int32) and context (Float16 each), little-endian. Small on
    /// purpose: 31 arms of 8 take 621 bytes and stay on the row's page, where the JSON that rows
    /// logged before v15 hold (1–2 KB) spilled each row onto an overflow page of its own — 4.7 KB
    /// of the store, and of its write-ahead log, per slate.
    public static func encodeArms(items: [Int32], contexts: [[Double]]) -> Data {
        let dimensions = contexts.first?.count ?? 0
        var out = Data(capacity: 1 + items.count * (4 + 2 * dimensions))
        out.append(UInt8(dimensions))
        for (item, context) in zip(items, contexts) {
            withUnsafeBytes(of: item.littleEndian) { out.append(contentsOf: $0) }
            for x in context { withUnsafeBytes(of: Float16(x).bitPattern.littleEndian) { out.append(contentsOf: $0) } }
        }
        return out
    }

    /// The arms' contexts of a `rec_explore.arms` value, either form; nil if it is neither.
    public static func armContexts(_ value: DatabaseValue) -> [[Double]]? {
        switch value.storage {
        case .blob(let data):
            guard let dimensions = data.first.map(Int.init) else { return nil }
            let bytes = [UInt8](data.dropFirst()), width = 4 + 2 * dimensions
            guard bytes.count % width == 0 else { return nil }
            let half = { (at: Int) -> Double in Double(Float16(bitPattern: UInt16(bytes[at]) | UInt16(bytes[at + 1]) << 8)) }
            return stride(from: 0, to: bytes.count, by: width).map { arm in (0..<dimensions).map { half(arm + 4 + 2 * $0) } }
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
