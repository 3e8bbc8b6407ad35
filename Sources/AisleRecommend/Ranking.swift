import AisleInsight
import AisleModels
import AisleStore
import Foundation
import GRDB

/// Where a candidate came from; each source also explains it (``Explanation``).
public enum CandidateSource: String, Sendable, Codable, CaseIterable {
    /// The customer bought it before.
    case repurchase
    /// Customers with similar purchases buy it.
    case similarCustomers = "similar_customers"
    /// Bought together with what the customer bought before.
    case boughtTogether = "bought_together"
    /// Bought together with what is in the cart or was looked at this visit.
    case thisVisit = "this_visit"
    /// Popular in the store over the last 30 days.
    case popular
    /// Buyers grew fastest over the last 30 days.
    case trending
    /// Its title is like that of an item in the cart or looked at this visit (``ContentNeighbours``).
    case similarItems = "similar_items"
    /// Bought lately by many customers of the customer's RFM segment (``Signals/segmentPopular``).
    case segmentPopular = "segment_popular"
}

/// One item for one customer, with what the ranker reads and what explains it.
public struct Candidate: Sendable {
    public var item: Int
    public var sources: Set<CandidateSource>
    public var features: [Double]
    /// For `boughtTogether`: the customer's item behind it and the baskets they share.
    public var because: (item: Int, baskets: Int)?
    /// For `similarItems`: the visit's item it is most like, and the cosine of their titles.
    public var similar: (item: Int, similarity: Float)?
}

/// Candidate generation and the ranking features, from ``Signals``.
public enum Ranking {
    public static let featureNames = [
        "own_weight", "log_own_days", "log_days_since_bought", "cycle_ratio", "neighbours", "bought_together",
        "log_buyers_30d", "log_buyers_90d", "trend", "log_item_age_days", "log_customer_days", "log_customer_recency", "owned",
        "own_share", "log_own_rank",
    ]

    /// Each feature's spread by its definition alone, from no data (about the range its values
    /// take): what a federated ranker with differential privacy standardises by.
    public static let nominalScales: [Double] = [1, 3, 6, 3, 1, 1, 5, 6, 2, 6, 4, 6, 1, 1, 7]

    /// Candidates per source: the customer's own items (all), and the best of the others.
    public static let perSource = 60

