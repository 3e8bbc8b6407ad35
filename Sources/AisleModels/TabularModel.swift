import Foundation

/// A binary classifier over a fixed list of numeric features, chosen per store between logistic
/// regression and gradient-boosted trees on a later validation window, with Platt-calibrated
/// probabilities. The churn and purchase-intent models are this.
public struct TabularModel: Sendable, Codable, Equatable {
    public enum Method: String, Sendable, Codable, CaseIterable { case lr, gbt }

    public var method: Method
    public var features: [String]
    var regression: LogisticRegression?
    var trees: GradientBoostedTrees?
    /// Platt scaling of the raw log-odds: P = σ(a · logit + b).
    var calibration: [Double]
    /// Training means: a feature's contribution is the change in log-odds when it takes its mean.
    var means: [Double]

    /// Calibrated probability of the positive label.
    public func probability(_ x: [Double]) -> Double { sigmoid(calibration[0] * rawLogit(x) + calibration[1]) }

    /// Each feature's contribution to this prediction's log-odds: the calibrated log-odds minus
    /// those with the feature at its training mean (for logistic regression, weight × standardised
    /// value). Positive pushes towards the positive label.
    public func contributions(_ x: [Double]) -> [Double] {
        let full = rawLogit(x)
        return x.indices.map { j in
            var y = x
            y[j] = means[j]
            return calibration[0] * (full - rawLogit(y))
        }
    }

    func rawLogit(_ x: [Double]) -> Double {
        let p = regression?.probability(x) ?? trees?.probability(x) ?? 0.5
        let q = min(max(p, 1e-12), 1 - 1e-12)
        return log(q / (1 - q))
    }

    /// How the candidates did on the validation window, and what was chosen.
    public struct Report: Sendable, Codable {
        public var method: Method
        public var trainRows: Int
        public var validationRows: Int
        public var validationPositiveRate: Double
        /// AUC of each candidate on the validation window.
        public var validationAuc: [String: Double]
        public var validationPrAuc: Double?
        /// Log loss, Brier score and calibration error of the chosen model's calibrated
        /// probabilities on the validation window (in-sample for the calibration), and before it.
        public var logLoss: Double
        public var logLossUncalibrated: Double
        public var brier: Double
        public var calibrationError: Double
        public var calibrationErrorUncalibrated: Double
        public var f1: Double

        /// The validation AUC of the method chosen.
        public var chosenValidationAuc: Double? { validationAuc[method.rawValue] }
    }

    /// Validation AUC a more complex method must gain over a simpler one to be chosen: on one
    /// window of a few thousand rows smaller differences are noise (docs/MODELS.md).
    public static let complexityMargin = 0.005

