import AisleCore
import AisleStore
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

/// An event with its pseudonym and idempotency key computed: pure work that can run on any
/// thread ahead of the database writer.
public struct PreparedEvent: Sendable {
    public var event: IncomingEvent
    public var hint: ItemHint?
    var pseudonym: Data?
    var key: Data
    /// For words that may be cleared (searches and questions), the key they then leave
    /// (``Pseudonymizer/sealedKey(_:)``): the same event sent again is a duplicate of either.
    var sealedKey: Data?
}

/// Prepares events: pseudonymises the customer and the kiosk session (HMAC, cached per raw id)
/// and derives the idempotency key — over the session's stored key, not the one sent.
public struct EventPreparer {
    private let pseudonymizer: Pseudonymizer
    private var pseudonyms = BoundedCache<String, Data>()
    private var sessionKeys = BoundedCache<String, String>()
    private var scratch: [UInt8] = []

    public init(pseudonymizer: Pseudonymizer) { self.pseudonymizer = pseudonymizer }

    public mutating func prepare(_ e: IncomingEvent, hint: ItemHint? = nil) -> PreparedEvent {
        var e = e
        let pseudonym = e.customer.map { pseudonyms.value(for: $0, make: pseudonymizer.pseudonym) }
        e.session = e.session.map { sessionKeys.value(for: $0, make: pseudonymizer.sessionKey) }
        var prepared = PreparedEvent(event: e, hint: hint, pseudonym: pseudonym, key: EventKey.idempotency(e, pseudonym: pseudonym, scratch: &scratch))
        if e.text != nil, e.type == .search || e.type == .question { prepared.sealedKey = pseudonymizer.sealedKey(prepared.key) }
        prepared.event.customer = nil  // the raw id goes no further
        return prepared
    }
}

/// Writes validated events into the store: pseudonymises the customer, resolves items,
/// receipts and sessions, drops duplicates by idempotency key, links returns to their sale and
/// keeps the per-item daily sales current. The one write path for imports and the agent.
///
/// Must be used inside a write transaction, calling ``finishTransaction(_:)`` before it commits;
/// after a transaction fails, call ``resetCaches()`` since cached row ids may have been rolled
/// back.
public struct EventWriter {
    private var customers = BoundedCache<Data, Int64>()
    private var items = BoundedCache<String, Int64>()
    private var titled = Set<Int64>()
    /// Receipts and sessions written, with whether their row names a customer yet (a line or event
    /// that brings one must reach the row).
    private var receipts = BoundedCache<String, (id: Int64, ts: Int64, named: Bool)>()
    private var sessions = BoundedCache<String, (id: Int64, first: Int64, last: Int64, named: Bool)>()
    /// ``CustomerErasure/generation(_:)`` when the caches above were filled.
    private var erasures: Int64 = 0
    /// Items that received purchases or returns (for the outlier pass).
    public private(set) var touchedItems = Set<Int64>()

    /// ``touchedItems``, emptied.
    public mutating func takeTouchedItems() -> Set<Int64> {
        defer { touchedItems = [] }
        return touchedItems
    }

    /// Puts items back among the touched ones (their outlier pass failed).
    public mutating func touch(_ items: Set<Int64>) { touchedItems.formUnion(items) }
    public private(set) var counts = Counts()
    private var daily: [DailyKey: DailySales] = [:]
    private var pending: [PendingEvent] = []
    private var pendingKeys = Set<Data>()

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

    /// The tier new events enter (see ``Tiers``).
    private let tier: Int64

    /// A writer whose events enter `tier`: ``Tiers/recent`` for the agent's steady trickle,
    /// ``Tiers/settled`` for bulk imports.
    public init(tier: Int64) { self.tier = tier }

    /// Forgets cached row ids (after a rolled-back transaction).
    public mutating func resetCaches() {
        daily.removeAll()
        pending.removeAll()
        pendingKeys.removeAll()
        customers.removeAll()
        items.removeAll()
        titled.removeAll()
        receipts.removeAll()
        sessions.removeAll()
    }

