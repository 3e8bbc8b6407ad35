import AisleStore
import Foundation
import GRDB

/// Purchase-intent features of a shopper's recent behaviour, as of a moment T from events in
/// [T − lookback, T): what they looked at, put in the cart, favourited, searched and asked, how
/// often they came back to the same item, how recently, and how well the items and categories
/// they looked at convert for everyone (from all events before T). A unit is a kiosk session,
/// or a known customer's activity when there is no session.
public enum IntentFeatures {
    public static let names = [
        "log_events", "log_views", "log_carts", "log_favs", "log_buys", "log_searches",
        "log_distinct_items", "log_distinct_categories", "repeat_view_share", "log_minutes_since_last", "log_minutes_since_cart",
        "log_span_minutes", "events_last_10m", "carted_item_viewed_share", "item_conversion", "category_conversion",
        "carted_item_conversion", "log_customer_purchases_before", "log_open_carts", "log_open_favs", "bought_in_window",
    ]

    /// The unit key of an event: its session, else its customer.
    public struct Unit: Hashable, Sendable { public var session: Int64?; public var customer: Int64? }

    struct Event { var ts: Int64; var type: String; var item: Int64?; var category: String? }

    /// Feature rows of every unit active in [t − lookback, t).
    public static func rows(_ db: Database, asOf t: Int64, lookback: Int64) throws -> (units: [Unit], rows: [[Double]]) {
        // Conversion rates from everything before t: buys / views per item and per category, smoothed.
        var itemViews: [Int64: Double] = [:], itemBuys: [Int64: Double] = [:]
        var categoryViews: [String: Double] = [:], categoryBuys: [String: Double] = [:]
        var allViews = 0.0, allBuys = 0.0
        let history = try Row.fetchCursor(db, sql: """
            SELECT e.type, e.item_id, i.category FROM events e LEFT JOIN items i ON i.id = e.item_id
            WHERE e.ts < ? AND e.type IN ('view', 'purchase') AND e.item_id IS NOT NULL
            """, arguments: [t])
        while let row = try history.next() {
            let type: String = row[0], item: Int64 = row[1], category: String? = row[2]
            if type == "view" {
                itemViews[item, default: 0] += 1; allViews += 1
                if let category { categoryViews[category, default: 0] += 1 }
            } else {
                itemBuys[item, default: 0] += 1; allBuys += 1
                if let category { categoryBuys[category, default: 0] += 1 }
            }
        }
        let prior = (allBuys + 1) / (allViews + 20)
        func rate(_ buys: Double?, _ views: Double?) -> Double { ((buys ?? 0) + 20 * prior) / ((views ?? 0) + 20) }

        var units: [Unit: [Event]] = [:]
        let recent = try Row.fetchCursor(db, sql: """
            SELECT e.session_id, e.customer_id, e.ts, e.type, e.item_id, i.category FROM events e LEFT JOIN items i ON i.id = e.item_id
            WHERE e.ts >= ? AND e.ts < ? AND (e.session_id IS NOT NULL OR e.customer_id IS NOT NULL) ORDER BY e.ts
            """, arguments: [t - lookback, t])
        while let row = try recent.next() {
            let session: Int64? = row[0]
            units[Unit(session: session, customer: session == nil ? row[1] : nil), default: []].append(Event(ts: row[2], type: row[3], item: row[4], category: row[5]))
        }
        var purchasesBefore: [Int64: Double] = [:]
        let counts = try Row.fetchCursor(db, sql: """
            SELECT customer_id, count(*) FROM events WHERE type = 'purchase' AND customer_id IS NOT NULL AND ts < ? GROUP BY customer_id
            """, arguments: [t - lookback])
        while let row = try counts.next() { purchasesBefore[row[0]] = row[1] }
        let keys = units.keys.sorted { ($0.session ?? -1, $0.customer ?? -1) < ($1.session ?? -1, $1.customer ?? -1) }
        let rows = keys.map { key -> [Double] in
            let events = units[key] ?? []
            func count(_ type: String) -> Double { Double(events.filter { $0.type == type }.count) }
            let views = events.filter { $0.type == "view" }, carts = events.filter { $0.type == "cart" }
            let viewedItems = Set(views.compactMap(\.item)), cartItems = Set(carts.compactMap(\.item))
            let boughtItems = Set(events.filter { $0.type == "purchase" }.compactMap(\.item))
            let last = Double(t - (events.last?.ts ?? t)) / 60
            let lastCart = carts.last.map { Double(t - $0.ts) / 60 } ?? Double(lookback) / 60 * 2
            let span = Double((events.last?.ts ?? t) - (events.first?.ts ?? t)) / 60
            let items = Set(events.compactMap(\.item))
            func mean(_ values: [Double]) -> Double { values.isEmpty ? prior : values.reduce(0, +) / Double(values.count) }
            return [
                log1p(Double(events.count)), log1p(count("view")), log1p(count("cart")), log1p(count("fav")), log1p(count("purchase")),
                log1p(count("search") + count("question")), log1p(Double(items.count)), log1p(Double(Set(events.compactMap(\.category)).count)),
                views.isEmpty ? 0 : 1 - Double(viewedItems.count) / Double(views.count), log1p(last), log1p(lastCart), log1p(span),
                Double(events.filter { $0.ts >= t - 600 }.count),
                cartItems.isEmpty ? 0 : Double(cartItems.intersection(viewedItems).count) / Double(cartItems.count),
                mean(items.map { rate(itemBuys[$0], itemViews[$0]) }),
                mean(events.compactMap(\.category).map { rate(categoryBuys[$0], categoryViews[$0]) }),
                mean(cartItems.map { rate(itemBuys[$0], itemViews[$0]) }),
                log1p(key.customer.flatMap { purchasesBefore[$0] } ?? 0),
                log1p(Double(cartItems.subtracting(boughtItems).count)),
                log1p(Double(Set(events.filter { $0.type == "fav" }.compactMap(\.item)).subtracting(boughtItems).count)),
                boughtItems.isEmpty ? 0 : 1,
            ]
        }
        return (keys, rows)
    }

    /// The feature rows of the units active in the lookback before `t`, and whether each bought
    /// in [t, until). Training data when `until` is still in the past.
    public static func labelled(_ db: Database, asOf t: Int64, lookback: Int64, until: Int64) throws -> (rows: [[Double]], bought: [Bool]) {
        let features = try rows(db, asOf: t, lookback: lookback)
        let buyers = try buyers(db, from: t, to: until)
        return (features.rows, features.units.map { buyers.contains($0) })
    }

    /// Units (as in ``rows``) with a purchase in [from, to).
    public static func buyers(_ db: Database, from: Int64, to: Int64) throws -> Set<Unit> {
        var out = Set<Unit>()
        let rows = try Row.fetchCursor(db, sql: """
            SELECT DISTINCT session_id, customer_id FROM events WHERE type = 'purchase' AND ts >= ? AND ts < ?
            """, arguments: [from, to])
        while let row = try rows.next() {
            let session: Int64? = row[0]
            out.insert(Unit(session: session, customer: session == nil ? row[1] : nil))
            if let customer = row[1] as Int64?, session != nil { out.insert(Unit(session: nil, customer: customer)) }
        }
        return out
    }
}
