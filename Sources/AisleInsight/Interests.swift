import AisleStore
import Foundation
import GRDB

/// Each customer's interests as of a moment: recency-weighted shares over the catalog's themes
/// (``ThemeModel``) and categories, from what they bought, put in the cart, favourited, viewed
/// and reviewed (through the item's theme) and what they searched for and asked (through the
/// text's theme, `text_themes`).
public enum Interests {
    /// One theme or category and its share of the customer's interest (shares sum to 1).
    public struct Share: Sendable, Encodable, Equatable {
        public var name: String
        /// The theme's index in the themes model; nil for a category.
        public var theme: Int?
        public var share: Double
    }

    public struct Profile: Sendable {
        /// Theme index → share, all themes with any weight.
        public var themes: [Int: Double]
        /// Category → share.
        public var categories: [String: Double]
    }

    /// How much one event says, by type; a return takes back half a purchase.
    public static let weights: [String: Double] = [
        "purchase": 1, "cart": 0.5, "fav": 0.5, "review": 0.5, "search": 0.3, "question": 0.3, "view": 0.2, "return": -0.5,
    ]
    /// Days after which an event counts half.
    public static let halfLifeDays = 60.0

    /// Profiles of every customer (of `customers`, store ids, when given) with a weighted event
    /// before `t`; themes from `themes` (with its registry version, for the text themes), none
    /// without it.
    public static func profiles(_ db: Database, asOf t: Int64, themes: (model: ThemeModel, version: Int)?, customers: [Int64]? = nil) throws -> [Int64: Profile] {
        var themeWeight: [Int64: [Int: Double]] = [:], categoryWeight: [Int64: [String: Double]] = [:]
        let filter = Queries.only("e.customer_id", in: customers)
        let rows = try Row.fetchCursor(db, sql: """
            SELECT e.customer_id, e.type, e.ts, e.item_id, i.category, tt.theme FROM events e
            LEFT JOIN items i ON i.id = e.item_id
            LEFT JOIN text_themes tt ON tt.event_id = e.id AND tt.model_version = ?
            WHERE e.customer_id IS NOT NULL AND e.ts < ? AND (e.item_id IS NOT NULL OR tt.theme IS NOT NULL)\(filter.sql)
            ORDER BY e.customer_id, e.ts, e.id
            """, arguments: [themes?.version ?? -1, t] + filter.arguments)
        while let row = try rows.next() {
            guard let base = weights[row[1] as String] else { continue }
            let customer: Int64 = row[0], ts: Int64 = row[2]
            let w = base * pow(0.5, Double(t - ts) / 86_400 / halfLifeDays)
            if let item = row[3] as Int64?, let theme = themes?.model.itemThemes[item] {
                themeWeight[customer, default: [:]][theme, default: 0] += w
            } else if let theme = row[5] as Int? {
                themeWeight[customer, default: [:]][theme, default: 0] += w
            }
            if let category = row[4] as String? { categoryWeight[customer, default: [:]][category, default: 0] += w }
        }
        func shares<K: Comparable>(_ w: [K: Double]) -> [K: Double] {
            let kept = w.filter { $0.value > 0 }
            // Summed in key order: a dictionary's order differs from one instance to the next, and
            // the shares must not depend on it (rescoring a few customers must equal computing all).
            let total = kept.sorted { $0.key < $1.key }.reduce(0) { $0 + $1.value }
            return total > 0 ? kept.mapValues { $0 / total } : [:]
        }
        var out: [Int64: Profile] = [:]
        for customer in Set(themeWeight.keys).union(categoryWeight.keys) {
            out[customer] = Profile(themes: shares(themeWeight[customer] ?? [:]), categories: shares(categoryWeight[customer] ?? [:]))
        }
        return out
    }

    /// The `limit` largest shares of a profile, themes named by their labels.
    public static func top(_ profile: Profile, themes: ThemeModel?, limit: Int = 3) -> (themes: [Share], categories: [Share]) {
        let t = profile.themes.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(limit).map { index, share in
            Share(name: themes.flatMap { index < $0.themes.count ? $0.themes[index].label : nil } ?? "theme \(index)", theme: index, share: share)
        }
        let c = profile.categories.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.prefix(limit).map {
            Share(name: $0.key, theme: nil, share: $0.value)
        }
        return (t, c)
    }
}
