import AisleCore
import AisleText
import ArgumentParser
import Foundation

struct ModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model", abstract: "Manage the on-box models.", subcommands: [List.self, Show.self, Rollback.self, Import.self, Export.self, Quantize.self, Check.self])

    struct Quantize: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the int8 encoder from the float32 model (docs/INT8-MODEL.md).",
            discussion: """
                Reads the model that tools/fetch-model unpacked ($AISLE_MODEL_CACHE, default \
                ~/.cache/aisle/models) and writes int8 weights with per-channel scales.

                Example: aislectl model quantize --out /var/lib/aisle/models/all-MiniLM-L6-v2/minilm-int8.safetensors
                """)
        @Option(help: ArgumentHelp("The int8 model file to write.", valueName: "FILE"))
        var out: String = EncoderChoice.defaultInt8Path
        @Flag(help: "Do nothing when FILE is already a valid int8 model of the current float32 weights.")
        var ifNeeded = false
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                struct Out: Encodable { var file: String; var bytes: Int; var sourceSha256: String; var seconds: Double; var written: Bool }
                if ifNeeded, let existing = try? BertInt8(path: out), existing.sourceSHA256 == (try Int8ModelFile.sourceDigest(.default)) {
                    let bytes = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
                    if output.json { return try printJSON(Out(file: out, bytes: bytes, sourceSha256: existing.sourceSHA256, seconds: 0, written: false)) }
                    return print("\(out) is up to date (\(existing.version))")
                }
                let started = Date()
                let bytes = try Int8ModelFile.quantize(from: .default, to: URL(fileURLWithPath: out))
                let model = try BertInt8(path: out)
                let result = Out(file: out, bytes: bytes, sourceSha256: model.sourceSHA256, seconds: Date().timeIntervalSince(started), written: true)
                if output.json { try printJSON(result) } else {
                    print("wrote \(out): \(bytes.formatted()) bytes, from source \(model.sourceSHA256.prefix(16))…, in \(String(format: "%.1f", result.seconds)) s")
                }
            }
        }
    }
}

extension ModelCommand {
    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check an int8 model file and the vocabulary beside it, as the agent would load them.",
            discussion: """
                Exit 0 when the agent would take the file, 1 with the reason when it would refuse it. \
                Run it before `systemctl reload aisled`.

                Example: aislectl model check /var/lib/aisle/models/all-MiniLM-L6-v2/minilm-int8.safetensors
                """)
        @Argument(help: ArgumentHelp("The int8 model file.", valueName: "FILE")) var file: String = EncoderChoice.defaultInt8Path
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let model = try TextModel.load(path: file, threads: 1)
                let probe = model.encoder.embed(model.tokenizer.encode("aisle model check"))
                guard probe.count == model.encoder.dimensions, probe.allSatisfy(\.isFinite) else { throw CLIError("\(file): the model computes non-finite embeddings") }
                struct Out: Encodable { var file: String; var model: String; var kernel: String; var sourceSha256: String; var vocabulary: Int }
                let result = Out(file: file, model: model.encoder.version, kernel: model.encoder.kernel.rawValue, sourceSha256: model.encoder.sourceSHA256, vocabulary: model.tokenizer.size)
                if output.json { try printJSON(result) } else {
                    print("ok: \(file)\n  model \(result.model), kernel \(result.kernel), \(result.vocabulary) words")
                }
            }
        }
    }
}

/// Which encoder to run.
enum EncoderChoice {
    static var defaultInt8Path: String { ModelFiles.default.int8Weights.path }
}

struct EmbedCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "embed",
        abstract: "Embed texts with the on-box encoder.",
        discussion: """
            Reads JSON Lines {"id","text"} and writes {"id","embedding":[…]} (384 floats, L2-normalised), \
            32 texts per packed batch, \
            plus "input_ids" with --with-ids. Lines that are not such objects are reported with their \
            line number and skipped; exit 3 if any were.

            Example: aislectl embed --in titles.jsonl --out titles-emb.jsonl --precision int8
            """)

    enum Precision: String, ExpressibleByArgument { case int8, fp32 }

    @Option(name: .customLong("in"), help: ArgumentHelp("Input JSON Lines.", valueName: "FILE")) var input: String
    @Option(name: .customLong("out"), help: ArgumentHelp("Output JSON Lines.", valueName: "FILE")) var output: String
    @Option(help: "int8 (the int8 model file, made by `aislectl model quantize`) or fp32.") var precision: Precision = .int8
    @Option(help: ArgumentHelp("The int8 model file.", valueName: "FILE")) var model: String = EncoderChoice.defaultInt8Path
    @Flag(help: "Also write the token ids.") var withIds = false

    func run() throws {
        try reporting {
            // The int8 model's own vocabulary, beside its file (checked against it), as the agent reads it.
            let (tokenizer, encoder): (WordPieceTokenizer, any SentenceEncoder) = switch precision {
            case .fp32: (try WordPieceTokenizer(vocabulary: ModelFiles.default.vocabulary), try BertFP32(files: .default))
            case .int8: try { let m = try TextModel.load(path: model, threads: 1); return (m.tokenizer, m.encoder) }()
            }
            let text = try String(contentsOfFile: input, encoding: .utf8)
            // Written beside it and renamed when whole: a crash leaves no file of some lines.
            let temporary = try DurableFile.createTemporary(for: output)
            let out = temporary.handle
            defer { try? out.close(); unlink(temporary.path) }
            var bad = 0
            var pending: [(id: String, ids: [Int32])] = []
            func flush() {
                for (item, vector) in zip(pending, encoder.embed(batch: pending.map(\.ids))) {
                    var json = "{\"id\":\(jsonString(item.id)),\"embedding\":[" + vector.map { "\($0)" }.joined(separator: ",") + "]"
                    if withIds { json += ",\"input_ids\":[" + item.ids.map(String.init).joined(separator: ",") + "]" }
                    out.write(Data((json + "}\n").utf8))
                }
                pending.removeAll()
            }
            // On the byte 0x0A, a trailing 0x0D dropped: "\r\n" is one Character (a Windows file
            // split on "\n" was one line), and U+2028 may stand inside a JSON string.
            let lines = text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false).map { String(decoding: $0.last == 0x0D ? $0.dropLast() : $0, as: UTF8.self) }
            for (n, line) in lines.enumerated() where !line.isEmpty {
                guard case .object(let o)? = try? JSONParser.parse(Array(line.utf8)), case .string(let t)? = o["text"] else {
                    FileHandle.standardError.write(Data("\(input):\(n + 1): expected {\"id\",\"text\"}\n".utf8))
                    bad += 1
                    continue
                }
                let id: String = switch o["id"] {
                case .string(let s)?: s
                case .int(let v)?: String(v)
                default: String(n + 1)
                }
                pending.append((id, tokenizer.encode(t)))
                if pending.count == 32 { flush() }
            }
            flush()
            try DurableFile.commit(temporary, to: output)
            if bad > 0 { throw ExitCode(3) }
        }
    }

    func jsonString(_ s: String) -> String {
        String(decoding: (try? JSONEncoder().encode(s)) ?? Data("\"\"".utf8), as: UTF8.self)
    }
}
