import AisleCore
import AisleIngest
import AisleInsight
import AisleRecommend
import AisleStore
import Foundation
import GRDB
import Hummingbird
import Metrics

/// The agent's HTTP API on its Unix socket (docs/api/openapi.yaml).
struct AgentRoutes: Sendable {
    let store: Store
    /// Reads on a kiosk request's path go here, never behind the agent's background reads.
    let reads: DatabasePool
    let pseudonymizer: Pseudonymizer
    let ingest: IngestService
    let encoder: EncoderHost
    let insight: InsightHost
    let intent: IntentHost
    let recommendations: RecommendationHost
    let assist: AssistHost
    let config: AgentConfigSnapshot
    let started = Date()

    /// What routes need of the configuration.
    struct AgentConfigSnapshot: Sendable {
        var maxBodyBytes: Int
        var maxBatchEvents: Int
        var socketPath: String
    }

    func register(on router: Router<BasicRequestContext>) {
        router.get("/v1/health") { _, _ in try HTTPJSON.response(["status": "ok"]) }
        router.get("/v1/status") { _, _ in try await status() }
        router.post("/v1/events") { request, _ in try await events(request) }
        router.get("/v1/customers/:id/history") { request, context in try await history(request, context) }
        router.get("/v1/customers/:id/insight") { request, context in try await customerInsight(request, context) }
        router.get("/v1/customers/:id/intent") { request, context in try await customerIntent(request, context) }
        router.get("/v1/sessions/:key/intent") { request, context in try await sessionIntent(request, context) }
        router.post("/v1/recommendations") { request, _ in try await recommend(request) }
        router.post("/v1/feedback") { request, _ in try await feedback(request) }
        router.post("/v1/search") { request, _ in try await search(request) }
        router.post("/v1/assist") { request, _ in try await assistant(request) }
        router.get("/v1/items/top") { request, _ in try await topItems(request) }
        router.post("/v1/embed") { request, _ in try await embed(request) }
        router.get("/metrics") { _, _ in metrics() }
    }

    struct AgentStatus: Encodable {
        var status = "ok"
        var version: String
        var pid: Int32
        var uptimeSeconds: Int
        var socket: String
        var store: StoreStatus
        var encoder: EncoderHost.Status
    }

    func status() async throws -> Response {
        let bytes = store.diskBytes
        let s = try await reads.read { db in try Queries.status(db, diskBytes: bytes) }  // not behind the background's readers
        return try HTTPJSON.response(AgentStatus(
            version: AisleVersion.current, pid: getpid(), uptimeSeconds: Int(Date().timeIntervalSince(started)),
            socket: config.socketPath, store: s, encoder: await encoder.currentStatus))
    }

    /// The most JSON values a request body may hold: 32 for each event a batch may carry
    /// (`http.max_batch_events`; at least 4,096, for `/v1/embed`'s 256 texts), so that a body of
    /// tiny values cannot take hundreds of MB.
    var maxJSONValues: Int { max(32 * config.maxBatchEvents, 4_096) }

    /// The most bytes of a kiosk request's body (recommendations, feedback, search, assist: a
    /// few hundred bytes each) and of `/v1/embed`'s (256 texts): only event batches may take
    /// `http.max_body_bytes`, so twenty requests at once cannot hold hundreds of MB.
    static let kioskBodyBytes = 64 << 10, embedBodyBytes = 1 << 20

    /// The body as JSON — at most `limit` bytes, or `http.max_body_bytes` if less — or the
    /// error response to send instead.
    func jsonBody(_ request: Request, limit: Int = .max) async -> Result<JSONValue, ErrorResponse> {
        let body: ByteBuffer, most = min(limit, config.maxBodyBytes)
        do {
            body = try await request.body.collect(upTo: most)
        } catch {
            let which = most == config.maxBodyBytes ? "http.max_body_bytes" : "this endpoint's limit"
            return .failure(ErrorResponse(.contentTooLarge, "body_too_large", "the body exceeds \(most) bytes (\(which))"))
        }
        do throws(JSONSyntaxError) {
            return .success(try body.withUnsafeReadableBytes { raw throws(JSONSyntaxError) in
                try JSONParser.parse(UnsafeBufferPointer(start: raw.baseAddress?.assumingMemoryBound(to: UInt8.self), count: raw.count), maxValues: maxJSONValues)
            })
        } catch {
            return .failure(ErrorResponse(.badRequest, "malformed_json", error.description))
        }
    }

