import AisleCore
import Foundation

/// Errors loading a vocabulary.
public struct VocabularyError: Error, CustomStringConvertible {
    public var description: String
}

/// BERT's uncased tokenizer, as all-MiniLM-L6-v2's `tokenizer.json` configures it: the
/// normaliser (clean text, space out CJK ideographs, strip accents, lower-case), the
/// pre-tokeniser (split on white space and punctuation) and WordPiece (greedy longest match,
/// `##` continuations, `[UNK]` for words over 100 characters or with no match), framed by
/// `[CLS]` … `[SEP]` and truncated to `maxLength` ids. The special tokens (`[PAD]`, `[UNK]`,
/// `[CLS]`, `[SEP]`, `[MASK]`), written exactly so in the text, are matched before anything else,
/// as the original's added tokens are.
public struct WordPieceTokenizer: Sendable {
    private let vocab: [String: Int32]
    private let special: [(text: String, id: Int32)]
    /// The longest entry in scalars (a `##` continuation's without the `##`): no piece is longer,
    /// so WordPiece need not try one (18 in MiniLM's vocabulary; a word may be 100).
    private let longestPiece: Int
    public let maxLength: Int
    public let cls: Int32
    public let sep: Int32
    public let unk: Int32
    /// Ids run from 0 to `size - 1`.
    public let size: Int
    /// Words longer than this many characters become `[UNK]`.
    public static let maxWordCharacters = 100
    /// The version of the rules coded below; raised whenever a text may tokenise differently.
    public static let rules = 3
    /// Names what `encode` does: the rules and the vocabulary file's SHA-256 (a part of
    /// ``SentenceEncoder/cacheKey(with:)``, so embeddings cached under other tokens are not read).
    public let version: String

    /// Loads `vocab.txt` (one token per line, id = line number).
    public init(vocabulary url: URL, maxLength: Int = 256) throws {
        guard let bytes = try? Data(contentsOf: url), let text = String(data: bytes, encoding: .utf8) else {
            throw VocabularyError(description: "\(url.path): cannot read the vocabulary (run tools/fetch-model)")
        }
        version = "wordpiece-r\(Self.rules):" + Digests.sha256Hex(bytes).prefix(16)
        var vocab: [String: Int32] = [:]
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where !line.isEmpty {
            vocab[String(line)] = Int32(n)
        }
        guard let cls = vocab["[CLS]"], let sep = vocab["[SEP]"], let unk = vocab["[UNK]"] else {
            throw VocabularyError(description: "\(url.path): no [CLS], [SEP] or [UNK] token")
        }
        self.vocab = vocab
        longestPiece = vocab.keys.map { $0.unicodeScalars.count - ($0.hasPrefix("##") ? 2 : 0) }.max() ?? 0
        special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"].compactMap { t in vocab[t].map { (t, $0) } }
        self.maxLength = maxLength
        self.cls = cls
        self.sep = sep
        self.unk = unk
        size = Int(vocab.values.max() ?? -1) + 1
    }

    /// The ids of `text`, with `[CLS]` and `[SEP]`, at most ``maxLength``.
    public func encode(_ text: String) -> [Int32] {
        var ids: [Int32] = [cls]
        let budget = maxLength - 1
        for segment in segments(text) where ids.count < budget {
            switch segment {
            case .special(let id): ids.append(id)
            case .text(let t):
                for word in Self.words(Self.normalize(t)) where ids.count < budget {
                    ids.append(contentsOf: wordPieces(word).prefix(budget - ids.count))
                }
            }
        }
        ids.append(sep)
        return ids
    }

    enum Segment {
        case text(Substring)
        case special(Int32)
    }

    /// Splits out the special tokens written in the text, matched by code point as the reference
    /// tokenizers match them: "[SEP]" followed by a combining accent is still `[SEP]` (as
    /// characters, the accent would make "]́" one, and the match fail).
    func segments(_ text: String) -> [Segment] {
        let scalars = text.unicodeScalars
        var out: [Segment] = []
        var start = scalars.startIndex
        var i = start
        while let open = scalars[i...].firstIndex(of: "[") {
            if let (token, id) = special.first(where: { scalars[open...].starts(with: $0.text.unicodeScalars) }) {
                if start < open { out.append(.text(Substring(scalars[start..<open]))) }
                out.append(.special(id))
                start = scalars.index(open, offsetBy: token.unicodeScalars.count)
                i = start
            } else {
                i = scalars.index(after: open)
            }
        }
        if start < scalars.endIndex { out.append(.text(Substring(scalars[start...]))) }
        return out
    }

