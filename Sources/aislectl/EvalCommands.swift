import AisleAssist
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
        commandName: "eval", abstract: "Evaluate the models on the store, by the protocols of ../shared/EVALUATION.md.", subcommands: [Churn.self, PurchaseIntent.self, Classify.self, Search.self, Nextbasket.self, Policy.self, ColdStart.self])

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
        func validate() throws {
            try requirePositive(snapshots, "--snapshots")
            try requirePositive(horizonDays, "--horizon-days")
            try requireIn(l2, 0...1e6, "--l2")
        }
        @Option(help: "L2 penalty of the logistic regression.") var l2 = 10.0
        @Option(help: "lr (logistic regression), gbt (gradient-boosted trees), blend (the sum of both ranks) or auto (what `aislectl train churn` registers: the better of lr and gbt on a validation window, calibrated).") var model: Classifier = .lr
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let started = Date()
                let t = try moment(cutoff, "--cutoff")
                let h = Int64(horizonDays) * 86_400
                let store = try storeOptions.openForReading()
                let (train, test, trained) = try store.database.read { db in
                    let train = LabelledRows(stacking: try (0..<snapshots).map { k in
                        try LabelledRows.churn(db, asOf: t - h - Int64(k) * 28 * 86_400, horizon: h)
                    })
                    let trained = model == .auto ? try ChurnModel.train(db, asOf: t, horizonDays: horizonDays, snapshots: snapshots, l2: l2).model.model : nil
                    return (train, try LabelledRows.churn(db, asOf: t, horizon: h), trained)
                }
                guard Set(train.labels).count == 2 else { throw CLIError("the training window before \(cutoff) has no churners or no returners") }
                let scores = trained.map { test.rows.map($0.probability) } ?? model.scores(train: train, test: test, l2: l2)
                let bgnbdIndex = ChurnFeatures.names.firstIndex(of: "bgnbd_log_expected") ?? 0
                struct Out: Encodable {
                    var customers: Int; var churnRate: Double; var auc: Double?; var prAuc: Double?; var seconds: Double
                    var model: String; var aucBgnbd: Double?; var trainCustomers: Int
                    /// `auto`: how well its calibrated probabilities hold on the test window.
                    var calibration: TestCalibration?
                }
                let out = Out(
                    customers: test.rows.count, churnRate: Double(test.labels.filter { $0 }.count) / Double(max(1, test.rows.count)),
                    auc: Metrics.auc(scores: scores, labels: test.labels), prAuc: Metrics.averagePrecision(scores: scores, labels: test.labels),
                    seconds: Date().timeIntervalSince(started), model: "\(trained?.method.rawValue ?? model.rawValue)\(trained == nil ? "" : " (auto)") on \(ChurnFeatures.names.count) point-in-time features, \(snapshots) training snapshots",
                    aucBgnbd: Metrics.auc(scores: test.rows.map { -$0[bgnbdIndex] }, labels: test.labels), trainCustomers: train.rows.count,
                    calibration: trained.map { _ in TestCalibration(scores, test.labels) })
                if output.json { return try printJSON(out) }
                print(String(format: "churn at %@, horizon %d days: %d customers, churn rate %.3f, AUC %.4f (BG/NBD alone %.4f), PR-AUC %.4f, %.1f s",
                             cutoff, horizonDays, out.customers, out.churnRate, out.auc ?? .nan, out.aucBgnbd ?? .nan, out.prAuc ?? .nan, out.seconds))
                if let c = out.calibration { print(c.line) }
            }
        }
    }
}

/// How a calibrated model's probabilities hold on a test window: their mean beside the rate
/// observed, the log loss and the calibration error (``Metrics/calibrationError(_:_:)``).
struct TestCalibration: Encodable {
    var meanProbability: Double, positiveRate: Double, logLoss: Double, calibrationError: Double

    init(_ probabilities: [Double], _ labels: [Bool]) {
        meanProbability = probabilities.reduce(0, +) / Double(max(1, probabilities.count))
        positiveRate = Double(labels.filter { $0 }.count) / Double(max(1, labels.count))
        (logLoss, calibrationError) = (Metrics.logLoss(probabilities, labels), Metrics.calibrationError(probabilities, labels))
    }

    var line: String {
        String(format: "calibration on the test window: mean probability %.4g for a rate of %.4g, log loss %.4f, calibration error %.4g",
               meanProbability, positiveRate, logLoss, calibrationError)
    }
}

/// The binary classifiers an evaluation can train; `auto` is the registry's training
/// (``TabularModel/select``), run by each command itself.
enum Classifier: String, ExpressibleByArgument {
    case lr, gbt, blend, auto

    /// Trains on `train` and scores `test` (higher: more likely the positive label).
    func scores(train: LabelledRows, test: LabelledRows, l2: Double) -> [Double] {
        let linear = { test.rows.map(LogisticRegression.fit(train.rows, train.labels, l2: l2).probability) }
        let trees = { test.rows.map(GradientBoostedTrees.fit(train.rows, train.labels).probability) }
        switch self {
        case .lr, .auto: return linear()
        case .gbt: return trees()
        case .blend: return zip(ranks(linear()), ranks(trees())).map { $0 + $1 }
        }
    }
}

