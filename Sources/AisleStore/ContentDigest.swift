import AisleCore
import Crypto
import Foundation
import GRDB

/// A SHA-256 over the store's content — customers, items, prices, sessions, receipts and events —
/// independent of row ids, insertion order and bookkeeping (import runs, audit log).
///
/// Two stores with the same secret that hold the same data have the same digest, however the
/// data arrived: this is how tests prove that an interrupted and resumed import equals an
/// uninterrupted one, and how an operator can compare a restored store with its source.
public enum ContentDigest {
    public static func compute(_ db: Database) throws -> String {
        var hasher = SHA256()
        let queries = [
            "SELECT hex(pseudonym) FROM customers ORDER BY pseudonym",
            "SELECT sku, title, category, price, active, sellable, in_stock FROM items ORDER BY sku",
            "SELECT i.sku, p.ts, p.price FROM item_prices p JOIN items i ON i.id = p.item_id ORDER BY i.sku, p.ts",
            """
            SELECT i.sku, d.day, d.purchases, d.units, round(d.revenue, 6), d.returns, round(d.returned_value, 6), d.min_price, d.max_price
            FROM item_daily d JOIN items i ON i.id = d.item_id ORDER BY i.sku, d.day
            """,
            """
            SELECT s.key, hex(c.pseudonym), s.store, s.first_ts, s.last_ts
            FROM sessions s LEFT JOIN customers c ON c.id = s.customer_id ORDER BY s.key
            """,
            "SELECT r.key, r.ts, hex(c.pseudonym), r.store FROM receipts r LEFT JOIN customers c ON c.id = r.customer_id ORDER BY r.key",
            """
            SELECT hex(e.key), e.ts, e.type, hex(c.pseudonym), s.key, r.key, i.sku, e.qty, e.price, e.text,
                   e.rating, e.source, e.store, e.flags, hex(sale.key)
            FROM events e
            LEFT JOIN customers c ON c.id = e.customer_id LEFT JOIN sessions s ON s.id = e.session_id
            LEFT JOIN receipts r ON r.id = e.receipt_id LEFT JOIN items i ON i.id = e.item_id
            LEFT JOIN events sale ON sale.id = e.sale_event_id
            ORDER BY e.key
            """,
        ]
        for (n, sql) in queries.enumerated() {
            hasher.update(data: Data("table \(n)\n".utf8))
            let rows = try Row.fetchCursor(db, sql: sql)
            while let row = try rows.next() {
                var line = ""
                for (k, value) in row.databaseValues.enumerated() {
                    if k > 0 { line += "\u{1F}" }
                    line += value.isNull ? "\u{0}" : value.description
                }
                line += "\n"
                hasher.update(data: Data(line.utf8))
            }
        }
        return Hex.string(hasher.finalize())
    }
}
