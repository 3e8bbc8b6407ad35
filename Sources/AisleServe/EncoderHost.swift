import AisleCore
import AisleStore
import AisleText
import Foundation
import Logging

/// The agent's sentence encoder, loaded at start and reloaded on SIGHUP. A model that fails to
/// load (missing, truncated, corrupt, foreign or mismatched) is refused with its reason and the
/// agent keeps serving with the model it had — or without one, when there never was one: events
/// and every other endpoint work either way.
public actor EncoderHost {
    /// What `GET /v1/status` reports.
    public struct Status: Encodable, Sendable {
        /// `loading` (first load under way), `ready` or `unavailable`.
        public var state = "loading"
        public var path: String
        public var model: String?
        public var kernel: String?
        public var threads: Int
        public var loadedAt: String?
        public var loads = 0
        /// Loads tried since the agent started (successful or not).
        public var attempts = 0
        /// Why the last load failed (nil after a successful one).
        public var lastError: String?
    }

    private let path: String
    private let threads: Int
    private let cache: StoredEmbeddings?
    private let logger: Logger
    private(set) var service: EncoderService?
    private var model: TextModel?
    private var status: Status
    private var reloads = SingleFlight()

    public init(path: String, threads: Int, cache: StoredEmbeddings?, logger: Logger) {
        self.path = path
        self.threads = threads
        self.cache = cache
        self.logger = logger
        status = Status(path: path, threads: threads)
    }

    /// The service to encode with, or nil when no model is loaded.
    public var current: EncoderService? { service }

    /// The loaded model itself (for classifiers that read its embeddings), or nil.
    public var currentModel: TextModel? { model }

    public var currentStatus: Status { status }

    /// Loads the model file (off the actor: it takes a fraction of a second) and swaps it in;
    /// on failure keeps the current one and records why.
    @discardableResult
    public func reload() async -> Status {
        guard reloads.begin() else { return status }  // the load under way goes again after
        repeat { await loadOnce() } while reloads.next()
        return status
    }

    private func loadOnce() async {
        let (path, threads) = (path, threads)
        let started = Date()
        let loaded = await Blocking.run { Result { try TextModel.load(path: path, threads: threads) } }
        status.attempts += 1
        switch loaded {
        case .success(let model):
            // The agent's encoder is the store's: what others cached (one replaced, or a file
            // `aislectl --encoder` tried) goes, before the new one serves.
            if let cache {
                let key = model.cacheKey
                do {
                    let dropped = try await Blocking.run { try cache.removeAll(except: key) }
                    if dropped > 0 { logger.info("cached embeddings of other encoders dropped", metadata: ["rows": "\(dropped)"]) }
                } catch {
                    logger.warning("cached embeddings of other encoders not dropped", metadata: ["error": "\(error)"])
                }
            }
            service = EncoderService(encoder: model.encoder, tokenizer: model.tokenizer, cache: cache)
            self.model = model
            status.state = "ready"
            status.model = model.encoder.version
            status.kernel = model.encoder.kernel.rawValue
            status.loadedAt = Timestamp.format(Int64(Date().timeIntervalSince1970))
            status.loads += 1
            status.lastError = nil
            logger.info("encoder loaded", metadata: [
                "model": "\(model.encoder.version)", "kernel": "\(model.encoder.kernel.rawValue)", "threads": "\(threads)",
                "path": "\(path)", "seconds": "\(String(format: "%.2f", Date().timeIntervalSince(started)))",
            ])
        case .failure(let error):
            status.lastError = "\(error)"
            if service == nil { status.state = "unavailable" }
            logger.error(
                service == nil ? "encoder unavailable: model refused" : "model refused; still serving the previous one",
                metadata: ["error": "\(error)", "path": "\(path)", "serving": "\(status.model ?? "none")"])
        }
    }
}
