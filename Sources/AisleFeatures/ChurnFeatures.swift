import AisleModels
import Foundation
import GRDB

/// The features the churn and repurchase models read, from a ``CustomerSnapshot``: recency,
/// frequency, monetary value, tenure, the rhythm of purchases (gaps and how overdue the next
/// one is), recent activity, breadth, returns, and BG/NBD's view of the customer (probability
/// alive, expected purchases over the horizon) fitted on the same snapshot.
public enum ChurnFeatures {
    public static let names = [
        "log_recency_days", "log_tenure_days", "log_purchase_days", "log_receipts", "log_monetary", "log_mean_receipt",
        "log_mean_gap_days", "gap_cv", "overdue_ratio", "receipts_30d", "receipts_90d", "receipts_180d",
        "log_spend_90d", "log_distinct_items", "return_rate", "bgnbd_p_alive", "bgnbd_log_expected",
    ]

    /// The feature rows of every customer in the snapshot (same order as `ids`), their purchase
    /// summaries in weeks, and the BG/NBD fit used: `bgnbd` when given (the store's, for a few
    /// customers), else fitted on the snapshot (``BGNBD/fitOrPrior(_:)``: the prior below ten
    /// customers).
    public static func rows(_ snapshot: CustomerSnapshot, horizonDays: Double, bgnbd fitted: BGNBD? = nil)
        -> (ids: [Int64], rows: [[Double]], summaries: [PurchaseSummary], bgnbd: BGNBD)
    {
        let entries = snapshot.customers.sorted { $0.key < $1.key }
        let today = Double(snapshot.asOf) / 86_400
        let summaries = entries.map { PurchaseSummary(days: $0.value.purchaseDays, end: today) }
        let bgnbd = fitted ?? BGNBD.fitOrPrior(summaries)
        let rows = zip(entries, summaries).map { entry, summary -> [Double] in
            let h = entry.value
            let days = h.purchaseDays.map(Double.init)
            let first = days.first ?? today, last = days.last ?? today
            let gaps = zip(days.dropFirst(), days).map { $0 - $1 }
            let meanGap = gaps.isEmpty ? (today - first) : gaps.reduce(0, +) / Double(gaps.count)
            let gapSD = gaps.count < 2 ? 0 : (gaps.map { ($0 - meanGap) * ($0 - meanGap) }.reduce(0, +) / Double(gaps.count - 1)).squareRoot()
            let recency = today - last
            func within(_ d: Double) -> [Int] { h.receipts.indices.filter { Double(h.receipts[$0]) / 86_400 >= today - d } }
            let monetary = h.receiptValues.reduce(0, +)
            return [
                log1p(recency), log1p(today - first), log1p(Double(days.count)), log1p(Double(h.receipts.count)),
                log1p(max(0, monetary)), log1p(max(0, monetary / Double(h.receipts.count))),
                log1p(meanGap), meanGap > 0 ? gapSD / meanGap : 0, recency / max(meanGap, 1),
                Double(within(30).count), Double(within(90).count), Double(within(180).count),
                log1p(max(0, within(90).reduce(0) { $0 + h.receiptValues[$1] })), log1p(Double(h.itemSpend.count)),
                Double(h.returns) / Double(h.returns + h.receipts.count),
                bgnbd.probabilityAlive(summary), log1p(bgnbd.expectedPurchases(summary, in: horizonDays / 7)),
            ]
        }
        return (entries.map(\.key), rows, summaries, bgnbd)
    }

    /// The feature rows of the customers who bought before `t`, and whether each churned: no
    /// purchase in [t, t + horizon). Training data when t + horizon is still in the past.
    public static func labelled(_ db: Database, asOf t: Int64, horizonDays: Int) throws -> (rows: [[Double]], churned: [Bool]) {
        let horizon = Int64(horizonDays) * 86_400
        let features = rows(try CustomerSnapshot.load(db, asOf: t), horizonDays: Double(horizonDays))
        let buyers = try CustomerSnapshot.buyers(db, from: t, to: t + horizon)
        return (features.rows, features.ids.map { !buyers.contains($0) })
    }
}
