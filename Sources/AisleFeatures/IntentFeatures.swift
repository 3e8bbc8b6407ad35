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

    /// Each feature's spread by its definition alone, from no data: about the range a value
    /// takes (log counts up to ~20 events, shares and rates in [0, 1], minutes up to twice the
    /// lookback). What a model standardises by when the data's own moments may not be read (a
    /// federated model with differential privacy starts from these).
    public static func nominalScales(lookbackMinutes: Int) -> [Double] {
        let minutes = log1p(2 * Double(max(1, lookbackMinutes)))
        return [3, 3, 3, 3, 3, 3, 3, 3, 1, minutes, minutes, minutes, 10, 1, 1, 1, 1, 3, 3, 3, 1]
    }

    /// The unit key of an event: its session, else its customer.
    public struct Unit: Hashable, Sendable {
        public var session: Int64?
        public var customer: Int64?
        public init(session: Int64?, customer: Int64?) { (self.session, self.customer) = (session, customer) }
    }

    /// One event of a unit's recent activity.
    public struct Event: Sendable {
        public var ts: Int64
        public var type: String
        public var item: Int64?
        public var category: String?
    }

    /// How well items and categories convert for everyone: purchases / views before a moment,
    /// smoothed towards the store's overall rate (20 views' worth), at most 1 (a store whose
    /// tills record purchases without views has every item converting).
    public struct ConversionRates: Sendable {
        var itemViews: [Int64: Double] = [:], itemBuys: [Int64: Double] = [:]
        var categoryViews: [String: Double] = [:], categoryBuys: [String: Double] = [:]
        /// The store's overall rate.
        public private(set) var prior = 0.05

        /// From every view and purchase before `t`.
        public static func load(_ db: Database, before t: Int64) throws -> ConversionRates {
            var r = ConversionRates()
            var allViews = 0.0, allBuys = 0.0
            let history = try Row.fetchCursor(db, sql: """
                SELECT e.type, e.item_id, i.category FROM events e LEFT JOIN items i ON i.id = e.item_id
                WHERE e.ts < ? AND e.type IN ('view', 'purchase') AND e.item_id IS NOT NULL
                """, arguments: [t])
            while let row = try history.next() {
                let type: String = row[0], item: Int64 = row[1], category: String? = row[2]
                if type == "view" {
                    r.itemViews[item, default: 0] += 1; allViews += 1
                    if let category { r.categoryViews[category, default: 0] += 1 }
                } else {
                    r.itemBuys[item, default: 0] += 1; allBuys += 1
                    if let category { r.categoryBuys[category, default: 0] += 1 }
                }
            }
            r.prior = min(1, (allBuys + 1) / (allViews + 20))
            return r
        }

        func item(_ id: Int64) -> Double { min(1, ((itemBuys[id] ?? 0) + 20 * prior) / ((itemViews[id] ?? 0) + 20)) }
        func category(_ c: String) -> Double { min(1, ((categoryBuys[c] ?? 0) + 20 * prior) / ((categoryViews[c] ?? 0) + 20)) }
    }

    /// Feature rows of every unit active in [t − lookback, t); conversion rates from before t
    /// unless given.
    public static func rows(_ db: Database, asOf t: Int64, lookback: Int64, rates given: ConversionRates? = nil) throws -> (units: [Unit], rows: [[Double]]) {
        let rates = try given ?? ConversionRates.load(db, before: t)
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
        let rows = keys.map { key in
            features(units[key] ?? [], asOf: t, lookback: lookback, rates: rates, purchasesBefore: key.customer.flatMap { purchasesBefore[$0] } ?? 0)
        }
        return (keys, rows)
    }

    /// The features of one unit's events in [t − lookback, t) (in time order), given the rates
    /// and the customer's purchases before the lookback.
    public static func features(_ events: [Event], asOf t: Int64, lookback: Int64, rates: ConversionRates, purchasesBefore: Double) -> [Double] {
        func count(_ type: String) -> Double { Double(events.filter { $0.type == type }.count) }
        let views = events.filter { $0.type == "view" }, carts = events.filter { $0.type == "cart" }
        let viewedItems = Set(views.compactMap(\.item)), cartItems = Set(carts.compactMap(\.item))
        let boughtItems = Set(events.filter { $0.type == "purchase" }.compactMap(\.item))
        // Without an event (or a cart) in the lookback: twice the lookback ago, not "this minute".
        let never = Double(lookback) / 60 * 2
        let last = events.last.map { Double(t - $0.ts) / 60 } ?? never
        let lastCart = carts.last.map { Double(t - $0.ts) / 60 } ?? never
        let span = Double((events.last?.ts ?? t) - (events.first?.ts ?? t)) / 60
        let items = Set(events.compactMap(\.item))
        func mean(_ values: [Double]) -> Double { values.isEmpty ? rates.prior : values.reduce(0, +) / Double(values.count) }
        return [
            log1p(Double(events.count)), log1p(count("view")), log1p(count("cart")), log1p(count("fav")), log1p(count("purchase")),
            log1p(count("search") + count("question")), log1p(Double(items.count)), log1p(Double(Set(events.compactMap(\.category)).count)),
            views.isEmpty ? 0 : 1 - Double(viewedItems.count) / Double(views.count), log1p(last), log1p(lastCart), log1p(span),
            Double(events.filter { $0.ts >= t - 600 }.count),
            cartItems.isEmpty ? 0 : Double(cartItems.intersection(viewedItems).count) / Double(cartItems.count),
            mean(items.sorted().map(rates.item)),
            mean(events.compactMap(\.category).map(rates.category)),
            mean(cartItems.sorted().map(rates.item)),
            log1p(purchasesBefore),
            log1p(Double(cartItems.subtracting(boughtItems).count)),
            log1p(Double(Set(events.filter { $0.type == "fav" }.compactMap(\.item)).subtracting(boughtItems).count)),
            boughtItems.isEmpty ? 0 : 1,
        ]
    }

    /// One unit's events in [t − lookback, t), in time order, and (for a customer) the
    /// purchases before the lookback: what the agent reads to score a shopper as they go.
    public static func recent(_ db: Database, unit: Unit, asOf t: Int64, lookback: Int64) throws -> (events: [Event], purchasesBefore: Double) {
        let (column, id) = unit.session.map { ("session_id", $0) } ?? ("customer_id", unit.customer ?? -1)
        let filter = unit.session == nil ? " AND e.session_id IS NULL" : ""
        let events = try Row.fetchAll(db, sql: """
            SELECT e.ts, e.type, e.item_id, i.category FROM events e LEFT JOIN items i ON i.id = e.item_id
            WHERE e.\(column) = ? AND e.ts >= ? AND e.ts < ?\(filter) ORDER BY e.ts
            """, arguments: [id, t - lookback, t]).map { Event(ts: $0[0], type: $0[1], item: $0[2], category: $0[3]) }
        let before = try unit.customer.map { c in
            try Double.fetchOne(db, sql: "SELECT count(*) FROM events WHERE customer_id = ? AND type = 'purchase' AND ts < ?", arguments: [c, t - lookback]) ?? 0
        } ?? 0
        return (events, before)
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
