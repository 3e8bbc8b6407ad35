import AisleCore
import AisleInsight
import AisleTraining
import AisleStore
import Foundation
import Logging

/// The agent's scheduled retraining: each trainable model whose newest version is older than
/// `interval` (or missing) is trained as of the latest event and registered as the new active
/// version unless it validates clearly worse than the active one
/// (``ModelTrainer/Activation/unlessWorse``: it is kept, inactive, for a person to look at; after
/// three intervals the newest is taken) — except a kind whose active version came from the hub
/// (the fleet's model serves until a person trains or rolls back by hand) or one a person chose
/// with `aislectl model rollback` (``ModelRegistry/rolledBack(_:)``: it serves until another
/// version is made active). The
/// agent's retraining task calls it at start and every minute; a model the store has no data for
/// yet is logged and tried again an hour later; the themes wait for the encoder to load.
actor Retrainer {
    let store: Store
    let settings: ModelTrainer.Settings
    /// Nil: never (the agent's `training.every_hours = 0`).
    let interval: Duration?
    let logger: Logger
    let encoder: EncoderHost
    private var lastAttempt: [String: Date] = [:]
    /// Kinds found rolled back by hand, logged once.
    private var noted: Set<String> = []
    /// Active versions this build read, by kind: not decoded again every minute.
    private var readable: [String: Int] = [:]

    init(store: Store, settings: ModelTrainer.Settings, interval: Duration?, encoder: EncoderHost, logger: Logger) {
        (self.store, self.settings, self.interval, self.encoder, self.logger) = (store, settings, interval, encoder, logger)
    }

    func trainDue() async {
        guard let interval else { return }
        let store = store, settings = settings, seconds = Double(interval.components.seconds)
        let started = Date()
        let textModel = await encoder.currentModel
        let versions = (try? await store.database.read { db in try ModelRegistry.list(db) }) ?? []
        let rolledBack = (try? await store.database.read(ModelRegistry.rolledBack)) ?? []
        for kind in rolledBack.subtracting(noted).sorted() {
            logger.notice("a model was rolled back by hand; the agent does not retrain it until `aislectl train \(kind)`", metadata: ["kind": "\(kind)"])
        }
        noted = rolledBack
        // An active version this build cannot read is replaced whoever made it (an upgrade that
        // changed a model's features, a damaged payload).
        let active = Dictionary(versions.filter(\.active).map { ($0.kind, $0.version) }, uniquingKeysWith: max)
        let unchecked = ModelTrainer.kinds.filter { active[$0] != nil && readable[$0] != active[$0] }
        let checked = (try? await store.database.read { db in unchecked.map { ($0, (try? ModelTrainer.loadActive(db, kind: $0)) != nil) } }) ?? []
        for (kind, ok) in checked where ok { readable[kind] = active[kind] }
        let unreadable = Set(checked.filter { !$0.1 }.map(\.0))
        let due = ModelTrainer.kinds.filter { kind in
            if unreadable.contains(kind) { return true }
            guard !rolledBack.contains(kind), versions.first(where: { $0.kind == kind && $0.active })?.actor != GlobalModels.actor else { return false }
            // The newest version's age, active or held back: one held back is not retrained hourly.
            let newest = versions.filter { $0.kind == kind }.max { $0.version < $1.version }
            guard let made = newest.flatMap({ try? Timestamp.parse($0.createdAt) }) else { return true }
            return started.timeIntervalSince1970 - Double(made) >= seconds
        }.filter { kind in lastAttempt[kind].map { started.timeIntervalSince($0) >= min(seconds, 3600) } ?? true }
            .filter { $0 != ThemeModel.kind || textModel != nil }  // the themes wait for the encoder
        for kind in due { lastAttempt[kind] = started }
        for kind in due where !Task.isCancelled {
            let result: Result<ModelTrainer.Result?, any Error> = await Blocking.background {
                Result { () throws -> ModelTrainer.Result? in
                    guard let last = try store.database.read(Queries.lastEventTime) else { return nil }
                    return try ModelTrainer.train(kind, store: store, asOf: last + 1, settings: settings, encoder: textModel, activation: unreadable.contains(kind) ? .yes : .unlessWorse(whileActiveYoungerThan: 3 * seconds), actor: "aisled")
                }
            }
            switch result {
            case .success(let trained?) where trained.heldBack != nil:
                logger.warning("model trained but not activated (`aislectl model rollback KIND --to VERSION` activates it if wanted)", metadata: [
                    "kind": "\(kind)", "version": "\(trained.record.version)", "reason": "\(trained.heldBack ?? "")",
                ])
            case .success(let trained?):
                logger.info("model trained", metadata: ["kind": "\(kind)", "version": "\(trained.record.version)"])
            case .success(nil):
                break
            case .failure(let error):
                logger.notice("model not trained", metadata: ["kind": "\(kind)", "reason": "\(error)"])
            }
        }
    }
}
