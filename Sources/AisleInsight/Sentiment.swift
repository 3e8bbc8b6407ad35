import AisleCore
import AisleModels
import AisleText
import Foundation

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
        let model = TextInputs.cjkShare(data.texts) > 0.5 ? nil : try TextModel.load(path: encoderPath, threads: 2)
        return fit(data, model: model, embeddings: model.map { TextInputs.embed(data.texts, $0) }, l2: l2, buckets: buckets)
    }

    /// Accuracy and macro-F1 on every fifth example when trained on the others, then the
    /// classifier trained on all of them (the embeddings are computed once).
    public static func trainWithHoldout(_ data: LabelledTexts, encoderPath: String, l2: Double? = nil, buckets: Int? = nil)
        throws -> (classifier: SentimentClassifier, accuracy: Double, macroF1: Double, heldOut: Int)
    {
        let model = TextInputs.cjkShare(data.texts) > 0.5 ? nil : try TextModel.load(path: encoderPath, threads: 2)
        let embeddings = model.map { TextInputs.embed(data.texts, $0) }
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
        let rows = TextInputs.vectors(data.texts, features, embeddings)
        let regression = SparseLogisticRegression.fit(
            rows, data.labels, dimension: features.buckets + (model?.encoder.dimensions ?? 0), l2: l2 ?? (cjk ? 3e-6 : 3e-4))
        return SentimentClassifier(features: features, regression: regression, model: model)
    }

    /// A saved classifier; `encoder` must be the model it was trained with when it reads embeddings.
    public init(file: TextClassifierFile, encoder: TextModel?) throws {
        guard file.labels == Self.labels, file.intercepts.count == 1 else {
            throw InputError("not a sentiment model: its labels are \(file.labels.joined(separator: ", "))")
        }
        features = file.features
        regression = file.weights[0]
        model = try file.checkedEncoder(encoder, what: "sentiment")
    }

    /// The shipped default model's file name (``ShippedModels``).
    public static let defaultFile = "sentiment-en.aisletc"

    /// Reads a model file (nil: the shipped default) with the encoder at `encoderPath` when it
    /// reads embeddings.
    public static func load(_ path: String?, encoderPath: String) throws -> SentimentClassifier {
        let (file, encoder) = try TextClassifierFile.read(path, defaultFile: defaultFile, what: "sentiment", encoderPath: encoderPath)
        return try SentimentClassifier(file: file, encoder: encoder)
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
        TextInputs.vectors(texts, features, model == nil ? nil : embeddings ?? model.map { TextInputs.embed(texts, $0) }).map(regression.probability)
    }
}
