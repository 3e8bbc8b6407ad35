import AisleFederated
import AisleModels
import AisleSync
import AisleTraining
import Foundation
import GRDB

/// What the hub makes of a federated round's sum (``FederatedModel``: purchase intent, the
/// ranker): a `KIND-moments` round sums the stores' feature moments (rows, Σx, Σx²) into the
/// first global model (the standardisation, zero weights); each `KIND` round sums the stores'
/// updates and moves the global weights by FedAvg or FedAdam. Each result is published, signed,
/// as the next version of the kind, with the ε spent so far.
enum HubFederation {
    /// The vector length of a federated round kind; nil for plain secure sums.
    static func length(of kind: String) -> Int? {
        guard let model = FederatedModel.of(round: kind) else { return nil }
        return kind == model.momentsKind ? 1 + 2 * model.dimension : model.dimension + 2
    }

    /// The server optimizer and the privacy accountant of a kind, kept between rounds.
    struct State: Codable {
        var optimizer: FederatedLogistic.ServerOptimizer
        var accountant = PrivacyAccountant()
        /// An update round went without noise: the model is not differentially private.
        var noiseless = false
    }

    /// Forgets the optimizer and accountant of `kind`: a first global model starts a new one.
    /// `noiseless`: that first model came from exact sums (moments), so no model after it is
    /// differentially private either.
    static func restart(_ db: Database, kind: String, noiseless: Bool = false) throws {
        try db.execute(sql: "DELETE FROM federation WHERE kind = ?", arguments: [kind])
        if noiseless { try save(db, kind: kind, State(optimizer: .init(), noiseless: true)) }
    }

    static func save(_ db: Database, kind: String, _ state: State) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO federation(kind, state) VALUES (?, ?)", arguments: [kind, String(decoding: SyncJSON.encode(state), as: UTF8.self)])
    }

    /// Publishes the model a closed round's `sum` gives, in the transaction that closes it.
    static func finish(_ db: Database, _ hub: HubDatabase, round: HubRounds.Round, sum words: [UInt32], included: Int) throws -> ModelManifest? {
        guard let model = FederatedModel.of(round: round.kind) else { return nil }
        let settings = round.settings
        let sum = FixedPoint(scale: settings.scale).decode(words)
        let d = model.dimension
        if round.kind == model.momentsKind {
            try restart(db, kind: model.kind, noiseless: true)
            return try HubAdmin.publish(
                db, hub, kind: model.kind, payload: try model.payload(FederatedLogistic.initial(fromMoments: sum, dimension: d), settings), round: round.id,
                epsilon: nil, delta: settings.delta, metrics: ["stores": Double(included), "rows": sum[0].rounded()])
        }
        let newest = try HubQueries.newestVersion(db, kind: model.kind)
        guard newest == round.globalVersion else {
            throw SyncError(.internal, "global \(model.kind) moved from v\(round.globalVersion) to v\(newest) during the round; its update is not applied")
        }
        guard let payload = try HubQueries.payload(db, kind: model.kind, version: round.globalVersion),
            let global = model.logistic(payload)
        else { throw SyncError(.internal, "global \(model.kind) v\(round.globalVersion) is not a federated logistic model") }
        guard sum[d + 1] > 0.5 else { throw SyncError(.internal, "the round's weights sum to \(sum[d + 1])") }
        let mean = sum[0...d].map { $0 / sum[d + 1] }
        var state =
            try String.fetchOne(db, sql: "SELECT state FROM federation WHERE kind = ?", arguments: [model.kind]).map {
                try SyncJSON.decode(State.self, Data($0.utf8), "federation state")
            } ?? State(optimizer: .init())
        // The server step the round's offer named (the optimizer's moments kept while its method is).
        let method: FederatedLogistic.ServerOptimizer.Method = settings.server == "fedadam" ? .fedAdam : .fedAvg
        if state.optimizer.method != method { state.optimizer = .init(method: method, rate: settings.serverRate) }
        state.optimizer.rate = settings.serverRate
        let next = state.optimizer.step(FederatedLogistic.parameters(global), meanUpdate: mean)
        if settings.noiseMultiplier > 0 { state.accountant.spend(roundAt: settings.noiseMultiplier) } else { state.noiseless = true }
        try save(db, kind: model.kind, state)
        let epsilon = state.noiseless ? nil : state.accountant.epsilon(delta: settings.delta)
        return try HubAdmin.publish(
            db, hub, kind: model.kind, payload: try model.payload(FederatedLogistic.with(global, parameters: next), settings), round: round.id, epsilon: epsilon,
            delta: settings.delta, metrics: ["stores": Double(included), "weight": sum[d + 1].rounded()])
    }
}
