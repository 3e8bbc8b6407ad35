import COpenBLAS
import Foundation

/// A sentence encoder: token sequences in, L2-normalised embeddings out, each independent of
/// the others in its batch.
public protocol SentenceEncoder: Sendable {
    /// Names the weights and the arithmetic: embeddings are cached under it.
    var version: String { get }
    /// Embedding width.
    var dimensions: Int { get }
    func embed(batch: [[Int32]]) -> [[Float]]
}

extension SentenceEncoder {
    /// The normalised sentence embedding of one token sequence (`[CLS]` … `[SEP]`).
    public func embed(_ ids: [Int32]) -> [Float] { embed(batch: [ids])[0] }
}

/// A linear layer `y = x·Wᵀ + b` over float rows, however its weights are stored.
protocol LinearLayer {
    var inputs: Int { get }
    var outputs: Int { get }
    /// `x` is `rows × inputs`, `y` is `rows × outputs`, both row-major.
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>)
}

/// A table of embedding rows, however stored.
protocol EmbeddingTable {
    /// Adds row `index` to `out` (`width` floats).
    func add(row index: Int, to out: UnsafeMutablePointer<Float>)
}

/// One transformer layer's weights.
struct BertLayer<Linear: LinearLayer> {
    let query, key, value, attentionOutput, intermediate, output: Linear
    let attentionNorm, outputNorm: LayerNormF32
}

/// BERT's forward pass — embeddings and LayerNorm, self-attention and GELU feed-forward layers
/// with residual LayerNorms — then mean pooling and L2 normalisation, as sentence-transformers'
/// all-MiniLM-L6-v2 computes a sentence embedding. Generic over how linear layers and embedding
/// tables are stored (float32 or int8); softmax, LayerNorm, GELU and attention stay in float.
struct BertEncoder<Linear: LinearLayer, Table: EmbeddingTable> {
    let config: BertConfig
    let words, positions, types: Table
    let embeddingNorm: LayerNormF32
    let layers: [BertLayer<Linear>]

    /// The normalised sentence embeddings of several token sequences (`[CLS]` … `[SEP]`),
    /// packed: the linear layers run once over every token of every sequence, attention runs
    /// per sequence, so nothing is padded and no sequence sees another.
    func embed(batch: [[Int32]], unknown: Int32) -> [[Float]] {
        let c = config
        let h = c.hidden
        let lengths = batch.map { max(1, min($0.count, c.maxPositions)) }
        let rows = lengths.reduce(0, +)
        guard rows > 0 else { return [] }
        var x = [Float](repeating: 0, count: rows * h)
        var scratch = Scratch(rows: rows, longest: lengths.max() ?? 1, config: c)
        x.withUnsafeMutableBufferPointer { xb in
            let x = xb.baseAddress!
            var row = 0
            for (ids, t) in zip(batch, lengths) {
                for i in 0..<t {
                    let id = i < ids.count ? ids[i] : unknown
                    let token = id >= 0 && Int(id) < c.vocabulary ? Int(id) : Int(unknown)
                    words.add(row: token, to: x + (row + i) * h)
                    positions.add(row: i, to: x + (row + i) * h)
                    types.add(row: 0, to: x + (row + i) * h)
                }
                row += t
            }
            embeddingNorm.apply(x, rows: rows)
            for layer in layers { scratch.run(layer, on: x, lengths: lengths, config: c) }
        }
        var out: [[Float]] = []
        var row = 0
        for t in lengths {
            out.append(Self.meanPoolNormalized(x, from: row, tokens: t, hidden: h))
            row += t
        }
        return out
    }

    /// Working memory for one packed batch.
    struct Scratch {
        var q, k, v, context, out, scores, wide: [Float]

        init(rows: Int, longest: Int, config c: BertConfig) {
            q = [Float](repeating: 0, count: rows * c.hidden)
            k = q
            v = q
            context = q
            out = q
            scores = [Float](repeating: 0, count: longest * longest)
            wide = [Float](repeating: 0, count: rows * c.intermediate)
        }

