import AisleCore
import AisleInsight
import AisleStore
import Foundation
import Logging

/// Per-customer insight for `GET /v1/customers/{id}/insight`, served from memory (a lookup per
/// request). Computed for every customer in the background at start, every `interval` and when
/// another churn or themes version becomes active (trained, rolled back), as of the store's
/// latest event, and swapped in whole; in between, every `tick`, the customers with new events
/// (or newly scored review and question texts) are rescored as of their latest event against the
/// store-wide fits of the last full computation (BG/NBD, Gamma-Gamma, RFM quintiles). An erased
/// customer (`aislectl customer forget`) makes the next tick a whole computation.
public actor InsightHost {
    private let store: Store
    private let logger: Logger
    private var table: [Int64: CustomerInsight] = [:]
    private var population: CustomerInsight.Population?
    /// How far the table has seen the store.
    private var marks: ChangeMarks?
    private(set) var computedAt: Date?
    private(set) var lastError: String?
    /// The active versions of the models the table was computed with (churn, themes).
    private(set) var modelVersions: [String: Int] = [:]
    /// Set by SIGHUP: look for other active models at the next tick rather than the next poll.
    private var checkModels = false
    /// The models the insight reads.
    static let kinds: Set<String> = [ChurnModel.kind, ThemeModel.kind]
    /// More changed customers than this at one tick are a whole recomputation.
    static let maxUpdate = 2_000

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
        let result = await Blocking.background {
            Result { () -> (table: [Int64: CustomerInsight], population: CustomerInsight.Population?, versions: [String: Int], marks: ChangeMarks) in
                try store.database.read { db in
                    let versions = try ModelRegistry.activeVersions(db, of: InsightHost.kinds)
                    let marks = try ChangeMarks.current(db)
                    guard let last = try Queries.lastEventTime(db) else { return ([:], nil, versions, marks) }
                    let all = try CustomerInsight.computeAll(db, asOf: last + 1)
                    return (all.insight, all.population, versions, marks)
                }
            }
        }
        switch result {
        case .success(let computed):
            (table, population, modelVersions, marks) = (computed.table, computed.population, computed.versions, computed.marks)
            computedAt = Date()
            lastError = nil
            logger.info("customer insight computed", metadata: ["customers": "\(table.count)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))"])
        case .failure(let error):
            lastError = "\(error)"
            logger.error("customer insight failed; serving the previous one", metadata: ["error": "\(error)"])
        }
    }

    /// Rescores the customers whose events or text scores arrived since the table last saw the
    /// store; too many at once (an import) and the whole table is recomputed.
    func update() async {
        guard let marks else { return }
        let store = store
        guard let population else {
            // The store had no events at the last computation: the first ones call for a whole one.
            if let now = try? await store.database.read(ChangeMarks.current), now != marks { await refresh() }
            return
        }
        let result = await Blocking.background {
            Result { () -> (rows: [Int64: CustomerInsight], marks: ChangeMarks)? in
                try store.database.read { db in
                    let now = try ChangeMarks.current(db)
                    guard now != marks else { return ([:], now) }
                    guard now.erasures == marks.erasures else { return nil }  // a customer erased: all again
                    let changed = try marks.customersChanged(db)
                    guard changed.count <= InsightHost.maxUpdate, let last = try Queries.lastEventTime(db) else { return nil }
                    return try CustomerInsight.update(db, asOf: last + 1, customers: changed, population: population).map { ($0, now) }
                }
            }
        }
        switch result {
        case .success(let updated?):
            table.merge(updated.rows) { $1 }
            self.marks = updated.marks
        case .success(nil):
            await refresh()
        case .failure(let error):
            guard !Task.isCancelled else { return }  // the agent is stopping: the store is closing
            logger.error("customer insight not updated; serving the previous one", metadata: ["error": "\(error)"])
        }
    }

    /// Whether the first computation has run (or failed).
    public var started: Bool { computedAt != nil || lastError != nil }

    /// Refreshes; then every `tick` rescores the customers with news, and refreshes when
    /// `interval` has passed or another model version became active (``modelsMayHaveChanged()``),
    /// until the task is cancelled. Training runs beside it (the agent's retraining task), so
    /// rescoring goes on while a model trains.
    public func run(every interval: Duration, tick: Duration = .seconds(1)) async {
        var last = ContinuousClock.now
        await refresh()
        while !Task.isCancelled {
            try? await Task.sleep(for: tick)
            let due = ContinuousClock.now - last >= interval
            var changed = false
            if checkModels {
                checkModels = false
                changed = await activeVersions().map { $0 != modelVersions } ?? false
            }
            if due || changed {
                last = .now
                await refresh()
            } else {
                await update()
            }
        }
    }

    /// Looks for newly active models at the next tick (SIGHUP).
    public func modelsMayHaveChanged() { checkModels = true }

    private func activeVersions() async -> [String: Int]? {
        let store = store
        return try? await store.database.read { try ModelRegistry.activeVersions($0, of: InsightHost.kinds) }
    }
}
