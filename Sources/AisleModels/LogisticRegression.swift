import Foundation

/// Binary logistic regression with an L2 penalty, fitted by Newton's method (IRLS) on
/// standardised features; small dense problems (tens of features, thousands of rows).
public struct LogisticRegression: Sendable, Codable, Equatable {
    public var weights: [Double]
    public var intercept: Double
    /// Feature means and standard deviations of the training data (applied before `weights`).
    public var means: [Double]
    public var scales: [Double]

    public init(weights: [Double], intercept: Double, means: [Double], scales: [Double]) {
        (self.weights, self.intercept, self.means, self.scales) = (weights, intercept, means, scales)
    }

    enum CodingKeys: String, CodingKey { case weights, intercept, means, scales }

    /// A stored model is refused unless its arrays are one length and every number finite (and
    /// every scale above 0): scoring a damaged one would read past an array or answer NaN.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        try self.init(
            weights: c.decode([Double].self, forKey: .weights), intercept: c.decode(Double.self, forKey: .intercept),
            means: c.decode([Double].self, forKey: .means), scales: c.decode([Double].self, forKey: .scales))
        guard means.count == weights.count, scales.count == weights.count else {
            throw DecodingError.dataCorruptedError(forKey: .weights, in: c, debugDescription: "\(weights.count) weights, \(means.count) means and \(scales.count) scales")
        }
        guard (weights + means + [intercept]).allSatisfy(\.isFinite), scales.allSatisfy({ $0.isFinite && $0 > 0 }) else {
            throw DecodingError.dataCorruptedError(forKey: .weights, in: c, debugDescription: "a weight, mean or scale is not a finite number (or a scale not above 0)")
        }
    }

    /// Fits `P(y) = σ(w·z + b)` with `z` the standardised features; `l2` penalises `w` only.
    public static func fit(_ x: [[Double]], _ y: [Bool], l2: Double = 1.0, iterations: Int = 50) -> LogisticRegression {
        let d = x.first?.count ?? 0
        let n = Double(x.count)
        let means = (0..<d).map { j in x.reduce(0) { $0 + $1[j] } / max(n, 1) }
        let scales = (0..<d).map { j -> Double in
            let v = x.reduce(0) { $0 + ($1[j] - means[j]) * ($1[j] - means[j]) } / max(n - 1, 1)
            return v > 1e-12 ? v.squareRoot() : 1
        }
        let z = x.map { row in (0..<d).map { (row[$0] - means[$0]) / scales[$0] } + [1] }
        var beta = [Double](repeating: 0, count: d + 1)
        for _ in 0..<iterations {
            var gradient = [Double](repeating: 0, count: d + 1)
            var hessian = [[Double]](repeating: [Double](repeating: 0, count: d + 1), count: d + 1)
            for (row, label) in zip(z, y) {
                let p = sigmoid(zip(row, beta).reduce(0) { $0 + $1.0 * $1.1 })
                let r = (label ? 1 : 0) - p, w = max(p * (1 - p), 1e-10)
                for i in 0...d {
                    gradient[i] += r * row[i]
                    for j in 0...i { hessian[i][j] += w * row[i] * row[j] }
                }
            }
            for i in 0..<d { gradient[i] -= l2 * beta[i]; hessian[i][i] += l2 }
            for i in 0...d { for j in 0..<i { hessian[j][i] = hessian[i][j] } }
            guard let step = solveSymmetric(hessian, gradient) else { break }
            for i in 0...d { beta[i] += step[i] }
            if step.reduce(0, { max($0, abs($1)) }) < 1e-9 { break }
        }
        return LogisticRegression(weights: Array(beta[0..<d]), intercept: beta[d], means: means, scales: scales)
    }

    public func probability(_ features: [Double]) -> Double {
        var s = intercept
        for j in weights.indices { s += weights[j] * (features[j] - means[j]) / scales[j] }
        return sigmoid(s)
    }

    /// Each feature's contribution to the log-odds of this prediction (weight × standardised value).
    public func contributions(_ features: [Double]) -> [Double] {
        weights.indices.map { weights[$0] * (features[$0] - means[$0]) / scales[$0] }
    }
}

func sigmoid(_ v: Double) -> Double { v >= 0 ? 1 / (1 + exp(-v)) : exp(v) / (1 + exp(v)) }

/// Solves `A x = b` for a symmetric positive-definite `A` by Cholesky; nil if `A` is not.
public func solveSymmetric(_ a: [[Double]], _ b: [Double]) -> [Double]? {
    let n = b.count
    var l = [[Double]](repeating: [Double](repeating: 0, count: n), count: n)
    for i in 0..<n {
        for j in 0...i {
            var s = a[i][j]
            for k in 0..<j { s -= l[i][k] * l[j][k] }
            if i == j {
                guard s > 0 else { return nil }
                l[i][i] = s.squareRoot()
            } else {
                l[i][j] = s / l[j][j]
            }
        }
    }
    var y = [Double](repeating: 0, count: n)
    for i in 0..<n { y[i] = (b[i] - (0..<i).reduce(0) { $0 + l[i][$1] * y[$1] }) / l[i][i] }
    var x = [Double](repeating: 0, count: n)
    for i in stride(from: n - 1, through: 0, by: -1) { x[i] = (y[i] - ((i + 1)..<n).reduce(0) { $0 + l[$1][i] * x[$1] }) / l[i][i] }
    return x
}
