import AisleCore
import AisleStore
import Crypto
import Foundation
import GRDB

/// What became of one incoming event.
public enum EventOutcome: Sendable, Equatable {
    case accepted
    case duplicate
    case rejected(FieldError)
}

/// Extra facts about an event's item that some sources carry (Online Retail's descriptions).
public struct ItemHint: Sendable {
    public var title: String
    public var sellable: Bool
    public init(title: String, sellable: Bool) {
        self.title = title
        self.sellable = sellable
    }
}

/// Writes validated events into the store: pseudonymises the customer, resolves items,
/// receipts and sessions, drops duplicates by idempotency key, links returns to their sale and
/// keeps the per-item daily sales current. The one write path for imports and the agent.
///
/// Must be used inside a write transaction; after a transaction fails, call ``resetCaches()``
/// since cached row ids may have been rolled back.
public struct EventWriter {
    private let pseudonymizer: Pseudonymizer
    private var pseudonyms = BoundedCache<String, Data>()
    private var customers = BoundedCache<Data, Int64>()
    private var items = BoundedCache<String, Int64>()
    private var titled = Set<Int64>()
    private var receipts = BoundedCache<String, (id: Int64, ts: Int64)>()
    private var sessions = BoundedCache<String, (id: Int64, first: Int64, last: Int64)>()
    /// Items that received purchases or returns (for the outlier pass).
    public private(set) var touchedItems = Set<Int64>()
    public private(set) var counts = Counts()

    /// Running totals of what the writer did.
    public struct Counts: Sendable, Codable, Equatable {
        public var accepted = 0
        public var duplicates = 0
        public var returns = 0
        public var returnsLinked = 0
        public var anonymousPurchases = 0
        public var itemsCreated = 0
        public var customersCreated = 0
    }

    public init(pseudonymizer: Pseudonymizer) { self.pseudonymizer = pseudonymizer }

    /// Forgets cached row ids (after a rolled-back transaction).
    public mutating func resetCaches() {
        customers.removeAll()
        items.removeAll()
        titled.removeAll()
        receipts.removeAll()
        sessions.removeAll()
    }

    /// Writes one event; `runID` ties it to an import run.
    public mutating func write(_ e: IncomingEvent, hint: ItemHint? = nil, runID: Int64? = nil, now: Int64, db: Database) throws -> EventOutcome {
        let pseudonym = e.customer.map { pseudonymFor($0) }
        let key = Self.idempotencyKey(e, pseudonym: pseudonym)
        let customerID = try pseudonym.map { try customerIDFor($0, db) }
        let itemID = try e.item.map { try itemIDFor($0, hint: hint, db) }
        let receiptID = try e.receipt.map { try receiptIDFor($0, ts: e.ts, customerID: customerID, store: e.store, db) }
        let sessionID = try e.session.map { try sessionIDFor($0, ts: e.ts, customerID: customerID, store: e.store, db) }
        var saleID: Int64?
        if e.type == .return, let customerID, let itemID {
            saleID = try Int64.fetchOne(
                db.cachedStatement(sql: """
                    SELECT id FROM events INDEXED BY events_item_customer
                    WHERE item_id = ? AND customer_id = ? AND type = 'purchase' AND ts <= ?
                    ORDER BY ts DESC, id DESC LIMIT 1
                    """), arguments: [itemID, customerID, e.ts])
        }
        let insert = try db.cachedStatement(sql: """
            INSERT INTO events(key, ts, type, customer_id, session_id, receipt_id, item_id, qty, price, text,
                               rating, source, store, sale_event_id, import_run_id, ingested_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(key) DO NOTHING
            """)
        try insert.execute(arguments: [
            key, e.ts, e.type.rawValue, customerID, sessionID, receiptID, itemID, e.qty, e.price, e.text,
            e.rating, e.source, e.store, saleID, runID, now,
        ])
        guard db.changesCount > 0 else {
            counts.duplicates += 1
            return .duplicate
        }
        counts.accepted += 1
        if e.type == .return {
            counts.returns += 1
            if saleID != nil { counts.returnsLinked += 1 }
        }
        if e.type == .purchase, customerID == nil { counts.anonymousPurchases += 1 }
        if let itemID, e.type == .purchase || e.type == .return {
            touchedItems.insert(itemID)
            let purchase = e.type == .purchase
            try db.cachedStatement(sql: """
                INSERT INTO item_daily(item_id, day, purchases, units, revenue, returns, min_price, max_price)
                VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)
                ON CONFLICT(item_id, day) DO UPDATE SET
                    purchases = purchases + excluded.purchases, units = units + excluded.units,
                    revenue = revenue + excluded.revenue, returns = returns + excluded.returns,
                    min_price = min(coalesce(min_price, excluded.min_price), coalesce(excluded.min_price, min_price)),
                    max_price = max(coalesce(max_price, excluded.max_price), coalesce(excluded.max_price, max_price))
                """).execute(arguments: [
                    itemID, e.ts.floorDiv(86_400), purchase ? 1 : 0, purchase ? e.qty : 0,
                    purchase ? Double(e.qty) * (e.price ?? 0) : 0, purchase ? 0 : e.qty, e.price,
                ])
        }
        return .accepted
    }

