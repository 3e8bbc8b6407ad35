import AisleCore
import COpenBLAS
import Crypto
import Foundation

/// Float32 embedding rows.
struct FloatTable: EmbeddingTable {
    let data: UnsafeBufferPointer<Float>
    let width: Int

    func add(row index: Int, to out: UnsafeMutablePointer<Float>) {
        let base = index * width
        for j in 0..<width { out[j] += data[base + j] }
    }
}

/// The float32 reference encoder over the original safetensors weights (OpenBLAS products).
///
/// Immutable after `init`: every weight is a pointer into `file`'s read-only mapping, which the
/// instance keeps alive; `embed` allocates its own scratch, so any thread may call it.
public final class BertFP32: SentenceEncoder, @unchecked Sendable {
    public let config: BertConfig
    public let version: String
    private let file: SafeTensors
    private let encoder: BertEncoder<DenseF32, FloatTable>

    /// Loads the float32 weights; each batch runs on `threads` threads.
    public init(files: ModelFiles, threads: Int = 1) throws {
        openblas_set_num_threads(1)
        let c = try BertConfig.load(files.config)
        let f = try SafeTensors(path: files.weights.path)
        config = c
        file = f
        version = "fp32:" + Hex.string(SHA256.hash(data: f.bytes).prefix(8))
        encoder = BertEncoder(
            config: c,
            words: FloatTable(data: try f.float32("embeddings.word_embeddings.weight", shape: [c.vocabulary, c.hidden]), width: c.hidden),
            positions: FloatTable(data: try f.float32("embeddings.position_embeddings.weight", shape: [c.maxPositions, c.hidden]), width: c.hidden),
            types: FloatTable(data: try f.float32("embeddings.token_type_embeddings.weight", shape: [c.typeVocabulary, c.hidden]), width: c.hidden),
            embeddingNorm: try LayerNormF32(f, "embeddings.LayerNorm", size: c.hidden, epsilon: c.layerNormEpsilon),
            layers: try (0..<c.layers).map { i in
                try BertLayer(index: i, config: c, file: f) { names, inputs, outputs in
                    try DenseF32(f, names, inputs: inputs, outputs: outputs)
                }
            },
            parallel: Parallel(threads: threads))
    }

    public var dimensions: Int { config.hidden }

    public func embed(batch: [[Int32]]) -> [[Float]] { encoder.embed(batch: batch, unknown: 100) }
}
