import GRDB

/// Writes whose deleted or replaced rows must not stay readable in the file's free pages.
enum SecureDelete {
    /// Runs `body` in a transaction of `writer` with SQLite's `secure_delete` fully on (the
    /// connection's `FAST` again after): what it deletes or replaces is overwritten.
    static func transaction(_ writer: some DatabaseWriter, _ body: (Database) throws -> Void) throws {
        try writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA secure_delete = ON")
            defer { try? db.execute(sql: "PRAGMA secure_delete = FAST") }
            try db.inTransaction {
                try body(db)
                return .commit
            }
        }
    }
}
