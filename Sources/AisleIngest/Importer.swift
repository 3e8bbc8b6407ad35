import AisleCore
import AisleStore
import Foundation
import GRDB
import Synchronization

/// One parsed input record.
public enum ImportRecord: Sendable {
    case event(IncomingEvent, ItemHint?)
    case catalog(CatalogEntry)
}

/// A record ready for the writer.
enum PreparedRecord: Sendable {
    case event(PreparedEvent)
    case catalog(CatalogEntry)
}

/// Parses one line (given its bytes and number); nil skips it (a header, a blank line).
public typealias LineParser = (UnsafeBufferPointer<UInt8>, Int) -> Result<ImportRecord, FieldError>?

/// A refused input line: where, which field, and why. Never holds the line itself, which may
/// carry a raw customer identifier.
public struct Reject: Codable, Sendable, Equatable {
    public var file: String
    public var line: Int
    public var field: String?
    public var reason: String
}

/// How an import runs.
public struct ImportOptions: Sendable {
    /// Lines per transaction.
    public var batchSize = 50_000
    /// Where to write every reject as JSON Lines, if anywhere.
    public var rejectsPath: String?
    /// No progress output.
    public var quiet = false
    public init() {}
}

/// The summary printed after an import.
public struct ImportReport: Codable, Sendable {
    public var runID: Int64
    public var kind: String
    public var source: String
    public var status: String
    public var lines = 0
    public var accepted = 0
    public var duplicates = 0
    public var rejected = 0
    public var returns = 0
    public var returnsLinked = 0
    public var anonymousPurchases = 0
    public var itemsCreated = 0
    public var customersCreated = 0
    public var catalogUpdated = 0
    public var outliersFlagged = 0
    public var seconds = 0.0
    public var linesPerSecond = 0.0
    /// Rejects counted by reason (field and reason, without values).
    public var rejectReasons: [String: Int] = [:]
    /// The first rejects, for display; all of them are in the store and in `--rejects`.
    public var firstRejects: [Reject] = []
}