    /// Every candidate for `customer` (known or not: an unknown one gets the store's), with
    /// features; `visit` holds what is in the cart or was looked at this visit (item → weight),
    /// which counts as part of the profile for what goes with it; `sources` limits where
    /// candidates come from (popular, trending and similar customers are the expensive or
    /// precomputable ones); `similar`, the items whose titles are like the visit's.
    public static func candidates(
        _ s: Signals, customer: Int64?, visit: [Int: Double] = [:], sources: Set<CandidateSource> = Set(CandidateSource.allCases), similar: ContentNeighbours? = nil
    ) -> [Candidate] {
        var found: [Int: Candidate] = [:]
        func add(_ item: Int, _ source: CandidateSource) {
            found[item, default: Candidate(item: item, sources: [], features: [])].sources.insert(source)
        }
        if sources.contains(.similarItems), let similar {
            for (item, n) in visit.keys.sorted().flatMap({ v in similar.of(v).map { (v, $0) } }) where visit[n.item] == nil {
                add(n.item, .similarItems)
                if (found[n.item]?.similar?.similarity ?? -1) < n.similarity { found[n.item]?.similar = (item, n.similarity) }
            }
        }
        let counts = customer.flatMap { s.counts[$0] } ?? [:]
        for item in counts.keys { add(item, .repurchase) }
        let neighbour = sources.contains(.similarCustomers) ? customer.map(s.neighbourScores) ?? [:] : [:]
        for (item, _) in top(neighbour, perSource) { add(item, .similarCustomers) }
        var profile = customer.flatMap { s.profiles[$0] } ?? [:]
        let ownMax = profile.values.max() ?? 1
        for (item, w) in visit { profile[item, default: 0] += w * ownMax }
        let norm = max(1e-12, Signals.norm(profile))
        let together = s.cooccurrenceScores(profile, norm: norm)
        for (item, _) in top(together.mapValues(\.score), perSource) {
            guard let t = together[item] else { continue }
            add(item, visit[t.because] != nil ? .thisVisit : .boughtTogether)
            found[item]?.because = (t.because, t.baskets)
        }
        if sources.contains(.segmentPopular), let segment = customer.flatMap({ s.segments[$0] }) {
            for entry in s.segmentPopular[segment] ?? [] { add(entry.item, .segmentPopular) }
        }
        if sources.contains(.popular) { for item in s.popular.prefix(perSource) { add(item, .popular) } }
        if sources.contains(.trending) { for item in s.trending.prefix(perSource / 2) { add(item, .trending) } }

        let customerDays = customer.flatMap { s.purchaseDays[$0] } ?? 0
        let lastAny = counts.values.map(\.last).max()
        let ownRank = Dictionary(uniqueKeysWithValues: counts.sorted { $0.value.days != $1.value.days ? $0.value.days > $1.value.days : $0.key < $1.key }
            .enumerated().map { ($0.element.key, $0.offset) })
        return found.values.sorted { $0.item < $1.item }.map { c in
            var c = c
            let own = counts[c.item]
            let since = own.map { Double(s.end - $0.last) } ?? 730
            let cycle = own != nil ? s.cycleDays[c.item].map { since / max(1, $0) } ?? 0 : 0
            let b30 = s.popularity(c.item), own30 = Double(s.buyers30[c.item] ?? 0), b90 = Double(s.buyers90[c.item] ?? 0), prior = Double(s.buyersPrior90[c.item] ?? 0)
            c.features = [
                (profile[c.item] ?? 0) / norm, log1p(Double(own?.days ?? 0)), log1p(since), cycle, neighbour[c.item] ?? 0,
                together[c.item]?.score ?? 0, log1p(b30), log1p(b90), log((own30 + 1) / (prior / 3 + 1)),
                log1p(Double(s.end - (s.firstDay[c.item] ?? s.end))), log1p(Double(customerDays)),
                log1p(Double(lastAny.map { s.end - $0 } ?? 730)), own == nil ? 0 : 1,
                Double(own?.days ?? 0) / Double(max(1, customerDays)), log1p(Double(ownRank[c.item] ?? 1000)),
            ]
            return c
        }
    }

    static func top(_ scores: [Int: Double], _ n: Int) -> [(Int, Double)] {
        Array(scores.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(n).map { ($0.key, $0.value) })
    }
}

/// The learning-to-rank model over ``Ranking/featureNames``: gradient-boosted trees trained by
/// the store, or a logistic regression trained by the fleet (federated rounds, issue 8), trained
/// point in time — signals as of one horizon before the moment, labels from the horizon after.
public struct Ranker: Sendable, Codable {
    public static let kind = "ranker"
    /// Training windows by default.
    public static let windows = 3
    /// The trees' settings (chosen on R1's training period, docs/MODELS.md).
    public static let treeParameters: GradientBoostedTrees.Parameters = {
        var p = GradientBoostedTrees.Parameters()
        (p.trees, p.depth, p.learningRate, p.minLeaf) = (150, 4, 0.1, 50)
        return p
    }()
    public var trees: GradientBoostedTrees?
    public var linear: LogisticRegression?
    public var horizonDays: Int

    public init(linear: LogisticRegression, horizonDays: Int) { (self.trees, self.linear, self.horizonDays) = (nil, linear, horizonDays) }
    init(trees: GradientBoostedTrees, horizonDays: Int) { (self.trees, self.linear, self.horizonDays) = (trees, nil, horizonDays) }

    enum CodingKeys: String, CodingKey { case trees, linear, horizonDays }