        mutating func run(_ layer: BertLayer<Linear>, on x: UnsafeMutablePointer<Float>, lengths: [Int], config c: BertConfig) {
            let rows = lengths.reduce(0, +)
            let h = c.hidden
            let n = rows * h
            q.withUnsafeMutableBufferPointer { q in
            k.withUnsafeMutableBufferPointer { k in
            v.withUnsafeMutableBufferPointer { v in
            context.withUnsafeMutableBufferPointer { ctx in
            scores.withUnsafeMutableBufferPointer { s in
            out.withUnsafeMutableBufferPointer { out in
            wide.withUnsafeMutableBufferPointer { w in
                layer.query.apply(x, rows: rows, into: q.baseAddress!)
                layer.key.apply(x, rows: rows, into: k.baseAddress!)
                layer.value.apply(x, rows: rows, into: v.baseAddress!)
                var start = 0
                for t in lengths {
                    let o = start * h
                    attention(q: q.baseAddress! + o, k: k.baseAddress! + o, v: v.baseAddress! + o, into: ctx.baseAddress! + o, scores: s.baseAddress!, tokens: t, config: c)
                    start += t
                }
                layer.attentionOutput.apply(ctx.baseAddress!, rows: rows, into: out.baseAddress!)
                for i in 0..<n { x[i] += out[i] }
                layer.attentionNorm.apply(x, rows: rows)
                layer.intermediate.apply(x, rows: rows, into: w.baseAddress!)
                for i in 0..<rows * c.intermediate { w[i] = gelu(w[i]) }
                layer.output.apply(w.baseAddress!, rows: rows, into: out.baseAddress!)
                for i in 0..<n { x[i] += out[i] }
                layer.outputNorm.apply(x, rows: rows)
            } } } } } } }
        }
    }

    static func meanPoolNormalized(_ x: [Float], from row: Int, tokens t: Int, hidden h: Int) -> [Float] {
        var pooled = [Float](repeating: 0, count: h)
        for i in row..<row + t { for j in 0..<h { pooled[j] += x[i * h + j] } }
        var norm: Float = 0
        for j in 0..<h { pooled[j] /= Float(t); norm += pooled[j] * pooled[j] }
        let inverse = 1 / max(norm.squareRoot(), 1e-12)
        return pooled.map { $0 * inverse }
    }
}

/// Multi-head self-attention of one unpadded sequence: per head, softmax(Q·Kᵀ/√d)·V, on OpenBLAS.
func attention(
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

func softmax(_ row: UnsafeMutablePointer<Float>, count: Int) {
    var m = -Float.infinity
    for i in 0..<count { m = max(m, row[i]) }
    var sum: Float = 0
    for i in 0..<count { row[i] = expf(row[i] - m); sum += row[i] }
    for i in 0..<count { row[i] /= sum }
}

/// GELU as BERT defines it: x·Φ(x), with the exact error function.
func gelu(_ x: Float) -> Float { 0.5 * x * (1 + erff(x * 0.70710678118654752)) }

extension BertLayer {
    /// Reads layer `index`'s weights, making each linear layer with `linear(name, inputs, outputs)`.
    init(index: Int, config c: BertConfig, file: SafeTensors, linear: (String, Int, Int) throws -> Linear) throws {
        let p = "encoder.layer.\(index)"
        query = try linear("\(p).attention.self.query", c.hidden, c.hidden)
        key = try linear("\(p).attention.self.key", c.hidden, c.hidden)
        value = try linear("\(p).attention.self.value", c.hidden, c.hidden)
        attentionOutput = try linear("\(p).attention.output.dense", c.hidden, c.hidden)
        attentionNorm = try LayerNormF32(file, "\(p).attention.output.LayerNorm", size: c.hidden, epsilon: c.layerNormEpsilon)
        intermediate = try linear("\(p).intermediate.dense", c.hidden, c.intermediate)
        output = try linear("\(p).output.dense", c.intermediate, c.hidden)
        outputNorm = try LayerNormF32(file, "\(p).output.LayerNorm", size: c.hidden, epsilon: c.layerNormEpsilon)
    }
}
