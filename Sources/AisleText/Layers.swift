import CAisleKernels
import COpenBLAS
import Foundation
import Synchronization

/// Splits work over a fixed number of threads: the caller's and `threads - 1` workers of a
/// ``WorkerPool``; with one thread the work runs inline.
struct Parallel: Sendable {
    let threads: Int
    private let pool: WorkerPool?

    init(threads: Int) {
        self.threads = max(1, threads)
        pool = self.threads > 1 ? WorkerPool(workers: self.threads - 1) : nil
    }

    /// Calls `body(part)` for every part in `0..<threads` concurrently; returns when all have.
    /// The parts must touch disjoint memory (each writes only its own share).
    func forEach(_ body: (Int) -> Void) {
        guard let pool else { return body(0) }
        pool.run(body)
    }

    /// Part `part`'s even share of `count` units.
    func share(_ part: Int, of count: Int) -> Range<Int> { count * part / threads..<count * (part + 1) / threads }

    /// Part `part`'s share of `columns` output columns, in whole panels of 64.
    func columns(_ part: Int, of columns: Int) -> Range<Int> {
        let panels = share(part, of: (columns + 63) / 64)
        return min(columns, panels.lowerBound * 64)..<min(columns, panels.upperBound * 64)
    }
}

/// A linear layer `y = x·Wᵀ + b` over float rows, however its weights are stored.
protocol LinearLayer {
    var inputs: Int { get }
    var outputs: Int { get }
    /// `x` is `rows × inputs`, `y` is `rows × outputs`, both row-major; each result goes through
    /// `epilogue` (store, GELU, or add to `y`). Output columns are split over `parallel`.
    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, _ epilogue: aisle_epilogue, parallel: Parallel)
}

/// Memory this process owns (weights built at load time: concatenated or packed), freed with it.
final class OwnedBuffer<Element>: @unchecked Sendable {
    let pointer: UnsafeMutableBufferPointer<Element>

    init(count: Int, repeating value: Element) {
        pointer = .allocate(capacity: max(1, count))
        pointer.initialize(repeating: value)
    }

    /// The parts, one after another.
    convenience init(concatenating parts: [UnsafeBufferPointer<Element>], zero: Element) {
        self.init(count: parts.reduce(0) { $0 + $1.count }, repeating: zero)
        var at = 0
        for p in parts {
            if let source = p.baseAddress { (base + at).update(from: source, count: p.count) }
            at += p.count
        }
    }

    var base: UnsafeMutablePointer<Element> { pointer.baseAddress! }

    deinit { pointer.deallocate() }
}

/// A linear layer `y = x·Wᵀ + b` with float `W` stored `[out, in]`, multiplied on OpenBLAS (one
/// OpenBLAS thread per call; ``Parallel`` splits the columns). Several layers over the same input
/// (query, key, value) can be read as one, their outputs side by side.
struct DenseF32: LinearLayer {
    let weight: OwnedBuffer<Float>
    let bias: OwnedBuffer<Float>
    let inputs: Int
    let outputs: Int

    init(_ file: SafeTensors, _ names: [String], inputs: Int, outputs: Int) throws {
        weight = OwnedBuffer(concatenating: try names.map { try file.float32("\($0).weight", shape: [outputs, inputs]) }, zero: 0)
        bias = OwnedBuffer(concatenating: try names.map { try file.float32("\($0).bias", shape: [outputs]) }, zero: 0)
        self.inputs = inputs
        self.outputs = outputs * names.count
    }

    func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>, _ epilogue: aisle_epilogue, parallel: Parallel) {
        let (n, k) = (Int32(outputs), Int32(inputs))
        parallel.forEach { part in
            let cols = parallel.columns(part, of: outputs)
            guard !cols.isEmpty else { return }
            let beta: Float = epilogue == AISLE_EPILOGUE_ACCUMULATE ? 1 : 0
            cblas_sgemm(
                CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(cols.count), k,
                1, x, k, weight.base + cols.lowerBound * inputs, k, beta, y + cols.lowerBound, n)
            aisle_bias_epilogue(Int32(rows), n, Int32(cols.lowerBound), Int32(cols.upperBound), y, bias.base, epilogue)
        }
    }
}

/// Layer normalisation over the last dimension.
struct LayerNormF32 {
    let gamma: OwnedBuffer<Float>
    let beta: OwnedBuffer<Float>
    let size: Int
    let epsilon: Float

    init(_ file: SafeTensors, _ name: String, size: Int, epsilon: Float) throws {
        gamma = OwnedBuffer(concatenating: [try file.float32("\(name).weight", shape: [size])], zero: 0)
        beta = OwnedBuffer(concatenating: [try file.float32("\(name).bias", shape: [size])], zero: 0)
        self.size = size
        self.epsilon = epsilon
    }

    func apply(_ x: UnsafeMutablePointer<Float>, rows: Int, parallel: Parallel) {
        parallel.forEach { part in
            let mine = parallel.share(part, of: rows)
            aisle_layernorm(Int32(mine.count), Int32(size), x + mine.lowerBound * size, gamma.base, beta.base, epsilon)
        }
    }
}
