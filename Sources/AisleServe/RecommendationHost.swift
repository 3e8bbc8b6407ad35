import AisleCore
import AisleInsight
import AisleModels
import Crypto
import AisleRecommend
import AisleStore
import Foundation
import GRDB
import Logging
import Synchronization

/// The agent's recommendations: an in-memory ``RecommendationIndex`` built in the background at
/// start, rebuilt hourly (new purchases), when another ranker, themes or global priors version
/// becomes active, when the encoder (re)loads (the catalog's content neighbours) and within seconds
/// of a customer being erased, and swapped whole — requests never wait for a build and touch no disk. Served slates
/// and feedback are queued in memory and written in batches to the log's own file
/// (``RecommendationLog/Writer``: `rec_slates`, `rec_explore`, `rec_feedback`).
public actor RecommendationHost {
    private let store: Store
    private let log: RecommendationLog.Writer
    private let encoder: EncoderHost
    private let logger: Logger
    /// The index being served, readable without a hop onto the actor (requests read it first,
    /// then come here once, to be logged); only ``refresh(force:)`` replaces it.
    private nonisolated let published = Mutex<RecommendationIndex?>(nil)
    private var versions: [String: Int] = [:]
    /// Recent slates by request id, for feedback (the last 40,000–50,000; older ones are read
    /// from the log).
    private var recent: [String: (customer: Int64?, items: Set<Int>)] = [:]
    private let recentCapacity: Int
    private var recentOrder: [String] = []
    /// The last request id's time part (see ``nextRequestID()``).
    private var lastRequestClock: UInt64 = 0
    private var pendingSlates: [LoggedSlate] = []
    private var pendingFeedback: [PendingFeedback] = []
    typealias PendingFeedback = (request: String, item: Int, action: String, ts: Int64)
    /// At most this many slates are written in one transaction (at saturation a flush is
    /// thousands of slates): the log's readers and erasure wait for its writer meanwhile.
    static let slatesPerTransaction = 200

    /// A served slate as logged: its row (the items by position, with the policy's propensity
    /// of showing each there) and for each explored position the arms' items and contexts —
    /// encoded at the flush, off the request path.
    struct LoggedSlate: Sendable {
        var request: String, ts: Int64, customer: Int64?, session: String?, placement: String, model: String
        /// A customer the index does not know yet (new since it was built): their id is looked
        /// up in the store when the slate is written, so the experiment report counts them once.
        var newCustomer: Data?
        var experiment: String?, arm: String?
        var items: [(item: Int, score: Double, source: String, propensity: Double)] = []
        var arms: [(position: Int, chosen: Int, items: [Int32], contexts: [[Double]])] = []
    }

    /// The exploration policy and what it waits to learn: explored items by request, with their
    /// context and when they were shown.
    public struct Exploration: Sendable {
        public var slots: Int
        public var epsilon: Double
        public var alpha: Double
        public var rewardWindow: Int64
        public init(slots: Int, epsilon: Double, alpha: Double, rewardWindow: Int64) {
            (self.slots, self.epsilon, self.alpha, self.rewardWindow) = (slots, epsilon, alpha, rewardWindow)
        }
    }

    /// An A/B test: who is in arm B (a stable hash of the name and the shopper's key) and how B explores.
    public struct Experiment: Sendable {
        public var name: String
        public var shareB: Double
        public var b: Exploration
        public init(name: String, shareB: Double, b: Exploration) { (self.name, self.shareB, self.b) = (name, shareB, b) }

        /// "a" or "b" for a shopper key (a pseudonym's hex or a session's stored key); nil without a key:
        /// such a request is served as arm A would be, but is in neither arm (all of them in A
        /// would make A's traffic another mix than B's).
        public func arm(_ key: String?) -> String? {
            guard let key else { return nil }
            let digest = SHA256.hash(data: Data((name + "\u{0}" + key).utf8))
            let value = digest.prefix(8).reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return Double(value >> 11) / Double(1 << 53) < shareB ? "b" : "a"
        }
    }

    private let experiment: Experiment?

    private let exploration: Exploration
    private var bandit: LinUCB
    private var awaiting: [String: (ts: Int64, items: [Int: [Double]])] = [:]
    /// Their request ids, oldest first, from `awaitingHead` on.
    private var awaitingOrder: [String] = []
    private var awaitingHead = 0
    /// Explored slates waiting for their reward at most (the oldest give way).
    static let maxAwaiting = 100_000
    /// How often the log is written: a little at a time. At 1,000 requests/s p99 was ~5 ms
    /// flushing every 250 ms, ~2.5 ms every 20 ms (when the writes ran at normal priority).
    static let flushPeriod = Duration.milliseconds(20)

    /// Past this many slates waiting to be written, the log is written at normal priority until
    /// it has caught up (five seconds at 2,000 requests/s).
    static let maxBacklog = 10_000

    /// Days the served slates' log is kept.
    private let logDays: Int

    /// Opens the store's log file for writing.
    public init(
        store: Store, encoder: EncoderHost, exploration: Exploration, experiment: Experiment? = nil, logDays: Int = 90, recentSlates: Int = 50_000,
        pendingSlates maxPending: Int = RecommendationHost.maxPending, logger: Logger
    ) throws {
        (self.store, self.encoder, self.exploration, self.experiment, self.logDays, self.logger) = (store, encoder, exploration, experiment, logDays, logger)
        self.maxPending = max(5, maxPending)
        recentCapacity = max(1, recentSlates)
        log = try RecommendationLog.Writer(store: store)
        bandit = LinUCB(dimensions: RecommendationIndex.banditDimensions, alpha: exploration.alpha)
    }

    /// The slate to serve: the ranked one, its last `slots` positions chosen by the bandit from
    /// the slot's own item and the eligible items after the slate. Logs it; returns its request
    /// id and items. `session` is the kiosk session's stored key (``Pseudonymizer/sessionKey(_:)``).
    func serve(
        _ slate: RecommendationIndex.Slate, index: RecommendationIndex, customer: Int64?, pseudonym: Data?, shopperKey: String?, cart: Set<Int>,
        session: String?, placement: String
    ) -> (request: String, items: [RecommendationIndex.Recommendation]) {
        let arm = experiment.flatMap { $0.arm(shopperKey) }
        let exploration = arm == "b" ? experiment?.b ?? self.exploration : self.exploration
        let request = nextRequestID()
        let ts = Int64(Date().timeIntervalSince1970)
        var slots = slate.slots, items = slate.items, propensities = [Double](repeating: 1, count: slots.count)
        var pool = slate.pool, explored: [Int: [Double]] = [:]
        var logged = LoggedSlate(
            request: request, ts: ts, customer: customer, session: session, placement: placement, model: index.model,
            newCustomer: customer == nil ? pseudonym : nil, experiment: arm.flatMap { _ in experiment?.name }, arm: arm)
        let positions = exploration.slots > 0 && !pool.isEmpty ? Array(max(0, slots.count - exploration.slots)..<slots.count) : []
        // The category cap holds for the slate as explored: counted as positions change.
        func group(_ slot: RecommendationIndex.Slot) -> Int? { index.items[Int(slot.item)]?.group }
        var perGroup: [Int: Int] = [:]
        for slot in slots { if let g = group(slot) { perGroup[g, default: 0] += 1 } }
        for p in positions where !pool.isEmpty {
            // The pool items the cap allows here, with position p's own item taken out (the arms
            // are fixed before the choice, so its propensity stays exact).
            let own = group(slots[p])
            let allowed = pool.indices.filter { i in group(pool[i]).map { g in perGroup[g, default: 0] - (g == own ? 1 : 0) < RecommendationIndex.perGroup } ?? true }
            let arms = [slots[p]] + allowed.map { pool[$0] }
            let contexts = arms.map(index.banditContext)
            let (arm, propensity) = bandit.choose(contexts, epsilon: exploration.epsilon, draw: Double.random(in: 0..<1), pick: Int.random(in: 0..<arms.count))
            logged.arms.append((p, arm, arms.map(\.item), contexts))
            if arm > 0 {
                if let g = own { perGroup[g, default: 0] -= 1 }
                if let g = group(arms[arm]) { perGroup[g, default: 0] += 1 }
                pool[allowed[arm - 1]] = slots[p]  // the displaced item stays eligible for the next explored position
                slots[p] = arms[arm]
                var shown = index.explain(arms[arm], customer: customer, cart: cart)
                shown.sources.append("explore")
                shown.reasons.append("shown to learn what you like")
                items[p] = shown
            }
            propensities[p] = propensity
            explored[Int(slots[p].item)] = contexts[arm]
        }
        logged.items = slots.indices.map { p in (Int(slots[p].item), items[p].score, items[p].source, propensities[p]) }
        pendingSlates.append(logged)
        if pendingSlates.count > maxPending {  // the log stalled (a disk, a long lock): the oldest go, counted
            let drop = maxPending / 5
            pendingSlates.removeFirst(drop)
            slatesDropped += drop
        }
        if !explored.isEmpty {
            awaiting[request] = (ts, explored)
            awaitingOrder.append(request)
            // Bounded: past the cap the oldest wait no longer and count as not taken.
            while awaiting.count > Self.maxAwaiting, let oldest = nextAwaiting() {
                if let old = awaiting.removeValue(forKey: oldest) {
                    for context in old.items.values { bandit.update(context, reward: 0) }
                }
            }
        }
        recent[request] = (customer, Set(slots.map { Int($0.item) }))
        recentOrder.append(request)
        if recentOrder.count > recentCapacity {
            let drop = max(1, recentCapacity / 5)
            for old in recentOrder.prefix(drop) { recent[old] = nil }
            recentOrder.removeFirst(drop)
        }
        return (request, items)
    }

    /// A new request id: "r", 16 hex digits that only grow (milliseconds since 1970 × 65,536, plus
    /// one when that is not more than the last), 8 random. The logs are keyed by it, so a slate's
    /// rows land at the end of their B-trees: random keys put each insert on a random page, which
    /// slowed every flush down as the log outgrew SQLite's page cache.
    private func nextRequestID() -> String {
        let now = UInt64(max(0, Date().timeIntervalSince1970 * 1000)) << 16
        lastRequestClock = max(now, lastRequestClock + 1)
        return "r" + Hex.string(lastRequestClock) + Hex.string(UInt32.random(in: 0...UInt32.max))
    }

    public nonisolated var current: RecommendationIndex? { published.withLock { $0 } }

    /// Builds a new index when there is none, `every` has passed, or the models changed; after any
    /// refresh still running (so the newest models are the ones left in use).
    public func refresh(force: Bool = false) async { await refreshes.append { await self.rebuild(force: force) }.finished() }

    private var refreshes = TaskChain()

    /// The last failed build's model versions, when the next may be tried, and the wait.
    private var failed: (versions: [String: Int], retry: ContinuousClock.Instant, wait: Duration)?
    /// Builds begun so far.
    private(set) var buildsAttempted = 0

    private func rebuild(force: Bool) async {
        let store = store
        let textModel = await encoder.currentModel
        var active = (try? await store.database.read { db -> [String: Int] in
            var versions = try ModelRegistry.activeVersions(db, of: [Ranker.kind, ThemeModel.kind, FleetPopularity.kind])
            versions["erasures"] = Int(try CustomerErasure.generation(db))  // a customer forgotten
            return versions
        }) ?? [:]
        active["encoder"] = textModel?.cacheKey.hashValue ?? 0
        guard force || current == nil || active != versions else {
            // Items withdrawn or sold out since: left out at once, without a rebuild.
            if let index = current, let unavailable = try? await store.database.read(RecommendationIndex.unavailable), unavailable != index.unavailable {
                published.withLock { $0 = index.withdrawing(unavailable) }
            }
            return
        }
        // After a failed build the next waits (30 s doubling to an hour) unless the models change:
        // a lasting fault (a damaged page, a full disk) would otherwise cost a build every poll.
        if let failed, failed.versions == active, ContinuousClock.now < failed.retry { return }
        buildsAttempted += 1
        let started = Date()
        let built = await Blocking.background {
            Result { () throws -> RecommendationIndex? in
                // Nothing to build from yet: checked before the neighbours, every pair of titles
                // compared, which would be redone at every poll until the first event.
                guard try store.database.read(Queries.lastEventTime) != nil else { return nil }
                // Not for a catalog too large to compare every pair: its titles are not even encoded.
                let small = try store.database.read(CatalogEmbeddings.count) <= ContentNeighbours.maxItems
                let similar = try textModel.flatMap { m in small ? ContentNeighbours(try CatalogEmbeddings.load(store, model: m).map { (Int($0.id), $0.vector) }) : nil }
                return try store.database.read { db in
                    guard let last = try Queries.lastEventTime(db) else { return nil }
                    return try RecommendationIndex.build(
                        // A model this build cannot read counts as none (the heuristic ranker; the retraining replaces it).
                        db, asOf: last + 1, ranker: try? Ranker.active(db), themes: (try? ThemeModel.active(db))?.model,
                        fleet: try? FleetPopularity.active(db),
                        similar: similar)
                }
            }
        }
        switch built {
        case .success(let new):
            published.withLock { $0 = new }  // nil: no events (left), nothing to serve, not even what was
            (versions, failed) = (active, nil)
            guard let new else { return }
            logger.info("recommendation index built", metadata: [
                "model": "\(new.model)", "customers": "\(new.signals.profiles.count)", "items": "\(new.items.count)",
                "items_with_similar": "\(new.similar?.count ?? 0)",
                "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))",
            ])
        case .failure(let error):
            let wait = min((failed?.wait ?? .seconds(15)) * 2, .seconds(3600))
            failed = (active, .now + wait, wait)
            guard !Task.isCancelled else { return }  // the agent is stopping: the store is closing
            logger.error("recommendation index not built; serving the previous one", metadata: ["error": "\(error)"])
        }
    }

    /// Rebuilds hourly and within `poll` of a model change, the encoder (re)loading or a
    /// customer's erasure, and within `poll` leaves out items no longer on offer; flushes the
    /// log every ``flushPeriod`` and drops its slates older than `logDays` at start and hourly
    /// (beside the rebuilds: a first pruning may take long).
    public func run(every interval: Duration = .seconds(3600), poll: Duration = .seconds(5)) async {
        // The log is written whatever the index is doing (a rebuild takes seconds).
        async let logging: Void = flushEvery(Self.flushPeriod)
        async let pruning: Void = repeatEvery(interval) { await pruneLog() }
        var last = ContinuousClock.now
        await refresh(force: true)
        while !Task.isCancelled {
            try? await Task.sleep(for: poll)
            let due = ContinuousClock.now - last >= interval
            if due { last = .now }
            await refresh(force: due)
        }
        _ = await (logging, pruning)
    }

    /// Deletes the slates served more than `logDays` ago, 1,000 to a transaction,
    /// then the feedback as old left without its slate.
    func pruneLog() async {
        let before = Int64(Date().timeIntervalSince1970) - Int64(logDays) * 86_400
        do {
            // At the flush's priority when it is behind: both use the log's one connection.
            let deleted = try await inBatches {
                try await log.write(behind: pendingSlates.count > Self.maxBacklog) { try RecommendationLog.prune($0, before: before, rows: 1_000) }
            }
            try await log.write { try RecommendationLog.pruneFeedback($0, before: before) }
            if deleted > 0 { logger.info("recommendation log pruned", metadata: ["slates": "\(deleted)", "days_kept": "\(logDays)"]) }
        } catch {
            logger.error("recommendation log not pruned", metadata: ["error": "\(error)"])
        }
    }

    /// Flushes until cancelled, and not once more then: in a cancelled task GRDB refuses the
    /// write, and the slates taken for it would be lost. What is left waits for the owner's
    /// ``flush()`` (the agent's, after its server stops).
    private func flushEvery(_ period: Duration) async {
        while (try? await Task.sleep(for: period)) != nil, !Task.isCancelled {
            await flush()
        }
    }

    enum FeedbackError: Error { case unknownRequest, itemNotShown }

    /// Closes the log file (after the last ``flush()``).
    public func closeLog() async throws { try await log.close() }

    /// Records what the shopper did with an item of a slate: one of the last 40,000–50,000 from memory,
    /// an older one from the log (at 2,000 requests/s memory holds 25 s, less than the reward
    /// window: a click a minute later was refused, and the bandit scored the item 0).
    /// Returns once the feedback is written to the log (with the slates waiting before it):
    /// true, or false when a write of the log failed meanwhile, which may have lost it.
    @discardableResult
    func feedback(request: String, item: Int, action: String) async throws(FeedbackError) -> Bool {
        if let slate = recent[request] {
            guard slate.items.contains(item) else { throw .itemNotShown }
        } else {
            // Through the store's readers, where the log is attached: not queued behind its writer.
            let shown = try? await store.database.read { db in
                try Int.fetchAll(
                    db, sql: "SELECT json_extract(j.value, '$[0]') FROM \(RecommendationLog.schemaName).rec_slates s, json_each(s.items) j WHERE s.request_id = ?",
                    arguments: [request])
            }
            guard let shown, !shown.isEmpty else { throw .unknownRequest }
            guard shown.contains(item) else { throw .itemNotShown }
        }
        pendingFeedback.append((request, item, action, Int64(Date().timeIntervalSince1970)))
        // A taken explored item teaches the bandit at once; one left alone, when its window ends.
        if action != "dismiss", let context = awaiting[request]?.items.removeValue(forKey: item) {
            bandit.update(context, reward: 1)
        }
        let failures = feedbackLost
        feedbackWaiting += 1
        await flush()
        feedbackWaiting -= 1
        return feedbackLost == failures
    }

    /// The oldest request id still in the queue, taken off it; the queue's storage is compacted
    /// once half of it is spent.
    private func nextAwaiting() -> String? {
        guard awaitingHead < awaitingOrder.count else { return nil }
        let id = awaitingOrder[awaitingHead]
        awaitingHead += 1
        if awaitingHead > 1024, awaitingHead * 2 > awaitingOrder.count {
            awaitingOrder.removeFirst(awaitingHead)
            awaitingHead = 0
        }
        return id
    }

    /// Explored items whose reward window has passed without them being taken: reward 0. Walks
    /// the queue from its oldest end and stops at the first slate still in its window: each
    /// flush costs what expires, not a pass over every waiting slate (up to ``maxAwaiting``).
    func expireRewards(now: Int64) {
        while awaitingHead < awaitingOrder.count {
            let request = awaitingOrder[awaitingHead]
            if let waiting = awaiting[request] {
                guard now - waiting.ts >= exploration.rewardWindow else { return }
                for context in waiting.items.values { bandit.update(context, reward: 0) }
                awaiting[request] = nil
            }
            _ = nextAwaiting()
        }
    }

    /// Slates whose explored items still wait for their reward.
    var awaitingRewards: Int { awaiting.count }
    /// Slates served and not yet taken by a flush.
    var queuedSlates: Int { pendingSlates.count }

    /// Writes the queued slates and feedback, ``slatesPerTransaction`` slates to a transaction, on
    /// the log writer's thread at nice 19 — a core the requests need is theirs first — or at
    /// normal priority while more than ``maxBacklog`` slates wait. Returns when everything queued
    /// before the call is written, by this flush or one still writing (so shutdown's last flush
    /// cannot end before the periodic one's remaining transactions).
    func flush() async { await flushes.append { await self.writePending() }.value }  // not cancelled: nothing queued is dropped

    private var flushes = TaskChain()
    /// Writes of the log carrying feedback that failed (it is lost), and the feedback callers
    /// waiting for a flush: for them the log is written at normal priority, not at nice 19.
    private var feedbackLost = 0, feedbackWaiting = 0
    /// At most this many served slates wait for the log (≈3.5 KB each with an explored slot);
    /// past it the oldest are not logged, counted in `slatesDropped` and warned of.
    public static let maxPending = 50_000
    private let maxPending: Int
    private var slatesDropped = 0

    private func writePending() async {
        expireRewards(now: Int64(Date().timeIntervalSince1970))
        if slatesDropped > 0 {
            logger.warning("served slates not logged: the recommendation log did not keep up", metadata: ["slates": "\(slatesDropped)"])
            slatesDropped = 0
        }
        guard !pendingSlates.isEmpty || !pendingFeedback.isEmpty else { return }
        var (slates, feedback) = (pendingSlates, pendingFeedback)
        pendingSlates = []
        pendingFeedback = []
        await identifyNewCustomers(&slates)
        // One pass at least: a flush may carry feedback alone.
        for start in stride(from: 0, to: max(slates.count, 1), by: Self.slatesPerTransaction) {
            let chunk = slates[start..<min(start + Self.slatesPerTransaction, slates.count)]
            // Feedback with the last slates: a reader between two transactions sees no feedback
            // for a slate not yet written.
            let withFeedback = start + Self.slatesPerTransaction >= slates.count ? feedback : []
            do {
                let behind = feedbackWaiting > 0 || slates.count - start + pendingSlates.count > Self.maxBacklog
                try await log.write(behind: behind) { db in try Self.log(chunk, withFeedback, in: db) }
            } catch {
                if !withFeedback.isEmpty { feedbackLost += 1 }
                logger.error("recommendation log not written", metadata: ["error": "\(error)", "slates": "\(chunk.count)", "feedback": "\(withFeedback.count)"])
            }
        }
    }

    /// Fills in the ids of customers the index did not know when their slates were served, from
    /// the store (a customer with no event yet has none, and stays without).
    private func identifyNewCustomers(_ slates: inout [LoggedSlate]) async {
        let pseudonyms = Array(Set(slates.compactMap(\.newCustomer)))
        guard !pseudonyms.isEmpty else { return }
        let store = store
        do {
            let ids = try await Blocking.run {
                try store.database.read { db in
                    let select = try db.cachedStatement(sql: "SELECT id FROM customers WHERE pseudonym = ?")
                    var ids: [Data: Int64] = [:]
                    for p in pseudonyms { ids[p] = try Int64.fetchOne(select, arguments: [p]) }
                    return ids
                }
            }
            for i in slates.indices { if let p = slates[i].newCustomer { slates[i].customer = ids[p] } }
        } catch {
            logger.warning("new customers of logged slates not identified", metadata: ["error": "\(error)"])
        }
    }

    /// The rows of some slates and feedback.
    private static func log(_ slates: ArraySlice<LoggedSlate>, _ feedback: [PendingFeedback], in db: Database) throws {
        // Not a slate of a customer, or of a kiosk session of theirs, erased meanwhile (it waited
        // in memory while `customer forget` ran).
        let insert = try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO rec_slates(request_id, ts, customer_id, session, placement, model, experiment, arm, items)
            SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9
            WHERE NOT EXISTS (SELECT 1 FROM erased_customers WHERE customer_id = ?3) AND NOT EXISTS (SELECT 1 FROM erased_sessions WHERE digest = ?10)
            """)
        for s in slates {
            try insert.execute(arguments: [
                s.request, s.ts, s.customer, s.session, s.placement, s.model, s.experiment, s.arm, itemsJSON(s), s.session.map(RecommendationLog.sessionDigest),
            ])
        }
        let arm = try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO rec_explore(request_id, position, chosen, arms)
            SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM rec_slates WHERE request_id = ?1)
            """)
        for (request, a) in slates.lazy.flatMap({ s in s.arms.lazy.map { (s.request, $0) } }) {
            try arm.execute(arguments: [request, a.position, a.chosen, RecommendationLog.encodeArms(items: a.items, contexts: a.contexts)])
        }
        // Feedback on a slate the log holds (not one erased, or not written for that reason).
        let fb = try db.cachedStatement(sql: """
            INSERT OR IGNORE INTO rec_feedback(request_id, item_id, action, ts)
            SELECT ?1, ?2, ?3, ?4 WHERE EXISTS (SELECT 1 FROM rec_slates WHERE request_id = ?1)
            """)
        for f in feedback { try fb.execute(arguments: [f.request, f.item, f.action, f.ts]) }
    }

    /// A slate's items as `rec_slates.items` holds them: `[[item_id, score, source, propensity], …]`
    /// by position, the score to six decimals, the propensity as it is.
    private static func itemsJSON(_ slate: LoggedSlate) -> String {
        var json: [UInt8] = [UInt8(ascii: "[")]
        for (n, i) in slate.items.enumerated() {
            json += Array((n > 0 ? ",[\(i.item)," : "[\(i.item),").utf8)
            JSONText.append(number: i.score, to: &json)
            json.append(UInt8(ascii: ","))
            JSONText.append(i.source, to: &json)
            json.append(UInt8(ascii: ","))
            json += Array("\(i.propensity)".utf8)  // exact: IPS divides by it (ε / 31 can be tiny)
            json.append(UInt8(ascii: "]"))
        }
        json.append(UInt8(ascii: "]"))
        return String(decoding: json, as: UTF8.self)
    }
}