    /// Fits both methods on `train`, keeps the simplest whose AUC on `validation` is not beaten
    /// by more than ``complexityMargin`` (methods listed from simple to complex), fits
    /// Platt scaling to its validation scores, then refits it on train and validation together.
    /// The calibration carries over with its shift less what the refit moved the validation
    /// scores by on average: the refit has learnt part of the validation window's base rate
    /// already, and Platt's shift would count it twice (Online Retail churn: mean probability
    /// 0.59 for a rate of 0.43 on the test window; 0.52 so). Needs both labels in each set.
    public static func select(
        features: [String], train: (rows: [[Double]], labels: [Bool]), validation: (rows: [[Double]], labels: [Bool]),
        l2: Double, trees parameters: GradientBoostedTrees.Parameters = .init(), methods: [Method] = Method.allCases
    ) -> (model: TabularModel, report: Report) {
        func fit(_ method: Method, _ rows: [[Double]], _ labels: [Bool]) -> TabularModel {
            let d = rows.first?.count ?? 0
            let means = (0..<d).map { j in rows.reduce(0) { $0 + $1[j] } / Double(max(1, rows.count)) }
            return TabularModel(
                method: method, features: features,
                regression: method == .lr ? LogisticRegression.fit(rows, labels, l2: l2) : nil,
                trees: method == .gbt ? GradientBoostedTrees.fit(rows, labels, parameters: parameters) : nil,
                calibration: [1, 0], means: means)
        }
        var aucs: [String: Double] = [:]
        var best: (model: TabularModel, auc: Double)?
        for method in methods {
            let model = fit(method, train.rows, train.labels)
            let auc = Metrics.auc(scores: validation.rows.map(model.rawLogit), labels: validation.labels) ?? 0.5
            aucs[method.rawValue] = auc
            if best.map({ auc > $0.auc + complexityMargin }) ?? true { best = (model, auc) }
        }
        let chosen = best?.model ?? fit(.lr, train.rows, train.labels)
        let logits = validation.rows.map(chosen.rawLogit)
        let platt = PlattScaling.fit(logits, validation.labels)
        let (a, b) = (platt.a, platt.b)
        let raw = logits.map(sigmoid), calibrated = logits.map { sigmoid(a * $0 + b) }
        var final = fit(chosen.method, train.rows + validation.rows, train.labels + validation.labels)
        let moved = validation.rows.reduce(0.0) { $0 + final.rawLogit($1) - chosen.rawLogit($1) } / Double(max(1, validation.rows.count))
        final.calibration = [a, b - a * moved]
        let report = Report(
            method: chosen.method, trainRows: train.rows.count, validationRows: validation.rows.count,
            validationPositiveRate: Double(validation.labels.filter { $0 }.count) / Double(max(1, validation.labels.count)),
            validationAuc: aucs, validationPrAuc: Metrics.averagePrecision(scores: logits, labels: validation.labels),
            logLoss: Metrics.logLoss(calibrated, validation.labels), logLossUncalibrated: Metrics.logLoss(raw, validation.labels),
            brier: Metrics.brier(calibrated, validation.labels),
            calibrationError: Metrics.calibrationError(calibrated, validation.labels),
            calibrationErrorUncalibrated: Metrics.calibrationError(raw, validation.labels),
            f1: Metrics.f1(calibrated, validation.labels))
        return (final, report)
    }
}

extension TabularModel {
    /// A logistic regression used as it is, without recalibration (a federated global model).
    enum CodingKeys: String, CodingKey { case method, features, regression, trees, calibration, means }

    /// A stored model is refused unless its parts fit its feature list: the method's model
    /// present and as wide, two finite calibration numbers, a mean per feature.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            method: try c.decode(Method.self, forKey: .method), features: try c.decode([String].self, forKey: .features),
            regression: try c.decodeIfPresent(LogisticRegression.self, forKey: .regression), trees: try c.decodeIfPresent(GradientBoostedTrees.self, forKey: .trees),
            calibration: try c.decode([Double].self, forKey: .calibration), means: try c.decode([Double].self, forKey: .means))
        let d = features.count
        let problem: String? =
            switch method {
            case .lr where regression?.weights.count != d: "lr: \(regression.map { "\($0.weights.count) weights" } ?? "no regression") for \(d) features"
            case .gbt where trees.map({ $0.featuresRead > d }) ?? true: "gbt: \(trees.map { "trees read \($0.featuresRead) features" } ?? "no trees") for \(d)"
            default:
                calibration.count != 2 || !calibration.allSatisfy(\.isFinite) ? "calibration: expected two finite numbers"
                    : means.count != d || !means.allSatisfy(\.isFinite) ? "means: expected \(d) finite numbers, got \(means.count)" : nil
            }
        if let problem { throw DecodingError.dataCorruptedError(forKey: .features, in: c, debugDescription: problem) }
    }

    /// Throws unless the model reads exactly `names`, in order (a model stored by a build with
    /// other features would score the wrong columns).
    public func requireFeatures(_ names: [String]) throws {
        guard features == names else {
            throw DecodingError.dataCorrupted(.init(codingPath: [], debugDescription: "features: the model reads \(features.count) (\(features.prefix(3).joined(separator: ", "))…), this build \(names.count)"))
        }
    }

    public init(logistic: LogisticRegression, features: [String]) {
        self.init(method: .lr, features: features, regression: logistic, trees: nil, calibration: [1, 0], means: logistic.means)
    }

    /// The logistic regression, when that is the method.
    public var logistic: LogisticRegression? { regression }
}
