import AisleCore
import AisleHub
import AisleSync
import ArgumentParser
import Foundation

struct Stores: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The stores allowed to sync: add one (prints its enrollment token), list, revoke.", subcommands: [Add.self, List.self, Revoke.self])

    struct Add: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Add a store and print a one-time enrollment token for `aislectl sync enroll`.",
            discussion: "Run again with --id ID for a store that lost its token or is replacing hardware: a new token for the same id, the old unused one void.")
        @OptionGroup var hub: HubOptions
        @Argument(help: "A name for people (\"Leeds, Briggate\").") var name: String
        @Option(help: "The store's id (default: a new one).") var id: String?
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try hub.admin { admin, cfg in
                let (store, token) = try admin.addStore(name: name, id: id, hours: cfg.tokenHours)
                if json { return try printJSON(["store": store, "token": token, "hours": String(cfg.tokenHours)]) }
                print("store \(store) (\(name)); one-time token, valid \(cfg.tokenHours) h:\n\(token)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every store: state, key fingerprint, last contact, uploads.")
        @OptionGroup var hub: HubOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try hub.admin { admin, _ in
                let stores = try admin.stores()
                if json { return try printJSON(stores) }
                for s in stores {
                    print("\(s.id)  \(s.state)  \(s.name)  key \(s.fingerprint ?? "-")  last seen \(time(s.lastSeen))  uploads \(s.uploads)")
                }
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cut a store off at once: every message it sends from now on is refused.")
        @OptionGroup var hub: HubOptions
        @Argument var store: String

        func run() throws {
            try hub.admin { admin, _ in
                try admin.revoke(store)
                print("store \(store) revoked")
            }
        }
    }
}

struct Rounds: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Training rounds: open, list, advance, close.", subcommands: [Open.self, List.self, Advance.self, Close.self])

    struct Advance: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "End a round's current step now with the stores that have sent it, rather than waiting out --phase-seconds (stores known gone).",
            discussion: "Refused while fewer stores have sent the step than it needs: that would fail the round (`rounds close` ends it).")
        @OptionGroup var hub: HubOptions
        @Argument var round: UInt64

        func run() throws {
            try hub.admin { admin, _ in print("round \(round): \(try admin.advanceRound(round))") }
        }
    }

    struct Open: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Open a secure-aggregation round of a model kind; stores join at their next sync.",
            discussion: """
                Federated models (intent, ranker): a KIND-moments round first (the first global model; or models blank KIND), then KIND rounds.
                Example: aisle-hub rounds open intent --min-stores 10 --phase-seconds 900 --noise-multiplier 1.1 --clip-norm 0.5
                """)
        @OptionGroup var hub: HubOptions
        @Argument var kind: String
        @Option(help: "Values in each store's vector (federated kinds set their own).") var length: Int?
        @Option(help: "Hours the round stays open.") var hours: Double = 24
        @Option(help: "Stores needed to aggregate (at least 3).") var minStores: Int = 3
        @Option(help: "Seconds each step waits for late stores.") var phaseSeconds: Int = 600
        @Option(help: "Differential privacy: Gaussian noise in units of the clipping norm (0: none).") var noiseMultiplier: Double = 0
        @Option(help: "Differential privacy: L2 bound of each store's update.") var clipNorm: Double = 1
        @Option(help: "Differential privacy: the δ the models' ε is stated at (stores measure their own budgets at 1e-5 whatever this says).") var delta: Double = 1e-5
        @Option(help: "Local Newton steps per round.") var localSteps: Int = 1
        @Option(help: "The hub's step: fedavg or fedadam.") var server: String = "fedavg"
        @Option(help: "The hub's step size.") var serverRate: Double = 1
        @Option(help: "Purchase intent: minutes of activity read.") var lookbackMinutes = 70
        @Option(help: "Minutes predicted (the ranker: whole days, as minutes, e.g. 86400); update rounds keep the global model's windows.") var horizonMinutes = 30
        @Option(help: "Training moments (intent) or splits one horizon apart (the ranker), and the moments' spacing.") var cutoffs = 4
        @Option var spacingMinutes = 10

        func run() throws {
            try hub.admin { admin, _ in
                var settings = RoundSettings()
                (settings.noiseMultiplier, settings.clipNorm, settings.localSteps, settings.delta) = (noiseMultiplier, noiseMultiplier > 0 ? clipNorm : 0, localSteps, delta)
                (settings.server, settings.serverRate) = (server, serverRate)
                (settings.lookbackMinutes, settings.horizonMinutes, settings.cutoffs, settings.cutoffSpacingMinutes) = (lookbackMinutes, horizonMinutes, cutoffs, spacingMinutes)
                let r = try admin.openRound(kind: kind, length: length, hours: hours, minStores: minStores, phaseSeconds: phaseSeconds, settings: settings)
                print("round \(r.round): \(r.kind) from global v\(r.globalVersion), \(r.length) values, until \(time(r.deadline)), at least \(r.minStores) stores")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every round, newest first.")
        @OptionGroup var hub: HubOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try hub.admin { admin, _ in
                let rounds = try admin.rounds()
                if json { return try printJSON(rounds) }
                for r in rounds {
                    print("round \(r.round)  \(r.kind)  \(r.phase)  global v\(r.globalVersion)  until \(time(r.deadline))  \(r.included.count) stores in the sum" + (r.failure.map { "  (\($0))" } ?? ""))
                }
            }
        }
    }

    struct Close: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Close a round: later uploads to it are refused as wrong_round.")
        @OptionGroup var hub: HubOptions
        @Argument var round: UInt64

        func run() throws {
            try hub.admin { admin, _ in
                try admin.closeRound(round)
                print("round \(round) closed")
            }
        }
    }
}

