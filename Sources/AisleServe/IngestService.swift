import AisleCore
import AisleIngest
import AisleStore
import Foundation
import GRDB
import Metrics
import Synchronization

/// The result for one event of a `POST /v1/events` batch.
public struct EventResult: Sendable, Equatable {
    public var index: Int
    public var status: String
    public var field: String?
    public var reason: String?
}

/// The answer to a `POST /v1/events` batch.
public struct IngestResponse: Sendable {
    public var accepted: Int
    public var duplicates: Int
    public var rejected: Int
    public var results: [EventResult]

    /// The JSON body, written directly: a batch answer has one entry per event, and a generic
    /// encoder would spend longer on it than the store spends on the events.
    public var json: [UInt8] {
        var out = Array("{\"accepted\":\(accepted),\"duplicates\":\(duplicates),\"rejected\":\(rejected),\"results\":[".utf8)
        out.reserveCapacity(out.count + results.count * 40)
        for (n, r) in results.enumerated() {
            if n > 0 { out.append(UInt8(ascii: ",")) }
            out.append(contentsOf: "{\"index\":\(r.index),\"status\":\"\(r.status)\"".utf8)
            if let field = r.field { out.append(contentsOf: ",\"field\":".utf8 + JSONText.quoted(field)) }
            if let reason = r.reason { out.append(contentsOf: ",\"reason\":".utf8 + JSONText.quoted(reason)) }
            out.append(UInt8(ascii: "}"))
        }
        out.append(contentsOf: "]}".utf8)
        return out
    }
}

/// Validates event batches and serialises their writes into the store, one transaction per
/// batch. The answer is sent only after the transaction is durable (synchronous = FULL).
public struct IngestService: Sendable {
    private let writer: StoreWriter
    private let pseudonymizer: Pseudonymizer

    public init(store: Store, pseudonymizer: Pseudonymizer) {
        writer = StoreWriter(store: store)
        self.pseudonymizer = pseudonymizer
    }

    /// Validates and writes a batch: every valid event is kept, every invalid one is answered
    /// with its field and reason. Validation and hashing run on the caller's task, in
    /// parallel with other requests; only the write is serialised.
    public func ingest(_ values: [JSONValue]) async throws -> IngestResponse {
        var results: [EventResult] = []
        results.reserveCapacity(values.count)
        var valid: [(Int, PreparedEvent)] = []
        var preparer = EventPreparer(pseudonymizer: pseudonymizer)
        for (i, v) in values.enumerated() {
            do throws(FieldError) {
                valid.append((i, preparer.prepare(try Interchange.event(from: v))))
                results.append(EventResult(index: i, status: "accepted"))
            } catch {
                results.append(EventResult(index: i, status: "rejected", field: error.field, reason: error.reason))
            }
        }
        let outcomes = try await writer.write(valid.map(\.1))
        for ((i, _), outcome) in zip(valid, outcomes) where outcome == .duplicate {
            results[i].status = "duplicate"
        }
        let counts = results.reduce(into: [String: Int]()) { $0[$1.status, default: 0] += 1 }
        Counter(label: "aisle_events_ingested_total", dimensions: [("outcome", "accepted")]).increment(by: counts["accepted", default: 0])
        Counter(label: "aisle_events_ingested_total", dimensions: [("outcome", "duplicate")]).increment(by: counts["duplicate", default: 0])
        Counter(label: "aisle_events_ingested_total", dimensions: [("outcome", "rejected")]).increment(by: counts["rejected", default: 0])
        return IngestResponse(
            accepted: counts["accepted", default: 0], duplicates: counts["duplicate", default: 0],
            rejected: counts["rejected", default: 0], results: results)
    }
}

/// The store cannot take more now: too many events already wait for the writer (a slow disk,
/// a long lock). Nothing of the batch was written; send it again shortly.
public struct StoreBusy: Error, CustomStringConvertible {
    public var waiting: Int
    public var description: String { "\(waiting) events already wait to be written; send the batch again shortly" }
}

/// The agent's single writer, with group commit: batches that arrive while a transaction is
/// being written wait and then go together into the next one (up to ``perTransaction``
/// events), so concurrent tills share one commit (and one fsync) instead of queueing for one
/// each. At most ``maxWaiting`` events wait: past that a batch is refused (``StoreBusy``)
/// rather than held in memory while tills send it again and again.
final class StoreWriter: Sendable {
    private struct Job: Sendable {
        var events: [PreparedEvent]
        var done: CheckedContinuation<[EventOutcome], any Error>
    }

