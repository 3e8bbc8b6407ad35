import AisleCore
import AisleInsight
import AisleModels
import AisleRecommend
import AisleStore
import AisleText
import AisleTraining
import ArgumentParser
import Foundation

struct TrainCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Train models on the store and register them as new versions (docs/MODELS.md).",
        discussion: """
            Each run writes a new version to the store's model registry with its data window, \
            parameters, metrics and feature list, and makes it active unless --no-activate. The \
            agent picks up a newly active version within a minute, without a restart. \
            `aislectl model list` shows the versions; `aislectl model rollback KIND` goes back one.
            """,
        subcommands: [All.self, Churn.self, Intent.self, Themes.self, RankerCommand.self, Sentiment.self, Assist.self])

    /// What every training command shares: the store, the moment and whether to activate.
    struct Common: ParsableArguments {
        @Option(help: "Train as of this moment, RFC 3339 or Unix seconds (default: just after the latest event).") var asOf: String?
        @Flag(inversion: .prefixedNo, help: "Make the new version the active one.") var activate = true
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions
        /// A bad moment is refused before the store or the encoder is opened.
        func validate() throws {
            if let asOf { do { _ = try moment(asOf, "--as-of") } catch { throw ValidationError("\(error)") } }
        }

        /// Trains each kind with `settings`; a kind that fails is reported and skipped when
        /// `skipFailures`, else fails the command.
        func train(_ kinds: [String], settings: ModelTrainer.Settings, encoder: String? = nil, skipFailures: Bool = false) throws {
            let store = try Store.open(at: try storeOptions.directory())
            var textModel: TextModel?
            do { textModel = try encoder.map { try TextModel.load(path: $0, threads: 2) } } catch where skipFailures {
                FileHandle.standardError.write(Data("aislectl: the encoder did not load (\(error))\n".utf8))
            }
            let t: Int64
            if let asOf { t = try moment(asOf, "--as-of") } else {
                guard let last = try store.database.read(Queries.lastEventTime) else { throw CLIError("the store has no events to train on") }
                t = last + 1
            }
            var records: [ModelRecord] = []
            for kind in kinds {
                // A kind can take a minute or more (the ranker on a large store): say which runs.
                FileHandle.standardError.write(Data("aislectl: training \(kind) as of \(Timestamp.format(t))…\n".utf8))
                do {
                    let result = try ModelTrainer.train(kind, store: store, asOf: t, settings: settings, encoder: textModel, activation: activate ? .yes : .no)
                    records.append(result.record)
                    if !output.json { print(result.summary) }
                } catch where skipFailures {
                    FileHandle.standardError.write(Data("aislectl: \(kind) skipped: \(error)\n".utf8))
                }
            }
            if records.isEmpty { throw CLIError("no model could be trained") }
            if output.json { try printJSON(records) }
        }
    }

    struct Churn: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Churn: logistic regression or gradient-boosted trees, whichever validates better, calibrated.",
            discussion: "Example: aislectl train churn --horizon-days 91")
        @Option(help: "Days without a purchase that count as churn.") var horizonDays = 91
        @Option(help: "Training snapshots, 28 days apart.") var snapshots = 4
        func validate() throws {
            try requirePositive(snapshots, "--snapshots")
            try requirePositive(horizonDays, "--horizon-days")
        }
        @OptionGroup var common: Common

        func run() throws {
            try reporting {
                var s = ModelTrainer.Settings()
                (s.churnHorizonDays, s.churnSnapshots) = (horizonDays, snapshots)
                try common.train([ChurnModel.kind], settings: s)
            }
        }
    }

    struct Intent: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Purchase intent of recent shoppers: logistic regression or gradient-boosted trees, calibrated.",
            discussion: "Example: aislectl train intent --lookback-minutes 70 --horizon-minutes 30")
        @Option var lookbackMinutes = 70
        @Option var horizonMinutes = 30
        @Option(help: "Training moments, 10 minutes apart.") var cutoffs = 4
        @OptionGroup var common: Common
        func validate() throws {
            for (value, option) in [(lookbackMinutes, "--lookback-minutes"), (horizonMinutes, "--horizon-minutes"), (cutoffs, "--cutoffs")] { try requirePositive(value, option) }
        }

        func run() throws {
            try reporting {
                var s = ModelTrainer.Settings()
                (s.intentLookbackMinutes, s.intentHorizonMinutes, s.intentCutoffs) = (lookbackMinutes, horizonMinutes, cutoffs)
                try common.train([IntentModel.kind], settings: s)
            }
        }
    }

    struct Themes: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Themes of the catalog: title embeddings clustered, the number of themes chosen by the silhouette.",
            discussion: "Example: aislectl train themes")
        @Option(help: ArgumentHelp("The int8 encoder.", valueName: "FILE")) var encoder: String = EncoderChoice.defaultInt8Path
        @OptionGroup var common: Common

        func run() throws {
            try reporting { try common.train([ThemeModel.kind], settings: .init(), encoder: encoder) }
        }
    }

    struct RankerCommand: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ranker",
            abstract: "The recommendation ranking: gradient-boosted trees over candidate features, trained point in time.",
            discussion: "Example: aislectl train ranker")
        @OptionGroup var common: Common

        func run() throws {
            try reporting { try common.train([Ranker.kind], settings: .init()) }
        }
    }

    struct All: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Train every model the store has data for, with default settings.",
            discussion: "A model whose data is missing (no kiosk sessions for intent, say) is skipped with the reason; exit 1 when none trained. Example: aislectl train all")
        @Option(help: ArgumentHelp("The int8 encoder (for the themes).", valueName: "FILE")) var encoder: String = EncoderChoice.defaultInt8Path
        @OptionGroup var common: Common

        func run() throws {
            try reporting { try common.train(ModelTrainer.kinds, settings: .init(), encoder: encoder, skipFailures: true) }
        }
    }
}