    /// A payload holds exactly one model (older payloads: trees only), and a horizon of a day or more.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        trees = try c.decodeIfPresent(GradientBoostedTrees.self, forKey: .trees)
        linear = try c.decodeIfPresent(LogisticRegression.self, forKey: .linear)
        horizonDays = try c.decode(Int.self, forKey: .horizonDays)
        guard (trees == nil) != (linear == nil), horizonDays >= 1 else {
            throw DecodingError.dataCorruptedError(forKey: .trees, in: c, debugDescription: "a ranker holds either trees or a linear model, for a horizon of at least a day")
        }
        let d = Ranking.featureNames.count
        guard (trees?.featuresRead ?? 0) <= d, linear.map({ $0.weights.count == d }) ?? true else {
            throw DecodingError.dataCorruptedError(forKey: .trees, in: c, debugDescription: "the model reads other features than this build's \(d)")
        }
    }

    /// Trains trees as of day `end` of `history` on ``rows(_:horizonDays:windows:settings:)``.
    /// Nil when the store has too little history.
    public static func train(_ history: PurchaseHistory, horizonDays: Int = 60, windows: Int = Ranker.windows, settings: Signals.Settings = .init())
        -> (ranker: Ranker, rows: Int, positives: Int)?
    {
        let (rows, labels) = Self.rows(history, horizonDays: horizonDays, windows: windows, settings: settings)
        let positives = labels.filter { $0 }.count
        guard positives >= 20, positives < labels.count else { return nil }
        return (Ranker(trees: GradientBoostedTrees.fit(rows, labels, parameters: treeParameters), horizonDays: horizonDays), rows.count, positives)
    }

    /// Training rows as of day `end` of `history` (purchases strictly before it) from `windows`
    /// splits `horizonDays` apart: at each split, signals from the history before it, label =
    /// bought in the horizon after it; customers who bought on both sides, each with every
    /// bought candidate and a sample of the others.
    public static func rows(_ history: PurchaseHistory, horizonDays: Int, windows: Int, settings: Signals.Settings = .init()) -> (rows: [[Double]], labels: [Bool]) {
        var rows: [[Double]] = [], labels: [Bool] = []
        for w in 1...max(1, windows) {
            let split = history.end - w * horizonDays, stop = split + horizonDays
            var before = PurchaseHistory(customers: [:], end: split), after: [Int64: Set<Int>] = [:]
            for (c, lines) in history.customers {
                let early = lines.filter { $0.day < split }
                if !early.isEmpty { before.customers[c] = early }
                let late = Set(lines.filter { $0.day >= split && $0.day < stop }.map(\.item))
                if !late.isEmpty { after[c] = late }
            }
            guard !before.customers.isEmpty else { break }
            let signals = Signals(before, settings: settings)
            for c in before.customers.keys.sorted() {
                guard let bought = after[c] else { continue }
                let candidates = Ranking.candidates(signals, customer: c)
                // Every bought candidate; of the others an even sample of at most four per bought one.
                let positives = candidates.filter { bought.contains($0.item) }.count
                let keep = min(1, Double(4 * max(1, positives)) / Double(max(1, candidates.count - positives)))
                var rng = SplitMix(state: UInt64(bitPattern: c) &+ UInt64(w))
                for cand in candidates {
                    let label = bought.contains(cand.item)
                    guard label || Double(rng.next() >> 11) / Double(1 << 53) < keep else { continue }
                    rows.append(cand.features)
                    labels.append(label)
                }
            }
        }
        return (rows, labels)
    }

    public func score(_ c: Candidate) -> Double { score(c.features) }

    public func score(_ features: [Double]) -> Double { linear?.probability(features) ?? trees?.probability(features) ?? 0 }

    /// The registry's active ranker and its version; nil when none has been trained.
    public static func active(_ db: Database) throws -> (model: Ranker, version: Int)? {
        try ModelRegistry.activeModel(db, kind: kind, as: Ranker.self)
    }
}
