import AisleCore
import AisleFeatures
import AisleInsight
import AisleModels
import AisleRecommend
import AisleStore
import AisleText
import Foundation
import GRDB

/// Trains a model of the registry by name and registers the result: what `aislectl train` and
/// the agent's scheduled retraining both run.
public enum ModelTrainer {
    /// The models trained from the store: churn, purchase intent and the recommendation ranker
    /// from its events, the themes from its catalog (these need the encoder).
    public static let kinds = [ChurnModel.kind, IntentModel.kind, ThemeModel.kind, Ranker.kind]

    /// Reads the active `kind` as the agent will (its digest, and the tabular models' shape):
    /// throws what makes it unusable. The text models also need the encoder: their digest only.
    public static func loadActive(_ db: Database, kind: String) throws {
        switch kind {
        case ChurnModel.kind: _ = try ChurnModel.active(db)
        case IntentModel.kind: _ = try IntentModel.active(db)
        case ThemeModel.kind: _ = try ThemeModel.active(db)
        case Ranker.kind: _ = try Ranker.active(db)
        case FleetPopularity.kind: _ = try FleetPopularity.active(db)
        default: _ = try ModelRegistry.active(db, kind: kind)
        }
    }

    public struct Settings: Sendable, Equatable {
        public var churnHorizonDays = 91
        public var churnSnapshots = 4
        public var intentLookbackMinutes = 70
        public var intentHorizonMinutes = 30
        public var intentCutoffs = 4
        public init() {}
    }

    /// What a training run registered, and a line for people.
    public struct Result: Sendable {
        public var record: ModelRecord
        public var summary: String
        /// Why a version trained ``Activation/unlessWorse`` was left inactive.
        public var heldBack: String?
    }

    /// Whether a trained version becomes the active one.
    public enum Activation: Sendable {
        case yes, no
        /// Yes unless its validation AUC is more than ``worseMargin`` below the one the active
        /// version had when it was trained (churn and purchase intent; the other kinds have no
        /// such score): unattended retraining must not replace a model with one that learnt less
        /// (a store's odd month, a broken import). Its windows are later ones, so only a clear
        /// drop counts; and only while the active version is younger than `seconds` — one that
        /// validated on a lucky window must not hold every successor back for ever.
        case unlessWorse(whileActiveYoungerThan: Double)
    }

    /// How far below the active version's validation AUC an ``Activation/unlessWorse`` version may be.
    public static let worseMargin = 0.02

