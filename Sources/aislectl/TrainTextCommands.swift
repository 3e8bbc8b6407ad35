import AisleAssist
import AisleCore
import AisleInsight
import AisleStore
import AisleText
import ArgumentParser
import Foundation

extension TrainCommand {
    struct Sentiment: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Review sentiment from labelled JSON Lines ({\"text\",\"label\"}, labels positive / negative).",
            discussion: """
                Character n-gram TF-IDF plus the int8 encoder's embedding (n-grams alone when the texts \
                are mostly Chinese, Japanese or Korean) into logistic regression. Reports accuracy and \
                macro-F1 on every fifth example held back, then trains on all. Registers the model in \
                the store, or with --out writes the file (`aislectl model import sentiment FILE` \
                registers it later; tools/train-default-models makes the shipped default this way).

                Example: aislectl train sentiment --data reviews.jsonl
                """)
        @OptionGroup var options: TextTrainingOptions

        func run() throws {
            try reporting {
                let started = Date()
                let texts = try LabelledTexts.load(options.data, positive: "positive", negative: "negative")
                let output = try options.output()
                let trained = try SentimentClassifier.trainWithHoldout(texts, encoderPath: options.encoder, l2: options.l2, buckets: options.buckets)
                struct Metrics: Encodable { var heldOut: Int; var accuracy: Double; var macroF1: Double; var examples: Int; var positiveShare: Double }
                let metrics = Metrics(
                    heldOut: trained.heldOut, accuracy: trained.accuracy, macroF1: trained.macroF1, examples: texts.texts.count,
                    positiveShare: Double(texts.labels.filter { $0 }.count) / Double(texts.labels.count))
                let summary = String(format: "held-out accuracy %.4f, macro-F1 %.4f (%d of %d texts)", metrics.accuracy, metrics.macroF1, metrics.heldOut, metrics.examples)
                try output.save(trained.classifier.file, kind: SentimentClassifier.kind, metrics: metrics, summary: summary, started: started)
            }
        }
    }

    struct Assist: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The assistant's request intents from labelled JSON Lines ({\"text\",\"label\"}; label oos = none of them).",
            discussion: """
                Character n-gram TF-IDF plus the int8 encoder's embedding into a multinomial logistic \
                regression over the intents. Every fifth example is held back to calibrate the confidence and choose the \
                out-of-scope threshold (the one that gets most held-back requests right when there are \
                `oos` examples; else 0.5, so a request more likely misread than read is refused), and to \
                report accuracy, macro-F1 and out-of-scope recall; then trains on all. Registers the model \
                in the store, or with --out writes the file (tools/train-default-models makes the shipped \
                default this way).

                Example: aislectl train assist --data intents.jsonl
                """)
        @OptionGroup var options: TextTrainingOptions

        func run() throws {
            try reporting {
                let started = Date()
                let examples = try LabelledExamples.load(options.data)
                let output = try options.output()
                let (classifier, metrics) = try RequestIntents.train(examples, encoderPath: options.encoder, l2: options.l2, buckets: options.buckets)
                let oos = metrics.oosRecall.map { String(format: ", out-of-scope recall %.4f", $0) } ?? ""
                let summary = String(
                    format: "%d intents; held-out accuracy %.4f, macro-F1 %.4f%@ (%d of %d texts); threshold %.3f refuses %.1f%% of in-scope",
                    classifier.intents.count, metrics.accuracy, metrics.macroF1, oos, metrics.heldOut, metrics.examples, metrics.threshold, 100 * metrics.inScopeRefused)
                try output.save(classifier.file, kind: RequestIntents.kind, metrics: metrics, summary: summary, started: started)
            }
        }
    }
}

/// Refuses `--bucket-bits` that a saved classifier could not hold (1 to 24).
func checkBucketBits(_ bits: Int?) throws {
    let most = TextClassifierFile.maxBuckets.trailingZeroBitCount
    if let bits, !(1...most).contains(bits) { throw ValidationError("--bucket-bits: \(bits) is not 1 to \(most) (2 to 2^\(most) buckets)") }
}