    /// A kiosk request's body (at most ``kioskBodyBytes``) as a JSON object, or the error
    /// response to send instead.
    func jsonObject(_ request: Request) async -> Result<[String: JSONValue], ErrorResponse> {
        switch await jsonBody(request, limit: Self.kioskBodyBytes) {
        case .failure(let e): return .failure(e)
        case .success(.object(let o)): return .success(o)
        case .success(let other): return .failure(ErrorResponse(.badRequest, "expected_object", "the body must be a JSON object, got \(other.typeName)"))
        }
    }

    static let maxEmbedTexts = 256
    /// The most characters of all texts of one `/v1/embed` request: each is read whole before
    /// it is cut at 256 tokens, so the request's size, not the tokens, bounds the work.
    static let maxEmbedCharacters = 100_000

    struct EmbedResponse: Encodable {
        var model: String
        var dimensions: Int
        var embeddings: [[Float]]
    }

    /// `{"texts": ["…", …]}` → one L2-normalised embedding per text, from the cache when known.
    func embed(_ request: Request) async throws -> Response {
        let parsed: JSONValue
        switch await jsonBody(request, limit: Self.embedBodyBytes) {
        case .success(let v): parsed = v
        case .failure(let e): return e.response
        }
        guard case .object(let o) = parsed, case .array(let values)? = o["texts"] else {
            return HTTPJSON.error(.badRequest, "expected_texts", "the body must be {\"texts\": [\"…\", …]}")
        }
        guard (1...Self.maxEmbedTexts).contains(values.count) else {
            return HTTPJSON.error(.badRequest, "bad_texts", "texts: 1 to \(Self.maxEmbedTexts) texts, got \(values.count)")
        }
        var texts: [String] = [], characters = 0
        for (i, v) in values.enumerated() {
            guard case .string(let t) = v else { return HTTPJSON.error(.badRequest, "bad_texts", "texts[\(i)]: expected a string, got \(v.typeName)") }
            do throws(FieldError) { characters += try Interchange.checkTextLength(t, field: "texts[\(i)]") } catch {
                return HTTPJSON.error(.badRequest, "bad_texts", error.description)
            }
            guard characters <= Self.maxEmbedCharacters else {
                return HTTPJSON.error(.badRequest, "bad_texts", "texts: more than \(Self.maxEmbedCharacters) characters in all (at texts[\(i)])")
            }
            texts.append(t)
        }
        guard let service = await encoder.current else {
            let why = await encoder.currentStatus.lastError ?? "no model loaded"
            return HTTPJSON.error(.serviceUnavailable, "encoder_unavailable", "the encoder is not loaded: \(why)")
        }
        let vectors = try await service.embed(texts)
        return try HTTPJSON.response(EmbedResponse(model: service.encoder.version, dimensions: service.encoder.dimensions, embeddings: vectors))
    }

