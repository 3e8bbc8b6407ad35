import AisleCore
import AisleFeatures
import AisleInsight
import AisleModels
import AisleStore
import AisleSync
import Foundation
import GRDB

/// Takes global models from the hub into the store's registry: a model is checked on the
/// store's most recent data (the holdout) beside the active one, and made active only when
/// it does not do worse by more than `margin`; otherwise the registry keeps (rolls back to)
/// the version in use. Either way the new version stays in the registry's history.
public struct GlobalModels: ModelInstaller {
    public let store: Store
    /// Largest drop of the holdout metric (AUC) tolerated.
    public var margin: Double
    /// Purchase intent's holdout: windows of one horizon each, ending at the store's last event.
    static let holdoutWindows = 3

    public init(store: Store, margin: Double = 0.02) { (self.store, self.margin) = (store, margin) }

    /// Who the registry records as having made a global model.
    public static let actor = "aisle-hub"

    public var kinds: Set<String> { Set(FederatedModel.all.map(\.kind) + [StorePriors.kind]) }

    public func install(_ manifest: ModelManifest, payload: Data, record: @escaping @Sendable (Database, InstallOutcome) throws -> Void) async throws -> InstallOutcome {
        if manifest.kind == StorePriors.kind { return try await installPriors(manifest, payload, record: record) }
        guard let model = FederatedModel.all.first(where: { $0.kind == manifest.kind }), model.accepts(payload) else {
            return InstallOutcome(.refused, detail: "the payload is not a \(manifest.kind) model over this agent's features (or its parameters are not finite)")
        }
        struct Metrics: Encodable { var holdoutAuc: Double?; var hub: [String: Double] }
        var parameters = model.parameters(payload)
        parameters["global_version"] = .int(Int64(manifest.version))
        parameters["round"] = .int(Int64(manifest.round))
        parameters["epsilon"] = manifest.epsilon.map { .double($0) } ?? .null
        // Compared outside the writer (scoring takes a while); registered only if the version
        // compared with is still the active one, else compared again with the new one.
        for _ in 0..<Self.comparisons {
            let (new, old) = try await store.database.read { db -> (Double?, (version: Int, auc: Double?)?) in
                let active = try ModelRegistry.active(db, kind: model.kind)
                return (try model.holdoutAUC(db, candidate: payload, scored: payload), try active.map { ($0.record.version, try model.holdoutAUC(db, candidate: payload, scored: $0.payload)) })
            }
            let (regressed, detail) = verdict(new: new, old: old?.auc)
            let outcome = try await store.database.write { [parameters] db -> InstallOutcome? in
                guard try ModelRegistry.activeVersions(db)[model.kind] == old?.version else { return nil }
                let registered = try ModelRegistry.register(
                    db, kind: model.kind, payload: payload, parameters: JSONValue.object(parameters),
                    metrics: Metrics(holdoutAuc: new, hub: manifest.metrics), features: model.features, dataFrom: nil, dataUntil: nil,
                    activate: !regressed, actor: Self.actor)
                let outcome = InstallOutcome(regressed ? .rolledBack : .installed, registryVersion: registered.version, detail: detail)
                try record(db, outcome)
                return outcome
            }
            if let outcome { return outcome }
        }
        throw InstallRaced(kind: model.kind)
    }

    /// Times a model is compared before giving up when the active version keeps changing.
    static let comparisons = 3

    /// The active version changed under every comparison (the model is offered again next pass).
    struct InstallRaced: Error, CustomStringConvertible {
        var kind: String
        var description: String { "the active \(kind) version changed while the global model was compared with it, \(GlobalModels.comparisons) times" }
    }

    /// Whether the new model's holdout AUC regressed beyond the margin, and why, in words.
    func verdict(new: Double?, old: Double?) -> (regressed: Bool, detail: String) {
        switch (new, old) {
        case (let n?, let o?):
            return (n < o - margin, String(format: "local AUC %.4f vs %.4f of the version in use (margin %.3f)", n, o, margin))
        case (let n?, nil):
            return (false, String(format: "local AUC %.4f; no active model to compare with", n))
        default:
            return (false, "too few recent buyers here to check it locally")
        }
    }

    /// Global priors have nothing to check against here: they are registered and active.
    func installPriors(_ manifest: ModelManifest, _ payload: Data, record: @escaping @Sendable (Database, InstallOutcome) throws -> Void) async throws -> InstallOutcome {
        guard let priors = try? SyncJSON.decode(GlobalPriors.self, payload, "priors") else {
            return InstallOutcome(.refused, detail: "the payload is not global priors this agent reads")
        }
        struct Metrics: Encodable { var stores: Int; var items: Int; var pairs: Int }
        return try await store.database.write { db in
            let registered = try ModelRegistry.register(
                db, kind: StorePriors.kind, payload: payload, parameters: JSONValue.object(["global_version": .int(Int64(manifest.version))]),
                metrics: Metrics(stores: priors.stores, items: priors.items.count, pairs: priors.pairs.count), features: [], dataFrom: nil, dataUntil: nil,
                actor: Self.actor)
            let outcome = InstallOutcome(.installed, registryVersion: registered.version, detail: "\(priors.items.count) items, \(priors.pairs.count) pairs from \(priors.stores) stores")
            try record(db, outcome)
            return outcome
        }
    }

    /// The purchase-intent holdout: shoppers of the last `holdoutWindows` horizons before the
    /// store's last event, and whether each bought within its horizon (the training rows'
    /// reading, with moments one horizon apart).
    static func intentHoldout(_ db: Database, lookbackMinutes: Int, horizonMinutes: Int) throws -> (rows: [[Double]], labels: [Bool]) {
        var s = RoundSettings()
        (s.lookbackMinutes, s.horizonMinutes, s.cutoffs, s.cutoffSpacingMinutes) = (lookbackMinutes, horizonMinutes, holdoutWindows, horizonMinutes)
        return try FederatedContributor.intentRows(db, settings: s)
    }
}