/// The options of `aislectl train sentiment|assist`.
struct TextTrainingOptions: ParsableArguments {
    @Option(help: ArgumentHelp("Labelled texts.", valueName: "FILE")) var data: String
    @Option(help: ArgumentHelp("Write the model here instead of registering it.", valueName: "FILE")) var out: String?
    @Option(help: ArgumentHelp("The int8 encoder.", valueName: "FILE")) var encoder: String = EncoderChoice.defaultInt8Path
    @Option(help: "L2 penalty (sentiment: 3e-4 with the encoder, 3e-6 for CJK texts; assist: 1e-3).") var l2: Double?
    @Option(help: "Hash buckets for the n-grams, log2 (sentiment: 18, 20 for CJK texts; assist: 17).") var bucketBits: Int?
    @Flag(inversion: .prefixedNo, help: "Make the new version the active one.") var activate = true
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var json: OutputOptions

    var buckets: Int? { bucketBits.map { 1 << $0 } }

    func validate() throws { try checkBucketBits(bucketBits) }

    /// Where the model goes, the store opened (before training) when it is registered.
    func output() throws -> TextModelOutput {
        TextModelOutput(out: out, store: out == nil ? try Store.open(at: try storeOptions.directory()) : nil, source: data, activate: activate, json: json.json)
    }
}

/// Where a trained text classifier goes: a file (--out) or a new version in the store's registry.
struct TextModelOutput {
    var out: String?
    var store: Store?
    var source: String
    var activate: Bool
    var json: Bool

    func save(_ file: TextClassifierFile, kind: String, metrics: some Encodable, summary: String, started: Date) throws {
        let bytes = try file.encoded()
        let line = "\(summary); \(bytes.count.formatted()) bytes; \(String(format: "%.1f", Date().timeIntervalSince(started))) s"
        if let out {
            try DurableFile.write(bytes, to: out)
            return json ? try printJSON(metrics) : print("wrote \(out): \(line)")
        }
        guard let store else { return }
        let record = try TextClassifierFile.register(store, kind: kind, file: file, bytes: bytes, source: URL(fileURLWithPath: source).lastPathComponent, metrics: metrics, activate: activate)
        json ? try printJSON(record) : print("\(kind) v\(record.version)\(activate ? " (active)" : ""): \(line)")
    }
}

extension ModelCommand {
    struct Import: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register a model file (from `aislectl train sentiment --out`, or shipped) as a new version.",
            discussion: """
                The file is checked as the agent would load it (signature, sizes, finite weights, the \
                encoder it was trained with) before it is registered.

                Example: aislectl model import sentiment firmware-config/models/sentiment-en.aisletc
                """)
        @Argument(help: "sentiment or assist") var kind: String
        @Argument(help: ArgumentHelp("The model file.", valueName: "FILE")) var file: String
        @Option(help: ArgumentHelp("The int8 encoder.", valueName: "FILE")) var encoder: String = EncoderChoice.defaultInt8Path
        @Flag(inversion: .prefixedNo, help: "Make the new version the active one.") var activate = true
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                guard [SentimentClassifier.kind, RequestIntents.kind].contains(kind) else {
                    throw CLIError.usage("only sentiment and assist models are imported from files; train the others with `aislectl train`")
                }
                guard let bytes = FileManager.default.contents(atPath: file) else { throw CLIError("\(file): cannot read") }
                let parsed = try TextClassifierFile(data: bytes, name: file)
                let model = parsed.encoderVersion == nil ? nil : try TextModel.load(path: encoder, threads: 1)
                if kind == SentimentClassifier.kind { _ = try SentimentClassifier(file: parsed, encoder: model) } else { _ = try RequestIntents(file: parsed, encoder: model) }
                let store = try Store.open(at: try storeOptions.directory())
                struct Source: Encodable { var importedFrom: String }
                let record = try TextClassifierFile.register(store, kind: kind, file: parsed, bytes: bytes, source: URL(fileURLWithPath: file).lastPathComponent, metrics: Source(importedFrom: file), activate: activate)
                if output.json { return try printJSON(record) }
                print("\(kind) v\(record.version)\(activate ? " (active)" : "") from \(file)")
            }
        }
    }
}

