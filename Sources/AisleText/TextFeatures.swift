import Foundation

/// Character n-gram features of short texts (reviews, questions), hashed into a fixed number of
/// buckets and weighted by TF-IDF: they work for any script — Chinese as well as English — where
/// the English sentence encoder is weak. Pair them with the encoder's embedding
/// (``TextFeatures/combine(_:embedding:)``).
public struct TextFeatures: Sendable, Codable, Equatable {
    /// Hash buckets (a power of two).
    public let buckets: Int
    /// Inverse document frequency per bucket, from the training texts.
    public var idf: [Float]
    /// The n-gram lengths: 1–4 characters, or 1–`maxOrder`.
    public let maxOrder: Int

    /// Features with known weights (a saved classifier's).
    public init(buckets: Int, maxOrder: Int, idf: [Float]) {
        (self.buckets, self.maxOrder, self.idf) = (buckets, maxOrder, idf)
    }

    /// Learns the IDF weights from training texts.
    public init(training texts: [String], buckets: Int = 1 << 16, maxOrder: Int = 4) {
        self.buckets = buckets
        self.maxOrder = maxOrder
        idf = []
        var df = [Int](repeating: 0, count: buckets)
        for text in texts { for bucket in Set(grams(text).keys) { df[bucket] += 1 } }
        let n = Double(texts.count)
        idf = df.map { Float(log((1 + n) / (1 + Double($0))) + 1) }
    }

    /// Scales each bucket's IDF by how strongly it leans to one label: |log-count ratio| of the
    /// bucket among positive and negative texts, as NBSVM does (Wang & Manning 2012), so the
    /// classifier starts from what separates the classes.
    public mutating func weightByLabel(_ texts: [String], _ labels: [Bool]) {
        var positive = [Double](repeating: 1, count: buckets), negative = positive
        for (text, label) in zip(texts, labels) {
            for bucket in grams(text).keys {
                if label { positive[bucket] += 1 } else { negative[bucket] += 1 }
            }
        }
        let p = positive.reduce(0, +), q = negative.reduce(0, +)
        for j in 0..<buckets { idf[j] *= Float(0.25 + abs(log((positive[j] / p) / (negative[j] / q)))) }
    }

    /// The L2-normalised TF-IDF vector of `text` (sublinear term frequency).
    public func vector(_ text: String) -> [(index: Int, value: Double)] {
        // Sorted before summing: the same text gives the same bits in every process.
        var v = grams(text).map { (index: $0.key, value: (1 + log(Double($0.value))) * Double(idf[$0.key])) }.sorted { $0.index < $1.index }
        let norm = v.reduce(0) { $0 + $1.value * $1.value }.squareRoot()
        if norm > 0 { for i in v.indices { v[i].value /= norm } }
        return v
    }

    /// Hashed n-gram counts of the lower-cased text with a space on each side (word edges count).
    func grams(_ text: String) -> [Int: Int] {
        let scalars = [UInt32(32)] + text.lowercased().unicodeScalars.map(\.value) + [32]
        var counts: [Int: Int] = [:]
        for n in 1...maxOrder where scalars.count >= n {
            for start in 0...(scalars.count - n) {
                var h: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(n)
                for s in scalars[start..<start + n] { h = (h ^ UInt64(s)) &* 0x100_0000_01b3 }
                counts[Int(h & UInt64(buckets - 1)), default: 0] += 1
            }
        }
        return counts
    }

    /// The n-gram vector followed by the sentence embedding (at indices `buckets…`).
    public func combine(_ text: String, embedding: [Float]) -> [(index: Int, value: Double)] {
        vector(text) + embedding.enumerated().map { (index: buckets + $0.offset, value: Double($0.element)) }
    }
}
