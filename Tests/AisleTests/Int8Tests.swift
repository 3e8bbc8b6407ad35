import AisleCore
import CAisleKernels
@testable import AisleText
import Crypto
import Foundation
import Testing

@Suite(.serialized) struct Int8Tests {
    /// Every kernel this CPU runs gives exactly the scalar kernel's int32 results (the others
    /// are checked where they run: NEON on aarch64).
    @Test(arguments: Int8Kernel.allCases.filter(\.isAvailable))
    func kernelMatchesScalar(kernel: Int8Kernel) throws {
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

    /// The fused dense layer (int8 product, rescale, bias, epilogue) gives bit-identical floats on
    /// every kernel this CPU runs — the packed AVX-512 VNNI tiles included — whether its columns
    /// are computed at once or split in panels as threads split them, and matches the arithmetic
    /// done by hand.
    @Test(arguments: Int8Kernel.allCases.filter(\.isAvailable))
    func denseLayerMatchesScalar(kernel: Int8Kernel) {
        var rng = SystemRandomNumberGenerator()
        for (m, n, k) in [(1, 1, 1), (3, 5, 31), (7, 70, 64), (9, 129, 385), (17, 64, 1536), (5, 384, 1536), (13, 1152, 384)] {
            let a = (0..<m * k).map { _ in Int8.random(in: -127...127, using: &rng) }
            let b = (0..<n * k).map { _ in Int8.random(in: -127...127, using: &rng) }
            let rowScales = (0..<m).map { _ in Float.random(in: 0.001...0.1, using: &rng) }
            let scales = (0..<n).map { _ in Float.random(in: 0.001...0.1, using: &rng) }
            let bias = (0..<n).map { _ in Float.random(in: -1...1, using: &rng) }
            let start = (0..<m * n).map { _ in Float.random(in: -1...1, using: &rng) }
            for mode in [AISLE_EPILOGUE_STORE, AISLE_EPILOGUE_GELU, AISLE_EPILOGUE_ACCUMULATE] {
                let expected = dense(.scalar, m, n, k, a, b, rowScales, scales, bias, start, mode, panels: [0..<n])
                let split = stride(from: 0, to: n, by: 64).map { $0..<min(n, $0 + 128) }.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
                #expect(dense(kernel, m, n, k, a, b, rowScales, scales, bias, start, mode, panels: [0..<n]) == expected, "\(kernel) m=\(m) n=\(n) k=\(k) \(mode)")
                #expect(dense(kernel, m, n, k, a, b, rowScales, scales, bias, start, mode, panels: split) == expected, "\(kernel) split m=\(m) n=\(n) k=\(k)")
                // By hand, for the last column of the last row.
                let (r, j) = (m - 1, n - 1)
                let dot = (0..<k).reduce(Int32(0)) { $0 + Int32(a[r * k + $1]) * Int32(b[j * k + $1]) }
                let v = Float(dot) * (rowScales[r] * scales[j]) + bias[j]
                let want: Float = switch mode {
                case AISLE_EPILOGUE_GELU: 0.5 * v * (1 + erff(v * 0.70710678118654752))
                case AISLE_EPILOGUE_ACCUMULATE: start[r * n + j] + v
                default: v
                }
                #expect(abs(expected[r * n + j] - want) <= 1e-5 * max(1, abs(want)))
            }
        }
    }

    /// Runs the dense layer on `kernel` over the given column panels (each starting on a multiple of 64).
    func dense(
        _ kernel: Int8Kernel, _ m: Int, _ n: Int, _ k: Int, _ a: [Int8], _ b: [Int8], _ rowScales: [Float], _ scales: [Float],
        _ bias: [Float], _ start: [Float], _ mode: aisle_epilogue, panels: [Range<Int>]
    ) -> [Float] {
        var y = start
        var packed = [Int8](repeating: 0, count: aisle_packed_size(Int32(n), Int32(k)))
        var sums = [Int32](repeating: 0, count: (n + 63) / 64 * 64)
        var shifted = [UInt8](repeating: 0, count: aisle_shifted_size(Int32(m), Int32(k)))
        let usePacked = kernel == .avx512VNNI
        if usePacked {
            aisle_pack_b(Int32(n), Int32(k), b, &packed, &sums)
            aisle_shift_rows(Int32(m), Int32(k), a, &shifted)
        }
        b.withUnsafeBufferPointer { b in
        packed.withUnsafeBufferPointer { p in
        sums.withUnsafeBufferPointer { s in
        scales.withUnsafeBufferPointer { sc in
        bias.withUnsafeBufferPointer { bi in
            var layer = aisle_dense(
                kernel: kernel.c, n: Int32(n), k: Int32(k), b: b.baseAddress, packed: usePacked ? p.baseAddress : nil,
                sums: s.baseAddress, scales: sc.baseAddress, bias: bi.baseAddress)
            for panel in panels {
                if usePacked {
                    aisle_dense_apply(&layer, Int32(m), shifted, rowScales, &y, Int32(panel.lowerBound), Int32(panel.upperBound), mode)
                } else {
                    aisle_dense_apply(&layer, Int32(m), a, rowScales, &y, Int32(panel.lowerBound), Int32(panel.upperBound), mode)
                }
            }
        } } } } }
        if panels.count > 1 {  // columns no panel covered keep their start values; compare only covered ones
            for r in 0..<m { for j in 0..<n where !panels.contains(where: { $0.contains(j) }) { y[r * n + j] = .nan } }
        }
        return panels.count > 1 ? y.map { $0.isNaN ? 0 : $0 } : y
    }

    /// The GELU's error function is within 1e-6 of libm's over the range that matters.
    @Test func erfApproximation() {
        var worst: Float = 0
        for i in -60_000...60_000 {
            let x = Float(i) / 10_000
            worst = max(worst, abs(aisle_erf(x) - erff(x)))
        }
        #expect(worst <= 1e-6, "max |erf error| \(worst)")
    }

    /// Attention of one sequence equals softmax(Q·Kᵀ/√d)·V computed naively in double precision.
    @Test func attentionMatchesNaive() {
        var rng = SystemRandomNumberGenerator()
        let (t, heads, d) = (11, 3, 32)
        let ld = 3 * heads * d
        let qkv = (0..<t * ld).map { _ in Float.random(in: -2...2, using: &rng) }
        var ctx = [Float](repeating: 0, count: t * heads * d)
        var scratch = [Float](repeating: 0, count: aisle_attention_scratch(Int32(t), Int32(d)))
        qkv.withUnsafeBufferPointer { p in
            let q = p.baseAddress!
            aisle_attention(Int32(t), Int32(d), 0, Int32(heads), q, q + heads * d, q + 2 * heads * d, Int32(ld), &ctx, Int32(heads * d), &scratch)
        }
        for h in 0..<heads {
            for i in 0..<t {
                let s = (0..<t).map { j in (0..<d).reduce(0.0) { $0 + Double(qkv[i * ld + h * d + $1]) * Double(qkv[j * ld + heads * d + h * d + $1]) } / Double(d).squareRoot() }
                let e = s.map { exp($0 - (s.max() ?? 0)) }
                let total = e.reduce(0, +)
                for c in 0..<d {
                    let want = (0..<t).reduce(0.0) { $0 + e[$1] / total * Double(qkv[$1 * ld + 2 * heads * d + h * d + c]) }
                    #expect(abs(Double(ctx[i * heads * d + h * d + c]) - want) < 1e-4)
                }
            }
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
        // Two threads split the work but not the arithmetic: the same floats, alone or in a batch.
        let twoThreads = try BertInt8(path: path.path, threads: 2)
        #expect(sample.map { twoThreads.embed($0.ids) } == best)
        #expect(twoThreads.embed(batch: sample.map(\.ids)) == best)
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

    /// The CLI: quantise, skip when up to date, check a good file, refuse a bad one with the reason.
    @Test(.enabled(if: TestSupport.shared != nil, "needs the model"))
    func quantizeAndCheckCommands() throws {
        let dir = try TestSupport.temporaryDirectory()
        let out = dir.appendingPathComponent("m.safetensors").path
        let first = try TestSupport.run("aislectl", ["model", "quantize", "--out", out, "--if-needed"])
        #expect(first.status == 0 && first.out.contains("wrote"), "\(first.err)")
        let again = try TestSupport.run("aislectl", ["model", "quantize", "--out", out, "--if-needed"])
        #expect(again.status == 0 && again.out.contains("is up to date"), "\(again.err)")
        // `embed --model FILE` reads the vocabulary beside FILE, not the model cache's.
        try FileManager.default.copyItem(at: ModelFiles.default.vocabulary, to: dir.appendingPathComponent("vocab.txt"))
        // Windows line ends: two lines, both embedded (a "\r\n" is one Character in Swift).
        try TestSupport.write(#"{"id":"a","text":"red mug"}"# + "\r\n" + #"{"id":"b","text":"blue mug"}"# + "\r\n", to: dir.appendingPathComponent("in.jsonl"))
        var environment = ProcessInfo.processInfo.environment
        environment["AISLE_MODEL_CACHE"] = dir.appendingPathComponent("empty").path
        let embedded = try TestSupport.run("aislectl", ["embed", "--in", dir.appendingPathComponent("in.jsonl").path, "--out", dir.appendingPathComponent("out.jsonl").path, "--model", out], environment: environment)
        #expect(embedded.status == 0, "\(embedded.err)")
        #expect(try String(contentsOf: dir.appendingPathComponent("out.jsonl"), encoding: .utf8).split(separator: "\n").count == 2)
        struct Quantized: Decodable { var file: String; var written: Bool }
        let json = try TestSupport.run("aislectl", ["model", "quantize", "--out", out, "--if-needed", "--json"])
        #expect(try JSONDecoder().decode(Quantized.self, from: Data(json.out.utf8)).written == false, "\(json.out)")
        let check = try TestSupport.run("aislectl", ["model", "check", out])
        #expect(check.status == 0 && check.out.contains("ok:"), "\(check.err)")
        var bytes = try Data(contentsOf: URL(fileURLWithPath: out))
        bytes[bytes.count - 10] ^= 0x01
        try bytes.write(to: URL(fileURLWithPath: out))
        let bad = try TestSupport.run("aislectl", ["model", "check", out])
        #expect(bad.status == 1 && bad.err.contains("corrupt"), "\(bad.err)")
    }

    /// Copies the int8 model file at `source` to `destination` with its tensors' bytes and its
    /// metadata changed as asked, and the content hash made right for the new bytes.
    static func rewrite(_ source: URL, to destination: URL, metadata change: (inout [String: String]) -> Void = { _ in },
                        tensor: (String, inout Data) -> Void = { _, _ in }) throws {
        let file = try SafeTensors(path: source.path)
        let tensors = file.entries.sorted { $0.key < $1.key }.map { name, e in
            var data = Data(file.dataSection[e.range])
            tensor(name, &data)
            return (name: name, dtype: e.dtype, shape: e.shape, data: data)
        }
        var metadata = file.metadata
        change(&metadata)
        for _ in 0..<2 {  // the second time with the content hash of the first's data
            try SafeTensors.write(tensors, metadata: metadata, to: destination)
            let written = try SafeTensors(path: destination.path)
            metadata["content_sha256"] = Hex.string(SHA256.hash(data: written.dataSection))
        }
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

        // A weight of -128 (another quantiser's range), in a file whose hashes are right: the
        // AVX2 and VNNI kernels could not negate it, so the file is refused by name.
        let target = "encoder.layer.0.attention.self.key.weight"
        let minus128 = dir.appendingPathComponent("minus128.safetensors")
        try Self.rewrite(path, to: minus128, tensor: { name, data in if name == target { data[data.startIndex + 5] = 0x80 } })
        #expect { try BertInt8(path: minus128.path) } throws: { "\($0)".contains("\(target) holds -128") }
        // The same source quantised into other bytes: the same version (classifiers made with one
        // work with the other), but not the same cached embeddings.
        let requantised = dir.appendingPathComponent("requantised.safetensors")
        try Self.rewrite(path, to: requantised, tensor: { name, data in if name == target { data[data.startIndex + 5] = data[data.startIndex + 5] == 0 ? 1 : 0 } })
        let (original, other) = (try BertInt8(path: path.path), try BertInt8(path: requantised.path))
        #expect(original.version == other.version && original.cacheKey != other.cacheKey)
    }
}