/// Ranks (0-based) of the values, tied values sharing their mean rank: a tree gives many rows
/// one score, and their order in the store must not rank them.
func ranks(_ v: [Double]) -> [Double] {
    let order = v.indices.sorted { v[$0] < v[$1] }
    var r = [Double](repeating: 0, count: v.count)
    var start = 0
    while start < order.count {
        var end = start + 1
        while end < order.count, v[order[end]] == v[order[start]] { end += 1 }
        for k in start..<end { r[order[k]] = Double(start + end - 1) / 2 }
        start = end
    }
    return r
}

/// Feature rows and their labels (churned; bought) as of one moment.
struct LabelledRows {
    var rows: [[Double]]
    var labels: [Bool]

    init(rows: [[Double]], labels: [Bool]) { (self.rows, self.labels) = (rows, labels) }

    /// The parts, one after another (training rows from several moments).
    init(stacking parts: [LabelledRows]) { self.init(rows: parts.flatMap(\.rows), labels: parts.flatMap(\.labels)) }

    /// Churn: customers with a purchase before t; label: no purchase in [t, t + horizon).
    static func churn(_ db: Database, asOf t: Int64, horizon: Int64) throws -> LabelledRows {
        let data = try ChurnFeatures.labelled(db, asOf: t, horizonDays: Int(horizon / 86_400))
        return LabelledRows(rows: data.rows, labels: data.churned)
    }
}

extension EvalCommand {
    struct Classify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Text classification: train on labelled JSON Lines, score a test file.",
            discussion: """
                Trains on --train (hashed character n-gram TF-IDF and the on-box int8 encoder's sentence \
                embedding into logistic regression: class-balanced for sentiment, multinomial over the \
                intents for assist), or reads --model (`default`: the shipped model; or a file from `aislectl train \
                sentiment|assist --out`), then scores --test. Prints n, accuracy and macro_f1, and for \
                assist with `oos` rows in the test file oos_recall (an `oos` row is right when predicted \
                out of scope). Files hold {"text","label"} per line; sentiment labels are positive / negative.

                Example: aislectl eval classify --task assist --train bitext_train.jsonl --test bitext_test.jsonl --json
                """)

        enum Task: String, ExpressibleByArgument { case sentiment, assist }

        @Option var task: Task
        @Option(help: ArgumentHelp("Labelled training texts.", valueName: "FILE")) var train: String?
        @Option(help: ArgumentHelp("A trained model instead of --train: `default` or a file.", valueName: "default|FILE")) var model: String?
        @Option(help: ArgumentHelp("Labelled test texts.", valueName: "FILE")) var test: String
        @Option(help: ArgumentHelp("The int8 encoder.", valueName: "FILE")) var encoder: String = EncoderChoice.defaultInt8Path
        @Option(help: "L2 penalty (sentiment default: 3e-4 with the encoder, 3e-6 for CJK texts; assist: 1e-3).") var l2: Double?
        @Option(help: "Hash buckets for the n-grams, log2 (sentiment default 18, 20 for CJK texts; assist 17).") var bucketBits: Int?
        @OptionGroup var output: OutputOptions

        func validate() throws {
            guard (train == nil) != (model == nil) else { throw ValidationError("give --train FILE or --model default|FILE") }
            try checkBucketBits(bucketBits)
            try requireIn(l2, 0...1e6, "--l2")
        }

        struct Out: Encodable { var n: Int; var accuracy: Double; var macroF1: Double; var oosRecall: Double?; var seconds: Double }

        func run() throws {
            try reporting {
                let started = Date()
                var out = try task == .sentiment ? sentiment() : assist()
                out.seconds = Date().timeIntervalSince(started)
                if output.json { return try printJSON(out) }
                let oos = out.oosRecall.map { String(format: ", out-of-scope recall %.4f", $0) } ?? ""
                print(String(format: "%@: %d test texts, accuracy %.4f, macro-F1 %.4f%@, %.1f s", task.rawValue, out.n, out.accuracy, out.macroF1, oos, out.seconds))
            }
        }

        func sentiment() throws -> Out {
            let testSet = try LabelledTexts.load(test, positive: "positive", negative: "negative")
            let classifier: SentimentClassifier
            if let train {
                let trainSet = try LabelledTexts.load(train, positive: "positive", negative: "negative")
                classifier = try SentimentClassifier.train(trainSet, encoderPath: encoder, l2: l2, buckets: bucketBits.map { 1 << $0 })
            } else {
                classifier = try SentimentClassifier.load(model == "default" ? nil : model, encoderPath: encoder)
            }
            let predictions = classifier.predict(testSet.texts).map { $0 >= 0.5 }
            return Out(n: testSet.texts.count, accuracy: Metrics.accuracy(predictions, testSet.labels), macroF1: Metrics.macroF1(predictions, testSet.labels), seconds: 0)
        }

        /// Scored over every row: an `oos` row is right when predicted out of scope.
        func assist() throws -> Out {
            let testSet = try LabelledExamples.load(test)
            let classifier = try train.map { try RequestIntents.train(LabelledExamples.load($0), encoderPath: encoder, l2: l2, buckets: bucketBits.map { 1 << $0 }).classifier }
                ?? RequestIntents.load(model == "default" ? nil : model, encoderPath: encoder)
            let unknown = Set(testSet.labels).subtracting(classifier.labels + [RequestIntents.outOfScope])
            if !unknown.isEmpty { printError("note: the test file has labels the model does not know: \(unknown.sorted().joined(separator: ", "))") }
            let predicted = classifier.predict(testSet.texts).map(\.intent)
            return Out(
                n: testSet.texts.count, accuracy: Metrics.accuracy(predicted, testSet.labels), macroF1: Metrics.macroF1(predicted, testSet.labels),
                oosRecall: Metrics.outOfScopeRecall(predicted, testSet.labels, label: RequestIntents.outOfScope), seconds: 0)
        }
    }
}

