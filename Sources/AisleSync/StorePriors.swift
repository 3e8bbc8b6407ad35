import AisleCore
import AisleFederated
import AisleStore
import Crypto
import Foundation
import GRDB

/// Anonymised feature deltas a store sends HQ: over a window of its receipts, how many there were
/// and how many held each item, each category, and each frequent pair of items — each count with Gaussian
/// noise added and kept only when the noised count reaches `minCount`, so no rare item, pair or
/// single customer's basket shows. Each count's noise is drawn for its window and its own key
/// (``WindowNoise``): averaging releases of a window takes none of it away, and an item that
/// drops out moves no other item's noise. A window is released once (``enqueue(_:end:days:)``):
/// two releases of one window around a change, a forgotten customer say, would differ by exactly
/// that change. HQ sums them over stores into the global priors that new
/// stores start from (``GlobalPriors``).
public struct StorePriors: Sendable, Codable, Equatable {
    public static let kind = "priors"

    public struct Pair: Sendable, Codable, Equatable {
        public var a: String
        public var b: String
        public var count: Double

        /// From a key "a" 0x00 "b" (how pairs are counted).
        init(key: String, count: Double) {
            let ab = key.split(separator: "\u{0}").map(String.init)
            (a, b, self.count) = (ab.first ?? "", ab.last ?? "", count)
        }

        var key: String { a + "\u{0}" + b }

        /// Most frequent first.
        static func sorted(_ counts: [String: Double]) -> [Pair] {
            counts.map { Pair(key: $0.key, count: $0.value) }.sorted { ($0.count, $0.a, $0.b) > ($1.count, $1.a, $1.b) }
        }
    }

    /// The window, days since 1970-01-01: [from, to).
    public var from: Int64
    public var to: Int64
    public var receipts: Double
    public var items: [String: Double]
    public var categories: [String: Double]
    public var pairs: [Pair]
    public var minCount: Int
    public var sigma: Double

    /// The least noised count released: with σ 2, a count of 1 (one receipt's item or pair)
    /// reaches 11 with probability 3·10⁻⁷ per window (at 5 it was 2 %, and each receipt is in
    /// four overlapping windows).
    public static let defaultMinCount = 11

    /// The store's priors over the `days` before `end` (default: its last event). Writes the
    /// store's noise key the first time (``WindowNoise``).
    public static func of(
        _ db: Database, end: Int64? = nil, days: Int = 28, minCount: Int = defaultMinCount, sigma: Double = 2, pairItems: Int = 300
    ) throws -> StorePriors? {
        guard let last = try end ?? Queries.lastEventTime(db).map({ $0 + 1 }) else { return nil }
        let start = last - Int64(days) * 86_400
        let keys = EventKey.range(from: start, to: last)
        var baskets: [Int64: Set<String>] = [:], category: [String: String] = [:]
        let rows = try Row.fetchCursor(
            db, sql: """
                SELECT e.receipt_id, i.sku, i.category FROM events e JOIN items i ON i.id = e.item_id
                WHERE e.key >= ? AND e.key < ? AND e.ts >= ? AND e.ts < ? AND e.type = 'purchase' AND e.receipt_id IS NOT NULL
                """, arguments: [keys.lower, keys.upper, start, last])
        while let row = try rows.next() {
            let sku: String = row[1]
            baskets[row[0], default: []].insert(sku)
            if let c = row[2] as String? { category[sku] = c }
        }
        var items: [String: Double] = [:], categories: [String: Double] = [:], pairs: [String: Double] = [:]
        for basket in baskets.values {
            for sku in basket { items[sku, default: 0] += 1 }
            for c in Set(basket.compactMap { category[$0] }) { categories[c, default: 0] += 1 }
        }
        let frequent = Set(items.filter { $0.value >= Double(minCount) }.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(pairItems).map(\.key))
        for basket in baskets.values {
            let kept = basket.filter(frequent.contains).sorted()
            for i in kept.indices { for j in kept.indices where j > i { pairs[kept[i] + "\u{0}" + kept[j], default: 0] += 1 } }
        }
        let key = try WindowNoise.key(db)
        /// A count with its window's noise for `label`, to a tenth.
        func noised(_ count: Double, _ label: String) -> Double {
            var generator = WindowNoise(key: key, label: "\(start) \(last) \(sigma) \(label)")
            return ((count + FederatedLogistic.gaussian(count: 1, sigma: sigma, using: &generator)[0]) * 10).rounded() / 10
        }
        func noised(_ counts: [String: Double], _ part: String) -> [String: Double] {
            Dictionary(uniqueKeysWithValues: counts.compactMap { name, count in
                let v = noised(count, "\(part) \(name)")
                return v >= Double(minCount) ? (name, v) : nil
            })
        }
        // The receipts too (at least one while there are any): exact totals of overlapping windows
        // would differ by exactly the receipts between them.
        let receipts = baskets.isEmpty ? 0 : max(1, noised(Double(baskets.count), "receipts"))
        return StorePriors(
            from: start.floorDiv(86_400), to: last.floorDiv(86_400), receipts: receipts, items: noised(items, "items"), categories: noised(categories, "categories"),
            pairs: Pair.sorted(noised(pairs, "pairs")),
            minCount: minCount, sigma: sigma)
    }

