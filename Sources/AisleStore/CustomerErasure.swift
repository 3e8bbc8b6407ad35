import Foundation
import GRDB

/// Erasing a customer on request (`aislectl customer forget`): their events — with the review
/// scores, text themes and cached text embeddings made from them — receipts, kiosk sessions and
/// served slates, deleted with SQLite's `secure_delete` fully on, so the
/// deleted rows are overwritten rather than left in free space; the customer row keeps only its
/// id, under a random pseudonym. Store-wide daily
/// sales totals (`item_daily`) keep their figures: they name no one. The agent sees the change
/// through ``generation(_:)``: it drops the row ids it cached and recomputes what it serves.
public enum CustomerErasure {
    /// What was deleted.
    public struct Erased: Sendable, Codable, Equatable {
        public var events = 0, receipts = 0, sessions = 0, slates = 0, embeddings = 0

        public init(events: Int = 0, receipts: Int = 0, sessions: Int = 0, slates: Int = 0, embeddings: Int = 0) {
            (self.events, self.receipts, self.sessions, self.slates, self.embeddings) = (events, receipts, sessions, slates, embeddings)
        }

        /// The audit log's words for it: counts, not whom.
        var summary: String {
            "\(events) events, \(receipts) receipts, \(sessions) sessions, \(slates) slates, \(embeddings) cached embeddings"
        }
    }

    /// An erasure whose store transaction committed, recorded in that transaction (`meta`) and
    /// cleared once its last steps are done — the slates the agent logged meanwhile, the audit
    /// row's count of them, the write-ahead logs truncated: a crash between leaves it for
    /// ``finishPending(_:)`` (the customer can no longer be found to be forgotten again).
    struct Pending: Codable {
        var customer: Int64, since: Int64, sessionKeys: [String], audit: Int64, erased: Erased

        var json: String { String(decoding: (try? JSONEncoder().encode(self)) ?? Data(), as: UTF8.self) }
    }

    static let pendingKey = "erasure.pending"

