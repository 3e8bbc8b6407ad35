import AisleCore
import AisleInsight
import Foundation
import GRDB

/// Everything a recommendation needs, in memory, built from the store as of a moment: the
/// signals, the ranker, the catalog, who returned what, and the customers' pseudonyms. Serving
/// reads it and touches no disk; the agent builds a new one in the background and swaps it.
public struct RecommendationIndex: Sendable {
    public struct Item: Sendable {
        public var id: Int
        public var sku: String
        public var title: String
        /// Category, else the item's theme label, else nil: what the diversity cap counts.
        public var group: String?
        public var recommendable: Bool
    }

    /// A pseudonym as four machine words (a compact dictionary key).
    public struct PseudonymKey: Hashable, Sendable {
        var words: SIMD4<UInt64>
        public init(_ pseudonym: Data) {
            var w = SIMD4<UInt64>(repeating: 0)
            for (i, byte) in pseudonym.prefix(32).enumerated() { w[i / 8] |= UInt64(byte) << UInt64(8 * (i % 8)) }
            words = w
        }
    }

    public let signals: Signals
    public let ranker: Ranker?
    /// "ranker v3" or "heuristic" (no ranker trained yet).
    public let model: String
    public let items: [Int: Item]
    public let skus: [String: Int]
    let customers: [PseudonymKey: Int64]
    /// Customer → items returned in the last 90 days (not recommended again soon).
    let returned: [Int64: Set<Int>]
    public let asOf: Int64

