import AisleCore
import AisleStore
import Foundation
import GRDB

/// The daily report a store sends HQ: store-level counts for one day (events by type, sales)
/// and its model versions. No customer, session or receipt appears in it.
public struct StoreSummary: Sendable, Codable, Equatable {
    public static let kind = "report"

    /// The day, as days since 1970-01-01 (UTC).
    public var day: Int64
    public var events: [String: Int]
    public var purchases: Int
    public var units: Int
    public var revenue: Double
    public var returns: Int
    public var itemsSold: Int
    public var models: [String: Int]

    /// The summary of `day` from the store.
    public static func of(_ db: Database, day: Int64) throws -> StoreSummary {
        let (from, to) = (day * 86_400, (day + 1) * 86_400)
        let keys = EventKey.range(from: from, to: to)
        var events: [String: Int] = [:]
        for row in try Row.fetchAll(
            db, sql: "SELECT type, count(*) FROM events WHERE key >= ? AND key < ? AND ts >= ? AND ts < ? GROUP BY type",
            arguments: [keys.lower, keys.upper, from, to])
        {
            events[row[0]] = row[1]
        }
        let sales = try Row.fetchOne(
            db, sql: """
                SELECT coalesce(sum(purchases), 0), coalesce(sum(units), 0), coalesce(sum(revenue), 0), coalesce(sum(returns), 0), count(*)
                FROM item_daily WHERE day = ?
                """, arguments: [day])
        return StoreSummary(
            day: day, events: events, purchases: sales?[0] ?? 0, units: sales?[1] ?? 0, revenue: ((sales?[2] ?? 0) * 100).rounded() / 100,
            returns: sales?[3] ?? 0, itemsSold: sales?[4] ?? 0, models: try ModelRegistry.activeVersions(db))
    }

    /// Queues the summary of `day` for the hub (once: the same summary has the same content id).
    @discardableResult
    public static func enqueue(_ db: Database, day: Int64) throws -> String {
        try Outbox.enqueue(db, kind: kind, payload: SyncJSON.encode(try of(db, day: day)))
    }

    /// Queues the summaries of the complete days since the last one queued (at most 31; the
    /// first time, the day before the store's last event). Returns how many were queued.
    @discardableResult
    public static func enqueueDue(_ db: Database) throws -> Int {
        guard let last = try Queries.lastEventTime(db) else { return 0 }
        let through = last.floorDiv(86_400) - 1
        let reported = try SyncState.integer(db, "sync.reported_day") ?? (through - 1)
        guard reported < through else { return 0 }
        for day in max(reported + 1, through - 30)...through { try enqueue(db, day: day) }
        try Meta.set(db, "sync.reported_day", String(through))
        return Int(through - max(reported + 1, through - 30) + 1)
    }
}
