import AisleCore
import CAisleKernels
import Crypto
import Foundation

/// Symmetric int8 quantisation of one row: scale = max|x| / 127, q = round(x / scale).
func quantizeRow(_ x: UnsafePointer<Float>, count: Int, into q: UnsafeMutablePointer<Int8>) -> Float {
    var scale: Float = 0
    aisle_quantize_rows(1, Int32(count), x, q, &scale)
    return scale
}

/// A linear layer with int8 weights (per output channel scales): activations are quantised per
/// row on the fly and multiplied on the int8 kernel, which rescales to float, adds the bias and
/// applies the epilogue in one pass. On AVX-512 VNNI the weights are packed once at load time.
/// Several layers over the same input (query, key, value) can be read as one.
struct DenseInt8: LinearLayer {
    let inputs: Int
    let outputs: Int
    private let weight: OwnedBuffer<Int8>?
    private let packed: OwnedBuffer<Int8>?
    private let sums: OwnedBuffer<Int32>?
    private let scales: OwnedBuffer<Float>
    private let bias: OwnedBuffer<Float>
    private let kernel: Int8Kernel

    init(_ file: SafeTensors, _ names: [String], inputs: Int, outputs: Int, kernel: Int8Kernel) throws {
        let n = outputs * names.count
        let weights = try names.map { try file.int8("\($0).weight", shape: [outputs, inputs]) }
        // The kernels negate a weight where the activation is negative: -128 has no negation.
        for (name, values) in zip(names, weights) where values.contains(.min) {
            throw TensorFileError(path: file.path, reason: "\(name).weight holds -128 (int8 weights lie in -127...127)")
        }
        let w = OwnedBuffer(concatenating: weights, zero: 0)
        scales = OwnedBuffer(concatenating: try names.map { try file.float32("\($0).weight_scale", shape: [outputs]) }, zero: 0)
        bias = OwnedBuffer(concatenating: try names.map { try file.float32("\($0).bias", shape: [outputs]) }, zero: 0)
        if kernel == .avx512VNNI {
            let p = OwnedBuffer<Int8>(count: aisle_packed_size(Int32(n), Int32(inputs)), repeating: 0)
            let s = OwnedBuffer<Int32>(count: (n + 63) / 64 * 64, repeating: 0)
            aisle_pack_b(Int32(n), Int32(inputs), w.base, p.base, s.base)
            (packed, sums, weight) = (p, s, nil)
        } else {
            (packed, sums, weight) = (nil, nil, w)
        }
        self.inputs = inputs
        self.outputs = n
        self.kernel = kernel
    }

    /// Every thread quantises all rows itself (a small fraction of its share of the product),
    /// so no thread waits for another before multiplying.
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, _ epilogue: aisle_epilogue, parallel: Parallel) {
        var layer = aisle_dense(
            kernel: kernel.c, n: Int32(outputs), k: Int32(inputs), b: weight.map { UnsafePointer($0.base) },
            packed: packed.map { UnsafePointer($0.base) }, sums: sums.map { UnsafePointer($0.base) },
            scales: scales.base, bias: bias.base)
        parallel.forEach { part in
            let cols = parallel.columns(part, of: outputs)
            guard !cols.isEmpty else { return }
            let q = UnsafeMutablePointer<Int8>.allocate(capacity: rows * inputs)
            let rowScales = UnsafeMutablePointer<Float>.allocate(capacity: rows)
            defer { q.deallocate(); rowScales.deallocate() }
            aisle_quantize_rows(Int32(rows), Int32(inputs), x, q, rowScales)
            if packed != nil {
                let shifted = UnsafeMutablePointer<UInt8>.allocate(capacity: aisle_shifted_size(Int32(rows), Int32(inputs)))
                defer { shifted.deallocate() }
                aisle_shift_rows(Int32(rows), Int32(inputs), q, shifted)
                aisle_dense_apply(&layer, Int32(rows), shifted, rowScales, y, Int32(cols.lowerBound), Int32(cols.upperBound), epilogue)
            } else {
                aisle_dense_apply(&layer, Int32(rows), q, rowScales, y, Int32(cols.lowerBound), Int32(cols.upperBound), epilogue)
            }
        }
    }
}

/// Int8 embedding rows with a float scale per row.
struct Int8Table: EmbeddingTable {
    let data: OwnedBuffer<Int8>
    let scales: OwnedBuffer<Float>
    let width: Int

    init(_ file: SafeTensors, _ name: String, rows: Int, width: Int) throws {
        data = OwnedBuffer(concatenating: [try file.int8("\(name).weight", shape: [rows, width])], zero: 0)
        scales = OwnedBuffer(concatenating: [try file.float32("\(name).weight_scale", shape: [rows])], zero: 0)
        self.width = width
    }

    func add(row index: Int, to out: UnsafeMutablePointer<Float>) {
        let row = data.base + index * width
        let s = scales.base[index]
        for j in 0..<width { out[j] += Float(row[j]) * s }
    }
}

/// The int8 model file: a safetensors file whose linear-layer weights and embedding tables are
/// int8 with a float32 scale per output channel (per row for tables), biases and LayerNorms in
/// float32, and metadata naming the format, its version, the scheme, the source weights' SHA-256,
/// the SHA-256 of its own tensor data and the model configuration (docs/INT8-MODEL.md).
public enum Int8ModelFile {
    public static let format = "aisle-int8"
    public static let version = "2"
    public static let scheme = "symmetric int8, per output channel (weights) and per row (embeddings); activations per row at run time"
    static let tables = ["embeddings.word_embeddings", "embeddings.position_embeddings", "embeddings.token_type_embeddings"]

