import AisleCore
import Foundation
import GRDB

/// The store at a glance.
public struct StoreStatus: Codable, Sendable, Equatable {
    public var events: Int
    public var eventsByType: [String: Int]
    public var customers: Int
    public var items: Int
    public var receipts: Int
    public var sessions: Int
    public var firstEvent: String?
    public var lastEvent: String?
    public var databaseBytes: Int64
    public var schemaVersion: String
    public var lastImport: ImportRunSummary?
}

/// One import run as recorded in the store.
public struct ImportRunSummary: Codable, Sendable, Equatable {
    public var id: Int64
    public var kind: String
    public var source: String
    public var status: String
    public var startedAt: String
    public var finishedAt: String?
    public var lines: Int
    public var accepted: Int
    public var duplicates: Int
    public var rejected: Int
}

/// One event in a customer's history.
public struct HistoryEntry: Codable, Sendable, Equatable {
    public var ts: String
    public var type: String
    public var item: String?
    public var title: String?
    public var qty: Int
    public var price: Double?
    public var receipt: String?
    public var text: String?
    public var flags: [String]?
}

/// An item ranked by sales in a window.
public struct TopItem: Codable, Sendable, Equatable {
    public var item: String
    public var title: String
    public var units: Int
    public var revenue: Double
    public var customers: Int
}

/// Read-only queries that the CLI and the agent both answer.
public enum Queries {
    public static func status(_ db: Database, diskBytes: Int64) throws -> StoreStatus {
        func count(_ table: String) throws -> Int { try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table)") ?? 0 }
        var byType: [String: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT type, count(*) AS n FROM events GROUP BY type") {
            byType[row["type"]] = row["n"]
        }
        let range = try timeRange(db)
        let applied = try Schema.migrator.appliedMigrations(db)  // in the order they were registered
        return StoreStatus(
            events: byType.values.reduce(0, +), eventsByType: byType,
            customers: try count("customers"), items: try count("items"),
            receipts: try count("receipts"), sessions: try count("sessions"),
            firstEvent: range.map { Timestamp.format($0.first) },
            lastEvent: range.map { Timestamp.format($0.last) },
            databaseBytes: diskBytes, schemaVersion: applied.last ?? "none",
            lastImport: try importRuns(db, limit: 1).first)
    }

    public static func importRuns(_ db: Database, limit: Int) throws -> [ImportRunSummary] {
        try Row.fetchAll(db, sql: "SELECT * FROM import_runs ORDER BY id DESC LIMIT ?", arguments: [limit]).map { r in
            ImportRunSummary(
                id: r["id"], kind: r["kind"], source: r["source"], status: r["status"],
                startedAt: Timestamp.format(r["started_at"]),
                finishedAt: (r["finished_at"] as Int64?).map(Timestamp.format),
                lines: r["lines"], accepted: r["accepted"], duplicates: r["duplicates"], rejected: r["rejected"])
        }
    }

