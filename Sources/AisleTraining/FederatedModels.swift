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
    /// The rows to check a model (`scored`) on beside a candidate global one: the store's most
    /// recent windows.
    let holdout: @Sendable (Database, _ candidate: Data, _ scored: Data) throws -> (rows: [[Double]], labels: [Bool])
    /// The scoring function of a payload of this kind (any model it may hold); nil when
    /// unreadable or built for other features.
    let scorer: @Sendable (Data) -> (@Sendable ([Double]) -> Double)?
    /// The payload's logistic regression and the feature names it was built for; nil when it
    /// holds none (not this kind, or trees).
    let linear: @Sendable (Data) -> (model: LogisticRegression, features: [String])?
    /// The payload holding a logistic regression for a round's settings.
    public let payload: @Sendable (LogisticRegression, RoundSettings) throws -> Data
    /// The windows of a payload in round settings' terms: lookback minutes (nil where the model
    /// has none) and horizon minutes.
    let windows: @Sendable (Data) -> (lookback: Int?, horizon: Int)?
    /// Each feature's spread by definition (the blank model's standardisation).
    public let nominalScales: @Sendable (RoundSettings) -> [Double]
    /// What the registry records of a payload beside the hub's version.
    let parameters: @Sendable (Data) -> [String: JSONValue]

    /// The kind of the round that sums the stores' feature moments.
    public var momentsKind: String { kind + "-moments" }
    public var dimension: Int { features.count }

    /// The purchase-intent model (`IntentModel`): shoppers active in the lookback before
    /// `cutoffs` moments, bought within the horizon (``FederatedContributor/intentRows(_:settings:)``).
    /// Each model is checked with its own windows (its features depend on its lookback).
    public static let intent = FederatedModel(
        kind: IntentModel.kind, features: IntentFeatures.names,
        rows: { db, s in try FederatedContributor.intentRows(db, settings: s) },
        holdout: { db, _, scored in
            guard let m = try? JSONDecoder().decode(IntentModel.self, from: scored) else { return ([], []) }
            return try GlobalModels.intentHoldout(db, lookbackMinutes: m.lookbackMinutes, horizonMinutes: m.horizonMinutes)
        },
        scorer: { payload in
            guard let m = try? JSONDecoder().decode(IntentModel.self, from: payload), m.model.features == IntentFeatures.names else { return nil }
            return { m.model.probability($0) }
        },
        linear: { payload in
            guard let m = try? JSONDecoder().decode(IntentModel.self, from: payload), let logistic = m.model.logistic else { return nil }
            return (logistic, m.model.features)
        },
        payload: { m, s in
            try JSONEncoder().encode(IntentModel(lookbackMinutes: s.lookbackMinutes, horizonMinutes: s.horizonMinutes, model: TabularModel(logistic: m, features: IntentFeatures.names)))
        },
        windows: { payload in (try? JSONDecoder().decode(IntentModel.self, from: payload)).map { ($0.lookbackMinutes, $0.horizonMinutes) } },
        nominalScales: { IntentFeatures.nominalScales(lookbackMinutes: $0.lookbackMinutes) },
        parameters: { payload in
            guard let m = try? JSONDecoder().decode(IntentModel.self, from: payload) else { return [:] }
            return ["lookback_minutes": .int(Int64(m.lookbackMinutes)), "horizon_minutes": .int(Int64(m.horizonMinutes))]
        })

    /// The recommendation ranker (`Ranker` with a linear model): candidate rows of the store's
    /// purchase history at `cutoffs` splits one horizon (`horizonMinutes`, whole days) apart.
    /// Both rankers are checked on the same rows: the last horizon of the candidate's length.
    public static let ranker = FederatedModel(
        kind: Ranker.kind, features: Ranking.featureNames,
        rows: { db, s in Ranker.rows(try history(db), horizonDays: s.horizonMinutes / 1440, windows: s.cutoffs) },
        holdout: { db, candidate, _ in
            guard let r = try? JSONDecoder().decode(Ranker.self, from: candidate) else { return ([], []) }
            return Ranker.rows(try history(db), horizonDays: r.horizonDays, windows: 1)
        },
        scorer: { payload in (try? JSONDecoder().decode(Ranker.self, from: payload)).map { r in { r.score($0) } } },
        linear: { payload in (try? JSONDecoder().decode(Ranker.self, from: payload))?.linear.map { ($0, Ranking.featureNames) } },
        payload: { m, s in try JSONEncoder().encode(Ranker(linear: m, horizonDays: s.horizonMinutes / 1440)) },
        windows: { payload in (try? JSONDecoder().decode(Ranker.self, from: payload)).map { (nil, $0.horizonDays * 1440) } },
        nominalScales: { _ in Ranking.nominalScales },
        parameters: { payload in
            guard let r = try? JSONDecoder().decode(Ranker.self, from: payload) else { return [:] }
            return ["horizon_days": .int(Int64(r.horizonDays)), "model": .string("logistic regression (federated)")]
        })

    public static let all = [intent, ranker]

    /// The model a round kind (`KIND` or `KIND-moments`) trains; nil for other kinds.
    public static func of(round kind: String) -> FederatedModel? { all.first { $0.kind == kind || $0.momentsKind == kind } }

    /// The store's whole purchase history, to the end of its last event's day.
    static func history(_ db: Database) throws -> PurchaseHistory {
        let last = try Queries.lastEventTime(db) ?? 0
        return try PurchaseHistory.load(db, to: (last / 86_400 + 1) * 86_400)
    }

    /// The payload's logistic regression when it is one this agent can use: built for these
    /// features, every parameter finite, every scale positive.
    public func logistic(_ payload: Data) -> LogisticRegression? {
        guard let (m, names) = linear(payload), names == features else { return nil }
        let d = dimension
        guard m.weights.count == d, m.means.count == d, m.scales.count == d, m.scales.allSatisfy({ $0 > 0 }),
            (m.weights + m.means + m.scales + [m.intercept]).allSatisfy(\.isFinite)
        else { return nil }
        return m
    }

    /// Whether this agent can use the payload: a model of this kind over its features, and when
    /// it is a logistic regression, a sound one (``logistic(_:)``).
    func accepts(_ payload: Data) -> Bool { scorer(payload) != nil && (linear(payload) == nil || logistic(payload) != nil) }

    /// Why rounds of this model cannot use `settings` on top of `global` (the current global
    /// payload, if any); nil when they can. The ranker's horizon is whole days; update rounds
    /// keep the global model's windows (its standardisation was made for them).
    public func problem(_ settings: RoundSettings, global: Data?) -> String? {
        if kind == Ranker.kind, settings.horizonMinutes % 1440 != 0 {
            return "the ranker's horizon is whole days: --horizon-minutes \(settings.horizonMinutes) is not a multiple of 1440"
        }
        guard let global, let w = windows(global) else { return nil }
        guard settings.horizonMinutes == w.horizon, w.lookback.map({ $0 == settings.lookbackMinutes }) ?? true else {
            return "the global \(kind) model was made for a \(w.lookback.map { "\($0)-minute lookback and a " } ?? "")\(w.horizon)-minute horizon; rounds on it must use the same"
        }
        return nil
    }

    /// A first global model from no store data: zero weights on the features scaled by their
    /// nominal spreads, for rounds with differential privacy (the moments round adds no noise).
    public func blank(_ s: RoundSettings) throws -> Data {
        let d = dimension
        return try payload(LogisticRegression(weights: Array(repeating: 0, count: d), intercept: 0, means: Array(repeating: 0, count: d), scales: nominalScales(s)), s)
    }

    /// AUC of the model in `scored` on the rows it is checked on beside `candidate`; nil with
    /// fewer than 10 of either label.
    func holdoutAUC(_ db: Database, candidate: Data, scored: Data) throws -> Double? {
        let (rows, labels) = try holdout(db, candidate, scored)
        let positives = labels.filter { $0 }.count
        guard positives >= 10, labels.count - positives >= 10, let score = scorer(scored) else { return nil }
        return Metrics.auc(scores: rows.map(score), labels: labels)
    }
}
