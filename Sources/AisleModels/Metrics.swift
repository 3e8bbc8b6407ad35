import Foundation

/// Ranking and classification metrics.
public enum Metrics {
    /// Area under the ROC curve of `scores` for binary `labels`: the probability that a random
    /// positive scores above a random negative, ties counting half (Mann–Whitney). Nil when one
    /// class is absent.
    public static func auc(scores: [Double], labels: [Bool]) -> Double? {
        let positives = labels.filter { $0 }.count, negatives = labels.count - positives
        guard positives > 0, negatives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] < scores[$1] }
        var rankSum = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count, scores[order[j + 1]] == scores[order[i]] { j += 1 }
            let averageRank = Double(i + j) / 2 + 1
            for k in i...j where labels[order[k]] { rankSum += averageRank }
            i = j + 1
        }
        let p = Double(positives)
        return (rankSum - p * (p + 1) / 2) / (p * Double(negatives))
    }
}

extension Metrics {
    /// Area under the precision–recall curve as average precision (scikit-learn's definition):
    /// Σ (Rₖ − Rₖ₋₁) · Pₖ over the thresholds, ties taken together. Nil without positives.
    public static func averagePrecision(scores: [Double], labels: [Bool]) -> Double? {
        let positives = labels.filter { $0 }.count
        guard positives > 0 else { return nil }
        let order = scores.indices.sorted { scores[$0] > scores[$1] }
        var truePositives = 0, seen = 0, previousRecall = 0.0, total = 0.0
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count, scores[order[j + 1]] == scores[order[i]] { j += 1 }
            for k in i...j { seen += 1; if labels[order[k]] { truePositives += 1 } }
            let recall = Double(truePositives) / Double(positives)
            total += (recall - previousRecall) * Double(truePositives) / Double(seen)
            previousRecall = recall
            i = j + 1
        }
        return total
    }
}

extension Metrics {
    /// Share of predictions equal to the truth.
    public static func accuracy<Label: Equatable>(_ predicted: [Label], _ actual: [Label]) -> Double {
        Double(zip(predicted, actual).filter { $0 == $1 }.count) / Double(max(1, actual.count))
    }

    /// The mean F1 over the classes present in the truth or the predictions (scikit-learn's macro
    /// average): a test file of one class scores 1 when all are right, not 0.5.
    public static func macroF1(_ predicted: [Bool], _ actual: [Bool]) -> Double {
        macroF1(predicted.map { $0 ? "true" : "false" }, actual.map { $0 ? "true" : "false" })
    }
}

extension Metrics {
    /// Mean negative log-likelihood of the labels under the probabilities (clipped at 1e-15).
    public static func logLoss(_ probabilities: [Double], _ labels: [Bool]) -> Double {
        let total = zip(probabilities, labels).reduce(0.0) { sum, pair in
            let p = min(max(pair.0, 1e-15), 1 - 1e-15)
            return sum - (pair.1 ? log(p) : log(1 - p))
        }
        return total / Double(max(1, labels.count))
    }

    /// Mean squared difference between probability and outcome.
    public static func brier(_ probabilities: [Double], _ labels: [Bool]) -> Double {
        zip(probabilities, labels).reduce(0.0) { $0 + ($1.0 - ($1.1 ? 1 : 0)) * ($1.0 - ($1.1 ? 1 : 0)) } / Double(max(1, labels.count))
    }

    /// Expected calibration error over ten equal-width probability bins: the row-weighted mean
    /// gap between a bin's mean probability and its observed rate.
    public static func calibrationError(_ probabilities: [Double], _ labels: [Bool], bins: Int = 10) -> Double {
        var sum = [Double](repeating: 0, count: bins), hits = sum, count = sum
        for (p, y) in zip(probabilities, labels) {
            let b = min(bins - 1, max(0, Int(p * Double(bins))))
            sum[b] += p; count[b] += 1; if y { hits[b] += 1 }
        }
        return (0..<bins).reduce(0.0) { $0 + abs(sum[$1] - hits[$1]) } / Double(max(1, labels.count))
    }

    /// F1 of the positive class when predicting positive at `threshold`.
    public static func f1(_ probabilities: [Double], _ labels: [Bool], threshold: Double = 0.5) -> Double {
        var tp = 0.0, fp = 0.0, fn = 0.0
        for (p, y) in zip(probabilities, labels) {
            if p >= threshold { if y { tp += 1 } else { fp += 1 } } else if y { fn += 1 }
        }
        return tp == 0 ? 0 : 2 * tp / (2 * tp + fp + fn)
    }
}

/// Platt scaling (Platt 1999): P = σ(a · z + b) fitted to raw scores `z` (log-odds) and their
/// outcomes, so a score reads as a probability.
public struct PlattScaling: Sendable, Codable, Equatable {
    public var a: Double
    public var b: Double

    public init(a: Double, b: Double) { (self.a, self.b) = (a, b) }

    public static func fit(_ logits: [Double], _ labels: [Bool]) -> PlattScaling {
        let platt = LogisticRegression.fit(logits.map { [$0] }, labels, l2: 1e-3)
        // σ(w · (z − m) / s + c) = σ(a z + b)
        let a = platt.weights[0] / platt.scales[0]
        return PlattScaling(a: a, b: platt.intercept - a * platt.means[0])
    }

    public func probability(_ logit: Double) -> Double { sigmoid(a * logit + b) }
}

extension Metrics {
    /// Unweighted mean F1 over every label seen in the truth or the predictions (as
    /// scikit-learn's `f1_score(average="macro")`).
    public static func macroF1(_ predicted: [String], _ actual: [String]) -> Double {
        var tp: [String: Int] = [:], fp: [String: Int] = [:], fn: [String: Int] = [:]
        for (p, a) in zip(predicted, actual) {
            if p == a { tp[p, default: 0] += 1 } else { fp[p, default: 0] += 1; fn[a, default: 0] += 1 }
        }
        let labels = Set(predicted).union(actual)
        guard !labels.isEmpty else { return 0 }
        return labels.reduce(0.0) { sum, label in
            let t = Double(tp[label] ?? 0)
            return sum + (t == 0 ? 0 : 2 * t / (2 * t + Double(fp[label] ?? 0) + Double(fn[label] ?? 0)))
        } / Double(labels.count)
    }

    /// Share of the rows labelled `label` that were predicted so; nil when there are none.
    public static func outOfScopeRecall(_ predicted: [String], _ actual: [String], label: String) -> Double? {
        let rows = actual.indices.filter { actual[$0] == label }
        return rows.isEmpty ? nil : Double(rows.filter { predicted[$0] == label }.count) / Double(rows.count)
    }
}

extension Metrics {
    /// The 95 % percentile bootstrap interval of `statistic` over `items` (`resamples` seeded
    /// resamples with replacement).
    public static func bootstrap<T>(_ items: [T], resamples: Int = 500, seed: UInt64 = 11, _ statistic: ([T]) -> Double) -> (low: Double, high: Double) {
        var rng = SplitMix(state: seed)
        let values = (0..<resamples).map { _ in statistic(items.indices.map { _ in items[Int(rng.next() % UInt64(max(1, items.count)))] }) }.sorted()
        let at = { (q: Double) in values.isEmpty ? .nan : values[min(values.count - 1, Int(q * Double(values.count)))] }
        return (at(0.025), at(0.975))
    }
}