    /// The number of customers erased so far: when it changes, row ids cached from before may
    /// name deleted (or reused) rows.
    public static func generation(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db.cachedStatement(sql: "SELECT CAST(value AS INTEGER) FROM meta WHERE key = 'customers_erased'")) ?? 0
    }

    /// Erases customer `id` (a store id) and records it in the audit log (counts, not whom).
    /// `embeddingKey` is the embedding cache's key of a text. The slate log and the cache's
    /// models are scanned before the writes; the writes go by index, so the agent's writes wait
    /// for them only briefly. The slate log is another file, and a transaction over two WAL files
    /// commits each file on its own: its slates go first, in a transaction of their own — a
    /// crash before the store's commit leaves the customer findable, to be forgotten again — and
    /// those the agent logged meanwhile after it. The first also records the customer in the
    /// log's `erased_customers`, so slates of theirs still waiting in an agent's memory are never
    /// written.
    public static func erase(_ store: Store, customer id: Int64, embeddingKey: (String) -> Data) throws -> Erased {
        let c: StatementArguments = ["c": id]
        // Their sessions and receipts: those that name them, and those that name no one but hold
        // their events (opened or rung up before they were known).
        // (By tier, so that each half reads its own index on the customer.)
        func theirs(_ table: String, _ column: String) -> String {
            let events = [1, 0].map { "SELECT \(column) FROM events WHERE customer_id = :c AND tier = \($0) AND \(column) IS NOT NULL" }
            return "SELECT id FROM \(table) WHERE customer_id = :c OR (customer_id IS NULL AND id IN (\(events.joined(separator: " UNION "))))"
        }
        let theirSessionKeys = "SELECT key FROM sessions WHERE id IN (\(theirs("sessions", "session_id")))"
        let theirSlates = "SELECT request_id FROM rec_slates WHERE customer_id = :c OR session IN (\(theirSessionKeys))"
        let (slates, since, sessionKeys, models) = try store.database.read { db in
            (try String.fetchSet(db, sql: theirSlates, arguments: c),
             try Int64.fetchOne(db, sql: "SELECT max(ts) FROM rec_slates") ?? 0,
             try String.fetchAll(db, sql: theirSessionKeys, arguments: c),
             try String.fetchAll(db, sql: "SELECT DISTINCT model FROM embeddings"))
        }
        let log = try RecommendationLog.connection(store)
        defer { try? log.close() }
        var erased = Erased()
        erased.slates = try eraseSlates(log, customer: id, sessionKeys: sessionKeys, known: slates, since: since)
        var pending = Pending(customer: id, since: since, sessionKeys: sessionKeys, audit: 0, erased: erased)
        // Foreign-key checks off: without an index on every referencing column each deleted row
        // would scan a table; the deletes below cover every reference.
        try SecureDelete.transaction(store.database, foreignKeys: false) { db in
            // Their sessions and receipts; their events — by customer, and the anonymous ones
            // in those sessions or receipts.
            try db.execute(sql: """
                CREATE TEMP TABLE erased_sessions(id INTEGER PRIMARY KEY, key TEXT NOT NULL);
                INSERT INTO erased_sessions SELECT id, key FROM sessions WHERE id IN (\(theirs("sessions", "session_id")));
                CREATE TEMP TABLE erased_receipts(id INTEGER PRIMARY KEY);
                INSERT INTO erased_receipts \(theirs("receipts", "receipt_id"));
                CREATE TEMP TABLE erased_events(id INTEGER PRIMARY KEY);
                INSERT INTO erased_events
                    SELECT id FROM events WHERE customer_id = :c AND tier = 1
                    UNION SELECT id FROM events WHERE customer_id = :c AND tier = 0
                    UNION SELECT id FROM events WHERE session_id IS NOT NULL AND customer_id IS NULL AND session_id IN (SELECT id FROM erased_sessions)
                    UNION SELECT id FROM events WHERE receipt_id IS NOT NULL AND customer_id IS NULL AND receipt_id IN erased_receipts;
                """, arguments: c)
            defer { try? db.execute(sql: "DROP TABLE temp.erased_sessions; DROP TABLE temp.erased_receipts; DROP TABLE temp.erased_events") }
            let lastKeys = try String.fetchAll(db, sql: "SELECT key FROM erased_sessions")  // as the erasing transaction sees them
            erased.events = try Int.fetchOne(db, sql: "SELECT count(*) FROM erased_events") ?? 0
            let texts = try String.fetchAll(db, sql: "SELECT DISTINCT text FROM events WHERE id IN erased_events AND text IS NOT NULL")
            let deleteEmbedding = try db.makeStatement(sql: "DELETE FROM embeddings WHERE model = ? AND text_hash = ?")
            for text in texts {
                let key = embeddingKey(text)
                for model in models {
                    try deleteEmbedding.execute(arguments: [model, key])
                    erased.embeddings += db.changesCount
                }
            }
            try db.execute(sql: """
                DELETE FROM review_sentiment WHERE event_id IN erased_events;
                DELETE FROM text_themes WHERE event_id IN erased_events;
                UPDATE events SET sale_event_id = NULL WHERE sale_event_id IS NOT NULL AND sale_event_id IN erased_events AND id NOT IN erased_events;
                DELETE FROM events WHERE id IN erased_events;
                UPDATE events SET session_id = NULL WHERE session_id IS NOT NULL AND session_id IN (SELECT id FROM erased_sessions);
                UPDATE events SET receipt_id = NULL WHERE receipt_id IS NOT NULL AND receipt_id IN erased_receipts;
                """)  // another customer's events in a session or receipt of theirs stay, detached
            try db.execute(sql: "DELETE FROM receipts WHERE id IN erased_receipts")
            erased.receipts = db.changesCount
            try db.execute(sql: "DELETE FROM sessions WHERE id IN (SELECT id FROM erased_sessions)")
            erased.sessions = db.changesCount
            // The row's id stays taken, by a row that names no one: SQLite would give it to the
            // next new customer, and whatever still holds it (the insight being recomputed, a
            // slate being logged) would then describe someone else.
            try db.execute(sql: "UPDATE customers SET pseudonym = randomblob(32) WHERE id = :c", arguments: c)
            try Meta.set(db, "customers_erased", String(try generation(db) + 1))
            try Store.audit(db, "customer forget", detail: erased.summary)
            pending = Pending(customer: id, since: since, sessionKeys: lastKeys, audit: db.lastInsertedRowID, erased: erased)
            try Meta.set(db, pendingKey, pending.json)
        }
        return try finish(store, log, pending)
    }

    /// Slates the agent logged meanwhile, also of a session opened meanwhile; the audit row then
    /// counts them too, and the pending record keeps no session key (they could name the
    /// customer). Returns what the erasure deleted in all.
    private static func finish(_ store: Store, _ log: DatabaseQueue, _ pending: Pending) throws -> Erased {
        var erased = pending.erased
        let late = try eraseSlates(log, customer: pending.customer, sessionKeys: pending.sessionKeys, known: [], since: pending.since)
        erased.slates += late
        var done = pending
        done.sessionKeys = []
        try SecureDelete.transaction(store.database) { db in
            if late > 0 { try db.execute(sql: "UPDATE audit_log SET detail = ? WHERE id = ?", arguments: [erased.summary, pending.audit]) }
            try Meta.set(db, pendingKey, done.json)
        }
        return erased
    }

    /// Empties both files' write-ahead logs (their older frames still hold the erased rows as
    /// they were) and then clears the pending erasure; returns what could not be truncated — the
    /// agent's readers holding a file past the busy timeout, 30 s — and then leaves it pending.
    public static func truncateLogs(_ store: Store) -> [String] {
        var errors: [String] = []
        do { _ = try store.database.writeWithoutTransaction { try $0.checkpoint(.truncate) } } catch { errors.append("\(Store.databaseName): \(error)") }
        do {
            let log = try RecommendationLog.connection(store)
            defer { try? log.close() }
            _ = try log.writeWithoutTransaction { try $0.checkpoint(.truncate) }
        } catch { errors.append("\(RecommendationLog.fileName): \(error)") }
        if errors.isEmpty {
            do {
                try SecureDelete.transaction(store.database) { try Meta.remove($0, pendingKey) }
                _ = try? store.database.writeWithoutTransaction { try $0.checkpoint(.truncate) }
            } catch { errors.append("\(Store.databaseName): \(error)") }
        }
        return errors
    }

    /// Finishes an erasure a crash interrupted after its store transaction (``Pending``): nil
    /// when there was none, else what ``truncateLogs(_:)`` could not truncate (it stays pending).
    /// The agent runs it at start, `customer forget` before its own.
    public static func finishPending(_ store: Store) throws -> [String]? {
        guard let text = try store.database.read({ try Meta.string($0, pendingKey) }) else { return nil }
        let pending = try JSONDecoder().decode(Pending.self, from: Data(text.utf8))
        let log = try RecommendationLog.connection(store)
        defer { try? log.close() }
        _ = try finish(store, log, pending)
        return truncateLogs(store)
    }

    /// Deletes from the slate log's file, in a transaction, the slates `known` and those logged
    /// since a minute before `since` (by the time index) for the customer or their sessions;
    /// returns how many.
    private static func eraseSlates(_ log: DatabaseQueue, customer id: Int64, sessionKeys: [String], known: Set<String>, since: Int64) throws -> Int {
        var count = 0
        try SecureDelete.transaction(log) { db in
            // From now on an agent does not log their slates still waiting in its memory.
            try db.execute(sql: "INSERT OR IGNORE INTO erased_customers(customer_id) VALUES (?)", arguments: [id])
            try db.execute(sql: "CREATE TEMP TABLE erased_slates(request_id TEXT PRIMARY KEY); CREATE TEMP TABLE erased_keys(key TEXT PRIMARY KEY)")
            defer { try? db.execute(sql: "DROP TABLE temp.erased_slates; DROP TABLE temp.erased_keys") }
            let slate = try db.makeStatement(sql: "INSERT OR IGNORE INTO erased_slates VALUES (?)")
            for request in known { try slate.execute(arguments: [request]) }
            let key = try db.makeStatement(sql: "INSERT OR IGNORE INTO erased_keys VALUES (?)")
            let erasedSession = try db.makeStatement(sql: "INSERT OR IGNORE INTO erased_sessions(digest) VALUES (?)")
            for k in sessionKeys {
                try key.execute(arguments: [k])
                try erasedSession.execute(arguments: [RecommendationLog.sessionDigest(k)])
            }
            try db.execute(sql: """
                INSERT OR IGNORE INTO erased_slates SELECT request_id FROM rec_slates
                WHERE ts >= :since AND (customer_id = :c OR session IN erased_keys)
                """, arguments: ["c": id, "since": since - 60])
            count = try Int.fetchOne(db, sql: "SELECT count(*) FROM erased_slates") ?? 0
            try RecommendationLog.deleteSlates(db, in: "erased_slates")
        }
        return count
    }
}
