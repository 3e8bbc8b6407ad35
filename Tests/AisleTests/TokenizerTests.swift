import AisleCore
import AisleText
import Foundation
import Testing

@Suite struct TokenizerTests {
    static func tokenizer() throws -> WordPieceTokenizer {
        try WordPieceTokenizer(vocabulary: ModelFiles.default.vocabulary)
    }

    /// Every text of shared/encoder/dev/reference.jsonl: ids identical to the original tokenizer.
    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func idsMatchTheReferenceOnEveryDevText() throws {
        let tok = try Self.tokenizer()
        let file = try #require(TestSupport.shared).appendingPathComponent("encoder/dev/reference.jsonl")
        var checked = 0, truncated = 0, withUnknown = 0
        var mismatches: [String] = []
        for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") {
            guard case .object(let o) = try JSONParser.parse(Array(line.utf8)),
                case .string(let id)? = o["id"], case .string(let text)? = o["text"], case .array(let ids)? = o["input_ids"]
            else { throw TestFailure("bad reference line") }
            let expected = ids.compactMap { v -> Int32? in if case .int(let n) = v { Int32(n) } else { nil } }
            let got = tok.encode(text)
            if got != expected { mismatches.append(id) }
            if expected.count == 256 { truncated += 1 }
            if expected.contains(tok.unk) { withUnknown += 1 }
            checked += 1
        }
        #expect(checked == 754)
        #expect(mismatches.isEmpty, "differ: \(mismatches.prefix(20))")
        #expect(truncated == 7 && withUnknown == 117)  // the reference's own counts (encoder/VERSIONS.md)
    }

    @Test func basicBehaviour() throws {
        let tok = try Self.tokenizer()
        let hello = tok.encode("Hello, WORLD!")
        #expect(hello.first == tok.cls && hello.last == tok.sep && hello.count == 6)
        #expect(tok.encode("") == [tok.cls, tok.sep])
        #expect(tok.encode(String(repeating: "a", count: 101)) == [tok.cls, tok.unk, tok.sep])
        #expect(tok.encode(String(repeating: "word ", count: 1000)).count == 256)
        #expect(tok.encode("Café") == tok.encode("cafe"))
        #expect(tok.encode("a\u{200B}b") == tok.encode("ab"))
        // Special tokens by code point: an accent after "[SEP]" is stripped, the token stays.
        let sepID = try #require(tok.encode("[SEP]").dropFirst().first)
        #expect(tok.encode("[SEP]\u{0301}") == [tok.cls, sepID, tok.sep] && sepID == tok.sep)
        #expect(tok.encode("tea [SEP]\u{200D} pot") == tok.encode("tea [SEP] pot"))
        // CJK as tokenizer.json's (Rust) normaliser has it: U+2B820 is not split off, U+2B920 is.
        #expect(tok.encode("a\u{2B820}b") == [tok.cls, tok.unk, tok.sep])
        #expect(tok.encode("a\u{2B920}b").count == 5)
        // An unassigned code point stays (the Rust `is_other` is Cc, Cf, Co): its word is unknown.
        #expect(tok.encode("tea\u{0378}pot") == [tok.cls, tok.unk, tok.sep])
        #expect(tok.encode("tea\u{E000}pot") == tok.encode("teapot"))  // private use goes
    }
}
