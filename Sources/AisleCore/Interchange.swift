import Foundation

/// The JSON Lines interchange format (docs/INTERCHANGE.md): one JSON object per line for
/// events, catalog entries and labelled text.
public enum Interchange {
    /// Largest accepted quantity on one line.
    public static let maxQuantity: Int64 = 1_000_000
    /// Largest accepted unit price.
    public static let maxPrice: Double = 10_000_000
    /// Longest accepted free text, in characters.
    public static let maxTextLength = 10_000
    /// Refuses a free text longer than ``maxTextLength`` characters, or than four times as many
    /// UTF-8 bytes (a character may carry any number of combining marks), naming `field`;
    /// returns its characters.
    @discardableResult
    public static func checkTextLength(_ text: String, field: String) throws(FieldError) -> Int {
        func tooLong() -> FieldError { FieldError(field: field, "longer than \(maxTextLength) characters or \(4 * maxTextLength) bytes") }
        guard text.utf8.count <= 4 * maxTextLength else { throw tooLong() }
        let characters = text.count
        guard characters <= maxTextLength else { throw tooLong() }
        return characters
    }

    /// Refuses a quantity of 0 or beyond ±``maxQuantity``, naming `field` — not the value, which
    /// a column mix-up could make a card number (the same for prices).
    public static func checkQuantity(_ qty: Int64, field: String) throws(FieldError) {
        guard qty != 0 else { throw FieldError(field: field, "zero") }
        // magnitude, not abs: abs(Int64.min) traps.
        guard qty.magnitude <= maxQuantity.magnitude else { throw FieldError(field: field, "absurd; limit is ±\(maxQuantity)") }
    }

    /// Refuses a negative price or one over ``maxPrice``, naming `field`.
    public static func checkPrice(_ price: Double, field: String) throws(FieldError) {
        guard price >= 0 else { throw FieldError(field: field, "negative") }
        guard price <= maxPrice else { throw FieldError(field: field, "absurd; limit is \(maxPrice)") }
    }

    /// Longest accepted identifier (customer, session, receipt, SKU, event id), in bytes.
    public static let maxIdentifierBytes = 256

    /// How far past the receiving machine's clock an event may be dated: a till whose clock is
    /// years ahead would otherwise move the store's "now" (insight, training, reports) with it.
    public static let maxSecondsAhead: Int64 = 86_400

    /// Refuses an event time more than ``maxSecondsAhead`` past `now`.
    public static func checkNotAhead(_ ts: Int64, now: Int64 = Int64(Date().timeIntervalSince1970), field: String = "ts") throws(FieldError) {
        guard ts <= now + maxSecondsAhead else {
            throw FieldError(field: field, "\(Timestamp.format(ts)) is more than a day ahead of this machine's clock (\(Timestamp.format(now)))")
        }
    }

