import AisleAssist
import AisleConfig
import AisleCore
import AisleInsight
import AisleStore
import AisleText
import Foundation
import GRDB
import Logging

/// The kiosk assistant and product search: the active request-intent model (the shipped default
/// registered on a store without one), the store's answers file, and the catalog search index —
/// each swapped whole when it changes (a new model version, an edited answers file on SIGHUP, a
/// changed catalog or encoder). Requests read a ``Snapshot`` and run off the actor. Questions
/// and searches are logged as events, written in batches every second.
public actor AssistHost {
    /// What one request works with.
    public struct Snapshot: Sendable {
        public var intents: RequestIntents?
        public var intentsVersion: Int?
        public var search: CatalogSearch?
        public var answers: Answers?
        /// Why the answers file was refused, when it was.
        public var answersError: String?
        public var encoder: EncoderService?
    }

    public private(set) var snapshot = Snapshot()
    private let store: Store
    private let encoder: EncoderHost
    private let ingest: IngestService
    private let answersPath: String
    private let logger: Logger
    private var indexedFor: [String] = []
    private var refusedIntents: Set<String> = []
    private var refreshing = false
    private var offeredDefault = false
    private var pending: [JSONValue] = []

    public init(store: Store, encoder: EncoderHost, ingest: IngestService, answersPath: String, logger: Logger) {
        (self.store, self.encoder, self.ingest, self.answersPath, self.logger) = (store, encoder, ingest, answersPath, logger)
    }

    /// Rereads the answers file and brings the model and the search index up to date.
    public func refresh() async {
        guard !refreshing else { return }
        refreshing = true
        defer { refreshing = false }
        reloadAnswers()
        let model = await encoder.currentModel
        snapshot.encoder = await encoder.current
        do {
            if let model { try await loadIntents(model) }
            try await rebuildSearch(model)
        } catch {
            logger.error("assistant refresh failed", metadata: ["error": "\(error)"])
        }
    }

    /// Refreshes every `poll` (the catalog or the models may have changed) and writes logged
    /// questions and searches every second.
    public func run(poll: Duration = .seconds(30)) async {
        var last = ContinuousClock.now - poll
        while !Task.isCancelled {
            if ContinuousClock.now - last >= poll {
                last = .now
                await refresh()
            }
            await flush()
            try? await Task.sleep(for: .seconds(1))
        }
        await flush()
    }

    /// Queues a question or search event for the store.
    public func log(_ event: JSONValue) { pending.append(event) }

    /// Writes the queued events in one batch.
    public func flush() async {
        guard !pending.isEmpty else { return }
        let batch = pending
        pending = []
        do {
            let answer = try await ingest.ingest(batch)
            if answer.rejected > 0 { logger.warning("assistant events refused", metadata: ["rejected": "\(answer.rejected)"]) }
        } catch {
            logger.error("assistant events not written", metadata: ["events": "\(batch.count)", "error": "\(error)"])
        }
    }

    private func reloadAnswers() {
        do throws(ConfigError) {
            let answers = try Answers.load(answersPath)
            if answers != snapshot.answers { logger.info("answers loaded", metadata: ["path": "\(answersPath)", "intents": "\(answers.intents.count)"]) }
            (snapshot.answers, snapshot.answersError) = (answers, nil)
        } catch {
            if snapshot.answersError != error.description {
                logger.error(snapshot.answers == nil ? "answers refused; the assistant answers without them" : "answers refused; keeping the ones loaded before",
                             metadata: ["error": "\(error)"])
            }
            snapshot.answersError = error.description
        }
    }

    private func loadIntents(_ model: TextModel) async throws {
        let store = store
        if !offeredDefault {
            offeredDefault = true
            try await ShippedDefault.register(store, kind: RequestIntents.kind, fileName: RequestIntents.defaultFile, logger: logger) {
                _ = try RequestIntents(file: $0, encoder: model)
            }
        }
        guard let (record, payload) = try await store.database.read({ try ModelRegistry.active($0, kind: RequestIntents.kind) }) else { return }
        let attempt = "\(record.version) \(model.encoder.version)"
        guard snapshot.intentsVersion != record.version || snapshot.intents?.model?.encoder.version != model.encoder.version, !refusedIntents.contains(attempt) else { return }
        do {
            snapshot.intents = try RequestIntents(file: TextClassifierFile(data: payload, name: "assist v\(record.version)"), encoder: model)
            snapshot.intentsVersion = record.version
            logger.info("model loaded", metadata: ["kind": "\(RequestIntents.kind)", "version": "\(record.version)"])
        } catch {
            refusedIntents.insert(attempt)
            logger.error("model refused", metadata: ["kind": "\(RequestIntents.kind)", "version": "\(record.version)", "error": "\(error)"])
        }
    }

    /// Rebuilds the search index when the catalog, the encoder or the themes changed.
    private func rebuildSearch(_ model: TextModel?) async throws {
        let store = store
        let (catalog, themes) = try await store.database.read { db in
            (try Row.fetchOne(db, sql: "SELECT count(*), coalesce(max(id), 0), coalesce(sum(active * 2 + sellable), 0), coalesce(sum(length(title)), 0) FROM items"),
             try ThemeModel.active(db))
        }
        let key = [catalog.map { "\($0[0] as Int64)-\($0[1] as Int64)-\($0[2] as Int64)-\($0[3] as Int64)" } ?? "", model?.encoder.version ?? "", themes.map { "\($0.version)" } ?? ""]
        guard key != indexedFor else { return }
        let started = Date()
        let search = try await Blocking.run {
            let embeddings = try model.map { try CatalogEmbeddings.load(store, model: $0) }
            return try store.database.read { db in
                try CatalogSearch(db, embeddings: embeddings, encoderVersion: model?.encoder.version, themes: themes?.model)
            }
        }
        snapshot.search = search
        indexedFor = key
        logger.info("search index built", metadata: [
            "items": "\(search.items.count)", "dense": "\(search.encoderVersion != nil)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))",
        ])
    }
}
