import Foundation
import GRDB

/// What shoppers typed at a kiosk (searches and questions) is kept for a while, then only what
/// was made of it: the event stays — time, customer, session — without the words, which may
/// name someone and which no customer erasure could find once anonymous.
///
/// An event sent without an `id` has a key made from its content, words included: anyone who
/// reads the store could test guessed words against it. So the words go with the key: the event
/// keeps the key `seal` makes of it (the store's keyed hash, ``EventFlag/keySealed``), which an
/// import of the same event still finds as a duplicate.
public enum TextRetention {
    /// Clears the words of searches and questions made before `before` (seconds), at most
    /// `rows` events, and seals their keys, in one transaction with SQLite's `secure_delete`
    /// fully on (the words and old keys are overwritten, not left in free pages); returns how many.
    public static func clear(_ writer: some DatabaseWriter, before: Int64, rows: Int, seal: (Data) -> Data) throws -> Int {
        try sealing(writer, seal: seal) { db in
            try Row.fetchAll(
                db, sql: "SELECT id, key FROM events WHERE text IS NOT NULL AND type IN ('search', 'question') AND ts < ? ORDER BY ts LIMIT ?",
                arguments: [before, rows])
        }
    }

    /// The searches and questions whose words were cleared before keys were sealed (a store from
    /// before this version), by id; empty once ``markOldKeysSealed(_:)`` has run. One pass over
    /// the table.
    public static func oldKeys(_ writer: some DatabaseWriter) throws -> [Int64] {
        try writer.read { db in
            guard try Meta.string(db, doneKey) == nil else { return [] }
            return try Int64.fetchAll(db, sql: "SELECT id FROM events WHERE \(unsealed)", arguments: [EventFlag.keySealed])
        }
    }

    /// Seals the keys of those of `ids` still unsealed, in one transaction; returns how many.
    public static func sealOldKeys(_ writer: some DatabaseWriter, ids: [Int64], seal: (Data) -> Data) throws -> Int {
        try sealing(writer, seal: seal) { db in
            try Row.fetchAll(
                db, sql: "SELECT id, key FROM events WHERE id IN (SELECT value FROM json_each(?)) AND \(unsealed)", arguments: ["\(ids)", EventFlag.keySealed])
        }
    }

    /// Records that no key is left to seal from before.
    public static func markOldKeysSealed(_ writer: some DatabaseWriter) throws { try writer.write { try Meta.set($0, doneKey, "1") } }

    /// Words cleared, key not sealed (`?`: ``EventFlag/keySealed``).
    private static let unsealed = "text IS NULL AND type IN ('search', 'question') AND flags & ? = 0"

    static let doneKey = "text_keys_sealed"

    /// Clears the words of the events `select` finds and gives each the key `seal` makes of its own.
    private static func sealing(_ writer: some DatabaseWriter, seal: (Data) -> Data, select: (Database) throws -> [Row]) throws -> Int {
        var count = 0
        try SecureDelete.transaction(writer) { db in
            let update = try db.makeStatement(sql: "UPDATE events SET text = NULL, key = ?, flags = flags | ? WHERE id = ?")
            let rows = try select(db)
            for row in rows { try update.execute(arguments: [seal(row["key"]), EventFlag.keySealed, row["id"] as Int64]) }
            count = rows.count
        }
        return count
    }
}
