import AisleCore
import AisleFeatures
import AisleInsight
import AisleModels
import AisleRecommend
import AisleStore
import AisleSync
import Foundation
import GRDB

/// A model the fleet trains together (issue 8): a logistic regression over a fixed feature
/// list, wrapped in the payload its kind's registry holds. Each has a moments round (`KIND-moments`,
/// the standardisation) and update rounds (`KIND`); stores compute both from their own rows.
public struct FederatedModel: Sendable {
    /// The registry kind of the global model, and of its update rounds.
    public let kind: String
    public let features: [String]
    /// This store's training rows for a round's settings.
    public let rows: @Sendable (Database, RoundSettings) throws -> (rows: [[Double]], labels: [Bool])
    /// Held-out rows to check a global model on: the store's most recent windows.
    let holdout: @Sendable (Database, _ payload: Data) throws -> (rows: [[Double]], labels: [Bool])
    /// The scoring function of a payload of this kind (any model it may hold); nil when unreadable.
    let scorer: @Sendable (Data) -> (@Sendable ([Double]) -> Double)?
    /// The payload's logistic regression; nil when it holds none (not this kind, or trees).
    public let logistic: @Sendable (Data) -> LogisticRegression?
    /// The payload holding `logistic` for a round's settings.
    public let payload: @Sendable (LogisticRegression, RoundSettings) throws -> Data
    /// Each feature's spread by definition (the blank model's standardisation).
    public let nominalScales: @Sendable (RoundSettings) -> [Double]
    /// What the registry records of a payload beside the hub's version.
    let parameters: @Sendable (Data) -> [String: JSONValue]

    /// The kind of the round that sums the stores' feature moments.
    public var momentsKind: String { kind + "-moments" }
    public var dimension: Int { features.count }

    /// The purchase-intent model (`IntentModel`): shoppers active in the lookback before
    /// `cutoffs` moments, bought within the horizon (``FederatedContributor/intentRows(_:settings:)``).
    public static let intent = FederatedModel(
        kind: IntentModel.kind, features: IntentFeatures.names,
        rows: { db, s in try FederatedContributor.intentRows(db, settings: s) },
        holdout: { db, payload in
            guard let m = try? JSONDecoder().decode(IntentModel.self, from: payload) else { return ([], []) }
            return try GlobalModels.intentHoldout(db, lookbackMinutes: m.lookbackMinutes, horizonMinutes: m.horizonMinutes)
        },
        scorer: { payload in (try? JSONDecoder().decode(IntentModel.self, from: payload)).map { m in { m.model.probability($0) } } },
        logistic: { (try? JSONDecoder().decode(IntentModel.self, from: $0))?.model.logistic },
        payload: { m, s in
            try JSONEncoder().encode(IntentModel(lookbackMinutes: s.lookbackMinutes, horizonMinutes: s.horizonMinutes, model: TabularModel(logistic: m, features: IntentFeatures.names)))
        },
        nominalScales: { IntentFeatures.nominalScales(lookbackMinutes: $0.lookbackMinutes) },
        parameters: { payload in
            guard let m = try? JSONDecoder().decode(IntentModel.self, from: payload) else { return [:] }
            return ["lookback_minutes": .int(Int64(m.lookbackMinutes)), "horizon_minutes": .int(Int64(m.horizonMinutes))]
        })

    /// The recommendation ranker (`Ranker` with a linear model): candidate rows of the store's
    /// purchase history at `cutoffs` splits one horizon (`horizonMinutes`, whole days) apart.
    public static let ranker = FederatedModel(
        kind: Ranker.kind, features: Ranking.featureNames,
        rows: { db, s in Ranker.rows(try history(db), horizonDays: rankerDays(s), windows: s.cutoffs) },
        holdout: { db, payload in
            guard let r = try? JSONDecoder().decode(Ranker.self, from: payload) else { return ([], []) }
            return Ranker.rows(try history(db), horizonDays: r.horizonDays, windows: 1)
        },
        scorer: { payload in (try? JSONDecoder().decode(Ranker.self, from: payload)).map { r in { r.score($0) } } },
        logistic: { (try? JSONDecoder().decode(Ranker.self, from: $0))?.linear },
        payload: { m, s in try JSONEncoder().encode(Ranker(linear: m, horizonDays: rankerDays(s))) },
        nominalScales: { _ in Ranking.nominalScales },
        parameters: { payload in
            guard let r = try? JSONDecoder().decode(Ranker.self, from: payload) else { return [:] }
            return ["horizon_days": .int(Int64(r.horizonDays)), "model": .string("logistic regression (federated)")]
        })

    public static let all = [intent, ranker]

    /// The model a round kind (`KIND` or `KIND-moments`) trains; nil for other kinds.
    public static func of(round kind: String) -> FederatedModel? { all.first { $0.kind == kind || $0.momentsKind == kind } }

    /// The store's whole purchase history, to its last event.
    static func history(_ db: Database) throws -> PurchaseHistory { try PurchaseHistory.load(db, to: (try Queries.lastEventTime(db) ?? 0) + 1) }

    /// The ranker's horizon in days from a round's `horizonMinutes`.
    static func rankerDays(_ s: RoundSettings) -> Int { max(1, s.horizonMinutes / 1440) }

    /// A first global model from no store data: zero weights on the features scaled by their
    /// nominal spreads, for rounds with differential privacy (the moments round adds no noise).
    public func blank(_ s: RoundSettings) throws -> Data {
        let d = dimension
        return try payload(LogisticRegression(weights: Array(repeating: 0, count: d), intercept: 0, means: Array(repeating: 0, count: d), scales: nominalScales(s)), s)
    }

    /// AUC of the model in `payload` on the store's holdout rows; nil with fewer than 10 of
    /// either label.
    func holdoutAUC(_ db: Database, _ payload: Data) throws -> Double? {
        let (rows, labels) = try holdout(db, payload)
        let positives = labels.filter { $0 }.count
        guard positives >= 10, labels.count - positives >= 10 else { return nil }
        guard let score = scorer(payload) else { return nil }
        return Metrics.auc(scores: rows.map(score), labels: labels)
    }
}