    /// The customer's row id, or nil if the pseudonym is unknown.
    public static func customerID(_ db: Database, pseudonym: Data) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT id FROM customers WHERE pseudonym = ?", arguments: [pseudonym])
    }

    /// A customer's events, newest first.
    public static func history(_ db: Database, customerID: Int64, limit: Int) throws -> [HistoryEntry] {
        let sql = """
            WITH latest AS (
                SELECT id, ts FROM events WHERE customer_id = ?1 AND customer_id IS NOT NULL AND tier = 1
                UNION ALL
                SELECT id, ts FROM events WHERE customer_id = ?1 AND customer_id IS NOT NULL AND tier = 0
                ORDER BY ts DESC, id DESC LIMIT ?2)
            SELECT e.ts, e.type, i.sku, i.title, e.qty, e.price, r.key AS receipt, e.text, e.flags
            FROM latest JOIN events e ON e.id = latest.id
            LEFT JOIN items i ON i.id = e.item_id LEFT JOIN receipts r ON r.id = e.receipt_id
            ORDER BY e.ts DESC, e.id DESC
            """
        return try Row.fetchAll(db, sql: sql, arguments: [customerID, limit]).map { r in
            let flags: Int64 = r["flags"]
            var names: [String] = []
            if flags & EventFlag.quantityOutlier != 0 { names.append("quantity_outlier") }
            if flags & EventFlag.priceOutlier != 0 { names.append("price_outlier") }
            return HistoryEntry(
                ts: Timestamp.format(r["ts"]), type: r["type"], item: r["sku"], title: r["title"],
                qty: r["qty"], price: r["price"], receipt: r["receipt"], text: r["text"],
                flags: names.isEmpty ? nil : names)
        }
    }

    /// The first and last event times, read from the ends of the key index (keys lead with the
    /// hour; see ``EventKey``).
    public static func timeRange(_ db: Database) throws -> (first: Int64, last: Int64)? {
        guard let low = try Data.fetchOne(db, sql: "SELECT key FROM events ORDER BY key LIMIT 1"),
            let high = try Data.fetchOne(db, sql: "SELECT key FROM events ORDER BY key DESC LIMIT 1")
        else { return nil }
        func bound(_ key: Data, _ aggregate: String) throws -> Int64? {
            let start = Int64(key.prefix(4).reduce(UInt32(0)) { $0 << 8 | UInt32($1) }) * 3600
            let (lower, upper) = EventKey.range(from: start, to: start + 3600)
            return try Int64.fetchOne(db, sql: "SELECT \(aggregate)(ts) FROM events WHERE key >= ? AND key < ?", arguments: [lower, upper])
        }
        guard let first = try bound(low, "min"), let last = try bound(high, "max") else { return nil }
        return (first, last)
    }

    /// The latest event time in the store.
    public static func lastEventTime(_ db: Database) throws -> Int64? { try timeRange(db)?.last }

    /// Best-selling sellable items by net units (sold minus returned) between `from`
    /// (inclusive) and `to` (exclusive); revenue is net of returns too.
    public static func topItems(_ db: Database, from: Int64, to: Int64, limit: Int) throws -> [TopItem] {
        let sql = """
            SELECT i.id, i.sku, i.title, sum(d.units) - sum(d.returns) AS units,
                   round(sum(d.revenue) - sum(d.returned_value), 2) AS revenue
            FROM item_daily d JOIN items i ON i.id = d.item_id
            WHERE d.day >= ? AND d.day < ? AND i.sellable = 1
            GROUP BY d.item_id ORDER BY units DESC, i.sku LIMIT ?
            """
        let buyers = try db.cachedStatement(sql: """
            SELECT count(DISTINCT customer_id) FROM (
                SELECT customer_id FROM events WHERE item_id = ?1 AND item_id IS NOT NULL AND customer_id IS NOT NULL
                    AND tier = 1 AND type = 'purchase' AND ts >= ?2 AND ts < ?3
                UNION ALL
                SELECT customer_id FROM events WHERE item_id = ?1 AND item_id IS NOT NULL AND customer_id IS NOT NULL
                    AND tier = 0 AND type = 'purchase' AND ts >= ?2 AND ts < ?3)
            """)
        let days = (from.floorDiv(86_400), (to + 86_399).floorDiv(86_400))
        return try Row.fetchAll(db, sql: sql, arguments: [days.0, days.1, limit]).map { r in
            let id: Int64 = r["id"]
            let customers = try Int.fetchOne(buyers, arguments: [id, from, to]) ?? 0
            return TopItem(item: r["sku"], title: r["title"], units: r["units"], revenue: r["revenue"], customers: customers)
        }
    }

    /// `PRAGMA integrity_check` and `PRAGMA foreign_key_check`: `["ok"]` or the problems found.
    public static func integrityCheck(_ db: Database) throws -> [String] {
        let integrity = try String.fetchAll(db, sql: "PRAGMA integrity_check")
        let orphans = try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").map { row in
            "row \(row[1] as Int64? ?? -1) of \(row[0] as String? ?? "?") refers to a missing \(row[2] as String? ?? "?") row"
        }
        return orphans.isEmpty ? integrity : (integrity == ["ok"] ? [] : integrity) + orphans
    }
}

extension Int64 {
    /// Division rounding towards negative infinity.
    public func floorDiv(_ d: Int64) -> Int64 { self >= 0 ? self / d : (self - d + 1) / d }
}

extension Queries {
    /// A condition keeping rows whose `column` is one of `ids` — `" AND column IN (?, …)"` and
    /// its arguments — or every row when `ids` is nil.
    public static func only(_ column: String, in ids: [Int64]?) -> (sql: String, arguments: StatementArguments) {
        guard let ids else { return ("", []) }
        guard !ids.isEmpty else { return (" AND 0", []) }
        return (" AND \(column) IN (" + Array(repeating: "?", count: ids.count).joined(separator: ", ") + ")", StatementArguments(ids))
    }
}

/// How far the store's events and the scores derived from their texts have got (largest event
/// ids): what changed since is what a customer's insight has not seen yet; and how many
/// customers have been erased (``CustomerErasure``), after which everything is recomputed.
public struct ChangeMarks: Sendable, Equatable {
    public var events: Int64
    public var reviewScores: Int64
    public var textThemes: Int64
    public var erasures: Int64

    public static func current(_ db: Database) throws -> ChangeMarks {
        func max(_ sql: String) throws -> Int64 { try Int64.fetchOne(db, sql: sql) ?? 0 }
        return ChangeMarks(
            events: try max("SELECT max(id) FROM events"), reviewScores: try max("SELECT max(event_id) FROM review_sentiment"),
            textThemes: try max("SELECT max(event_id) FROM text_themes"), erasures: try CustomerErasure.generation(db))
    }

    /// The customers (store ids) with an event, a review score or a text theme after these marks.
    public func customersChanged(_ db: Database) throws -> [Int64] {
        try Int64.fetchAll(db, sql: """
            SELECT customer_id FROM events WHERE id > ? AND customer_id IS NOT NULL
            UNION SELECT e.customer_id FROM review_sentiment r JOIN events e ON e.id = r.event_id WHERE r.event_id > ? AND e.customer_id IS NOT NULL
            UNION SELECT e.customer_id FROM text_themes t JOIN events e ON e.id = t.event_id WHERE t.event_id > ? AND e.customer_id IS NOT NULL
            """, arguments: [events, reviewScores, textThemes])
    }
}
