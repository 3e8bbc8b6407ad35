import AisleCore
import Foundation
import GRDB

/// Kiosk sessions' keys kept as their keyed hashes (``Pseudonymizer/sessionKey(_:)``) — in the
/// store's `sessions`, in the idempotency keys of their events and in the slate log's
/// `rec_slates`. Stores from before v19 kept them as the kiosk sent them; their upgrade rewrites
/// them, the log's first (``rewriteLog(in:)``, marked done by the log's `user_version` in the
/// same transaction), then the store's in migration v19 (``rewriteStore(_:in:)``), in batches,
/// with `secure_delete` on and temporary data in memory, so the keys as sent are not left in
/// pages the rewrite frees nor in temporary files. (Pages freed earlier, by pruning, are not
/// traced: docs/PRIVACY.md.)
enum SessionKeys {
    /// The log's `user_version` once its sessions are stored keys.
    static let logVersion = 1
    /// Keys (or events) rewritten per statement: what one holds in memory stays small.
    static let batch = 10_000

    /// Rewrites the log's slates' session keys, once, and empties `erased_sessions`, whose
    /// digests were of keys as sent (no slate will carry such a key again).
    static func rewriteLog(in directory: URL) throws {
        let log = try RecommendationLog.connection(in: directory, durable: true)
        defer { try? log.close() }
        try SecureDelete.transaction(log) { db in
            guard try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 < logVersion else { return }
            try db.execute(sql: "DELETE FROM erased_sessions; PRAGMA user_version = \(logVersion)")
            let sent = try String.fetchAll(db, sql: "SELECT DISTINCT session FROM rec_slates WHERE session IS NOT NULL")
            guard !sent.isEmpty else { return }
            try replace(db, table: "rec_slates", column: "session", keys: sent, with: try Pseudonymizer(storeDirectory: directory))
        }
        _ = try? log.writeWithoutTransaction { try $0.checkpoint(.truncate) }  // the old frames held them too
    }

    /// Rewrites `sessions.key`, the idempotency keys made from them, and a pending erasure's
    /// session keys, in migration v19's transaction. The secret is read only when there is
    /// something to rewrite.
    static func rewriteStore(_ db: Database, in directory: URL?) throws {
        let sent = try String.fetchAll(db, sql: "SELECT key FROM sessions")
        let pending = try Meta.string(db, CustomerErasure.pendingKey).map { try JSONDecoder().decode(CustomerErasure.Pending.self, from: Data($0.utf8)) }
        guard !sent.isEmpty || pending?.sessionKeys.isEmpty == false else { return }
        guard let directory else { throw SecretError.missing("(no store directory given)") }
        let pseudonymizer = try Pseudonymizer(storeDirectory: directory)
        try db.execute(sql: "PRAGMA secure_delete = ON")
        defer { try? db.execute(sql: "PRAGMA secure_delete = FAST") }
        try rekeyEvents(db, with: pseudonymizer)
        try replace(db, table: "sessions", column: "key", keys: sent, with: pseudonymizer)
        if var record = pending {
            record.sessionKeys = record.sessionKeys.map(pseudonymizer.sessionKey)
            try Meta.set(db, CustomerErasure.pendingKey, record.json)
        }
    }

    /// Events sent without an `id` in a session are keyed by a hash of their content, the
    /// session's key as sent included: anyone reading the store could test a guessed key against
    /// it. Each whose key is that hash (those sent with an `id` are keyed by it; those whose
    /// words were cleared are sealed) gets the key the same event has now, made with the stored
    /// session key — the same event sent again is still a duplicate. In batches of ``batch``.
    private static func rekeyEvents(_ db: Database, with pseudonymizer: Pseudonymizer) throws {
        let ids = try Int64.fetchAll(db, sql: "SELECT id FROM events WHERE session_id IS NOT NULL AND flags & \(EventFlag.keySealed) = 0")
        let update = try db.makeStatement(sql: "UPDATE events SET key = ? WHERE id = ?")
        var scratch: [UInt8] = []
        for start in stride(from: 0, to: ids.count, by: batch) {
            let rows = try Row.fetchAll(db, sql: """
                SELECT e.id, e.key, e.ts, e.type, s.key AS session, r.key AS receipt, i.sku AS item, e.qty, e.price, e.text,
                       e.rating, e.source, e.store, c.pseudonym
                FROM events e JOIN sessions s ON s.id = e.session_id
                LEFT JOIN receipts r ON r.id = e.receipt_id LEFT JOIN items i ON i.id = e.item_id LEFT JOIN customers c ON c.id = e.customer_id
                WHERE e.id IN (SELECT value FROM json_each(?))
                """, arguments: ["\(ids[start..<min(start + batch, ids.count)])"])
            for row in rows {
                guard let type = EventType(rawValue: row["type"] as String) else { continue }
                let pseudonym: Data? = row["pseudonym"]
                var event = IncomingEvent(
                    ts: row["ts"], type: type, session: row["session"], receipt: row["receipt"], item: row["item"], qty: row["qty"],
                    price: row["price"], text: row["text"], rating: row["rating"], source: row["source"], store: row["store"])
                guard EventKey.idempotency(event, pseudonym: pseudonym, scratch: &scratch) == row["key"] as Data else { continue }
                event.session = event.session.map(pseudonymizer.sessionKey)
                try update.execute(arguments: [EventKey.idempotency(event, pseudonym: pseudonym, scratch: &scratch), row["id"] as Int64])
            }
        }
    }

    /// Replaces each of `keys` in `table.column` by its stored key, ``batch`` keys at a time
    /// through a temporary map (a pass over the table per batch, not per key).
    private static func replace(_ db: Database, table: String, column: String, keys: [String], with pseudonymizer: Pseudonymizer) throws {
        try db.execute(sql: "CREATE TEMP TABLE session_keys(sent TEXT PRIMARY KEY, stored TEXT NOT NULL)")
        defer { try? db.execute(sql: "DROP TABLE temp.session_keys") }
        let insert = try db.makeStatement(sql: "INSERT OR IGNORE INTO session_keys VALUES (?, ?)")
        for start in stride(from: 0, to: keys.count, by: batch) {
            try db.execute(sql: "DELETE FROM session_keys")
            for key in keys[start..<min(start + batch, keys.count)] { try insert.execute(arguments: [key, pseudonymizer.sessionKey(key)]) }
            try db.execute(sql: """
                UPDATE \(table) SET \(column) = (SELECT stored FROM session_keys WHERE sent = \(table).\(column))
                WHERE \(column) IN (SELECT sent FROM session_keys)
                """)
        }
    }
}
