import AisleCore
import AisleInsight
import AisleModels
import AisleStore
import Foundation
import GRDB

/// Kiosk product search over the items on offer (``OfferedItems``: active, sellable, in stock):
/// lexical (SQLite FTS5 and its BM25, misspelt words corrected against the catalog's vocabulary,
/// partial words matched as prefixes) and dense (the query's int8-encoder embedding against the
/// title embeddings), fused by a convex combination of their scores, optionally boosted towards
/// the shopper's interests. Built from the store over the listed items and swapped whole (the
/// agent rebuilds it within 30 s of a catalog change); a query reads the full-text index and,
/// for the items it found, their catalog rows, so an item sold out, or withdrawn since, is not
/// offered, one back in stock is at once, and the others show their title and price as they
/// are now.
public struct CatalogSearch: Sendable {
    public enum Mode: String, Sendable, CaseIterable, Codable { case lexical, dense, hybrid }

    public struct Item: Sendable {
        public var id: Int64
        public var sku: String
        public var title: String
        public var category: String?
        public var price: Double?
    }

    public struct Hit: Sendable {
        public var item: Item
        public var score: Double
        /// Why it matched, in plain words.
        public var reasons: [String]
        /// Whether it has a word of the query as typed, not only a correction of one (or only a
        /// similar meaning).
        public var typed: Bool
        /// The cosine of its title embedding with the query's (nil: not compared).
        public var similarity: Float?

        /// Whether it is close enough to the request to offer unasked (the assistant's product
        /// answers): similar in meaning, or — without title embeddings — having a word of it as
        /// typed (a correction alone offered feather pens for "what's the weather like").
        public var relevant: Bool { similarity.map { $0 >= CatalogSearch.relevantSimilarity } ?? typed }
    }

    /// The cosine from which a hit reads as what the shopper asked for (the related products'
    /// bar; a lunch box for "lunchbox" is 0.69, a rain hat for "what's the weather like" 0.24).
    public static let relevantSimilarity: Float = 0.45

    /// Results each retriever contributes to the fusion.
    public static let depth = 50
    /// The cosine's weight against the scaled BM25 (chosen among 0.1–2 on known-item queries
    /// of seed 11; the figures in docs/MODELS.md are seed 7's).
    public static let denseWeight = 0.5
    /// How far a full interest share lifts an item: score × (1 + weight × share).
    public static let personalWeight = 0.5

    public let items: [Item]
    let position: [Int64: Int]
    /// Each item's words (title and category), for saying which query words matched.
    let words: [Set<String>]
    let vocabulary: Vocabulary
    /// Row-major embeddings of the items that have one, and their positions in `items`.
    let matrix: [Float]
    let embedded: [Int]
    let rowOf: [Int: Int]
    public let dimensions: Int
    /// The encoder file the embeddings came from, by its cache key (a file quantised again from
    /// the same source has another; nil: lexical search only).
    public let encoderKey: String?
    let itemThemes: [Int64: Int]
    /// The themes model's version `itemThemes` come from: a shopper's theme shares count only
    /// when computed with the same (theme numbers differ between versions).
    public let themesVersion: Int?

    /// The listed items (active, sellable; stock is checked per query) with a title, the index's
    /// vocabulary, and their title embeddings when given (``CatalogEmbeddings``); `themes` (and
    /// its registry version) for the personal boost.
    public init(_ db: Database, embeddings: [CatalogEmbeddings.Item]?, encoderKey: String?, themes: ThemeModel?, themesVersion: Int? = nil) throws {
        items = try Row.fetchAll(db, sql: "SELECT id, sku, title, category, price FROM items WHERE \(OfferedItems.listed()) AND title != '' ORDER BY id")
            .map { Item(id: $0["id"], sku: $0["sku"], title: $0["title"], category: $0["category"], price: $0["price"]) }
        position = Dictionary(uniqueKeysWithValues: items.enumerated().map { ($1.id, $0) })
        words = items.map { Set(Vocabulary.words($0.title + " " + ($0.category ?? ""))) }
        var documents: [String: Int] = [:]
        for itemWords in words { for w in itemWords { documents[w, default: 0] += 1 } }
        vocabulary = Vocabulary(documents: documents)
        var matrix: [Float] = [], embedded: [Int] = []
        let dimensions = embeddings?.first?.vector.count ?? 0
        for e in embeddings ?? [] where e.vector.count == dimensions {
            guard let p = position[e.id] else { continue }
            matrix += e.vector
            embedded.append(p)
        }
        (self.matrix, self.embedded, self.dimensions) = (matrix, embedded, dimensions)
        rowOf = Dictionary(uniqueKeysWithValues: embedded.enumerated().map { ($1, $0) })
        self.encoderKey = embedded.isEmpty ? nil : encoderKey
        itemThemes = themes?.itemThemes ?? [:]
        self.themesVersion = themes == nil ? nil : themesVersion
    }