    /// Writes a batch of events inside the caller's transaction and says what became of each;
    /// `runID` ties them to an import run. Call ``finishTransaction(_:)`` before the
    /// transaction commits.
    public mutating func write(_ batch: [PreparedEvent], runID: Int64? = nil, now: Int64, db: Database) throws -> [EventOutcome] {
        // A customer erased since the last batch: the cached ids may name deleted rows, or rows
        // SQLite has since given to others.
        let erasures = try CustomerErasure.generation(db)
        if erasures != self.erasures {
            customers.removeAll()
            receipts.removeAll()
            sessions.removeAll()
            self.erasures = erasures
        }
        var outcomes: [EventOutcome] = []
        outcomes.reserveCapacity(batch.count)
        let probe = try db.cachedStatement(sql: "SELECT 1 FROM events WHERE key = ?")
        for start in stride(from: 0, to: batch.count, by: Self.rowsPerInsert) {
            func stored(_ key: Data) throws -> Bool {
                let seen = FastStatement(probe, in: db)
                seen.bind(1, key)
                return try seen.step()
            }
            for prepared in batch[start..<min(start + Self.rowsPerInsert, batch.count)] {
                if try stored(prepared.key) || pendingKeys.contains(prepared.key) || prepared.sealedKey.map(stored) ?? false {
                    counts.duplicates += 1
                    // Its item still gets the outlier pass: a run started again after a crash
                    // may hold the only lines of it that were never flagged.
                    if let sku = prepared.event.item, prepared.event.type == .purchase || prepared.event.type == .return {
                        touchedItems.insert(try itemIDFor(sku, hint: nil, db))
                    }
                    outcomes.append(.duplicate)
                } else {
                    try stage(prepared, runID: runID, now: now, db: db)
                    outcomes.append(.accepted)
                }
            }
            try flushPending(db)
            pendingKeys.removeAll(keepingCapacity: true)  // the next probes see them in the table
        }
        return outcomes
    }

    /// Resolves a new event's references and queues it for the next multi-row INSERT.
    private mutating func stage(_ prepared: PreparedEvent, runID: Int64?, now: Int64, db: Database) throws {
        let (e, hint, pseudonym, key) = (prepared.event, prepared.hint, prepared.pseudonym, prepared.key)
        let customerID = try pseudonym.map { try customerIDFor($0, db) }
        let itemID = try e.item.map { try itemIDFor($0, hint: hint, db) }
        let receiptID = try e.receipt.map { try receiptIDFor($0, ts: e.ts, customerID: customerID, store: e.store, db) }
        let sessionID = try e.session.map { try sessionIDFor($0, ts: e.ts, customerID: customerID, store: e.store, db) }
        var saleID: Int64?
        if e.type == .return, let customerID, let itemID {
            try flushPending(db)  // the sale may be among them
            let find = FastStatement(try db.cachedStatement(sql: """
                SELECT id FROM (
                    SELECT id, ts FROM events INDEXED BY events_item_customer
                    WHERE item_id = ?1 AND item_id IS NOT NULL AND customer_id = ?2 AND customer_id IS NOT NULL
                        AND tier = 1 AND type = 'purchase' AND ts <= ?3
                    UNION ALL
                    SELECT id, ts FROM events INDEXED BY events_recent_item_customer
                    WHERE item_id = ?1 AND item_id IS NOT NULL AND customer_id = ?2 AND customer_id IS NOT NULL
                        AND tier = 0 AND type = 'purchase' AND ts <= ?3)
                ORDER BY ts DESC, id DESC LIMIT 1
                """), in: db)
            find.bind(1, itemID)
            find.bind(2, customerID)
            find.bind(3, e.ts)
            if try find.step() { saleID = find.int64(0) }
        }
        pendingKeys.insert(key)
        pending.append(PendingEvent(
            key: key, event: e, customerID: customerID, sessionID: sessionID, receiptID: receiptID, itemID: itemID,
            saleID: saleID, runID: runID, now: now))
        counts.accepted += 1
        if e.type == .return {
            counts.returns += 1
            if saleID != nil { counts.returnsLinked += 1 }
        }
        if e.type == .purchase, customerID == nil { counts.anonymousPurchases += 1 }
        if let itemID, e.type == .purchase || e.type == .return {
            touchedItems.insert(itemID)
            daily[DailyKey(item: itemID, day: e.ts.floorDiv(86_400)), default: DailySales()].add(e)
        }
    }

    /// Writes what was aggregated during the transaction (per-item daily sales).
    public mutating func finishTransaction(_ db: Database) throws {
        try flushPending(db)
        guard !daily.isEmpty else { return }
        let upsert = try db.cachedStatement(sql: """
            INSERT INTO item_daily(item_id, day, purchases, units, revenue, returns, returned_value, min_price, max_price)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(item_id, day) DO UPDATE SET
                purchases = purchases + excluded.purchases, units = units + excluded.units,
                revenue = revenue + excluded.revenue, returns = returns + excluded.returns,
                returned_value = returned_value + excluded.returned_value,
                min_price = min(coalesce(min_price, excluded.min_price), coalesce(excluded.min_price, min_price)),
                max_price = max(coalesce(max_price, excluded.max_price), coalesce(excluded.max_price, max_price))
            """)
        for (k, v) in daily {
            let f = FastStatement(upsert, in: db)
            f.bind(1, k.item)
            f.bind(2, k.day)
            f.bind(3, v.purchases)
            f.bind(4, v.units)
            f.bind(5, v.revenue)
            f.bind(6, v.returns)
            f.bind(7, v.returnedValue)
            f.bind(8, v.minPrice)
            f.bind(9, v.maxPrice)
            try f.step()
        }
        daily.removeAll(keepingCapacity: true)
    }