    /// BertNormalizer: drop NUL, U+FFFD and control characters; white space becomes a space;
    /// CJK ideographs get spaces around them; accents are stripped (NFD, drop non-spacing
    /// marks); then lower case.
    static func normalize(_ text: Substring) -> String {
        var cleaned = String.UnicodeScalarView()
        for s in text.unicodeScalars {
            if s.value == 0 || s.value == 0xFFFD || isControl(s) { continue }
            if isWhitespace(s) {
                cleaned.append(" ")
            } else if isChineseCharacter(s.value) {
                cleaned.append(" ")
                cleaned.append(s)
                cleaned.append(" ")
            } else {
                cleaned.append(s)
            }
        }
        var stripped = String.UnicodeScalarView()
        for s in String(cleaned).decomposedStringWithCanonicalMapping.unicodeScalars
        where s.properties.generalCategory != .nonspacingMark {
            stripped.append(s)
        }
        return String(stripped).lowercased()
    }

    /// BertPreTokenizer: white space separates words; every punctuation character is a word.
    static func words(_ text: String) -> [[Unicode.Scalar]] {
        var words: [[Unicode.Scalar]] = []
        var current: [Unicode.Scalar] = []
        for s in text.unicodeScalars {
            if s.properties.isWhitespace {
                if !current.isEmpty { words.append(current); current = [] }
            } else if isPunctuation(s) {
                if !current.isEmpty { words.append(current); current = [] }
                words.append([s])
            } else {
                current.append(s)
            }
        }
        if !current.isEmpty { words.append(current) }
        return words
    }

    /// WordPiece: the longest vocabulary entry from the left, then `##`-prefixed continuations.
    func wordPieces(_ word: [Unicode.Scalar]) -> [Int32] {
        guard word.count <= Self.maxWordCharacters else { return [unk] }
        var pieces: [Int32] = []
        var start = 0
        while start < word.count {
            var end = min(word.count, start + longestPiece)
            var found: Int32?
            while start < end {
                var candidate = start > 0 ? "##" : ""
                candidate.unicodeScalars.append(contentsOf: word[start..<end])
                if let id = vocab[candidate] {
                    found = id
                    break
                }
                end -= 1
            }
            guard let found else { return [unk] }
            pieces.append(found)
            start = end
        }
        return pieces
    }

    static func isWhitespace(_ s: Unicode.Scalar) -> Bool {
        s == "\t" || s == "\n" || s == "\r" || s.properties.isWhitespace
    }

    /// Cc, Cf and Co but tab and line ends, as the Rust normaliser's `is_control`: the
    /// `unicode_categories` crate's `is_other` is control, format and private use — not Cn,
    /// whatever its doc comment says — so an unassigned code point stays, and makes its word
    /// unknown (surrogates cannot occur).
    static func isControl(_ s: Unicode.Scalar) -> Bool {
        if s == "\t" || s == "\n" || s == "\r" { return false }
        switch s.properties.generalCategory {
        case .control, .format, .privateUse, .surrogate: return true
        default: return false
        }
    }

    static func isPunctuation(_ s: Unicode.Scalar) -> Bool {
        let v = s.value
        if (33...47).contains(v) || (58...64).contains(v) || (91...96).contains(v) || (123...126).contains(v) { return true }
        switch s.properties.generalCategory {
        case .connectorPunctuation, .dashPunctuation, .closePunctuation, .finalPunctuation,
            .initialPunctuation, .otherPunctuation, .openPunctuation:
            return true
        default: return false
        }
    }

    /// The CJK blocks of `tokenizer.json`'s normaliser (the Rust `tokenizers`' `is_chinese_char`,
    /// which the reference embeddings were made with): from U+2B920, where the original Python
    /// BERT has U+2B820 — the 256 code points between are not split off.
    static func isChineseCharacter(_ v: UInt32) -> Bool {
        (0x4E00...0x9FFF).contains(v) || (0x3400...0x4DBF).contains(v) || (0x20000...0x2A6DF).contains(v)
            || (0x2A700...0x2B73F).contains(v) || (0x2B740...0x2B81F).contains(v) || (0x2B920...0x2CEAF).contains(v)
            || (0xF900...0xFAFF).contains(v) || (0x2F800...0x2FA1F).contains(v)
    }
}
