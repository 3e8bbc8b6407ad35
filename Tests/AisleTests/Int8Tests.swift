import AisleCore
@testable import AisleText
import Foundation
import Testing

@Suite(.serialized) struct Int8Tests {
    /// Every kernel this CPU runs gives exactly the scalar kernel's int32 results.
    @Test(arguments: Int8Kernel.allCases)
    func kernelMatchesScalar(kernel: Int8Kernel) throws {
        try #require(kernel.isAvailable || kernel == .neon || kernel == .avx512VNNI || kernel == .avx2)
        guard kernel.isAvailable else { return }  // not this CPU; the others are checked where they run
        var rng = SystemRandomNumberGenerator()
        for (m, n, k) in [(1, 1, 1), (3, 5, 31), (7, 70, 64), (9, 129, 385), (17, 64, 1536), (2, 3, 1000)] {
            let a = (0..<m * k).map { _ in Int8.random(in: -127...127, using: &rng) }
            let b = (0..<n * k).map { _ in Int8.random(in: -127...127, using: &rng) }
            var expected = [Int32](repeating: 0, count: m * n)
            var got = expected
            Int8Kernel.scalar.gemm(m: m, n: n, k: k, a: a, b: b, c: &expected)
            kernel.gemm(m: m, n: n, k: k, a: a, b: b, c: &got)
            #expect(got == expected, "\(kernel) differs at m=\(m) n=\(n) k=\(k)")
            // And the scalar kernel is right: spot-check one entry by hand.
            let direct = (0..<k).reduce(Int32(0)) { $0 + Int32(a[$1]) * Int32(b[(n - 1) * k + $1]) }
            #expect(expected[n - 1] == direct)
        }
    }

    /// The packed AVX-512 VNNI micro-kernel gives exactly the scalar results.
    @Test(.enabled(if: Int8Kernel.avx512VNNI.isAvailable, "needs AVX-512 VNNI"))
    func packedKernelMatchesScalar() throws {
        var rng = SystemRandomNumberGenerator()
        for (m, n, k) in [(1, 1, 1), (3, 5, 31), (7, 70, 64), (9, 129, 385), (17, 64, 1536), (5, 384, 1536), (2, 3, 1000)] {
            let a = (0..<m * k).map { _ in Int8.random(in: -127...127, using: &rng) }
            let b = (0..<n * k).map { _ in Int8.random(in: -127...127, using: &rng) }
            var expected = [Int32](repeating: 0, count: m * n)
            var got = [Int32](repeating: -1, count: m * n)
            Int8Kernel.scalar.gemm(m: m, n: n, k: k, a: a, b: b, c: &expected)
            let packed = try #require(b.withUnsafeBufferPointer { PackedInt8Matrix($0, rows: n, columns: k, kernel: .avx512VNNI) })
            a.withUnsafeBufferPointer { pa in got.withUnsafeMutableBufferPointer { pc in packed.gemm(m: m, a: pa.baseAddress!, c: pc.baseAddress!) } }
            #expect(got == expected, "packed differs at m=\(m) n=\(n) k=\(k)")
        }
    }

    @Test func kernelChoice() throws {
        #expect(try Int8Kernel.selected(environment: [:]) == .best)
        #expect(try Int8Kernel.selected(environment: ["AISLE_KERNEL": "scalar"]) == .scalar)
        #expect { try Int8Kernel.selected(environment: ["AISLE_KERNEL": "turbo"]) } throws: { "\($0)".contains("unknown kernel 'turbo'") }
        if let missing = Int8Kernel.allCases.first(where: { !$0.isAvailable }) {
            #expect { try Int8Kernel.selected(environment: ["AISLE_KERNEL": missing.rawValue]) } throws: { "\($0)".contains("cannot run") }
        }
    }

    static let quantized: Result<URL, any Error> = Result {
        let out = try TestSupport.temporaryDirectory().appendingPathComponent("minilm-int8.safetensors")
        try Int8ModelFile.quantize(from: .default, to: out)
        return out
    }

    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func int8IsCloseToTheReferenceOnEveryDevText() throws {
        let path = try Self.quantized.get()
        let size = try FileManager.default.attributesOfItem(atPath: path.path)[.size] as? Int ?? 0
        #expect(size <= 25_000_000, "int8 file is \(size) bytes")
        let model = try BertInt8(path: path.path)
        let refs = try ReferenceText.load(try #require(TestSupport.shared).appendingPathComponent("encoder/dev/reference.jsonl"))
        var cosines: [Float] = []
        for r in refs { cosines.append(cosine(model.embed(r.ids), r.embedding)) }
        let mean = cosines.reduce(0, +) / Float(cosines.count)
        let worst = cosines.min() ?? 0
        #expect(mean >= 0.995, "mean cosine \(mean)")
        #expect(worst >= 0.98, "min cosine \(worst)")
        // Every available kernel gives the same embedding.
        let sample = refs.prefix(12)
        let best = sample.map { model.embed($0.ids) }
        for kernel in Int8Kernel.allCases where kernel.isAvailable && kernel != model.kernel {
            let other = try BertInt8(path: path.path, kernel: kernel)
            #expect(sample.map { other.embed($0.ids) } == best, "\(kernel)")
        }
    }

    /// A second text set, our own: customer-service requests, int8 against our float32 encoder.
    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func int8IsCloseToFP32OnSupportRequests() throws {
        let int8 = try BertInt8(path: try Self.quantized.get().path)
        let fp32 = try BertFP32(files: .default)
        let tokenizer = try WordPieceTokenizer(vocabulary: ModelFiles.default.vocabulary)
        let file = try #require(TestSupport.shared).appendingPathComponent("splits/assist/bitext_test.jsonl")
        let lines = try String(contentsOf: file, encoding: .utf8).split(separator: "\n")
        var cosines: [Float] = []
        for line in stride(from: 0, to: lines.count, by: max(1, lines.count / 150)).map({ lines[$0] }) {
            guard case .object(let o) = try JSONParser.parse(Array(line.utf8)), case .string(let text)? = o["text"] else { continue }
            let ids = tokenizer.encode(text)
            cosines.append(cosine(int8.embed(ids), fp32.embed(ids)))
        }
        #expect(cosines.count >= 150)
        #expect(cosines.reduce(0, +) / Float(cosines.count) >= 0.995)
        #expect((cosines.min() ?? 0) >= 0.98)
    }

    @Test func damagedOrForeignModelFilesAreRefused() throws {
        let path = try Self.quantized.get()
        let dir = try TestSupport.temporaryDirectory()
        let bytes = try Data(contentsOf: path)
        let truncated = dir.appendingPathComponent("truncated.safetensors")
        try bytes.prefix(bytes.count / 2).write(to: truncated)
        #expect { try BertInt8(path: truncated.path) } throws: { "\($0)".contains("outside") }
        #expect { try BertInt8(path: ModelFiles.default.weights.path) } throws: { "\($0)".contains("not an Aisle int8 model") }
        #expect { try BertInt8(path: dir.appendingPathComponent("none").path) } throws: { "\($0)".contains("No such file") }
    }
}
