import AisleClient
@testable import AisleInsight
import AisleModels
import AisleStore
import AisleText
import Foundation
import GRDB
import Testing

/// The saved form of text classifiers, the shipped default sentiment model, and the agent
/// scoring reviews with the registry's active model.
@Suite struct SentimentModelTests {
    static let shippedDefault = ShippedModels.path(SentimentClassifier.defaultFile)

    @Test(.enabled(if: shippedDefault != nil, "needs firmware-config/models"))
    func savedFilesRoundTripAndBadOnesAreNamed() throws {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: try #require(Self.shippedDefault)))
        let file = try TextClassifierFile(data: bytes, name: "default")
        #expect(file.labels == ["negative", "positive"] && file.encoderVersion?.hasPrefix("int8-v2:") == true && file.embeddingDimensions == 384)
        #expect(try file.encoded() == bytes)  // the same model, the same bytes
        func refused(_ data: Data) -> String {
            do { _ = try TextClassifierFile(data: data, name: "m.aisletc"); return "accepted" } catch { return "\(error)" }
        }
        #expect(refused(Data("hello".utf8)).contains("m.aisletc: not an Aisle text classifier"))
        #expect(refused(bytes.dropLast(4)).contains("bytes where the header implies"))
        var nan = bytes
        nan.replaceSubrange(nan.count - 4..<nan.count, with: withUnsafeBytes(of: Float.nan.bitPattern.littleEndian) { Data($0) })
        #expect(refused(nan).contains("is not finite"))
        // A classifier read back predicts what the trained one did (float32 weights).
        var features = TextFeatures(training: ["good value", "broke in a week", "love it", "awful"], buckets: 1 << 10, maxOrder: 3)
        let texts = ["good value", "broke in a week", "love it", "awful"], labels = [true, false, true, false]
        features.weightByLabel(texts, labels)
        let regression = SparseLogisticRegression.fit(texts.map(features.vector), labels, dimension: features.buckets)
        let trained = SentimentClassifier(features: features, regression: regression, model: nil)
        let loaded = try SentimentClassifier(file: TextClassifierFile(data: try trained.file.encoded(), name: "small"), encoder: nil)
        let probe = ["good, I love it", "awful value"]
        #expect(zip(trained.predict(probe), loaded.predict(probe)).allSatisfy { abs($0 - $1) < 1e-5 })
        #expect(trained.predict(probe)[0] > 0.5 && trained.predict(probe)[1] < 0.5)
    }

    @Test(.enabled(if: TestSupport.shared != nil && shippedDefault != nil, "needs ../shared and the default model"))
    func defaultModelOnTheTestSplits() throws {
        let dir = try #require(TestSupport.shared).appendingPathComponent("splits/sentiment")
        struct R: Decodable { var accuracy: Double; var macro_f1: Double }
        func evaluate(_ name: String) throws -> R {
            let out = try TestSupport.run("aislectl", ["eval", "classify", "--task", "sentiment", "--model", "default", "--test", dir.appendingPathComponent("\(name)_test.jsonl").path, "--json"])
            guard out.status == 0 else { throw TestFailure(out.err) }
            return try JSONDecoder().decode(R.self, from: Data(out.out.utf8))
        }
        #expect(try evaluate("uci").accuracy >= 0.86)
        #expect(try evaluate("alexa").macro_f1 >= 0.77)
    }