    /// An accepted event waiting for the next multi-row INSERT.
    struct PendingEvent {
        var key: Data
        var event: IncomingEvent
        var customerID, sessionID, receiptID, itemID, saleID, runID: Int64?
        var now: Int64
    }

    /// Rows per INSERT statement: one statement per row would spend more time opening the
    /// table's B-tree cursors than inserting.
    static let rowsPerInsert = 64
    static let columns = "key, ts, type, customer_id, session_id, receipt_id, item_id, qty, price, text, rating, source, store, sale_event_id, import_run_id, ingested_at, tier"

    private mutating func flushPending(_ db: Database) throws {
        guard !pending.isEmpty else { return }
        let values = Array(repeating: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", count: pending.count).joined(separator: ", ")
        let insert = FastStatement(try db.cachedStatement(sql: "INSERT INTO events(\(Self.columns)) VALUES \(values)"), in: db)
        for (n, p) in pending.enumerated() {
            let b = Int32(n * 17)
            let e = p.event
            insert.bind(b + 1, p.key)
            insert.bind(b + 2, e.ts)
            insert.bind(b + 3, e.type.rawValue)
            insert.bind(b + 4, p.customerID)
            insert.bind(b + 5, p.sessionID)
            insert.bind(b + 6, p.receiptID)
            insert.bind(b + 7, p.itemID)
            insert.bind(b + 8, e.qty)
            insert.bind(b + 9, e.price)
            insert.bind(b + 10, e.text)
            insert.bind(b + 11, e.rating)
            insert.bind(b + 12, e.source)
            insert.bind(b + 13, e.store)
            insert.bind(b + 14, p.saleID)
            insert.bind(b + 15, p.runID)
            insert.bind(b + 16, p.now)
            insert.bind(b + 17, tier)
        }
        try insert.step()
        pending.removeAll(keepingCapacity: true)
    }

    struct DailyKey: Hashable {
        var item: Int64
        var day: Int64
    }

    /// One item's sales on one day, summed over a transaction.
    struct DailySales {
        var purchases: Int64 = 0
        var units: Int64 = 0
        var revenue = 0.0
        var returns: Int64 = 0
        var returnedValue = 0.0
        var minPrice: Double?
        var maxPrice: Double?

        mutating func add(_ e: IncomingEvent) {
            if e.type == .purchase {
                purchases += 1
                units += e.qty
                revenue += Double(e.qty) * (e.price ?? 0)
            } else {
                returns += e.qty
                returnedValue += Double(e.qty) * (e.price ?? 0)
            }
            if let p = e.price {
                minPrice = min(minPrice ?? p, p)
                maxPrice = max(maxPrice ?? p, p)
            }
        }
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
        if let r = receipts[key], r.ts <= ts, r.named || customerID == nil { return r.id }
        // A receipt rung up before the loyalty card was scanned becomes the customer's.
        let row = try Row.fetchOne(
            db.cachedStatement(sql: """
                INSERT INTO receipts(key, ts, customer_id, store) VALUES (?, ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET ts = min(ts, excluded.ts), customer_id = coalesce(customer_id, excluded.customer_id)
                RETURNING id, ts, customer_id IS NOT NULL AS named
                """), arguments: [key, ts, customerID, store])
        guard let row else { throw DatabaseError(message: "receipt row vanished") }
        let r: (id: Int64, ts: Int64, named: Bool) = (row["id"], row["ts"], row["named"])
        receipts[key] = r
        return r.id
    }

    private mutating func sessionIDFor(_ key: String, ts: Int64, customerID: Int64?, store: String?, _ db: Database) throws -> Int64 {
        if let s = sessions[key], s.first <= ts, ts <= s.last, s.named || customerID == nil { return s.id }
        let row = try Row.fetchOne(
            db.cachedStatement(sql: """
                INSERT INTO sessions(key, customer_id, store, first_ts, last_ts) VALUES (?, ?, ?, ?, ?4)
                ON CONFLICT(key) DO UPDATE SET first_ts = min(first_ts, excluded.first_ts),
                    last_ts = max(last_ts, excluded.last_ts), customer_id = coalesce(customer_id, excluded.customer_id)
                RETURNING id, first_ts, last_ts, customer_id IS NOT NULL AS named
                """), arguments: [key, customerID, store, ts])
        guard let row else { throw DatabaseError(message: "session row vanished") }
        let s: (id: Int64, first: Int64, last: Int64, named: Bool) = (row["id"], row["first_ts"], row["last_ts"], row["named"])
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

    /// The value cached for `key`, made and cached when missing.
    mutating func value(for key: Key, make: (Key) -> Value) -> Value {
        if let v = storage[key] { return v }
        let v = make(key)
        self[key] = v
        return v
    }

    mutating func removeAll() { storage.removeAll(keepingCapacity: true) }
}
