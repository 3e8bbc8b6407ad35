import GRDB

/// What shoppers typed at a kiosk (searches and questions) is kept for a while, then only what
/// was made of it: the event stays — time, customer, session, its theme — without the words,
/// which may name someone and which no customer erasure could find once anonymous.
public enum TextRetention {
    /// Clears the words of searches and questions made before `before` (seconds), at most
    /// `rows` events; returns how many.
    public static func clear(_ db: Database, before: Int64, rows: Int) throws -> Int {
        try db.execute(
            sql: """
                UPDATE events SET text = NULL WHERE id IN (
                    SELECT id FROM events WHERE text IS NOT NULL AND type IN ('search', 'question') AND ts < ? ORDER BY ts LIMIT ?)
                """, arguments: [before, rows])
        return db.changesCount
    }
}
