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
        let r = quintiles(customers.map { -$0.recencyDays }), f = quintiles(customers.map(\.frequency)), m = quintiles(customers.map(\.monetary))
        var out: [Int64: Score] = [:]
        for (i, c) in customers.enumerated() { out[c.id] = Score(r: r[i], f: f[i], m: m[i], segment: Segment(r: r[i], f: f[i])) }
        return out
    }

    /// 1–5 by the share of values below this one (higher is better): equal values share a score,
    /// and a large tie at the bottom (one-time buyers) does not push the next value up a step.
    public static func quintiles(_ values: [Double]) -> [Int] {
        let order = values.indices.sorted { values[$0] < values[$1] }
        var scores = [Int](repeating: 1, count: values.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count, values[order[j + 1]] == values[order[i]] { j += 1 }
            let below = Double(i) / Double(order.count)
            for k in i...j { scores[order[k]] = min(5, 1 + Int(below * 5)) }
            i = j + 1
        }
        return scores
    }
}
