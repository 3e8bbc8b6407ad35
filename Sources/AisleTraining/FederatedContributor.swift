import AisleFederated
import AisleFeatures
import AisleModels
import AisleStore
import AisleSync
import Foundation
import GRDB

/// This store's part in federated training of the fleet's models (``FederatedModel``): its
/// feature moments for a `KIND-moments` round; for a `KIND` round, its change to the global
/// model (the round's version, as taken from the hub) after local Newton steps on its own rows —
/// rows × change and the row count, or, with differential privacy, the change clipped to the
/// round's bound plus this store's share of the Gaussian noise, and a count of 1.
public struct FederatedContributor: RoundContributor {
    public let store: Store

    public init(store: Store) { self.store = store }

    public var kinds: Set<String> { Set(FederatedModel.all.flatMap { [$0.kind, $0.momentsKind] }) }

    public func contribution(to offer: RoundOffer) async throws -> (vector: [Double]?, reason: String) {
        guard let model = FederatedModel.of(round: offer.kind) else { return (nil, "this agent does not train \(offer.kind)") }
        let s = offer.settings
        if let problem = model.problem(s, global: nil) { return (nil, problem) }
        // Moments go exact: an offer that says otherwise would have the ledger count noise never added.
        if offer.kind == model.momentsKind, s.noiseMultiplier > 0 {
            return (nil, "a moments round adds no noise, yet its offer names a noise multiplier of \(s.noiseMultiplier)")
        }
        let d = model.dimension
        let (x, y) = try await store.database.read { db in try model.rows(db, s) }
        guard x.count >= 10 else { return (nil, "only \(x.count) rows of recent activity to learn from") }
        if offer.kind == model.momentsKind { return (FederatedLogistic.moments(x, dimension: d), "moments of \(x.count) rows") }
        guard let global = try await store.database.read({ db in try Self.global(db, model, version: offer.globalVersion) }) else {
            return (nil, "global \(model.kind) v\(offer.globalVersion) has not been taken from the hub here")
        }
        var delta = FederatedLogistic.localUpdate(global: global, x, y, steps: s.localSteps, learningRate: s.learningRate, l2: s.l2)
        guard s.noiseMultiplier > 0 else { return (delta.map { $0 * Double(x.count) } + [Double(x.count)], "update from \(x.count) rows") }
        delta = FederatedLogistic.clip(delta, norm: s.clipNorm)
        // Every included store adds its part; with at least `minStores` of them the sum carries
        // noise of standard deviation noiseMultiplier × clipNorm.
        let noise = FederatedLogistic.gaussian(count: d + 1, sigma: s.noiseMultiplier * s.clipNorm / Double(offer.minStores).squareRoot())
        return (zip(delta, noise).map(+) + [1], "clipped, noised update from \(x.count) rows")
    }

    /// The purchase-intent training rows: units active before `cutoffs` moments
    /// `cutoffSpacingMinutes` apart, ending one horizon before the store's last event, and
    /// whether each bought within the horizon.
    public static func intentRows(_ db: Database, settings s: RoundSettings) throws -> (rows: [[Double]], labels: [Bool]) {
        guard let last = try Queries.lastEventTime(db) else { return ([], []) }
        let (h, lookback) = (Int64(s.horizonMinutes) * 60, Int64(s.lookbackMinutes) * 60)
        var x: [[Double]] = [], y: [Bool] = []
        for k in 0..<max(1, s.cutoffs) {
            let t = last + 1 - h - Int64(k) * Int64(s.cutoffSpacingMinutes) * 60
            let labelled = try IntentFeatures.labelled(db, asOf: t, lookback: lookback, until: t + h)
            x += labelled.rows
            y += labelled.bought
        }
        return (x, y)
    }

    /// The global model of `version` from the registry (installed or rolled back: both kept).
    static func global(_ db: Database, _ model: FederatedModel, version: Int) throws -> LogisticRegression? {
        for record in try ModelRegistry.list(db, kind: model.kind) {
            guard case .object(let p) = record.parameters, case .int(let v)? = p["global_version"], v == Int64(version) else { continue }
            let payload = try Data.fetchOne(db, sql: "SELECT payload FROM models WHERE kind = ? AND version = ?", arguments: [model.kind, record.version])
            return payload.flatMap(model.logistic)
        }
        return nil
    }
}
