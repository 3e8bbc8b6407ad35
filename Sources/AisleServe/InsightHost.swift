import AisleCore
import AisleInsight
import AisleStore
import Foundation
import Logging

/// Per-customer insight for `GET /v1/customers/{id}/insight`: computed for every customer in the
/// background at start and then every `interval`, as of the store's latest event, and served
/// from memory (a lookup per request). Churn risk and interests come from the registry's active
/// churn and themes models; when another version becomes active (trained, rolled back) the
/// table is recomputed with it and swapped in whole.
public actor InsightHost {
    private let store: Store
    private let logger: Logger
    private var table: [Int64: CustomerInsight] = [:]
    private(set) var computedAt: Date?
    private(set) var lastError: String?
    /// The active versions of the models the table was computed with (churn, themes).
    private(set) var modelVersions: [String: Int] = [:]
    /// The models the insight reads.
    static let kinds: Set<String> = [ChurnModel.kind, ThemeModel.kind]

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
        let result = await Blocking.run {
            Result { () -> (table: [Int64: CustomerInsight], versions: [String: Int]) in
                try store.database.read { db in
                    let versions = try ModelRegistry.activeVersions(db, of: InsightHost.kinds)
                    guard let last = try Queries.lastEventTime(db) else { return ([:], versions) }
                    return (try CustomerInsight.computeAll(db, asOf: last + 1), versions)
                }
            }
        }
        switch result {
        case .success(let (t, versions)):
            table = t
            modelVersions = versions
            computedAt = Date()
            lastError = nil
            logger.info("customer insight computed", metadata: ["customers": "\(t.count)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))"])
        case .failure(let error):
            lastError = "\(error)"
            logger.error("customer insight failed; serving the previous one", metadata: ["error": "\(error)"])
        }
    }

    /// Refreshes, runs `retrain` (the models that are due) and refreshes again if that changed
    /// them; then every `poll` retrains what is due and refreshes when `interval` has passed or
    /// another model version became active,
    /// until the task is cancelled.
    public func run(every interval: Duration, poll: Duration = .seconds(60), retrain: @Sendable () async -> Void) async {
        var last = ContinuousClock.now
        await refresh()  // at once with what there is; again below when training brought new models
        await retrain()
        if let active = await activeVersions(), active != modelVersions { await refresh() }
        while !Task.isCancelled {
            try? await Task.sleep(for: poll)
            await retrain()
            let active = await activeVersions()
            if ContinuousClock.now - last >= interval || (active.map { $0 != modelVersions } ?? false) {
                last = ContinuousClock.now
                await refresh()
            }
        }
    }

    /// Refreshes now when other model versions are active than the table was computed with.
    public func refreshIfModelChanged() async {
        if let active = await activeVersions(), active != modelVersions { await refresh() }
    }

    private func activeVersions() async -> [String: Int]? {
        let store = store
        return try? await store.database.read { try ModelRegistry.activeVersions($0, of: InsightHost.kinds) }
    }
}
