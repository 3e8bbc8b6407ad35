import Foundation
import GRDB

/// Kiosk sessions' keys kept as their keyed hashes (``Pseudonymizer/sessionKey(_:)``) in both
/// files: the store's `sessions` and the slate log's `rec_slates`. Stores from before v19 kept
/// them as the kiosk sent them; their upgrade rewrites them, the log's first (``rewriteLog(in:)``,
/// marked done by the log's `user_version`), then the store's in migration v19
/// (``rewriteStore(_:in:)``). Each rewrite runs with `secure_delete` on, so the keys as sent
/// are not left in free pages.
enum SessionKeys {
    /// The log's `user_version` once its sessions are stored keys.
    static let logVersion = 1

    /// Rewrites the log's slates' session keys, once (`user_version` below ``logVersion``), and
    /// empties `erased_sessions`, whose digests were of keys as sent (no slate will carry such
    /// a key again).
    static func rewriteLog(in directory: URL) throws {
        let log = try RecommendationLog.connection(in: directory, durable: true)
        defer { try? log.close() }
        try SecureDelete.transaction(log) { db in
            guard try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 < logVersion else { return }
            let sent = try String.fetchAll(db, sql: "SELECT DISTINCT session FROM rec_slates WHERE session IS NOT NULL")
            if !sent.isEmpty {
                try replace(db, table: "rec_slates", column: "session", keys: sent, with: try Pseudonymizer(storeDirectory: directory))
            }
            try db.execute(sql: "DELETE FROM erased_sessions; PRAGMA user_version = \(logVersion)")
        }
        _ = try? log.writeWithoutTransaction { try $0.checkpoint(.truncate) }  // the old frames held them too
    }

    /// Rewrites `sessions.key`, and a pending erasure's session keys, in migration v19's
    /// transaction. The secret is read only when there is something to rewrite.
    static func rewriteStore(_ db: Database, in directory: URL?) throws {
        let sent = try String.fetchAll(db, sql: "SELECT key FROM sessions")
        let pending = try Meta.string(db, CustomerErasure.pendingKey).map { try JSONDecoder().decode(CustomerErasure.Pending.self, from: Data($0.utf8)) }
        guard !sent.isEmpty || pending?.sessionKeys.isEmpty == false else { return }
        guard let directory else { throw SecretError.missing("(no store directory given)") }
        let pseudonymizer = try Pseudonymizer(storeDirectory: directory)
        try db.execute(sql: "PRAGMA secure_delete = ON")
        defer { try? db.execute(sql: "PRAGMA secure_delete = FAST") }
        try replace(db, table: "sessions", column: "key", keys: sent, with: pseudonymizer)
        if var record = pending {
            record.sessionKeys = record.sessionKeys.map(pseudonymizer.sessionKey)
            try Meta.set(db, CustomerErasure.pendingKey, record.json)
        }
    }

    /// Replaces each of `keys` in `table.column` by its stored key, through a temporary map
    /// (one pass over the table, not one per key).
    private static func replace(_ db: Database, table: String, column: String, keys: [String], with pseudonymizer: Pseudonymizer) throws {
        try db.execute(sql: "CREATE TEMP TABLE session_keys(sent TEXT PRIMARY KEY, stored TEXT NOT NULL)")
        defer { try? db.execute(sql: "DROP TABLE temp.session_keys") }
        let insert = try db.makeStatement(sql: "INSERT OR IGNORE INTO session_keys VALUES (?, ?)")
        for key in keys { try insert.execute(arguments: [key, pseudonymizer.sessionKey(key)]) }
        try db.execute(sql: """
            UPDATE \(table) SET \(column) = (SELECT stored FROM session_keys WHERE sent = \(table).\(column))
            WHERE \(column) IS NOT NULL
            """)
    }
}