    /// Builds the index as of `t` from the store's purchases, catalog and returns.
    public static func build(_ db: Database, asOf t: Int64, ranker: (model: Ranker, version: Int)?, themes: ThemeModel?) throws -> RecommendationIndex {
        let signals = Signals(try PurchaseHistory.load(db, to: t))
        var items: [Int: Item] = [:], skus: [String: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, sku, title, category, active, sellable FROM items") {
            let id = Int(row[0] as Int64)
            let theme = themes?.itemThemes[Int64(id)].flatMap { $0 < (themes?.themes.count ?? 0) ? themes?.themes[$0].label : nil }
            items[id] = Item(id: id, sku: row[1], title: row[2], group: (row[3] as String?) ?? theme, recommendable: row[4] && row[5])
            skus[row[1]] = id
        }
        var customers: [PseudonymKey: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, pseudonym FROM customers") { customers[PseudonymKey(row[1])] = row[0] }
        var returned: [Int64: Set<Int>] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT customer_id, item_id FROM events WHERE type = 'return' AND customer_id IS NOT NULL AND item_id IS NOT NULL AND ts >= ? AND ts < ?
            """, arguments: [t - 90 * 86_400, t]) {
            returned[row[0], default: []].insert(Int(row[1] as Int64))
        }
        return RecommendationIndex(
            signals: signals, ranker: ranker?.model, model: ranker.map { "ranker v\($0.version)" } ?? "heuristic",
            items: items, skus: skus, customers: customers, returned: returned, asOf: t)
    }

    /// The store id of a customer by pseudonym, if known.
    public func customer(_ pseudonym: Data) -> Int64? { customers[PseudonymKey(pseudonym)] }

    public struct Query: Sendable {
        public var customer: Int64?
        /// Items looked at or scanned this visit, and in the cart.
        public var viewed: [Int]
        public var cart: [Int]
        public var k: Int
        public var exclude: Set<Int>
        public init(customer: Int64?, viewed: [Int] = [], cart: [Int] = [], k: Int = 10, exclude: Set<Int> = []) {
            (self.customer, self.viewed, self.cart, self.k, self.exclude) = (customer, viewed, cart, k, exclude)
        }
    }

    public struct Recommendation: Sendable, Encodable {
        public var sku: String
        public var title: String
        public var score: Double
        /// The source that explains it best, and all that proposed it.
        public var source: String
        public var sources: [String]
        public var reasons: [String]
    }

    /// At most this many items of one category (or theme) in a slate.
    public static let perGroup = 3

    /// The `k` best items for the query: candidates from every source, ranked, then the business
    /// rules — only active, sellable items; nothing in the cart, looked at this visit, excluded or
    /// returned in the last 90 days — and at most ``perGroup`` per category or theme. An unknown customer with an
    /// empty visit gets the store's popular and trending items (the fallback chain's end).
    public func recommend(_ q: Query) -> [Recommendation] {
        var visit: [Int: Double] = [:]
        for item in q.viewed { visit[item, default: 0] += 0.5 }
        for item in q.cart { visit[item, default: 0] += 1 }
        let blocked = q.exclude.union(q.cart).union(q.viewed).union(q.customer.flatMap { returned[$0] } ?? [])
        // The ranker learnt from purchase histories, not visits: what goes with this visit gets
        // its basket affinity (0–1) on top.
        let scored = Ranking.candidates(signals, customer: q.customer, visit: visit)
            .filter { !blocked.contains($0.item) && items[$0.item]?.recommendable == true }
            .map { ($0, (ranker?.score($0) ?? Self.heuristic($0)) + ($0.sources.contains(.thisVisit) ? $0.features[5] : 0)) }
            .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0.item < $1.0.item }
        var slate: [Recommendation] = [], groups: [String: Int] = [:]
        for (candidate, score) in scored where slate.count < q.k {
            if let g = items[candidate.item]?.group {
                guard groups[g, default: 0] < Self.perGroup else { continue }
                groups[g, default: 0] += 1
            }
            slate.append(explain(candidate, score: score, customer: q.customer, cart: Set(q.cart)))
        }
        return slate
    }

    /// Without a trained ranker: the customer's own weight and the other sources' scores.
    static func heuristic(_ c: Candidate) -> Double {
        let f = c.features
        return 2 * f[13] + f[4] + f[5] + 0.02 * f[6] + 0.01 * f[8]
    }

    /// The item with its reasons in plain words, most telling first.
    func explain(_ c: Candidate, score: Double, customer: Int64?, cart: Set<Int>) -> Recommendation {
        let item = items[c.item]
        var reasons: [String] = [], order: [CandidateSource] = []
        if c.sources.contains(.thisVisit), let b = c.because, let title = items[b.item]?.title {
            reasons.append("goes with \(title) \(cart.contains(b.item) ? "in your cart" : "you looked at"): bought together in \(b.baskets) baskets")
            order.append(.thisVisit)
        }
        if c.sources.contains(.repurchase), let customer, let own = signals.counts[customer]?[c.item] {
            var text = "you bought this \(own.days == 1 ? "once" : own.days == 2 ? "twice" : "on \(own.days) different days"), last \(Timestamp.format(Int64(own.last) * 86_400).prefix(10))"
            if let cycle = signals.cycleDays[c.item] { text += "; customers buy it again about every \(Int(cycle.rounded())) days" }
            reasons.append(text)
            order.append(.repurchase)
        }
        if c.sources.contains(.boughtTogether), let b = c.because, let title = items[b.item]?.title {
            reasons.append("bought together with \(title) in \(b.baskets) baskets")
            order.append(.boughtTogether)
        }
        if c.sources.contains(.similarCustomers) {
            reasons.append("popular with customers who buy what you buy")
            order.append(.similarCustomers)
        }
        if c.sources.contains(.trending) {
            reasons.append("trending: \(signals.buyers30[c.item] ?? 0) customers bought it in the last 30 days")
            order.append(.trending)
        } else if c.sources.contains(.popular) {
            reasons.append("popular this month: \(signals.buyers30[c.item] ?? 0) customers bought it in the last 30 days")
            order.append(.popular)
        }
        return Recommendation(
            sku: item?.sku ?? "?", title: item?.title ?? "", score: score, source: (order.first ?? .popular).rawValue,
            sources: c.sources.map(\.rawValue).sorted(), reasons: reasons)
    }
}
