import AisleFederated
import AisleFeatures
import AisleInsight
import AisleModels
import AisleSync
import Foundation
import GRDB

/// What the hub makes of a federated round's sum: the global purchase-intent model. An
/// `intent-moments` round sums the stores' feature moments (rows, Σx, Σx²) into the first
/// global model (the standardisation, zero weights); each `intent` round sums the stores'
/// updates and moves the global weights by FedAvg or FedAdam. Each result is published, signed,
/// as the next `intent` version, with the ε spent so far.
enum HubFederation {
    static let momentsKind = "intent-moments"
    static let updateKind = "intent"
    static var dimension: Int { IntentFeatures.names.count }

    /// The vector length of a federated kind; nil for plain secure sums.
    static func length(of kind: String) -> Int? {
        switch kind {
        case momentsKind: 1 + 2 * dimension
        case updateKind: dimension + 2
        default: nil
        }
    }

    /// The model kind a round builds on.
    static func modelKind(of kind: String) -> String { kind == momentsKind ? updateKind : kind }

    /// A first global model built from no store data: zero weights on the features as they are
    /// (log-scaled counts and shares; no standardisation), for rounds with differential privacy,
    /// which the unnoised moments round is not.
    static func blankModel(_ s: RoundSettings = .init()) throws -> Data {
        let d = dimension
        let logistic = LogisticRegression(weights: Array(repeating: 0, count: d), intercept: 0, means: Array(repeating: 0, count: d), scales: Array(repeating: 1, count: d))
        return try JSONEncoder().encode(
            IntentModel(lookbackMinutes: s.lookbackMinutes, horizonMinutes: s.horizonMinutes, model: TabularModel(logistic: logistic, features: IntentFeatures.names)))
    }

    /// The server optimizer and the privacy accountant of a kind, kept between rounds.
    struct State: Codable {
        var optimizer: FederatedLogistic.ServerOptimizer
        var accountant = PrivacyAccountant()
        /// An update round went without noise: the model is not differentially private.
        var noiseless = false
    }

    /// Publishes the model a closed round's `sum` gives, in the transaction that closes it.
    static func finish(_ db: Database, _ hub: HubDatabase, round: HubRounds.Round, sum words: [UInt32], included: Int) throws -> ModelManifest? {
        let settings = round.settings
        let sum = FixedPoint(scale: settings.scale).decode(words)
        let d = dimension
        switch round.kind {
        case momentsKind:
            let initial = FederatedLogistic.initial(fromMoments: sum, dimension: d)
            let model = IntentModel(
                lookbackMinutes: settings.lookbackMinutes, horizonMinutes: settings.horizonMinutes, model: TabularModel(logistic: initial, features: IntentFeatures.names))
            return try HubAdmin.publish(
                db, hub, kind: updateKind, payload: try JSONEncoder().encode(model), round: round.id, epsilon: nil, delta: settings.delta,
                metrics: ["stores": Double(included), "rows": sum[0].rounded()])
        case updateKind:
            let newest = try Int.fetchOne(db, sql: "SELECT max(version) FROM models WHERE kind = ?", arguments: [updateKind]) ?? 0
            guard newest == round.globalVersion else {
                throw SyncError(.internal, "global intent moved from v\(round.globalVersion) to v\(newest) during the round; its update is not applied")
            }
            guard let payload = try Data.fetchOne(db, sql: "SELECT payload FROM models WHERE kind = ? AND version = ?", arguments: [updateKind, round.globalVersion]),
                var global = try? JSONDecoder().decode(IntentModel.self, from: payload), let logistic = global.model.logistic
            else { throw SyncError(.internal, "global intent v\(round.globalVersion) is not a federated logistic model") }
            guard sum[d + 1] > 0.5 else { throw SyncError(.internal, "the round's weights sum to \(sum[d + 1])") }
            let mean = sum[0...d].map { $0 / sum[d + 1] }
            var state =
                try String.fetchOne(db, sql: "SELECT state FROM federation WHERE kind = ?", arguments: [updateKind]).map {
                    try SyncJSON.decode(State.self, Data($0.utf8), "federation state")
                } ?? State(optimizer: .init(method: settings.server == "fedadam" ? .fedAdam : .fedAvg, rate: settings.serverRate))
            let next = state.optimizer.step(FederatedLogistic.parameters(logistic), meanUpdate: mean)
            if settings.noiseMultiplier > 0 { state.accountant.spend(noiseMultiplier: settings.noiseMultiplier) } else { state.noiseless = true }
            global.model = TabularModel(logistic: FederatedLogistic.with(logistic, parameters: next), features: global.model.features)
            try db.execute(
                sql: "INSERT OR REPLACE INTO federation(kind, state) VALUES (?, ?)", arguments: [updateKind, String(decoding: SyncJSON.encode(state), as: UTF8.self)])
            let epsilon = state.noiseless ? nil : state.accountant.epsilon(delta: settings.delta)
            return try HubAdmin.publish(
                db, hub, kind: updateKind, payload: try JSONEncoder().encode(global), round: round.id, epsilon: epsilon, delta: settings.delta,
                metrics: ["stores": Double(included), "weight": sum[d + 1].rounded()])
        default:
            return nil
        }
    }
}
