import AisleCore
import AisleModels
import AisleText
import AisleStore
import Foundation

/// A saved text classifier (sentiment, the assistant's request intents): its n-gram weights, a
/// weight vector and intercept per class (a softmax's; for two labels one logistic regression in
/// all, P(labels[1])), and the encoder
/// version whose embeddings it reads, if any. Compact: only the n-gram buckets the training texts
/// touched are stored (the rest share one IDF and weigh nothing), in float32.
///
/// Layout: `AISLETC1`, a little-endian UInt32 header length, the JSON header (`labels`,
/// `buckets`, `max_order`, `default_idf`, `entries`, `embedding_dimensions`, `encoder`,
/// `intercepts`, optional `threshold` and `calibration`), then `entries` UInt32 bucket indices (ascending), `entries` float32 IDFs, and
/// per regression `entries` + `embedding_dimensions` float32 weights.
public struct TextClassifierFile: Sendable {
    /// The most n-gram buckets a file may hold (a power of two).
    public static let maxBuckets = 1 << 24
    public var labels: [String]
    public var features: TextFeatures
    public var encoderVersion: String?
    public var embeddingDimensions: Int
    /// The least confidence to accept the best label (the assistant's out-of-scope threshold).
    public var threshold: Double?
    /// Platt scaling of the best label's log-odds to the chance it is right.
    public var calibration: PlattScaling?
    /// The n-gram buckets stored (ascending): those with their own IDF or a weight.
    public private(set) var kept: [Int]
    /// Per regression: the weights of the kept buckets, then of the embedding's dimensions — as
    /// stored, so reading a file never spreads them over every bucket.
    public private(set) var columns: [[Float]]
    public private(set) var intercepts: [Double]
    let defaultIdf: Float

    static let magic = Array("AISLETC1".utf8)

    public init(labels: [String], features: TextFeatures, weights: [SparseLogisticRegression], encoderVersion: String?, embeddingDimensions: Int, threshold: Double? = nil, calibration: PlattScaling? = nil) {
        (self.labels, self.features, self.encoderVersion, self.embeddingDimensions) = (labels, features, encoderVersion, embeddingDimensions)
        (self.threshold, self.calibration) = (threshold, calibration)
        var counts: [Float: Int] = [:]
        for v in features.idf { counts[v, default: 0] += 1 }
        defaultIdf = counts.max { $0.value < $1.value }?.key ?? 1
        let kept = (0..<features.buckets).filter { [defaultIdf] j in features.idf[j] != defaultIdf || weights.contains { $0.weights[j] != 0 } }
        self.kept = kept
        columns = weights.map { w in kept.map { Float(w.weights[$0]) } + (0..<embeddingDimensions).map { Float(w.weights[features.buckets + $0]) } }
        intercepts = weights.map(\.intercept)
    }

    /// Each regression over every bucket and dimension (the two-label classifiers' form).
    public var weights: [SparseLogisticRegression] {
        zip(columns, intercepts).map { column, intercept in
            var w = [Double](repeating: 0, count: features.buckets + embeddingDimensions)
            for (n, j) in kept.enumerated() { w[j] = Double(column[n]) }
            for j in 0..<embeddingDimensions { w[features.buckets + j] = Double(column[kept.count + j]) }
            return SparseLogisticRegression(weights: w, intercept: intercept)
        }
    }

    /// The feature index of each column entry: the kept buckets, then the embedding's dimensions.
    public var columnFeatures: [Int] { kept + (0..<embeddingDimensions).map { features.buckets + $0 } }

    private struct Header: Codable {
        var labels: [String]
        var buckets: Int
        var maxOrder: Int
        var defaultIdf: Float
        var entries: Int
        var embeddingDimensions: Int
        var encoder: String?
        var intercepts: [Double]
        var threshold: Double?
        var calibration: PlattScaling?
    }

