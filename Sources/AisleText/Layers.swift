import COpenBLAS
import Foundation

/// A linear layer `y = x·Wᵀ + b` with `W` stored `[out, in]`, multiplied on OpenBLAS.
struct DenseF32 {
    let weight: UnsafeBufferPointer<Float>
    let bias: UnsafeBufferPointer<Float>
    let inputs: Int
    let outputs: Int

    init(_ file: SafeTensors, _ name: String, inputs: Int, outputs: Int) throws {
        weight = try file.float32("\(name).weight", shape: [outputs, inputs])
        bias = try file.float32("\(name).bias", shape: [outputs])
        self.inputs = inputs
        self.outputs = outputs
    }

    /// `x` is `rows × inputs`, `y` is `rows × outputs`, both row-major.
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>) {
        for r in 0..<rows { (y + r * outputs).update(from: bias.baseAddress!, count: outputs) }
        cblas_sgemm(
            CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outputs), Int32(inputs),
            1, x, Int32(inputs), weight.baseAddress, Int32(inputs), 1, y, Int32(outputs))
    }
}

/// Layer normalisation over the last dimension.
struct LayerNormF32 {
    let gamma: UnsafeBufferPointer<Float>
    let beta: UnsafeBufferPointer<Float>
    let epsilon: Float

    init(_ file: SafeTensors, _ name: String, size: Int, epsilon: Float) throws {
        gamma = try file.float32("\(name).weight", shape: [size])
        beta = try file.float32("\(name).bias", shape: [size])
        self.epsilon = epsilon
    }

    func apply(_ x: UnsafeMutablePointer<Float>, rows: Int) {
        let n = gamma.count
        for r in 0..<rows {
            let row = x + r * n
            var mean: Float = 0
            for i in 0..<n { mean += row[i] }
            mean /= Float(n)
            var variance: Float = 0
            for i in 0..<n { let d = row[i] - mean; variance += d * d }
            let scale = 1 / (variance / Float(n) + epsilon).squareRoot()
            for i in 0..<n { row[i] = (row[i] - mean) * scale * gamma[i] + beta[i] }
        }
    }
}
