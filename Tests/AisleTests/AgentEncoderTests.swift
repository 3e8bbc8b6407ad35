import AisleClient
import AisleCore
import AisleInsight
import AisleStore
@testable import AisleText
import Foundation
import GRDB
import Testing

/// The agent with its encoder: loads the int8 model, serves embeddings, stays small, and keeps
/// serving with the model it has when a reload meets a bad file.
@Suite(.serialized) struct AgentEncoderTests {
    struct Status: Decodable {
        struct Encoder: Decodable { var state: String; var model: String?; var loads: Int; var attempts: Int; var lastError: String? }
        var encoder: Encoder
    }

    struct Embedded: Decodable { var model: String; var dimensions: Int; var embeddings: [[Float]] }

    func status(_ socket: String) async throws -> Status.Encoder {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(Status.self, from: Data(try await UnixHTTP.request(path: socket, .GET, "/v1/status").body)).encoder
    }

    /// Polls the status until `done` holds (the load runs in the background).
    func waitFor(_ socket: String, _ done: (Status.Encoder) -> Bool) async throws -> Status.Encoder {
        for _ in 0..<300 {
            let s = try await status(socket)
            if done(s) { return s }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("encoder status did not change: \(try await status(socket))")
    }

    func embed(_ socket: String, _ body: String) async throws -> HTTPResult {
        try await UnixHTTP.request(path: socket, .POST, "/v1/embed", body: Array(body.utf8))
    }

    /// A copy of the int8 model and its vocabulary in `dir`/models, for an agent to load (and a
    /// test to replace under it); the model file's URL.
    func modelCopy(in dir: URL) throws -> URL {
        let models = dir.appendingPathComponent("models")
        try FileManager.default.createDirectory(at: models, withIntermediateDirectories: true)
        let model = models.appendingPathComponent("minilm-int8.safetensors")
        try FileManager.default.copyItem(at: try Int8Tests.quantized.get(), to: model)
        try FileManager.default.copyItem(at: ModelFiles.default.vocabulary, to: models.appendingPathComponent("vocab.txt"))
        return model
    }

    @Test(.enabled(if: TestSupport.shared != nil, "needs the model"))
    func agentServesEmbeddingsAndSurvivesBadModels() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let model = try modelCopy(in: dir)
        let vocabulary = model.deletingLastPathComponent().appendingPathComponent("vocab.txt")
        let good = try Data(contentsOf: model)
        let goodVocabulary = try Data(contentsOf: vocabulary)
        let store = dir.appendingPathComponent("store")
        #expect(try TestSupport.run("aislectl", ["init", "--store", store.path]).status == 0)
        let config = dir.appendingPathComponent("aisled.toml")
        try TestSupport.write("[encoder]\nmodel = \"\(model.path)\"\nthreads = 2\n", to: config)
        let socket = dir.appendingPathComponent("a.sock").path
        let log = dir.appendingPathComponent("aisled.log")
        let agent = try TestSupport.launch("aisled", ["--config", config.path, "--store", store.path, "--socket", socket], stderrTo: log)
        defer { TestSupport.kill9(agent.process) }
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { try await Task.sleep(for: .milliseconds(50)) }

        let ready = try await waitFor(socket) { $0.state != "loading" }
        #expect(ready.state == "ready" && ready.loads == 1 && ready.lastError == nil)
        let version = try #require(ready.model)

        // Embeddings over the socket equal the library's, and rank a near text above a far one.
        let answer = try await embed(socket, #"{"texts": ["red ceramic mug", "red coffee cup", "garden hose 20m"]}"#)
        #expect(answer.status == 200)
        let e = try JSONDecoder().decode(Embedded.self, from: Data(answer.body))
        #expect(e.model == version && e.dimensions == 384 && e.embeddings.count == 3)
        let local = try TextModel.load(path: model.path, threads: 1)
        #expect(e.embeddings[0] == local.encoder.embed(local.tokenizer.encode("red ceramic mug")))
        func dot(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).reduce(0) { $0 + $1.0 * $1.1 } }
        #expect(dot(e.embeddings[0], e.embeddings[1]) > dot(e.embeddings[0], e.embeddings[2]) + 0.1)

        // Bad requests name what is wrong.
        #expect(try await embed(socket, "{}").text.contains("expected_texts"))
        let notString = try await embed(socket, #"{"texts": ["ok", 7]}"#)
        #expect(notString.status == 400 && notString.text.contains("texts[1]"))
        #expect(try await embed(socket, #"{"texts": []}"#).status == 400)
        // Each text is read whole before it is cut at 256 tokens: long ones are refused, not
        // tokenised at the cost of hundreds of megabytes.
        let long = try await embed(socket, #"{"texts": ["ok", ""# + String(repeating: "a ", count: 5_001) + #""]}"#)
        #expect(long.status == 400 && long.text.contains("texts[1]: longer than 10000 characters"), "\(long.text)")
        let many = try await embed(socket, #"{"texts": ["# + [String](repeating: "\"" + String(repeating: "b", count: 9_000) + "\"", count: 12).joined(separator: ",") + "]}")
        #expect(many.status == 400 && many.text.contains("more than 100000 characters in all (at texts[11])"), "\(many.text)")

        // Resident memory with the model loaded.
        let rss = try String(contentsOfFile: "/proc/\(agent.process.processIdentifier)/status", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("VmRSS:") }
            .flatMap { Int($0.split(separator: " ")[1]) } ?? .max
        #expect(rss < 120 * 1024, "aisled resident \(rss) kB")

        // Each bad file is refused on SIGHUP; the agent keeps answering with the model it had.
        var loads = ready.loads
        var attempts = ready.attempts
        func reload(expecting reason: String) async throws {
            kill(agent.process.processIdentifier, SIGHUP)
            attempts += 1
            let s = try await waitFor(socket) { $0.attempts >= attempts }
            #expect(s.lastError?.contains(reason) == true, "\(s.lastError ?? "no error")")
            #expect(s.state == "ready" && s.model == version && s.loads == loads)
            let again = try await embed(socket, #"{"texts": ["red ceramic mug"]}"#)
            #expect(again.status == 200)
            let vector = try JSONDecoder().decode(Embedded.self, from: Data(again.body)).embeddings.first
            #expect(vector == e.embeddings[0])
        }
        try good.prefix(good.count / 2).write(to: model)  // truncated in place, under the running agent
        try await reload(expecting: "truncated")
        var flipped = good
        flipped[good.count - 1000] ^= 0x55
        try flipped.write(to: model)
        try await reload(expecting: "corrupt")
        try good.write(to: model)
        try Data(goodVocabulary.prefix(goodVocabulary.count / 2)).write(to: vocabulary)
        try await reload(expecting: "mismatched")
        try FileManager.default.removeItem(at: model)
        try await reload(expecting: "No such file")

        // A good file again is taken.
        try good.write(to: model)
        try goodVocabulary.write(to: vocabulary)
        kill(agent.process.processIdentifier, SIGHUP)
        let back = try await waitFor(socket) { $0.loads > loads }
        loads = back.loads
        #expect(back.lastError == nil && back.model == version && loads == 2)
        let logText = try String(contentsOf: log, encoding: .utf8)
        #expect(logText.contains("still serving the previous one") && logText.contains(#""msg":"encoder loaded""#))
    }

    /// Themes are made with one encoder: after the encoder is swapped on SIGHUP (here the same
    /// weights under another source digest, so another version), new texts get no theme from
    /// them, and the refusal is logged, until themes are trained again.
    @Test(.enabled(if: TestSupport.shared != nil, "needs the model"))
    func themesOfAnotherEncoderAreNotUsedAfterASwap() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let model = try modelCopy(in: dir)
        let kinds = ["PORCELAIN TEAPOT", "SCENTED PILLAR CANDLE", "SILVER NECKLACE", "VELVET CUSHION COVER"]
        let catalog = (0..<80).map { n in #"{"item":"I\#(n)","title":"\#(kinds[n / 20]) STYLE \#(n)"}"# }
        let search = { (n: Int) in #"{"id":"s\#(n)","ts":\#(1_600_000_000 + n),"type":"search","customer":"c1","text":"teapot with roses"}"# }
        let store = URL(fileURLWithPath: try ModelsTests.store(events: [search(0)], catalog: catalog, in: dir))
        let themes = try TestSupport.run("aislectl", ["train", "themes", "--store", store.path, "--encoder", model.path])
        #expect(themes.status == 0, "\(themes.err)")
        let socket = dir.appendingPathComponent("a.sock").path
        let log = dir.appendingPathComponent("aisled.log")
        // (The searches are years old: their words are kept for the test.)
        let agent = try await TestSupport.startAgent(store: store, socket: socket, log: log, config: "[encoder]\nmodel = \"\(model.path)\"\n[privacy]\ntext_days = 0\n")
        defer { TestSupport.kill9(agent) }
        func themed() throws -> Int { try Store.open(at: store, readOnly: true).database.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM text_themes") ?? 0 } }
        for _ in 0..<300 where try themed() < 1 { try await Task.sleep(for: .milliseconds(100)) }
        #expect(try themed() == 1)
        let before = try #require(try await waitFor(socket) { $0.state == "ready" }.model)

        try Int8Tests.rewrite(model, to: dir.appendingPathComponent("other.safetensors")) { $0["source_sha256"] = String(repeating: "ab", count: 32) }
        try FileManager.default.removeItem(at: model)
        try FileManager.default.moveItem(at: dir.appendingPathComponent("other.safetensors"), to: model)
        kill(agent.processIdentifier, SIGHUP)
        let swapped = try await waitFor(socket) { $0.model != before && $0.state == "ready" }
        #expect(swapped.model?.hasPrefix("int8-v2:abababab") == true)
        // What the old encoder cached (the catalog's titles) went with it.
        let cachedBefore = try await Store.open(at: store, readOnly: true).database.read {
            try Int.fetchOne($0, sql: "SELECT count(*) FROM embeddings WHERE model LIKE ? || ':%'", arguments: [before]) ?? 0
        }
        #expect(cachedBefore == 0)
        let posted = try await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array("[\(search(1))]".utf8))
        #expect(posted.status == 200, "\(posted.text)")
        kill(agent.processIdentifier, SIGHUP)  // score at once rather than at the next poll
        var logText = ""
        for _ in 0..<300 where !logText.contains("were made with encoder") {
            try await Task.sleep(for: .milliseconds(100))
            logText = try String(contentsOf: log, encoding: .utf8)
        }
        #expect(logText.contains("themes v1 were made with encoder \(before)"), "\(logText.suffix(1500))")
        #expect(try themed() == 1)
    }

    @Test func agentWithoutAModelStillTakesEvents() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let store = dir.appendingPathComponent("store")
        #expect(try TestSupport.run("aislectl", ["init", "--store", store.path]).status == 0)
        let config = dir.appendingPathComponent("aisled.toml")
        try TestSupport.write("[encoder]\nmodel = \"\(dir.path)/missing.safetensors\"\n", to: config)
        let socket = dir.appendingPathComponent("a.sock").path
        let agent = try TestSupport.launch("aisled", ["--config", config.path, "--store", store.path, "--socket", socket], stderrTo: dir.appendingPathComponent("log"))
        defer { TestSupport.kill9(agent.process) }
        for _ in 0..<200 where !FileManager.default.fileExists(atPath: socket) { try await Task.sleep(for: .milliseconds(50)) }
        let s = try await waitFor(socket) { $0.state != "loading" }
        #expect(s.state == "unavailable" && s.lastError?.contains("No such file") == true)
        let refused = try await embed(socket, #"{"texts": ["mug"]}"#)
        #expect(refused.status == 503 && refused.text.contains("encoder_unavailable"))
        let events = try await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array(#"[{"ts":1300000000,"type":"view","item":"A"}]"#.utf8))
        #expect(events.status == 200 && events.text.contains(#""accepted":1"#))
    }
}

/// `GET /v1/customers/{id}/insight` on the Online Retail store, with the registry's churn model,
/// switched without a restart when another version becomes active.
@Suite struct AgentInsightTests {
    struct Driver: Decodable { var feature: String; var contribution: Double }
    struct Insight: Decodable {
        var as_of: String; var segment: String; var rfm: [String: Int]; var probability_alive: Double
        var expected_purchases: Double; var horizon_days: Int; var expected_value_per_purchase: Double; var churn_probability: Double
        var churn_drivers: [Driver]; var churn_model: String
        struct Share: Decodable { var name: String; var theme: Int?; var share: Double }
        var interests: [Share]
    }
    struct Answer: Decodable { var customer: String; var insight: Insight }
    struct Registered: Decodable { var kind: String; var version: Int; var active: Bool }

    /// Polls the insight of a customer (12347) until `until` holds (the first computation and
    /// model switches take seconds).
    func insight(_ socket: String, customer: String = "12347", until: (Insight) -> Bool) async throws -> Answer {
        for _ in 0..<600 {
            let answer = try await UnixHTTP.request(path: socket, .GET, "/v1/customers/\(customer)/insight")
            if answer.status == 200, let r = try? JSONDecoder().decode(Answer.self, from: Data(answer.body)), until(r.insight) { return r }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("the insight did not reach the expected state within a minute")
    }

    /// A store's first buyer: the insight computed before any purchase has no fits to score them
    /// with (BG/NBD's expectation would be infinite, which JSON cannot carry): they are scored
    /// by a whole computation, within seconds.
    @Test func theFirstBuyerOfANewStoreGetsAnInsight() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let view = #"{"ts":1600000000,"type":"view","customer":"c0","item":"MUG"}"#
        let store = URL(fileURLWithPath: try ModelsTests.store(events: [view], catalog: [#"{"item":"MUG","title":"mug"}"#], in: dir))
        let socket = dir.appendingPathComponent("i.sock").path
        let agent = try await TestSupport.startAgent(store: store, socket: socket, log: dir.appendingPathComponent("log"))
        defer { TestSupport.kill9(agent) }
        for _ in 0..<300 where try await UnixHTTP.request(path: socket, .GET, "/v1/customers/c0/insight").status != 404 {
            try await Task.sleep(for: .milliseconds(100))  // computed: c0 has no purchase
        }
        // Events that bring no buyer (a known customer's view) are rescored as before, not met
        // with a whole computation every second.
        let log = dir.appendingPathComponent("log")
        func computations() throws -> Int { try String(contentsOf: log, encoding: .utf8).components(separatedBy: "customer insight computed").count - 1 }
        let before = try computations()
        let look = #"[{"ts":1600001800,"type":"view","customer":"c2","item":"MUG"}]"#
        #expect(try await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array(look.utf8)).status == 200)
        try await Task.sleep(for: .seconds(3))
        #expect(try computations() == before)
        let purchase = #"[{"ts":1600003600,"type":"purchase","customer":"c1","item":"MUG","receipt":"r1","qty":1,"price":3}]"#
        #expect(try await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array(purchase.utf8)).status == 200)
        let first = try await insight(socket, customer: "c1") { _ in true }
        #expect(first.insight.expected_purchases.isFinite && first.insight.expected_value_per_purchase == 3, "\(first.insight)")
    }

    /// A store with no events when the agent starts: its first buyer is scored within seconds,
    /// not at the next hourly computation.
    @Test func aStoreThatStartsEmptyScoresItsFirstBuyer() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let store = URL(fileURLWithPath: try ModelsTests.store(events: [], catalog: [#"{"item":"MUG","title":"mug"}"#], in: dir))
        let socket = dir.appendingPathComponent("e.sock").path
        let agent = try await TestSupport.startAgent(store: store, socket: socket, log: dir.appendingPathComponent("log"))
        defer { TestSupport.kill9(agent) }
        try await Task.sleep(for: .seconds(2))  // the first computation, over nothing, has run
        let purchase = #"[{"ts":1600003600,"type":"purchase","customer":"c1","item":"MUG","receipt":"r1","qty":1,"price":3}]"#
        #expect(try await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array(purchase.utf8)).status == 200)
        let first = try await insight(socket, customer: "c1") { _ in true }
        #expect(first.insight.expected_value_per_purchase == 3, "\(first.insight)")
    }

    func train(_ store: URL, _ extra: [String] = []) throws -> Registered {
        let r = try TestSupport.run("aislectl", ["train", "churn", "--store", store.path, "--json"] + extra)
        #expect(r.status == 0, "\(r.err)")
        guard let record = try JSONDecoder().decode([Registered].self, from: Data(r.out.utf8)).first else { throw TestFailure("no record: \(r.out)") }
        return record
    }

    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func insightForACustomer() async throws {
        let store = try TestSupport.onlineRetailStore.get()
        let first = try train(store)
        #expect(first.kind == "churn" && first.active)
        let themes = try TestSupport.run("aislectl", ["train", "themes", "--store", store.path])
        #expect(themes.status == 0 && themes.out.contains(" themes over 38"), "\(themes.out)\(themes.err)")
        let dir = try TestSupport.temporaryDirectory()
        let socket = dir.appendingPathComponent("i.sock").path
        let agent = try await TestSupport.startAgent(store: store, socket: socket, log: dir.appendingPathComponent("log"))
        defer { TestSupport.kill9(agent) }
        let r = try await insight(socket) { $0.churn_model.hasPrefix("churn v\(first.version) ") }
        let i = r.insight
        #expect(!r.customer.contains("12347"))  // a pseudonym, never the raw id
        #expect(i.as_of == "2011-12-09T12:50:01Z" && !i.segment.isEmpty)
        #expect(["r", "f", "m"].allSatisfy { (1...5).contains(i.rfm[$0] ?? 0) })
        #expect((0...1).contains(i.probability_alive) && (0...1).contains(i.churn_probability) && i.expected_purchases > 0 && i.horizon_days == 91)
        #expect(i.expected_value_per_purchase > 0 && i.churn_drivers.count == 3)
        // Interests: three catalog themes by their words, shares of a whole.
        #expect(i.interests.count == 3 && i.interests.allSatisfy { $0.name.contains(" · ") && $0.theme != nil } && i.interests.map(\.share).reduce(0, +) <= 1)
        // 12347 bought every one to two months through December 2011: a champion, unlikely to churn.
        #expect(i.segment == "champions" && i.churn_probability < 0.3)
        #expect(try await UnixHTTP.request(path: socket, .GET, "/v1/customers/nobody/insight").status == 404)
        // The CLI computes the same insight with the same model.
        let cli = try TestSupport.run("aislectl", ["customer", "show", "12347", "--store", store.path, "--insight", "--json", "--limit", "1"])
        #expect(cli.status == 0, "\(cli.err)")
        let shown = try JSONDecoder().decode(Answer.self, from: Data(cli.out.utf8))
        #expect(shown.customer == r.customer && shown.insight.segment == i.segment && shown.insight.churn_probability == i.churn_probability)

        // A model trained on less history becomes active: the agent switches on SIGHUP, no restart.
        let second = try train(store, ["--as-of", "2011-11-01"])
        #expect(second.version == first.version + 1 && second.active)
        kill(agent.processIdentifier, SIGHUP)
        let switched = try await insight(socket) { $0.churn_model.hasPrefix("churn v\(second.version) ") }
        #expect(switched.insight.churn_probability != i.churn_probability)
        // Rolled back: the first model's answer again.
        let rollback = try TestSupport.run("aislectl", ["model", "rollback", "churn", "--store", store.path])
        #expect(rollback.status == 0 && rollback.out.contains("churn v\(first.version) is active"), "\(rollback.out)\(rollback.err)")
        kill(agent.processIdentifier, SIGHUP)
        let back = try await insight(socket) { $0.churn_model.hasPrefix("churn v\(first.version) ") }
        #expect(back.insight.churn_probability == i.churn_probability)
    }

    /// Rescoring only the customers with news, against the store-wide fits of the whole
    /// computation, gives what the whole computation gives them.
    @Test func updatingSomeCustomersMatchesComputingAll() throws {
        let store = try Store.open(at: try TestSupport.onlineRetailStore.get(), readOnly: true)
        try store.database.read { db in
            let t = try #require(try Queries.lastEventTime(db)) + 1
            let all = try CustomerInsight.computeAll(db, asOf: t)
            let some = Array(all.insight.keys.sorted().enumerated().filter { $0.offset % 97 == 0 }.map(\.element))
            let updated = try #require(try CustomerInsight.update(db, asOf: t, customers: some, population: all.population))
            let encoder = JSONEncoder()
            encoder.outputFormatting = .sortedKeys
            #expect(some.count > 40 && updated.count == some.count)
            for id in some { #expect(try encoder.encode(updated[id]) == encoder.encode(all.insight[id]), "customer \(id)") }
            // A customer without purchases has no insight.
            #expect(try CustomerInsight.update(db, asOf: t, customers: [-1], population: all.population)?.isEmpty == true)
            // Fits from before the first purchase cannot score buyers: the update defers to computing all.
            let none = try CustomerInsight.computeAll(db, asOf: 0).population
            #expect(none.customers == 0)
            #expect(try CustomerInsight.update(db, asOf: t, customers: some, population: none) == nil)
        }
    }

    /// The agent keeps the insight up to date as events arrive: a lapsed customer who buys again,
    /// and a first-time buyer, are rescored within seconds, without recomputing the store.
    @Test func insightFollowsEachCustomersEvents() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let day = 86_400, t0 = 1_600_000_000
        // Twenty regulars buying every week or two, the last of them a day ago; c0 bought once, 300 days ago.
        var events = [#"{"ts":\#(t0 - 300 * day),"type":"purchase","customer":"c0","item":"A","receipt":"c0-1","qty":1,"price":4}"#]
        for c in 1...20 {
            for k in 0..<(10 + c) {
                let ts = t0 - (1 + c % 5 + k * (7 + c % 7)) * day
                events.append(#"{"ts":\#(ts),"type":"purchase","customer":"c\#(c)","item":"\#(k % 2 == 0 ? "A" : "B")","receipt":"c\#(c)-\#(k)","qty":2,"price":3}"#)
            }
        }
        let store = URL(fileURLWithPath: try ModelsTests.store(events: events, in: dir))
        let socket = dir.appendingPathComponent("u.sock").path, log = dir.appendingPathComponent("log")
        let agent = try await TestSupport.startAgent(store: store, socket: socket, log: log)
        defer { TestSupport.kill9(agent) }
        let lapsed = try await insight(socket, customer: "c0") { _ in true }.insight
        #expect(lapsed.rfm["r"] == 1 && lapsed.rfm["f"] == 1 && lapsed.segment == "hibernating")
        #expect(try await UnixHTTP.request(path: socket, .GET, "/v1/customers/newcomer/insight").status == 404)

        // c0 comes back three days running; a newcomer buys for the first time.
        let news = (1...3).map { k in #"{"ts":\#(t0 + k * 3600),"type":"purchase","customer":"c0","item":"B","receipt":"c0-n\#(k)","qty":1,"price":9}"# }
            + [#"{"ts":\#(t0 + 7200),"type":"purchase","customer":"newcomer","item":"A","receipt":"n-1","qty":1,"price":5}"#]
        let post = try await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array(("[" + news.joined(separator: ",") + "]").utf8))
        #expect(post.status == 200 && post.text.contains(#""accepted":4"#), "\(post.text)")
        let back = try await insight(socket, customer: "c0") { $0.as_of != lapsed.as_of }.insight
        #expect(back.as_of == Timestamp.format(Int64(t0 + 3 * 3600 + 1)))
        // Most recent in the store now; four receipts are still few beside the regulars' 11–30.
        #expect(back.rfm["r"] == 5 && back.rfm["f"] == 1 && back.segment == "new" && back.expected_purchases > lapsed.expected_purchases
            && back.expected_value_per_purchase > lapsed.expected_value_per_purchase, "\(back) \(lapsed)")
        let newcomer = try await insight(socket, customer: "newcomer") { _ in true }.insight
        #expect(newcomer.rfm["f"] == 1 && newcomer.segment == "new", "\(newcomer)")
        // Rescored, not recomputed: the whole table was computed once, at start.
        let text = try String(contentsOf: log, encoding: .utf8)
        #expect(text.components(separatedBy: "\"customer insight computed\"").count == 2, "\(text)")

        // c0 asks to be forgotten, the agent running: within seconds it has recomputed the
        // insight without c0 and serves no slate that knows c0; c0 buying again is a new
        // customer (the agent's cached row ids are dropped, so the batch is taken).
        let forget = try TestSupport.run("aislectl", ["customer", "forget", "c0", "--yes", "--store", store.path])
        #expect(forget.status == 0, "\(forget.err)")
        var forgotten = (recomputed: false, slates: false)
        for _ in 0..<300 where forgotten != (true, true) {
            let lines = try String(contentsOf: log, encoding: .utf8)
            forgotten.recomputed = lines.components(separatedBy: "\"customer insight computed\"").count >= 3
            forgotten.slates = try await UnixHTTP.request(path: socket, .POST, "/v1/recommendations", body: Array(#"{"customer":"c0"}"#.utf8))
                .text.contains(#""customer_known":false"#)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(forgotten == (true, true))
        #expect(try await UnixHTTP.request(path: socket, .GET, "/v1/customers/c0/insight").status == 404)
        #expect(try await UnixHTTP.request(path: socket, .GET, "/v1/customers/newcomer/insight").status == 200)
        let again = #"[{"ts":\#(t0 + 5 * 3600),"type":"purchase","customer":"c0","item":"A","receipt":"c0-again","qty":1,"price":4}]"#
        let retaken = try await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array(again.utf8))
        #expect(retaken.status == 200 && retaken.text.contains(#""accepted":1"#), "\(retaken.text)")
        let reborn = try await insight(socket, customer: "c0") { _ in true }.insight
        #expect(reborn.rfm["f"] == 1 && reborn.segment == "new", "\(reborn)")
    }
}