    /// A query word and the catalog words it stands for.
    struct QueryWord {
        var typed: String
        var corrections: [String]
    }

    /// The query's words worth searching for, and its FTS5 expression: each word as a prefix or
    /// corrected, any of them matching (BM25 ranks items matching more of them first). In a
    /// `sentence` (the assistant's requests, not typed keywords) its ``fillers`` are left out;
    /// words in over a quarter of the catalog too, unless nothing else is left; single letters
    /// always. Of the rest at most ``maxWords``, those the catalog has (or begins) first: in
    /// "hello there could you please tell me whether you happen to have any red enamel teapot"
    /// (fifteen words) the last three count.
    func lexicalQuery(_ query: String, sentence: Bool = false) -> (expression: String, words: [QueryWord])? {
        let words = Self.queryWords(query).filter { !(sentence && Self.fillers.contains($0)) }
        let common = items.count / 4
        let telling = words.filter { (vocabulary.documents[$0] ?? 0) <= common }
        let candidates = telling.isEmpty ? words : telling
        let known = { (word: String) in vocabulary.documents[word] != nil || vocabulary.startsSomeWord(word) }
        let found = (candidates.filter(known) + candidates.filter { !known($0) }).prefix(Self.maxWords)
            .map { QueryWord(typed: $0, corrections: vocabulary.corrections($0)) }
        guard !found.isEmpty else { return nil }
        // A word is letters and digits, but a grapheme may carry a quote with it: doubled, FTS5
        // reads it as one.
        func quoted(_ word: String) -> String { "\"" + word.replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
        let groups = found.map { word in
            "(" + ([quoted(word.typed) + "*"] + word.corrections.map(quoted)).joined(separator: " OR ") + ")"
        }
        return (groups.joined(separator: " OR "), found)
    }

    /// The query with each word the catalog does not have replaced by its likeliest correction:
    /// what the dense side of a hybrid search embeds.
    public func corrected(_ query: String) -> String {
        Self.queryWords(query).map { vocabulary.corrections($0, limit: 1).first ?? $0 }.joined(separator: " ")
    }

    /// The words that carry a spoken request rather than what it asks for ("do you have …", "where
    /// can I find …"): as prefixes they match "doily" and "haven", so a question would find those.
    /// Typed keywords keep them: there "for", "with" and "the" are words of the title sought
    /// (the known-item protocol loses 0.006 MRR@10 without them).
    static let fillers: Set<String> = [
        "a", "an", "and", "any", "anything", "are", "can", "could", "do", "does", "find", "for", "get", "got", "have", "hello", "hey",
        "hi", "how", "i", "if", "in", "is", "it", "like", "looking", "me", "my", "need", "of", "on", "or", "please", "sell", "some", "tell",
        "that", "the", "there", "this", "to", "want", "we", "what", "whats", "where", "which", "with", "would", "you", "your",
    ]

    /// The most words of a query searched for lexically: a kiosk query is a few words, and each
    /// costs an FTS5 term.
    public static let maxWords = 12

    /// The query's distinct words of two letters or more (a request's text is at most 512 bytes).
    public static func queryWords(_ query: String) -> [String] {
        var seen = Set<String>()
        return Vocabulary.words(query).filter { $0.count > 1 && seen.insert($0).inserted }
    }

    /// Positions of the best lexical matches for an FTS5 expression, best first, and their BM25
    /// scores (higher is better).
    func lexical(_ db: Database, _ expression: String, limit: Int) throws -> [(position: Int, bm25: Double)] {
        return try Row.fetchAll(db, sql: """
            SELECT s.rowid, -bm25(item_search, 1.0, 0.5) AS score FROM item_search s JOIN items i ON i.id = s.rowid
            WHERE item_search MATCH ? AND \(OfferedItems.condition("i")) ORDER BY score DESC, s.rowid LIMIT ?
            """, arguments: [expression, limit]).compactMap { row in position[row["rowid"]].map { ($0, row["score"]) } }
    }

    /// Positions of the items whose title embeddings are nearest `vector`, and the cosines.
    func dense(_ vector: [Float], limit: Int) -> [(position: Int, similarity: Float)] {
        guard dimensions > 0, vector.count == dimensions, !embedded.isEmpty else { return [] }
        // Plain SIMD rather than BLAS: OpenBLAS's threads contend when many requests call it at
        // once (138 searches/s flat out against 950 without the dense side), and one query is small.
        let scores = matrix.withUnsafeBufferPointer { m in
            vector.withUnsafeBufferPointer { v in (0..<embedded.count).map { KMeans.dot(m.baseAddress! + $0 * dimensions, v.baseAddress!, dimensions) } }
        }
        var best = TopK<(position: Int, similarity: Float)>(limit) { $0.similarity > $1.similarity }
        for (row, score) in scores.enumerated() { best.offer((embedded[row], score)) }
        return best.elements
    }

    /// The `k` best items for `query` (and its embedding `vector`, for dense and hybrid), boosted
    /// towards `interests` (a shopper's theme and category shares) when given; `sentence`: the
    /// query is a spoken request, whose ``fillers`` are not searched for.
    public func search(
        _ db: Database, query: String, vector: [Float]?, interests: [Interests.Share] = [], k: Int, mode: Mode = .hybrid, sentence: Bool = false
    ) throws -> [Hit] {
        let parsed = lexicalQuery(query, sentence: sentence)
        let lexicalHits = try parsed.map { mode == .dense ? [] : try lexical(db, $0.expression, limit: Self.depth) } ?? []
        let denseHits = mode == .lexical ? [] : vector.map { dense($0, limit: Self.depth) } ?? []
        // Convex combination (Bruch et al. 2023): BM25 scaled so the best lexical match is 1, plus
        // `denseWeight` × the cosine; lexical matches get their cosine too, so meaning breaks ties.
        let best = lexicalHits.first?.bm25 ?? 1
        var score: [Int: Double] = [:], similarity: [Int: Float] = [:]
        for hit in lexicalHits { score[hit.position] = hit.bm25 / best }
        for hit in denseHits { similarity[hit.position] = hit.similarity }
        if let vector, mode == .hybrid {
            for hit in lexicalHits where similarity[hit.position] == nil { similarity[hit.position] = cosine(hit.position, vector) }
        }
        for (p, cosine) in similarity { score[p, default: 0] += Self.denseWeight * Double(cosine) }
        let queryWords = parsed?.words ?? []
        let lexicalSet = Set(lexicalHits.map(\.position))
        let now = try offeredNow(db, Array(score.keys))
        var hits: [Hit] = score.compactMap { p, s in
            guard let item = now[p] else { return nil }
            var reasons = lexicalSet.contains(p) ? matchReasons(p, queryWords) : []
            if let cosine = similarity[p] { reasons.append(String(format: "close in meaning to your search (similarity %.2f)", cosine)) }
            var boosted = s
            if let (share, name) = interest(p, interests) {
                boosted *= 1 + Self.personalWeight * share
                reasons.append("you often shop for \(name)")
            }
            let typed = lexicalSet.contains(p) && queryWords.contains { has(p, typed: $0) }
            return Hit(item: item, score: boosted, reasons: reasons, typed: typed, similarity: similarity[p])
        }
        hits.sort { ($0.score, $1.item.id) > ($1.score, $0.item.id) }
        return Array(hits.prefix(k))
    }

    /// Of the items at `positions`, those on offer now, as the catalog has them now (title,
    /// category, price), by position: one read of at most twice ``depth`` rows by id.
    func offeredNow(_ db: Database, _ positions: [Int]) throws -> [Int: Item] {
        guard !positions.isEmpty else { return [:] }
        let rows = try Row.fetchAll(db, sql: """
            SELECT id, title, category, price FROM items WHERE id IN (SELECT value FROM json_each(?)) AND \(OfferedItems.condition())
            """, arguments: ["\(positions.map { items[$0].id })"])
        var now: [Int: Item] = [:]
        for row in rows {
            guard let p = position[row["id"]] else { continue }
            now[p] = Item(id: items[p].id, sku: items[p].sku, title: row["title"], category: row["category"], price: row["price"])
        }
        return now
    }

    /// The cosine of an item's title embedding with `vector` (nil when it has none).
    func cosine(_ p: Int, _ vector: [Float]) -> Float? {
        guard let row = rowOf[p], vector.count == dimensions else { return nil }
        return matrix.withUnsafeBufferPointer { m in vector.withUnsafeBufferPointer { KMeans.dot(m.baseAddress! + row * dimensions, $0.baseAddress!, dimensions) } }
    }

    /// Whether the item has `word` as typed (or as the start of a word of its own).
    func has(_ p: Int, typed word: QueryWord) -> Bool { words[p].contains { $0.hasPrefix(word.typed) } }

    /// Which query words the item has: as typed (or as the start of a word), or corrected.
    func matchReasons(_ p: Int, _ queryWords: [QueryWord]) -> [String] {
        queryWords.compactMap { word in
            if has(p, typed: word) { return "has \"\(word.typed)\"" }
            if let fixed = word.corrections.first(where: words[p].contains) { return "has \"\(fixed)\" (you typed \"\(word.typed)\")" }
            return nil
        }
    }

    /// The shopper's share of interest in the item's theme or category, and its name.
    func interest(_ p: Int, _ interests: [Interests.Share]) -> (Double, String)? {
        let item = items[p], theme = itemThemes[item.id]
        return interests.filter { ($0.theme != nil && $0.theme == theme) || ($0.theme == nil && $0.name == item.category) }
            .max { $0.share < $1.share }.map { ($0.share, $0.name) }
    }
}