struct Models: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Global models: publish (signed), start from blank, sum the stores' priors, list.", subcommands: [Publish.self, Blank.self, Priors.self, List.self])

    struct Priors: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sum the newest feature deltas of every store (item, category and pair counts, noised) into the global priors and publish them.")
        @OptionGroup var hub: HubOptions

        func run() throws {
            try hub.admin { admin, _ in
                let (m, p) = try admin.publishPriors()
                print("priors v\(m.version) published: \(p.stores) stores, \(Int(p.receipts)) receipts, \(p.items.count) items, \(p.pairs.count) pairs")
            }
        }
    }

    struct Blank: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Publish a first global model of a federated kind from no store data (zero weights, features scaled by their nominal spreads), for rounds with differential privacy.",
            discussion: """
                The alternative, a KIND-moments round, standardises the features from the stores' data without noise. \
                Give the windows the rounds will use (intent: lookback and horizon; ranker: the horizon in whole days, as minutes). \
                Example: aisle-hub models blank ranker --horizon-minutes 86400
                """)
        @OptionGroup var hub: HubOptions
        @Argument(help: "intent or ranker.") var kind = "intent"
        @Option(help: "Minutes of a shopper's activity the intent model reads.") var lookbackMinutes = 70
        @Option(help: "Minutes ahead the model predicts a purchase in.") var horizonMinutes = 30

        func run() throws {
            try hub.admin { admin, _ in
                var settings = RoundSettings()
                (settings.lookbackMinutes, settings.horizonMinutes) = (lookbackMinutes, horizonMinutes)
                let m = try admin.publishBlank(kind: kind, settings: settings)
                print("\(m.kind) v\(m.version) published: zero weights, no store data (ε 0)")
            }
        }
    }

    struct Publish: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Sign and publish a model file as the next global version of its kind; stores take it at their next sync.",
            discussion: "Example: aisle-hub models publish intent intent.json --metric auc=0.71")
        @OptionGroup var hub: HubOptions
        @Argument var kind: String
        @Argument(help: "The model payload (as `aislectl model export` writes it).") var file: String
        @Option(help: "A metric for the manifest, NAME=VALUE (repeatable).") var metric: [String] = []
        @Option(help: "Differential privacy spent (ε) and its δ.") var epsilon: Double = 0
        @Option var delta: Double = 0
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try hub.admin { admin, _ in
                guard let payload = FileManager.default.contents(atPath: file) else { throw SyncError(.notFound, "cannot read \(file)") }
                var metrics: [String: Double] = [:]
                for m in metric {
                    let kv = m.split(separator: "=", maxSplits: 1)
                    guard kv.count == 2, let v = Double(kv[1]) else { throw SyncError(.badRequest, "--metric \(m): expected NAME=NUMBER") }
                    metrics[String(kv[0])] = v
                }
                let manifest = try admin.publish(kind: kind, payload: payload, epsilon: epsilon, delta: delta, metrics: metrics)
                if json { return try printJSON(manifest) }
                print("\(manifest.kind) v\(manifest.version) published: \(manifest.bytes) bytes, sha256 \(manifest.sha256), signed by \(manifest.hub)")
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every published version, newest first per kind.")
        @OptionGroup var hub: HubOptions
        @Flag(help: "Print JSON.") var json = false

        func run() throws {
            try hub.admin { admin, _ in
                let models = try admin.models()
                if json { return try printJSON(models) }
                for m in models {
                    print("\(m.kind) v\(m.version)  round \(m.round)  \(m.bytes) bytes  ε \(m.epsilon.map { String(format: "%.2f", $0) } ?? "∞ (no noise)")  \(time(m.createdAt))  sha256 \(m.sha256.prefix(16))")
                }
            }
        }
    }
}

struct Import: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Take the envelopes a store wrote with `aislectl sync export DIR` (removable media).",
        discussion: "Each file is checked as if it had arrived over HTTP; what the hub already holds is acknowledged, not stored twice.")
    @OptionGroup var hub: HubOptions
    @Argument(help: "The folder of *.aisle-envelope files.") var folder: String
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        try hub.admin { admin, _ in
            let r = try admin.importFolder(URL(fileURLWithPath: folder))
            if json { try printJSON(r) } else {
                print("\(r.accepted) envelopes accepted, \(r.complete) uploads complete, \(r.alreadyTaken) taken before, \(r.refused.count) refused")
                for line in r.refused { print("  refused \(line)") }
            }
            if !r.refused.isEmpty { throw ExitCode(1) }
        }
    }
}
