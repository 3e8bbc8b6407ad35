import AisleCore
import AisleText
import ArgumentParser
import Foundation

/// Times the on-box encoder the way tools/bench/onnx/ort_bench.py times ONNX Runtime: tokenise
/// and encode the texts of a JSON Lines file in order, `--batch` at a time, and print one JSON
/// line: texts per second (median over `--runs` passes) and the median time of one batch.
@main
struct EncoderBench: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "aisle-encoder-bench", abstract: "Time the on-box sentence encoder.")

    enum Precision: String, ExpressibleByArgument { case int8, fp32 }

    @Argument(help: "JSON Lines {\"id\",\"text\"}.") var texts: String
    @Option var precision: Precision = .int8
    @Option(help: "The int8 model file (default: minilm-int8.safetensors in the model cache).") var model: String?
    @Option var threads = 1
    @Option var batch = 32
    @Option var runs = 3

    func validate() throws {
        guard threads >= 1, batch >= 1, runs >= 1 else { throw ValidationError("--threads, --batch and --runs: need at least 1") }
    }

    func run() throws {
        let files = ModelFiles.default
        let tokenizer = try WordPieceTokenizer(vocabulary: files.vocabulary)
        let encoder: any SentenceEncoder = switch precision {
        case .fp32: try BertFP32(files: files, threads: threads)
        case .int8: try BertInt8(path: model ?? files.int8Weights.path, threads: threads)
        }
        let lines = try String(contentsOfFile: texts, encoding: .utf8).split(separator: "\n")
        let inputs: [String] = try lines.enumerated().map { n, line in
            guard case .object(let o)? = try? JSONParser.parse(Array(line.utf8)), case .string(let t)? = o["text"] else {
                throw ValidationError("\(texts):\(n + 1): expected {\"id\",\"text\"}")
            }
            return t
        }
        _ = encoder.embed(batch: inputs.prefix(8).map { tokenizer.encode($0) })  // warm-up
        var rates: [Double] = []
        var latencies: [Double] = []
        let clock = ContinuousClock()
        for _ in 0..<runs {
            let start = clock.now
            for i in stride(from: 0, to: inputs.count, by: batch) {
                let t0 = clock.now
                _ = encoder.embed(batch: inputs[i..<min(i + batch, inputs.count)].map { tokenizer.encode($0) })
                latencies.append(milliseconds(clock.now - t0))
            }
            rates.append(Double(inputs.count) / (milliseconds(clock.now - start) / 1000))
        }
        let label = "aisle-\(precision.rawValue)"
        print("{\"label\": \"\(label)\", \"threads\": \(threads), \"batch\": \(batch), \"texts\": \(inputs.count), \"texts_per_second\": \(round1(median(rates))), \"median_ms\": \(round3(median(latencies)))}")
    }

    func milliseconds(_ d: Duration) -> Double { Double(d.components.seconds) * 1000 + Double(d.components.attoseconds) / 1e15 }
    func median(_ v: [Double]) -> Double {
        let s = v.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
    func round1(_ v: Double) -> Double { (v * 10).rounded() / 10 }
    func round3(_ v: Double) -> Double { (v * 1000).rounded() / 1000 }
}
