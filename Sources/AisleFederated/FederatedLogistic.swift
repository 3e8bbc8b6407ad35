import AisleModels
import Foundation

/// Federated training of a logistic regression (the purchase-intent model) as stores and the
/// hub do it: feature moments summed across stores give one standardisation; each round every
/// store takes `steps` Newton steps from the global weights on its own rows and
/// sends its change; the hub averages the changes (weighted by rows; or, with differential
/// privacy, unweighted, clipped and noised) and moves the global weights by FedAvg or FedAdam.
public enum FederatedLogistic {
    /// A store's feature moments, as a vector secure aggregation can sum: n, Σx, Σx².
    public static func moments(_ x: [[Double]], dimension d: Int) -> [Double] {
        var out = [Double](repeating: 0, count: 1 + 2 * d)
        out[0] = Double(x.count)
        for row in x {
            for j in 0..<d {
                out[1 + j] += row[j]
                out[1 + d + j] += row[j] * row[j]
            }
        }
        return out
    }

    /// The standardisation from summed moments: an untrained model (zero weights) that applies it.
    public static func initial(fromMoments m: [Double], dimension d: Int) -> LogisticRegression {
        let n = max(m[0], 1)
        let means = (0..<d).map { m[1 + $0] / n }
        let scales = (0..<d).map { j -> Double in
            let v = (m[1 + d + j] / n - means[j] * means[j]) * n / max(n - 1, 1)
            return v > 1e-12 ? v.squareRoot() : 1
        }
        return LogisticRegression(weights: Array(repeating: 0, count: d), intercept: 0, means: means, scales: scales)
    }

    /// The model's parameters as one vector: weights, then the intercept.
    public static func parameters(_ m: LogisticRegression) -> [Double] { m.weights + [m.intercept] }

    public static func with(_ m: LogisticRegression, parameters p: [Double]) -> LogisticRegression {
        var out = m
        out.weights = Array(p.dropLast())
        out.intercept = p.last ?? 0
        return out
    }

    /// A store's change to the global parameters after `steps` Newton steps (scaled by
    /// `learningRate`) on its rows, from the global ones: mean log-loss + l2/2 ‖w‖², intercept
    /// unpenalised. Newton's steps do not care how rare buyers are, where gradient steps crawl.
    public static func localUpdate(global: LogisticRegression, _ x: [[Double]], _ y: [Bool], steps: Int, learningRate: Double, l2: Double) -> [Double] {
        let d = global.weights.count
        let z = x.map { row in (0..<d).map { (row[$0] - global.means[$0]) / global.scales[$0] } + [1] }
        var beta = parameters(global)
        let n = Double(max(x.count, 1))
        for _ in 0..<steps {
            var gradient = [Double](repeating: 0, count: d + 1)
            var hessian = [[Double]](repeating: [Double](repeating: 0, count: d + 1), count: d + 1)
            for (row, label) in zip(z, y) {
                var s = 0.0
                for j in 0...d { s += beta[j] * row[j] }
                let p = 1 / (1 + exp(-s)), w = max(p * (1 - p), 1e-10), r = p - (label ? 1 : 0)
                for i in 0...d {
                    gradient[i] += r * row[i]
                    for j in 0...i { hessian[i][j] += w * row[i] * row[j] }
                }
            }
            for i in 0...d {
                gradient[i] = gradient[i] / n + (i < d ? l2 * beta[i] : 0)
                for j in 0...i { hessian[i][j] /= n }
                if i < d { hessian[i][i] += l2 }
                for j in 0..<i { hessian[j][i] = hessian[i][j] }
            }
            guard let step = solveSymmetric(hessian, gradient) else { break }
            for j in 0...d { beta[j] -= learningRate * step[j] }
            if step.reduce(0, { max($0, abs($1)) }) < 1e-9 { break }
        }
        return zip(beta, parameters(global)).map { $0 - $1 }
    }

    /// `v` scaled down to L2 norm `bound` if longer.
    public static func clip(_ v: [Double], norm bound: Double) -> [Double] {
        let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return norm > bound ? v.map { $0 * bound / norm } : v
    }

    /// Independent N(0, σ²) values (Box–Muller over the system's random numbers).
    public static func gaussian(count: Int, sigma: Double) -> [Double] {
        var g = SystemRandomNumberGenerator()
        return gaussian(count: count, sigma: sigma, using: &g)
    }

    /// Independent N(0, σ²) values (Box–Muller over `g`'s numbers).
    public static func gaussian(count: Int, sigma: Double, using g: inout some RandomNumberGenerator) -> [Double] {
        (0..<count).map { _ in
            let u = Double.random(in: Double.ulpOfOne..<1, using: &g), v = Double.random(in: 0..<1, using: &g)
            return sigma * (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
        }
    }

    /// The hub's step: FedAvg (`global += rate × mean update`) or FedAdam (Reddi et al. 2021).
    public struct ServerOptimizer: Sendable, Codable, Equatable {
        public enum Method: String, Sendable, Codable { case fedAvg = "fedavg", fedAdam = "fedadam" }
        public var method: Method
        public var rate: Double
        public var beta1 = 0.9
        public var beta2 = 0.99
        public var tau = 1e-3
        var m: [Double] = []
        var v: [Double] = []

        public init(method: Method = .fedAvg, rate: Double = 1) { (self.method, self.rate) = (method, rate) }

        public mutating func step(_ global: [Double], meanUpdate delta: [Double]) -> [Double] {
            switch method {
            case .fedAvg:
                return zip(global, delta).map { $0 + rate * $1 }
            case .fedAdam:
                if m.isEmpty { (m, v) = (Array(repeating: 0, count: delta.count), Array(repeating: tau * tau, count: delta.count)) }
                for i in delta.indices {
                    m[i] = beta1 * m[i] + (1 - beta1) * delta[i]
                    v[i] = beta2 * v[i] + (1 - beta2) * delta[i] * delta[i]
                }
                return global.indices.map { global[$0] + rate * m[$0] / (v[$0].squareRoot() + tau) }
            }
        }
    }
}
