import Foundation

/// Limited-memory BFGS (Nocedal 1980) with a backtracking Armijo line search, for smooth convex
/// objectives of many variables (text classifiers: one weight per n-gram bucket).
public enum LBFGS {
    /// Minimises `f`, which returns the value and writes the gradient, from `x`.
    public static func minimize(
        dimension n: Int, from start: [Double]? = nil, memory m: Int = 10, iterations: Int = 300, tolerance: Double = 1e-7,
        _ f: ([Double], inout [Double]) -> Double
    ) -> [Double] {
        var x = start ?? [Double](repeating: 0, count: n)
        var g = [Double](repeating: 0, count: n)
        var fx = f(x, &g)
        var s: [[Double]] = [], y: [[Double]] = [], rho: [Double] = []
        for _ in 0..<iterations {
            // Two-loop recursion: d = -H·g.
            var q = g
            var alpha = [Double](repeating: 0, count: s.count)
            for i in stride(from: s.count - 1, through: 0, by: -1) {
                alpha[i] = rho[i] * dot(s[i], q)
                for j in 0..<n { q[j] -= alpha[i] * y[i][j] }
            }
            if let last = s.indices.last {
                let gamma = dot(s[last], y[last]) / max(dot(y[last], y[last]), 1e-300)
                for j in 0..<n { q[j] *= gamma }
            }
            for i in s.indices {
                let beta = rho[i] * dot(y[i], q)
                for j in 0..<n { q[j] += s[i][j] * (alpha[i] - beta) }
            }
            var direction = q.map { -$0 }
            var slope = dot(g, direction)
            if slope >= 0 { direction = g.map { -$0 }; slope = -dot(g, g); s = []; y = []; rho = [] }
            // Backtracking line search.
            var step = s.isEmpty ? min(1, 1 / max(dot(g, g).squareRoot(), 1e-300)) : 1.0
            var xNew = x, gNew = g, fNew = fx
            for _ in 0..<40 {
                for j in 0..<n { xNew[j] = x[j] + step * direction[j] }
                fNew = f(xNew, &gNew)
                if fNew <= fx + 1e-4 * step * slope { break }
                step *= 0.5
            }
            let sk = zip(xNew, x).map { $0 - $1 }, yk = zip(gNew, g).map { $0 - $1 }
            let sy = dot(sk, yk)
            if sy > 1e-12 {
                s.append(sk); y.append(yk); rho.append(1 / sy)
                if s.count > m { s.removeFirst(); y.removeFirst(); rho.removeFirst() }
            }
            let improvement = fx - fNew
            (x, g, fx) = (xNew, gNew, fNew)
            if improvement.magnitude <= tolerance * max(1, fx.magnitude) { break }
        }
        return x
    }

    static func dot(_ a: [Double], _ b: [Double]) -> Double {
        var s = 0.0
        for i in a.indices { s += a[i] * b[i] }
        return s
    }
}

/// A sparse feature vector: (index, value) pairs.
public typealias SparseVector = [(index: Int, value: Double)]

/// Binary logistic regression over sparse features with an L2 penalty, fitted by L-BFGS; with
/// `balanced`, each class carries half the total weight (for skewed labels and macro-F1).
public struct SparseLogisticRegression: Sendable, Codable, Equatable {
    public var weights: [Double]
    public var intercept: Double

    public init(weights: [Double], intercept: Double) { (self.weights, self.intercept) = (weights, intercept) }

    public static func fit(_ x: [SparseVector], _ y: [Bool], dimension: Int, l2: Double = 1e-4, balanced: Bool = true) -> SparseLogisticRegression {
        let n = Double(x.count)
        let positives = Double(y.filter { $0 }.count)
        let wPos = balanced ? n / (2 * max(positives, 1)) : 1, wNeg = balanced ? n / (2 * max(n - positives, 1)) : 1
        let solution = LBFGS.minimize(dimension: dimension + 1) { beta, gradient in
            for j in gradient.indices { gradient[j] = 0 }
            var loss = 0.0
            for (row, label) in zip(x, y) {
                var z = beta[dimension]
                for (i, v) in row { z += beta[i] * v }
                let p = sigmoid(z), w = label ? wPos : wNeg
                loss -= w * (label ? log(max(p, 1e-300)) : log(max(1 - p, 1e-300)))
                let r = w * (p - (label ? 1 : 0))
                for (i, v) in row { gradient[i] += r * v }
                gradient[dimension] += r
            }
            loss /= n
            for j in 0..<dimension {
                gradient[j] = gradient[j] / n + l2 * beta[j]
                loss += 0.5 * l2 * beta[j] * beta[j]
            }
            gradient[dimension] /= n
            return loss
        }
        return SparseLogisticRegression(weights: Array(solution[0..<dimension]), intercept: solution[dimension])
    }

    public func probability(_ x: SparseVector) -> Double {
        var z = intercept
        for (i, v) in x where i < weights.count { z += weights[i] * v }
        return sigmoid(z)
    }
}
