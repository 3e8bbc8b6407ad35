import AisleCore

/// A JSON request body's fields, read one by one; every refusal names its field.
struct RequestFields {
    let body: [String: JSONValue]

    static let maxItems = 200

    func fail(_ field: String, _ why: String) -> ErrorResponse { ErrorResponse(.badRequest, "bad_\(field)", "\(field): \(why)") }

    /// Normalised text of 1 to `maxBytes` bytes, or nil when absent.
    func text(_ field: String, maxBytes: Int = 256) throws(ErrorResponse) -> String? {
        switch body[field] {
        case nil, .null?: return nil
        case .string(let s)?:
            let t = Normalize.text(s)
            guard !t.isEmpty, t.utf8.count <= maxBytes else { throw fail(field, "1 to \(maxBytes) bytes") }
            return t
        case let v?: throw fail(field, "expected a string, got \(v.typeName)")
        }
    }

    /// Up to ``maxItems`` SKUs, normalised.
    func skus(_ field: String) throws(ErrorResponse) -> [String] {
        switch body[field] {
        case nil, .null?: return []
        case .array(let values)?:
            guard values.count <= Self.maxItems else { throw fail(field, "at most \(Self.maxItems) SKUs") }
            var out: [String] = []
            for (i, v) in values.enumerated() {
                guard case .string(let s) = v else { throw fail(field, "[\(i)]: expected a SKU string, got \(v.typeName)") }
                out.append(Normalize.sku(s))
            }
            return out
        case let v?: throw fail(field, "expected an array of SKUs, got \(v.typeName)")
        }
    }

    /// An integer in `range`, `fallback` when absent.
    func int(_ field: String, in range: ClosedRange<Int>, _ fallback: Int) throws(ErrorResponse) -> Int {
        switch body[field] {
        case nil, .null?: return fallback
        case .int(let n)? where range.contains(Int(n)): return Int(n)
        case .int(let n)?: throw fail(field, "an integer from \(range.lowerBound) to \(range.upperBound), got \(n)")
        case let v?: throw fail(field, "an integer from \(range.lowerBound) to \(range.upperBound), got \(v.typeName)")
        }
    }
}

/// The fields of `POST /v1/recommendations`.
struct RecommendationRequest {
    var customer: String?
    var session: String?
    var viewed: [String] = []
    var cart: [String] = []
    var exclude: [String] = []
    var k = 10
    var placement = "default"

    init(_ o: [String: JSONValue]) throws(ErrorResponse) {
        let fields = RequestFields(body: o)
        customer = try fields.text("customer")
        session = try fields.text("session")
        viewed = try fields.skus("viewed")
        cart = try fields.skus("cart")
        exclude = try fields.skus("exclude")
        placement = try fields.text("placement") ?? "default"
        k = try fields.int("k", in: 1...50, 10)
    }
}
