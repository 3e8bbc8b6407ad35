import AisleCore
import AisleInsight
import AisleStore
import Foundation
import Logging

/// Per-customer insight for `GET /v1/customers/{id}/insight`: computed for every customer in the
/// background at start and then every `interval`, as of the store's latest event, and served
/// from memory (a lookup per request).
public actor InsightHost {
    private let store: Store
    private let logger: Logger
    private var table: [Int64: CustomerInsight] = [:]
    private(set) var computedAt: Date?
    private(set) var lastError: String?

    public init(store: Store, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    public func insight(customer: Int64) -> CustomerInsight? { table[customer] }
    public var ready: Bool { computedAt != nil }

    /// Recomputes the table off the actor and swaps it in; keeps the old one on failure.
    public func refresh() async {
        let store = store
        let started = Date()
        let result = await Task.detached {
            Result { () -> [Int64: CustomerInsight] in
                try store.database.read { db in
                    guard let last = try Queries.lastEventTime(db) else { return [:] }
                    return try CustomerInsight.computeAll(db, asOf: last + 1)
                }
            }
        }.value
        switch result {
        case .success(let t):
            table = t
            computedAt = Date()
            lastError = nil
            logger.info("customer insight computed", metadata: ["customers": "\(t.count)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))"])
        case .failure(let error):
            lastError = "\(error)"
            logger.error("customer insight failed; serving the previous one", metadata: ["error": "\(error)"])
        }
    }

    /// Refreshes now and then every `interval` until the task is cancelled.
    public func run(every interval: Duration) async {
        while !Task.isCancelled {
            await refresh()
            try? await Task.sleep(for: interval)
        }
    }
}
