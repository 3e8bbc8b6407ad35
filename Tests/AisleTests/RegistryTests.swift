import AisleCore
import AisleIngest
import AisleFeatures
@testable import AisleInsight
@testable import AisleModels
import AisleRecommend
import AisleTraining
@testable import AisleStore
import Foundation
import GRDB
import Testing

/// The model registry on a real store file, and the per-store model choice and calibration.
@Suite struct RegistryTests {
    struct Params: Encodable { var l2: Double }
    struct Scores: Encodable { var auc: Double }

    /// A stored model that does not fit this build (damaged, or written by a build with other
    /// features) is refused when it is read, with what is wrong, instead of trapping when it
    /// scores; and `model rollback` will not activate one.
    @Test func storedModelsThatDoNotFitThisBuildAreRefused() throws {
        let names = ChurnFeatures.names, d = ChurnFeatures.names.count
        let lr = LogisticRegression(weights: Array(repeating: 0.1, count: d), intercept: 0, means: Array(repeating: 0, count: d), scales: Array(repeating: 1, count: d))
        let good = ChurnModel(horizonDays: 91, model: TabularModel(logistic: lr, features: names))
        let json = try JSONEncoder().encode(good)
        #expect(try JSONDecoder().decode(ChurnModel.self, from: json).model == good.model)
        func damaged(_ change: (inout [String: Any]) -> Void) throws -> Data {
            var o = try #require(try JSONSerialization.jsonObject(with: json) as? [String: Any])
            var m = try #require(o["model"] as? [String: Any])
            change(&m)
            o["model"] = m
            return try JSONSerialization.data(withJSONObject: o)
        }
        let cases: [(Data, String)] = [
            (try damaged { $0["calibration"] = [Double]() }, "calibration: expected two finite numbers"),
            (try damaged { $0["means"] = [0.0] }, "means: expected \(d) finite numbers, got 1"),
            (try damaged { $0["features"] = ["x"] + names.dropFirst() }, "features: the model reads \(d)"),
            (try damaged { $0["features"] = Array(names.dropLast()) }, "lr: \(d) weights for \(d - 1) features"),
            (try damaged { $0["regression"] = nil }, "lr: no regression"),
            (try damaged { m in
                var r = m["regression"] as? [String: Any] ?? [:]
                r["scales"] = [Double](repeating: 0, count: d)
                m["regression"] = r
            }, "scale not above 0"),
        ]
        for (bytes, says) in cases {
            #expect { try JSONDecoder().decode(ChurnModel.self, from: bytes) } throws: { "\($0)".contains(says) }
        }
        let narrow = Ranker(linear: LogisticRegression(weights: [1, 2], intercept: 0, means: [0, 0], scales: [1, 1]), horizonDays: 30)
        #expect { try JSONDecoder().decode(Ranker.self, from: try JSONEncoder().encode(narrow)) } throws: { "\($0)".contains("other features than this build's") }
        // In the registry: v2 cannot be read, so a rollback to it is refused and v1 stays.
        let s = try TempStore()
        for (payload, active) in [(json, true), (cases[0].0, false)] {
            try s.store.database.write {
                _ = try ModelRegistry.register($0, kind: ChurnModel.kind, payload: payload, parameters: Params(l2: 10), metrics: Scores(auc: 0.7), features: names,
                                               dataFrom: nil, dataUntil: nil, activate: active)
            }
        }
        let refused = try TestSupport.run("aislectl", ["model", "rollback", "churn", "--to", "2", "--store", s.directory.path])
        #expect(refused.status == 65 && refused.err.contains("churn v2 cannot be used, so the active version stays"), "\(refused.status) \(refused.err)")
        #expect(try s.store.database.read { try ModelRegistry.activeVersions($0) } == ["churn": 1])
        // Active all the same (as an upgrade that changed the features would find it): the
        // retraining sees it unusable, and the insight goes on with BG/NBD's churn.
        try s.store.database.write { _ = try ModelRegistry.activate($0, kind: ChurnModel.kind, version: 2) }
        #expect(throws: (any Error).self) { try s.store.database.read { try ModelTrainer.loadActive($0, kind: ChurnModel.kind) } }
        #expect(try s.store.database.read { try CustomerInsight.computeAll($0, asOf: 2_000_000_000) }.population.churn == nil)
    }

