import CAisleKernels
import Foundation

/// A sentence encoder: token sequences in, L2-normalised embeddings out, each independent of
/// the others in its batch.
public protocol SentenceEncoder: Sendable {
    /// Names the model: what classifiers and themes made with it record, and `/v1/status` shows.
    var version: String { get }
    /// Names the exact weights: embeddings are cached under it (by default the version).
    var cacheKey: String { get }
    /// Embedding width.
    var dimensions: Int { get }
    func embed(batch: [[Int32]]) -> [[Float]]
}

extension SentenceEncoder {
    public var cacheKey: String { version }

    /// The key this encoder's embeddings of texts tokenised by `tokenizer` are cached under: a
    /// change of weights, vocabulary or tokenisation rules reads none cached before it.
    public func cacheKey(with tokenizer: WordPieceTokenizer) -> String { cacheKey + "+" + tokenizer.version }

    /// The normalised sentence embedding of one token sequence (`[CLS]` … `[SEP]`).
    public func embed(_ ids: [Int32]) -> [Float] { embed(batch: [ids])[0] }
}

/// A table of embedding rows, however stored.
protocol EmbeddingTable {
    /// Adds row `index` to `out` (`width` floats).
    func add(row index: Int, to out: UnsafeMutablePointer<Float>)
}

/// One transformer layer's weights; query, key and value are one layer with three outputs side
/// by side.
struct BertLayer<Linear: LinearLayer> {
    let queryKeyValue, attentionOutput, intermediate, output: Linear
    let attentionNorm, outputNorm: LayerNormF32
}

/// BERT's forward pass — embeddings and LayerNorm, self-attention and GELU feed-forward layers
/// with residual LayerNorms — then mean pooling and L2 normalisation, as sentence-transformers'
/// all-MiniLM-L6-v2 computes a sentence embedding. Generic over how linear layers and embedding
/// tables are stored (float32 or int8); softmax, LayerNorm, GELU and attention stay in float.
/// Linear layers split their columns, attention its (sequence, head) pairs, over `parallel`.
struct BertEncoder<Linear: LinearLayer, Table: EmbeddingTable> {
    let config: BertConfig
    let words, positions, types: Table
    let embeddingNorm: LayerNormF32
    let layers: [BertLayer<Linear>]
    let parallel: Parallel

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
        let scratch = Scratch(rows: rows, longest: lengths.max() ?? 1, threads: parallel.threads, config: c)
        defer { scratch.free() }
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
            embeddingNorm.apply(x, rows: rows, parallel: parallel)
            for layer in layers { run(layer, on: x, lengths: lengths, scratch: scratch) }
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
        let qkv, context, wide, attention: UnsafeMutablePointer<Float>
        let attentionPerThread: Int

        init(rows: Int, longest: Int, threads: Int, config c: BertConfig) {
            qkv = .allocate(capacity: rows * 3 * c.hidden)
            context = .allocate(capacity: rows * c.hidden)
            wide = .allocate(capacity: rows * c.intermediate)
            attentionPerThread = aisle_attention_scratch(Int32(longest), Int32(c.headSize))
            attention = .allocate(capacity: attentionPerThread * threads)
        }

        func free() { for p in [qkv, context, wide, attention] { p.deallocate() } }
    }

    private func run(_ layer: BertLayer<Linear>, on x: UnsafeMutablePointer<Float>, lengths: [Int], scratch s: Scratch) {
        let c = config
        let (h, rows) = (c.hidden, lengths.reduce(0, +))
        layer.queryKeyValue.apply(x, rows: rows, into: s.qkv, AISLE_EPILOGUE_STORE, parallel: parallel)
        var starts: [Int] = []
        var start = 0
        for t in lengths { starts.append(start); start += t }
        parallel.forEach { part in
            let work = s.attention + part * s.attentionPerThread
            for unit in parallel.share(part, of: lengths.count * c.heads) {
                let (sequence, head) = unit.quotientAndRemainder(dividingBy: c.heads)
                let q = s.qkv + starts[sequence] * 3 * h
                aisle_attention(
                    Int32(lengths[sequence]), Int32(c.headSize), Int32(head), Int32(head + 1), q, q + h, q + 2 * h, Int32(3 * h),
                    s.context + starts[sequence] * h, Int32(h), work)
            }
        }
        layer.attentionOutput.apply(s.context, rows: rows, into: x, AISLE_EPILOGUE_ACCUMULATE, parallel: parallel)
        layer.attentionNorm.apply(x, rows: rows, parallel: parallel)
        layer.intermediate.apply(x, rows: rows, into: s.wide, AISLE_EPILOGUE_GELU, parallel: parallel)
        layer.output.apply(s.wide, rows: rows, into: x, AISLE_EPILOGUE_ACCUMULATE, parallel: parallel)
        layer.outputNorm.apply(x, rows: rows, parallel: parallel)
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

extension BertLayer {
    /// Reads layer `index`'s weights, making each linear layer with `linear(names, inputs,
    /// outputs)` (several names: one layer over the same input, outputs side by side).
    init(index: Int, config c: BertConfig, file: SafeTensors, linear: ([String], Int, Int) throws -> Linear) throws {
        let p = "encoder.layer.\(index)"
        queryKeyValue = try linear(["query", "key", "value"].map { "\(p).attention.self.\($0)" }, c.hidden, c.hidden)
        attentionOutput = try linear(["\(p).attention.output.dense"], c.hidden, c.hidden)
        attentionNorm = try LayerNormF32(file, "\(p).attention.output.LayerNorm", size: c.hidden, epsilon: c.layerNormEpsilon)
        intermediate = try linear(["\(p).intermediate.dense"], c.hidden, c.intermediate)
        output = try linear(["\(p).output.dense"], c.intermediate, c.hidden)
        outputNorm = try LayerNormF32(file, "\(p).output.LayerNorm", size: c.hidden, epsilon: c.layerNormEpsilon)
    }
}
