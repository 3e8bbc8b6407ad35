import AisleModels
import AisleStore
import AisleText
import Foundation
import GRDB

/// Title embeddings of the catalog's active, sellable items, from the store's embedding cache
/// (computed and cached for titles it does not have yet).
public enum CatalogEmbeddings {
    public struct Item: Sendable {
        public var id: Int64
        public var sku: String
        public var title: String
        public var category: String?
        public var vector: [Float]
    }

    /// Every active, sellable item with a title, and its title's embedding (encoded now when the
    /// store's cache has none for `model`).
    public static func load(_ store: Store, model: TextModel) throws -> [Item] {
        let rows = try store.database.read { db in
            try Row.fetchAll(db, sql: "SELECT id, sku, title, category FROM items WHERE \(embedded) ORDER BY id")
        }
        let titles = rows.map { $0["title"] as String }
        let cache = StoredEmbeddings(store: store)
        let keys = titles.map(EncoderService.key)
        var vectors = try cache.vectors(model: model.cacheKey, keys: keys)
        let missing = Array(Set(keys.indices.filter { vectors[keys[$0]] == nil }.map { titles[$0] })).sorted()
        for start in stride(from: 0, to: missing.count, by: 64) {
            let batch = Array(missing[start..<min(start + 64, missing.count)])
            let embedded = model.encoder.embed(batch: batch.map { model.tokenizer.encode($0) })
            let fresh = zip(batch, embedded).map { (key: EncoderService.key($0), vector: $1) }
            try cache.store(model: model.cacheKey, vectors: fresh)
            for (key, vector) in fresh { vectors[key] = vector }
        }
        return zip(rows, keys).compactMap { row, key in
            vectors[key].map { Item(id: row["id"], sku: row["sku"], title: row["title"], category: row["category"], vector: $0) }
        }
    }

    /// How many items ``load(_:model:)`` gives.
    public static func count(_ db: Database) throws -> Int { try Int.fetchOne(db, sql: "SELECT count(*) FROM items WHERE \(embedded)") ?? 0 }

    private static let embedded = "active = 1 AND sellable = 1 AND title != ''"
}

/// The catalog's themes: its title embeddings clustered by spherical k-means, k chosen by the
/// silhouette, each theme labelled by its most distinctive title words and its most central
/// items. Customers' interests are shares over these themes.
public struct ThemeModel: Sendable, Codable {
    public static let kind = "themes"

    public struct Theme: Sendable, Codable, Equatable {
        /// Its three most distinctive words, e.g. "teacup · saucer · regency".
        public var label: String
        public var words: [String]
        /// Titles of the items nearest its centre.
        public var examples: [String]
        public var items: Int
    }

    public var encoderVersion: String
    public var clusters: KMeans
    public var themes: [Theme]
    /// Store item id → theme index.
    public var itemThemes: [Int64: Int]
    /// Silhouette of each k tried.
    public var silhouettes: [Int: Double]

    /// The registry's active themes and their version; nil when none have been trained.
    public static func active(_ db: Database) throws -> (model: ThemeModel, version: Int)? {
        try ModelRegistry.activeModel(db, kind: kind, as: ThemeModel.self)
    }

    /// The k tried by default, those that leave twenty items or more per theme on average.
    public static let candidates = [4, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100, 130]

    /// Clusters `items` (unit title embeddings of `encoderVersion`) for each candidate k and
    /// keeps the k with the best silhouette on a sample of up to `sample` items.
    public static func train(_ items: [CatalogEmbeddings.Item], encoderVersion: String, candidates: [Int] = candidates, sample: Int = 1500) throws -> ThemeModel {
        let ks = candidates.filter { $0 >= 2 && $0 * 20 <= items.count }
        guard !ks.isEmpty else { throw InputError("the catalog has \(items.count) items with titles; themes need at least \(20 * (candidates.min() ?? 2))") }
        let points = items.map(\.vector)
        var rng = SplitMix(state: 7)
        let picked = Array(points.indices.map { ($0, rng.next()) }.sorted { $0.1 < $1.1 }.prefix(sample).map(\.0)).sorted()
        let similarities = picked.map { i in picked.map { j in KMeans.dot(points[i], points[j]) } }
        var best: (k: Int, score: Double, fit: (model: KMeans, labels: [Int]))?
        var silhouettes: [Int: Double] = [:]
        for k in ks {
            let fit = KMeans.fit(points, k: k)
            let score = KMeans.silhouette(similarities: similarities, labels: picked.map { fit.labels[$0] }, k: k)
            silhouettes[k] = score
            if best.map({ score > $0.score }) ?? true { best = (k, score, fit) }
        }
        guard let best else { throw InputError("no clustering") }
        let themes = label(items, labels: best.fit.labels, clusters: best.fit.model)
        return ThemeModel(
            encoderVersion: encoderVersion, clusters: best.fit.model, themes: themes,
            itemThemes: Dictionary(uniqueKeysWithValues: zip(items.map(\.id), best.fit.labels)), silhouettes: silhouettes)
    }

    /// Class-based TF-IDF of title words per theme (a word's share of the theme's words times
    /// log(1 + mean words per theme / the word's count overall)), and the items nearest each centre.
    static func label(_ items: [CatalogEmbeddings.Item], labels: [Int], clusters: KMeans) -> [Theme] {
        let k = clusters.centroids.count
        var counts = [[String: Double]](repeating: [:], count: k), overall: [String: Double] = [:]
        for (item, c) in zip(items, labels) {
            for word in words(item.title) { counts[c][word, default: 0] += 1; overall[word, default: 0] += 1 }
        }
        let meanWords = overall.values.reduce(0, +) / Double(k)
        return (0..<k).map { c in
            let total = max(1, counts[c].values.reduce(0, +))
            let scored: [(word: String, score: Double)] = counts[c].map { word, n in
                (word, n / total * log(1 + meanWords / (overall[word] ?? 1)))
            }
            let top = scored.sorted { $0.score != $1.score ? $0.score > $1.score : $0.word < $1.word }.prefix(3).map(\.word)
            let members = items.indices.filter { labels[$0] == c }
            let closeness = Dictionary(uniqueKeysWithValues: members.map { ($0, KMeans.dot(items[$0].vector, clusters.centroids[c])) })
            let central = members.sorted { (closeness[$0] ?? 0) > (closeness[$1] ?? 0) }
            return Theme(label: top.joined(separator: " · "), words: Array(top), examples: central.prefix(3).map { items[$0].title }, items: members.count)
        }
    }

    /// Lower-cased title words of three letters or more, without common function words and sizes.
    static func words(_ title: String) -> Set<String> {
        Set(title.lowercased().split { !$0.isLetter }.map(String.init).filter { $0.count >= 3 && !stopWords.contains($0) })
    }

    static let stopWords: Set<String> = [
        "the", "and", "for", "with", "set", "of", "in", "pack", "small", "large", "mini", "jumbo", "big", "assorted",
        "design", "colour", "color", "asst", "pcs", "box", "new", "from", "this", "that",
    ]
}
