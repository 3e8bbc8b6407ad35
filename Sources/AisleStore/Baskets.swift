import GRDB

/// Market baskets: the distinct sellable items bought on each receipt.
public struct Baskets: Sendable {
    /// Item ids per receipt (each basket sorted, no repeats).
    public var baskets: [[Int]]
    /// SKU of every item id that appears.
    public var skus: [Int: String]

    /// Receipts with a purchase in [from, to) (all time when nil); non-sellable items (postage,
    /// fees, manual adjustments) and lines with a price of zero or less are left out;
    /// `customersOnly` also leaves out receipts of anonymous customers.
    public static func load(_ db: Database, from: Int64? = nil, to: Int64? = nil, customersOnly: Bool = false) throws -> Baskets {
        var sql = """
            SELECT e.receipt_id, e.item_id, i.sku FROM events e JOIN items i ON i.id = e.item_id
            WHERE e.type = 'purchase' AND e.receipt_id IS NOT NULL AND i.sellable = 1 AND (e.price IS NULL OR e.price > 0)
            """
        var arguments: StatementArguments = []
        if let from { sql += " AND e.ts >= ?"; arguments += [from] }
        if let to { sql += " AND e.ts < ?"; arguments += [to] }
        if customersOnly { sql += " AND e.customer_id IS NOT NULL" }
        sql += " ORDER BY e.receipt_id"
        var result = Baskets(baskets: [], skus: [:])
        var current: (receipt: Int64, items: Set<Int>)?
        let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        while let row = try rows.next() {
            let receipt: Int64 = row[0], item: Int = row[1]
            if result.skus[item] == nil { result.skus[item] = row[2] }
            if current?.receipt != receipt {
                if let c = current { result.baskets.append(c.items.sorted()) }
                current = (receipt, [])
            }
            current?.items.insert(item)
        }
        if let c = current { result.baskets.append(c.items.sorted()) }
        return result
    }
}
