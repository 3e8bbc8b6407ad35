import AisleInsight
import AisleStore
import AisleText
import Foundation
import Logging

/// Scores every review's sentiment in the background with the registry's active sentiment model
/// (``ReviewSentiment``), new reviews within a poll of their arrival; all of them again when
/// another version becomes active. A store without a sentiment model gets the shipped default
/// registered as its first version. Waits for the encoder when the model reads its embeddings.
actor ReviewScorer {
    private let store: Store
    private let encoder: EncoderHost
    private let logger: Logger
    private var classifier: (version: Int, model: SentimentClassifier)?
    private var highWater: Int64 = 0
    private var offeredDefault = false
    /// The model version and encoder that failed to load together, so they are not retried every poll.
    private var refused: String?

    init(store: Store, encoder: EncoderHost, logger: Logger) {
        (self.store, self.encoder, self.logger) = (store, encoder, logger)
    }

    /// Scores every `poll` (every second while the encoder is still loading) until cancelled.
    func run(poll: Duration = .seconds(30)) async {
        while !Task.isCancelled {
            do { try await scorePending() } catch { logger.error("review scoring failed", metadata: ["error": "\(error)"]) }
            let loading = await encoder.currentStatus.state == "loading"
            try? await Task.sleep(for: loading ? .seconds(1) : poll)
        }
    }

    /// Scores the reviews the active model has not scored yet, in batches.
    func scorePending() async throws {
        guard let textModel = await encoder.currentModel, try await loadActive(textModel), let (version, model) = classifier else { return }
        let store = store
        var scored = 0
        let started = Date()
        while !Task.isCancelled {
            let after = highWater
            let batch = try await store.database.read { try ReviewSentiment.pending($0, version: version, after: after, limit: 128) }
            guard let last = batch.last?.id else { break }
            let scores = await Task.detached { model.predict(batch.map(\.text)) }.value
            try await store.database.write { try ReviewSentiment.record($0, version: version, scores: zip(batch, scores).map { ($0.id, $1) }) }
            highWater = last
            scored += batch.count
        }
        if scored > 0 {
            logger.info("reviews scored", metadata: ["reviews": "\(scored)", "model": "sentiment v\(version)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))"])
        }
    }

    /// Loads the active version when it changed; registers the shipped default when there is none.
    private func loadActive(_ textModel: TextModel) async throws -> Bool {
        let store = store
        var active = try await store.database.read { try ModelRegistry.active($0, kind: SentimentClassifier.kind) }
        if active == nil, !offeredDefault {
            offeredDefault = true
            if let path = ShippedModels.path(SentimentClassifier.defaultFile), let bytes = FileManager.default.contents(atPath: path) {
                let file = try TextClassifierFile(data: bytes, name: path)
                _ = try SentimentClassifier(file: file, encoder: textModel)
                struct Source: Encodable { var shippedDefault: String }
                let record = try TextClassifierFile.register(
                    store, kind: SentimentClassifier.kind, file: file, bytes: bytes, source: SentimentClassifier.defaultFile,
                    metrics: Source(shippedDefault: path), activate: true, actor: "aisled")
                logger.info("default sentiment model registered", metadata: ["version": "\(record.version)", "path": "\(path)"])
                active = try await store.database.read { try ModelRegistry.active($0, kind: SentimentClassifier.kind) }
            }
        }
        guard let (record, payload) = active else { return false }
        if classifier?.version == record.version { return true }
        let attempt = "\(record.version) \(textModel.encoder.version)"
        if refused == attempt { return false }
        do {
            let file = try TextClassifierFile(data: payload, name: "sentiment v\(record.version)")
            classifier = (record.version, try SentimentClassifier(file: file, encoder: textModel))
            highWater = try await store.database.read { try ReviewSentiment.highWater($0, version: record.version) }
            logger.info("sentiment model loaded", metadata: ["version": "\(record.version)"])
            return true
        } catch {
            refused = attempt
            logger.error("sentiment model refused; reviews keep their scores", metadata: ["version": "\(record.version)", "error": "\(error)"])
            return false
        }
    }
}
