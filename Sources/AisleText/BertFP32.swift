import AisleCore
import COpenBLAS
import Foundation

/// The shape of a BERT encoder (`config.json`).
public struct BertConfig: Sendable, Equatable {
    public var hidden = 384
    public var heads = 12
    public var layers = 6
    public var intermediate = 1536
    public var vocabulary = 30522
    public var maxPositions = 512
    public var typeVocabulary = 2
    public var layerNormEpsilon: Float = 1e-12

    public var headSize: Int { hidden / heads }

    /// Reads the fields this implementation needs; refuses an architecture it does not run.
    public static func load(_ url: URL) throws -> BertConfig {
        guard let data = FileManager.default.contents(atPath: url.path),
            case .object(let o) = try JSONParser.parse(Array(data))
        else { throw TensorFileError(path: url.path, reason: "cannot read the model configuration") }
        func int(_ key: String) throws -> Int {
            guard case .int(let v)? = o[key], v > 0 else { throw TensorFileError(path: url.path, reason: "\(key) missing or not a positive integer") }
            return Int(v)
        }
        guard case .string("gelu")? = o["hidden_act"] else { throw TensorFileError(path: url.path, reason: "only hidden_act \"gelu\" is supported") }
        var c = BertConfig()
        c.hidden = try int("hidden_size")
        c.heads = try int("num_attention_heads")
        c.layers = try int("num_hidden_layers")
        c.intermediate = try int("intermediate_size")
        c.vocabulary = try int("vocab_size")
        c.maxPositions = try int("max_position_embeddings")
        c.typeVocabulary = try int("type_vocab_size")
        if case .double(let eps)? = o["layer_norm_eps"] { c.layerNormEpsilon = Float(eps) }
        guard c.hidden % c.heads == 0 else { throw TensorFileError(path: url.path, reason: "hidden_size is not a multiple of num_attention_heads") }
        return c
    }
}

/// A linear layer `y = x·Wᵀ + b` with `W` stored `[out, in]`, multiplied on OpenBLAS.
struct DenseF32 {
    let weight: UnsafeBufferPointer<Float>
    let bias: UnsafeBufferPointer<Float>
    let inputs: Int
    let outputs: Int

    init(_ file: SafeTensors, _ name: String, inputs: Int, outputs: Int) throws {
        weight = try file.float32("\(name).weight", shape: [outputs, inputs])
        bias = try file.float32("\(name).bias", shape: [outputs])
        self.inputs = inputs
        self.outputs = outputs
    }

    /// `x` is `rows × inputs`, `y` is `rows × outputs`, both row-major.
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { (y + r * outputs).update(from: bias.baseAddress!, count: outputs) }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outputs), Int32(inputs),
            1, x, Int32(inputs), weight.baseAddress, Int32(inputs), 1, y, Int32(outputs))
    }
}

/// Layer normalisation over the last dimension.
struct LayerNormF32 {
    let gamma: UnsafeBufferPointer<Float>
    let beta: UnsafeBufferPointer<Float>
    let epsilon: Float

    init(_ file: SafeTensors, _ name: String, size: Int, epsilon: Float) throws {
        gamma = try file.float32("\(name).weight", shape: [size])
        beta = try file.float32("\(name).bias", shape: [size])
        self.epsilon = epsilon
    }

    func apply(_ x: UnsafeMutablePointer<Float>, rows: Int) {
        let n = gamma.count
        for r in 0..<rows {
            let row = x + r * n
            var mean: Float = 0
            for i in 0..<n { mean += row[i] }
            mean /= Float(n)
            var variance: Float = 0
            for i in 0..<n { let d = row[i] - mean; variance += d * d }
            let scale = 1 / (variance / Float(n) + epsilon).squareRoot()
            for i in 0..<n { row[i] = (row[i] - mean) * scale * gamma[i] + beta[i] }
        }
    }
}

/// One transformer layer's weights.
struct BertLayerF32 {
    let query, key, value, attentionOutput, intermediate, output: DenseF32
    let attentionNorm, outputNorm: LayerNormF32

    init(_ file: SafeTensors, index: Int, config c: BertConfig) throws {
        let p = "encoder.layer.\(index)"
        query = try DenseF32(file, "\(p).attention.self.query", inputs: c.hidden, outputs: c.hidden)
        key = try DenseF32(file, "\(p).attention.self.key", inputs: c.hidden, outputs: c.hidden)
        value = try DenseF32(file, "\(p).attention.self.value", inputs: c.hidden, outputs: c.hidden)
        attentionOutput = try DenseF32(file, "\(p).attention.output.dense", inputs: c.hidden, outputs: c.hidden)
        attentionNorm = try LayerNormF32(file, "\(p).attention.output.LayerNorm", size: c.hidden, epsilon: c.layerNormEpsilon)
        intermediate = try DenseF32(file, "\(p).intermediate.dense", inputs: c.hidden, outputs: c.intermediate)
        output = try DenseF32(file, "\(p).output.dense", inputs: c.intermediate, outputs: c.hidden)
        outputNorm = try LayerNormF32(file, "\(p).output.LayerNorm", size: c.hidden, epsilon: c.layerNormEpsilon)
    }
}

/// The float32 reference encoder: BERT's forward pass over memory-mapped safetensors weights,
/// mean pooling over the tokens, L2 normalisation — sentence-transformers' all-MiniLM-L6-v2.
///
/// Immutable after `init`: every weight is a pointer into `file`'s read-only mapping, which the
/// instance keeps alive; `embed` allocates its own scratch, so any thread may call it.
public final class BertFP32: @unchecked Sendable {
    public let config: BertConfig
    private let file: SafeTensors
    private let words, positions, types: UnsafeBufferPointer<Float>
    private let embeddingNorm: LayerNormF32
    private let layers: [BertLayerF32]