    /// 16 bytes of SHA-256: over the event id when there is one, else over the whole content,
    /// so that the same line imported twice is recognised.
    static func idempotencyKey(_ e: IncomingEvent, pseudonym: Data?) -> Data {
        var h = SHA256()
        if let id = e.id {
            h.update(data: Data("id\u{0}\(id)".utf8))
        } else {
            var s = "c\u{0}\(e.ts)\u{1F}\(e.type.rawValue)\u{1F}"
            for part in [e.session, e.receipt, e.item, e.text, e.source, e.store] {
                s += part ?? "\u{0}"
                s += "\u{1F}"
            }
            s += "\(e.qty)\u{1F}\(e.price.map { "\($0)" } ?? "\u{0}")\u{1F}\(e.rating.map { "\($0)" } ?? "\u{0}")"
            h.update(data: Data(s.utf8))
            if let pseudonym { h.update(data: pseudonym) }
        }
        return Data(h.finalize().prefix(16))
    }

    private mutating func pseudonymFor(_ raw: String) -> Data {
        if let p = pseudonyms[raw] { return p }
        let p = pseudonymizer.pseudonym(raw)
        pseudonyms[raw] = p
        return p
    }

    private mutating func customerIDFor(_ pseudonym: Data, _ db: Database) throws -> Int64 {
        if let id = customers[pseudonym] { return id }
        try db.cachedStatement(sql: "INSERT INTO customers(pseudonym) VALUES (?) ON CONFLICT DO NOTHING")
            .execute(arguments: [pseudonym])
        if db.changesCount > 0 { counts.customersCreated += 1 }
        guard let id = try Int64.fetchOne(db.cachedStatement(sql: "SELECT id FROM customers WHERE pseudonym = ?"), arguments: [pseudonym]) else {
            throw DatabaseError(message: "customer row vanished")
        }
        customers[pseudonym] = id
        return id
    }

    private mutating func itemIDFor(_ sku: String, hint: ItemHint?, _ db: Database) throws -> Int64 {
        if let id = items[sku] {
            if let hint, !titled.contains(id) { try setTitle(id, hint, db) }
            return id
        }
        try db.cachedStatement(sql: "INSERT INTO items(sku, title, sellable) VALUES (?, ?, ?) ON CONFLICT(sku) DO NOTHING")
            .execute(arguments: [sku, hint?.title ?? "", hint?.sellable ?? true])
        let created = db.changesCount > 0
        if created { counts.itemsCreated += 1 }
        guard let row = try Row.fetchOne(db.cachedStatement(sql: "SELECT id, title FROM items WHERE sku = ?"), arguments: [sku]) else {
            throw DatabaseError(message: "item row vanished")
        }
        let id: Int64 = row["id"]
        items[sku] = id
        if !(row["title"] as String).isEmpty { titled.insert(id) } else if let hint, !created { try setTitle(id, hint, db) }
        return id
    }

    private mutating func setTitle(_ id: Int64, _ hint: ItemHint, _ db: Database) throws {
        guard !hint.title.isEmpty else { return }
        try db.cachedStatement(sql: "UPDATE items SET title = ?, sellable = ? WHERE id = ? AND title = ''")
            .execute(arguments: [hint.title, hint.sellable, id])
        titled.insert(id)
    }

    private mutating func receiptIDFor(_ key: String, ts: Int64, customerID: Int64?, store: String?, _ db: Database) throws -> Int64 {
        if let r = receipts[key], r.ts <= ts { return r.id }
        let id = try Int64.fetchOne(
            db.cachedStatement(sql: """
                INSERT INTO receipts(key, ts, customer_id, store) VALUES (?, ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET ts = min(ts, excluded.ts) RETURNING id
                """), arguments: [key, ts, customerID, store])
        guard let id else { throw DatabaseError(message: "receipt row vanished") }
        receipts[key] = (id, min(ts, receipts[key]?.ts ?? ts))
        return id
    }

    private mutating func sessionIDFor(_ key: String, ts: Int64, customerID: Int64?, store: String?, _ db: Database) throws -> Int64 {
        if let s = sessions[key], s.first <= ts, ts <= s.last { return s.id }
        let row = try Row.fetchOne(
            db.cachedStatement(sql: """
                INSERT INTO sessions(key, customer_id, store, first_ts, last_ts) VALUES (?, ?, ?, ?, ?4)
                ON CONFLICT(key) DO UPDATE SET first_ts = min(first_ts, excluded.first_ts),
                    last_ts = max(last_ts, excluded.last_ts), customer_id = coalesce(customer_id, excluded.customer_id)
                RETURNING id, first_ts, last_ts
                """), arguments: [key, customerID, store, ts])
        guard let row else { throw DatabaseError(message: "session row vanished") }
        let s: (id: Int64, first: Int64, last: Int64) = (row["id"], row["first_ts"], row["last_ts"])
        sessions[key] = s
        return s.id
    }
}

/// A dictionary that forgets everything when it grows past its limit, so memory stays bounded
/// on inputs of any size (a miss only costs a database lookup).
struct BoundedCache<Key: Hashable, Value> {
    private var storage: [Key: Value] = [:]
    let limit: Int

    init(limit: Int = 200_000) { self.limit = limit }

    subscript(key: Key) -> Value? {
        get { storage[key] }
        set {
            if storage.count >= limit { storage.removeAll(keepingCapacity: true) }
            storage[key] = newValue
        }
    }

    mutating func removeAll() { storage.removeAll(keepingCapacity: true) }
}
