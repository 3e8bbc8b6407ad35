import AisleCore
import AisleIngest
import AisleStore
import Foundation
import GRDB
import Metrics

/// The result for one event of a `POST /v1/events` batch.
public struct EventResult: Codable, Sendable, Equatable {
    public var index: Int
    public var status: String
    public var field: String?
    public var reason: String?
}

/// The answer to a `POST /v1/events` batch.
public struct IngestResponse: Codable, Sendable {
    public var accepted: Int
    public var duplicates: Int
    public var rejected: Int
    public var results: [EventResult]
}

/// Serialises event writes from the socket into the store, one transaction per batch.
/// The answer is sent only after the transaction is durable (synchronous = FULL).
public actor IngestService {
    private let store: Store
    private var writer = EventWriter()
    private var preparer: EventPreparer
    private let accepted = Counter(label: "aisle_events_ingested_total", dimensions: [("outcome", "accepted")])
    private let duplicates = Counter(label: "aisle_events_ingested_total", dimensions: [("outcome", "duplicate")])
    private let rejected = Counter(label: "aisle_events_ingested_total", dimensions: [("outcome", "rejected")])

    public init(store: Store, pseudonymizer: Pseudonymizer) {
        self.store = store
        preparer = EventPreparer(pseudonymizer: pseudonymizer)
    }

    /// Validates and writes a batch: every valid event is kept, every invalid one is answered
    /// with its field and reason.
    public func ingest(_ values: [JSONValue]) throws -> IngestResponse {
        var results: [EventResult] = []
        results.reserveCapacity(values.count)
        var valid: [(Int, PreparedEvent)] = []
        for (i, v) in values.enumerated() {
            do throws(FieldError) {
                valid.append((i, preparer.prepare(try Interchange.event(from: v))))
                results.append(EventResult(index: i, status: "accepted"))
            } catch {
                results.append(EventResult(index: i, status: "rejected", field: error.field, reason: error.reason))
            }
        }
        let now = Int64(Date().timeIntervalSince1970)
        do {
            try store.database.write { db in
                let outcomes = try writer.write(valid.map(\.1), now: now, db: db)
                for ((i, _), outcome) in zip(valid, outcomes) where outcome == .duplicate {
                    results[i].status = "duplicate"
                }
                try writer.finishTransaction(db)
            }
        } catch {
            writer.resetCaches()
            throw error
        }
        let counts = results.reduce(into: [String: Int]()) { $0[$1.status, default: 0] += 1 }
        accepted.increment(by: counts["accepted", default: 0])
        duplicates.increment(by: counts["duplicate", default: 0])
        rejected.increment(by: counts["rejected", default: 0])
        return IngestResponse(
            accepted: counts["accepted", default: 0], duplicates: counts["duplicate", default: 0],
            rejected: counts["rejected", default: 0], results: results)
    }
}
