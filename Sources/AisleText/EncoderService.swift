import AisleCore
import Foundation
import Synchronization

/// The encoder as a service: safe to call from any task; concurrent requests are gathered into
/// packed batches (up to ``maxBatchTokens`` tokens, waiting at most ``maxWait`` for company) and
/// run on one dedicated thread, so memory stays bounded by one batch; embeddings found in the
/// cache (the catalog's titles) are not computed again. One text on its own (a kiosk's search or
/// question) goes ahead of the texts of batches (`/v1/embed`, titles, reviews) still waiting, so
/// a client embedding hundreds of texts does not hold the kiosks up. It writes none: the texts
/// it is given (a kiosk's) would grow the store without bound.
public final class EncoderService: Sendable {
    public let encoder: any SentenceEncoder
    public let tokenizer: WordPieceTokenizer
    public let maxBatchTokens: Int
    public let maxWait: Duration
    private let cache: (any EmbeddingCache)?
    private let queue = WorkQueue<Job>(label: "aisle.encoder")
    /// Batches run so far (for tests and metrics).
    private let batchCount = Mutex(0)

    private struct Job: Sendable {
        var ids: [Int32]
        /// One text on its own: taken before batches' texts.
        var alone: Bool
        var done: CheckedContinuation<[Float], Never>
    }

    public init(
        encoder: any SentenceEncoder, tokenizer: WordPieceTokenizer, cache: (any EmbeddingCache)? = nil,
        maxBatchTokens: Int = 4096, maxWait: Duration = .microseconds(500)
    ) {
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.cache = cache
        self.maxBatchTokens = maxBatchTokens
        self.maxWait = maxWait
    }

    public var batchesRun: Int { batchCount.withLock { $0 } }

    /// What embeddings are cached under (``SentenceEncoder/cacheKey(with:)``).
    public var cacheKey: String { encoder.cacheKey(with: tokenizer) }

    /// The key a text is cached under: SHA-256 of its UTF-8 bytes.
    public static func key(_ text: String) -> Data { Digests.sha256(text) }

    /// Embeds texts: from the cache where possible, else through the batched encoder.
    /// `cached: false` skips the cache (one-off texts such as kiosk queries, not worth a lookup).
    public func embed(_ texts: [String], cached useCache: Bool = true) async throws -> [[Float]] {
        let cache = useCache ? cache : nil
        let keys = texts.map(Self.key)
        let version = cacheKey
        // The cache is the store: its reads block, so they run off the cooperative pool.
        var cached: [Data: [Float]] = [:]
        if let cache { cached = try await Blocking.run { try cache.vectors(model: version, keys: keys) } }
        var result = [[Float]?](repeating: nil, count: texts.count)
        try await withThrowingTaskGroup(of: (Int, [Float]).self) { group in
            for (i, text) in texts.enumerated() {
                if let hit = cached[keys[i]], hit.count == encoder.dimensions {
                    result[i] = hit
                } else {
                    let ids = tokenizer.encode(text)
                    let alone = texts.count == 1
                    group.addTask { (i, await self.submit(ids, alone: alone)) }
                }
            }
            for try await (i, vector) in group { result[i] = vector }
        }
        return result.map { $0 ?? [] }
    }

    /// Embeds one text.
    public func embed(_ text: String, cached: Bool = true) async throws -> [Float] { try await embed([text], cached: cached)[0] }

    private func submit(_ ids: [Int32], alone: Bool) async -> [Float] {
        await withCheckedContinuation { done in
            queue.submit(Job(ids: ids, alone: alone, done: done)) { self.drain() }
        }
    }

    /// Which waiting jobs make the next batch: texts on their own first, then in order, up to
    /// `maxTokens` tokens (one job at least); the rest wait, in that order. One pass over them.
    static func nextBatch<J>(_ waiting: [J], tokens: (J) -> Int, alone: (J) -> Bool, maxTokens: Int) -> (taken: [J], left: [J]) {
        var (taken, left, count) = ([J](), [J](), 0)
        for job in waiting.filter(alone) + waiting.filter({ !alone($0) }) {
            if left.isEmpty, taken.isEmpty || count + tokens(job) <= maxTokens {
                taken.append(job)
                count += tokens(job)
            } else {
                left.append(job)
            }
        }
        return (taken, left)
    }

    /// Runs batches until no job waits. The first job of a batch waits up to `maxWait` for others.
    private func drain() {
        while true {
            let first = queue.waiting
            if first > 0, first * 16 < maxBatchTokens { Thread.sleep(forTimeInterval: Double(maxWait.components.seconds) + Double(maxWait.components.attoseconds) / 1e18) }
            let batch = queue.take { waiting in
                let (taken, left) = Self.nextBatch(waiting, tokens: \.ids.count, alone: \.alone, maxTokens: maxBatchTokens)
                waiting = left
                return taken
            }
            guard !batch.isEmpty else { return }
            let vectors = encoder.embed(batch: batch.map(\.ids))
            batchCount.withLock { $0 += 1 }
            for (job, v) in zip(batch, vectors) { job.done.resume(returning: v) }
        }
    }
}