    /// Trains `kind` as of `t` (events before `t` only), registers it and makes it active as
    /// `activation` says. Reading and training happen outside the write transaction.
    public static func train(
        _ kind: String, store: Store, asOf t: Int64, settings s: Settings = .init(), encoder: TextModel? = nil,
        activation: Activation = .yes, actor: String = Store.currentActor
    ) throws -> Result {
        let started = Date()
        let payload: Data, from: Int64?, features: [String], describe: (ModelRecord) -> String
        let parameters: [String: JSONValue], metrics: any Encodable & Sendable
        var validationAUC: Double?
        switch kind {
        case ChurnModel.kind:
            let r = try store.database.read { try ChurnModel.train($0, asOf: t, horizonDays: s.churnHorizonDays, snapshots: s.churnSnapshots) }
            (payload, from, features, metrics) = (try JSONEncoder().encode(r.model), r.dataFrom, ChurnFeatures.names, r.report)
            parameters = ["horizon_days": .int(Int64(s.churnHorizonDays)), "snapshots": .int(Int64(s.churnSnapshots)), "l2": .double(10)]
            describe = { tabularSummary($0, r.report) }
            validationAUC = r.report.chosenValidationAuc
        case IntentModel.kind:
            let r = try store.database.read {
                try IntentModel.train($0, asOf: t, lookbackMinutes: s.intentLookbackMinutes, horizonMinutes: s.intentHorizonMinutes, cutoffs: s.intentCutoffs)
            }
            (payload, from, features, metrics) = (try JSONEncoder().encode(r.model), r.dataFrom, IntentFeatures.names, r.report)
            parameters = [
                "lookback_minutes": .int(Int64(s.intentLookbackMinutes)), "horizon_minutes": .int(Int64(s.intentHorizonMinutes)),
                "cutoffs": .int(Int64(s.intentCutoffs)), "l2": .double(100),
            ]
            describe = { tabularSummary($0, r.report) }
            validationAUC = r.report.chosenValidationAuc
        case ThemeModel.kind:
            guard let encoder else { throw InputError("themes need the int8 encoder, which is not loaded") }
            let items = try CatalogEmbeddings.load(store, model: encoder)
            let model = try ThemeModel.train(items, encoderVersion: encoder.encoder.version)
            struct Metrics: Encodable { var themes: Int; var items: Int; var silhouette: [String: Double] }
            (payload, from, features) = (try JSONEncoder().encode(model), nil, ["title_embedding"])
            metrics = Metrics(themes: model.themes.count, items: items.count, silhouette: Dictionary(uniqueKeysWithValues: model.silhouettes.map { ("k\($0.key)", $0.value) }))
            parameters = ["candidates": .array(ThemeModel.candidates.map { .int(Int64($0)) }), "encoder": .string(encoder.encoder.version)]
            describe = { record in
                let chosen = model.silhouettes[model.themes.count] ?? 0
                return String(format: "themes v%d: %d themes over %d items (silhouette %.3f; k tried %@)", record.version, model.themes.count, items.count, chosen,
                              model.silhouettes.keys.sorted().map(String.init).joined(separator: ", "))
            }
        case Ranker.kind:
            let history = try store.database.read { try PurchaseHistory.load($0, to: t) }
            guard let r = Ranker.train(history) else { throw InputError("too little purchase history to train the recommendation ranker") }
            struct Metrics: Encodable { var rows: Int; var positives: Int; var customers: Int }
            (payload, from, features) = (try JSONEncoder().encode(r.ranker), nil, Ranking.featureNames)
            metrics = Metrics(rows: r.rows, positives: r.positives, customers: history.customers.count)
            let trees = Ranker.treeParameters
            parameters = [
                "horizon_days": .int(Int64(r.ranker.horizonDays)), "windows": .int(Int64(Ranker.windows)), "trees": .int(Int64(trees.trees)),
                "depth": .int(Int64(trees.depth)), "learning_rate": .double(trees.learningRate), "min_leaf": .int(Int64(trees.minLeaf)),
            ]
            describe = { record in
                String(format: "ranker v%d: gradient-boosted trees on %d candidate rows (%d bought) of %d customers", record.version, r.rows, r.positives, history.customers.count)
            }
        default:
            throw InputError("unknown model kind \"\(kind)\"; trainable: \(kinds.joined(separator: ", "))")
        }
        var heldBack: String?
        if case .unlessWorse(let seconds) = activation, let new = validationAUC,
           // The record alone: a damaged payload must not stop the retraining that replaces it.
           let active = try store.database.read({ try ModelRegistry.list($0, kind: kind) }).first(where: \.active),
           let made = try? Timestamp.parse(active.createdAt), Date().timeIntervalSince1970 - Double(made) < seconds,
           let old = recordedAUC(of: active), new < old - worseMargin {
            heldBack = String(format: "validation AUC %.4f, more than %.2f below active v%d's %.4f", new, worseMargin, active.version, old)
        }
        let activate = if case .no = activation { false } else { heldBack == nil }  // only unlessWorse holds back
        // At normal priority even from the agent's nice-19 training thread (it holds the writer).
        let record = try Scheduling.atNormalPriority { [metrics = AnyEncodable(metrics)] in
            try store.database.write { db in
                let record = try ModelRegistry.register(
                    db, kind: kind, payload: payload, parameters: JSONValue.object(parameters), metrics: metrics, features: features,
                    dataFrom: from, dataUntil: t, activate: activate, actor: actor)
                try Store.audit(db, "train \(kind)", detail: "v\(record.version)\(activate ? " activated" : "")", actor: actor)
                return record
            }
        }
        return Result(record: record, summary: describe(record) + String(format: "; %.1f s", Date().timeIntervalSince(started)), heldBack: heldBack)
    }

    /// A churn or intent version's validation AUC of its chosen method, from its registry metrics
    /// (read field by field: a version registered by an older build may lack others).
    static func recordedAUC(of record: ModelRecord) -> Double? {
        guard case .object(let m) = record.metrics, case .string(let method)? = m["method"], case .object(let aucs)? = m["validation_auc"] else { return nil }
        switch aucs[method] {
        case .double(let v)?: return v
        case .int(let v)?: return Double(v)
        default: return nil
        }
    }

    static func tabularSummary(_ record: ModelRecord, _ report: TabularModel.Report) -> String {
        let aucs = report.validationAuc.sorted { $0.key < $1.key }.map { "\($0.key) \(String(format: "%.4f", $0.value))" }.joined(separator: ", ")
        return String(
            format: "%@ v%d%@: %@ on %d rows; validation (%d rows) AUC %@; calibrated log loss %.4f (was %.4f), calibration error %.4f (was %.4f)",
            record.kind, record.version, record.active ? " (active)" : "", report.method.rawValue, report.trainRows, report.validationRows, aucs,
            report.logLoss, report.logLossUncalibrated, report.calibrationError, report.calibrationErrorUncalibrated)
    }
}

/// Any encodable value, for metrics whose type depends on the model.
struct AnyEncodable: Encodable, Sendable {
    let value: any Encodable & Sendable
    init(_ value: any Encodable & Sendable) { self.value = value }
    func encode(to encoder: Encoder) throws { try value.encode(to: encoder) }
}
