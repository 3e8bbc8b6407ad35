import GRDB

/// Event tiers: how the agent keeps ingesting fast as the store grows.
///
/// Each event enters the customer and item indexes at a random place, so a commit of a few
/// thousand events rewrites a page of those indexes per event once they are large. Events the
/// agent takes over the socket therefore enter tier 0, whose indexes hold only recent events and
/// stay small; ``settle(_:limit:)`` moves them to tier 1 in batches of tens of thousands, which
/// touch each page of the large indexes once per batch. Bulk imports write tier 1 directly.
/// Queries by customer or item read both tiers (``Queries``).
public enum Tiers {
    /// Recent events (the agent's intake).
    public static let recent: Int64 = 0
    /// Settled events.
    public static let settled: Int64 = 1

    /// How many events wait in tier 0.
    public static func recentCount(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE tier = 0") ?? 0
    }

    /// Moves up to `limit` of the oldest tier-0 events to tier 1; returns how many moved.
    @discardableResult
    public static func settle(_ db: Database, limit: Int) throws -> Int {
        guard let last = try Int64.fetchOne(db, sql: """
            SELECT max(id) FROM (SELECT id FROM events WHERE tier = 0 ORDER BY id LIMIT ?)
            """, arguments: [limit])
        else { return 0 }
        try db.execute(sql: "UPDATE events SET tier = 1 WHERE tier = 0 AND id <= ?", arguments: [last])
        return db.changesCount
    }
}
