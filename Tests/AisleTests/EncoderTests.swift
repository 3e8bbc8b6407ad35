import AisleCore
import AisleText
import Foundation
import Testing

/// Reference texts with their ids and sentence-transformers' embeddings.
struct ReferenceText {
    var id: String
    var text: String
    var ids: [Int32]
    var embedding: [Float]

    static func load(_ url: URL) throws -> [ReferenceText] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map { line in
            guard case .object(let o) = try JSONParser.parse(Array(line.utf8)),
                case .string(let id)? = o["id"], case .string(let text)? = o["text"],
                case .array(let ids)? = o["input_ids"], case .array(let e)? = o["embedding"]
            else { throw TestFailure("bad reference line") }
            return ReferenceText(
                id: id, text: text,
                ids: ids.compactMap { if case .int(let n) = $0 { Int32(n) } else { nil } },
                embedding: e.compactMap {
                    switch $0 {
                    case .double(let d): Float(d)
                    case .int(let n): Float(n)
                    default: nil
                    }
                })
        }
    }
}

func cosine(_ a: [Float], _ b: [Float]) -> Float {
    var dot: Float = 0, na: Float = 0, nb: Float = 0
    for i in a.indices { dot += a[i] * b[i]; na += a[i] * a[i]; nb += b[i] * b[i] }
    return dot / (na.squareRoot() * nb.squareRoot())
}

@Suite struct EncoderTests {
    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func fp32MatchesTheReferenceOnEveryDevText() throws {
        let model = try BertFP32(files: .default)
        let refs = try ReferenceText.load(try #require(TestSupport.shared).appendingPathComponent("encoder/dev/reference.jsonl"))
        var worst: (Float, String) = (1, "")
        for r in refs {
            let e = model.embed(r.ids)
            let c = cosine(e, r.embedding)
            if c < worst.0 { worst = (c, r.id) }
        }
        #expect(refs.count == 754)
        #expect(worst.0 >= 0.9999, "lowest cosine \(worst.0) on \(worst.1)")
    }

    /// Writes a safetensors file from a header object and a data section.
    func tensorFile(header: String, data: [UInt8], lengthOverride: UInt64? = nil) throws -> String {
        let dir = try TestSupport.temporaryDirectory()
        var bytes: [UInt8] = []
        var h = Array(header.utf8)
        while h.count % 8 != 0 { h.append(32) }  // the format pads the header with spaces to align the data
        withUnsafeBytes(of: (lengthOverride ?? UInt64(h.count)).littleEndian) { bytes += $0 }
        bytes += h + data
        let path = dir.appendingPathComponent("t.safetensors").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test func safetensorsReaderValidatesEverything() throws {
        let good = try tensorFile(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, data: [0, 0, 128, 63, 0, 0, 0, 64])
        let f = try SafeTensors(path: good)
        #expect(Array(try f.float32("a", shape: [2])) == [1, 2])
        #expect { try f.float32("a", shape: [3]) } throws: { "\($0)".contains("has shape [2], expected [3]") }
        #expect { try f.float32("b", shape: [2]) } throws: { "\($0)".contains("no tensor b") }

        let cases: [(header: String, data: [UInt8], length: UInt64?, reason: String)] = [
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#, [0, 0, 128, 63], nil, "outside the 4-byte data section"),
            (#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, Array(repeating: 0, count: 8), nil, "needs 12 bytes"),
            (#"{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}"#, Array(repeating: 0, count: 8), nil, "unknown dtype Q4"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, Array(repeating: 0, count: 8), nil, "overlaps"),
            (#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]"#, Array(repeating: 0, count: 8), nil, "header: malformed JSON"),
            (#"{"a":1}"#, [], 9_999, "does not fit"),
            ("[1]", [], nil, "not a JSON object"),
            // Sizes past Int are refused, not trapped on: a header length of 2^64 − 1, a shape of
            // 2^64 bytes, one whose element count wraps to 0.
            (#"{"a":1}"#, [], .max, "does not fit"),
            (#"{"a":{"dtype":"F32","shape":[2147483648,2147483648],"data_offsets":[0,0]}}"#, [], nil, "needs more than Int.max bytes"),
            (#"{"a":{"dtype":"I8","shape":[2147483648,2147483648,4],"data_offsets":[0,0]}}"#, [], nil, "needs more than Int.max bytes"),
        ]
        for c in cases {
            let path = try tensorFile(header: c.header, data: c.data, lengthOverride: c.length)
            #expect { try SafeTensors(path: path) } throws: { "\($0)".contains(c.reason) }
        }
        let tiny = try TestSupport.temporaryDirectory().appendingPathComponent("tiny")
        try Data([1, 2, 3]).write(to: tiny)
        #expect { try SafeTensors(path: tiny.path) } throws: { "\($0)".contains("truncated") }
        let misaligned = try tensorFile(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[1,5]}}"#, data: [0, 0, 0, 128, 63])
        #expect { try SafeTensors(path: misaligned) } throws: { "\($0)".contains("not aligned") }
        // An empty tensor may start where the next one does, whichever the header lists first.
        for header in [#"{"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#,
                       #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"e":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}"#] {
            let path = try tensorFile(header: header, data: [0, 0, 128, 63, 0, 0, 0, 64])
            for _ in 0..<8 { #expect(try SafeTensors(path: path).float32("e", shape: [0]).isEmpty) }
        }
    }
}
