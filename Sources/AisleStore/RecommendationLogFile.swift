import AisleCore
import Foundation
import GRDB

/// The slate log's own database file, `log.sqlite`, beside the store's: the agent writes it at
/// the rate it serves (thousands of slates a second at saturation) from one thread at nice 19,
/// so those writes neither hold the store's one writer — event batches never wait for them —
/// nor take a core from the requests. The store's readers attach it as `log`, so its tables read
/// by their plain names; its writes go through connections of its own (``connection(_:)``) —
/// never the store's writer, whose `BEGIN IMMEDIATE` would lock every attached file.
extension RecommendationLog {
    /// The log's file name in the store directory.
    public static let fileName = "log.sqlite"

    /// The schema name the store's readers attach the log under.
    static let schemaName = "log"

    /// A connection to the store's log file, for writing it (pruning, erasure, the agent's
    /// ``Writer``).
    public static func connection(_ store: Store) throws -> DatabaseQueue {
        try DatabaseQueue(path: store.directory.appendingPathComponent(fileName).path, configuration: writerConfiguration)
    }

    /// The log's tables, in `schema`: `rec_slates` (a row per slate, the items by position as
    /// `[[item_id, score, source, propensity], …]`), `rec_explore` (the arms of each explored
    /// position), `rec_feedback`, and the view `rec_impressions` (a row per item shown).
    /// Customer and item ids are the store's; the file has no foreign keys to it.
    static func createTables(_ db: Database, in schema: String = "main") throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS \(schema).rec_slates(
                request_id TEXT PRIMARY KEY NOT NULL,
                ts INTEGER NOT NULL,
                customer_id INTEGER,
                session TEXT,
                placement TEXT NOT NULL,
                model TEXT NOT NULL,
                experiment TEXT,
                arm TEXT,
                items TEXT NOT NULL) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS \(schema).rec_slates_ts ON rec_slates(ts);
            CREATE INDEX IF NOT EXISTS \(schema).rec_slates_experiment ON rec_slates(experiment, arm) WHERE experiment IS NOT NULL;
            CREATE TABLE IF NOT EXISTS \(schema).rec_explore(
                request_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                chosen INTEGER NOT NULL,
                arms BLOB NOT NULL,
                PRIMARY KEY(request_id, position)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS \(schema).rec_feedback(
                request_id TEXT NOT NULL,
                item_id INTEGER NOT NULL,
                action TEXT NOT NULL CHECK(action IN ('click', 'cart', 'purchase', 'dismiss')),
                ts INTEGER NOT NULL,
                PRIMARY KEY(request_id, item_id, action)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS \(schema).rec_feedback_ts ON rec_feedback(ts);
            CREATE VIEW IF NOT EXISTS \(schema).rec_impressions AS
                SELECT s.request_id, s.ts, s.customer_id, s.session, s.placement, s.model, j.key AS position,
                       json_extract(j.value, '$[0]') AS item_id, json_extract(j.value, '$[1]') AS score,
                       json_extract(j.value, '$[2]') AS source, json_extract(j.value, '$[3]') AS propensity,
                       s.experiment, s.arm
                FROM rec_slates s, json_each(s.items) j;
            """)
    }

    /// Creates the log file (0640, WAL) and its tables when missing. For a writable open of the
    /// store, before its connections attach the file.
    static func prepareFile(in directory: URL) throws {
        let path = directory.appendingPathComponent(fileName).path
        if !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o640]) else {
                throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path])
            }
        }
        let queue = try DatabaseQueue(path: path, configuration: writerConfiguration)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.inTransaction { try createTables(db); return .commit }
        }
        try queue.close()
    }

    /// Copies the slate log the store itself held before v16 into the log file, if it still
    /// holds one. The copy commits to the log file alone, before v16 drops the store's tables in
    /// a transaction of its own: a transaction over two WAL files is atomic for each file, not
    /// for both.
    static func copyFromStore(in directory: URL) throws {
        let queue = try DatabaseQueue(path: directory.appendingPathComponent(fileName).path, configuration: writerConfiguration)
        defer { try? queue.close() }
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS store", arguments: [directory.appendingPathComponent(Store.databaseName).path])
            defer { try? db.execute(sql: "DETACH DATABASE store") }
            let inStore = try Bool.fetchOne(db, sql: "SELECT count(*) > 0 FROM store.sqlite_master WHERE type = 'table' AND name = 'rec_slates'") ?? false
            guard inStore else { return }
            try db.inTransaction(.deferred) {  // writes the log alone (IMMEDIATE would lock the store too)
                try db.execute(sql: """
                    INSERT OR IGNORE INTO rec_slates(request_id, ts, customer_id, session, placement, model, experiment, arm, items)
                        SELECT request_id, ts, customer_id, session, placement, model, experiment, arm, items FROM store.rec_slates;
                    INSERT OR IGNORE INTO rec_explore(request_id, position, chosen, arms)
                        SELECT request_id, position, chosen, arms FROM store.rec_explore;
                    INSERT OR IGNORE INTO rec_feedback(request_id, item_id, action, ts)
                        SELECT request_id, item_id, action, ts FROM store.rec_feedback;
                    """)
                return .commit
            }
        }
    }

    /// The log writer's connection: commits are not fsynced one by one (a slate's log line is not
    /// an acknowledged event; WAL never corrupts), a small page cache.
    static var writerConfiguration: Configuration {
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.label = "aisle-log"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA secure_delete = FAST; PRAGMA synchronous = NORMAL; PRAGMA mmap_size = 0; PRAGMA cache_size = -4096")
        }
        return config
    }

    /// The agent's writer of the log file: one connection, used from a thread at nice 19 — or,
    /// when the caller says the log is falling behind, from one at the creator's priority (on an
    /// agent saturated by requests a nice-19 thread gets ~1 % of a core, and the slates waiting
    /// for it would pile up in memory).
    public final class Writer: Sendable {
        private let queue: DatabaseQueue
        private let background = JobThread(lowered: Blocking.backgroundNice)
        private let catchingUp = JobThread()

        /// Opens the log file of `store` (which created it). Its threads start here: call it at
        /// normal priority.
        public init(store: Store) throws { queue = try connection(store) }

        /// Runs `updates` in a transaction on one of the writer's threads — at nice 19, or at
        /// normal priority when `behind` — one at a time (GRDB runs a synchronous write on the
        /// calling thread, commit and checkpoints included).
        public func write<T: Sendable>(behind: Bool = false, _ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
            let queue = queue
            return try await (behind ? catchingUp : background).run { try queue.write(updates) }
        }

        /// Closes the connection, checkpointing the file's write-ahead log.
        public func close() throws { try queue.close() }
    }
}
