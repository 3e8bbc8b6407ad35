import AisleFeatures
import AisleModels
import AisleStore
import AisleText
import AisleCore
import Foundation
import GRDB

/// The churn model as the registry keeps it: who of the customers who bought before a moment
/// buys nothing in the `horizonDays` after it.
public struct ChurnModel: Sendable, Codable {
    public static let kind = "churn"
    public var horizonDays: Int
    public var model: TabularModel

    /// Trains as of `t` from events before `t` only: the validation window is the customers as of
    /// t − horizon (labels: their purchases up to t); the training windows are `snapshots` moments
    /// 28 days apart ending one horizon before that, so their labels end before validation starts.
    /// Logistic regression and gradient-boosted trees are compared on validation; the better one
    /// is calibrated there and refitted on everything (``TabularModel/select``).
    public static func train(_ db: Database, asOf t: Int64, horizonDays: Int = 91, snapshots: Int = 4, l2: Double = 10)
        throws -> (model: ChurnModel, report: TabularModel.Report, dataFrom: Int64)
    {
        let h = Int64(horizonDays) * 86_400
        let validation = try ChurnFeatures.labelled(db, asOf: t - h, horizonDays: horizonDays)
        let training = try (0..<max(1, snapshots)).map { k in
            try ChurnFeatures.labelled(db, asOf: t - 2 * h - Int64(k) * 28 * 86_400, horizonDays: horizonDays)
        }
        let train = (rows: training.flatMap(\.rows), labels: training.flatMap(\.churned))
        try requireBothLabels(train.labels, "training windows", "churners", "returning customers")
        try requireBothLabels(validation.churned, "validation window", "churners", "returning customers")
        let (model, report) = TabularModel.select(features: ChurnFeatures.names, train: train, validation: (validation.rows, validation.churned), l2: l2)
        let first = try Int64.fetchOne(db, sql: "SELECT min(ts) FROM events") ?? t
        return (ChurnModel(horizonDays: horizonDays, model: model), report, first)
    }

    /// The registry's active churn model and its version; nil when none has been trained.
    public static func active(_ db: Database) throws -> (model: ChurnModel, version: Int)? {
        try ModelRegistry.activeModel(db, kind: kind, as: ChurnModel.self)
    }
}

extension ChurnModel {
    enum CodingKeys: String, CodingKey { case horizonDays, model }

    /// A stored churn model is refused unless it reads this build's features, over a horizon of a day or more.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(horizonDays: try c.decode(Int.self, forKey: .horizonDays), model: try c.decode(TabularModel.self, forKey: .model))
        try model.requireFeatures(ChurnFeatures.names)
        guard horizonDays >= 1 else { throw DecodingError.dataCorruptedError(forKey: .horizonDays, in: c, debugDescription: "below a day") }
    }
}

/// The purchase-intent model as the registry keeps it: which shoppers active in the
/// `lookbackMinutes` before a moment buy in the `horizonMinutes` after it.
public struct IntentModel: Sendable, Codable {
    public static let kind = "intent"
    public var lookbackMinutes: Int
    public var horizonMinutes: Int
    public var model: TabularModel

    public init(lookbackMinutes: Int, horizonMinutes: Int, model: TabularModel) {
        (self.lookbackMinutes, self.horizonMinutes, self.model) = (lookbackMinutes, horizonMinutes, model)
    }

    /// Trains as of `t`: validation at t − horizon; `cutoffs` training moments 10 minutes apart
    /// ending one horizon before that; then as ``ChurnModel/train``.
    public static func train(_ db: Database, asOf t: Int64, lookbackMinutes: Int = 70, horizonMinutes: Int = 30, cutoffs: Int = 4, l2: Double = 100)
        throws -> (model: IntentModel, report: TabularModel.Report, dataFrom: Int64)
    {
        let (lookback, h) = (Int64(lookbackMinutes) * 60, Int64(horizonMinutes) * 60)
        let validation = try IntentFeatures.labelled(db, asOf: t - h, lookback: lookback, until: t)
        let training = try (0..<max(1, cutoffs)).map { k in
            let tk = t - 2 * h - Int64(k) * 600
            return try IntentFeatures.labelled(db, asOf: tk, lookback: lookback, until: tk + h)
        }
        let train = (rows: training.flatMap(\.rows), labels: training.flatMap(\.bought))
        try requireBothLabels(train.labels, "training windows", "buyers", "non-buyers")
        try requireBothLabels(validation.bought, "validation window", "buyers", "non-buyers")
        let (model, report) = TabularModel.select(features: IntentFeatures.names, train: train, validation: (validation.rows, validation.bought), l2: l2)
        return (IntentModel(lookbackMinutes: lookbackMinutes, horizonMinutes: horizonMinutes, model: model), report, t - 2 * h - Int64(max(1, cutoffs) - 1) * 600 - lookback)
    }
}

/// A shopper's purchase intent as the agent serves it.
public struct IntentScore: Sendable, Encodable {
    /// Calibrated probability of a purchase within `horizonMinutes`.
    public var probability: Double
    public var model: String
    public var asOf: String
    public var lookbackMinutes: Int
    public var horizonMinutes: Int
    /// Events of the shopper in the lookback.
    public var events: Int
    /// The three features that moved the score most.
    public var drivers: [CustomerInsight.Driver]
}

extension IntentModel {
    /// Scores one shopper from their events in the lookback before `t` (``IntentFeatures/recent``).
    public func score(_ events: [IntentFeatures.Event], purchasesBefore: Double, asOf t: Int64, rates: IntentFeatures.ConversionRates, version: Int) -> IntentScore {
        let row = IntentFeatures.features(events, asOf: t, lookback: Int64(lookbackMinutes) * 60, rates: rates, purchasesBefore: purchasesBefore)
        let drivers = zip(model.features, model.contributions(row)).sorted { abs($0.1) > abs($1.1) }.prefix(3)
        return IntentScore(
            probability: model.probability(row), model: "intent v\(version) (\(model.method.rawValue))", asOf: Timestamp.format(t),
            lookbackMinutes: lookbackMinutes, horizonMinutes: horizonMinutes, events: events.count,
            drivers: drivers.map { CustomerInsight.Driver(feature: $0.0, contribution: $0.1) })
    }

    /// The registry's active intent model and its version; nil when none has been trained.
    public static func active(_ db: Database) throws -> (model: IntentModel, version: Int)? {
        try ModelRegistry.activeModel(db, kind: kind, as: IntentModel.self)
    }

    enum CodingKeys: String, CodingKey { case lookbackMinutes, horizonMinutes, model }

    /// A stored intent model is refused unless it reads this build's features, over windows of a minute or more.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            lookbackMinutes: try c.decode(Int.self, forKey: .lookbackMinutes), horizonMinutes: try c.decode(Int.self, forKey: .horizonMinutes),
            model: try c.decode(TabularModel.self, forKey: .model))
        try model.requireFeatures(IntentFeatures.names)
        guard lookbackMinutes >= 1, horizonMinutes >= 1 else {
            throw DecodingError.dataCorruptedError(forKey: .lookbackMinutes, in: c, debugDescription: "windows below a minute")
        }
    }
}

func requireBothLabels(_ labels: [Bool], _ what: String, _ positive: String, _ negative: String) throws {
    if !labels.contains(true) { throw InputError("no \(positive) in the \(what); the store needs more history to train on") }
    if !labels.contains(false) { throw InputError("no \(negative) in the \(what); the store needs more history to train on") }
}
