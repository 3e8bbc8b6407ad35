import Foundation
import GRDB

/// Errors about the store directory itself.
public enum StoreError: Error, CustomStringConvertible {
    case notInitialised(String)
    case alreadyInitialised(String)
    case newerSchema(String)
    case olderSchema(String, String)
    case logFile(String, String)

    public var description: String {
        switch self {
        case .notInitialised(let d): "no store at \(d) (run `aislectl init --store \(d)` first)"
        case .alreadyInitialised(let d): "a store already exists at \(d)"
        case .newerSchema(let d): "the store at \(d) was written by a newer Aisle; upgrade this one"
        case .olderSchema(let d, let why): "the store at \(d) has an older schema and could not be upgraded (\(why)); start the agent or run this as the store's owner"
        case .logFile(let f, let why): "\(f): \(why) (the served recommendations' log: move it aside, with its -wal and -shm files, and a new one is started)"
        }
    }
}

/// One agent's store: a directory holding the SQLite database (WAL), the served slates' log
/// (``RecommendationLog``, a database file of its own) and the store secret.
///
/// Every process opens it through this type, so pragmas, busy handling and migrations are the
/// same for the agent and the CLI. Writers from several processes are serialised by SQLite;
/// readers never block.
public struct Store: Sendable {
    public let directory: URL
    public let database: DatabasePool

    public static let databaseName = "store.sqlite"

    /// The key files beside the database: the pseudonym secret (`Pseudonymizer`) and the sync
    /// identity (`SyncIdentity`), its owner's alone.
    public static let secretFileName = "secret", syncIdentityFileName = "sync-identity"

    /// How durable a commit is. `full` fsyncs every transaction (the agent: an acknowledged
    /// event survives power loss) and keeps memory small and bounded — no memory-mapped reads,
    /// an 8 MiB page cache per connection, two readers — so the agent stays within its budget
    /// however much of the store a query touches; `normal` may lose the last
    /// transactions on power loss but never corrupts, and uses a large page cache (bulk
    /// imports, which can be re-run idempotently).
    public enum Durability: Sendable { case full, normal }

    /// The newest schema version this build knows (its last migration).
    public static var schemaVersion: String { Schema.migrator.migrations.last ?? "none" }

