import CAisleKernels
import Foundation

/// The int8 matrix kernel: chosen once from what the CPU supports, or forced with the
/// environment variable `AISLE_KERNEL` (`scalar`, `avx2`, `avx512-vnni`, `neon`).
public enum Int8Kernel: String, CaseIterable, Sendable {
    case scalar
    case avx2
    case avx512VNNI = "avx512-vnni"
    case neon

    var c: aisle_kernel {
        switch self {
        case .scalar: AISLE_KERNEL_SCALAR
        case .avx2: AISLE_KERNEL_AVX2
        case .avx512VNNI: AISLE_KERNEL_AVX512_VNNI
        case .neon: AISLE_KERNEL_NEON
        }
    }

    /// Whether this CPU runs it.
    public var isAvailable: Bool { aisle_kernel_available(c) != 0 }

    /// The fastest kernel here.
    public static var best: Int8Kernel {
        allCases.first { $0.c == aisle_kernel_best() } ?? .scalar
    }

    /// `AISLE_KERNEL` if set (refused when unknown or unsupported here), else ``best``.
    public static func selected(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Int8Kernel {
        guard let name = environment["AISLE_KERNEL"], !name.isEmpty else { return best }
        guard let k = Int8Kernel(rawValue: name) else {
            throw TensorFileError(path: "AISLE_KERNEL", reason: "unknown kernel '\(name)'; one of \(allCases.map(\.rawValue).joined(separator: ", "))")
        }
        guard k.isAvailable else { throw TensorFileError(path: "AISLE_KERNEL", reason: "this CPU cannot run \(name)") }
        return k
    }

    /// C[m×n] = A[m×k] · B[n×k]ᵀ, int8 in [-127, 127], int32 out.
    public func gemm(m: Int, n: Int, k: Int, a: UnsafePointer<Int8>, b: UnsafePointer<Int8>, c out: UnsafeMutablePointer<Int32>) {
        aisle_gemm_s8(c, Int32(m), Int32(n), Int32(k), a, b, out)
    }
}

/// An int8 weight matrix packed once for the AVX-512 VNNI micro-kernel (see `aisle_pack_b`).
struct PackedInt8Matrix: Sendable {
    let rows: Int
    let columns: Int
    private let data: [Int8]
    private let sums: [Int32]

    /// Packs `b` (`rows × columns`) when the VNNI kernel is in use and fits; nil otherwise.
    init?(_ b: UnsafeBufferPointer<Int8>, rows: Int, columns: Int, kernel: Int8Kernel) {
        guard kernel == .avx512VNNI, columns <= Int(AISLE_PACKED_K_MAX), let base = b.baseAddress else { return nil }
        self.rows = rows
        self.columns = columns
        var data = [Int8](repeating: 0, count: aisle_packed_size(Int32(rows), Int32(columns)))
        var sums = [Int32](repeating: 0, count: rows)
        data.withUnsafeMutableBufferPointer { d in
            sums.withUnsafeMutableBufferPointer { s in aisle_pack_b(Int32(rows), Int32(columns), base, d.baseAddress, s.baseAddress) }
        }
        self.data = data
        self.sums = sums
    }

    /// C[m×rows] = A[m×columns] · thisᵀ.
    func gemm(m: Int, a: UnsafePointer<Int8>, c: UnsafeMutablePointer<Int32>) {
        data.withUnsafeBufferPointer { d in
            sums.withUnsafeBufferPointer { s in
                aisle_gemm_s8_packed(Int32(m), Int32(rows), Int32(columns), a, d.baseAddress, s.baseAddress, c)
            }
        }
    }
}
