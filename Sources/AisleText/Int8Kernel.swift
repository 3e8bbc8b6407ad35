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