    private let store: Store
    private let queue = WorkQueue<Job>(label: "aisle.store-writer")
    /// Events submitted and not yet taken into a transaction, and those taken so far.
    private let waiting = Atomic<Int>(0), taken = Atomic<Int>(0)
    var waitingEvents: Int { waiting.load(ordering: .relaxed) }
    var takenEvents: Int { taken.load(ordering: .relaxed) }
    static let maxWaiting = 100_000, perTransaction = 20_000
    private let maxWaiting: Int
    private let writer = Mutex(EventWriter(tier: Tiers.recent))
    /// The outlier passes, one at a time, off the writer's thread (at nice 19, and counted by
    /// ``Blocking/drained(within:)`` so that shutdown does not close the store under one).
    private let flagging = Mutex(TaskChain())
    /// Recent-tier events since the last settling (an estimate; settling re-reads the count).
    private let recent = Mutex<Int?>(nil)
    /// Settle once this many events wait in the recent tier, in transactions of this size.
    static let settleBatch = 50_000
    private let settleBatch: Int

    init(store: Store, settleBatch: Int = StoreWriter.settleBatch, maxWaiting: Int = StoreWriter.maxWaiting) {
        (self.store, self.settleBatch, self.maxWaiting) = (store, settleBatch, maxWaiting)
    }

    func write(_ events: [PreparedEvent]) async throws -> [EventOutcome] {
        let before = waiting.add(events.count, ordering: .relaxed).oldValue
        guard before == 0 || before + events.count <= maxWaiting else {
            waiting.subtract(events.count, ordering: .relaxed)
            throw StoreBusy(waiting: before)
        }
        return try await withCheckedThrowingContinuation { done in
            queue.submit(Job(events: events, done: done)) { self.drain() }
        }
    }

    /// Writes queued jobs, a transaction per round of at most ``perTransaction`` events (one
    /// job at least), until the queue is empty.
    private func drain() {
        while true {
            let jobs = queue.take { queued in
                var (count, n) = (0, 0)
                while n < queued.count, n == 0 || count + queued[n].events.count <= Self.perTransaction {
                    count += queued[n].events.count
                    n += 1
                }
                defer { queued.removeFirst(n) }
                return Array(queued.prefix(n))
            }
            guard !jobs.isEmpty else { return }
            let count = jobs.reduce(0) { $0 + $1.events.count }
            waiting.subtract(count, ordering: .relaxed)
            taken.add(count, ordering: .relaxed)
            let now = Int64(Date().timeIntervalSince1970)
            let result = writer.withLock { writer in
                Result {
                    try store.database.write { db in
                        let outcomes = try jobs.map { try writer.write($0.events, now: now, db: db) }
                        try writer.finishTransaction(db)
                        return outcomes
                    }
                }.mapError { error in
                    writer.resetCaches()
                    return error
                }
            }
            switch result {
            case .success(let outcomes): for (job, o) in zip(jobs, outcomes) { job.done.resume(returning: o) }
            case .failure(let error): for job in jobs { job.done.resume(throwing: error) }
            }
            settleIfDue(added: jobs.reduce(0) { $0 + $1.events.count })
        }
    }

    /// Flags the outliers of the items the agent's events touched since the last pass, as an
    /// import flags its own: the lines are read in a read transaction (a whole-table scan, seconds
    /// on a large store, which ingest does not wait for) and only changed flags are written.
    private func flagOutliers() {
        let touched = writer.withLock { $0.takeTouchedItems() }
        guard !touched.isEmpty else { return }
        flagging.withLock { chain in
            _ = chain.append { [self] in
                let failed = await Blocking.background { [store] () -> Bool in
                    do {
                        let found = try store.database.read { try OutlierFlagger.changes(items: touched, db: $0) }
                        // The write at normal priority: starved at nice 19 it would hold the store's writer.
                        if !found.changes.isEmpty { try Scheduling.atNormalPriority { try store.database.write { try OutlierFlagger.apply(found.changes, db: $0) } } }
                        return false
                    } catch { return true }
                }
                if failed { writer.withLock { $0.touch(touched) } }  // tried again at the next settling
            }
        }
    }

    /// Moves recent events into the settled tier once enough have gathered (see ``Tiers``),
    /// a batch per transaction so queued requests wait at most one batch.
    private func settleIfDue(added: Int) {
        let due = recent.withLock { count -> Bool in
            let total = (count ?? (try? store.database.read { try Tiers.recentCount($0) }) ?? 0) + added
            count = total
            return total >= settleBatch
        }
        guard due else { return }
        do {
            let moved = try store.database.write { [settleBatch] in try Tiers.settle($0, limit: settleBatch) }
            recent.withLock { $0 = max(0, ($0 ?? 0) - moved) }
            flagOutliers()
        } catch {
            recent.withLock { $0 = nil }  // re-read next time
        }
    }
}
