import AisleCore
import AisleIngest
import AisleStore
@testable import AisleText
import Foundation
import Testing

@Suite(.serialized) struct EncoderServiceTests {
    static let texts = [
        "RED TEAPOT FOR A WEDDING PRESENT", "where do I return a gift?", "12 IVORY ROSE PEG PLACE SETTINGS",
        "这个茶壶很好看", "Café crème 🍰", "", String(repeating: "long text ", count: 300), "ok",
    ]

    @Test func packedBatchesEqualSingleSequences() throws {
        let int8 = try BertInt8(path: try Int8Tests.quantized.get().path)
        let tok = try WordPieceTokenizer(vocabulary: ModelFiles.default.vocabulary)
        let ids = Self.texts.map { tok.encode($0) }
        let batch = int8.embed(batch: ids)
        for (i, one) in ids.enumerated() { #expect(int8.embed(one) == batch[i], "int8 text \(i) depends on its batch") }
        let fp32 = try BertFP32(files: .default)
        let fb = fp32.embed(batch: ids)
        for (i, one) in ids.enumerated() { #expect(cosine(fp32.embed(one), fb[i]) > 0.99999) }
    }

    /// A text on its own (a kiosk's search) goes ahead of the texts of batches still waiting (a
    /// `/v1/embed` of hundreds), which keep their order; a batch takes one job at least.
    @Test func aTextOnItsOwnGoesAheadOfABatch() {
        // (name, tokens, alone)
        let waiting = [("b1", 30, false), ("b2", 30, false), ("q1", 8, true), ("b3", 30, false), ("q2", 8, true)]
        let (taken, left) = EncoderService.nextBatch(waiting, tokens: \.1, alone: \.2, maxTokens: 64)
        #expect(taken.map(\.0) == ["q1", "q2", "b1"] && left.map(\.0) == ["b2", "b3"])
        let big = EncoderService.nextBatch([("huge", 500, false), ("b", 1, false)], tokens: \.1, alone: \.2, maxTokens: 64)
        #expect(big.taken.map(\.0) == ["huge"] && big.left.map(\.0) == ["b"])
    }

    @Test func concurrentRequestsAreBatchedAndCached() async throws {
        let model = try BertInt8(path: try Int8Tests.quantized.get().path)
        let tok = try WordPieceTokenizer(vocabulary: ModelFiles.default.vocabulary)
        let store = try TempStore()
        let cache = StoredEmbeddings(store: store.store)
        let service = EncoderService(encoder: model, tokenizer: tok, cache: cache, maxWait: .milliseconds(20))
        let texts = (0..<40).map { "gift basket number \($0)" }
        let results = try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (i, t) in texts.enumerated() { group.addTask { (i, try await service.embed(t)) } }
            return try await group.reduce(into: [Int: [Float]]()) { $0[$1.0] = $1.1 }
        }
        for (i, t) in texts.enumerated() { #expect(results[i] == model.embed(tok.encode(t))) }
        #expect(service.batchesRun < 40, "\(service.batchesRun) batches for 40 concurrent requests")
        // It writes nothing: the texts a kiosk sends would grow the store without bound.
        #expect(try store.count("SELECT count(*) FROM embeddings") == 0)

        // What the store caches (the catalog's titles) it finds, and runs nothing.
        try cache.store(model: service.cacheKey, vectors: texts.indices.map { (EncoderService.key(texts[$0]), results[$0]!) })
        let again = EncoderService(encoder: model, tokenizer: tok, cache: cache)
        #expect(try await again.embed(texts) == texts.map { results[texts.firstIndex(of: $0)!]! })
        #expect(again.batchesRun == 0)

        // Another model version misses the cache.
        let fp32 = EncoderService(encoder: try BertFP32(files: .default), tokenizer: tok, cache: cache)
        _ = try await fp32.embed(texts[0])
        #expect(fp32.batchesRun == 1)

        // So does the same model after another vocabulary (one word added: the same ids for these
        // texts, but the cache cannot know that).
        let vocabulary = try TestSupport.temporaryDirectory().appendingPathComponent("vocab.txt")
        try (Data(contentsOf: ModelFiles.default.vocabulary) + Data("addedword\n".utf8)).write(to: vocabulary)
        let other = EncoderService(encoder: model, tokenizer: try WordPieceTokenizer(vocabulary: vocabulary), cache: cache)
        #expect(other.cacheKey != again.cacheKey && other.cacheKey.hasPrefix(model.cacheKey))
        _ = try await other.embed(texts[0])
        #expect(other.batchesRun == 1)
    }
}
