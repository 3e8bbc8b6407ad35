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

/// Each known customer's purchase days (UTC days since 1970-01-01, ascending) with the day's
/// spend: the repeat-buying data of BG/NBD and Gamma-Gamma, where several purchases on one day
/// are one purchase.
public enum PurchaseDays {
    public struct Day: Sendable, Equatable {
        public var day: Int
        public var value: Double
    }

    /// Purchases up to and including `through` (a day number), all when nil — of sellable items
    /// (or of none: receipt-level lines), as the agent's insight counts them; unlike it, lines
    /// priced 0 count too, as lifetimes counts CDNOW's (its sample has eight).
    public static func load(_ db: Database, through: Int? = nil) throws -> [Int64: [Day]] {
        var sql = """
            SELECT e.customer_id, e.ts / 86400 AS day, sum(e.qty * coalesce(e.price, 0)) FROM events e LEFT JOIN items i ON i.id = e.item_id
            WHERE e.type = 'purchase' AND e.customer_id IS NOT NULL AND (i.sellable IS NULL OR i.sellable = 1)
            """
        var arguments: StatementArguments = []
        if let through { sql += " AND e.ts < ?"; arguments += [Int64(through + 1) * 86_400] }
        sql += " GROUP BY e.customer_id, day ORDER BY e.customer_id, day"
        var result: [Int64: [Day]] = [:]
        let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        while let row = try rows.next() { result[row[0], default: []].append(Day(day: row[1], value: row[2])) }
        return result
    }
}

/// Known customers' purchase lines of sellable items priced above zero, by customer and time.
public enum CustomerPurchases {
    public struct Line: Sendable {
        public var customer: Int64
        /// The receipt, or the event itself when it has none.
        public var receipt: Int64
        public var ts: Int64
        public var sku: String
        public var category: String?
    }

    /// Lines in [from, to) (all time when nil).
    public static func load(_ db: Database, from: Int64? = nil, to: Int64? = nil) throws -> [Line] {
        var sql = """
            SELECT e.customer_id, coalesce(e.receipt_id, -e.id), e.ts, i.sku, i.category FROM events e JOIN items i ON i.id = e.item_id
            WHERE e.type = 'purchase' AND e.customer_id IS NOT NULL AND i.sellable = 1 AND (e.price IS NULL OR e.price > 0)
            """
        var arguments: StatementArguments = []
        if let from { sql += " AND e.ts >= ?"; arguments += [from] }
        if let to { sql += " AND e.ts < ?"; arguments += [to] }
        sql += " ORDER BY e.customer_id, e.ts, 2"
        var lines: [Line] = []
        let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
        while let row = try rows.next() { lines.append(Line(customer: row[0], receipt: row[1], ts: row[2], sku: row[3], category: row[4])) }
        return lines
    }
}
