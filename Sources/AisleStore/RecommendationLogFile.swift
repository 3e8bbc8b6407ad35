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
    public static let schemaName = "log"

    /// A connection to the store's log file, for writing it: every commit synced (`durable`;
    /// an erasure, the copy of an older store's log) or not (the agent's ``Writer``: a served
    /// slate's line is not an acknowledged event, and WAL never corrupts).
    public static func connection(_ store: Store, durable: Bool = true) throws -> DatabaseQueue {
        try connection(in: store.directory, durable: durable)
    }

    static func connection(in directory: URL, durable: Bool) throws -> DatabaseQueue {
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.label = "aisle-log"
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA secure_delete = FAST; PRAGMA mmap_size = 0; PRAGMA cache_size = -4096; PRAGMA journal_size_limit = 67108864")
            try db.execute(sql: durable ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL")
        }
        return try DatabaseQueue(path: directory.appendingPathComponent(fileName).path, configuration: config)
    }

    /// The log's tables: `rec_slates` (a row per slate, the items by position as
    /// `[[item_id, score, source, propensity], …]`), `rec_explore` (the arms of each explored
    /// position), `rec_feedback`, and the view `rec_impressions` (a row per item shown).
    /// Customer and item ids are the store's; the file has no foreign keys to it.
    static func createTables(_ db: Database) throws {
        try db.execute(sql: """
            CREATE TABLE IF NOT EXISTS rec_slates(
                request_id TEXT PRIMARY KEY NOT NULL,
                ts INTEGER NOT NULL,
                customer_id INTEGER,
                session TEXT,
                placement TEXT NOT NULL,
                model TEXT NOT NULL,
                experiment TEXT,
                arm TEXT,
                items TEXT NOT NULL) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS rec_slates_ts ON rec_slates(ts);
            CREATE INDEX IF NOT EXISTS rec_slates_experiment ON rec_slates(experiment, arm) WHERE experiment IS NOT NULL;
            CREATE TABLE IF NOT EXISTS rec_explore(
                request_id TEXT NOT NULL,
                position INTEGER NOT NULL,
                chosen INTEGER NOT NULL,
                arms BLOB NOT NULL,
                PRIMARY KEY(request_id, position)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS rec_feedback(
                request_id TEXT NOT NULL,
                item_id INTEGER NOT NULL,
                action TEXT NOT NULL CHECK(action IN ('click', 'cart', 'purchase', 'dismiss')),
                ts INTEGER NOT NULL,
                PRIMARY KEY(request_id, item_id, action)) WITHOUT ROWID;
            CREATE INDEX IF NOT EXISTS rec_feedback_ts ON rec_feedback(ts);
            -- Customers erased (store ids, which are never given again): their slates still
            -- waiting in an agent's memory are not written.
            CREATE TABLE IF NOT EXISTS erased_customers(customer_id INTEGER PRIMARY KEY);
            -- And their kiosk sessions, by the SHA-256 of the stored key (Pseudonymizer.sessionKey).
            CREATE TABLE IF NOT EXISTS erased_sessions(digest BLOB PRIMARY KEY) WITHOUT ROWID;
            CREATE VIEW IF NOT EXISTS rec_impressions AS
                SELECT s.request_id, s.ts, s.customer_id, s.session, s.placement, s.model, j.key AS position,
                       json_extract(j.value, '$[0]') AS item_id, json_extract(j.value, '$[1]') AS score,
                       json_extract(j.value, '$[2]') AS source, json_extract(j.value, '$[3]') AS propensity,
                       s.experiment, s.arm
                FROM rec_slates s, json_each(s.items) j;
            """)
    }

    /// Creates the log file (0640, owned like the store's file, WAL) and its tables when missing.
    /// For a writable open of the store, before its connections attach the file.
    static func prepareFile(in directory: URL) throws {
        let path = directory.appendingPathComponent(fileName).path
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o640)  // exclusive: another process may create it too
        if fd >= 0 {
            // Run as root (an admin's first command after an upgrade), the file would be root's.
            if geteuid() == 0, let owner = try? FileManager.default.attributesOfItem(atPath: directory.appendingPathComponent(Store.databaseName).path),
                let uid = (owner[.ownerAccountID] as? NSNumber)?.uint32Value, let gid = (owner[.groupOwnerAccountID] as? NSNumber)?.uint32Value
            {
                _ = fchown(fd, uid, gid)
            }
            close(fd)
        } else if errno != EEXIST {
            throw StoreError.logFile(path, String(cString: strerror(errno)))
        }
        do {
            let queue = try connection(in: directory, durable: true)
            try queue.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.inTransaction { try createTables(db); return .commit }
            }
            try queue.close()
        } catch let error as DatabaseError {
            throw StoreError.logFile(path, error.message ?? "\(error.resultCode)")
        }
    }

    /// Copies the slate log the store itself held before v16 into the log file, if it still
    /// holds one. The copy commits to the log file alone, before v16 drops the store's tables in
    /// a transaction of its own: a transaction over two WAL files is atomic for each file, not
    /// for both.
    static func copyFromStore(in directory: URL) throws {
        let queue = try connection(in: directory, durable: true)
        defer { try? queue.close() }
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS store", arguments: [directory.appendingPathComponent(Store.databaseName).path])
            defer { try? db.execute(sql: "DETACH DATABASE store") }
            let inStore = try Bool.fetchOne(db, sql: "SELECT count(*) > 0 FROM store.sqlite_master WHERE type = 'table' AND name = 'rec_slates'") ?? false
            guard inStore else { return }
            // The store's copy is the log until v16 drops it (no agent of this version has written
            // here yet): what an earlier attempt copied is replaced, erasures since included.
            try db.inTransaction(.deferred) {  // writes the log alone (IMMEDIATE would lock the store too)
                try db.execute(sql: """
                    PRAGMA user_version = 0;  -- its sessions' keys as sent, for SessionKeys to rewrite
                    DELETE FROM rec_slates; DELETE FROM rec_explore; DELETE FROM rec_feedback;
                    INSERT INTO rec_slates(request_id, ts, customer_id, session, placement, model, experiment, arm, items)
                        SELECT request_id, ts, customer_id, session, placement, model, experiment, arm, items FROM store.rec_slates;
                    INSERT INTO rec_explore(request_id, position, chosen, arms)
                        SELECT request_id, position, chosen, arms FROM store.rec_explore;
                    INSERT INTO rec_feedback(request_id, item_id, action, ts)
                        SELECT request_id, item_id, action, ts FROM store.rec_feedback;
                    """)
                return .commit
            }
        }
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
        public init(store: Store) throws { queue = try connection(store, durable: false) }

        /// Runs `updates` in a transaction on one of the writer's threads — at nice 19, or at
        /// normal priority when `behind` (slates piling up, or someone waiting) — one at a time (GRDB runs a synchronous write on the
        /// calling thread, commit and checkpoints included).
        public func write<T: Sendable>(behind: Bool = false, _ updates: @escaping @Sendable (Database) throws -> T) async throws -> T {
            let queue = queue
            return try await (behind ? catchingUp : background).run { try queue.write(updates) }
        }

        /// Ends the writer's threads once the writes queued before have run, then closes the
        /// connection, checkpointing the file's write-ahead log. Later writes throw.
        public func close() async throws {
            await background.stop()
            await catchingUp.stop()
            try queue.close()
        }
    }
}
