import Foundation
import GRDB

/// Erasing a customer on request (`aislectl customer forget`): their events — with the review
/// scores, text themes and cached text embeddings made from them — receipts, kiosk sessions,
/// served slates and the customer row, deleted in one transaction with SQLite's `secure_delete`
/// on, so the bytes are overwritten rather than left in free space. Store-wide daily sales
/// totals (`item_daily`) keep their figures: they name no one. The agent sees the change through
/// ``generation(_:)`` and stops serving the customer within seconds.
public enum CustomerErasure {
    /// What was deleted.
    public struct Erased: Sendable, Codable, Equatable {
        public var events = 0, receipts = 0, sessions = 0, slates = 0, embeddings = 0

        public init(events: Int = 0, receipts: Int = 0, sessions: Int = 0, slates: Int = 0, embeddings: Int = 0) {
            (self.events, self.receipts, self.sessions, self.slates, self.embeddings) = (events, receipts, sessions, slates, embeddings)
        }
    }

    /// The number of customers erased so far; the agent recomputes what it serves when it changes.
    public static func generation(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'customers_erased'") ?? 0
    }

    /// Erases customer `id` (a store id). `embeddingKey` is the embedding cache's key of a text.
    /// Call it outside a transaction: it switches foreign-key checks off for its own (without
    /// an index on every referencing column, each deleted row would scan a table; the deletes
    /// below cover every reference) and `secure_delete` on.
    public static func erase(_ db: Database, customer id: Int64, embeddingKey: (String) -> Data) throws -> Erased {
        try db.execute(sql: "PRAGMA foreign_keys = OFF; PRAGMA secure_delete = ON")
        defer { try? db.execute(sql: "PRAGMA foreign_keys = ON; PRAGMA secure_delete = OFF") }
        var erased = Erased()
        try db.inTransaction {
            let c: StatementArguments = ["c": id]
            // Their events: by customer, or in their sessions or receipts (each through its index).
            let events = """
                SELECT id FROM events WHERE customer_id = :c AND tier = 1
                UNION SELECT id FROM events WHERE customer_id = :c AND tier = 0
                UNION SELECT id FROM events WHERE session_id IS NOT NULL AND session_id IN (SELECT id FROM sessions WHERE customer_id = :c)
                UNION SELECT id FROM events WHERE receipt_id IS NOT NULL AND receipt_id IN (SELECT id FROM receipts WHERE customer_id = :c)
                """
            try db.execute(sql: "CREATE TEMP TABLE erased_events(id INTEGER PRIMARY KEY); INSERT INTO erased_events \(events)", arguments: c)
            defer { try? db.execute(sql: "DROP TABLE temp.erased_events") }
            let texts = try String.fetchAll(db, sql: "SELECT DISTINCT text FROM events WHERE id IN erased_events AND text IS NOT NULL")
            let deleteEmbedding = try db.makeStatement(sql: "DELETE FROM embeddings WHERE text_hash = ?")
            for text in texts {
                try deleteEmbedding.execute(arguments: [embeddingKey(text)])
                erased.embeddings += db.changesCount
            }
            try db.execute(sql: """
                DELETE FROM review_sentiment WHERE event_id IN erased_events;
                DELETE FROM text_themes WHERE event_id IN erased_events;
                UPDATE events SET sale_event_id = NULL WHERE sale_event_id IN erased_events AND id NOT IN erased_events;
                DELETE FROM events WHERE id IN erased_events;
                """)
            erased.events = try Int.fetchOne(db, sql: "SELECT count(*) FROM erased_events") ?? 0
            // Their slates, whether served to them or to one of their sessions.
            let slates = "SELECT DISTINCT request_id FROM rec_impressions WHERE customer_id = :c OR session IN (SELECT key FROM sessions WHERE customer_id = :c)"
            try db.execute(sql: "CREATE TEMP TABLE erased_slates(request_id TEXT PRIMARY KEY); INSERT INTO erased_slates \(slates)", arguments: c)
            defer { try? db.execute(sql: "DROP TABLE temp.erased_slates") }
            erased.slates = try Int.fetchOne(db, sql: "SELECT count(*) FROM erased_slates") ?? 0
            for table in ["rec_explore", "rec_feedback", "rec_impressions"] {
                try db.execute(sql: "DELETE FROM \(table) WHERE request_id IN erased_slates")
            }
            try db.execute(sql: "DELETE FROM receipts WHERE customer_id = :c", arguments: c)
            erased.receipts = db.changesCount
            try db.execute(sql: "DELETE FROM sessions WHERE customer_id = :c", arguments: c)
            erased.sessions = db.changesCount
            try db.execute(sql: "DELETE FROM customers WHERE id = :c", arguments: c)
            try db.execute(sql: "INSERT INTO meta(key, value) VALUES ('customers_erased', 1) ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1")
            return .commit
        }
        return erased
    }
}