    public init(files: ModelFiles) throws {
        let c = try BertConfig.load(files.config)
        let f = try SafeTensors(path: files.weights.path)
        config = c
        file = f
        words = try f.float32("embeddings.word_embeddings.weight", shape: [c.vocabulary, c.hidden])
        positions = try f.float32("embeddings.position_embeddings.weight", shape: [c.maxPositions, c.hidden])
        types = try f.float32("embeddings.token_type_embeddings.weight", shape: [c.typeVocabulary, c.hidden])
        embeddingNorm = try LayerNormF32(f, "embeddings.LayerNorm", size: c.hidden, epsilon: c.layerNormEpsilon)
        layers = try (0..<c.layers).map { try BertLayerF32(f, index: $0, config: c) }
    }

    /// The normalised sentence embedding of one token sequence (`[CLS]` … `[SEP]`).
    public func embed(_ ids: [Int32]) -> [Float] {
        let c = config
        let t = min(ids.count, c.maxPositions)
        let h = c.hidden
        var x = [Float](repeating: 0, count: t * h)
        var tmp = [Float](repeating: 0, count: t * h)
        var q = [Float](repeating: 0, count: t * h), k = q, v = q, context = q
        var scores = [Float](repeating: 0, count: t * t)
        var wide = [Float](repeating: 0, count: t * c.intermediate)
        x.withUnsafeMutableBufferPointer { x in
            for (i, id) in ids.prefix(t).enumerated() {
                let token = Int(id) < c.vocabulary && id >= 0 ? Int(id) : 100
                for j in 0..<h { x[i * h + j] = words[token * h + j] + positions[i * h + j] + types[j] }
            }
            embeddingNorm.apply(x.baseAddress!, rows: t)
            for layer in layers {
                q.withUnsafeMutableBufferPointer { q in
                    k.withUnsafeMutableBufferPointer { k in
                        v.withUnsafeMutableBufferPointer { v in
                            context.withUnsafeMutableBufferPointer { ctx in
                                scores.withUnsafeMutableBufferPointer { s in
                                    layer.query.apply(x.baseAddress!, rows: t, into: q.baseAddress!)
                                    layer.key.apply(x.baseAddress!, rows: t, into: k.baseAddress!)
                                    layer.value.apply(x.baseAddress!, rows: t, into: v.baseAddress!)
                                    Self.attention(q: q.baseAddress!, k: k.baseAddress!, v: v.baseAddress!, into: ctx.baseAddress!, scores: s.baseAddress!, tokens: t, config: c)
                                }
                                tmp.withUnsafeMutableBufferPointer { out in
                                    layer.attentionOutput.apply(ctx.baseAddress!, rows: t, into: out.baseAddress!)
                                    for i in 0..<t * h { x[i] += out[i] }
                                }
                            }
                        }
                    }
                }
                layer.attentionNorm.apply(x.baseAddress!, rows: t)
                wide.withUnsafeMutableBufferPointer { w in
                    layer.intermediate.apply(x.baseAddress!, rows: t, into: w.baseAddress!)
                    for i in 0..<w.count { w[i] = Self.gelu(w[i]) }
                    tmp.withUnsafeMutableBufferPointer { out in
                        layer.output.apply(w.baseAddress!, rows: t, into: out.baseAddress!)
                        for i in 0..<t * h { x[i] += out[i] }
                    }
                }
                layer.outputNorm.apply(x.baseAddress!, rows: t)
            }
        }
        return Self.meanPoolNormalized(x, tokens: t, hidden: h)
    }

    /// Multi-head self-attention of one unpadded sequence: per head, softmax(Q·Kᵀ/√d)·V.
    static func attention(
        q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>, into context: UnsafeMutablePointer<Float>,
        scores: UnsafeMutablePointer<Float>, tokens t: Int, config c: BertConfig
    ) {
        let h = c.hidden, d = c.headSize
        let scale = 1 / Float(d).squareRoot()
        for head in 0..<c.heads {
            let o = head * d
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(t), Int32(d), scale, q + o, Int32(h), k + o, Int32(h), 0, scores, Int32(t))
            for r in 0..<t { softmax(scores + r * t, count: t) }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(d), Int32(t), 1, scores, Int32(t), v + o, Int32(h), 0, context + o, Int32(h))
        }
    }

    static func softmax(_ row: UnsafeMutablePointer<Float>, count: Int) {
        var m = -Float.infinity
        for i in 0..<count { m = max(m, row[i]) }
        var sum: Float = 0
        for i in 0..<count { row[i] = expf(row[i] - m); sum += row[i] }
        for i in 0..<count { row[i] /= sum }
    }

    /// GELU as BERT defines it: x·Φ(x), with the exact error function.
    static func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erff(x * 0.70710678118654752)) }

    static func meanPoolNormalized(_ x: [Float], tokens t: Int, hidden h: Int) -> [Float] {
        var pooled = [Float](repeating: 0, count: h)
        for i in 0..<t { for j in 0..<h { pooled[j] += x[i * h + j] } }
        var norm: Float = 0
        for j in 0..<h { pooled[j] /= Float(t); norm += pooled[j] * pooled[j] }
        let inverse = 1 / max(norm.squareRoot(), 1e-12)
        return pooled.map { $0 * inverse }
    }
}
