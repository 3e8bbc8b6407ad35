import AisleCore
import AisleStore
import Foundation
import GRDB

/// One parsed input record.
public enum ImportRecord: Sendable {
    case event(IncomingEvent, ItemHint?)
    case catalog(CatalogEntry)
}

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
    public var batchSize = 5_000
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
    private var writer: EventWriter
    private let options: ImportOptions
    private var pending: [(line: Int, file: String, record: Result<ImportRecord, FieldError>)] = []
    private var pendingRejects: [Reject] = []
    private var report: ImportReport
    private let started = Date()
    private let now = Int64(Date().timeIntervalSince1970)
    private var rejectsFile: FileHandle?
    private var progress: ProgressReporter?
    private static let rejectEncoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    public init(store: Store, pseudonymizer: Pseudonymizer, kind: String, source: String, options: ImportOptions) throws {
        self.store = store
        self.options = options
        writer = EventWriter(pseudonymizer: pseudonymizer)
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

    /// Reads every line of `reader`, parsing each with `parse` (nil = skip, e.g. a header).
    public func importLines(
        from reader: LineReader, label: String,
        parse: (UnsafeBufferPointer<UInt8>, Int) -> Result<ImportRecord, FieldError>?
    ) throws {
        let file = URL(fileURLWithPath: reader.path).lastPathComponent
        progress = ProgressReporter(label: label, totalBytes: reader.fileSize, quiet: options.quiet)
        while let parsed = try reader.next({ parse($0, reader.lineNumber) }) {
            guard let record = parsed else { continue }
            try add(line: reader.lineNumber, file: file, record)
            if pending.isEmpty { progress?.update(count: report.lines, bytes: reader.bytesRead) }
        }
        try flush()
        progress?.finish()
    }

    /// Adds one record (or its error) from `file` at `line`.
    public func add(line: Int, file: String, _ record: Result<ImportRecord, FieldError>) throws {
        report.lines += 1
        pending.append((line, file, record))
        if pending.count >= options.batchSize { try flush() }
    }

    /// Counts a reject that happened outside the record stream (a bad invoice header, say).
    public func reject(line: Int, file: String, _ error: FieldError) throws {
        try add(line: line, file: file, .failure(error))
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
                for (line, file, record) in batch {
                    switch record {
                    case .failure(let e):
                        rejects.append(Reject(file: file, line: line, field: e.field, reason: e.reason))
                    case .success(.event(let event, let hint)):
                        _ = try writer.write(event, hint: hint, runID: report.runID, now: now, db: db)
                    case .success(.catalog(let entry)):
                        if try CatalogWriter.write(entry, now: now, db: db) { catalogUpdated += 1 }
                    }
                }
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
        let touched = writer.touchedItems
        let c = writer.counts
        report.accepted = c.accepted + report.catalogUpdated
        report.duplicates = report.lines - report.rejected - report.accepted
        report.returns = c.returns
        report.returnsLinked = c.returnsLinked
        report.anonymousPurchases = c.anonymousPurchases
        report.itemsCreated = c.itemsCreated
        report.customersCreated = c.customersCreated
        report.status = "completed"
        report.seconds = Date().timeIntervalSince(started)
        report.linesPerSecond = Double(report.lines) / max(report.seconds, 1e-9)
        let summary = String(decoding: try JSONEncoder().encode(report), as: UTF8.self)
        let finished = Int64(Date().timeIntervalSince1970)
        report.outliersFlagged = try store.database.write { db in
            let flagged = try OutlierFlagger.flag(items: touched, db: db)
            try db.execute(
                sql: "UPDATE import_runs SET status = 'completed', finished_at = ?, summary = ? WHERE id = ?",
                arguments: [finished, summary, report.runID])
            return flagged
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
            db.cachedStatement(sql: "SELECT id, title, category, price, active, sellable FROM items WHERE sku = ?"),
            arguments: [entry.item])
        let active = entry.active ?? (old?["active"] as Bool?) ?? true
        let sellable = entry.sellable ?? (old?["sellable"] as Bool?) ?? true
        let price = entry.price ?? (old?["price"] as Double?)
        if let old, old["title"] as String == entry.title, old["category"] as String? == entry.category,
            old["price"] as Double? == price, old["active"] as Bool == active, old["sellable"] as Bool == sellable
        {
            return false
        }
        let id = try Int64.fetchOne(
            db.cachedStatement(sql: """
                INSERT INTO items(sku, title, category, price, active, sellable) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT(sku) DO UPDATE SET title = excluded.title, category = excluded.category,
                    price = excluded.price, active = excluded.active, sellable = excluded.sellable
                RETURNING id
                """), arguments: [entry.item, entry.title, entry.category, price, active, sellable])
        if let id, let p = entry.price, p != (old?["price"] as Double?) {
            try db.cachedStatement(sql: "INSERT OR REPLACE INTO item_prices(item_id, ts, price) VALUES (?, ?, ?)")
                .execute(arguments: [id, now, p])
        }
        return true
    }
}
