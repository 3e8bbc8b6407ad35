/// RFM scoring: recency, frequency and monetary value each scored 1–5 by quintile of the store's
/// customers (5 = most recent, most frequent, highest spend; ties share a score), and named
/// segments from recency and frequency (docs/MODELS.md has the table).
public enum RFM {
    public struct Customer: Sendable {
        public var id: Int64
        public var recencyDays: Double
        public var frequency: Double
        public var monetary: Double
        public init(id: Int64, recencyDays: Double, frequency: Double, monetary: Double) {
            (self.id, self.recencyDays, self.frequency, self.monetary) = (id, recencyDays, frequency, monetary)
        }
    }

    public struct Score: Sendable, Equatable, Codable {
        public var r, f, m: Int
        public var segment: Segment
    }

    public enum Segment: String, Sendable, Codable, CaseIterable {
        case champions, loyal, new, promising, needsAttention = "needs attention", atRisk = "at risk", hibernating

        /// The first rule that holds, in this order: champions R≥4 F≥4; loyal R≥3 F≥3; new R≥4 F=1;
        /// promising R≥4 F=2; needs attention R=3 F≤2; at risk R≤2 F≥3; hibernating R≤2 F≤2.
        public init(r: Int, f: Int) {
            switch (r, f) {
            case (4..., 4...): self = .champions
            case (3..., 3...): self = .loyal
            case (4..., 1): self = .new
            case (4..., _): self = .promising
            case (3, _): self = .needsAttention
            case (_, 3...): self = .atRisk
            default: self = .hibernating
            }
        }
    }

    public static func score(_ customers: [Customer]) -> [Int64: Score] {
        let scale = Scale(customers)
        return Dictionary(uniqueKeysWithValues: customers.map { ($0.id, scale.score($0)) })
    }

    /// The store's customers' values, sorted: scores a customer against them, so one customer
    /// can be rescored after a purchase without rescoring the store.
    public struct Scale: Sendable {
        let recency: [Double], frequency: [Double], monetary: [Double]

        public init(_ customers: [Customer]) {
            recency = customers.map { -$0.recencyDays }.sorted()
            frequency = customers.map(\.frequency).sorted()
            monetary = customers.map(\.monetary).sorted()
        }

        /// R, F and M each 1–5 by the share of the store's values below the customer's (higher
        /// is better): equal values share a score, and a large tie at the bottom (one-time
        /// buyers) does not push the next value up a step.
        public func score(_ c: Customer) -> Score {
            let r = Self.quintile(-c.recencyDays, recency), f = Self.quintile(c.frequency, frequency), m = Self.quintile(c.monetary, monetary)
            return Score(r: r, f: f, m: m, segment: Segment(r: r, f: f))
        }

        static func quintile(_ value: Double, _ sorted: [Double]) -> Int {
            guard !sorted.isEmpty else { return 1 }
            var low = 0, high = sorted.count  // the first index whose value is not below `value`
            while low < high {
                let mid = (low + high) / 2
                if sorted[mid] < value { low = mid + 1 } else { high = mid }
            }
            return min(5, 1 + Int(Double(low) / Double(sorted.count) * 5))
        }
    }
}