    /// Validates one event object.
    public static func event(from value: JSONValue) throws(FieldError) -> IncomingEvent {
        guard case .object(let o) = value else {
            throw FieldError(field: nil, "expected a JSON object, got \(value.typeName)")
        }
        let ts: Int64
        switch o["ts"] {
        case nil, .null?: throw FieldError(field: "ts", "missing")
        case .string(let s)?:
            do { ts = try Timestamp.parse(s) } catch let e as FieldError { throw e } catch {
                throw FieldError(field: "ts", "\(error)")
            }
        case .int(let v)?:
            guard Timestamp.plausible.contains(v) else { throw FieldError(field: "ts", "outside 1990-01-01 … 2100-01-01") }
            ts = v
        case let v?: throw FieldError(field: "ts", "expected a string or integer, got \(v.typeName)")
        }
        try checkNotAhead(ts)
        guard let typeName = try string(o, "type") else { throw FieldError(field: "type", "missing") }
        guard let type = EventType(rawValue: typeName) else {
            throw FieldError(field: "type", "unknown event type; one of \(EventType.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        var event = IncomingEvent(ts: ts, type: type)
        event.id = try identifier(o, "id")
        event.customer = try identifier(o, "customer")
        event.session = try identifier(o, "session")
        event.receipt = try identifier(o, "receipt")
        event.item = try identifier(o, "item", normalize: Normalize.sku)
        event.source = try identifier(o, "source")
        event.store = try identifier(o, "store")
        if let qty = try integer(o, "qty") {
            try checkQuantity(qty, field: "qty")
            event.qty = qty
        }
        if let price = try number(o, "price") {
            try checkPrice(price, field: "price")
            event.price = price
        }
        if let text = try string(o, "text") {
            let t = Normalize.text(text)
            try checkTextLength(t, field: "text")
            event.text = t.isEmpty ? nil : t
        }
        if let rating = try integer(o, "rating") {
            guard (1...5).contains(rating) else { throw FieldError(field: "rating", "must be 1 to 5") }
            event.rating = rating
        }
        if event.qty < 0 {
            guard type == .purchase || type == .return else {
                throw FieldError(field: "qty", "negative quantity on a \(type.rawValue) event")
            }
            event.type = .return
            event.qty = -event.qty
        }
        // The type as stored: a purchase of a negative quantity is a return, which needs its item.
        if event.type.requiresItem, event.item == nil { throw FieldError(field: "item", "missing (required for \(event.type.rawValue))") }
        if event.type == .purchase, event.item == nil, event.price == nil {
            throw FieldError(field: "item", "missing (a purchase needs an item or, receipt-level, a price)")
        }
        if type.requiresText, event.text == nil { throw FieldError(field: "text", "missing (required for \(type.rawValue))") }
        return event
    }

    /// Validates one catalog object.
    public static func catalogEntry(from value: JSONValue) throws(FieldError) -> CatalogEntry {
        guard case .object(let o) = value else {
            throw FieldError(field: nil, "expected a JSON object, got \(value.typeName)")
        }
        guard let sku = try identifier(o, "item", normalize: Normalize.sku), !sku.isEmpty else {
            throw FieldError(field: "item", "missing")
        }
        guard let rawTitle = try string(o, "title") else { throw FieldError(field: "title", "missing") }
        let title = Normalize.text(rawTitle)
        guard !title.isEmpty else { throw FieldError(field: "title", "empty") }
        try checkName(title, field: "title")
        var entry = CatalogEntry(item: sku, title: title)
        entry.category = try string(o, "category").map(Normalize.text)  // "" clears it
        if let category = entry.category { try checkName(category, field: "category") }
        if let price = try number(o, "price") {
            try checkPrice(price, field: "price")
            entry.price = price
        }
        entry.active = try bool(o, "active")
        entry.sellable = try bool(o, "sellable")
        entry.inStock = try bool(o, "in_stock")
        return entry
    }

    /// Longest accepted item title or category, in characters (and four times as many bytes).
    public static let maxNameLength = 1_000

    /// Refuses a title or category longer than ``maxNameLength`` characters or four times as
    /// many UTF-8 bytes, naming `field`.
    public static func checkName(_ name: String, field: String) throws(FieldError) {
        guard name.utf8.count <= 4 * maxNameLength, name.count <= maxNameLength else {
            throw FieldError(field: field, "longer than \(maxNameLength) characters or \(4 * maxNameLength) bytes")
        }
    }

    /// Refuses an identifier longer than ``maxIdentifierBytes`` bytes, naming `field`.
    public static func checkIdentifier(_ id: String, field: String) throws(FieldError) {
        guard id.utf8.count <= maxIdentifierBytes else { throw FieldError(field: field, "longer than \(maxIdentifierBytes) bytes") }
    }

    // MARK: field readers

    static func string(_ o: [String: JSONValue], _ key: String) throws(FieldError) -> String? {
        switch o[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let v?: throw FieldError(field: key, "expected a string, got \(v.typeName)")
        }
    }

    /// An identifier: a string (or an integer, written as its decimal digits), normalised by
    /// `normalize` (SKUs are upper-cased too), non-empty after it, then at most
    /// ``maxIdentifierBytes`` bytes.
    static func identifier(_ o: [String: JSONValue], _ key: String, normalize: (String) -> String = Normalize.text) throws(FieldError) -> String? {
        let raw: String
        switch o[key] {
        case nil, .null?: return nil
        case .string(let s)?: raw = s
        case .int(let v)?: raw = String(v)
        case .double(let d)? where d == d.rounded(): throw FieldError(field: key, "integer out of range; send a long identifier as a string")
        case let v?: throw FieldError(field: key, "expected a string, got \(v.typeName)")
        }
        let s = normalize(raw)
        if s.isEmpty { return nil }
        try checkIdentifier(s, field: key)
        return s
    }

    static func integer(_ o: [String: JSONValue], _ key: String) throws(FieldError) -> Int64? {
        switch o[key] {
        case nil, .null?: return nil
        case .int(let v)?: return v
        case .double(let d)? where d == d.rounded() && abs(d) < 1e15: return Int64(d)
        case .double(let d)? where d == d.rounded(): throw FieldError(field: key, "integer out of range")
        case let v?: throw FieldError(field: key, "expected an integer, got \(v.typeName == "number" ? "a fraction" : v.typeName)")
        }
    }

    static func number(_ o: [String: JSONValue], _ key: String) throws(FieldError) -> Double? {
        switch o[key] {
        case nil, .null?: return nil
        case .int(let v)?: return Double(v)
        case .double(let d)?: return d
        case let v?: throw FieldError(field: key, "expected a number, got \(v.typeName)")
        }
    }

    static func bool(_ o: [String: JSONValue], _ key: String) throws(FieldError) -> Bool? {
        switch o[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        case let v?: throw FieldError(field: key, "expected true or false, got \(v.typeName)")
        }
    }
}
