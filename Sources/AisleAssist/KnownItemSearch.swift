import AisleModels
import Foundation
import GRDB

/// The known-item search protocol (docs/MODELS.md): a shopper remembers a few words of a product
/// and types them with mistakes. Each query is 2–4 words of one item's title (an item whose
/// title no other item shares), in title order, lower-cased, one word misspelt and each other
/// word of four letters or more misspelt with probability 0.2 (a letter dropped, doubled,
/// changed or swapped with the next); the target is that item. Scores: MRR@10 and Recall@10.
public enum KnownItemSearch {
    public struct Query: Sendable {
        public var text: String
        public var target: Int64
    }

    public struct Scores: Sendable, Encodable {
        public var mrr: Double
        public var recall: Double
        /// Each query's reciprocal rank (0 when the target is not in the first ten).
        public var reciprocalRanks: [Double]

        enum CodingKeys: String, CodingKey {
            case mrr = "mrr@10"
            case recall = "recall@10"
        }

        /// How much higher this MRR@10 is than `other`'s on the same queries, with a 95 % paired
        /// bootstrap interval.
        public func gain(over other: Scores) -> (value: Double, low: Double, high: Double) {
            let differences = zip(reciprocalRanks, other.reciprocalRanks).map { $0 - $1 }
            let mean = { (d: [Double]) in d.reduce(0, +) / Double(max(d.count, 1)) }
            let (low, high) = Metrics.bootstrap(differences, resamples: 1000, seed: 7, mean)
            return (mean(differences), low, high)
        }
    }

    /// `count` queries (fewer when the catalog has fewer suitable items), the same for the same
    /// catalog and seed.
    public static func queries(_ search: CatalogSearch, count: Int, seed: UInt64 = 7) -> [Query] {
        var titles: [String: Int] = [:]
        for item in search.items { titles[item.title.lowercased(), default: 0] += 1 }
        let candidates = search.items.filter { item in
            titles[item.title.lowercased()] == 1 && usable(item.title).count >= 2
        }
        var random = SplitMix(state: seed)
        func below(_ n: Int) -> Int { Int(random.next() % UInt64(n)) }
        var order = Array(candidates.indices)
        for i in order.indices.reversed() where i > 0 { order.swapAt(i, below(i + 1)) }
        return order.prefix(count).map { index in
            let item = candidates[index]
            let words = usable(item.title)
            let m = min(words.count, 2 + below(3))
            var chosen = Array(words.indices)
            for i in chosen.indices.reversed() where i > 0 { chosen.swapAt(i, below(i + 1)) }
            var picked = chosen.prefix(m).sorted().map { words[$0] }
            let long = picked.indices.filter { picked[$0].count >= 4 }
            let forced = long.isEmpty ? nil : long[below(long.count)]
            for i in long where i == forced || below(5) == 0 { picked[i] = misspell(picked[i], &random) }
            return Query(text: picked.joined(separator: " "), target: item.id)
        }
    }

    /// Title words of three or more letters that are not all digits.
    static func usable(_ title: String) -> [String] {
        Vocabulary.words(title).filter { $0.count >= 3 && !$0.allSatisfy(\.isNumber) }
    }

    static func misspell(_ word: String, _ random: inout SplitMix) -> String {
        var letters = Array(word)
        let i = Int(random.next() % UInt64(letters.count - 1))
        switch random.next() % 4 {
        case 0: letters.remove(at: i)
        case 1: letters.insert(letters[i], at: i)
        case 2: letters[i] = Character(Unicode.Scalar(UInt8(ascii: "a") + UInt8(random.next() % 26)))
        default: letters.swapAt(i, i + 1)
        }
        return String(letters)
    }

    /// MRR@10 and Recall@10 of `mode` over the queries, given their embeddings.
    public static func score(_ search: CatalogSearch, _ db: Database, queries: [Query], vectors: [[Float]], mode: CatalogSearch.Mode) throws -> Scores {
        let ranks = try zip(queries, vectors).map { query, vector in
            try search.search(db, query: query.text, vector: vector, k: 10, mode: mode).firstIndex { $0.item.id == query.target }
        }
        let n = Double(max(queries.count, 1))
        let reciprocal = ranks.map { $0.map { 1 / Double($0 + 1) } ?? 0 }
        return Scores(mrr: reciprocal.reduce(0, +) / n, recall: Double(ranks.compactMap { $0 }.count) / n, reciprocalRanks: reciprocal)
    }
}
