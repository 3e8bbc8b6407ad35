import AisleCore
import AisleModels
import AisleText
import Foundation

/// Labelled texts from JSON Lines `{"text","label"}`, for a two-class task.
public struct LabelledTexts: Sendable {
    public var texts: [String] = []
    public var labels: [Bool] = []

    public init(texts: [String] = [], labels: [Bool] = []) { (self.texts, self.labels) = (texts, labels) }

    /// Reads `path`; a line that is not such an object, or has another label, is refused with its
    /// line number.
    public static func load(_ path: String, positive: String, negative: String) throws -> LabelledTexts {
        guard let data = FileManager.default.contents(atPath: path) else { throw InputError("\(path): cannot read") }
        var out = LabelledTexts()
        for (n, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            guard case .object(let o)? = try? JSONParser.parse(Array(line)), case .string(let text)? = o["text"], case .string(let label)? = o["label"] else {
                throw InputError("\(path):\(n + 1): expected {\"text\": \"…\", \"label\": \"…\"}")
            }
            guard label == positive || label == negative else {
                throw InputError("\(path):\(n + 1): label \"\(label)\" is neither \"\(positive)\" nor \"\(negative)\"")
            }
            out.texts.append(text)
            out.labels.append(label == positive)
        }
        guard out.labels.contains(true), out.labels.contains(false) else { throw InputError("\(path): needs examples of both labels") }
        return out
    }
}

/// A message naming the file, line and field of bad input.
public struct InputError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Review sentiment: character n-gram TF-IDF (works for Chinese as for English) plus the int8
/// encoder's sentence embedding, into a class-balanced logistic regression. `probability` is
/// P(positive). Saved and loaded as a ``TextClassifierFile``.
public struct SentimentClassifier: Sendable {
    public static let kind = "sentiment"
    public static let labels = ["negative", "positive"]
    public let features: TextFeatures
    public let regression: SparseLogisticRegression
    /// The encoder, when its embeddings are used: not for texts mostly in Chinese, Japanese or
    /// Korean, where the English encoder adds nothing the n-grams do not (EVALUATION.md).
    public let model: TextModel?

    /// Defaults (chosen on the public splits, docs/MODELS.md): with the encoder, 1–4-grams in
    /// 2^18 buckets and `l2` 3e-4; for CJK texts, 1–3-grams in 2^20 buckets and `l2` 3e-6.
    public static func train(_ data: LabelledTexts, encoderPath: String, l2: Double? = nil, buckets: Int? = nil) throws -> SentimentClassifier {
        let model = cjkShare(data.texts) > 0.5 ? nil : try TextModel.load(path: encoderPath, threads: 2)
        return fit(data, model: model, embeddings: model.map { embed(data.texts, $0) }, l2: l2, buckets: buckets)
    }

    /// Accuracy and macro-F1 on every fifth example when trained on the others, then the
    /// classifier trained on all of them (the embeddings are computed once).
    public static func trainWithHoldout(_ data: LabelledTexts, encoderPath: String, l2: Double? = nil, buckets: Int? = nil)
        throws -> (classifier: SentimentClassifier, accuracy: Double, macroF1: Double, heldOut: Int)
    {
        let model = cjkShare(data.texts) > 0.5 ? nil : try TextModel.load(path: encoderPath, threads: 2)
        let embeddings = model.map { embed(data.texts, $0) }
        let held = Set(stride(from: 4, to: data.texts.count, by: 5))
        func part(_ keep: (Int) -> Bool) -> (LabelledTexts, [[Float]]?) {
            let ids = data.texts.indices.filter(keep)
            return (LabelledTexts(texts: ids.map { data.texts[$0] }, labels: ids.map { data.labels[$0] }), embeddings.map { e in ids.map { e[$0] } })
        }
        let (train, trainEmbeddings) = part { !held.contains($0) }
        let (test, testEmbeddings) = part { held.contains($0) }
        guard train.labels.contains(true), train.labels.contains(false) else { throw InputError("too few examples of one label to hold some back") }
        let probe = fit(train, model: model, embeddings: trainEmbeddings, l2: l2, buckets: buckets)
        let predicted = probe.predict(test.texts, embeddings: testEmbeddings).map { $0 >= 0.5 }
        return (fit(data, model: model, embeddings: embeddings, l2: l2, buckets: buckets),
                Metrics.accuracy(predicted, test.labels), Metrics.macroF1(predicted, test.labels), test.texts.count)
    }

