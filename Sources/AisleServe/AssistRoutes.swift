import AisleAssist
import AisleCore
import AisleInsight
import AisleStore
import Foundation
import GRDB
import Hummingbird

/// `POST /v1/search` and `POST /v1/assist`: the kiosk's product search and assistant.
extension AgentRoutes {
    struct FoundItem: Encodable {
        var sku: String
        var title: String
        var category: String?
        var price: Double?
        var score: Double
        var reasons: [String]

        init(_ hit: CatalogSearch.Hit) {
            (sku, title, category, price, score, reasons) = (hit.item.sku, hit.item.title, hit.item.category, hit.item.price, hit.score, hit.reasons)
        }
    }

    struct SearchResponse: Encodable {
        var query: String
        /// The query as spelling-corrected for the dense side, when that changed it.
        var corrected: String?
        var mode: String
        var personalised: Bool
        var items: [FoundItem]
    }

    struct AssistResponse: Encodable {
        var intent: String
        var confidence: Double
        /// The best intent even when it was not confident enough to answer.
        var bestIntent: String
        var answer: String?
        /// Which answer produced the text: `intents.<intent>`, `fallback.products`, `fallback.out_of_scope` or `fallback.unanswered`.
        var answerSource: String?
        var model: String
        var products: [FoundItem]
    }

    /// The shared fields of both requests: the text, the shopper, how many items.
    struct ShopperText {
        var text: String
        var customer: String?
        var session: String?
        var k: Int

        init(_ body: [String: JSONValue], field: String, k fallback: Int) throws(ErrorResponse) {
            let fields = RequestFields(body: body)
            guard let text = try fields.text(field, maxBytes: 512) else { throw fields.fail(field, "missing") }
            self.text = text
            customer = try fields.text("customer")
            session = try fields.text("session")
            k = try fields.int("k", in: 1...50, fallback)
        }

        /// The event that logs it (`search` or `question`).
        func event(_ type: EventType) -> JSONValue {
            var o: [String: JSONValue] = [
                "id": .string("\(type.rawValue)-\(UUID().uuidString)"), "type": .string(type.rawValue), "text": .string(text),
                "ts": .int(Int64(Date().timeIntervalSince1970)),
            ]
            if let customer { o["customer"] = .string(customer) }
            if let session { o["session"] = .string(session) }
            return .object(o)
        }
    }

    /// The shopper's interests, for the personal boost: categories, and themes when the insight
    /// numbered them as `search` does (just after the themes are retrained, one may be behind).
    func interests(_ customer: String?, for search: CatalogSearch) async -> [Interests.Share] {
        guard let raw = customer, let id = await self.customer(raw)?.id, let found = await insight.insight(customer: id) else { return [] }
        let sameThemes = await insight.modelVersions[ThemeModel.kind] == search.themesVersion
        return (sameThemes ? found.interests : []) + found.categories
    }

    /// `{query, customer?, session?, k?, mode?}` → the catalog items that match, with why.
    func search(_ request: Request) async throws -> Response {
        let body: [String: JSONValue]
        switch await jsonObject(request) {
        case .failure(let e): return e.response
        case .success(let o): body = o
        }
        let fields: ShopperText, mode: CatalogSearch.Mode
        do throws(ErrorResponse) {
            fields = try ShopperText(body, field: "query", k: 10)
            let named = try RequestFields(body: body).text("mode") ?? "hybrid"
            guard let m = CatalogSearch.Mode(rawValue: named) else { throw RequestFields(body: body).fail("mode", "one of hybrid, lexical, dense") }
            mode = m
        } catch { return error.response }
        let state = await assist.snapshot
        guard let search = state.search else {
            return HTTPJSON.error(.serviceUnavailable, "search_not_ready", "the search index is being built; try again shortly")
        }
        let corrected = search.corrected(fields.text)
        let vector: [Float]?
        // A hybrid query without a word to search for ("?", "3") has no meaning to look for either.
        if mode == .dense || (mode == .hybrid && !corrected.isEmpty), let encoder = state.encoder, search.encoderKey == encoder.cacheKey {
            vector = try await encoder.embed(mode == .dense ? fields.text : corrected, cached: false)
        } else {
            vector = nil
        }
        if mode == .dense, vector == nil, !search.items.isEmpty {
            return state.encoder == nil
                ? HTTPJSON.error(.serviceUnavailable, "encoder_unavailable", "dense search needs the encoder, which is not loaded")
                : HTTPJSON.error(
                    .serviceUnavailable, "search_not_ready",
                    "the search index holds no title embeddings of the loaded encoder yet (being rebuilt for it, or no item has a title); try again shortly")
        }
        let interests = await interests(fields.customer, for: search)
        let hits = try await reads.read { db in try search.search(db, query: fields.text, vector: vector, interests: interests, k: fields.k, mode: mode) }
        await assist.log(fields.event(.search))
        return try HTTPJSON.response(SearchResponse(
            query: fields.text, corrected: corrected == CatalogSearch.queryWords(fields.text).joined(separator: " ") ? nil : corrected, mode: vector == nil ? "lexical" : mode.rawValue,
            personalised: !interests.isEmpty, items: hits.map(FoundItem.init)))
    }

    /// `{text, customer?, session?, k?}` → the request's intent and confidence, the store's
    /// answer, and matching products when the request reads as a product search.
    func assistant(_ request: Request) async throws -> Response {
        let body: [String: JSONValue]
        switch await jsonObject(request) {
        case .failure(let e): return e.response
        case .success(let o): body = o
        }
        let fields: ShopperText
        do { fields = try ShopperText(body, field: "text", k: 3) } catch { return error.response }
        let state = await assist.snapshot
        guard let intents = state.intents, let version = state.intentsVersion, let encoder = state.encoder,
              intents.model.map({ $0.encoder.version == encoder.encoder.version }) ?? true
        else {
            return HTTPJSON.error(.serviceUnavailable, "assistant_not_ready", "the assistant's model or the encoder is not loaded yet (or they do not fit each other); try again shortly")
        }
        let embedding = try await encoder.embed(fields.text, cached: false)
        let reading = intents.predict(fields.text, embedding: intents.model == nil ? nil : embedding)
        var answer: String?, source: String?, products: [CatalogSearch.Hit] = []
        let findProducts = { () async throws -> [CatalogSearch.Hit] in
            guard let search = state.search else { return [] }
            let vector = search.encoderKey == encoder.cacheKey ? embedding : nil
            let interests = await interests(fields.customer, for: search)
            return try await reads.read { db in
                // Relevant ones from the whole depth, then k: cut to k first, fewer would be left.
                try search.search(db, query: fields.text, vector: vector, interests: interests, k: CatalogSearch.depth, sentence: true)
            }.filter(\.relevant).prefix(fields.k).map { $0 }
        }
        if reading.intent == RequestIntents.outOfScope {
            products = try await findProducts()
            (answer, source) = products.isEmpty ? (state.answers?.outOfScope, "fallback.out_of_scope") : (state.answers?.products, "fallback.products")
        } else if let known = state.answers?.intents[reading.intent] {
            (answer, source) = (known.text, "intents.\(reading.intent)")
            if known.showProducts { products = try await findProducts() }
        } else {
            (answer, source) = (state.answers?.unanswered, "fallback.unanswered")
        }
        await assist.log(fields.event(.question))
        return try HTTPJSON.response(AssistResponse(
            intent: reading.intent, confidence: reading.confidence, bestIntent: reading.best, answer: answer, answerSource: answer == nil ? nil : source,
            model: "\(RequestIntents.kind) v\(version)", products: products.map(FoundItem.init)))
    }
}
