import AisleCore
import AisleModels
import Foundation

/// What the recommender knows as of a day, computed once from a ``PurchaseHistory``: each
/// customer's recency-weighted item profile, their nearest neighbours by that profile, item
/// co-occurrence in baskets, item popularity, trend and repurchase cycles. Candidates and
/// ranking features are read from it; serving keeps one in memory.
public struct Signals: Sendable {
    public struct Settings: Sendable, Equatable {
        /// Days after which a purchase counts half in a customer's profile.
        public var halfLifeDays = 90.0
        /// Neighbours per customer.
        public var neighbours = 40
        public init() {}
    }

    public let end: Int
    /// Customer → item → recency-weighted purchase days (un-normalised), and its L2 norm.
    public let profiles: [Int64: [Int: Double]]
    let norms: [Int64: Double]
    /// Customer → (item → distinct purchase days, last day).
    public let counts: [Int64: [Int: (days: Int, last: Int)]]
    /// Customer → distinct days with a purchase.
    public let purchaseDays: [Int64: Int]
    /// Customer → nearest customers with their cosine similarity.
    public let neighbours: [Int64: [(customer: Int64, similarity: Double)]]
    /// Item → co-bought items with cosine-normalised basket counts (top 50 each).
    public let cooccurrence: [Int: [(item: Int, score: Double, baskets: Int)]]
    /// Item → distinct buyers in the last 30 and 90 days, and the 90 before those.
    public let buyers30: [Int: Int], buyers90: [Int: Int], buyersPrior90: [Int: Int]
    /// Item → first day it was bought; median days between a customer's purchase days of it.
    public let firstDay: [Int: Int]
    public let cycleDays: [Int: Double]
    /// Item → the fleet's buyers in 30 days as this store's would count them: its share of all
    /// stores' receipts × ``fleetWeight`` (empty without global priors).
    public let fleetBuyers30: [Int: Double]
    /// How many receipts of this store's the fleet's popularity counts as: a new store follows
    /// the fleet, an established one its own customers.
    public static let fleetWeight = 100.0
    /// Items by ``popularity(_:)``, most first.
    public let popular: [Int]
    /// Items whose buyers grew most (last 30 days against the 30 before), most first.
    public let trending: [Int]
    /// Customer → RFM segment as of `end`: days since the last purchase and receipts, scored
    /// by quintile over these customers (as the insight scores them, without spend, which
    /// segments do not use).
    public let segments: [Int64: RFM.Segment]
    /// Segment → the items most of its customers bought in the last 90 days (distinct buyers),
    /// most first, ``perSegment`` at most: the segment's candidates.
    public let segmentPopular: [RFM.Segment: [(item: Int, buyers: Int)]]
    /// More crowded out new items (R2's new-item recall fell from 0.076 to 0.064 with 30) for no
    /// gain in recall; 10 lifted R2's NDCG@10 from 0.414 to 0.419.
    public static let perSegment = 10