    static func fit(_ data: LabelledTexts, model: TextModel?, embeddings: [[Float]]?, l2: Double?, buckets: Int?) -> SentimentClassifier {
        let cjk = model == nil
        // In Chinese most words are one or two characters; longer grams add mostly noise there.
        var features = TextFeatures(training: data.texts, buckets: buckets ?? (cjk ? 1 << 20 : 1 << 18), maxOrder: cjk ? 3 : 4)
        features.weightByLabel(data.texts, data.labels)
        let rows = vectors(data.texts, features, embeddings)
        let regression = SparseLogisticRegression.fit(
            rows, data.labels, dimension: features.buckets + (model?.encoder.dimensions ?? 0), l2: l2 ?? (cjk ? 3e-6 : 3e-4))
        return SentimentClassifier(features: features, regression: regression, model: model)
    }

    /// A saved classifier; `encoder` must be the model it was trained with when it reads embeddings.
    public init(file: TextClassifierFile, encoder: TextModel?) throws {
        guard file.labels == Self.labels, file.weights.count == 1 else {
            throw InputError("not a sentiment model: its labels are \(file.labels.joined(separator: ", "))")
        }
        if let version = file.encoderVersion {
            guard let encoder else { throw InputError("the sentiment model reads the int8 encoder's embeddings (\(version)), which is not loaded") }
            guard encoder.encoder.version == version else {
                throw InputError("the sentiment model was trained with encoder \(version); the loaded encoder is \(encoder.encoder.version) — train it again")
            }
        }
        features = file.features
        regression = file.weights[0]
        model = file.encoderVersion == nil ? nil : encoder
    }

    /// The shipped default model's file name (``ShippedModels``).
    public static let defaultFile = "sentiment-en.aisletc"

    /// Reads a model file (nil: the shipped default) with the encoder at `encoderPath` when it
    /// reads embeddings.
    public static func load(_ path: String?, encoderPath: String) throws -> SentimentClassifier {
        guard let path = path ?? ShippedModels.path(defaultFile) else {
            throw InputError("the default sentiment model \(defaultFile) is not installed (set AISLE_DEFAULT_MODELS to its directory)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw InputError("\(path): cannot read") }
        let file = try TextClassifierFile(data: data, name: path)
        return try SentimentClassifier(file: file, encoder: file.encoderVersion == nil ? nil : try TextModel.load(path: encoderPath, threads: 2))
    }

    init(features: TextFeatures, regression: SparseLogisticRegression, model: TextModel?) {
        (self.features, self.regression, self.model) = (features, regression, model)
    }

    /// The savable form.
    public var file: TextClassifierFile {
        TextClassifierFile(labels: Self.labels, features: features, weights: [regression], encoderVersion: model?.encoder.version, embeddingDimensions: model?.encoder.dimensions ?? 0)
    }

    /// P(positive) per text; `embeddings` when the caller has them already (from the same encoder).
    public func predict(_ texts: [String], embeddings: [[Float]]? = nil) -> [Double] {
        Self.vectors(texts, features, model == nil ? nil : embeddings ?? model.map { Self.embed(texts, $0) }).map(regression.probability)
    }

    static func embed(_ texts: [String], _ model: TextModel) -> [[Float]] {
        stride(from: 0, to: texts.count, by: 32).flatMap { start in
            model.encoder.embed(batch: texts[start..<min(start + 32, texts.count)].map { model.tokenizer.encode($0) })
        }
    }

    static func vectors(_ texts: [String], _ features: TextFeatures, _ embeddings: [[Float]]?) -> [SparseVector] {
        guard let embeddings else { return texts.map(features.vector) }
        return zip(texts, embeddings).map { features.combine($0, embedding: $1) }
    }

    /// The share of letters that are CJK ideographs, kana or hangul.
    static func cjkShare(_ texts: [String]) -> Double {
        var cjk = 0, letters = 0
        for text in texts.prefix(2000) {
            for s in text.unicodeScalars where s.properties.isAlphabetic {
                letters += 1
                if (0x3040...0x30FF).contains(s.value) || (0x3400...0x9FFF).contains(s.value) || (0xAC00...0xD7AF).contains(s.value) { cjk += 1 }
            }
        }
        return letters == 0 ? 0 : Double(cjk) / Double(letters)
    }
}