    /// Quantises the float32 model in `files` into `output`; returns the file's size in bytes.
    /// The new file is loaded as the agent would before it replaces the one at `output`.
    @discardableResult
    public static func quantize(from files: ModelFiles, to output: URL) throws -> Int {
        let c = try BertConfig.load(files.config)
        let source = try SafeTensors(path: files.weights.path)
        var tensors: [(name: String, dtype: String, shape: [Int], data: Data)] = []
        for (name, entry) in source.entries.sorted(by: { $0.key < $1.key }) where entry.dtype == "F32" {
            let base = String(name.dropLast(".weight".count))
            let values = try source.float32(name, shape: entry.shape)
            if name.hasSuffix(".weight"), entry.shape.count == 2, !name.contains("LayerNorm"), !name.hasPrefix("pooler") {
                let (rows, width) = (entry.shape[0], entry.shape[1])
                var q = Data(count: rows * width)
                var scales = [Float](repeating: 0, count: rows)
                q.withUnsafeMutableBytes { raw in
                    let out = raw.bindMemory(to: Int8.self).baseAddress!
                    for r in 0..<rows { scales[r] = quantizeRow(values.baseAddress! + r * width, count: width, into: out + r * width) }
                }
                tensors.append((name, "I8", entry.shape, q))
                tensors.append(("\(base).weight_scale", "F32", [rows], scales.withUnsafeBytes { Data($0) }))
            } else if !name.hasPrefix("pooler") {
                tensors.append((name, "F32", entry.shape, Data(buffer: values)))
            }
        }
        var content = SHA256()
        for t in tensors { content.update(data: t.data) }
        let metadata = [
            "format": format, "format_version": version, "scheme": scheme, "source_sha256": withExtendedLifetime(source) { Digests.sha256Hex(source.bytes) },
            "content_sha256": Hex.string(content.finalize()), "config": c.json,
        ]
        try SafeTensors.write(tensors, metadata: metadata, to: output) { _ = try BertInt8(path: $0.path) }
        return (try FileManager.default.attributesOfItem(atPath: output.path)[.size] as? Int) ?? 0
    }

    /// SHA-256 (hex) of the float32 weights an int8 file is made from.
    public static func sourceDigest(_ files: ModelFiles) throws -> String {
        let file = try SafeTensors(path: files.weights.path)
        return withExtendedLifetime(file) { Digests.sha256Hex(file.bytes) }  // the bytes live as long as the mapping
    }
}

/// The int8 encoder: the same forward pass as ``BertFP32`` with int8 linear layers and
/// embedding tables, from an ``Int8ModelFile``.
///
/// Everything it needs is copied out of the file at `init` (packed for the kernel where that
/// applies) and the file is unmapped: replacing or even truncating the file later cannot touch a
/// loaded model. Immutable after `init`, so any thread may call `embed` (calls take turns on
/// the model's worker threads).
public final class BertInt8: SentenceEncoder, @unchecked Sendable {
    public let config: BertConfig
    public let version: String
    /// The version and the file's own tensor digest: a file quantised again differently from the
    /// same source (another quantiser, a fix) does not read the old file's cached embeddings.
    public let cacheKey: String
    public let kernel: Int8Kernel
    public let sourceSHA256: String
    private let encoder: BertEncoder<DenseInt8, Int8Table>

    /// Loads and validates an int8 model file; `kernel` defaults to ``Int8Kernel/selected(environment:)``;
    /// each batch runs on `threads` threads.
    public init(path: String, kernel: Int8Kernel? = nil, threads: Int = 1) throws {
        let f = try SafeTensors(path: path)
        guard f.metadata["format"] == Int8ModelFile.format else {
            throw TensorFileError(path: path, reason: "not an Aisle int8 model (metadata format is \(f.metadata["format"] ?? "missing"))")
        }
        guard f.metadata["format_version"] == Int8ModelFile.version else {
            throw TensorFileError(path: path, reason: "int8 format version \(f.metadata["format_version"] ?? "missing"); this build reads \(Int8ModelFile.version) (run `aislectl model quantize` again)")
        }
        guard let configText = f.metadata["config"], let source = f.metadata["source_sha256"], let content = f.metadata["content_sha256"] else {
            throw TensorFileError(path: path, reason: "metadata lacks config, source_sha256 or content_sha256")
        }
        let actual = Digests.sha256Hex(f.dataSection)
        guard actual == content else {
            throw TensorFileError(path: path, reason: "corrupt: the tensor data's SHA-256 is \(actual.prefix(16))…, the file records \(content.prefix(16))…")
        }
        let c = try BertConfig.parse(Array(configText.utf8), path: path)
        let k = try kernel ?? Int8Kernel.selected()
        func table(_ name: String, rows: Int) throws -> Int8Table { try Int8Table(f, name, rows: rows, width: c.hidden) }
        config = c
        self.kernel = k
        sourceSHA256 = source
        version = "int8-v\(Int8ModelFile.version):" + source.prefix(16)
        cacheKey = version + ":" + content.prefix(16)
        encoder = BertEncoder(
            config: c,
            words: try table("embeddings.word_embeddings", rows: c.vocabulary),
            positions: try table("embeddings.position_embeddings", rows: c.maxPositions),
            types: try table("embeddings.token_type_embeddings", rows: c.typeVocabulary),
            embeddingNorm: try LayerNormF32(f, "embeddings.LayerNorm", size: c.hidden, epsilon: c.layerNormEpsilon),
            layers: try (0..<c.layers).map { i in
                try BertLayer(index: i, config: c, file: f) { names, inputs, outputs in
                    try DenseInt8(f, names, inputs: inputs, outputs: outputs, kernel: k)
                }
            },
            parallel: Parallel(threads: threads))
    }

    public var dimensions: Int { config.hidden }

    public func embed(batch: [[Int32]]) -> [[Float]] { encoder.embed(batch: batch, unknown: 100) }
}
