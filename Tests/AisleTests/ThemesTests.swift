import AisleCore
@testable import AisleInsight
@testable import AisleModels
import AisleStore
import Foundation
import GRDB
import Testing

/// Catalog themes (clustered title embeddings, k from the data) and customers' interests.
@Suite struct ThemesTests {
    /// `groups` well-separated directions in 16 dimensions, `per` noisy unit vectors around each.
    func blobs(groups: Int, per: Int) -> [[Float]] {
        var rng = SplitMix(state: 3)
        func noise() -> Float { Float(Double(rng.next() >> 11) / Double(1 << 53)) - 0.5 }
        return (0..<groups * per).map { i in
            var v = (0..<16).map { _ in 0.15 * noise() }
            v[i / per] += 1
            return KMeans.normalized(v)
        }
    }

    @Test func kMeansFindsTheGroupsAndTheSilhouetteTheirNumber() throws {
        let points = blobs(groups: 5, per: 40)
        let words = ["teapot", "candle", "necklace", "cushion", "garland"]
        let items = points.enumerated().map { i, v in
            CatalogEmbeddings.Item(id: Int64(i), sku: "S\(i)", title: "\(["RED", "BLUE", "GREEN"][i % 3]) \(words[i / 40].uppercased()) NO \(i)", category: nil, vector: v)
        }
        let model = try ThemeModel.train(items, encoderVersion: "test", candidates: [2, 3, 4, 5, 6, 8], sample: 200)
        #expect(model.themes.count == 5, "silhouettes \(model.silhouettes)")
        // Each group is one theme, labelled by its word; colours are everywhere, so not distinctive.
        for g in 0..<5 {
            let assigned = Set((0..<40).map { model.itemThemes[Int64(g * 40 + $0)] })
            #expect(assigned.count == 1)
            let theme = try #require(assigned.first.flatMap { $0 })
            #expect(model.themes[theme].words.first == words[g] && model.themes[theme].items == 40)
        }
        // Deterministic: the same data, the same clusters.
        let again = try ThemeModel.train(items, encoderVersion: "test", candidates: [2, 3, 4, 5, 6, 8], sample: 200)
        #expect(again.itemThemes == model.itemThemes && again.clusters == model.clusters)
        #expect(throws: InputError.self) { try ThemeModel.train(Array(items.prefix(30)), encoderVersion: "test") }
    }

    @Test func interestsWeighRecentBehaviourAndIgnoreTheFuture() throws {
        let dir = try TestSupport.temporaryDirectory()
        let day = 86_400, t0 = 1_600_000_000
        let catalog = [
            #"{"item":"T1","title":"teapot","category":"kitchen"}"#, #"{"item":"T2","title":"teacup","category":"kitchen"}"#,
            #"{"item":"C1","title":"candle","category":"home"}"#,
        ]
        // c1 bought tea things a year ago, a candle last week; c2 only viewed the candle. After t: more tea for c1.
        let events = [
            #"{"ts":\#(t0 - 365 * day),"type":"purchase","customer":"c1","item":"T1","receipt":"r1","qty":1,"price":10}"#,
            #"{"ts":\#(t0 - 365 * day),"type":"purchase","customer":"c1","item":"T2","receipt":"r1","qty":1,"price":5}"#,
            #"{"ts":\#(t0 - 7 * day),"type":"purchase","customer":"c1","item":"C1","receipt":"r2","qty":1,"price":8}"#,
            #"{"ts":\#(t0 - 1 * day),"type":"view","customer":"c2","item":"C1"}"#,
        ]
        let later = [#"{"ts":\#(t0 + day),"type":"purchase","customer":"c1","item":"T1","receipt":"r3","qty":5,"price":10}"#]
        let path = try ModelsTests.store(events: events, catalog: catalog, in: dir)
        let store = try Store.open(at: URL(fileURLWithPath: path))
        let ids = try store.database.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT id, sku FROM items").map { ($0[1] as String, $0[0] as Int64) })
        }
        let tea = 0, candles = 1
        let themes = ThemeModel(
            encoderVersion: "test", clusters: KMeans(centroids: [[1, 0], [0, 1]]),
            themes: [.init(label: "tea", words: ["tea"], examples: [], items: 2), .init(label: "candle", words: ["candle"], examples: [], items: 1)],
            itemThemes: [ids["T1"]!: tea, ids["T2"]!: tea, ids["C1"]!: candles], silhouettes: [:])
        func profiles() throws -> [Int64: Interests.Profile] { try store.database.read { try Interests.profiles($0, asOf: Int64(t0), themes: (themes, 1)) } }
        let before = try profiles()
        #expect(before.count == 2)
        let c1 = try #require(before.values.first { $0.themes.count == 2 })
        // Two tea purchases a year (six half-lives) ago weigh less than one candle last week.
        #expect((c1.themes[candles] ?? 0) > 0.9 && abs(c1.themes.values.reduce(0, +) - 1) < 1e-9)
        #expect(abs((c1.categories["home"] ?? 0) - (c1.themes[candles] ?? 0)) < 1e-9)
        #expect(Interests.top(c1, themes: themes).themes.first?.name == "candle")
        // Events after t change nothing as of t.
        let file = dir.appendingPathComponent("later.jsonl")
        try TestSupport.write(later.joined(separator: "\n") + "\n", to: file)
        #expect(try TestSupport.run("aislectl", ["import", "events", file.path, "--store", path, "--quiet"]).status == 0)
        let after = try profiles()
        #expect(after.mapValues(\.themes) == before.mapValues(\.themes))
    }
}
