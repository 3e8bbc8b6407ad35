import AisleModels
import AisleStore
import Foundation
import GRDB

/// Every known customer's purchase history as of a moment T, from events strictly before T:
/// the point-in-time view that training, evaluation and serving share. Purchases are lines of
/// sellable items (or receipt-level amounts) priced above zero.
public struct CustomerSnapshot: Sendable {
    /// One customer's history before T.
    public struct History: Sendable {
        /// Receipt (or purchase-event) timestamps, ascending, one per receipt.
        public var receipts: [Int64] = []
        /// Spend per receipt, parallel to `receipts`.
        public var receiptValues: [Double] = []
        public var units = 0
        /// Spend per item.
        public var itemSpend: [Int64: Double] = [:]
        public var returns = 0
        public var returnedValue = 0.0
    }

    public let asOf: Int64
    public let customers: [Int64: History]

    /// Reads the histories of every customer with a purchase before `asOf` (of those in
    /// `customers`, store ids, when given).
    public static func load(_ db: Database, asOf: Int64, customers only: [Int64]? = nil) throws -> CustomerSnapshot {
        let filter = Queries.only("e.customer_id", in: only)
        let rows = try Row.fetchCursor(db, sql: """
            SELECT e.customer_id, e.ts, e.type, e.qty, e.price, coalesce(e.receipt_id, -e.id), e.item_id
            FROM events e LEFT JOIN items i ON i.id = e.item_id
            WHERE e.customer_id IS NOT NULL AND e.ts < ? AND e.type IN ('purchase', 'return')
              AND (i.sellable IS NULL OR i.sellable = 1) AND (e.price IS NULL OR e.price > 0)\(filter.sql)
            ORDER BY e.customer_id, e.ts, e.id  -- a total order: sums come out the same whatever the query plan
            """, arguments: [asOf] + filter.arguments)
        var customers: [Int64: History] = [:]
        // Rows come grouped by customer: build one history at a time, in place.
        var current: (id: Int64, history: History, receipt: Int64?)?
        func flush() { if let c = current, !c.history.receipts.isEmpty { customers[c.id] = c.history } }
        while let row = try rows.next() {
            let customer: Int64 = row[0], ts: Int64 = row[1], type: String = row[2], qty: Int = row[3]
            let value = Double(qty) * ((row[4] as Double?) ?? 0)
            if current?.id != customer {
                flush()
                current = (customer, History(), nil)
            }
            if type == "return" {
                current?.history.returns += 1
                current?.history.returnedValue += value
            } else {
                let receipt: Int64 = row[5]
                if current?.receipt != receipt {
                    current?.receipt = receipt
                    current?.history.receipts.append(ts)
                    current?.history.receiptValues.append(0)
                }
                if let last = current?.history.receiptValues.indices.last { current?.history.receiptValues[last] += value }
                current?.history.units += qty
                if let item = row[6] as Int64? { current?.history.itemSpend[item, default: 0] += value }
            }
        }
        flush()
        return CustomerSnapshot(asOf: asOf, customers: customers)
    }

    /// Customers with at least one purchase in [from, to).
    public static func buyers(_ db: Database, from: Int64, to: Int64) throws -> Set<Int64> {
        Set(try Int64.fetchAll(db, sql: """
            SELECT DISTINCT e.customer_id FROM events e LEFT JOIN items i ON i.id = e.item_id
            WHERE e.customer_id IS NOT NULL AND e.type = 'purchase' AND e.ts >= ? AND e.ts < ?
              AND (i.sellable IS NULL OR i.sellable = 1) AND (e.price IS NULL OR e.price > 0)
            """, arguments: [from, to]))
    }
}

extension CustomerSnapshot {
    /// RFM scores and segments of every customer: recency in days since the last receipt,
    /// frequency in receipts, monetary value in spend.
    public func rfm() -> [Int64: RFM.Score] { RFM.score(rfmCustomers) }

    /// Every customer's RFM values.
    public var rfmCustomers: [RFM.Customer] {
        customers.map { id, h in
            RFM.Customer(
                id: id, recencyDays: Double(asOf - (h.receipts.last ?? asOf)) / 86_400, frequency: Double(h.receipts.count),
                monetary: h.receiptValues.reduce(0, +))
        }
    }
}

extension CustomerSnapshot.History {
    /// The mean value of the purchase days after the first (a day's receipts summed, as BG/NBD
    /// counts days and `aislectl btyd fit` sums them), and how many there are: Gamma-Gamma's input.
    public var repeatSpend: (frequency: Int, meanValue: Double) {
        let repeats = dailyValues.dropFirst()
        return (repeats.count, repeats.isEmpty ? 0 : repeats.reduce(0, +) / Double(repeats.count))
    }

    /// Each purchase day's spend (UTC days, ascending), its receipts summed.
    public var dailyValues: [Double] { byDay.map(\.value) }

    /// Distinct purchase days (UTC), ascending.
    public var purchaseDays: [Int] { byDay.map(\.day) }

    /// The receipts grouped by UTC day: each day and its spend.
    private var byDay: [(day: Int, value: Double)] {
        var days: [(day: Int, value: Double)] = []
        for (ts, value) in zip(receipts, receiptValues) {
            let d = Int(ts / 86_400)
            if days.last?.day == d { days[days.count - 1].value += value } else { days.append((d, value)) }
        }
        return days
    }
}
