import AisleCore
import AisleModels
import AisleText
import Foundation

/// A message naming the file, line and field of bad input.
public struct InputError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Labelled texts from JSON Lines `{"text","label"}`, any number of labels.
public struct LabelledExamples: Sendable {
    public var texts: [String] = []
    public var labels: [String] = []

    public init(texts: [String] = [], labels: [String] = []) { (self.texts, self.labels) = (texts, labels) }

    /// Reads `path`; a line that is not such an object (or whose label `accept` refuses, with
    /// the reason it returns) is refused with its line number.
    public static func load(_ path: String, accept: (String) -> String? = { _ in nil }) throws -> LabelledExamples {
        guard let data = FileManager.default.contents(atPath: path) else { throw InputError("\(path): cannot read") }
        var out = LabelledExamples()
        for (n, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            guard case .object(let o)? = try? JSONParser.parse(Array(line), maxValues: 64), case .string(let text)? = o["text"], case .string(let label)? = o["label"] else {
                throw InputError("\(path):\(n + 1): expected {\"text\": \"…\", \"label\": \"…\"}")
            }
            if let refusal = accept(label) { throw InputError("\(path):\(n + 1): label \"\(label)\" \(refusal)") }
            out.texts.append(text)
            out.labels.append(label)
        }
        guard !out.texts.isEmpty else { throw InputError("\(path): no examples") }
        return out
    }

    /// The examples at `indices`.
    public func subset(_ indices: some Sequence<Int>) -> LabelledExamples {
        let ids = Array(indices)
        return LabelledExamples(texts: ids.map { texts[$0] }, labels: ids.map { labels[$0] })
    }
}

/// Labelled texts for a two-class task.
public struct LabelledTexts: Sendable {
    public var texts: [String] = []
    public var labels: [Bool] = []

    public init(texts: [String] = [], labels: [Bool] = []) { (self.texts, self.labels) = (texts, labels) }

    /// Reads `path`; another label than the two is refused with its line number.
    public static func load(_ path: String, positive: String, negative: String) throws -> LabelledTexts {
        let examples = try LabelledExamples.load(path) { $0 == positive || $0 == negative ? nil : "is neither \"\(positive)\" nor \"\(negative)\"" }
        let out = LabelledTexts(texts: examples.texts, labels: examples.labels.map { $0 == positive })
        guard out.labels.contains(true), out.labels.contains(false) else { throw InputError("\(path): needs examples of both labels") }
        return out
    }
}

/// What the text classifiers (sentiment, request intents) feed their regressions: character
/// n-grams, plus the encoder's sentence embedding when the texts are not mostly CJK.
public enum TextInputs {
    /// Sentence embeddings of `texts`, 32 at a time.
    public static func embed(_ texts: [String], _ model: TextModel) -> [[Float]] {
        stride(from: 0, to: texts.count, by: 32).flatMap { start in
            model.encoder.embed(batch: texts[start..<min(start + 32, texts.count)].map { model.tokenizer.encode($0) })
        }
    }

    /// Each text's n-gram vector, followed by its embedding when there are embeddings.
    public static func vectors(_ texts: [String], _ features: TextFeatures, _ embeddings: [[Float]]?) -> [SparseVector] {
        guard let embeddings else { return texts.map(features.vector) }
        return zip(texts, embeddings).map { features.combine($0, embedding: $1) }
    }

    /// The share of letters that are CJK ideographs, kana or hangul.
    public static func cjkShare(_ texts: [String]) -> Double {
        var cjk = 0, letters = 0
        for text in texts.prefix(2000) {
            for s in text.unicodeScalars where s.properties.isAlphabetic {
                letters += 1
                if (0x3040...0x30FF).contains(s.value) || (0x3400...0x9FFF).contains(s.value) || (0xAC00...0xD7AF).contains(s.value) { cjk += 1 }
            }
        }
        return letters == 0 ? 0 : Double(cjk) / Double(letters)
    }
}

extension TextClassifierFile {
    /// `encoder` when the file reads embeddings and was trained with it, nil when it reads none;
    /// `what` names the model in the error otherwise.
    public func checkedEncoder(_ encoder: TextModel?, what: String) throws -> TextModel? {
        guard let version = encoderVersion else { return nil }
        guard let encoder else { throw InputError("the \(what) model reads the int8 encoder's embeddings (\(version)), which is not loaded") }
        guard encoder.encoder.version == version else {
            throw InputError("the \(what) model was trained with encoder \(version); the loaded encoder is \(encoder.encoder.version) — train it again")
        }
        return encoder
    }
}

extension TextClassifierFile {
    /// Reads the model file at `path` (nil: the shipped `defaultFile`; `what` names it in
    /// errors) and the encoder at `encoderPath` when the file reads embeddings.
    public static func read(_ path: String?, defaultFile: String, what: String, encoderPath: String) throws -> (file: TextClassifierFile, encoder: TextModel?) {
        guard let path = path ?? ShippedModels.path(defaultFile) else {
            throw InputError("the default \(what) model \(defaultFile) is not installed (set AISLE_DEFAULT_MODELS to its directory)")
        }
        guard let data = FileManager.default.contents(atPath: path) else { throw InputError("\(path): cannot read") }
        let file = try TextClassifierFile(data: data, name: path)
        return (file, file.encoderVersion == nil ? nil : try TextModel.load(path: encoderPath, threads: 2))
    }
}
