import GRDB

/// Writes whose deleted or replaced rows must not stay readable in the file's free pages.
enum SecureDelete {
    /// Runs `body` in an immediate transaction of `writer` with SQLite's `secure_delete` fully on
    /// and temporary data (temporary tables, statement journals) in memory — the connection's
    /// `FAST` and default again after: what it deletes or replaces is overwritten, and no copy
    /// goes to a temporary file. `writer` must attach no other file (an immediate transaction
    /// would lock it too). `foreignKeys: false` turns their checks off for it, for a caller whose
    /// deletes cover every reference themselves.
    static func transaction(_ writer: some DatabaseWriter, foreignKeys: Bool = true, _ body: (Database) throws -> Void) throws {
        try writer.writeWithoutTransaction { db in
            if !foreignKeys { try db.execute(sql: "PRAGMA foreign_keys = OFF") }
            try db.execute(sql: "PRAGMA secure_delete = ON; PRAGMA temp_store = MEMORY")
            defer {
                try? db.execute(sql: "PRAGMA secure_delete = FAST; PRAGMA temp_store = DEFAULT")
                if !foreignKeys { try? db.execute(sql: "PRAGMA foreign_keys = ON") }
            }
            try db.inTransaction(.immediate) {
                try body(db)
                return .commit
            }
        }
    }
}
