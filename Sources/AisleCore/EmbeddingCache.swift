import Foundation

/// Where computed text embeddings are kept, keyed by the encoder's version and a hash of the
/// text, so that each text is encoded once per model.
public protocol EmbeddingCache: Sendable {
    /// The cached vectors among `keys` for `model`.
    func vectors(model: String, keys: [Data]) throws -> [Data: [Float]]
}
