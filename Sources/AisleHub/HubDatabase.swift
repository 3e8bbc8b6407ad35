import AisleSync
import Foundation
import GRDB

/// The hub's state: one SQLite database (WAL) and one key file in its data directory. Every
/// request reads and writes it in a transaction and keeps nothing in memory, so the CLI and a
/// second server process can share it.
public struct HubDatabase: Sendable {
    public static let fileName = "hub.sqlite"
    public static let identityFileName = "identity.key"

    public let pool: DatabasePool
    public let identity: SyncIdentity
    public let directory: URL

    /// Opens the data directory `path`, creating a new hub there when it has none unless `create`
    /// is false (then `not_found`: a mistyped path must not become a hub with a key of its own).
    /// With `maxBytes` > 0 the database may not grow past it: writes then fail as `storage_full`,
    /// like a full disk.
    public static func open(path: String, maxBytes: Int64 = 0, create: Bool = true) throws -> HubDatabase {
        let directory = URL(fileURLWithPath: path)
        let file = directory.appendingPathComponent(fileName).path
        guard create || FileManager.default.fileExists(atPath: file) else {
            // fileExists is false for a file behind a directory this user may not enter.
            if access(path, X_OK) != 0, errno == EACCES {
                throw SyncError(.internal, "cannot read \(path): permission denied (run as the hub's user: sudo -u aisle-hub aisle-hub …)")
            }
            throw SyncError(.notFound, "no hub at \(path) (`aisle-hub serve` makes one; check --data or storage.path)")
        }
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        var config = Configuration()
        config.busyMode = .timeout(10)
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            if maxBytes > 0 {
                let pageSize = try Int64.fetchOne(db, sql: "PRAGMA page_size") ?? 4096
                try db.execute(sql: "PRAGMA max_page_count = \(max(16, maxBytes / pageSize))")
            }
        }
        // Owner-only from the start: SQLite would create it with the umask's permissions.
        if !FileManager.default.fileExists(atPath: file), !FileManager.default.createFile(atPath: file, contents: nil, attributes: [.posixPermissions: 0o600]) {
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file])
        }
        let pool = try DatabasePool(path: file, configuration: config)
        // GRDB sets the writer to NORMAL when it turns WAL on, after `prepareDatabase`.
        try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") }
        try migrator.migrate(pool)
        let key = directory.appendingPathComponent(identityFileName).path
        let identity = try create ? SyncIdentity.loadOrCreate(path: key) : SyncIdentity.load(path: key)
        return HubDatabase(pool: pool, identity: identity, directory: directory)
    }

    static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-hub") { db in
            try db.execute(sql: """
                -- The allow-list: a store may send once enrolled, until revoked.
                CREATE TABLE stores(
                    id TEXT PRIMARY KEY,
                    name TEXT NOT NULL,
                    sign_key BLOB,
                    agree_key BLOB,
                    created_at INTEGER NOT NULL,
                    enrolled_at INTEGER,
                    revoked_at INTEGER,
                    last_seen INTEGER,
                    agent_version TEXT,
                    hello TEXT) WITHOUT ROWID;
                -- One-time enrollment tokens, by SHA-256 (the token itself is never stored).
                CREATE TABLE tokens(
                    hash BLOB PRIMARY KEY,
                    store_id TEXT NOT NULL REFERENCES stores(id),
                    expires_at INTEGER NOT NULL,
                    used_at INTEGER) WITHOUT ROWID;
                -- Sequence numbers taken, per store: a second message with one is a replay.
                CREATE TABLE seen(
                    store_id TEXT NOT NULL,
                    seq INTEGER NOT NULL,
                    at INTEGER NOT NULL,
                    PRIMARY KEY(store_id, seq)) WITHOUT ROWID;
                -- Parts of uploads not yet complete.
                CREATE TABLE upload_parts(
                    store_id TEXT NOT NULL,
                    content_id TEXT NOT NULL,
                    part INTEGER NOT NULL,
                    data BLOB NOT NULL,
                    PRIMARY KEY(store_id, content_id, part)) WITHOUT ROWID;
                -- Complete uploads, once each.
                CREATE TABLE uploads(
                    store_id TEXT NOT NULL,
                    content_id TEXT NOT NULL,
                    kind TEXT NOT NULL,
                    round INTEGER NOT NULL,
                    size INTEGER NOT NULL,
                    received_at INTEGER NOT NULL,
                    payload BLOB NOT NULL,
                    PRIMARY KEY(store_id, content_id)) WITHOUT ROWID;
                CREATE TABLE rounds(
                    id INTEGER PRIMARY KEY,
                    kind TEXT NOT NULL,
                    global_version INTEGER NOT NULL,
                    opened_at INTEGER NOT NULL,
                    deadline INTEGER NOT NULL,
                    min_stores INTEGER NOT NULL,
                    state TEXT NOT NULL CHECK(state IN ('open', 'closed')));
                -- Published global models: the signed manifest and the payload it describes.
                CREATE TABLE models(
                    kind TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    round INTEGER NOT NULL,
                    manifest BLOB NOT NULL,
                    signature BLOB NOT NULL,
                    payload BLOB NOT NULL,
                    created_at INTEGER NOT NULL,
                    PRIMARY KEY(kind, version)) WITHOUT ROWID;
                CREATE TABLE audit_log(
                    id INTEGER PRIMARY KEY,
                    ts INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    detail TEXT);
                """)
        }
        m.registerMigration("v2-secure-aggregation") { db in
            try db.execute(sql: """
                -- A round's secure-aggregation step, how long each step waits for late stores,
                -- the vector length, the threshold fixed with the roster, and the sum when done.
                ALTER TABLE rounds ADD COLUMN phase TEXT NOT NULL DEFAULT 'advertise';
                ALTER TABLE rounds ADD COLUMN phase_started INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rounds ADD COLUMN phase_seconds INTEGER NOT NULL DEFAULT 600;
                ALTER TABLE rounds ADD COLUMN length INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rounds ADD COLUMN threshold INTEGER NOT NULL DEFAULT 0;
                ALTER TABLE rounds ADD COLUMN result BLOB;
                ALTER TABLE rounds ADD COLUMN included TEXT;
                ALTER TABLE rounds ADD COLUMN failure TEXT;
                -- What each store sent in each step (adverts, sealed shares, masked vectors,
                -- unmasking shares): the aggregator's state, rebuilt from here on every request.
                CREATE TABLE round_steps(
                    round INTEGER NOT NULL,
                    store TEXT NOT NULL,
                    step TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    at INTEGER NOT NULL,
                    PRIMARY KEY(round, store, step)) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v3-federation") { db in
            try db.execute(sql: """
                -- How stores compute their vectors in a round (RoundSettings, JSON).
                ALTER TABLE rounds ADD COLUMN settings TEXT NOT NULL DEFAULT '{}';
                -- Per federated model kind: the server optimizer's state and the privacy accountant.
                CREATE TABLE federation(
                    kind TEXT PRIMARY KEY,
                    state TEXT NOT NULL) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v4-retention") { db in
            // When each part arrived, so parts of uploads never completed can be let go.
            try db.execute(sql: "ALTER TABLE upload_parts ADD COLUMN received_at INTEGER NOT NULL DEFAULT 0")
            try db.execute(sql: "UPDATE upload_parts SET received_at = CAST(strftime('%s', 'now') AS INTEGER)")
        }
        m.registerMigration("v5-accountant-at-half-z") { db in
            // The accountants counted a round at z before, at z / 2 since (PrivacyAccountant
            // .spend(roundAt:)): what they hold cannot be added to. Their models claim no ε
            // from here on, until `models blank` starts a kind afresh.
            try db.execute(sql: "UPDATE federation SET state = json_set(state, '$.noiseless', json('true'))")
        }
        return m
    }

    /// How long the hub keeps what it no longer needs: a finished round's steps (its masked
    /// vectors and sealed shares; the round keeps its sum), and parts of an upload not completed.
    public static let roundStepsKeptSeconds: Int64 = 86_400
    public static let partsKeptSeconds: Int64 = 30 * 86_400

    /// Deletes what has outlived ``roundStepsKeptSeconds`` and ``partsKeptSeconds`` as of `now`.
    static func prune(_ db: Database, now: Int64) throws {
        try db.execute(
            sql: "DELETE FROM round_steps WHERE round IN (SELECT id FROM rounds WHERE phase IN ('done', 'failed') AND phase_started < ?)",
            arguments: [now - roundStepsKeptSeconds])
        try db.execute(sql: "DELETE FROM upload_parts WHERE received_at < ?", arguments: [now - partsKeptSeconds])
    }

    /// Records an admin action.
    func audit(_ db: Database, _ action: String, _ detail: String) throws {
        let env = ProcessInfo.processInfo.environment
        try db.execute(
            sql: "INSERT INTO audit_log(ts, actor, action, detail) VALUES (?, ?, ?, ?)",
            arguments: [Int64(Date().timeIntervalSince1970), env["SUDO_USER"] ?? env["USER"] ?? "uid-\(getuid())", action, detail])
    }

    /// Runs a write, turning a full database or disk into `storage_full`.
    func write<T>(_ body: (Database) throws -> T) throws -> T {
        do { return try pool.write(body) } catch let e as DatabaseError where e.resultCode == .SQLITE_FULL {
            throw SyncError(.storageFull, "the hub's storage is full; the store keeps the upload and retries")
        }
    }
}