extension EvalCommand {
    struct PurchaseIntent: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "purchase-intent",
            abstract: "Purchase intent: which shoppers active before a moment buy after it.",
            discussion: """
                Units: sessions (or known customers without one) with an event in the lookback before \
                --cutoff; label: a purchase in the horizon after it. Trains on --train-cutoffs earlier cutoffs, 10 \
                minutes apart, whose horizons end by the cutoff, so nothing from the cutoff on is seen. \
                Prints units, positives, auc, pr_auc.

                Example: aislectl eval purchase-intent --cutoff 1511664000 --lookback-minutes 70 --horizon-minutes 31 --json
                """)

        @Option(help: "The moment, RFC 3339 or Unix seconds.") var cutoff: String
        @Option var lookbackMinutes = 70
        @Option var horizonMinutes = 30
        @Option(help: "lr, gbt, blend or auto (as `aislectl train intent`).") var model: Classifier = .lr
        @Option(help: "Training cutoffs, 10 minutes apart.") var trainCutoffs = 4
        func validate() throws {
            for (value, option) in [(lookbackMinutes, "--lookback-minutes"), (horizonMinutes, "--horizon-minutes"), (trainCutoffs, "--train-cutoffs")] { try requirePositive(value, option) }
            try requireIn(l2, 0...1e6, "--l2")
        }
        @Option(help: "L2 penalty of the logistic regression.") var l2 = 100.0
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let started = Date()
                let t = try moment(cutoff, "--cutoff")
                let (lookback, horizon) = (Int64(lookbackMinutes) * 60, Int64(horizonMinutes) * 60)
                let store = try storeOptions.openForReading()
                let (train, test, trained) = try store.database.read { db in
                    let train = LabelledRows(stacking: try (0..<trainCutoffs).map { k in
                        let tk = t - horizon - Int64(k) * 600
                        return try LabelledRows.intent(db, asOf: tk, lookback: lookback, until: tk + horizon)
                    })
                    let trained = model == .auto
                        ? try IntentModel.train(db, asOf: t, lookbackMinutes: lookbackMinutes, horizonMinutes: horizonMinutes, cutoffs: trainCutoffs, l2: l2).model.model : nil
                    return (train, try LabelledRows.intent(db, asOf: t, lookback: lookback, until: t + horizon), trained)
                }
                guard Set(train.labels).count == 2 else { throw CLIError("the training windows before the cutoff have no buyers or no non-buyers") }
                let scores = trained.map { test.rows.map($0.probability) } ?? model.scores(train: train, test: test, l2: l2)
                struct Out: Encodable {
                    var units: Int; var positives: Int; var auc: Double?; var prAuc: Double?; var seconds: Double; var trainUnits: Int; var model: String
                    var calibration: TestCalibration?
                }
                let out = Out(
                    units: test.rows.count, positives: test.labels.filter { $0 }.count, auc: Metrics.auc(scores: scores, labels: test.labels),
                    prAuc: Metrics.averagePrecision(scores: scores, labels: test.labels), seconds: Date().timeIntervalSince(started),
                    trainUnits: train.rows.count, model: "\(trained?.method.rawValue ?? model.rawValue)\(trained == nil ? "" : " (auto)") on \(IntentFeatures.names.count) features",
                    calibration: trained.map { _ in TestCalibration(scores, test.labels) })
                if output.json { return try printJSON(out) }
                print(String(format: "purchase intent at %@: %d units, %d buyers, AUC %.4f, PR-AUC %.4f, %.1f s", cutoff, out.units, out.positives, out.auc ?? .nan, out.prAuc ?? .nan, out.seconds))
                if let c = out.calibration { print(c.line) }
            }
        }
    }
}

extension LabelledRows {
    /// Purchase intent: units active in the lookback before t; label: a purchase in [t, until).
    static func intent(_ db: Database, asOf t: Int64, lookback: Int64, until: Int64) throws -> LabelledRows {
        let data = try IntentFeatures.labelled(db, asOf: t, lookback: lookback, until: until)
        return LabelledRows(rows: data.rows, labels: data.bought)
    }
}
