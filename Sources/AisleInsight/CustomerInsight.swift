import AisleCore
import AisleFeatures
import AisleModels
import AisleStore
import Foundation
import GRDB

/// What the store knows of each customer as of a moment: RFM segment, BG/NBD (probability alive,
/// expected purchases), Gamma-Gamma (expected spend per purchase), and churn risk with the
/// features that drove it — computed for every customer at once, so that serving one is a lookup.
public struct CustomerInsight: Sendable, Encodable {
    public struct Driver: Sendable, Encodable {
        public var feature: String
        /// Contribution to the log-odds of churn (standardised value × weight).
        public var contribution: Double
    }

    public var asOf: String
    public var segment: String
    public var rfm: [String: Int]
    public var probabilityAlive: Double
    /// Expected purchases (purchase days) in the next `horizonDays`.
    public var expectedPurchases: Double
    public var horizonDays: Int
    public var expectedValuePerPurchase: Double
    public var churnProbability: Double
    public var churnDrivers: [Driver]

    /// Every customer with a purchase before `t` (their store ids), from one snapshot; the churn
    /// model is trained on the same set-up one horizon earlier.
    public static func computeAll(_ db: Database, asOf t: Int64, horizonDays: Int = 91) throws -> [Int64: CustomerInsight] {
        let h = Int64(horizonDays) * 86_400
        let snapshot = try CustomerSnapshot.load(db, asOf: t)
        let features = ChurnFeatures.rows(snapshot, horizonDays: Double(horizonDays))
        let earlier = try CustomerSnapshot.load(db, asOf: t - h)
        let buyers = try CustomerSnapshot.buyers(db, from: t - h, to: t)
        let training = ChurnFeatures.rows(earlier, horizonDays: Double(horizonDays))
        let labels = training.ids.map { !buyers.contains($0) }
        let churn = Set(labels).count == 2 ? LogisticRegression.fit(training.rows, labels, l2: 10) : nil
        let today = Double(t) / 86_400
        var rfmInput: [RFM.Customer] = [], spend: [(frequency: Int, meanValue: Double)] = []
        var summaries: [Int64: PurchaseSummary] = [:]
        for (id, history) in snapshot.customers {
            let days = history.purchaseDays
            let first = Double(days.first ?? 0), last = Double(days.last ?? 0)
            summaries[id] = PurchaseSummary(frequency: days.count - 1, recency: (last - first) / 7, age: (today - first) / 7)
            rfmInput.append(RFM.Customer(
                id: id, recencyDays: Double(t - (history.receipts.last ?? t)) / 86_400, frequency: Double(history.receipts.count),
                monetary: history.receiptValues.reduce(0, +)))
            let repeats = history.receiptValues.dropFirst()
            spend.append((repeats.count, repeats.isEmpty ? 0 : repeats.reduce(0, +) / Double(repeats.count)))
        }
        let scores = RFM.score(rfmInput)
        let value = spend.filter { $0.frequency > 0 && $0.meanValue > 0 }.count >= 10 ? GammaGamma.fit(spend).model : nil
        let asOf = Timestamp.format(t)
        var out: [Int64: CustomerInsight] = [:]
        for (id, row) in zip(features.ids, features.rows) {
            guard let summary = summaries[id], let score = scores[id], let history = snapshot.customers[id] else { continue }
            let repeats = history.receiptValues.dropFirst()
            let contributions = churn?.contributions(row) ?? []
            let drivers = zip(ChurnFeatures.names, contributions).sorted { abs($0.1) > abs($1.1) }.prefix(3)
            out[id] = CustomerInsight(
                asOf: asOf, segment: score.segment.rawValue, rfm: ["r": score.r, "f": score.f, "m": score.m],
                probabilityAlive: features.bgnbd.probabilityAlive(summary),
                expectedPurchases: features.bgnbd.expectedPurchases(summary, in: Double(horizonDays) / 7), horizonDays: horizonDays,
                expectedValuePerPurchase: value?.expectedValue(frequency: repeats.count, meanValue: repeats.isEmpty ? 0 : repeats.reduce(0, +) / Double(repeats.count))
                    ?? (history.receiptValues.reduce(0, +) / Double(max(1, history.receipts.count))),
                churnProbability: churn?.probability(row) ?? (1 - features.bgnbd.probabilityAlive(summary)),
                churnDrivers: drivers.map { Driver(feature: $0.0, contribution: $0.1) })
        }
        return out
    }
}
