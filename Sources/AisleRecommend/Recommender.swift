import AisleCore
import AisleInsight
import AisleStore
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
        /// Its category, else its theme label, else nil, numbered at build (a cheap key on the
        /// request path): what the diversity cap counts.
        public var group: Int?
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

    /// One ranked item of a precomputed slate: compact, explained when served.
    public struct Slot: Sendable {
        public var item: Int32
        public var score: Float
        var sources: UInt16
        var because: Int32
        var baskets: Int32
        var similarTo: Int32

        init(_ c: Candidate, score: Double) {
            item = Int32(c.item)
            self.score = Float(score)
            sources = c.sources.reduce(0) { $0 | (1 << UInt16(CandidateSource.allCases.firstIndex(of: $1) ?? 0)) }
            because = Int32(c.because?.item ?? -1)
            baskets = Int32(c.because?.baskets ?? 0)
            similarTo = Int32(c.similar?.item ?? -1)
        }

        func has(_ source: CandidateSource) -> Bool { sources & (1 << UInt16(CandidateSource.allCases.firstIndex(of: source) ?? 0)) != 0 }
        var candidateSources: [CandidateSource] { CandidateSource.allCases.filter(has) }
    }

    /// Slates kept per customer, ranked, before the request's own rules.
    public static let slotsPerCustomer = 80

    public let signals: Signals
    public let ranker: Ranker?
    /// The catalog's content neighbours (nil: no title embeddings yet, or too large a catalog).
    public let similar: ContentNeighbours?
    /// "ranker v3" or "heuristic" (no ranker trained yet).
    public let model: String
    public let items: [Int: Item]
    public let skus: [String: Int]
    let customers: [PseudonymKey: Int64]
    /// Customer → items returned in the last 90 days (not recommended again soon).
    let returned: [Int64: Set<Int>]
    /// Every known customer's ranked slate, and the store's for nobody in particular.
    private(set) var ranked: [Int64: [Slot]]
    private(set) var storeSlate: [Slot]
    public let asOf: Int64
    /// The items not on offer (``OfferedItems``) as last read — sold out, or withdrawn since the
    /// build (which ranks the listed items, in stock or not) — left out of every slate; the agent
    /// reads them every few seconds (``withdrawing(_:)``) rather than rebuild the index, so an
    /// item back in stock is offered again at once.
    public private(set) var unavailable: Set<Int> = []

    /// Builds the index as of `t` from the store's purchases, catalog and returns.
    /// `fleet`: the global priors' popularity, which a new store's popular items follow;
    /// `similar`: the content neighbours, for visits.
    public static func build(
        _ db: Database, asOf t: Int64, ranker: (model: Ranker, version: Int)?, themes: ThemeModel?, fleet: FleetPopularity?, similar: ContentNeighbours? = nil
    ) throws -> RecommendationIndex {
        var items: [Int: Item] = [:], skus: [String: Int] = [:], groups: [String: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, sku, title, category, \(OfferedItems.listed()) FROM items") {
            let id = Int(row[0] as Int64)
            let theme = themes?.itemThemes[Int64(id)].flatMap { $0 < (themes?.themes.count ?? 0) ? themes?.themes[$0].label : nil }
            let group = ((row[3] as String?) ?? theme).map { name in
                if let n = groups[name] { return n }
                groups[name] = groups.count
                return groups.count - 1
            }
            items[id] = Item(id: id, sku: row[1], title: row[2], group: group, recommendable: row[4])
            skus[row[1]] = id
        }
        let signals = Signals(try PurchaseHistory.load(db, to: t), fleetShares: fleet?.shares(skus) ?? [:])
        var customers: [PseudonymKey: Int64] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT id, pseudonym FROM customers") { customers[PseudonymKey(row[1])] = row[0] }
        var returned: [Int64: Set<Int>] = [:]
        for row in try Row.fetchAll(db, sql: """
            SELECT customer_id, item_id FROM events WHERE type = 'return' AND customer_id IS NOT NULL AND item_id IS NOT NULL AND ts >= ? AND ts < ?
            """, arguments: [t - 90 * 86_400, t]) {
            returned[row[0], default: []].insert(Int(row[1] as Int64))
        }
        var index = RecommendationIndex(
            signals: signals, ranker: ranker?.model, similar: similar, model: ranker.map { "ranker v\($0.version)" } ?? "heuristic",
            items: items, skus: skus, customers: customers, returned: returned, ranked: [:], storeSlate: [], asOf: t)
        // Every customer's slate, ranked ahead of time on all cores: a request only applies its rules.
        index.unavailable = try unavailable(db)
        let ids = Array(signals.profiles.keys)
        let frozen = index
        index.ranked = Parallel.dictionary(count: ids.count) { i in (ids[i], Array(frozen.scored(customer: ids[i], visit: [:]).prefix(slotsPerCustomer))) }
        index.storeSlate = Array(frozen.scored(customer: nil, visit: [:]).prefix(slotsPerCustomer))
        return index
    }

    /// What goes with the visit, scored as for a shopper known only by it: basket partners of the
    /// visit's items, with their affinity on top of the ranker's score.
    func visitSlots(_ visit: [Int: Double]) -> [Slot] {
        Ranking.candidates(signals, customer: nil, visit: visit, sources: [.boughtTogether, .thisVisit, .similarItems], similar: similar)
            .filter { ($0.sources.contains(.thisVisit) || $0.sources.contains(.similarItems)) && items[$0.item]?.recommendable == true }
            .map { Slot($0, score: (ranker?.score($0) ?? Self.heuristic($0)) + Self.visitAffinity($0)) }
    }

    /// What a candidate owes to the visit, on top of the ranker's score (which learnt from
    /// purchase histories, not visits): its basket affinity with the visit's items (0–1), or, if
    /// larger, how much more its title is like one of theirs than ``ContentNeighbours`` requires
    /// (0–0.5, a near-identical title 0.5).
    static func visitAffinity(_ c: Candidate) -> Double {
        let together = c.sources.contains(.thisVisit) ? c.features[5] : 0
        let floor = Double(ContentNeighbours.minimumSimilarity)
        let alike = c.similar.map { 0.5 * max(0, Double($0.similarity) - floor) / (1 - floor) } ?? 0
        return max(together, alike)
    }

    /// Two slates as one, by score; an item in both keeps the higher score and both reasons —
    /// the visit's basket partner and title likeness whichever scores higher, since the reasons
    /// that name them ("goes with … in your cart", "similar to …") must name the visit's item.
    static func merged(_ a: [Slot], _ b: [Slot]) -> [Slot] {
        var byItem: [Int32: Slot] = [:]
        for slot in a + b {
            if var old = byItem[slot.item] {
                let partner = slot.has(.thisVisit) ? slot : old.has(.thisVisit) ? old : slot.score > old.score ? slot : old
                (old.because, old.baskets) = (partner.because, partner.baskets)
                if slot.similarTo >= 0 { old.similarTo = slot.similarTo }
                old.score = max(old.score, slot.score)
                old.sources |= slot.sources
                byItem[slot.item] = old
            } else {
                byItem[slot.item] = slot
            }
        }
        return byItem.values.sorted { $0.score != $1.score ? $0.score > $1.score : $0.item < $1.item }
    }

    /// Candidates for the customer and visit, scored and sorted, without the request's rules
    /// (only items that may be sold at all, and nothing the customer returned lately).
    func scored(customer: Int64?, visit: [Int: Double]) -> [Slot] {
        let returnedItems = customer.flatMap { returned[$0] } ?? []
        return Ranking.candidates(signals, customer: customer, visit: visit, similar: similar)
            .filter { items[$0.item]?.recommendable == true && !returnedItems.contains($0.item) }
            .map { Slot($0, score: (ranker?.score($0) ?? Self.heuristic($0)) + Self.visitAffinity($0)) }
            .sorted { $0.score != $1.score ? $0.score > $1.score : $0.item < $1.item }
    }

    /// The catalog's items not on offer now.
    public static func unavailable(_ db: Database) throws -> Set<Int> {
        Set(try Int64.fetchAll(db, sql: "SELECT id FROM items WHERE NOT (\(OfferedItems.condition()))").map { Int($0) })
    }

    /// The index with `unavailable` as the items not to offer (one withdrawn and listed again
    /// comes back with the next build, which ranks it).
    public func withdrawing(_ unavailable: Set<Int>) -> RecommendationIndex {
        var index = self
        index.unavailable = unavailable
        return index
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
    /// Diversity (MMR): a slot's score in the slate is its ranking score less this times the
    /// cosine of its title with the most alike title already in the slate (0 below
    /// ``ContentNeighbours/minimumSimilarity``, or without content neighbours).
    public static let diversity: Float = 0.2

    /// A slate, and the eligible items ranked after it (for exploration to choose from).
    public struct Slate: Sendable {
        public var items: [Recommendation]
        public var slots: [Slot]
        public var pool: [Slot]
    }

    /// The `k` best items for the query: candidates from every source, ranked, then the business
    /// rules — only items on offer (active, sellable, in stock); nothing in the cart, looked at
    /// this visit, excluded or returned in the last 90 days — at most ``perGroup`` per category
    /// or theme, and titles alike pushed apart (``diversity``). An unknown customer with an
    /// empty visit gets the store's popular and trending items (the fallback chain's end).
    public func recommend(_ q: Query) -> [Recommendation] { slate(q, pool: 0).items }

    /// As ``recommend(_:)``, with up to `pool` further eligible items after the slate.
    public func slate(_ q: Query, pool: Int) -> Slate {
        var visit: [Int: Double] = [:]
        for item in q.viewed { visit[item, default: 0] += 0.5 }
        for item in q.cart { visit[item, default: 0] += 1 }
        // Returned items too: the visit's candidates are scored as for nobody in particular.
        let blocked = q.exclude.union(q.cart).union(q.viewed).union(q.customer.flatMap { returned[$0] } ?? [])
        // Precomputed unless the visit changes the ranking, or the rules leave too few of the
        // precomputed slots (`everything`: these are all the candidates, so what they give will do).
        func pick(_ slots: [Slot], everything: Bool = false) -> Slate? {
            // The open slots with their items' groups, looked up once.
            var open = slots.compactMap { blocked.contains(Int($0.item)) || unavailable.contains(Int($0.item)) ? nil : (slot: $0, group: items[Int($0.item)]?.group) }
            var chosen: [Slot] = [], groups: [Int: Int] = [:]
            // Each item's likeness to the most alike chosen one, kept as items are chosen.
            var likeness: [Int32: Float] = [:]
            func capped(_ group: Int?) -> Bool { group.map { groups[$0, default: 0] >= Self.perGroup } ?? false }
            func adjusted(_ slot: Slot) -> Float { slot.score - Self.diversity * (likeness[slot.item] ?? 0) }
            // Maximal marginal relevance: each time, the slot whose score less its likeness to
            // those chosen is best; slots come best first, so the search stops at the first whose
            // score alone cannot win.
            while chosen.count < q.k {
                var best: (at: Int, score: Float)?
                for (at, (slot, group)) in open.enumerated() where !capped(group) {
                    if let best, slot.score <= best.score { break }
                    let score = adjusted(slot)
                    if score > best?.score ?? -.infinity { best = (at, score) }
                }
                guard let best else { break }
                var (slot, group) = open.remove(at: best.at)
                slot.score = best.score
                chosen.append(slot)
                if let group { groups[group, default: 0] += 1 }
                for n in similar?.alike(Int(slot.item)) ?? [] { likeness[Int32(n.item)] = max(likeness[Int32(n.item)] ?? 0, n.similarity) }
            }
            guard chosen.count == q.k || slots.count < Self.slotsPerCustomer || everything else { return nil }
            // The pool for exploration: what the rules still allow, scored as the slate's last
            // slot was (so none scores above it), best first.
            var rest: [Slot] = []
            for (slot, group) in open where pool > 0 && !capped(group) {
                var s = slot
                s.score = adjusted(slot)
                rest.append(s)
            }
            rest.sort { $0.score != $1.score ? $0.score > $1.score : $0.item < $1.item }
            let cart = Set(q.cart)
            return Slate(items: chosen.map { explain($0, customer: q.customer, cart: cart) }, slots: chosen, pool: Array(rest.prefix(pool)))
        }
        let base = q.customer.flatMap { ranked[$0] } ?? storeSlate
        if visit.isEmpty, let slate = pick(base) { return slate }
        if !visit.isEmpty, let slate = pick(Self.merged(base, visitSlots(visit))) { return slate }
        return pick(scored(customer: q.customer, visit: visit), everything: true) ?? Slate(items: [], slots: [], pool: [])
    }

    /// What the exploration policy reads of an item: its ranking score, which sources proposed
    /// it, and how many bought it lately.
    public func banditContext(_ slot: Slot) -> [Double] {
        [1, Double(slot.score)] + [CandidateSource.repurchase, .boughtTogether, .similarCustomers, .popular, .trending].map { slot.has($0) ? 1 : 0 }
            + [log1p(Double(signals.buyers30[Int(slot.item)] ?? 0)) / 5]
    }

    public static let banditDimensions = 8

    /// Without a trained ranker: the customer's own weight and the other sources' scores.
    static func heuristic(_ c: Candidate) -> Double {
        let f = c.features
        return 2 * f[13] + f[4] + f[5] + 0.02 * f[6] + 0.01 * f[8]
    }

    /// The item with its reasons in plain words, most telling first.
    public func explain(_ c: Slot, customer: Int64?, cart: Set<Int>) -> Recommendation {
        let item = items[Int(c.item)]
        var reasons: [String] = [], order: [CandidateSource] = []
        let b: (item: Int, baskets: Int)? = c.because >= 0 ? (Int(c.because), Int(c.baskets)) : nil
        if c.has(.thisVisit), let b, let title = items[b.item]?.title {
            reasons.append("goes with \(title) \(cart.contains(b.item) ? "in your cart" : "you looked at"): bought together in \(b.baskets) baskets")
            order.append(.thisVisit)
        }
        if c.has(.similarItems), c.similarTo >= 0, let title = items[Int(c.similarTo)]?.title {
            reasons.append("similar to \(title) \(cart.contains(Int(c.similarTo)) ? "in your cart" : "you looked at")")
            order.append(.similarItems)
        }
        if c.has(.repurchase), let customer, let own = signals.counts[customer]?[Int(c.item)] {
            var text = "you bought this \(own.days == 1 ? "once" : own.days == 2 ? "twice" : "on \(own.days) different days"), last \(Timestamp.format(Int64(own.last) * 86_400).prefix(10))"
            if let cycle = signals.cycleDays[Int(c.item)] { text += "; customers buy it again about every \(Int(cycle.rounded())) days" }
            reasons.append(text)
            order.append(.repurchase)
        }
        if c.has(.boughtTogether), !c.has(.thisVisit), let b, let title = items[b.item]?.title {
            reasons.append("bought together with \(title) in \(b.baskets) baskets")
            order.append(.boughtTogether)
        }
        if c.has(.similarCustomers) {
            reasons.append("popular with customers who buy what you buy")
            order.append(.similarCustomers)
        }
        // The segment's name stays out of a shopper's sight ("at risk", "hibernating").
        if c.has(.segmentPopular), let customer, let segment = signals.segments[customer],
            let buyers = signals.segmentPopular[segment]?.first(where: { $0.item == Int(c.item) })?.buyers
        {
            reasons.append("popular with customers who shop like you: \(buyers) of them bought it in the last 90 days")
            order.append(.segmentPopular)
        }
        if c.has(.trending) {
            reasons.append("trending: \(signals.buyers30[Int(c.item)] ?? 0) customers bought it in the last 30 days")
            order.append(.trending)
        } else if c.has(.popular) {
            let own = signals.buyers30[Int(c.item)] ?? 0
            reasons.append(
                Double(own) >= signals.fleetBuyers30[Int(c.item)] ?? 0
                    ? "popular this month: \(own) customers bought it in the last 30 days" : "popular across our stores this month")
            order.append(.popular)
        }
        return Recommendation(
            sku: item?.sku ?? "?", title: item?.title ?? "", score: Double(c.score), source: (order.first ?? .popular).rawValue,
            sources: c.candidateSources.map(\.rawValue).sorted(), reasons: reasons)
    }
}
