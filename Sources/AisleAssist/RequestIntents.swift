import AisleInsight
import AisleModels
import AisleText
import Foundation

/// The assistant's request intents (order, refund, delivery, account …): character n-gram TF-IDF
/// plus the int8 encoder's embedding (weighted ×4, so meaning counts for more than spelling)
/// into a multinomial logistic regression. The
/// best label's log-odds are Platt-calibrated on held-back examples into the chance it is right;
/// below ``threshold`` — or when the label `oos` wins, if the training data had such examples —
/// the request is out of scope rather than forced into an intent.
public struct RequestIntents: Sendable {
    public static let kind = "assist"
    /// The label of "none of the intents", in training and test files and in predictions.
    public static let outOfScope = "oos"
    /// The shipped default model's file name (``ShippedModels``).
    public static let defaultFile = "assist-en.aisletc"

    public let labels: [String]
    public let features: TextFeatures
    public let regression: SoftmaxRegression
    public let calibration: PlattScaling
    /// The least calibrated confidence at which an intent is accepted.
    public let threshold: Double
    public let model: TextModel?

    /// One request's reading.
    public struct Prediction: Sendable, Equatable {
        /// The accepted intent, or `oos`.
        public var intent: String
        /// The calibrated chance that the best in-scope label is right.
        public var confidence: Double
        /// The best in-scope label, accepted or not.
        public var best: String
    }

    /// How the classifier did on the fifth of the training data held back.
    public struct HeldOut: Sendable, Codable {
        public var heldOut: Int
        public var accuracy: Double
        public var macroF1: Double
        public var oosRecall: Double?
        /// In-scope held-back requests refused as out of scope.
        public var inScopeRefused: Double
        public var threshold: Double
        public var labels: Int
        public var examples: Int
    }

    /// The embedding's weight against the n-grams in training.
    public static let embeddingScale = 4.0

    /// Defaults: 1–4-grams in 2^17 buckets, `l2` 1e-3 (docs/MODELS.md).
    public static func train(_ data: LabelledExamples, encoderPath: String, l2: Double? = nil, buckets: Int? = nil) throws -> (classifier: RequestIntents, heldOut: HeldOut) {
        let labels = Array(Set(data.labels)).sorted()
        guard labels.filter({ $0 != outOfScope }).count >= 2 else { throw InputError("need examples of at least two intents besides \(outOfScope)") }
        let model = TextInputs.cjkShare(data.texts) > 0.5 ? nil : try TextModel.load(path: encoderPath, threads: 2)
        let embeddings = model.map { TextInputs.embed(data.texts, $0) }
        let held = Set(stride(from: 4, to: data.texts.count, by: 5))
        func part(_ keep: (Int) -> Bool) -> (LabelledExamples, [[Float]]?) {
            let ids = data.texts.indices.filter(keep)
            return (data.subset(ids), embeddings.map { e in ids.map { e[$0] } })
        }
        let (train, trainEmbeddings) = part { !held.contains($0) }
        let (test, testEmbeddings) = part { held.contains($0) }
        let fitted = fit(train, labels: labels, model: model, embeddings: trainEmbeddings, l2: l2, buckets: buckets)
        let probe = RequestIntents(labels: labels, features: fitted.features, regression: fitted.regression, calibration: PlattScaling(a: 1, b: 0), threshold: 0, model: model)
        let raw = probe.rawScores(test.texts, embeddings: testEmbeddings)
        // Calibrate on the held-back fifth: is the best in-scope label the right one?
        let calibration = PlattScaling.fit(raw.map(\.logit), zip(raw, test.labels).map { $0.best == $1 })
        let confidences = raw.map { calibration.probability($0.logit) }
        let threshold = chooseThreshold(confidences, raw.map(\.best), raw.map(\.oosWins), test.labels)
        let calibrated = RequestIntents(
            labels: labels, features: probe.features, regression: probe.regression, calibration: calibration, threshold: threshold, model: model)
        let predicted = calibrated.predict(test.texts, embeddings: testEmbeddings).map(\.intent)
        let inScope = test.labels.indices.filter { test.labels[$0] != outOfScope }
        let report = HeldOut(
            heldOut: test.texts.count, accuracy: Metrics.accuracy(predicted, test.labels), macroF1: Metrics.macroF1(predicted, test.labels),
            oosRecall: Metrics.outOfScopeRecall(predicted, test.labels, label: outOfScope),
            inScopeRefused: Double(inScope.filter { predicted[$0] == outOfScope }.count) / Double(max(inScope.count, 1)),
            threshold: threshold, labels: labels.count, examples: data.texts.count)
        let final = fit(data, labels: labels, model: model, embeddings: embeddings, l2: l2, buckets: buckets)
        return (RequestIntents(labels: labels, features: final.features, regression: final.regression, calibration: calibration, threshold: threshold, model: model), report)
    }

