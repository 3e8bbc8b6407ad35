import AisleCore
import AisleFeatures
import AisleModels
import AisleStore
import Foundation
import GRDB

/// What a store manager reads: customers by segment and how they moved, churn risk, the
/// strongest basket rules, review sentiment and sales by category (or by theme when the catalog
/// has no categories) over time. `aislectl report` prints it as JSON or renders it as HTML.
public struct StoreReport: Sendable, Encodable {
    public struct Rule: Sendable, Encodable {
        public var antecedents: [String]
        public var consequents: [String]
        public var baskets: Int
        public var confidence: Double
        public var lift: Double
    }

    public struct Series: Sendable, Encodable {
        public var name: String
        public var values: [Double]
    }

    public var asOf: String
    public var since: String
    public var customers: Int
    public var receiptsLast30Days: Int
    public var revenueLast30Days: Double
    /// Segment sizes at `asOf` and at `since`, and the movement (then → now; `none`: not yet a customer).
    public var segments: [String: Int]
    public var segmentsSince: [String: Int]
    public var movement: [String: [String: Int]]
    /// Customers per tenth of churn probability (0–0.1, …, 0.9–1), and the model that scored them.
    public var churnRisk: [Int]
    public var churnModel: String
    public var rules: [Rule]
    public var sentimentMonths: [String]
    public var sentiment: [Double]
    public var sentimentReviews: [Int]
    /// Net revenue per month of the six largest categories (or themes), and their share of all.
    public var salesGrouping: String
    public var salesShown: Double
    public var salesMonths: [String]
    public var sales: [Series]

    /// The report as of `t`, with segment movement since `since`; basket rules over the year
    /// before `t`.
    public static func build(_ db: Database, asOf t: Int64, since: Int64) throws -> StoreReport {
        let now = try CustomerSnapshot.load(db, asOf: t).rfm(), then = try CustomerSnapshot.load(db, asOf: since).rfm()
        var sizes: [String: Int] = [:], before: [String: Int] = [:], movement: [String: [String: Int]] = [:]
        for s in now.values { sizes[s.segment.rawValue, default: 0] += 1 }
        for s in then.values { before[s.segment.rawValue, default: 0] += 1 }
        for (id, s) in now { movement[then[id]?.segment.rawValue ?? "none", default: [:]][s.segment.rawValue, default: 0] += 1 }

        let insight = try CustomerInsight.computeAll(db, asOf: t).insight
        var risk = [Int](repeating: 0, count: 10)
        for i in insight.values { risk[min(9, max(0, Int(i.churnProbability * 10)))] += 1 }

        // As the rest of the report counts them: a purchase without a receipt is one; sellable
        // items only, net of returns (the sales chart's revenue).
        let recent = try Row.fetchOne(db, sql: """
            SELECT count(DISTINCT CASE WHEN e.type = 'purchase' THEN coalesce(e.receipt_id, -e.id) END),
                   coalesce(sum(CASE WHEN e.type = 'purchase' THEN 1 ELSE -1 END * e.qty * e.price), 0)
            FROM events e LEFT JOIN items i ON i.id = e.item_id
            WHERE e.type IN ('purchase', 'return') AND e.ts >= ? AND e.ts < ? AND e.price > 0 AND (i.sellable IS NULL OR i.sellable = 1)
            """, arguments: [t - 30 * 86_400, t])
        let months = sentimentTrend(try ReviewSentiment.byMonth(db, before: t))
        let (grouping, salesMonths, series, shown) = try sales(db, asOf: t)
        return StoreReport(
            asOf: Timestamp.format(t), since: Timestamp.format(since), customers: now.count,
            receiptsLast30Days: recent?[0] ?? 0, revenueLast30Days: recent?[1] ?? 0,
            segments: sizes, segmentsSince: before, movement: movement, churnRisk: risk,
            churnModel: insight.values.first?.churnModel ?? "none", rules: try rules(db, asOf: t),
            sentimentMonths: months.map(\.month), sentiment: months.map(\.mean), sentimentReviews: months.map(\.reviews),
            salesGrouping: grouping, salesShown: shown, salesMonths: salesMonths, sales: series)
    }