    /// From `history`; `fleetShares` (item → share of the fleet's receipts holding it) from the
    /// global priors, when the store has them.
    public init(_ history: PurchaseHistory, settings: Settings = .init(), fleetShares: [Int: Double] = [:]) {
        end = history.end
        var profiles: [Int64: [Int: Double]] = [:], counts: [Int64: [Int: (days: Int, last: Int)]] = [:]
        var b30: [Int: Set<Int64>] = [:], b90: [Int: Set<Int64>] = [:], bPrior: [Int: Set<Int64>] = [:], bPrev30: [Int: Set<Int64>] = [:]
        var first: [Int: Int] = [:], gaps: [Int: [Int]] = [:]
        var baskets: [Int64: Set<Int>] = [:]
        for (customer, lines) in history.customers {
            var days: [Int: [Int]] = [:]
            for line in lines {
                if days[line.item]?.last != line.day { days[line.item, default: []].append(line.day) }
                let age = history.end - line.day
                if age <= 30 { b30[line.item, default: []].insert(customer) } else if age <= 60 { bPrev30[line.item, default: []].insert(customer) }
                if age <= 90 { b90[line.item, default: []].insert(customer) } else if age <= 180 { bPrior[line.item, default: []].insert(customer) }
                first[line.item] = min(first[line.item] ?? line.day, line.day)
                if age <= 365 { baskets[line.receipt, default: []].insert(line.item) }
            }
            var profile: [Int: Double] = [:], count: [Int: (days: Int, last: Int)] = [:]
            for (item, ds) in days {
                profile[item] = ds.reduce(0) { $0 + pow(0.5, Double(history.end - $1) / settings.halfLifeDays) }
                count[item] = (ds.count, ds.last ?? 0)
                gaps[item, default: []] += zip(ds.dropFirst(), ds).map { $0 - $1 }
            }
            profiles[customer] = profile
            counts[customer] = count
        }
        self.profiles = profiles
        self.counts = counts
        purchaseDays = history.customers.mapValues { Set($0.map(\.day)).count }
        norms = profiles.mapValues(Self.norm)
        let own30 = b30.mapValues(\.count)
        buyers30 = own30
        buyers90 = b90.mapValues(\.count)
        buyersPrior90 = bPrior.mapValues(\.count)
        firstDay = first
        cycleDays = gaps.compactMapValues { g in g.count >= 3 ? Double(g.sorted()[g.count / 2]) : nil }
        let fleet = fleetShares.mapValues { $0 * Self.fleetWeight }
        fleetBuyers30 = fleet
        popular = Set(own30.keys).union(fleet.keys).map { (item: $0, n: Double(own30[$0] ?? 0) + (fleet[$0] ?? 0)) }
            .sorted { $0.n != $1.n ? $0.n > $1.n : $0.item < $1.item }.map(\.item)
        let prev30 = bPrev30.mapValues(\.count)
        let growth: [(item: Int, ratio: Double)] = buyers30.filter { $0.value >= 5 }.map { item, n in
            (item, Double(n) / Double((prev30[item] ?? 0) + 3))
        }
        trending = growth.sorted { $0.ratio != $1.ratio ? $0.ratio > $1.ratio : $0.item < $1.item }.map(\.item)
        cooccurrence = Self.cooccurrence(Array(baskets.values))
        let rfm = history.customers.map { c, lines in
            RFM.Customer(id: c, recencyDays: Double(history.end - (lines.last?.day ?? history.end)), frequency: Double(Set(lines.map(\.receipt)).count), monetary: 0)
        }
        let scale = RFM.Scale(rfm)
        let segments = Dictionary(uniqueKeysWithValues: rfm.map { ($0.id, scale.score($0).segment) })
        var bySegment: [RFM.Segment: [Int: Int]] = [:]
        for (item, buyers) in b90 {
            for c in buyers { if let segment = segments[c] { bySegment[segment, default: [:]][item, default: 0] += 1 } }
        }
        self.segments = segments
        segmentPopular = bySegment.mapValues { counts in
            Array(counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(Self.perSegment).map { (item: $0.key, buyers: $0.value) })
        }
        neighbours = Self.neighbours(profiles, norms: norms, k: settings.neighbours)
    }

    /// Buyers of `item` in the last 30 days, the fleet's counted in (``fleetBuyers30``).
    public func popularity(_ item: Int) -> Double { Double(buyers30[item] ?? 0) + (fleetBuyers30[item] ?? 0) }

    /// Cosine of basket counts, count(i, j) / √(count(i) · count(j)), for pairs in two or more
    /// baskets; the 50 best partners of each item.
    static func cooccurrence(_ baskets: [Set<Int>]) -> [Int: [(item: Int, score: Double, baskets: Int)]] {
        var single: [Int: Int] = [:], pair: [Int: [Int: Int]] = [:]
        for basket in baskets where basket.count <= 100 {
            let items = basket.sorted()
            for (a, i) in items.enumerated() {
                single[i, default: 0] += 1
                for j in items[(a + 1)...] { pair[i, default: [:]][j, default: 0] += 1 }
            }
        }
        var partners: [Int: [(item: Int, score: Double, baskets: Int)]] = [:]
        for (i, row) in pair {
            for (j, n) in row where n >= 2 {
                let score = Double(n) / (Double(single[i] ?? 1) * Double(single[j] ?? 1)).squareRoot()
                partners[i, default: []].append((j, score, n))
                partners[j, default: []].append((i, score, n))
            }
        }
        return partners.mapValues { Array($0.sorted { $0.score != $1.score ? $0.score > $1.score : $0.item < $1.item }.prefix(50)) }
    }

