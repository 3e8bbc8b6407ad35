import GRDB

/// The store's `meta` table: small named values (sync state, counters, the registry's notes).
public enum Meta {
    /// Sets `key` to `value`, replacing what it held.
    public static func set(_ db: Database, _ key: String, _ value: String) throws {
        try db.execute(sql: "INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", arguments: [key, value])
    }

    public static func string(_ db: Database, _ key: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT value FROM meta WHERE key = ?", arguments: [key])
    }

    public static func remove(_ db: Database, _ key: String) throws {
        try db.execute(sql: "DELETE FROM meta WHERE key = ?", arguments: [key])
    }
}
