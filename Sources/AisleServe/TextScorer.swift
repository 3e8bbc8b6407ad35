import AisleCore
import AisleInsight
import AisleStore
import AisleText
import Foundation
import GRDB
import Logging

/// Derives what the agent needs from event texts, in the background: every review's sentiment
/// with the registry's active sentiment model, and the nearest catalog theme of every search,
/// question and review with the active themes model (customers' interests count them). New
/// texts are scored within a poll of their arrival; all of them again when another version
/// becomes active. A store without a sentiment model gets the shipped default registered as its
/// first version. Nothing runs until the encoder is loaded.
actor TextScorer {
    private struct Loaded<Model: Sendable>: Sendable {
        var version: Int
        var model: Model
        var highWater: Int64
        /// The encoder's version it was checked against and reads with.
        var encoder: String
    }

    private let store: Store
    private let encoder: EncoderHost
    private let logger: Logger
    private var sentiment: Loaded<SentimentClassifier>?
    private var themes: Loaded<ThemeModel>?
    private var offeredDefault = false
    /// Model versions and encoders that failed to load together, so they are not retried every poll.
    private var refused: Set<String> = []
    /// ``CustomerErasure/generation(_:)`` when the scores' high-water marks were read: after an
    /// erasure they are read again, as SQLite may give the erased events' ids to new ones.
    private var erasures: Int64 = 0
    private var runs = SingleFlight()

    init(store: Store, encoder: EncoderHost, logger: Logger) {
        (self.store, self.encoder, self.logger) = (store, encoder, logger)
    }

    /// Scores every `poll` (every second while the encoder is still loading) until cancelled.
    func run(poll: Duration = .seconds(30)) async {
        while !Task.isCancelled {
            do { try await scorePending() } catch { logger.error("text scoring failed", metadata: ["error": "\(error)"]) }
            let loading = await encoder.currentStatus.state == "loading"
            try? await Task.sleep(for: loading ? .seconds(1) : poll)
        }
    }

    /// Scores the texts the active models have not scored yet; called while it runs (the poll
    /// and SIGHUP), it runs once more after.
    func scorePending() async throws {
        guard runs.begin() else { return }
        do {
            repeat { try await scoreOnce() } while runs.next()
        } catch {
            runs.end()
            throw error
        }
    }

    private func scoreOnce() async throws {
        guard let textModel = await encoder.currentModel else { return }
        let erasures = try await store.database.read(CustomerErasure.generation)
        if erasures != self.erasures { (sentiment, themes, self.erasures) = (nil, nil, erasures) }
        try await offerDefaultSentiment(textModel)
        sentiment = try await load(SentimentClassifier.kind, into: .reviewSentiment, current: sentiment, textModel) { payload, version in
            try SentimentClassifier(file: TextClassifierFile(data: payload, name: "sentiment v\(version)"), encoder: textModel)
        }
        if var s = sentiment {
            let (model, version) = (s.model, s.version)
            s.highWater = try await drain(.reviewSentiment, version: version, after: s.highWater) { batch in
                let scores = model.predict(batch.map(\.text))
                return { try ReviewSentiment.record($0, version: version, scores: zip(batch, scores).map { ($0.id, $1) }) }
            }
            sentiment = s
        }
        themes = try await load(ThemeModel.kind, into: .textThemes, current: themes, textModel) { payload, version in
            let model = try JSONDecoder().decode(ThemeModel.self, from: payload)
            guard model.encoderVersion == textModel.encoder.version else {
                throw InputError("themes v\(version) were made with encoder \(model.encoderVersion); the loaded encoder is \(textModel.encoder.version) — train them again")
            }
            return model
        }
        if var t = themes {
            let (model, version) = (t.model, t.version)
            t.highWater = try await drain(.textThemes, version: version, after: t.highWater) { batch in
                let vectors = textModel.encoder.embed(batch: batch.map { textModel.tokenizer.encode($0.text) })
                let nearest = zip(batch, vectors).map { event, v in
                    let a = model.clusters.assign(v)
                    return (id: event.id, theme: a.cluster, similarity: Double(a.similarity))
                }
                return { try TextScores.recordThemes($0, version: version, themes: nearest) }
            }
            themes = t
        }
    }

    /// Scores pending texts of `kind` in batches: `compute` runs off the actor and returns the
    /// write. Returns the new high-water mark.
    private func drain(
        _ kind: TextScores.Kind, version: Int, after start: Int64,
        compute: @escaping @Sendable ([(id: Int64, text: String)]) -> @Sendable (Database) throws -> Void
    ) async throws -> Int64 {
        let store = store
        var after = start, scored = 0
        let started = Date()
        while !Task.isCancelled {
            let from = after
            let batch = try await store.database.read { try TextScores.pending($0, kind, version: version, after: from, limit: 128) }
            guard let last = batch.last?.id else { break }
            let write = await Blocking.run { compute(batch) }  // the encoder, shared with requests: not at background priority
            try await store.database.write(write)
            after = last
            scored += batch.count
        }
        if scored > 0 {
            logger.info("texts scored", metadata: [
                "texts": "\(scored)", "table": "\(kind)", "version": "\(version)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))",
            ])
        }
        return after
    }

    /// The active version of `kind`, decoded by `decode` when it changed, with how far its scores
    /// in `table` have got; nil when there is none or it was refused (logged once).
    private func load<Model: Sendable>(
        _ kind: String, into table: TextScores.Kind, current: Loaded<Model>?, _ textModel: TextModel, decode: (Data, Int) throws -> Model
    ) async throws -> Loaded<Model>? {
        let store = store
        guard let (record, payload) = try await store.database.read({ try ModelRegistry.active($0, kind: kind) }) else { return nil }
        // Loaded again after an encoder swap: the model may not fit the new one.
        if let current, current.version == record.version, current.encoder == textModel.encoder.version { return current }
        let attempt = "\(kind) \(record.version) \(textModel.encoder.version)"
        guard !refused.contains(attempt) else { return nil }
        do {
            let model = try decode(payload, record.version)
            let highWater = try await store.database.read { try TextScores.highWater($0, table, version: record.version) }
            logger.info("model loaded", metadata: ["kind": "\(kind)", "version": "\(record.version)"])
            return Loaded(version: record.version, model: model, highWater: highWater, encoder: textModel.encoder.version)
        } catch {
            refused.insert(attempt)
            logger.error("model refused; earlier scores stay", metadata: ["kind": "\(kind)", "version": "\(record.version)", "error": "\(error)"])
            return nil
        }
    }

    /// Registers the shipped default sentiment model when the store has none (once per start).
    private func offerDefaultSentiment(_ textModel: TextModel) async throws {
        guard !offeredDefault else { return }
        offeredDefault = true
        try await ShippedDefault.register(store, kind: SentimentClassifier.kind, fileName: SentimentClassifier.defaultFile, logger: logger) {
            _ = try SentimentClassifier(file: $0, encoder: textModel)
        }
    }
}

/// The text models that ship in firmware-config/models (``ShippedModels``).
enum ShippedDefault {
    /// Registers the shipped file `fileName` as the active `kind` when the store has no version
    /// of it; `check` loads it as the agent would, so a file that does not fit is refused.
    static func register(_ store: Store, kind: String, fileName: String, logger: Logger, check: (TextClassifierFile) throws -> Void) async throws {
        guard try await store.database.read({ try ModelRegistry.activeVersions($0)[kind] }) == nil,
              let path = ShippedModels.path(fileName), let bytes = FileManager.default.contents(atPath: path)
        else { return }
        let file = try TextClassifierFile(data: bytes, name: path)
        try check(file)
        struct Source: Encodable { var shippedDefault: String }
        let record = try await Blocking.run {
            try TextClassifierFile.register(store, kind: kind, file: file, bytes: bytes, source: fileName, metrics: Source(shippedDefault: path), activate: true, actor: "aisled")
        }
        logger.info("default model registered", metadata: ["kind": "\(kind)", "version": "\(record.version)", "path": "\(path)"])
    }
}
