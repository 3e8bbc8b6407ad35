import AisleCore
import AisleFeatures
import AisleModels
import AisleStore
import Foundation
import GRDB

/// What the store knows of each customer as of a moment: RFM segment, BG/NBD (probability alive,
/// expected purchases), Gamma-Gamma (expected spend per purchase), and churn risk with the
/// features that drove it — computed for every customer at once, so that serving one is a lookup.
public struct CustomerInsight: Sendable, Encodable {
    public struct Driver: Sendable, Encodable {
        public var feature: String
        /// Contribution to the log-odds of the score (``TabularModel/contributions(_:)``).
        public var contribution: Double
    }

    public var asOf: String
    public var segment: String
    public var rfm: [String: Int]
    public var probabilityAlive: Double
    /// Expected purchases (purchase days) in the next `horizonDays`.
    public var expectedPurchases: Double
    public var horizonDays: Int
    public var expectedValuePerPurchase: Double
    public var churnProbability: Double
    public var churnDrivers: [Driver]
    /// The catalog themes and categories the customer cares about most, with their shares of a
    /// recency-weighted profile (``Interests``).
    public var interests: [Interests.Share]
    public var categories: [Interests.Share]
    /// The customer's reviews: how many, their mean P(positive) and the share positive; nil
    /// without scored reviews.
    public var sentiment: ReviewSentiment.Aggregate?
    /// The probability of a purchase soon from the customer's last minutes of activity, scored
    /// when asked (``IntentModel/score(_:purchasesBefore:asOf:rates:version:)``); nil without
    /// an intent model.
    public var purchaseIntent: IntentScore?
    /// The model behind `churnProbability`: a registry version, one trained at refresh, or BG/NBD.
    public var churnModel: String

    /// What scoring one customer needs of the whole store: the active churn and themes models,
    /// and the fits over every customer (BG/NBD, Gamma-Gamma, the RFM quintiles).
    public struct Population: Sendable {
        let churn: (model: ChurnModel, version: Int)?
        let themes: (model: ThemeModel, version: Int)?
        let bgnbd: BGNBD
        let value: GammaGamma?
        let rfm: RFM.Scale
        /// Customers the fits saw. None (a store's first buyer has yet to come): the fits are
        /// placeholders — BG/NBD's is singular — so the first buyers are scored by ``computeAll(_:asOf:)``.
        public let customers: Int

        var horizonDays: Int { churn?.model.horizonDays ?? 91 }
        var churnModel: String { churn.map { "churn v\($0.version) (\($0.model.model.method.rawValue))" } ?? "bgnbd" }
    }

    /// Every customer with a purchase before `t` (their store ids), from one snapshot, and the
    /// store-wide fits that ``update(_:asOf:customers:population:)`` rescores single customers with.
    /// Churn risk comes from the registry's active churn model (``ChurnModel/active(_:)``), or
    /// from BG/NBD alone while none has been trained — or while the active one cannot be read by
    /// this build (damaged, or another build's features: the agent's retraining replaces it).
    public static func computeAll(_ db: Database, asOf t: Int64) throws -> (insight: [Int64: CustomerInsight], population: Population) {
        let churn = try? ChurnModel.active(db)
        let snapshot = try CustomerSnapshot.load(db, asOf: t)
        let features = ChurnFeatures.rows(snapshot, horizonDays: Double(churn?.model.horizonDays ?? 91))
        let spend = snapshot.customers.values.map(\.repeatSpend).filter { $0.frequency > 0 && $0.meanValue > 0 }
        let rfm = snapshot.rfmCustomers
        let population = Population(
            churn: churn, themes: try? ThemeModel.active(db), bgnbd: features.bgnbd, value: spend.count >= 10 ? GammaGamma.fit(spend).model : nil,
            rfm: RFM.Scale(rfm), customers: features.ids.count)
        return (try insight(db, snapshot, features, rfm, population: population, customers: nil), population)
    }

    /// The insight of `customers` (store ids) as of `t`, against the store-wide fits of the last
    /// ``computeAll(_:asOf:)``: what serving does as a customer's events arrive. Customers
    /// without a purchase before `t` have none. Nil when the fits saw no customer and some of
    /// these have bought: the store's first buyers need ``computeAll(_:asOf:)`` (BG/NBD's
    /// expectation over no customers is infinite).
    public static func update(_ db: Database, asOf t: Int64, customers: [Int64], population: Population) throws -> [Int64: CustomerInsight]? {
        let snapshot = try CustomerSnapshot.load(db, asOf: t, customers: customers)
        let features = ChurnFeatures.rows(snapshot, horizonDays: Double(population.horizonDays), bgnbd: population.bgnbd)
        guard population.customers > 0 || features.ids.isEmpty else { return nil }
        return try insight(db, snapshot, features, snapshot.rfmCustomers, population: population, customers: customers)
    }

    private static func insight(
        _ db: Database, _ snapshot: CustomerSnapshot, _ features: (ids: [Int64], rows: [[Double]], summaries: [PurchaseSummary], bgnbd: BGNBD),
        _ rfmCustomers: [RFM.Customer], population: Population, customers: [Int64]?
    ) throws -> [Int64: CustomerInsight] {
        let t = snapshot.asOf, horizonDays = population.horizonDays, churn = population.churn?.model.model
        let sentiment = try ReviewSentiment.byCustomer(db, before: t, customers: customers)
        let profiles = try Interests.profiles(db, asOf: t, themes: population.themes, customers: customers)
        let rfm = Dictionary(uniqueKeysWithValues: rfmCustomers.map { ($0.id, population.rfm.score($0)) })
        let asOf = Timestamp.format(t)
        var out: [Int64: CustomerInsight] = [:]
        for (id, (row, summary)) in zip(features.ids, zip(features.rows, features.summaries)) {
            guard let score = rfm[id], let history = snapshot.customers[id] else { continue }
            let repeats = history.repeatSpend
            let top = profiles[id].map { Interests.top($0, themes: population.themes?.model) } ?? (themes: [], categories: [])
            let drivers = zip(ChurnFeatures.names, churn?.contributions(row) ?? []).sorted { abs($0.1) > abs($1.1) }.prefix(3)
            out[id] = CustomerInsight(
                asOf: asOf, segment: score.segment.rawValue, rfm: ["r": score.r, "f": score.f, "m": score.m],
                probabilityAlive: population.bgnbd.probabilityAlive(summary),
                expectedPurchases: population.bgnbd.expectedPurchases(summary, in: Double(horizonDays) / 7), horizonDays: horizonDays,
                expectedValuePerPurchase: population.value?.expectedValue(frequency: repeats.frequency, meanValue: repeats.meanValue)
                    ?? (history.receiptValues.reduce(0, +) / Double(max(1, history.purchaseDays.count))),
                churnProbability: churn?.probability(row) ?? (1 - population.bgnbd.probabilityAlive(summary)),
                churnDrivers: drivers.map { Driver(feature: $0.0, contribution: $0.1) }, interests: top.themes, categories: top.categories,
                sentiment: sentiment[id], churnModel: population.churnModel)
        }
        return out
    }
}
