import AisleCore
import AisleInsight
import AisleStore
import Foundation
import Logging

/// Per-customer insight for `GET /v1/customers/{id}/insight`: computed for every customer in the
/// background at start and then every `interval`, as of the store's latest event, and served
/// from memory (a lookup per request). Churn risk comes from the registry's active churn model;
/// when another version becomes active (trained, rolled back) the table is recomputed with it
/// and swapped in whole.
public actor InsightHost {
    private let store: Store
    private let logger: Logger
    private var table: [Int64: CustomerInsight] = [:]
    private(set) var computedAt: Date?
    private(set) var lastError: String?
    /// The churn model version the table was computed with (nil: none was active).
    private(set) var churnVersion: Int?

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
            Result { () -> (table: [Int64: CustomerInsight], version: Int?) in
                try store.database.read { db in
                    guard let last = try Queries.lastEventTime(db) else { return ([:], nil) }
                    return (try CustomerInsight.computeAll(db, asOf: last + 1), try ModelRegistry.activeVersions(db)[ChurnModel.kind])
                }
            }
        }.value
        switch result {
        case .success(let (t, version)):
            table = t
            churnVersion = version
            computedAt = Date()
            lastError = nil
            logger.info("customer insight computed", metadata: ["customers": "\(t.count)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))"])
        case .failure(let error):
            lastError = "\(error)"
            logger.error("customer insight failed; serving the previous one", metadata: ["error": "\(error)"])
        }
    }

    /// Runs `retrain` (the models that are due) and refreshes, then every `poll` retrains what is
    /// due and refreshes when `interval` has passed or another churn model version became active,
    /// until the task is cancelled.
    public func run(every interval: Duration, poll: Duration = .seconds(60), retrain: @Sendable () async -> Void) async {
        await retrain()
        var last = ContinuousClock.now
        await refresh()
        while !Task.isCancelled {
            try? await Task.sleep(for: poll)
            await retrain()
            let active = await activeChurnVersion()
            if ContinuousClock.now - last >= interval || active != churnVersion {
                last = ContinuousClock.now
                await refresh()
            }
        }
    }

    /// Refreshes now when another churn model version is active than the table was computed with.
    public func refreshIfModelChanged() async {
        if await activeChurnVersion() != churnVersion { await refresh() }
    }

    private func activeChurnVersion() async -> Int? {
        let store = store
        return try? await store.database.read { try ModelRegistry.activeVersions($0)[ChurnModel.kind] }
    }
}
