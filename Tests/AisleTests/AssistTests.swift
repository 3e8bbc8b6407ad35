@testable import AisleAssist
import AisleClient
import AisleConfig
@testable import AisleInsight
import AisleStore
import AisleText
import Foundation
import GRDB
import Testing

/// The kiosk assistant's request intents, its answers file, and the catalog search.
@Suite struct AssistTests {
    static let shippedDefault = ShippedModels.path(RequestIntents.defaultFile)
    static let encoderPath = ModelFiles.default.int8Weights.path
    static let hasEncoder = FileManager.default.fileExists(atPath: encoderPath)

    /// Out-of-scope requests the models never saw (tools/assist/out-of-scope.jsonl is another list).
    static let unseenOutOfScope = [
        "how hot will it be on saturday", "who sings that song on the radio", "what's nine plus six", "is the bank open on sundays",
        "tell me a riddle", "how do I get rid of hiccups", "where is the nearest petrol station", "what's the tallest mountain in europe",
        "which films are on at the cinema tonight", "how do I make a paper plane", "can penguins fly", "what's the time in new york",
        "good afternoon", "how many players in a rugby team", "how do I get a stain out of a carpet", "what does a koala eat",
    ]

    static func bitext(_ name: String) throws -> LabelledExamples {
        try LabelledExamples.load(try #require(TestSupport.shared).appendingPathComponent("splits/assist/bitext_\(name).jsonl").path)
    }

    static func outOfScopeFixture() throws -> LabelledExamples {
        try LabelledExamples.load(TestSupport.repository.appendingPathComponent("tools/assist/out-of-scope.jsonl").path)
    }

    /// Six intents from the Bitext 8k file plus our out-of-scope examples: held back, calibrated,
    /// saved and read back, and what it was never shown is refused rather than forced.
    @Test(.enabled(if: TestSupport.shared != nil && hasEncoder, "needs ../shared and the int8 encoder"))
    func trainedIntentsRoundTripAndRefuseWhatIsNotTheirs() throws {
        let six: Set = ["cancel_order", "track_order", "get_refund", "payment_issue", "create_account", "delivery_options"]
        let all = try Self.bitext("train")
        var data = all.subset(all.labels.indices.filter { six.contains(all.labels[$0]) && $0 % 3 == 0 })
        let oos = try Self.outOfScopeFixture()
        data.texts += oos.texts
        data.labels += oos.labels
        let (classifier, heldOut) = try RequestIntents.train(data, encoderPath: Self.encoderPath)
        #expect(classifier.labels.count == 7 && classifier.intents.count == 6)
        #expect(heldOut.accuracy >= 0.95 && heldOut.oosRecall ?? 0 >= 0.8, "\(heldOut)")

        let loaded = try RequestIntents(file: TextClassifierFile(data: try classifier.file.encoded(), name: "six.aisletc"), encoder: classifier.model)
        let probe = ["I want to cancel the order I made yesterday", "can you help me track my order", "my card payment failed", "I'd like my money back"]
        let before = classifier.predict(probe), after = loaded.predict(probe)
        #expect(zip(before, after).allSatisfy { $0.intent == $1.intent && abs($0.confidence - $1.confidence) < 1e-4 })
        #expect(after.map(\.intent) == ["cancel_order", "track_order", "payment_issue", "get_refund"], "\(after)")
        let refused = loaded.predict(Self.unseenOutOfScope).filter { $0.intent == RequestIntents.outOfScope }.count
        #expect(refused >= Self.unseenOutOfScope.count * 3 / 4, "\(refused) of \(Self.unseenOutOfScope.count) refused")
        // A file the assistant cannot use says why.
        #expect { try RequestIntents(file: TextClassifierFile(data: try classifier.file.encoded(), name: "x"), encoder: nil) } throws: { "\($0)".contains("which is not loaded") }
        var noThreshold = classifier.file
        noThreshold.threshold = nil
        #expect { try RequestIntents(file: noThreshold, encoder: classifier.model) } throws: { "\($0)".contains("not a request-intent model") }
        var outOfRange = classifier.file
        outOfRange.threshold = 7
        #expect { _ = try TextClassifierFile(data: try outOfRange.encoded(), name: "t.aisletc") } throws: { "\($0)".contains("t.aisletc: threshold: 7.0 is not a probability") }
    }

    /// The shipped default on a sample of the Bitext 20k file (every seventh line) and on
    /// out-of-scope requests it never saw, through `aislectl eval classify`.
    @Test(.enabled(if: TestSupport.shared != nil && shippedDefault != nil && hasEncoder, "needs ../shared, the default model and the encoder"))
    func defaultModelOnBitextAndOutOfScope() throws {
        let test = try Self.bitext("test")
        let dir = try TestSupport.temporaryDirectory()
        let file = dir.appendingPathComponent("sample.jsonl")
        func line(_ text: String, _ label: String) -> String {
            String(decoding: try! JSONEncoder().encode(["text": text, "label": label]), as: UTF8.self)
        }
        let rows = stride(from: 0, to: test.texts.count, by: 7).map { line(test.texts[$0], test.labels[$0]) } + Self.unseenOutOfScope.map { line($0, "oos") }
        try TestSupport.write(rows.joined(separator: "\n") + "\n", to: file)
        let r = try TestSupport.run("aislectl", ["eval", "classify", "--task", "assist", "--model", "default", "--test", file.path, "--json"])
        #expect(r.status == 0, "\(r.err)")
        struct Out: Decodable { var n: Int; var accuracy: Double; var macro_f1: Double; var oos_recall: Double? }
        let out = try JSONDecoder().decode(Out.self, from: Data(r.out.utf8))
        #expect(out.n == rows.count && out.accuracy >= 0.88 && out.macro_f1 >= 0.8, "\(out)")
        #expect(out.oos_recall ?? 0 >= 0.75, "\(out)")
    }

    /// Without title embeddings, the assistant offers products that have a word of the request
    /// as typed; one matched only through a correction ("weather" → "feather") is not offered,
    /// nor one matched only by the words that carry a request ("do", "have").
    @Test func aCorrectionAloneIsNoReasonToOfferAProduct() throws {
        let dir = try TestSupport.temporaryDirectory()
        let catalog = [
            #"{"item":"PEN","title":"FEATHER PEN","category":"desk"}"#, #"{"item":"POT","title":"RED TEAPOT","category":"tea"}"#,
            #"{"item":"DOI","title":"HAVEN DOILY","category":"home"}"#,
        ]
        let store = try Store.open(at: URL(fileURLWithPath: try ModelsTests.store(events: [], catalog: catalog, in: dir)))
        let (weather, teapot, chat) = try store.database.read { db in
            let search = try CatalogSearch(db, embeddings: nil, encoderKey: nil, themes: nil)
            return (try search.search(db, query: "what's the weather like", vector: nil, k: 5, sentence: true),
                    try search.search(db, query: "do you have a red teapot", vector: nil, k: 5, sentence: true),
                    try search.search(db, query: "what do you have?", vector: nil, k: 5, sentence: true))
        }
        #expect(chat.isEmpty, "\(chat.map(\.item.title))")
        #expect(weather.map(\.item.sku) == ["PEN"] && weather[0].reasons == [#"has "feather" (you typed "weather")"#] && !weather[0].typed && !weather[0].relevant, "\(weather.map(\.reasons))")
        #expect(teapot.map(\.item.sku) == ["POT"] && teapot[0].typed && teapot[0].relevant)
    }

    @Test func answersFileIsCheckedKeyByKey() throws {
        let shipped = try Answers.load(TestSupport.repository.appendingPathComponent("firmware-config/answers.toml").path)
        #expect(shipped.intents["check_refund_policy"]?.text.contains("within 30 days") == true)
        #expect(shipped.intents["place_order"]?.showProducts == true && shipped.intents["cancel_order"]?.showProducts == false)
        if let model = Self.shippedDefault {
            let file = try TextClassifierFile(data: try Data(contentsOf: URL(fileURLWithPath: model)), name: model)
            #expect(Set(file.labels.filter { $0 != RequestIntents.outOfScope }).subtracting(shipped.intents.keys).isEmpty, "every default intent has an answer")
        }
        let base = """
            [store]
            phone = "0123"
            days = 14
            [fallback]
            out_of_scope = "Ask at the desk."
            products = "Here:"
            unanswered = "Call {phone}."

            """
        #expect(try Answers.parse(base + "[intents.get_refund]\nanswer = \"Within {days} days.\"\n").intents["get_refund"]?.text == "Within 14 days.")
        func refusal(_ toml: String) -> String {
            do { _ = try Answers.parse(toml); return "accepted" } catch { return error.description }
        }
        #expect(refusal(base + "[intents.get_refund]\nanswer = \"Within {dayz} days.\"\n").contains("intents.get_refund.answer: unknown slot {dayz}; [store] has days, phone"))
        #expect(refusal(base + "[intents.get_refund]\nanswer = \"Within {days days.\"\n").contains("intents.get_refund.answer: a \"{\" is never closed"))
        #expect(refusal(base + "[intents.get_refund]\nanswer = \"ok\"\nproducts = \"yes\"\n").contains("intents.get_refund.products: expected true or false"))
        #expect(refusal(base + "[intents.get_refund]\ntext = \"ok\"\n").contains("intents.get_refund.text: unknown key"))
        #expect(refusal(base + "[intents.get_refund]\nanswer = \"ok\n").contains("(syntax): line 9"))
        #expect(refusal("[store]\n").contains("fallback.out_of_scope: missing"))
        // Every table and key checked: an array of tables, or a stray fallback key, is named.
        #expect(refusal(base + "[[intents]]\nanswer = \"ok\"\n").contains("intents: expected a table [intents]"))
        #expect(refusal(base.replacingOccurrences(of: "[fallback]\n", with: "[fallback]\nout_of_scop = \"x\"\n")).contains("fallback.out_of_scop: unknown key"))
    }

    /// Query words are folded as SQLite's tokenizer folds the titles: Cyrillic, Greek and German
    /// titles are found by their words as typed, and Latin accents may be left out.
    @Test func lexicalSearchFoldsWordsAsTheIndexDoes() throws {
        #expect(["Чайник", "Crème", "Καφές", "Straße", "ÅNGSTRÖM"].map { Vocabulary.fold($0) } == ["чайник", "creme", "καφέσ", "straße", "angstrom"])
        let titles = [
            "K1": "ЧАЙНИК ЭМАЛИРОВАННЫЙ", "K2": "ЁЛОЧНАЯ ИГРУШКА", "G1": "ΚΑΦΈΣ ΕΛΛΗΝΙΚΌΣ", "B1": "WEISSBIER GLAS", "B2": "WEIẞBIER KRUG",
            "F1": "CRÈME BRÛLÉE SET",
        ]
        let catalog = titles.sorted { $0.key < $1.key }.map { #"{"item":"\#($0.key)","title":"\#($0.value)"}"# }
        let store = try Store.open(at: URL(fileURLWithPath: try ModelsTests.store(events: [], catalog: catalog, in: try TestSupport.temporaryDirectory())))
        let search = try store.database.read { try CatalogSearch($0, embeddings: nil, encoderKey: nil, themes: nil) }
        func found(_ query: String) throws -> [String] {
            try store.database.read { try search.search($0, query: query, vector: nil, k: 3, mode: .lexical) }.map(\.item.sku)
        }
        for (query, sku) in [("чайник", "K1"), ("Ёлочная игрушка", "K2"), ("καφές", "G1"), ("weißbier", "B2"), ("crème brûlée", "F1"), ("creme brulee", "F1")] {
            #expect(try found(query).first == sku, "\(query)")
        }
        // The catalog as it is at the query, not as the index was built: a title changed since
        // shows as it is now, an item sold out is not offered, and offered again once restocked.
        try store.database.write { try $0.execute(sql: "UPDATE items SET title = 'CRÈME BRÛLÉE KIT' WHERE sku = 'F1'; UPDATE items SET in_stock = 0 WHERE sku = 'K1'") }
        #expect(try store.database.read { try search.search($0, query: "creme brulee", vector: nil, k: 3, mode: .lexical) }.first?.item.title == "CRÈME BRÛLÉE KIT")
        #expect(try found("чайник").isEmpty)
        try store.database.write { try $0.execute(sql: "UPDATE items SET in_stock = 1 WHERE sku = 'K1'") }
        #expect(try found("чайник") == ["K1"])
    }

    /// FTS5 with typo correction and the title embeddings, over a real store whose catalog
    /// changes: the index follows new titles and deactivated items, and the shopper's interests
    /// lift their category.
    @Test(.enabled(if: hasEncoder, "needs the int8 encoder"))
    func searchFindsMisspeltAndSimilarItemsInTheLiveCatalog() throws {
        let dir = try TestSupport.temporaryDirectory()
        let titles = [
            "T1": ("PORCELAIN TEAPOT WITH ROSES", "kitchen"), "T2": ("RED ENAMEL TEAPOT", "kitchen"), "T3": ("RED ENAMEL TEAPOT", "gifts"),
            "C1": ("SCENTED PILLAR CANDLE VANILLA", "home"), "C2": ("CHRISTMAS LIGHTS 10 REINDEER", "christmas"),
            "L1": ("SPACEBOY LUNCH BOX", "kids"), "M1": ("WHITE CERAMIC COFFEE MUG", "kitchen"), "N1": ("SILVER HEART NECKLACE", "jewellery"),
            "W1": ("TEA TOWEL", "kitchen"), "D1": ("HAVEN DOILY WRAP", "gifts"),
        ]
        let catalog = titles.sorted { $0.key < $1.key }.map { #"{"item":"\#($0.key)","title":"\#($0.value.0)","category":"\#($0.value.1)"}"# }
        let storeDir = URL(fileURLWithPath: try ModelsTests.store(events: [], catalog: catalog, in: dir))
        let store = try Store.open(at: storeDir)
        let model = try TextModel.load(path: Self.encoderPath, threads: 1)
        func index() throws -> CatalogSearch {
            let embeddings = try CatalogEmbeddings.load(store, model: model)
            return try store.database.read { try CatalogSearch($0, embeddings: embeddings, encoderKey: model.cacheKey, themes: nil) }
        }
        func search(_ s: CatalogSearch, _ q: String, mode: CatalogSearch.Mode = .hybrid, interests: [Interests.Share] = []) throws -> [CatalogSearch.Hit] {
            let vector = TextInputs.embed([s.corrected(q)], model)[0]
            return try store.database.read { try s.search($0, query: q, vector: vector, interests: interests, k: 3, mode: mode) }
        }
        var s = try index()
        #expect(s.items.count == 10)
        let typo = try search(s, "porcelian teapto")
        #expect(typo.first?.item.sku == "T1" && typo.first?.reasons.contains("has \"porcelain\" (you typed \"porcelian\")") == true, "\(typo.map(\.reasons))")
        #expect(s.corrected("Porcelian TEAPTO") == "porcelain teapot")
        // A partial word is the start of a word, not a misspelling of another ("tea", one edit away).
        #expect(s.corrected("teap") == "teap")
        #expect(try search(s, "teap", mode: .lexical).map(\.item.sku).sorted() == ["T1", "T2", "T3"])
        // A long question: the words the catalog has count, however many come before them.
        let chatty = try search(s, "hello there could you please tell me whether you happen to have any red enamel teapot", mode: .lexical)
        #expect(chatty.first.map { ["T2", "T3"].contains($0.item.sku) } == true, "\(chatty.map(\.item.title))")
        let meaning = try search(s, "lunchbox for school")
        #expect(meaning.first?.item.sku == "L1" && meaning.first?.relevant == true, "\(meaning.map(\.item.title))")
        #expect(try search(s, "lunchbox", mode: .lexical).isEmpty)  // no word in common: only the meaning finds it
        #expect(try search(s, "what's the weather like").allSatisfy { !$0.relevant })
        // Two identical teapots: the shopper's interest in gifts decides.
        #expect(try search(s, "red teapot", interests: [.init(name: "gifts", theme: nil, share: 0.6)]).first?.item.sku == "T3")
        #expect(try search(s, "red teapot", interests: [.init(name: "kitchen", theme: nil, share: 0.6)]).first?.item.sku == "T2")

        // The catalog changes: a new title is found, a deactivated or sold-out item is not — by
        // the index built before the change too (the agent rebuilds it within 30 s), which shows
        // the new title and price of what it still finds.
        let update = dir.appendingPathComponent("update.jsonl")
        try TestSupport.write([
            #"{"item":"C1","title":"BEESWAX TEALIGHT CANDLES","category":"home","price":4.5}"#, #"{"item":"N1","title":"SILVER HEART NECKLACE","active":false}"#,
            #"{"item":"M1","title":"WHITE CERAMIC COFFEE MUG","category":"kitchen","in_stock":false}"#,
        ].joined(separator: "\n") + "\n", to: update)
        #expect(try TestSupport.run("aislectl", ["import", "catalog", update.path, "--store", storeDir.path, "--quiet"]).status == 0)
        #expect(try search(s, "silver necklace").allSatisfy { $0.item.sku != "N1" })
        #expect(try search(s, "coffee mug").allSatisfy { $0.item.sku != "M1" })
        let candle = try search(s, "vanilla candle", mode: .lexical).first
        #expect(candle?.item.sku == "C1" && candle?.item.title == "BEESWAX TEALIGHT CANDLES" && candle?.item.price == 4.5)
        s = try index()
        // Rebuilt, the index keeps the sold-out mug listed (stock changes by the minute): each search leaves it out.
        #expect(try search(s, "coffee mug").allSatisfy { $0.item.sku != "M1" } && s.items.contains { $0.sku == "M1" })
        #expect(try search(s, "beeswax", mode: .lexical).first?.item.sku == "C1")
        #expect(try search(s, "vanilla", mode: .lexical).isEmpty)
        #expect(try search(s, "silver necklace").allSatisfy { $0.item.sku != "N1" })
        // Without embeddings the search is lexical and still answers.
        let lexicalOnly = try store.database.read { try CatalogSearch($0, embeddings: nil, encoderKey: nil, themes: nil) }
        #expect(lexicalOnly.encoderKey == nil)
        #expect(try store.database.read { try lexicalOnly.search($0, query: "chrismas", vector: nil, k: 3) }.first?.item.sku == "C2")
        // A question's own words ("do", "you", "have") match no product: only "candles" does.
        let asked = try store.database.read { try lexicalOnly.search($0, query: "do you have candles", vector: nil, k: 3, sentence: true) }
        #expect(asked.map(\.item.sku) == ["C1"], "\(asked.map(\.item.title))")
        // A quote joined to a letter by a prepended mark (one grapheme, so one "word") is matched
        // as text, not read as the end of an FTS5 string.
        #expect(try store.database.read { try lexicalOnly.search($0, query: "candle a\u{0D4E}\"", vector: nil, k: 3) }.first?.item.sku == "C1")
    }

    /// The must-show of the known-item protocol: on the Online Retail catalog, hybrid retrieval
    /// beats lexical and dense alone on MRR@10, by a margin whose 95 % interval excludes zero.
    @Test(.enabled(if: TestSupport.shared != nil && hasEncoder, "needs ../shared and the int8 encoder"))
    func hybridBeatsLexicalAndDenseOnKnownItems() throws {
        let store = try TestSupport.onlineRetailStore.get()
        let r = try TestSupport.run("aislectl", ["eval", "search", "--store", store.path, "--json"])
        #expect(r.status == 0, "\(r.err)")
        struct Scores: Decodable { var mrr: Double; enum CodingKeys: String, CodingKey { case mrr = "mrr@10" } }
        struct Gain: Decodable { var ci95: [Double] }
        struct Out: Decodable { var queries: Int; var lexical: Scores; var dense: Scores; var hybrid: Scores; var hybrid_gain: [String: Gain] }
        let out = try JSONDecoder().decode(Out.self, from: Data(r.out.utf8))
        #expect(out.queries > 3000)
        #expect(out.hybrid.mrr > out.lexical.mrr && out.hybrid.mrr > out.dense.mrr, "\(r.out)")
        #expect(out.hybrid_gain["over_lexical"]?.ci95.first ?? -1 > 0, "\(r.out)")
        #expect(out.hybrid_gain["over_dense"]?.ci95.first ?? -1 > 0, "\(r.out)")
    }
}

/// `POST /v1/search` and `POST /v1/assist` on a running agent, with the store's own answers file.
@Suite struct AgentAssistTests {
    struct Found: Decodable { var sku: String; var title: String; var reasons: [String] }
    struct Assisted: Decodable {
        var intent: String; var confidence: Double; var best_intent: String; var answer: String?; var answer_source: String?; var model: String; var products: [Found]
    }
    struct Searched: Decodable { var query: String; var corrected: String?; var mode: String; var personalised: Bool; var items: [Found] }

    func post<T: Decodable>(_ socket: String, _ path: String, _ body: String, as: T.Type) async throws -> T {
        for _ in 0..<900 {
            let r = try await UnixHTTP.request(path: socket, .POST, path, body: Array(body.utf8))
            if r.status == 200 { return try JSONDecoder().decode(T.self, from: Data(r.body)) }
            #expect(r.status == 503, "\(r.text)")  // the model and the index load in the background
            try await Task.sleep(for: .milliseconds(200))
        }
        throw TestFailure("\(path) not ready in three minutes")
    }

    static let answers = """
        [store]
        phone = "0800 000 111"
        days = 28
        desk = "the blue desk"
        [fallback]
        out_of_scope = "Not something I know; ask at {desk}."
        products = "We have these:"
        unanswered = "Please call {phone}."
        [intents.get_refund]
        answer = "Refunds within {days} days at {desk}."
        [intents.place_order]
        answer = "Order at any till."
        products = true

        """

    @Test(.enabled(if: AssistTests.shippedDefault != nil && AssistTests.hasEncoder, "needs the default model and the encoder"))
    func answersSearchesAndLogsQuestions() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let catalog = [
            #"{"item":"T1","title":"PORCELAIN TEAPOT WITH ROSES","category":"kitchen"}"#, #"{"item":"T2","title":"RED ENAMEL TEAPOT","category":"kitchen"}"#,
            #"{"item":"L1","title":"SPACEBOY LUNCH BOX","category":"kids"}"#, #"{"item":"C2","title":"CHRISTMAS LIGHTS 10 REINDEER","category":"christmas"}"#,
        ]
        let events = [#"{"id":"p1","ts":1600000000,"type":"purchase","customer":"alice","item":"T2","quantity":1,"price":20}"#]
        let store = URL(fileURLWithPath: try ModelsTests.store(events: events, catalog: catalog, in: dir))
        let answersFile = dir.appendingPathComponent("answers.toml")
        try TestSupport.write(Self.answers, to: answersFile)
        let socket = dir.appendingPathComponent("s.sock").path
        let agent = try await TestSupport.startAgent(
            store: store, socket: socket, log: dir.appendingPathComponent("log"), config: "[assistant]\nanswers = \"\(answersFile.path)\"\n")
        defer { TestSupport.kill9(agent) }

        let refund = try await post(socket, "/v1/assist", #"{"text":"I want my money back for this","session":"k1"}"#, as: Assisted.self)
        #expect(refund.intent == "get_refund" && refund.answer == "Refunds within 28 days at the blue desk." && refund.answer_source == "intents.get_refund", "\(refund)")
        #expect(refund.model == "assist v1" && refund.confidence > 0.5 && refund.products.isEmpty)
        let weather = try await post(socket, "/v1/assist", #"{"text":"what's the weather like tomorrow"}"#, as: Assisted.self)
        #expect(weather.intent == "oos" && weather.answer == "Not something I know; ask at the blue desk." && weather.products.isEmpty, "\(weather)")
        let teapot = try await post(socket, "/v1/assist", #"{"text":"do you have a porcelain teapot"}"#, as: Assisted.self)
        #expect(teapot.products.first?.sku == "T1" && ["fallback.products", "intents.place_order"].contains(teapot.answer_source ?? ""), "\(teapot)")
        let unanswered = try await post(socket, "/v1/assist", #"{"text":"how do I delete my account"}"#, as: Assisted.self)
        #expect(unanswered.intent == "delete_account" && unanswered.answer == "Please call 0800 000 111." && unanswered.answer_source == "fallback.unanswered")

        let found = try await post(socket, "/v1/search", #"{"query":"chrismas lihgts","k":2,"customer":"alice"}"#, as: Searched.self)
        #expect(found.items.first?.sku == "C2" && found.corrected == "christmas lights" && found.mode == "hybrid", "\(found)")
        let lexical = try await post(socket, "/v1/search", #"{"query":"teapot","mode":"lexical"}"#, as: Searched.self)
        // No word to search for: nothing, rather than whatever lies nearest to an empty sentence.
        let nothing = try await post(socket, "/v1/search", #"{"query":"?"}"#, as: Searched.self)
        #expect(nothing.items.isEmpty && nothing.mode == "lexical", "\(nothing)")
        #expect(Set(lexical.items.map(\.sku)) == ["T1", "T2"] && lexical.mode == "lexical")
        for (path, body, code) in [
            ("/v1/search", #"{"query":""}"#, "bad_query"), ("/v1/search", #"{"k":3}"#, "bad_query"), ("/v1/search", #"{"query":"tea","k":0}"#, "bad_k"),
            ("/v1/search", #"{"query":"tea","mode":"fuzzy"}"#, "bad_mode"), ("/v1/assist", #"{"text":7}"#, "bad_text"), ("/v1/assist", "[1]", "expected_object"),
        ] {
            let r = try await UnixHTTP.request(path: socket, .POST, path, body: Array(body.utf8))
            #expect(r.status == 400 && r.text.contains(code), "\(path) \(body): \(r.text)")
        }
        // A kiosk request's body is at most 64 KiB (only event batches may take http.max_body_bytes).
        let padded = #"{"query":"tea","pad":""# + String(repeating: "x", count: 70_000) + #""}"#
        let large = try await UnixHTTP.request(path: socket, .POST, "/v1/search", body: Array(padded.utf8))
        #expect(large.status == 413 && large.text.contains("65536 bytes (this endpoint's limit)"), "\(large.status) \(large.text.prefix(200))")

        // Questions and searches are events: texts kept, the customer pseudonymous.
        var logged: [String] = []
        for _ in 0..<50 {
            logged = try await Store.open(at: store, readOnly: true).database.read { db in
                try String.fetchAll(db, sql: "SELECT type || ':' || text FROM events WHERE type IN ('question', 'search') ORDER BY id")
            }
            if logged.count >= 6 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(logged.contains("question:I want my money back for this") && logged.contains("search:chrismas lihgts"), "\(logged)")

        // A broken answers file is refused on SIGHUP and the old answers stay; a fixed one is taken.
        try TestSupport.write(Self.answers.replacingOccurrences(of: "{days}", with: "{dayz}"), to: answersFile)
        kill(agent.processIdentifier, SIGHUP)
        var log = ""
        for _ in 0..<150 where !log.contains("unknown slot {dayz}") {  // (the reload comes after the encoder's)
            try await Task.sleep(for: .milliseconds(200))
            log = try String(contentsOf: dir.appendingPathComponent("log"), encoding: .utf8)
        }
        #expect(log.contains("unknown slot {dayz}"))
        #expect(try await post(socket, "/v1/assist", #"{"text":"I want my money back"}"#, as: Assisted.self).answer == "Refunds within 28 days at the blue desk.")
        try TestSupport.write(Self.answers.replacingOccurrences(of: "28", with: "35"), to: answersFile)
        kill(agent.processIdentifier, SIGHUP)
        var answer = ""
        for _ in 0..<50 where !answer.contains("35") {
            try await Task.sleep(for: .milliseconds(200))
            answer = try await post(socket, "/v1/assist", #"{"text":"I want my money back"}"#, as: Assisted.self).answer ?? ""
        }
        #expect(answer == "Refunds within 35 days at the blue desk.")

        // A search just before SIGTERM is written before the agent exits.
        _ = try await post(socket, "/v1/search", #"{"query":"last teapot before closing"}"#, as: Searched.self)
        agent.terminate()
        agent.waitUntilExit()
        let last = try await Store.open(at: store, readOnly: true).database.read { db in
            try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE type = 'search' AND text = 'last teapot before closing'") ?? 0
        }
        #expect(last == 1)
    }
}
