import GRDB

/// What shoppers typed at a kiosk (searches and questions) is kept for a while, then only what
/// was made of it: the event stays — time, customer, session — without the words, which may
/// name someone and which no customer erasure could find once anonymous.
public enum TextRetention {
    /// Clears the words of searches and questions made before `before` (seconds), at most
    /// `rows` events, in one transaction with SQLite's `secure_delete` fully on (the words are
    /// overwritten, not left in free pages); returns how many.
    public static func clear(_ writer: some DatabaseWriter, before: Int64, rows: Int) throws -> Int {
        try writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
            defer { try? db.execute(sql: "PRAGMA secure_delete = FAST") }
            var cleared = 0
            try db.inTransaction {
                try db.execute(
                    sql: """
                        UPDATE events SET text = NULL WHERE id IN (
                            SELECT id FROM events WHERE text IS NOT NULL AND type IN ('search', 'question') AND ts < ? ORDER BY ts LIMIT ?)
                        """, arguments: [before, rows])
                cleared = db.changesCount
                return .commit
            }
            return cleared
        }
    }
}
