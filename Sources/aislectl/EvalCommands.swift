import AisleCore
import AisleFeatures
import AisleInsight
import AisleModels
import AisleStore
import ArgumentParser
import Foundation
import GRDB

struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval", abstract: "Evaluate the models on the store, by the protocols of docs/EVALUATION.md.", subcommands: [Churn.self, Classify.self])

    struct Churn: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Churn: who of the customers who bought before the cutoff buys nothing in the horizon after it.",
            discussion: """
                Trains on the same set-up one horizon earlier (features as of cutoff − horizon, labels \
                from the horizon up to the cutoff), so nothing from on or after the cutoff is seen; \
                then scores every customer with a purchase before the cutoff. Prints customers, \
                churn_rate, auc and pr_auc of the churn score, and the BG/NBD baseline's auc.

                Example: aislectl eval churn --cutoff 2011-09-10 --horizon-days 91 --json
                """)

        @Option(help: "The cutoff date, e.g. 2011-09-10.") var cutoff: String
        @Option(help: "Days after the cutoff in which a purchase means not churned.") var horizonDays = 91
        @Option(help: "Training snapshots, 28 days apart, the latest one horizon before the cutoff.") var snapshots = 4
        @Option(help: "L2 penalty of the logistic regression.") var l2 = 10.0
        @Option(help: "lr (logistic regression), gbt (gradient-boosted trees) or blend (the sum of both ranks).") var model: ChurnModel = .lr

        enum ChurnModel: String, ExpressibleByArgument { case lr, gbt, blend }
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let started = Date()
                let t = try Timestamp.parse(cutoff)
                let h = Int64(horizonDays) * 86_400
                let store = try storeOptions.openForReading()
                let (train, test) = try store.database.read { db in
                    var train = ChurnData(rows: [], churned: [])
                    for k in 0..<snapshots {
                        let part = try ChurnData.load(db, asOf: t - h - Int64(k) * 28 * 86_400, horizon: h)
                        train.rows += part.rows
                        train.churned += part.churned
                    }
                    return (train, try ChurnData.load(db, asOf: t, horizon: h))
                }
                guard Set(train.churned).count == 2 else { throw CLIError("the training window before \(cutoff) has no churners or no returners") }
                let lr = LogisticRegression.fit(train.rows, train.churned, l2: l2)
                let gbt = model == .lr ? nil : GradientBoostedTrees.fit(train.rows, train.churned)
                let lrScores = test.rows.map(lr.probability)
                let scores: [Double] = switch (model, gbt) {
                case (.gbt, let g?): test.rows.map(g.probability)
                case (.blend, let g?): zip(ranks(lrScores), ranks(test.rows.map(g.probability))).map { $0 + $1 }
                default: lrScores
                }
                let bgnbdIndex = ChurnFeatures.names.firstIndex(of: "bgnbd_log_expected") ?? 0
                struct Out: Encodable {
                    var customers: Int; var churnRate: Double; var auc: Double?; var prAuc: Double?; var seconds: Double
                    var model: String; var aucBgnbd: Double?; var trainCustomers: Int
                }
                let out = Out(
                    customers: test.rows.count, churnRate: Double(test.churned.filter { $0 }.count) / Double(max(1, test.rows.count)),
                    auc: Metrics.auc(scores: scores, labels: test.churned), prAuc: Metrics.averagePrecision(scores: scores, labels: test.churned),
                    seconds: Date().timeIntervalSince(started), model: "\(model.rawValue) on \(ChurnFeatures.names.count) point-in-time features, \(snapshots) training snapshots",
                    aucBgnbd: Metrics.auc(scores: test.rows.map { -$0[bgnbdIndex] }, labels: test.churned), trainCustomers: train.rows.count)
                if output.json { return try printJSON(out) }
                print(String(format: "churn at %@, horizon %d days: %d customers, churn rate %.3f, AUC %.4f (BG/NBD alone %.4f), PR-AUC %.4f, %.1f s",
                             cutoff, horizonDays, out.customers, out.churnRate, out.auc ?? .nan, out.aucBgnbd ?? .nan, out.prAuc ?? .nan, out.seconds))
            }
        }
    }
}

/// Ranks (0-based, ties broken by position) of the values.
func ranks(_ v: [Double]) -> [Double] {
    var r = [Double](repeating: 0, count: v.count)
    for (rank, i) in v.indices.sorted(by: { v[$0] < v[$1] }).enumerated() { r[i] = Double(rank) }
    return r
}

/// Feature rows and churn labels as of one moment.
struct ChurnData {
    var rows: [[Double]]
    var churned: [Bool]

    static func load(_ db: Database, asOf t: Int64, horizon: Int64) throws -> ChurnData {
        let snapshot = try CustomerSnapshot.load(db, asOf: t)
        let buyers = try CustomerSnapshot.buyers(db, from: t, to: t + horizon)
        let features = ChurnFeatures.rows(snapshot, horizonDays: Double(horizon) / 86_400)
        return ChurnData(rows: features.rows, churned: features.ids.map { !buyers.contains($0) })
    }
}

extension EvalCommand {
    struct Classify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Text classification: train on labelled JSON Lines, score a test file.",
            discussion: """
                Features: hashed character 1–4-gram TF-IDF (any script) and the on-box int8 encoder's \
                sentence embedding; a class-balanced logistic regression (L-BFGS). Prints n, accuracy \
                and macro_f1. Files hold {"text","label"} per line; sentiment labels are positive / negative.

                Example: aislectl eval classify --task sentiment --train uci_train.jsonl --test uci_test.jsonl --json
                """)

        enum Task: String, ExpressibleByArgument { case sentiment }

        @Option var task: Task
        @Option(help: ArgumentHelp("Labelled training texts.", valueName: "FILE")) var train: String
        @Option(help: ArgumentHelp("Labelled test texts.", valueName: "FILE")) var test: String
        @Option(help: ArgumentHelp("The int8 encoder.", valueName: "FILE")) var model: String = EncoderChoice.defaultInt8Path
        @Option(help: "L2 penalty (default: 3e-4 with the encoder, 3e-6 for CJK texts).") var l2: Double?
        @Option(help: "Hash buckets for the n-grams, log2 (default 18; 20 for CJK texts).") var bucketBits: Int?
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let started = Date()
                let trainSet = try LabelledTexts.load(train, positive: "positive", negative: "negative")
                let testSet = try LabelledTexts.load(test, positive: "positive", negative: "negative")
                let classifier = try SentimentClassifier.train(trainSet, encoderPath: model, l2: l2, buckets: bucketBits.map { 1 << $0 })
                let predictions = classifier.predict(testSet.texts).map { $0 >= 0.5 }
                struct Out: Encodable { var n: Int; var accuracy: Double; var macroF1: Double; var seconds: Double }
                let out = Out(
                    n: testSet.texts.count, accuracy: Metrics.accuracy(predictions, testSet.labels),
                    macroF1: Metrics.macroF1(predictions, testSet.labels), seconds: Date().timeIntervalSince(started))
                if output.json { return try printJSON(out) }
                print(String(format: "%@: %d test texts, accuracy %.4f, macro-F1 %.4f, %.1f s", task.rawValue, out.n, out.accuracy, out.macroF1, out.seconds))
            }
        }
    }
}
