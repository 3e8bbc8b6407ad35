/// A validated event as it arrives, before pseudonymisation.
///
/// `customer` is the raw identifier from the till or kiosk; it is replaced by a keyed hash
/// before anything is written, and never leaves memory.
public struct IncomingEvent: Sendable, Equatable {
    public var id: String?
    /// Unix seconds, UTC.
    public var ts: Int64
    public var type: EventType
    public var customer: String?
    public var session: String?
    public var receipt: String?
    /// Canonical SKU (see ``Normalize/sku(_:)``).
    public var item: String?
    /// Always positive; a negative quantity on input becomes a `return`.
    public var qty: Int64
    public var price: Double?
    public var text: String?
    public var rating: Int64?
    public var source: String?
    public var store: String?

    public init(
        id: String? = nil, ts: Int64, type: EventType, customer: String? = nil,
        session: String? = nil, receipt: String? = nil, item: String? = nil, qty: Int64 = 1,
        price: Double? = nil, text: String? = nil, rating: Int64? = nil, source: String? = nil,
        store: String? = nil
    ) {
        self.id = id
        self.ts = ts
        self.type = type
        self.customer = customer
        self.session = session
        self.receipt = receipt
        self.item = item
        self.qty = qty
        self.price = price
        self.text = text
        self.rating = rating
        self.source = source
        self.store = store
    }
}

/// A catalog entry: `{"item","title","category"?,"price"?,"active"?,"sellable"?,"in_stock"?}`.
public struct CatalogEntry: Sendable, Equatable {
    public var item: String
    public var title: String
    /// nil (left out): the item keeps its category; empty: it has none from now on.
    public var category: String?
    public var price: Double?
    public var active: Bool?
    /// Whether the item can be sold (false for postage, fees, adjustments).
    public var sellable: Bool?
    /// Whether the store has it on its shelves now (search and recommendations offer only
    /// those; the till may still sell one found in a back room).
    public var inStock: Bool?

    public init(
        item: String, title: String, category: String? = nil, price: Double? = nil,
        active: Bool? = nil, sellable: Bool? = nil, inStock: Bool? = nil
    ) {
        self.item = item
        self.title = title
        self.category = category
        self.price = price
        self.active = active
        self.sellable = sellable
        self.inStock = inStock
    }
}

/// Why one input record was refused: the field at fault (nil for the record as a whole) and why.
public struct FieldError: Error, Sendable, Equatable, CustomStringConvertible {
    public var field: String?
    public var reason: String

    public init(field: String?, _ reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { field.map { "\($0): \(reason)" } ?? reason }
}
