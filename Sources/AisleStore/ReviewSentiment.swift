import AisleCore
import GRDB

/// Review sentiment scores and their aggregates per customer, item and month.
public enum ReviewSentiment {
    /// Reviews scored, mean P(positive), and the share scored positive (≥ 0.5).
    public struct Aggregate: Sendable, Encodable, Equatable {
        public var reviews: Int
        public var meanScore: Double
        public var positiveShare: Double
    }

    /// Records scores of one model version.
    public static func record(_ db: Database, version: Int, scores: [(id: Int64, score: Double)]) throws {
        let statement = try db.cachedStatement(sql: "INSERT OR REPLACE INTO review_sentiment(event_id, model_version, score) VALUES (?, ?, ?)")
        for (id, score) in scores { try statement.execute(arguments: [id, version, min(1, max(0, score))]) }
    }

    /// Per customer (store id; of `customers` when given), over reviews before `t`.
    public static func byCustomer(_ db: Database, before t: Int64, customers: [Int64]? = nil) throws -> [Int64: Aggregate] {
        var out: [Int64: Aggregate] = [:]
        let filter = Queries.only("e.customer_id", in: customers)
        for row in try Row.fetchAll(db, sql: aggregate("e.customer_id", where: "e.customer_id IS NOT NULL AND e.ts < ?" + filter.sql), arguments: [t] + filter.arguments) {
            out[row[0]] = Aggregate(reviews: row[1], meanScore: row[2], positiveShare: row[3])
        }
        return out
    }

    /// Per item: SKU, title and aggregate, items with at least `minReviews`, lowest mean first.
    public static func byItem(_ db: Database, minReviews: Int) throws -> [(sku: String, title: String, sentiment: Aggregate)] {
        try Row.fetchAll(db, sql: """
            SELECT i.sku, i.title, a.n, a.mean, a.positive FROM (\(aggregate("e.item_id", where: "e.item_id IS NOT NULL"))) a
            JOIN items i ON i.id = a.key WHERE a.n >= ? ORDER BY a.mean, i.sku
            """, arguments: [minReviews]).map { ($0[0], $0[1], Aggregate(reviews: $0[2], meanScore: $0[3], positiveShare: $0[4])) }
    }

    /// Per calendar month (UTC, `YYYY-MM`), oldest first; over reviews before `t` when given.
    public static func byMonth(_ db: Database, before t: Int64 = .max) throws -> [(month: String, sentiment: Aggregate)] {
        try Row.fetchAll(db, sql: aggregate("strftime('%Y-%m', e.ts, 'unixepoch')", where: "e.ts < ?") + " ORDER BY 1", arguments: [t])
            .map { ($0[0], Aggregate(reviews: $0[1], meanScore: $0[2], positiveShare: $0[3])) }
    }

    private static func aggregate(_ key: String, where condition: String) -> String {
        """
        SELECT \(key) AS key, count(*) AS n, avg(r.score) AS mean, avg(r.score >= 0.5) AS positive
        FROM review_sentiment r JOIN events e ON e.id = r.event_id WHERE \(condition) GROUP BY 1
        """
    }
}
