import AisleCore

/// The fields of `POST /v1/recommendations`, checked one by one.
struct RecommendationRequest {
    var customer: String?
    var session: String?
    var viewed: [String] = []
    var cart: [String] = []
    var exclude: [String] = []
    var k = 10
    var placement = "default"

    static let maxItems = 200

    init(_ o: [String: JSONValue]) throws(ErrorResponse) {
        func fail(_ field: String, _ why: String) -> ErrorResponse { ErrorResponse(.badRequest, "bad_\(field)", "\(field): \(why)") }
        func text(_ field: String) throws(ErrorResponse) -> String? {
            switch o[field] {
            case nil, .null?: return nil
            case .string(let s)?:
                let t = Normalize.text(s)
                guard !t.isEmpty, t.utf8.count <= 256 else { throw fail(field, "1 to 256 bytes") }
                return t
            case let v?: throw fail(field, "expected a string, got \(v.typeName)")
            }
        }
        func skus(_ field: String) throws(ErrorResponse) -> [String] {
            switch o[field] {
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
        customer = try text("customer")
        session = try text("session")
        viewed = try skus("viewed")
        cart = try skus("cart")
        exclude = try skus("exclude")
        placement = try text("placement") ?? "default"
        switch o["k"] {
        case nil, .null?: break
        case .int(let n)? where (1...50).contains(n): k = Int(n)
        case .int(let n)?: throw fail("k", "an integer from 1 to 50, got \(n)")
        case let v?: throw fail("k", "an integer from 1 to 50, got \(v.typeName)")
        }
    }
}
