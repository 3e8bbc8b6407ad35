import AisleCore
import AisleInsight
import AisleRecommend
import AisleStore
import Foundation
import GRDB
import Logging

/// The agent's recommendations: an in-memory ``RecommendationIndex`` built in the background at
/// start, rebuilt hourly (new purchases) and when another ranker or themes version becomes
/// active, and swapped whole — requests never wait for a build and touch no disk. Served slates
/// and feedback are queued in memory and written in batches (`rec_impressions`, `rec_feedback`).
public actor RecommendationHost {
    private let store: Store
    private let logger: Logger
    private var index: RecommendationIndex?
    private var versions: [String: Int] = [:]
    /// Recent slates by request id, for feedback (the last 50,000).
    private var recent: [String: (customer: Int64?, items: Set<Int>)] = [:]
    private var recentOrder: [String] = []
    private var pendingImpressions: [Impression] = []
    private var pendingFeedback: [(request: String, item: Int, action: String, ts: Int64)] = []

    struct Impression: Sendable {
        var request: String, ts: Int64, customer: Int64?, session: String?, placement: String, model: String
        var position: Int, item: Int, score: Double, source: String
    }

    public init(store: Store, logger: Logger) { (self.store, self.logger) = (store, logger) }

    public var current: RecommendationIndex? { index }

    /// Builds a new index when there is none, `every` has passed, or the models changed.
    public func refresh(force: Bool = false) async {
        let store = store
        let active = (try? await store.database.read { try ModelRegistry.activeVersions($0).filter { [Ranker.kind, ThemeModel.kind].contains($0.key) } }) ?? [:]
        guard force || index == nil || active != versions else { return }
        let started = Date()
        let built = await Task.detached {
            Result { () throws -> RecommendationIndex? in
                try store.database.read { db in
                    guard let last = try Queries.lastEventTime(db) else { return nil }
                    return try RecommendationIndex.build(db, asOf: last + 1, ranker: try Ranker.active(db), themes: try ThemeModel.active(db)?.model)
                }
            }
        }.value
        switch built {
        case .success(let new?):
            index = new
            versions = active
            logger.info("recommendation index built", metadata: [
                "model": "\(new.model)", "customers": "\(new.signals.profiles.count)", "items": "\(new.items.count)",
                "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))",
            ])
        case .success(nil): break
        case .failure(let error):
            logger.error("recommendation index not built; serving the previous one", metadata: ["error": "\(error)"])
        }
    }

    /// Rebuilds hourly and within `poll` of a model change; flushes the log every few seconds.
    public func run(every interval: Duration = .seconds(3600), poll: Duration = .seconds(60)) async {
        var last = ContinuousClock.now
        await refresh(force: true)
        var sincePoll = ContinuousClock.now
        while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(2))
            await flush()
            guard ContinuousClock.now - sincePoll >= poll else { continue }
            sincePoll = .now
            let due = ContinuousClock.now - last >= interval
            if due { last = .now }
            await refresh(force: due)
        }
        await flush()
    }

    /// Records a served slate (its items in order, each shown with propensity 1: the ranking is
    /// deterministic) and returns its request id.
    func served(_ slate: [RecommendationIndex.Recommendation], ids: [Int], customer: Int64?, session: String?, placement: String, model: String) -> String {
        let request = String(format: "r%016llx", UInt64.random(in: 1...UInt64.max))
        let ts = Int64(Date().timeIntervalSince1970)
        for (position, (rec, id)) in zip(slate, ids).enumerated() {
            pendingImpressions.append(Impression(
                request: request, ts: ts, customer: customer, session: session, placement: placement, model: model,
                position: position, item: id, score: rec.score, source: rec.source))
        }
        recent[request] = (customer, Set(ids))
        recentOrder.append(request)
        if recentOrder.count > 50_000 {
            for old in recentOrder.prefix(10_000) { recent[old] = nil }
            recentOrder.removeFirst(10_000)
        }
        return request
    }

    enum FeedbackError: Error { case unknownRequest, itemNotShown }

    /// Records what the shopper did with an item of a recent slate.
    func feedback(request: String, item: Int, action: String) throws(FeedbackError) {
        guard let slate = recent[request] else { throw .unknownRequest }
        guard slate.items.contains(item) else { throw .itemNotShown }
        pendingFeedback.append((request, item, action, Int64(Date().timeIntervalSince1970)))
    }

    /// Writes the queued impressions and feedback in one transaction.
    func flush() async {
        guard !pendingImpressions.isEmpty || !pendingFeedback.isEmpty else { return }
        let (impressions, feedback) = (pendingImpressions, pendingFeedback)
        pendingImpressions = []
        pendingFeedback = []
        do {
            try await store.database.write { db in
                let insert = try db.cachedStatement(sql: """
                    INSERT OR IGNORE INTO rec_impressions(request_id, ts, customer_id, session, placement, model, position, item_id, score, source, propensity)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 1)
                    """)
                for i in impressions {
                    try insert.execute(arguments: [i.request, i.ts, i.customer, i.session, i.placement, i.model, i.position, i.item, i.score, i.source])
                }
                let fb = try db.cachedStatement(sql: "INSERT OR IGNORE INTO rec_feedback(request_id, item_id, action, ts) VALUES (?, ?, ?, ?)")
                for f in feedback { try fb.execute(arguments: [f.request, f.item, f.action, f.ts]) }
            }
        } catch {
            logger.error("recommendation log not written", metadata: ["error": "\(error)", "impressions": "\(impressions.count)"])
        }
    }
}
