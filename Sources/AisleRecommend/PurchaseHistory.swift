import Foundation
import GRDB

/// Known customers' purchases of sellable items (lines priced above zero) before a moment: what
/// the recommender learns from. Days are UTC days since 1970-01-01.
public struct PurchaseHistory: Sendable {
    public struct Line: Sendable, Equatable {
        public var item: Int
        public var day: Int
        public var receipt: Int64
        public var qty: Int
    }

    /// Each customer's lines, oldest first.
    public var customers: [Int64: [Line]]
    /// The first day after the history (its "today").
    public var end: Int

    /// Purchases in [from, to) (from the beginning when `from` is nil).
    public static func load(_ db: Database, from: Int64? = nil, to: Int64) throws -> PurchaseHistory {
        var out = PurchaseHistory(customers: [:], end: Int(to / 86_400))
        let rows = try Row.fetchCursor(db, sql: """
            SELECT e.customer_id, e.item_id, e.ts, coalesce(e.receipt_id, -e.id), e.qty FROM events e JOIN items i ON i.id = e.item_id
            WHERE e.type = 'purchase' AND e.customer_id IS NOT NULL AND i.sellable = 1 AND (e.price IS NULL OR e.price > 0)
              AND e.ts >= ? AND e.ts < ? ORDER BY e.ts
            """, arguments: [from ?? Int64.min, to])
        while let row = try rows.next() {
            let ts: Int64 = row[2]
            out.customers[row[0], default: []].append(Line(item: row[1], day: Int(ts / 86_400), receipt: row[3], qty: row[4]))
        }
        return out
    }

    /// The distinct items each customer bought.
    public var itemSets: [Int64: Set<Int>] { customers.mapValues { Set($0.map(\.item)) } }
}