    @Test func versionsActivationRollbackAndIntegrity() throws {
        let dir = try TestSupport.temporaryDirectory()
        let store = try Store.create(at: dir)
        let db = store.database
        func register(_ text: String, activate: Bool = true) throws -> ModelRecord {
            try db.write { try ModelRegistry.register($0, kind: "churn", payload: Data(text.utf8), parameters: Params(l2: 10), metrics: Scores(auc: 0.74),
                                                        features: ["a", "b"], dataFrom: 0, dataUntil: 86_400, activate: activate) }
        }
        let v1 = try register("one")
        #expect(v1.version == 1 && v1.active && v1.features == ["a", "b"] && v1.metrics == .object(["auc": .double(0.74)]) && v1.dataUntil == "1970-01-02T00:00:00Z")
        let v2 = try register("two", activate: false)
        #expect(v2.version == 2 && !v2.active)
        #expect(try db.read { try ModelRegistry.active($0, kind: "churn")?.payload } == Data("one".utf8))
        let activated = try db.write { try ModelRegistry.activate($0, kind: "churn", version: 2) }
        #expect(activated.version == 2 && activated.active)  // as it now is (`model rollback --to 2 --json` prints it)
        #expect(try db.read { try ModelRegistry.activeVersions($0) } == ["churn": 2])
        #expect(try db.write { try ModelRegistry.rollback($0, kind: "churn") }.version == 1)
        // Chosen by hand (`aislectl model rollback` marks it): the agent's retraining leaves it,
        // until another version is made active.
        #expect(try db.read(ModelRegistry.rolledBack).isEmpty)
        try db.write { try ModelRegistry.markChosenByHand($0, kind: "churn", version: 1) }
        #expect(try db.read(ModelRegistry.rolledBack) == ["churn"])
        try db.write { _ = try ModelRegistry.activate($0, kind: "churn", version: 2) }
        #expect(try db.read(ModelRegistry.rolledBack).isEmpty)
        try db.write { _ = try ModelRegistry.activate($0, kind: "churn", version: 1) }
        #expect(throws: RegistryError.self) { try db.write { try ModelRegistry.rollback($0, kind: "churn") } }  // nothing older
        // Rollback passes over a version registered inactive and never used (v3: a hub model the
        // AUC gate refused) back to the one in use before.
        try db.write { try ModelRegistry.activate($0, kind: "churn", version: 2) }
        #expect(try register("three", activate: false).version == 3 && register("four").version == 4)
        #expect(try db.write { try ModelRegistry.rollback($0, kind: "churn") }.version == 2)
        try db.write { try ModelRegistry.activate($0, kind: "churn", version: 1) }
        #expect(throws: RegistryError.self) { try db.write { try ModelRegistry.activate($0, kind: "churn", version: 9) } }
        #expect(throws: RegistryError.self) { try db.write { try ModelRegistry.rollback($0, kind: "intent") } }
        #expect(throws: RegistryError.self) {
            try db.write { try ModelRegistry.register($0, kind: "Bad Kind", payload: Data(), parameters: Params(l2: 1), metrics: Scores(auc: 0), features: [], dataFrom: nil, dataUntil: nil) }
        }
        // A payload altered on disk is refused, not loaded.
        try db.write { try $0.execute(sql: "UPDATE models SET payload = X'00' WHERE kind = 'churn' AND version = 1") }
        #expect(throws: RegistryError.self) { try db.read { try ModelRegistry.active($0, kind: "churn") } }
        // Old versions are pruned beyond the kept number; the active one stays whatever its age.
        for n in 0..<ModelRegistry.keptVersions + 2 { _ = try register("more \(n)", activate: false) }
        let versions = try db.read { try ModelRegistry.list($0, kind: "churn") }.map(\.version)
        #expect(versions.count == ModelRegistry.keptVersions + 1 && versions.contains(1) && !versions.contains(2), "\(versions)")
    }

    /// Deterministic pseudo-random numbers in [0, 1).
    struct LCG {
        var state: UInt64
        mutating func next() -> Double {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Double(state >> 11) / Double(1 << 53)
        }
    }

    /// Rows of two features and labels drawn from P(y) = σ(logit(x)).
    func sample(_ n: Int, seed: UInt64, logit: ([Double]) -> Double) -> (rows: [[Double]], labels: [Bool]) {
        var rng = LCG(state: seed)
        var rows: [[Double]] = [], labels: [Bool] = []
        for _ in 0..<n {
            let x = [rng.next() * 4 - 2, rng.next() * 4 - 2]
            rows.append(x)
            labels.append(rng.next() < 1 / (1 + exp(-logit(x))))
        }
        return (rows, labels)
    }

    @Test func choosesTheMethodTheDataNeedsAndCalibrates() {
        // Linear log-odds: logistic regression is as good, and simpler.
        let linear = { (x: [Double]) in 1.5 * x[0] - x[1] }
        let (lr, lrReport) = TabularModel.select(
            features: ["a", "b"], train: sample(3000, seed: 1, logit: linear), validation: sample(2000, seed: 2, logit: linear), l2: 1)
        #expect(lr.method == .lr && lrReport.validationAuc.keys.sorted() == ["gbt", "lr"])
        // An interaction (same sign of both features) only trees can represent.
        let interaction = { (x: [Double]) in x[0] * x[1] > 0 ? 2.0 : -2.0 }
        let (gbt, gbtReport) = TabularModel.select(
            features: ["a", "b"], train: sample(3000, seed: 3, logit: interaction), validation: sample(2000, seed: 4, logit: interaction), l2: 1)
        #expect(gbt.method == .gbt && (gbtReport.validationAuc["gbt"] ?? 0) > (gbtReport.validationAuc["lr"] ?? 1) + 0.2)
        // Calibration: on a fresh sample, predicted probabilities match observed rates.
        let test = sample(4000, seed: 5, logit: interaction)
        let p = test.rows.map(gbt.probability)
        let error = Metrics.calibrationError(p, test.labels)
        #expect(error < 0.04 && gbtReport.calibrationError <= gbtReport.calibrationErrorUncalibrated, "\(error), \(gbtReport)")
        // For logistic regression the contributions are weight × standardised value, scaled by
        // the calibration slope.
        let x = [1.0, -0.5]
        let expected = lr.regression?.contributions(x).map { $0 * lr.calibration[0] } ?? []
        #expect(zip(lr.contributions(x), expected).allSatisfy { abs($0 - $1) < 1e-9 })
        // Serialised and read back, the same model.
        let decoded = try? JSONDecoder().decode(TabularModel.self, from: JSONEncoder().encode(gbt))
        #expect(decoded == gbt)
    }

    /// When the validation window's base rate differs from training's (drift), the refit on both
    /// has learnt part of it: the carried calibration must not shift for it again. The refitted
    /// model's mean probability on the validation rows stays near their rate.
    @Test func theRefitIsNotShiftedTwiceForTheValidationRate() {
        let train = sample(16_000, seed: 6) { $0[0] - 1 }, validation = sample(4_000, seed: 7) { $0[0] }
        let (model, _) = TabularModel.select(features: ["a", "b"], train: train, validation: validation, l2: 1, methods: [.lr])
        let mean = validation.rows.map(model.probability).reduce(0, +) / Double(validation.rows.count)
        let rate = Double(validation.labels.filter { $0 }.count) / Double(validation.labels.count)
        #expect(abs(mean - rate) < 0.01, "mean probability \(mean), rate \(rate)")
    }
}
