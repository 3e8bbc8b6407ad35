import AisleCore
import AisleModels
import AisleText
import Foundation

/// Labelled texts from JSON Lines `{"text","label"}`, for a two-class task.
public struct LabelledTexts: Sendable {
    public var texts: [String] = []
    public var labels: [Bool] = []

    /// Reads `path`; a line that is not such an object, or has another label, is refused with its
    /// line number.
    public static func load(_ path: String, positive: String, negative: String) throws -> LabelledTexts {
        guard let data = FileManager.default.contents(atPath: path) else { throw InputError("\(path): cannot read") }
        var out = LabelledTexts()
        for (n, line) in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            guard case .object(let o)? = try? JSONParser.parse(Array(line)), case .string(let text)? = o["text"], case .string(let label)? = o["label"] else {
                throw InputError("\(path):\(n + 1): expected {\"text\": \"…\", \"label\": \"…\"}")
            }
            guard label == positive || label == negative else {
                throw InputError("\(path):\(n + 1): label \"\(label)\" is neither \"\(positive)\" nor \"\(negative)\"")
            }
            out.texts.append(text)
            out.labels.append(label == positive)
        }
        guard out.labels.contains(true), out.labels.contains(false) else { throw InputError("\(path): needs examples of both labels") }
        return out
    }
}

/// A message naming the file, line and field of bad input.
public struct InputError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Review sentiment: character n-gram TF-IDF (works for Chinese as for English) plus the int8
/// encoder's sentence embedding, into a class-balanced logistic regression. `probability` is
/// P(positive).
public struct SentimentClassifier: Sendable {
    public let features: TextFeatures
    public let regression: SparseLogisticRegression
    /// The encoder, when its embeddings are used: not for texts mostly in Chinese, Japanese or
    /// Korean, where the English encoder adds nothing the n-grams do not (EVALUATION.md).
    public let model: TextModel?

    /// Defaults (chosen on the public splits, docs/MODELS.md): with the encoder, 1–4-grams in
    /// 2^18 buckets and `l2` 3e-4; for CJK texts, 1–3-grams in 2^20 buckets and `l2` 3e-6.
    public static func train(_ data: LabelledTexts, encoderPath: String, l2: Double? = nil, buckets: Int? = nil) throws -> SentimentClassifier {
        let cjk = cjkShare(data.texts) > 0.5
        let model = cjk ? nil : try TextModel.load(path: encoderPath, threads: 2)
        let l2 = l2 ?? (cjk ? 3e-6 : 3e-4)
        // In Chinese most words are one or two characters; longer grams add mostly noise there.
        var features = TextFeatures(training: data.texts, buckets: buckets ?? (cjk ? 1 << 20 : 1 << 18), maxOrder: cjk ? 3 : 4)
        features.weightByLabel(data.texts, data.labels)
        let rows = vectors(data.texts, features, model)
        let regression = SparseLogisticRegression.fit(rows, data.labels, dimension: features.buckets + (model?.encoder.dimensions ?? 0), l2: l2)
        return SentimentClassifier(features: features, regression: regression, model: model)
    }

    /// P(positive) per text.
    public func predict(_ texts: [String]) -> [Double] { Self.vectors(texts, features, model).map(regression.probability) }

    static func vectors(_ texts: [String], _ features: TextFeatures, _ model: TextModel?) -> [SparseVector] {
        guard let model else { return texts.map(features.vector) }
        let embeddings = stride(from: 0, to: texts.count, by: 32).flatMap { start in
            model.encoder.embed(batch: texts[start..<min(start + 32, texts.count)].map { model.tokenizer.encode($0) })
        }
        return zip(texts, embeddings).map { features.combine($0, embedding: $1) }
    }

    /// The share of letters that are CJK ideographs, kana or hangul.
    static func cjkShare(_ texts: [String]) -> Double {
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