    static func sentimentTrend(_ months: [(month: String, sentiment: ReviewSentiment.Aggregate)]) -> [(month: String, mean: Double, reviews: Int)] {
        months.suffix(24).map { ($0.month, $0.sentiment.meanScore, $0.sentiment.reviews) }
    }

    /// The ten rules with the highest lift among those with support ≥ 1 % and confidence ≥ 30 %
    /// over the receipts of the year before `t`, items named by title.
    static func rules(_ db: Database, asOf t: Int64) throws -> [Rule] {
        let data = try Baskets.load(db, from: t - 365 * 86_400, to: t)
        guard !data.baskets.isEmpty else { return [] }
        let itemsets = FPGrowth.frequentItemsets(data.baskets, minSupport: 0.01, maxLength: 3)
        let mined = AssociationRule.mine(itemsets, baskets: data.baskets.count, minConfidence: 0.3).prefix(10)
        let titles = Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, title, sku FROM items").map {
            (Int($0[0] as Int64), ($0[1] as String).isEmpty ? $0[2] as String : $0[1] as String)
        })
        let name = { (ids: [Int]) in ids.map { titles[$0] ?? "?" }.sorted() }
        return mined.map { Rule(antecedents: name($0.antecedents), consequents: name($0.consequents), baskets: $0.count, confidence: $0.confidence, lift: $0.lift) }
    }

    /// Every month "YYYY-MM" from `first` through `last` (empty without them): a month without
    /// sales is a zero on the chart, not a gap its neighbours close over.
    static func months(from first: String?, through last: String?) -> [String] {
        func parts(_ m: String?) -> (Int, Int)? {
            guard let m, let y = Int(m.prefix(4)), let mo = Int(m.suffix(2)) else { return nil }
            return (y, mo)
        }
        guard var (y, m) = parts(first), let end = parts(last), (y, m) <= end else { return [] }
        var out: [String] = []
        while (y, m) <= end {
            out.append(String(format: "%04d-%02d", y, m))
            (y, m) = Timestamp.monthAfter(year: y, month: m)
        }
        return out
    }

    /// Net revenue by month over the year before `t`, per category — or per theme of the active
    /// themes model when no item has a category; the six largest, and their share of the total.
    static func sales(_ db: Database, asOf t: Int64) throws -> (grouping: String, months: [String], series: [Series], shown: Double) {
        let rows = try Row.fetchAll(db, sql: """
            SELECT strftime('%Y-%m', d.day * 86400, 'unixepoch') AS month, d.item_id, i.category, sum(d.revenue - d.returned_value)
            FROM item_daily d JOIN items i ON i.id = d.item_id
            WHERE i.sellable = 1 AND d.day >= ? AND d.day < ? GROUP BY 1, 2
            """, arguments: [(t - 365 * 86_400) / 86_400, t / 86_400])  // whole days before t: item_daily has no hours
        let byCategory = rows.contains { ($0[2] as String?) != nil }
        let themes = byCategory ? nil : try ThemeModel.active(db)?.model
        func group(_ row: Row) -> String {
            if byCategory { return row[2] ?? "uncategorised" }
            guard let themes else { return "all items" }
            guard let theme = themes.itemThemes[row[1]] else { return "unthemed items" }  // new or gone since the themes were made
            return themes.themes[theme].label
        }
        var revenue: [String: [String: Double]] = [:], totals: [String: Double] = [:]
        for row in rows {
            let g = group(row), month: String = row[0], value: Double = row[3]
            revenue[g, default: [:]][month, default: 0] += value
            totals[g, default: 0] += value
        }
        let months = rows.isEmpty ? [] : Self.months(from: String(Timestamp.format(t - 365 * 86_400).prefix(7)), through: String(Timestamp.format(t - 1).prefix(7)))
        let top = totals.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(6).map(\.key)  // ties by name: the same every run
        let series = top.map { g in Series(name: g, values: months.map { revenue[g]?[$0] ?? 0 }) }
        let all = totals.values.reduce(0, +)
        let shown = all > 0 ? top.reduce(0) { $0 + (totals[$1] ?? 0) } / all : 0
        return (byCategory ? "category" : themes == nil ? "store" : "theme", months, series, shown)
    }
}