/// Drives one import run: batches records into transactions, records the run and its rejects
/// in the store, reports progress, and flags outliers at the end.
///
/// Each batch commits atomically together with the run's counters, so a run killed at any
/// point leaves a consistent store; running the same import again completes it, because
/// every event carries an idempotency key.
public final class Importer {
    private let store: Store
    private var writer = EventWriter(tier: Tiers.settled)
    private let pseudonymizer: Pseudonymizer
    private let options: ImportOptions
    private var pending: [Entry] = []
    private var pendingRejects: [Reject] = []
    private var report: ImportReport
    private let started = Date()
    private let now = Int64(Date().timeIntervalSince1970)
    private var rejectsFile: FileHandle?
    private static let rejectEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    public init(store: Store, pseudonymizer: Pseudonymizer, kind: String, source: String, options: ImportOptions) throws {
        self.store = store
        self.options = options
        self.pseudonymizer = pseudonymizer
        let pid = Int64(getpid())
        let now = self.now
        let runID = try store.database.write { db -> Int64 in
            try Self.markInterruptedRuns(db)
            try db.execute(
                sql: "INSERT INTO import_runs(kind, source, pid, started_at, status) VALUES (?, ?, ?, ?, 'running')",
                arguments: [kind, source, pid, now])
            return db.lastInsertedRowID
        }
        report = ImportReport(runID: runID, kind: kind, source: source, status: "running")
        if let path = options.rejectsPath {
            guard FileManager.default.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o640]),
                let handle = FileHandle(forWritingAtPath: path)
            else { throw InputFileError(path: path, reason: "cannot create the rejects file") }
            rejectsFile = handle
        }
    }

    /// Runs still marked `running` whose process is gone were killed: mark them interrupted.
    static func markInterruptedRuns(_ db: Database) throws {
        for row in try Row.fetchAll(db, sql: "SELECT id, pid FROM import_runs WHERE status = 'running'") {
            let pid: Int32 = row["pid"]
            if kill(pid, 0) != 0 && errno == ESRCH {
                try db.execute(sql: "UPDATE import_runs SET status = 'interrupted' WHERE id = ?", arguments: [row["id"] as Int64])
            }
        }
    }

    /// One parsed line on its way to the writer.
    typealias Entry = (line: Int, file: String, record: Result<PreparedRecord, FieldError>)

    /// Reads every line of the file at `path` and writes what `makeParser()`'s parser makes of
    /// each. Reading, parsing, pseudonymising and hashing run on a second thread, ahead of the
    /// database writer on this one.
    public func importLines(path: String, label: String, makeParser: @escaping @Sendable () -> LineParser) throws {
        let file = URL(fileURLWithPath: path).lastPathComponent
        let channel = BatchChannel()
        let pseudonymizer = self.pseudonymizer
        let producer = Thread {
            var batch: [Entry] = [], opened: LineReader?
            // The lines so far, with how far into the file they reach (for progress).
            func sendBatch() -> Bool { channel.send(.batch(batch, bytes: opened?.bytesRead ?? 0, total: opened?.fileSize ?? 0)) }
            do {
                let reader = try LineReader(path: path)
                opened = reader
                let parse = makeParser()
                var preparer = EventPreparer(pseudonymizer: pseudonymizer)
                while let parsed = try reader.next({ parse($0, reader.lineNumber) }) {
                    guard let record = parsed else { continue }
                    let prepared = record.map { r -> PreparedRecord in
                        switch r {
                        case .event(let e, let hint): .event(preparer.prepare(e, hint: hint))
                        case .catalog(let c): .catalog(c)
                        }
                    }
                    batch.append((reader.lineNumber, file, prepared))
                    if batch.count == 2_000 {
                        guard sendBatch() else { return }
                        batch.removeAll(keepingCapacity: true)
                    }
                }
                _ = sendBatch()
                _ = channel.send(.end)
            } catch {
                // The lines read before the error are written, then the error is reported.
                if !batch.isEmpty { _ = sendBatch() }
                _ = channel.send(.failed(error))
            }
        }
        producer.stackSize = 8 << 20
        producer.start()
        defer { channel.cancel() }
        var progress: ProgressReporter?
        loop: while true {
            switch channel.receive() {
            case .batch(let entries, let bytes, let total):
                if progress == nil { progress = ProgressReporter(label: label, totalBytes: total, quiet: options.quiet) }
                for entry in entries { try add(entry) }
                progress?.update(count: report.lines, bytes: bytes)
            case .end: break loop
            case .failed(let error):
                try flush()
                progress?.finish()
                throw error
            }
        }
        try flush()
        progress?.finish()
    }

    private func add(_ entry: Entry) throws {
        report.lines += 1
        pending.append(entry)
        if pending.count >= options.batchSize { try flush() }
    }

    /// Counts a reject that happened outside a line stream (a bad invoice header, say).
    public func reject(line: Int, file: String, _ error: FieldError) throws {
        try add((line, file, .failure(error)))
    }

    private func flush() throws {
        guard !pending.isEmpty else { return }
        let batch = pending
        pending.removeAll(keepingCapacity: true)
        var rejects: [Reject] = []
        var catalogUpdated = 0
        let before = writer.counts
        do {
            try store.database.write { db in
                var events: [PreparedEvent] = []
                for (line, file, record) in batch {
                    switch record {
                    case .failure(let e):
                        rejects.append(Reject(file: file, line: line, field: e.field, reason: e.reason))
                    case .success(.event(let event)):
                        events.append(event)
                    case .success(.catalog(let entry)):
                        if try CatalogWriter.write(entry, now: now, db: db) { catalogUpdated += 1 }
                    }
                }
                _ = try writer.write(events, runID: report.runID, now: now, db: db)
                try writer.finishTransaction(db)
                let insert = try db.cachedStatement(sql: "INSERT INTO import_rejects(run_id, line, field, reason) VALUES (?, ?, ?, ?)")
                for r in rejects { try insert.execute(arguments: [report.runID, r.line, r.field, "\(r.file): \(r.reason)"]) }
                let c = writer.counts
                try db.execute(
                    sql: """
                        UPDATE import_runs SET lines = lines + ?, accepted = accepted + ?, duplicates = duplicates + ?,
                        rejected = rejected + ? WHERE id = ?
                        """,
                    arguments: [
                        batch.count, c.accepted - before.accepted + catalogUpdated, c.duplicates - before.duplicates,
                        rejects.count, report.runID,
                    ])
            }
        } catch {
            writer.resetCaches()
            throw error
        }
        report.catalogUpdated += catalogUpdated
        for r in rejects {
            report.rejected += 1
            report.rejectReasons["\(r.field ?? "line"): \(r.reason)", default: 0] += 1
            if report.firstRejects.count < 20 { report.firstRejects.append(r) }
            if let rejectsFile, let data = try? Self.rejectEncoder.encode(r) {
                rejectsFile.write(data + Data("\n".utf8))
            }
        }
    }

    /// Flags outliers, closes the run and returns its report.
    public func finish() throws -> ImportReport {
        try flush()
        let c = writer.counts
        let touched = writer.touchedItems  // duplicates' items too
        report.accepted = c.accepted + report.catalogUpdated
        report.duplicates = report.lines - report.rejected - report.accepted
        report.returns = c.returns
        report.returnsLinked = c.returnsLinked
        report.anonymousPurchases = c.anonymousPurchases
        report.itemsCreated = c.itemsCreated
        report.customersCreated = c.customersCreated
        report.outliersFlagged = try store.database.write { db in try OutlierFlagger.flag(items: touched, db: db) }
        report.status = "completed"
        report.seconds = Date().timeIntervalSince(started)
        report.linesPerSecond = Double(report.lines) / max(report.seconds, 1e-9)
        let summary = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        let finished = Int64(Date().timeIntervalSince1970)
        // Committed with a sync of the write-ahead log even when the import ran without (it makes
        // every earlier commit durable too): "completed" is not said of what a power cut could undo.
        try store.database.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(
                sql: "UPDATE import_runs SET status = 'completed', finished_at = ?, summary = ? WHERE id = ?",
                arguments: [finished, summary, report.runID])
        }
        try? rejectsFile?.close()
        return report
    }

    /// Marks the run failed (the batches already committed stay).
    public func fail(_ error: Error) {
        try? rejectsFile?.close()
        let finished = Int64(Date().timeIntervalSince1970)
        try? store.database.write { db in
            try db.execute(
                sql: "UPDATE import_runs SET status = 'failed', finished_at = ?, summary = ? WHERE id = ?",
                arguments: [finished, "\(error)", report.runID])
        }
    }
}