    /// Opens an existing store and brings its schema up to date.
    public static func open(at directory: URL, durability: Durability = .full, readOnly: Bool = false) throws -> Store {
        let file = directory.appendingPathComponent(databaseName)
        guard FileManager.default.fileExists(atPath: file.path) else {
            throw StoreError.notInitialised(directory.path)
        }
        /// An older schema, or no log file (a store from before it had one, or its log deleted) or
        /// one without its tables (a crash as it was made): brought up to date once (a writer's
        /// job), then read.
        func upgradedThenRead() throws -> Store {
            do { try open(at: directory, durability: durability).close() } catch let error as DatabaseError where error.isDamagedFile {
                throw error  // a damaged file, not an old one
            } catch {
                throw StoreError.olderSchema(directory.path, "\(error)")
            }
            return try open(at: directory, durability: durability, readOnly: true)
        }
        if readOnly, !FileManager.default.fileExists(atPath: directory.appendingPathComponent(RecommendationLog.fileName).path) {
            return try upgradedThenRead()
        }
        if !readOnly { try RecommendationLog.prepareFile(in: directory) }
        let pool = try DatabasePool(path: file.path, configuration: configuration(durability, readOnly: readOnly, directory: directory))
        // GRDB sets the writer to NORMAL when it turns WAL on, after `prepareDatabase`.
        if !readOnly, durability == .full { try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA synchronous = FULL") } }
        let migrator = Schema.migrator
        if try pool.read({ try migrator.hasBeenSuperseded($0) }) {
            throw StoreError.newerSchema(directory.path)
        }
        if !readOnly { try migrate(pool, in: directory) }
        if readOnly, try !pool.read({ try migrator.hasCompletedMigrations($0) && $0.tableExists("rec_slates", in: RecommendationLog.schemaName) }) {
            try pool.close()
            return try upgradedThenRead()
        }
        return Store(directory: directory, database: pool)
    }

    /// Runs the migrations; the slate log the store held before v16 is copied into the log
    /// file first, in a transaction of its own (``RecommendationLog/copyFromStore(in:)``), and
    /// the log's session keys are rewritten before v19 rewrites the store's (``SessionKeys``).
    private static func migrate(_ pool: DatabasePool, in directory: URL) throws {
        let migrator = Schema.migrator(in: directory)
        let applied = try pool.read(migrator.appliedIdentifiers)
        if !applied.contains(Schema.logFileMigration) {
            if !applied.contains(Schema.slateRowsMigration) { try migrator.migrate(pool, upTo: Schema.slateRowsMigration) }
            try RecommendationLog.copyFromStore(in: directory)
        }
        guard !applied.contains(Schema.sessionKeysMigration) else { return try migrator.migrate(pool) }
        try SessionKeys.rewriteLog(in: directory)
        // The keys as sent in v19's temporary map and statement journal: in memory, not in a file.
        try pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA temp_store = MEMORY") }
        defer { _ = try? pool.writeWithoutTransaction { try $0.execute(sql: "PRAGMA temp_store = DEFAULT") } }
        try migrator.migrate(pool)
        _ = try? pool.writeWithoutTransaction { try $0.checkpoint(.truncate) }  // the old frames held the keys as sent
    }

    /// A second, read-only pool of two connections for the reads on a kiosk request's path, so a
    /// lookup never waits for a reader held by the agent's background work (an index rebuild, a
    /// whole insight computation, training). The caller closes it.
    public func requestReader() throws -> DatabasePool {
        let file = directory.appendingPathComponent(Self.databaseName)
        return try DatabasePool(path: file.path, configuration: Self.configuration(.full, readOnly: true, directory: directory))
    }

    /// The connection settings every open of a store uses.
    static func configuration(_ durability: Durability, readOnly: Bool, directory: URL) -> Configuration {
        var config = Configuration()
        config.busyMode = .timeout(30)
        config.readonly = readOnly
        config.foreignKeysEnabled = durability == .full
        config.label = "aisle-store"
        if durability == .full { config.maximumReaderCount = 2 }
        let logFile = directory.appendingPathComponent(RecommendationLog.fileName).path
        config.prepareDatabase { db in
            // Deleted and rewritten rows are zeroed where that costs no extra I/O (a customer's
            // erasure turns it fully on; docs/PRIVACY.md).
            try db.execute(sql: "PRAGMA secure_delete = FAST")
            // Readers see the slate log's tables; the writer does not attach it, since its
            // transactions (BEGIN IMMEDIATE) would lock the log's file too.
            if db.configuration.readonly {
                _ = try db.tableExists("events")  // the store's own file first: an error there is not the log's
                do {
                    try db.execute(sql: "ATTACH DATABASE ? AS \(RecommendationLog.schemaName)", arguments: [logFile])
                    _ = try db.tableExists("rec_slates", in: RecommendationLog.schemaName)  // reads the file's header and schema
                } catch let error as DatabaseError {
                    throw StoreError.logFile(logFile, error.message ?? "\(error.resultCode)")
                }
            }
            switch durability {
            case .full:
                // The write-ahead log is cut back to 64 MiB after a checkpoint: a long read (training
                // reads for minutes) lets it grow past that, and it would keep that size.
                try db.execute(sql: "PRAGMA synchronous = FULL; PRAGMA mmap_size = 0; PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 16384; PRAGMA journal_size_limit = 67108864")
            case .normal:
                try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA mmap_size = 1073741824; PRAGMA cache_size = -131072; PRAGMA wal_autocheckpoint = 32768")
            }
        }
        return config
    }

    /// Creates the database of a new store (the directory must exist).
    public static func create(at directory: URL) throws -> Store {
        let file = directory.appendingPathComponent(databaseName)
        guard !FileManager.default.fileExists(atPath: file.path) else {
            throw StoreError.alreadyInitialised(directory.path)
        }
        // An earlier store's log would name this one's customers by ids it gives to others.
        let log = directory.appendingPathComponent(RecommendationLog.fileName).path
        guard !FileManager.default.fileExists(atPath: log) else {
            throw StoreError.logFile(log, "left from an earlier store")
        }
        // Created in place, exclusively, at most 0640 from the start: no moment readable by others,
        // and of two `init`s at once one fails instead of replacing the other's file.
        let fd = Foundation.open(file.path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o640)
        guard fd >= 0 else {
            if errno == EEXIST { throw StoreError.alreadyInitialised(directory.path) }
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path, NSLocalizedDescriptionKey: String(cString: strerror(errno))])
        }
        fchmod(fd, 0o640)  // the mode asked for, whatever the umask took away
        Foundation.close(fd)
        let store = try open(at: directory)
        try store.database.write { db in
            try db.execute(sql: "INSERT INTO meta(key, value) VALUES ('created_at', ?)", arguments: [Int64(Date().timeIntervalSince1970)])
        }
        return store
    }

    /// Records an admin action in the audit log.
    public func audit(_ action: String, detail: String? = nil, actor: String = Store.currentActor) throws {
        try database.write { try Store.audit($0, action, detail: detail, actor: actor) }
    }

    /// Records an admin action in the audit log, inside the caller's transaction.
    public static func audit(_ db: Database, _ action: String, detail: String? = nil, actor: String = Store.currentActor) throws {
        try db.execute(
            sql: "INSERT INTO audit_log(ts, actor, action, detail) VALUES (?, ?, ?, ?)",
            arguments: [Int64(Date().timeIntervalSince1970), actor, action, detail])
    }

    /// The operating-system user running this process, for the audit log.
    public static var currentActor: String {
        let env = ProcessInfo.processInfo.environment
        return env["SUDO_USER"] ?? env["USER"] ?? "uid-\(getuid())"
    }

    /// Bytes the databases take on disk: the store's and the slate log's, each with its
    /// write-ahead log.
    public var diskBytes: Int64 {
        [Self.databaseName, Self.databaseName + "-wal", RecommendationLog.fileName, RecommendationLog.fileName + "-wal"].reduce(Int64(0)) { total, name in
            let path = directory.appendingPathComponent(name).path
            let attrs = try? FileManager.default.attributesOfItem(atPath: path)
            return total + ((attrs?[.size] as? NSNumber)?.int64Value ?? 0)
        }
    }

    /// The store's directory (that others may enter, or its group write: the secret and the WAL
    /// could be replaced), database files (that others may read or write) and key files (that
    /// anyone but their owner may), with their modes — a copy restored without its modes, say;
    /// symbolic links followed. Empty when none.
    public var openToOthers: [(name: String, mode: Int)] {
        var checks = [(name: ".", bits: mode_t(0o027))]
        for file in [Self.databaseName, RecommendationLog.fileName] { checks += [file, file + "-wal", file + "-shm"].map { ($0, 0o007) } }
        checks += [Self.secretFileName, Self.syncIdentityFileName].map { ($0, 0o077) }
        var open: [(name: String, mode: Int)] = []
        for (name, bits) in checks {
            var info = stat()
            guard stat(directory.appendingPathComponent(name).path, &info) == 0, info.st_mode & bits != 0 else { continue }
            open.append((name == "." ? directory.lastPathComponent + "/" : name, Int(info.st_mode & 0o777)))
        }
        return open
    }

    /// Closes the database, checkpointing the WAL.
    public func close() throws { try database.close() }
}

extension DatabaseError {
    /// The file is not a database or is corrupt: damage, which no upgrade or retry mends.
    public var isDamagedFile: Bool { [.SQLITE_NOTADB, .SQLITE_CORRUPT].contains(resultCode.primaryResultCode) }
}