    /// The file's bytes.
    public func encoded() throws -> Data {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = .sortedKeys  // the same model, the same bytes
        let header = try encoder.encode(Header(
            labels: labels, buckets: features.buckets, maxOrder: features.maxOrder, defaultIdf: defaultIdf, entries: kept.count,
            embeddingDimensions: embeddingDimensions, encoder: encoderVersion, intercepts: intercepts, threshold: threshold, calibration: calibration))
        var out = Data(Self.magic)
        func put(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(UInt32(header.count))
        out.append(header)
        for j in kept { put(UInt32(j)) }
        for j in kept { put(features.idf[j].bitPattern) }
        for column in columns { for v in column { put(v.bitPattern) } }
        return out
    }

    /// Reads and checks a file's bytes; `name` names it in errors.
    public init(data: Data, name: String) throws {
        let bytes = [UInt8](data)
        func fail(_ reason: String) -> InputError { InputError("\(name): \(reason)") }
        guard bytes.count >= 12, Array(bytes[0..<8]) == Self.magic else { throw fail("not an Aisle text classifier (no AISLETC1 signature)") }
        var offset = 8
        func u32() -> UInt32 {
            defer { offset += 4 }
            return UInt32(bytes[offset]) | UInt32(bytes[offset + 1]) << 8 | UInt32(bytes[offset + 2]) << 16 | UInt32(bytes[offset + 3]) << 24
        }
        let headerLength = Int(u32())
        guard headerLength <= bytes.count - offset else { throw fail("truncated header") }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let h: Header
        do { h = try decoder.decode(Header.self, from: Data(bytes[offset..<offset + headerLength])) } catch { throw fail("bad header: \(error)") }
        offset += headerLength
        guard h.labels.count >= 2, Set(h.labels).count == h.labels.count else { throw fail("labels: need two or more distinct labels") }
        guard h.buckets > 0, h.buckets <= Self.maxBuckets, h.buckets & (h.buckets - 1) == 0 else { throw fail("buckets: \(h.buckets) is not a power of two up to 2^24") }
        guard (1...8).contains(h.maxOrder) else { throw fail("max_order: \(h.maxOrder) is not 1 to 8") }
        guard (0...h.buckets).contains(h.entries), (0...4096).contains(h.embeddingDimensions) else { throw fail("entries or embedding_dimensions out of range") }
        // Two labels: one logistic regression — unless calibrated, as a softmax has one per label.
        guard h.intercepts.count == (h.labels.count == 2 && h.calibration == nil ? 1 : h.labels.count) else { throw fail("intercepts: \(h.intercepts.count) for \(h.labels.count) labels") }
        guard (h.encoder == nil) == (h.embeddingDimensions == 0) else { throw fail("encoder and embedding_dimensions disagree") }
        if let t = h.threshold, !(0...1).contains(t) { throw fail("threshold: \(t) is not a probability") }
        let expected = offset + 4 * (2 * h.entries + h.intercepts.count * (h.entries + h.embeddingDimensions))
        guard bytes.count == expected else { throw fail("\(bytes.count) bytes where the header implies \(expected)") }
        let indices = (0..<h.entries).map { _ in Int(u32()) }
        guard zip(indices, indices.dropFirst()).allSatisfy({ $0 < $1 }), indices.last.map({ $0 < h.buckets }) ?? true else {
            throw fail("bucket indices are not ascending below \(h.buckets)")
        }
        func float() throws -> Float {
            let v = Float(bitPattern: u32())
            guard v.isFinite else { throw fail("a weight at byte \(offset - 4) is not finite") }
            return v
        }
        var idf = [Float](repeating: h.defaultIdf, count: h.buckets)
        for j in indices { idf[j] = try float() }
        columns = try h.intercepts.map { _ in try (0..<(h.entries + h.embeddingDimensions)).map { _ in try float() } }
        (kept, intercepts, defaultIdf) = (indices, h.intercepts, h.defaultIdf)
        labels = h.labels
        features = TextFeatures(buckets: h.buckets, maxOrder: h.maxOrder, idf: idf)
        encoderVersion = h.encoder
        embeddingDimensions = h.embeddingDimensions
        threshold = h.threshold
        calibration = h.calibration
        if let c = calibration, !(c.a.isFinite && c.b.isFinite) { throw fail("calibration: not finite") }
    }
}

extension TextClassifierFile {
    private struct Parameters: Encodable { var labels: [String]; var buckets: Int; var maxOrder: Int; var encoder: String?; var source: String }

    /// Registers the file's `bytes` as a new version of `kind`, its shape as the parameters.
    public static func register(
        _ store: Store, kind: String, file: TextClassifierFile, bytes: Data, source: String, metrics: some Encodable, activate: Bool,
        actor: String = Store.currentActor
    ) throws -> ModelRecord {
        let parameters = Parameters(labels: file.labels, buckets: file.features.buckets, maxOrder: file.features.maxOrder, encoder: file.encoderVersion, source: source)
        return try store.database.write { db in
            let record = try ModelRegistry.register(
                db, kind: kind, payload: bytes, parameters: parameters, metrics: metrics,
                features: ["char_1_\(file.features.maxOrder)_grams"] + (file.encoderVersion == nil ? [] : ["sentence_embedding"]),
                dataFrom: nil, dataUntil: nil, activate: activate, actor: actor)
            try Store.audit(db, "model register \(kind)", detail: "v\(record.version) from \(source)", actor: actor)
            return record
        }
    }
}