/// Applies catalog entries.
enum CatalogWriter {
    /// Inserts or updates the item; records a price point when the price changes. Returns
    /// whether anything changed.
    static func write(_ entry: CatalogEntry, now: Int64, db: Database) throws -> Bool {
        let old = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT id, title, category, price, active, sellable, in_stock FROM items WHERE sku = ?"),
            arguments: [entry.item])
        let active = entry.active ?? (old?["active"] as Bool?) ?? true
        let sellable = entry.sellable ?? (old?["sellable"] as Bool?) ?? true
        let inStock = entry.inStock ?? (old?["in_stock"] as Bool?) ?? true
        let category = entry.category.map { $0.isEmpty ? nil : $0 } ?? (old?["category"] as String?)
        let price = entry.price ?? (old?["price"] as Double?)
        if let old, old["title"] as String == entry.title, old["category"] as String? == category,
            old["price"] as Double? == price, old["active"] as Bool == active, old["sellable"] as Bool == sellable,
            old["in_stock"] as Bool == inStock
        {
            return false
        }
        let id = try Int64.fetchOne(
            db.cachedStatement(sql: """
                INSERT INTO items(sku, title, category, price, active, sellable, in_stock) VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(sku) DO UPDATE SET title = excluded.title, category = excluded.category,
                    price = excluded.price, active = excluded.active, sellable = excluded.sellable, in_stock = excluded.in_stock
                RETURNING id
                """), arguments: [entry.item, entry.title, category, price, active, sellable, inStock])
        if let id, let p = entry.price, p != (old?["price"] as Double?) {
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO item_prices(item_id, ts, price) VALUES (?, ?, ?)")
                .execute(arguments: [id, now, p])
        }
        return true
    }
}

/// Hands batches from the reading thread to the writing one, at most two ahead.
final class BatchChannel: Sendable {
    enum Message: Sendable {
        case batch([Importer.Entry], bytes: Int64, total: Int64)
        case end
        case failed(any Error)
    }

    // Semaphores start at zero and are signalled up: libdispatch traps when a semaphore is
    // freed with a value below the one it was created with.
    private let slots = DispatchSemaphore(value: 0)
    private let ready = DispatchSemaphore(value: 0)
    private let queue = Mutex<(messages: [Message], cancelled: Bool)>(([], false))

    init() {
        slots.signal()
        slots.signal()
    }

    /// Queues a message, waiting for room; false once the receiver has gone.
    func send(_ m: Message) -> Bool {
        slots.wait()
        let open = queue.withLock { q in
            if !q.cancelled { q.messages.append(m) }
            return !q.cancelled
        }
        if open { ready.signal() }
        return open
    }

    func receive() -> Message {
        ready.wait()
        let m = queue.withLock { $0.messages.removeFirst() }
        slots.signal()
        return m
    }

    /// The receiver is done: release a sender that waits for room.
    func cancel() {
        queue.withLock { $0.cancelled = true }
        slots.signal()
    }
}