    func events(_ request: Request) async throws -> Response {
        let parsed: JSONValue
        switch await jsonBody(request) {
        case .success(let v): parsed = v
        case .failure(let e): return e.response
        }
        guard case .array(let values) = parsed else {
            return HTTPJSON.error(.badRequest, "expected_array", "the body must be a JSON array of events, got \(parsed.typeName)")
        }
        guard values.count <= config.maxBatchEvents else {
            return HTTPJSON.error(.contentTooLarge, "batch_too_large", "\(values.count) events; at most \(config.maxBatchEvents) per request (http.max_batch_events)")
        }
        let answer: IngestResponse
        do { answer = try await ingest.ingest(values) } catch let busy as StoreBusy {
            var response = HTTPJSON.error(.serviceUnavailable, "store_busy", busy.description)
            response.headers[.retryAfter] = "2"
            return response
        }
        return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: answer.json)))
    }

    struct HistoryResponse: Encodable {
        var customer: String
        var events: [HistoryEntry]
    }

    func history(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let raw: String
        switch pathParameter(context, "id", "customer id") {
        case .failure(let e): return e.response
        case .success(let id): raw = id
        }
        let limit: Int
        switch limitParameter(request, fallback: 20) {
        case .success(let n): limit = n
        case .failure(let e): return e.response
        }
        let pseudonym = pseudonymizer.pseudonym(raw)
        let entries: [HistoryEntry]? = try await reads.read { db in
            try Queries.customerID(db, pseudonym: pseudonym).map { try Queries.history(db, customerID: $0, limit: limit) }
        }
        guard let entries else { return HTTPJSON.error(.notFound, "unknown_customer", "no events for this customer") }
        return try HTTPJSON.response(HistoryResponse(customer: Pseudonym.display(pseudonym), events: entries))
    }

    struct InsightResponse: Encodable {
        var customer: String
        var insight: CustomerInsight
    }

    /// The customer's segment, RFM scores, interests, sentiment, probability alive, expected
    /// purchases and spend, and churn risk with its drivers, from the table the insight host
    /// keeps; purchase intent scored now (or `at`).
    func customerInsight(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let customer: (id: Int64, pseudonym: Data), t: Int64
        switch await (customerParameter(context), atParameter(request)) {
        case (.failure(let e), _), (_, .failure(let e)): return e.response
        case (.success(let c), .success(let at)): (customer, t) = (c, at)
        }
        guard await insight.ready else {
            return HTTPJSON.error(.serviceUnavailable, "insight_not_ready", "customer insight is being computed; try again shortly")
        }
        guard var found = await insight.insight(customer: customer.id) else {
            return HTTPJSON.error(.notFound, "unknown_customer", "no purchases known for this customer")
        }
        found.purchaseIntent = try await intent.score(.init(session: nil, customer: customer.id), asOf: t)
        return try HTTPJSON.response(InsightResponse(customer: Pseudonym.display(customer.pseudonym), insight: found))
    }

    struct IntentResponse: Encodable {
        var customer: String?
        var session: String?
        var intent: IntentScore
    }

    /// A known customer's purchase intent from their events outside kiosk sessions.
    func customerIntent(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        switch await (customerParameter(context), atParameter(request)) {
        case (.failure(let e), _), (_, .failure(let e)): return e.response
        case (.success(let c), .success(let t)):
            guard let score = try await intent.score(.init(session: nil, customer: c.id), asOf: t) else { return Self.noIntentModel }
            return try HTTPJSON.response(IntentResponse(customer: Pseudonym.display(c.pseudonym), intent: score))
        }
    }

    /// A kiosk session's purchase intent, as its events arrive.
    func sessionIntent(_ request: Request, _ context: BasicRequestContext) async throws -> Response {
        let key: String
        switch pathParameter(context, "key", "session key") {
        case .failure(let e): return e.response
        case .success(let k): key = k
        }
        let t: Int64
        switch atParameter(request) {
        case .failure(let e): return e.response
        case .success(let at): t = at
        }
        let stored = pseudonymizer.sessionKey(key)
        guard let id = try await reads.read({ try Int64.fetchOne($0, sql: "SELECT id FROM sessions WHERE key = ?", arguments: [stored]) }) else {
            return HTTPJSON.error(.notFound, "unknown_session", "no events for this session")
        }
        guard let score = try await intent.score(.init(session: id, customer: nil), asOf: t) else { return Self.noIntentModel }
        return try HTTPJSON.response(IntentResponse(session: key, intent: score))
    }

    static let noIntentModel = HTTPJSON.error(
        .serviceUnavailable, "intent_model_unavailable", "no purchase-intent model is active; train one with `aislectl train intent`")

    /// The store id and pseudonym of the customer in the path.
    func customerParameter(_ context: BasicRequestContext) async -> Result<(id: Int64, pseudonym: Data), ErrorResponse> {
        let raw: String
        switch pathParameter(context, "id", "customer id") {
        case .failure(let e): return .failure(e)
        case .success(let id): raw = id
        }
        guard let known = await customer(raw) else {
            return .failure(ErrorResponse(.notFound, "unknown_customer", "no events for this customer"))
        }
        return .success(known)
    }

    /// The store's id and the pseudonym of a raw customer id; nil when the store has no events of theirs.
    func customer(_ raw: String) async -> (id: Int64, pseudonym: Data)? {
        let pseudonym = pseudonymizer.pseudonym(raw)
        guard let id = try? await reads.read({ try Queries.customerID($0, pseudonym: pseudonym) }) else { return nil }
        return (id, pseudonym)
    }

    /// `?at=` (RFC 3339 or Unix seconds), default now.
    func atParameter(_ request: Request) -> Result<Int64, ErrorResponse> {
        guard let at = request.uri.queryParameters.get("at") else { return .success(Int64(Date().timeIntervalSince1970)) }
        do { return .success(try Timestamp.parse(String(at))) } catch {
            return .failure(ErrorResponse(.badRequest, "bad_at", "at: \((error as? FieldError)?.reason ?? "\(error)")"))
        }
    }

    /// Path parameter `name` percent-decoded and normalised; refused as `missing_<name>` when
    /// blank, or when its percent-encoding is broken (saying so).
    func pathParameter(_ context: BasicRequestContext, _ name: String, _ what: String) -> Result<String, ErrorResponse> {
        let code = "missing_\(name)"
        guard let encoded = context.parameters.get(name) else { return .failure(ErrorResponse(.badRequest, code, "no \(what) in the path")) }
        guard let decoded = encoded.removingPercentEncoding else {
            return .failure(ErrorResponse(.badRequest, code, "\(name): invalid percent-encoding in the path (a % not followed by two hex digits)"))
        }
        let value = Normalize.text(decoded)
        return value.isEmpty ? .failure(ErrorResponse(.badRequest, code, "no \(what) in the path")) : .success(value)
    }

    /// Written by hand (`json`): this is the agent's busiest answer.
    struct RecommendationResponse {
        var requestId: String
        var model: String
        var placement: String
        var asOf: String
        /// Whether the customer was known (else the slate comes from the visit and the store).
        var customerKnown: Bool
        var items: [RecommendationIndex.Recommendation]

        var json: [UInt8] {
            var out: [UInt8] = []
            out.reserveCapacity(256 + 320 * items.count)
            func key(_ k: String) { out += Array("\"\(k)\":".utf8) }
            func strings(_ list: [String]) {
                out.append(UInt8(ascii: "["))
                for (i, s) in list.enumerated() { if i > 0 { out.append(UInt8(ascii: ",")) }; JSONText.append(s, to: &out) }
                out.append(UInt8(ascii: "]"))
            }
            out += Array("{".utf8)
            key("request_id"); JSONText.append(requestId, to: &out)
            out += Array(",".utf8); key("model"); JSONText.append(model, to: &out)
            out += Array(",".utf8); key("placement"); JSONText.append(placement, to: &out)
            out += Array(",".utf8); key("as_of"); JSONText.append(asOf, to: &out)
            out += Array(",\"customer_known\":\(customerKnown),\"items\":[".utf8)
            for (i, item) in items.enumerated() {
                if i > 0 { out.append(UInt8(ascii: ",")) }
                out += Array("{".utf8); key("sku"); JSONText.append(item.sku, to: &out)
                out += Array(",".utf8); key("title"); JSONText.append(item.title, to: &out)
                out += Array(",\"score\":".utf8); JSONText.append(number: item.score, to: &out); out.append(UInt8(ascii: ","))
                key("source"); JSONText.append(item.source, to: &out)
                out += Array(",".utf8); key("sources"); strings(item.sources)
                out += Array(",".utf8); key("reasons"); strings(item.reasons)
                out.append(UInt8(ascii: "}"))
            }
            out += Array("]}".utf8)
            return out
        }
    }

    /// `{customer?, session?, viewed?, cart?, k?, placement?, exclude?}` → the slate with reasons.
    func recommend(_ request: Request) async throws -> Response {
        let body: [String: JSONValue]
        switch await jsonObject(request) {
        case .failure(let e): return e.response
        case .success(let o): body = o
        }
        guard let index = recommendations.current else {
            return HTTPJSON.error(.serviceUnavailable, "recommendations_not_ready", "the recommendation index is being built; try again shortly")
        }
        let fields: RecommendationRequest
        do { fields = try RecommendationRequest(body) } catch { return error.response }
        let pseudonym = fields.customer.map(pseudonymizer.pseudonym)
        let session = fields.session.map(pseudonymizer.sessionKey)  // as the store keeps it
        let customer = pseudonym.flatMap(index.customer)
        let ids = { (skus: [String]) in skus.compactMap { index.skus[$0] } }
        let query = RecommendationIndex.Query(
            customer: customer, viewed: ids(fields.viewed), cart: ids(fields.cart), k: fields.k, exclude: Set(ids(fields.exclude)))
        let (requestID, slate) = await recommendations.serve(
            index.slate(query, pool: 30), index: index, customer: customer, pseudonym: pseudonym,
            shopperKey: pseudonym.map(Pseudonym.display) ?? session, cart: Set(query.cart), session: session, placement: fields.placement)
        return Response(
            status: .ok, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: RecommendationResponse(
                requestId: requestID, model: index.model, placement: fields.placement, asOf: Timestamp.format(index.asOf),
                customerKnown: customer != nil, items: slate).json)))
    }

    /// `{request_id, item, action}`: what the shopper did with an item of a slate.
    func feedback(_ request: Request) async throws -> Response {
        let body: [String: JSONValue]
        switch await jsonObject(request) {
        case .failure(let e): return e.response
        case .success(let o): body = o
        }
        guard case .string(let requestID)? = body["request_id"] else { return HTTPJSON.error(.badRequest, "bad_request_id", "request_id: expected the string from the recommendation") }
        guard case .string(let sku)? = body["item"] else { return HTTPJSON.error(.badRequest, "bad_item", "item: expected the SKU shown") }
        guard case .string(let action)? = body["action"], ["click", "cart", "purchase", "dismiss"].contains(action) else {
            return HTTPJSON.error(.badRequest, "bad_action", "action: one of click, cart, purchase, dismiss")
        }
        guard let item = recommendations.current?.skus[Normalize.sku(sku)] else {
            return HTTPJSON.error(.badRequest, "unknown_item", "item: no SKU \(sku.prefix(64)) in the catalog")
        }
        do {
            guard try await recommendations.feedback(request: requestID, item: item, action: action) else {
                return HTTPJSON.error(.serviceUnavailable, "log_unavailable", "the feedback could not be written to the recommendation log; send it again")
            }
        } catch .unknownRequest {
            return HTTPJSON.error(.notFound, "unknown_request", "request_id: no recent recommendation \(requestID.prefix(64))")
        } catch {
            return HTTPJSON.error(.badRequest, "item_not_shown", "item: \(sku.prefix(64)) was not in that slate")
        }
        return try HTTPJSON.response(["recorded": true])
    }

    struct TopResponse: Encodable {
        var from: String
        var to: String
        var items: [TopItem]
    }

    func topItems(_ request: Request) async throws -> Response {
        let q = request.uri.queryParameters
        let limit: Int
        switch limitParameter(request, fallback: 10) {
        case .success(let n): limit = n
        case .failure(let e): return e.response
        }
        let result: (from: Int64, to: Int64, items: [TopItem])
        do {
            let window = try TopItemsWindow(from: q.get("from").map { String($0) }, to: q.get("to").map { String($0) })
            result = try await reads.read { db in try window.query(db, limit: limit) }
        } catch let error as FieldError {
            return HTTPJSON.error(.badRequest, "bad_window", "\(error)")
        }
        return try HTTPJSON.response(TopResponse(from: Timestamp.format(result.from), to: Timestamp.format(result.to), items: result.items))
    }

    func metrics() -> Response {
        Gauge(label: "aisle_database_bytes").record(store.diskBytes)
        return Response(
            status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
            body: .init(byteBuffer: ByteBuffer(string: Telemetry.exposition())))
    }
}
