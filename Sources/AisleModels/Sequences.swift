/// Behaviour over time: what customers buy next, and how long until they buy an item again.
public enum Sequences {
    /// `from → to` between consecutive purchases of the same customer.
    public struct Transition: Sendable, Equatable {
        public var from: String
        public var to: String
        /// Consecutive-purchase pairs with `from` in the first and `to` in the second.
        public var count: Int
        /// count / pairs whose first purchase has `from`.
        public var confidence: Double
        /// confidence / the share of second purchases that have `to`.
        public var lift: Double
    }

    /// Transitions over every customer's purchases in time order (each purchase a set of labels:
    /// items or categories), seen at least `minCount` times; by count, then confidence.
    public static func transitions(_ customers: [[Set<String>]], minCount: Int = 5) -> [Transition] {
        var pair: [String: [String: Int]] = [:], fromTotal: [String: Int] = [:], toTotal: [String: Int] = [:]
        var pairs = 0
        for purchases in customers where purchases.count >= 2 {
            for (a, b) in zip(purchases, purchases.dropFirst()) where !a.isEmpty && !b.isEmpty {  // an empty one breaks the chain
                pairs += 1
                for x in a { fromTotal[x, default: 0] += 1 }
                for y in b { toTotal[y, default: 0] += 1 }
                for x in a { for y in b { pair[x, default: [:]][y, default: 0] += 1 } }
            }
        }
        var out: [Transition] = []
        for (x, targets) in pair {
            for (y, n) in targets where n >= minCount {
                let confidence = Double(n) / Double(fromTotal[x] ?? 1)
                out.append(Transition(from: x, to: y, count: n, confidence: confidence, lift: confidence / (Double(toTotal[y] ?? 1) / Double(pairs))))
            }
        }
        return out.sorted { ($0.count, $0.confidence, $1.from, $1.to) > ($1.count, $1.confidence, $0.from, $0.to) }
    }

    /// How long customers take to buy an item again.
    public struct Cycle: Sendable, Equatable {
        public var item: String
        /// Customers who bought it on two or more days.
        public var customers: Int
        public var gaps: Int
        public var medianDays: Double
        public var lowerQuartileDays: Double
        public var upperQuartileDays: Double
    }

    /// Per item, the gaps in days between a customer's consecutive purchase days of it; items
    /// bought again by at least `minCustomers` customers, most customers first.
    public static func repurchaseCycles(_ purchases: [(item: String, customer: Int64, day: Int)], minCustomers: Int = 5) -> [Cycle] {
        var days: [String: [Int64: Set<Int>]] = [:]
        for p in purchases { days[p.item, default: [:]][p.customer, default: []].insert(p.day) }
        var out: [Cycle] = []
        for (item, byCustomer) in days {
            var gaps: [Double] = []
            var customers = 0
            for (_, set) in byCustomer where set.count >= 2 {
                customers += 1
                let sorted = set.sorted()
                gaps += zip(sorted.dropFirst(), sorted).map { Double($0 - $1) }
            }
            guard customers >= minCustomers else { continue }
            gaps.sort()
            out.append(Cycle(item: item, customers: customers, gaps: gaps.count, medianDays: quantile(gaps, 0.5),
                             lowerQuartileDays: quantile(gaps, 0.25), upperQuartileDays: quantile(gaps, 0.75)))
        }
        return out.sorted { ($0.customers, $1.item) > ($1.customers, $0.item) }
    }

    /// The q-quantile of sorted values, linearly interpolated.
    static func quantile(_ sorted: [Double], _ q: Double) -> Double {
        guard let first = sorted.first else { return .nan }
        let position = q * Double(sorted.count - 1)
        let i = Int(position)
        guard i + 1 < sorted.count else { return sorted.last ?? first }
        return sorted[i] + (position - Double(i)) * (sorted[i + 1] - sorted[i])
    }
}
