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
    /// Holdout windows of one horizon each, ending at the store's last event.
    public var windows = 3

    public init(store: Store, margin: Double = 0.02) { (self.store, self.margin) = (store, margin) }

    public var kinds: Set<String> { [IntentModel.kind, StorePriors.kind] }

    public func install(_ manifest: ModelManifest, payload: Data) async throws -> InstallOutcome {
        if manifest.kind == StorePriors.kind { return try await installPriors(manifest, payload) }
        guard let candidate = try? JSONDecoder().decode(IntentModel.self, from: payload) else {
            return InstallOutcome(.refused, detail: "the payload is not an intent model this agent reads")
        }
        guard candidate.model.features == IntentFeatures.names else {
            return InstallOutcome(.refused, detail: "built for features \(candidate.model.features.joined(separator: ",")), not this agent's")
        }
        let windows = windows
        let (new, old) = try await store.database.read { db -> (Double?, (version: Int, auc: Double?)?) in
            let active = try IntentModel.active(db)
            return (try Self.holdoutAUC(db, candidate, windows: windows), try active.map { ($0.version, try Self.holdoutAUC(db, $0.model, windows: windows)) })
        }
        var regressed = false
        let detail: String
        switch (new, old) {
        case (let n?, let o?) where o.auc != nil:
            let o = o.auc ?? 0
            regressed = n < o - margin
            detail = String(format: "local AUC %.4f vs %.4f of the version in use (margin %.3f)", n, o, margin)
        case (let n?, _):
            detail = String(format: "local AUC %.4f; no active model to compare with", n)
        default:
            detail = "too few recent buyers here to check it locally"
        }
        struct Metrics: Encodable { var holdoutAuc: Double?; var hub: [String: Double] }
        let record = try await store.database.write { [regressed] db in
            try ModelRegistry.register(
                db, kind: IntentModel.kind, payload: payload,
                parameters: JSONValue.object([
                    "global_version": .int(Int64(manifest.version)), "round": .int(Int64(manifest.round)), "epsilon": manifest.epsilon.map { .double($0) } ?? .null,
                    "lookback_minutes": .int(Int64(candidate.lookbackMinutes)), "horizon_minutes": .int(Int64(candidate.horizonMinutes)),
                ]),
                metrics: Metrics(holdoutAuc: new, hub: manifest.metrics), features: IntentFeatures.names, dataFrom: nil, dataUntil: nil,
                activate: !regressed, actor: "aisle-hub")
        }
        return InstallOutcome(regressed ? .rolledBack : .installed, registryVersion: record.version, detail: detail)
    }

    /// Global priors have nothing to check against here: they are registered and active.
    func installPriors(_ manifest: ModelManifest, _ payload: Data) async throws -> InstallOutcome {
        guard let priors = try? SyncJSON.decode(GlobalPriors.self, payload, "priors") else {
            return InstallOutcome(.refused, detail: "the payload is not global priors this agent reads")
        }
        struct Metrics: Encodable { var stores: Int; var items: Int; var pairs: Int }
        let record = try await store.database.write { db in
            try ModelRegistry.register(
                db, kind: StorePriors.kind, payload: payload, parameters: JSONValue.object(["global_version": .int(Int64(manifest.version))]),
                metrics: Metrics(stores: priors.stores, items: priors.items.count, pairs: priors.pairs.count), features: [], dataFrom: nil, dataUntil: nil,
                actor: "aisle-hub")
        }
        return InstallOutcome(.installed, registryVersion: record.version, detail: "\(priors.items.count) items, \(priors.pairs.count) pairs from \(priors.stores) stores")
    }

    /// AUC of `model` over the last `windows` horizons of the store's events; nil with fewer
    /// than 10 buyers or non-buyers.
    static func holdoutAUC(_ db: Database, _ model: IntentModel, windows: Int) throws -> Double? {
        guard let last = try Queries.lastEventTime(db) else { return nil }
        let (h, lookback) = (Int64(model.horizonMinutes) * 60, Int64(model.lookbackMinutes) * 60)
        var scores: [Double] = [], labels: [Bool] = []
        for k in 1...max(1, windows) {
            let t = last + 1 - Int64(k) * h
            let d = try IntentFeatures.labelled(db, asOf: t, lookback: lookback, until: t + h)
            scores += d.rows.map(model.model.probability)
            labels += d.bought
        }
        let positives = labels.filter { $0 }.count
        guard positives >= 10, labels.count - positives >= 10 else { return nil }
        return Metrics.auc(scores: scores, labels: labels)
    }
}