    /// With out-of-scope examples held back: the threshold that gets most held-back requests
    /// right. Without: 0.5 — refuse when the best intent is more likely wrong than right.
    static func chooseThreshold(_ confidences: [Double], _ best: [String], _ oosWins: [Bool], _ actual: [String]) -> Double {
        guard actual.contains(outOfScope) else { return 0.5 }
        let candidates = Set(confidences.map { ($0 * 200).rounded() / 200 }).sorted()
        var bestThreshold = 0.0, bestRight = -1
        for t in [0.0] + candidates {
            var right = 0
            for i in actual.indices {
                let predicted = oosWins[i] || confidences[i] < t ? outOfScope : best[i]
                if predicted == actual[i] { right += 1 }
            }
            if right > bestRight { (bestRight, bestThreshold) = (right, t) }
        }
        return bestThreshold
    }

    static func fit(_ data: LabelledExamples, labels: [String], model: TextModel?, embeddings: [[Float]]?, l2: Double?, buckets: Int?) -> (features: TextFeatures, regression: SoftmaxRegression) {
        let features = TextFeatures(training: data.texts, buckets: buckets ?? 1 << 17, maxOrder: 4)
        let scaled = embeddings.map { $0.map { $0.map { $0 * Float(embeddingScale) } } }
        let rows = TextInputs.vectors(data.texts, features, scaled)
        let index = Dictionary(uniqueKeysWithValues: labels.enumerated().map { ($1, $0) })
        let regression = SoftmaxRegression.fit(
            rows, data.labels.map { index[$0] ?? 0 }, classes: labels.count, dimension: features.buckets + (model?.encoder.dimensions ?? 0), l2: l2 ?? 1e-3)
        // Fold the scale into the weights: the saved model reads embeddings as they come.
        return (features, regression.scaled(from: features.buckets, by: embeddingScale))
    }

    init(labels: [String], features: TextFeatures, regression: SoftmaxRegression, calibration: PlattScaling, threshold: Double, model: TextModel?) {
        (self.labels, self.features, self.regression, self.calibration, self.threshold, self.model) = (labels, features, regression, calibration, threshold, model)
    }

    /// A saved classifier; `encoder` must be the model it was trained with when it reads embeddings.
    public init(file: TextClassifierFile, encoder: TextModel?) throws {
        guard file.intercepts.count == file.labels.count, let threshold = file.threshold, let calibration = file.calibration else {
            throw InputError("not a request-intent model: it has no per-label weights, threshold and calibration")
        }
        regression = SoftmaxRegression(
            dimension: file.features.buckets + file.embeddingDimensions, features: file.columnFeatures, columns: file.columns, intercepts: file.intercepts)
        (labels, features, self.calibration, self.threshold) = (file.labels, file.features, calibration, threshold)
        model = try file.checkedEncoder(encoder, what: "assistant")
    }

    /// Reads a model file (nil: the shipped default) with the encoder at `encoderPath` when it
    /// reads embeddings.
    public static func load(_ path: String?, encoderPath: String) throws -> RequestIntents {
        let (file, encoder) = try TextClassifierFile.read(path, defaultFile: defaultFile, what: "assistant", encoderPath: encoderPath)
        return try RequestIntents(file: file, encoder: encoder)
    }

    /// The savable form.
    public var file: TextClassifierFile {
        TextClassifierFile(
            labels: labels, features: features,
            weights: regression.intercepts.indices.map { SparseLogisticRegression(weights: regression.weights(ofClass: $0), intercept: regression.intercepts[$0]) }, encoderVersion: model?.encoder.version,
            embeddingDimensions: model?.encoder.dimensions ?? 0, threshold: threshold, calibration: calibration)
    }

    /// Each text's intent; `embeddings` when the caller has them already (from the same encoder).
    public func predict(_ texts: [String], embeddings: [[Float]]? = nil) -> [Prediction] {
        rawScores(texts, embeddings: embeddings).map { score in
            let confidence = calibration.probability(score.logit)
            return Prediction(intent: score.oosWins || confidence < threshold ? Self.outOfScope : score.best, confidence: confidence, best: score.best)
        }
    }

    /// One text's intent from its embedding (nil when the model reads none).
    public func predict(_ text: String, embedding: [Float]?) -> Prediction {
        predict([text], embeddings: embedding.map { [$0] })[0]
    }

    /// The best in-scope label, its log-odds, and whether `oos` scores higher still.
    func rawScores(_ texts: [String], embeddings: [[Float]]?) -> [(best: String, logit: Double, oosWins: Bool)] {
        let vectors = TextInputs.vectors(texts, features, model == nil ? nil : embeddings ?? model.map { TextInputs.embed(texts, $0) })
        return vectors.map { x in
            let p = regression.probabilities(x)
            var best = -1, bestP = -1.0, oosP = 0.0
            for k in p.indices {
                if labels[k] == Self.outOfScope { oosP = p[k] } else if p[k] > bestP { (best, bestP) = (k, p[k]) }
            }
            let clipped = min(max(bestP, 1e-9), 1 - 1e-9)
            return (labels[best], log(clipped / (1 - clipped)), oosP > bestP)
        }
    }

    /// The in-scope intents.
    public var intents: [String] { labels.filter { $0 != Self.outOfScope } }
}