    /// The agent registers the shipped default, scores every review with it, and scores them all
    /// again when a model trained by `aislectl train sentiment` becomes active; it also gives
    /// every review text its nearest catalog theme.
    @Test(.enabled(if: TestSupport.shared != nil && shippedDefault != nil, "needs ../shared and the default model"))
    func agentScoresReviews() async throws {
        let shared = try #require(TestSupport.shared)
        let lines = try String(contentsOf: shared.appendingPathComponent("splits/sentiment/alexa_test.jsonl"), encoding: .utf8)
            .split(separator: "\n").prefix(120)
        struct Labelled: Decodable { var text: String; var label: String }
        let reviews = try lines.map { try JSONDecoder().decode(Labelled.self, from: Data($0.utf8)) }
        func json(_ s: String) -> String { String(decoding: try! JSONEncoder().encode(s), as: UTF8.self) }
        let events = reviews.enumerated().map { n, r in
            #"{"id":"r\#(n)","ts":\#(1_600_000_000 + n * 3600),"type":"review","customer":"c\#(n % 7)","item":"i\#(n % 5)","text":\#(json(r.text))}"#
        }
        let kinds = ["PORCELAIN TEAPOT", "SCENTED PILLAR CANDLE", "SILVER NECKLACE", "VELVET CUSHION COVER"]
        let catalog = (0..<80).map { n in #"{"item":"I\#(n)","title":"\#(kinds[n / 20]) STYLE \#(n)"}"# }
        let dir = try TestSupport.temporaryDirectory()
        let store = URL(fileURLWithPath: try ModelsTests.store(events: events, catalog: catalog, in: dir))
        let themes = try TestSupport.run("aislectl", ["train", "themes", "--store", store.path])
        #expect(themes.status == 0 && themes.out.contains("themes v1: 4 themes over 80 items"), "\(themes.out)\(themes.err)")
        let socket = dir.appendingPathComponent("s.sock").path
        let agent = try await TestSupport.startAgent(store: store, socket: socket, log: dir.appendingPathComponent("log"))
        defer { TestSupport.kill9(agent) }

        struct Aggregate: Decodable { var reviews: Int; var mean_score: Double; var positive_share: Double }
        struct Item: Decodable { var sku: String; var sentiment: Aggregate }
        struct Shown: Decodable { var products: [Item]; var months: [Item2] }
        struct Item2: Decodable { var month: String; var sentiment: Aggregate }
        func scored() throws -> Shown {
            let r = try TestSupport.run("aislectl", ["sentiment", "--store", store.path, "--min-reviews", "1", "--json"])
            guard r.status == 0 else { throw TestFailure(r.err) }
            return try JSONDecoder().decode(Shown.self, from: Data(r.out.utf8))
        }
        func waitFor(version: Int) async throws {
            for _ in 0..<900 {
                let r = try TestSupport.run("aislectl", ["model", "list", "sentiment", "--store", store.path])
                if r.out.contains("* sentiment v\(version) "), try scored().months.map(\.sentiment.reviews).reduce(0, +) == reviews.count,
                   try scoredVersions(store) == [version] { return }
                try await Task.sleep(for: .milliseconds(200))
            }
            throw TestFailure("reviews not scored by sentiment v\(version) in three minutes: \(try String(contentsOf: dir.appendingPathComponent("log"), encoding: .utf8).suffix(2000))")
        }
        try await waitFor(version: 1)
        for _ in 0..<300 where try themedTexts(store) < reviews.count { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try themedTexts(store) == reviews.count)
        let list = try TestSupport.run("aislectl", ["model", "list", "sentiment", "--store", store.path])
        #expect(list.out.contains("by aisled"))
        let shown = try scored()
        #expect(shown.products.count == 5 && shown.products.map(\.sentiment.reviews).reduce(0, +) == reviews.count)
        // By month as of a moment: the reviews before it only (the store report's point in time).
        let months = try await Store.open(at: store, readOnly: true).database.read { db in
            (try ReviewSentiment.byMonth(db), try ReviewSentiment.byMonth(db, before: 1_600_000_000 + 60 * 3600))
        }
        #expect(months.0.map(\.sentiment.reviews).reduce(0, +) == reviews.count && months.1.map(\.sentiment.reviews).reduce(0, +) == 60)
        // Scores agree with the labels as `aislectl eval classify --model default` does on these
        // 120 reviews (accuracy 0.925).
        let scores = try scoresByTime(store)
        let agree = reviews.indices.filter { n in (scores[Int64(1_600_000_000 + n * 3600)].map { $0 >= 0.5 } ?? false) == (reviews[n].label == "positive") }.count
        #expect(Double(agree) / Double(reviews.count) >= 0.9, "\(agree) of \(reviews.count)")

        // A model trained here (on the UCI sentences) becomes v2: every review is scored again.
        // Buckets a saved model could not hold are refused before training.
        let tooMany = try TestSupport.run("aislectl", ["train", "sentiment", "--data", shared.appendingPathComponent("splits/sentiment/uci_train.jsonl").path, "--store", store.path, "--bucket-bits", "25"])
        #expect(tooMany.status != 0 && tooMany.err.contains("--bucket-bits: 25 is not 1 to 24"), "\(tooMany.err)")
        let trained = try TestSupport.run("aislectl", ["train", "sentiment", "--data", shared.appendingPathComponent("splits/sentiment/uci_train.jsonl").path, "--store", store.path])
        #expect(trained.status == 0 && trained.out.contains("sentiment v2 (active)"), "\(trained.err)")
        kill(agent.processIdentifier, SIGHUP)  // at once rather than at the next poll
        try await waitFor(version: 2)
    }

    func themedTexts(_ store: URL) throws -> Int {
        try Store.open(at: store, readOnly: true).database.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM text_themes WHERE model_version = 1") ?? 0 }
    }

    func scoredVersions(_ store: URL) throws -> Set<Int> {
        Set(try Store.open(at: store, readOnly: true).database.read { try Int.fetchAll($0, sql: "SELECT DISTINCT model_version FROM review_sentiment") })
    }

    /// Scores by event time (each review has its own).
    func scoresByTime(_ store: URL) throws -> [Int64: Double] {
        let rows = try Store.open(at: store, readOnly: true).database.read {
            try Row.fetchAll($0, sql: "SELECT e.ts, r.score FROM review_sentiment r JOIN events e ON e.id = r.event_id")
        }
        return Dictionary(uniqueKeysWithValues: rows.map { ($0[0] as Int64, $0[1] as Double) })
    }
}
