import Foundation
import Synchronization

/// Multinomial logistic regression over sparse features with an L2 penalty, fitted by full-batch
/// Adam (Kingma & Ba 2015) — deterministic for the same data. Training works on the features the
/// rows touch only, so a hashed space of any size costs what the data uses.
public struct SoftmaxRegression: Sendable, Equatable {
    public let classes: Int
    /// Features: indices `0..<dimension`.
    public let dimension: Int
    /// Each feature's row in `table`, -1 when all its weights are 0.
    let rowOf: [Int32]
    /// Per row, the classes' weights (float32: what the model files hold).
    var table: [Float]
    /// Each row's feature.
    let features: [Int32]
    public let intercepts: [Double]

    /// From stored columns: `columns[c][r]` is class `c`'s weight of feature `features[r]`.
    public init(dimension: Int, features columnFeatures: [Int], columns: [[Float]], intercepts: [Double]) {
        let k = columns.count
        var rowOf = [Int32](repeating: -1, count: dimension), table: [Float] = [], features: [Int32] = []
        for (r, j) in columnFeatures.enumerated() where j < dimension && columns.contains(where: { $0[r] != 0 }) {
            rowOf[j] = Int32(features.count)
            features.append(Int32(j))
            for c in 0..<k { table.append(columns[c][r]) }
        }
        self.init(classes: k, dimension: dimension, rowOf: rowOf, table: table, features: features, intercepts: intercepts)
    }

    init(classes: Int, dimension: Int, rowOf: [Int32], table: [Float], features: [Int32], intercepts: [Double]) {
        (self.classes, self.dimension, self.rowOf, self.table, self.features, self.intercepts) = (classes, dimension, rowOf, table, features, intercepts)
    }

    /// Class `c`'s weights, one per feature.
    public func weights(ofClass c: Int) -> [Double] {
        var out = [Double](repeating: 0, count: dimension)
        for (row, j) in features.enumerated() { out[Int(j)] = Double(table[row * classes + c]) }
        return out
    }

    /// The same model reading features from `start` on multiplied by `factor` (their weights
    /// scaled by it).
    public func scaled(from start: Int, by factor: Double) -> SoftmaxRegression {
        var out = self
        for (row, j) in features.enumerated() where Int(j) >= start {
            for c in 0..<classes { out.table[row * classes + c] *= Float(factor) }
        }
        return out
    }

    public static func fit(
        _ x: [SparseVector], _ y: [Int], classes k: Int, dimension: Int, l2: Double = 1e-3, epochs: Int = 300, learningRate: Double = 0.05
    ) -> SoftmaxRegression {
        let used = Array(Set(x.flatMap { $0.map(\.index) })).sorted()
        let column = Dictionary(uniqueKeysWithValues: used.enumerated().map { ($1, $0) })
        let rows = x.map { $0.map { (column[$0.index] ?? 0, $0.value) } }
        let n = rows.count, d = used.count, size = (d + 1) * k  // the last k are the intercepts
        var w = [Double](repeating: 0, count: size), m = w, v = w
        // Two partial gradients, whatever the machine: two sums add alike in either order (three
        // or more would not), so the same data gives the same bytes anywhere.
        let parts = 2
        for t in 1...epochs {
            let gradient = Mutex([Double](repeating: 0, count: size))
            let frozen = w
            DispatchQueue.concurrentPerform(iterations: parts) { part in
                var g = [Double](repeating: 0, count: size), z = [Double](repeating: 0, count: k)
                for r in stride(from: part, to: n, by: parts) {
                    for c in 0..<k { z[c] = frozen[d * k + c] }
                    for (j, value) in rows[r] { for c in 0..<k { z[c] += frozen[j * k + c] * value } }
                    let top = z.max() ?? 0
                    var total = 0.0
                    for c in 0..<k { z[c] = exp(z[c] - top); total += z[c] }
                    for c in 0..<k { z[c] = (z[c] / total - (c == y[r] ? 1 : 0)) / Double(n) }
                    for (j, value) in rows[r] { for c in 0..<k { g[j * k + c] += z[c] * value } }
                    for c in 0..<k { g[d * k + c] += z[c] }
                }
                gradient.withLock { sum in for i in 0..<size { sum[i] += g[i] } }
            }
            let g = gradient.withLock { $0 }
            let (b1, b2) = (1 - pow(0.9, Double(t)), 1 - pow(0.999, Double(t)))
            for i in 0..<size {
                let gi = g[i] + (i < d * k ? l2 * w[i] : 0)
                m[i] = 0.9 * m[i] + 0.1 * gi
                v[i] = 0.999 * v[i] + 0.001 * gi * gi
                w[i] -= learningRate * (m[i] / b1) / ((v[i] / b2).squareRoot() + 1e-8)
            }
        }
        var rowOf = [Int32](repeating: -1, count: dimension), table: [Float] = [], features: [Int32] = []
        for (j, index) in used.enumerated() where index < dimension && (0..<k).contains(where: { w[j * k + $0] != 0 }) {
            rowOf[index] = Int32(features.count)
            features.append(Int32(index))
            for c in 0..<k { table.append(Float(w[j * k + c])) }
        }
        return SoftmaxRegression(classes: k, dimension: dimension, rowOf: rowOf, table: table, features: features, intercepts: (0..<k).map { w[d * k + $0] })
    }

    /// Class probabilities of one row.
    public func probabilities(_ x: SparseVector) -> [Double] {
        var z = intercepts
        for (i, value) in x where i < dimension {
            let row = Int(rowOf[i])
            guard row >= 0 else { continue }
            for c in 0..<classes { z[c] += Double(table[row * classes + c]) * value }
        }
        let top = z.max() ?? 0
        let e = z.map { exp($0 - top) }
        let total = e.reduce(0, +)
        return e.map { $0 / total }
    }
}
