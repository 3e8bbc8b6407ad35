import AisleAssist
import AisleConfig
import AisleCore
import AisleInsight
import AisleStore
import AisleText
import Crypto
import Foundation
import GRDB
import Logging

/// The kiosk assistant and product search: the active request-intent model (the shipped default
/// registered on a store without one), the store's answers file, and the catalog search index —
/// each swapped whole when it changes (a new model version, an edited answers file on SIGHUP, a
/// changed catalog or encoder). Requests read a ``Snapshot`` and run off the actor. Questions
/// and searches are logged as events, written in batches every second (a crash loses at most
/// that second: they were never acknowledged as events).
public actor AssistHost {
    /// What one request works with.
    public struct Snapshot: Sendable {
        public var intents: RequestIntents?
        public var intentsVersion: Int?
        public var search: CatalogSearch?
        public var answers: Answers?
        public var encoder: EncoderService?
    }

    public private(set) var snapshot = Snapshot()
    private let store: Store
    private let encoder: EncoderHost
    private let ingest: IngestService
    private let answersPath: String
    private let logger: Logger
    /// What the model and the index were made from (versions, encoder, catalog digest).
    private var intentsFor: [String] = []
    private var indexedFor: [String] = []
    private var refusedIntents: Set<String> = []
    private var refreshes = SingleFlight()
    /// The answers file is to be read at the next refresh (at start and on SIGHUP only: a file
    /// being edited in place is not picked up half-saved).
    private var answersDue = true
    private var offeredDefault = false
    private var pending: [JSONValue] = []
    private var dropped = 0
    /// Why the answers file was last refused (logged once per reason).
    private var answersError: String?
    /// The model and intents whose coverage by the answers was last reported.
    private var coverageReported: [String] = []

    /// Most questions and searches waiting to be written; past it the oldest are dropped (and
    /// counted in the log).
    static let maxPending = 20_000

    public init(store: Store, encoder: EncoderHost, ingest: IngestService, answersPath: String, logger: Logger) {
        (self.store, self.encoder, self.ingest, self.answersPath, self.logger) = (store, encoder, ingest, answersPath, logger)
    }

    /// Brings the model and the search index up to date, and rereads the answers file when
    /// `answers` (or a call that asked for it is pending); asked during a refresh, it runs once
    /// more after it.
    public func refresh(answers: Bool = true) async {
        answersDue = answersDue || answers
        guard refreshes.begin() else { return }
        repeat {
            if answersDue {
                answersDue = false
                reloadAnswers()
            }
            let model = await encoder.currentModel
            snapshot.encoder = await encoder.current
            do {
                if let model { try await loadIntents(model) }
                try await rebuildSearch(model)
            } catch {
                logger.error("assistant refresh failed", metadata: ["error": "\(error)"])
            }
            checkAnswersCoverIntents()
        } while refreshes.next()
    }

    /// Refreshes every `poll` (the catalog or the models may have changed) and, alongside,
    /// writes logged questions and searches every second; cancelled, writes what is left.
    public func run(poll: Duration = .seconds(30)) async {
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                while !Task.isCancelled {
                    await self.refresh(answers: false)  // the first reads them (answersDue starts true)
                    try? await Task.sleep(for: poll)
                }
            }
            group.addTask {
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(1))
                    await self.flush()
                }
            }
        }
        await flush()
    }

    /// Queues a question or search event for the store.
    public func log(_ event: JSONValue) {
        if pending.count >= Self.maxPending {
            pending.removeFirst(pending.count - Self.maxPending + 1)
            dropped += 1
        }
        pending.append(event)
    }

    /// Writes the queued events in one batch.
    public func flush() async {
        if dropped > 0 {
            logger.warning("assistant events dropped: the store did not keep up", metadata: ["events": "\(dropped)"])
            dropped = 0
        }
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
            (snapshot.answers, answersError) = (answers, nil)
        } catch {
            if answersError != error.description {
                logger.error(snapshot.answers == nil ? "answers refused; the assistant answers without them" : "answers refused; keeping the ones loaded before",
                             metadata: ["error": "\(error)"])
            }
            answersError = error.description
        }
    }

    /// Says once per model and file which intents have no answer and which answers no intent.
    private func checkAnswersCoverIntents() {
        guard let intents = snapshot.intents?.intents, let answers = snapshot.answers else { return }
        let key = [intentsFor.joined(separator: " "), answers.intents.keys.sorted().joined(separator: " ")]
        guard key != coverageReported else { return }
        coverageReported = key
        let unanswered = Set(intents).subtracting(answers.intents.keys).sorted()
        let unknown = Set(answers.intents.keys).subtracting(intents).sorted()
        if !unanswered.isEmpty { logger.warning("intents without an answer (fallback.unanswered)", metadata: ["intents": "\(unanswered.joined(separator: ", "))"]) }
        if !unknown.isEmpty { logger.warning("answers for intents the model does not have", metadata: ["intents": "\(unknown.joined(separator: ", "))"]) }
    }

    private func loadIntents(_ model: TextModel) async throws {
        let store = store
        if !offeredDefault {
            offeredDefault = true
            try await ShippedDefault.register(store, kind: RequestIntents.kind, fileName: RequestIntents.defaultFile, logger: logger) {
                _ = try RequestIntents(file: $0, encoder: model)
            }
        }
        guard let version = try await store.database.read({ try ModelRegistry.activeVersions($0, of: [RequestIntents.kind])[RequestIntents.kind] }) else { return }
        let key = ["\(version)", model.encoder.version]
        guard key != intentsFor, !refusedIntents.contains(key.joined(separator: " ")) else { return }
        guard let (record, payload) = try await store.database.read({ try ModelRegistry.active($0, kind: RequestIntents.kind) }) else { return }
        do {
            snapshot.intents = try RequestIntents(file: TextClassifierFile(data: payload, name: "assist v\(record.version)"), encoder: model)
            snapshot.intentsVersion = record.version
            intentsFor = ["\(record.version)", model.encoder.version]
            logger.info("model loaded", metadata: ["kind": "\(RequestIntents.kind)", "version": "\(record.version)"])
        } catch {
            refusedIntents.insert(key.joined(separator: " "))
            // A model that does not fit the encoder now loaded must not read its embeddings.
            if snapshot.intents?.model.map({ $0.encoder.version != model.encoder.version }) ?? false { (snapshot.intents, snapshot.intentsVersion) = (nil, nil) }
            logger.error("model refused", metadata: ["kind": "\(RequestIntents.kind)", "version": "\(record.version)", "error": "\(error)"])
        }
    }

    /// Rebuilds the search index when the catalog, the encoder or the themes changed.
    private func rebuildSearch(_ model: TextModel?) async throws {
        let store = store
        let (catalog, themesVersion) = try await store.database.read { db in
            (try Self.catalogDigest(db), try ModelRegistry.activeVersions(db, of: [ThemeModel.kind])[ThemeModel.kind])
        }
        let key = [catalog, model?.cacheKey ?? "", themesVersion.map(String.init) ?? ""]
        guard key != indexedFor else { return }
        let started = Date()
        let search = try await Blocking.background {
            let embeddings = try model.map { try CatalogEmbeddings.load(store, model: $0) }
            return try store.database.read { db in
                let themes = try ThemeModel.active(db)
                return try CatalogSearch(db, embeddings: embeddings, encoderKey: model?.cacheKey, themes: themes?.model, themesVersion: themes?.version)
            }
        }
        snapshot.search = search
        indexedFor = key
        logger.info("search index built", metadata: [
            "items": "\(search.items.count)", "dense": "\(search.encoderKey != nil)", "seconds": "\(String(format: "%.1f", Date().timeIntervalSince(started)))",
        ])
    }

    /// A digest of everything the index shows of the catalog (ids, titles, categories, prices,
    /// flags): any edit changes it. Not stock, which each search reads itself.
    static func catalogDigest(_ db: Database) throws -> String {
        var hash = SHA256()
        let rows = try Row.fetchCursor(db, sql: "SELECT id, title, coalesce(category, ''), coalesce(price, -1), active, sellable FROM items ORDER BY id")
        while let row = try rows.next() {
            hash.update(data: Data("\(row[0] as Int64)\u{1}\(row[1] as String)\u{1}\(row[2] as String)\u{1}\(row[3] as Double)\u{1}\(row[4] as Int64)\(row[5] as Int64)\n".utf8))
        }
        return Hex.string(hash.finalize())
    }
}