    /// Queues the store's priors for the hub; returns the content id, nil without purchases.
    /// Throws ``AlreadyReleased`` for a window queued before.
    @discardableResult
    public static func enqueue(_ db: Database, end: Int64? = nil, days: Int = 28) throws -> String? {
        guard let priors = try of(db, end: end, days: days), priors.receipts > 0 else { return nil }
        let window = "sync.priors_window \(priors.from) \(priors.to)"
        if let id = try Meta.string(db, window) { throw AlreadyReleased(from: priors.from, to: priors.to, contentID: id) }
        // Never backwards: a window asked for by hand (`--as-of` in the past) does not make the weekly one due again.
        try Meta.set(db, "sync.priors_day", String(max(priors.to, try SyncState.integer(db, "sync.priors_day") ?? priors.to)))
        let id = try Outbox.enqueue(db, kind: kind, payload: SyncJSON.encode(priors))
        try Meta.set(db, window, id)
        return id
    }

    /// A window's priors were queued before: releasing it again would show what changed since.
    public struct AlreadyReleased: Error, CustomStringConvertible {
        public var from: Int64, to: Int64, contentID: String
        public var description: String {
            "the priors of \(Timestamp.format(from * 86_400).prefix(10)) … \(Timestamp.format(to * 86_400).prefix(10)) were queued before (\(contentID.prefix(12))); "
                + "a window is released once, since two releases would differ by exactly what changed between them"
        }
    }

    /// Queues what is due (the store summaries of finished days, the weekly priors); returns the
    /// number of summaries queued. The agent's schedule and `aislectl sync now|export` run it.
    public static func queueDue(_ db: Database) throws -> Int {
        try enqueueDue(db)
        return try StoreSummary.enqueueDue(db)
    }

    /// Queues the store's priors once a week of its events has passed since the last ones.
    public static func enqueueDue(_ db: Database) throws {
        guard let last = try Queries.lastEventTime(db) else { return }
        if let sent = try SyncState.integer(db, "sync.priors_day"), last.floorDiv(86_400) - sent < 7 { return }
        do { try enqueue(db) } catch is AlreadyReleased {}  // released before: nothing to send, and no pass to stop
    }
}

/// The noise of one window's priors: HMAC-SHA256 under a random key the store keeps (in `meta`,
/// made at its first release) of the window and a counter, so the same window always draws the
/// same numbers and HQ cannot draw them.
struct WindowNoise: RandomNumberGenerator {
    let key: SymmetricKey
    let label: String
    var counter: UInt64 = 0

    init(key: SymmetricKey, label: String) { (self.key, self.label) = (key, label) }

    mutating func next() -> UInt64 {
        counter += 1
        let code = HMAC<SHA256>.authenticationCode(for: Data("\(label) \(counter)".utf8), using: key)
        return code.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
    }

    /// The store's key, made now if it has none.
    static func key(_ db: Database) throws -> SymmetricKey {
        if let text = try Meta.string(db, "sync.priors_noise_key"), let bytes = Data(base64Encoded: text), bytes.count == 32 {
            return SymmetricKey(data: bytes)
        }
        let key = SymmetricKey(size: .bits256)
        try Meta.set(db, "sync.priors_noise_key", key.withUnsafeBytes { Data($0).base64EncodedString() })
        return key
    }
}

/// The hub's sum of the stores' priors: what a new store recommends from before it has history
/// of its own, published as the signed global model of kind `priors`.
public struct GlobalPriors: Sendable, Codable, Equatable {
    public var stores: Int
    public var receipts: Double
    public var items: [String: Double]
    public var categories: [String: Double]
    public var pairs: [StorePriors.Pair]

    /// The sum over stores (pairs by their two items).
    public init(_ parts: [StorePriors]) {
        stores = parts.count
        receipts = parts.reduce(0) { $0 + $1.receipts }
        items = parts.reduce(into: [:]) { t, p in for (k, v) in p.items { t[k, default: 0] += v } }
        categories = parts.reduce(into: [:]) { t, p in for (k, v) in p.categories { t[k, default: 0] += v } }
        pairs = StorePriors.Pair.sorted(parts.reduce(into: [:]) { t, p in for pair in p.pairs { t[pair.key, default: 0] += pair.count } })
    }

    /// The `k` items most often bought, by SKU.
    public func popular(_ k: Int) -> [String] { items.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(k).map(\.key) }
}