    /// Each customer's `k` most similar customers by the cosine of their profiles, through an
    /// inverted index (only customers sharing an item are compared; ``maxBuyersCompared``), on
    /// all cores.
    static func neighbours(_ profiles: [Int64: [Int: Double]], norms: [Int64: Double], k: Int) -> [Int64: [(customer: Int64, similarity: Double)]] {
        let ids = profiles.keys.sorted()
        let norm = ids.map { norms[$0] ?? 1 }
        var buyers: [Int: [(customer: Int32, weight: Double)]] = [:]
        for (n, c) in ids.enumerated() { for (i, w) in profiles[c] ?? [:] { buyers[i, default: []].append((Int32(n), w)) } }
        buyers = buyers.filter { $0.value.count <= maxBuyersCompared }
        let frozen = buyers
        // Dot products in a dense array per core, with the customers touched listed to reset it.
        return Parallel.dictionary(count: ids.count, scratch: { (dot: [Double](repeating: 0, count: ids.count), touched: [Int32]()) }) { n, scratch in
            // Items in order, so that the sums (and the neighbours of near ties) are the same in
            // every run, whatever the process's hash seed.
            for (i, w) in (profiles[ids[n]] ?? [:]).sorted(by: { $0.key < $1.key }) {
                for (other, v) in frozen[i] ?? [] where other != Int32(n) {
                    if scratch.dot[Int(other)] == 0 { scratch.touched.append(other) }
                    scratch.dot[Int(other)] += w * v
                }
            }
            var best = TopK<(customer: Int64, similarity: Double)>(k) { a, b in
                a.similarity != b.similarity ? a.similarity > b.similarity : a.customer < b.customer
            }
            for other in scratch.touched {
                let o = Int(other)
                best.offer((ids[o], scratch.dot[o] / max(1e-12, norm[n] * norm[o])))
                scratch.dot[o] = 0
            }
            scratch.touched.removeAll(keepingCapacity: true)
            return (ids[n], best.elements)
        }
    }

    /// Items bought by more customers than this say little about who is like whom and are left
    /// out of the neighbour search (it would be quadratic in their buyers); Online Retail's most
    /// bought item has 881.
    static let maxBuyersCompared = 2_000

    /// A profile's L2 norm, summed in item order: the same in every run, whatever the process's
    /// hash seed (a dictionary's order is not).
    static func norm(_ profile: [Int: Double]) -> Double {
        profile.sorted { $0.key < $1.key }.reduce(0) { $0 + $1.value * $1.value }.squareRoot()
    }

    /// The neighbours' normalised profiles, weighted by similarity: what customers like this one buy.
    public func neighbourScores(_ customer: Int64) -> [Int: Double] {
        var scores: [Int: Double] = [:]
        let nn = neighbours[customer] ?? []
        let total = nn.reduce(0) { $0 + $1.similarity }
        guard total > 0 else { return [:] }
        for (other, sim) in nn {
            let n = norms[other] ?? 1
            for (i, w) in profiles[other] ?? [:] { scores[i, default: 0] += sim / total * w / n }
        }
        return scores
    }

    /// Items bought with those of a profile (the customer's, plus what is in the cart or was
    /// looked at this visit), weighted by the profile divided by `n` (its ``norm(_:)``, which the
    /// caller has), and for each the strongest basket partner behind it.
    public func cooccurrenceScores(_ profile: [Int: Double], norm n: Double) -> [Int: (score: Double, because: Int, baskets: Int)] {
        var out: [Int: (score: Double, because: Int, baskets: Int)] = [:]
        var strongest: [Int: Double] = [:]  // the largest single contribution so far, not the sum
        for (i, w) in profile.sorted(by: { $0.key < $1.key }) {
            for partner in cooccurrence[i] ?? [] {
                let add = w / n * partner.score
                let old = out[partner.item]
                guard add > strongest[partner.item, default: -.infinity] else {
                    out[partner.item]?.score += add
                    continue
                }
                strongest[partner.item] = add
                out[partner.item] = ((old?.score ?? 0) + add, i, partner.baskets)
            }
        }
        return out
    }
}
