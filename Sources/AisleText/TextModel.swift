import Foundation

/// The agent's text model: the int8 encoder and the vocabulary beside it (`vocab.txt` in the
/// model file's directory), loaded together and checked against each other.
public struct TextModel: Sendable {
    public let encoder: BertInt8
    public let tokenizer: WordPieceTokenizer
    public let path: String
    /// What this model's embeddings are cached under (``SentenceEncoder/cacheKey(with:)``).
    public var cacheKey: String { encoder.cacheKey(with: tokenizer) }

    /// Loads and validates both; a damaged, foreign or mismatched pair is refused with the reason.
    public static func load(path: String, threads: Int) throws -> TextModel {
        let encoder = try BertInt8(path: path, threads: threads)
        let vocabulary = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent("vocab.txt")
        let tokenizer = try WordPieceTokenizer(vocabulary: vocabulary)
        guard tokenizer.size == encoder.config.vocabulary else {
            throw TensorFileError(
                path: path,
                reason: "mismatched: the model has \(encoder.config.vocabulary) word embeddings but \(vocabulary.path) has \(tokenizer.size) words")
        }
        return TextModel(encoder: encoder, tokenizer: tokenizer, path: path)
    }
}
