import AisleConfig
import AisleCore
import AisleStore
import AisleSync
import AisleTraining
import ArgumentParser
import Foundation
import GRDB

struct SyncCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Store ↔ HQ sync: enroll with a hub, see and drive the outbox, carry it on removable media.",
        discussion: "docs/OPERATIONS.md § Sync; the protocol is sync/PROTOCOL.md.",
        subcommands: [Enroll.self, Status.self, Now.self, Retry.self, Export.self, Report.self, Priors.self])

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Put the uploads the hub refused for good (held) back in the queue, due at the next pass.",
            discussion: "For after an upgrade of the agent or the hub; `aislectl sync status` lists what is held and why. Example: aislectl sync retry")
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reporting {
                let store = try Store.open(at: try storeOptions.directory())
                let released = try await store.database.write { try Outbox.release($0) }
                try store.audit("sync retry", detail: "\(released) held uploads queued again")
                print("\(released) held uploads queued again")
            }
        }
    }

    struct Priors: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue this store's feature deltas (noised item, category and pair counts over a window) for the hub's global priors.",
            discussion: "The agent queues them weekly itself. Example: aislectl sync priors --as-of 2011-09-01 --days 28")
        @Option(help: "End of the window, YYYY-MM-DD (default: the store's last event).") var asOf: String?
        @Option(help: "Days in the window.") var days = 28
        func validate() throws { try requirePositive(days, "--days") }
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reporting {
                let end = try asOf.map { d -> Int64 in
                    guard let t = try? Timestamp.parse(d + "T00:00:00Z") else { throw CLIError.usage("--as-of \(d): expected YYYY-MM-DD") }
                    return t
                }
                let store = try Store.open(at: try storeOptions.directory())
                let id = try await store.database.write { [days] db in try StorePriors.enqueue(db, end: end, days: days) }
                guard let id else { throw CLIError("no purchases in the window; nothing queued", code: 4) }
                print("queued the store's priors as \(id.prefix(12))")
            }
        }
    }

    struct Enroll: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Register this store with a hub, using the token `aisle-hub stores add` printed.",
            discussion: "Example: aislectl sync enroll --hub http://hq.example:7443 --token s-1a2b3c4d5e.xxxx.0123456789abcdef")
        @Option(help: "The hub, http(s)://HOST[:PORT].") var hub: String
        @Option(help: "The one-time enrollment token, or - to read it from standard input (kept out of the process list and shell history).") var token: String
        @Option(help: ArgumentHelp("PEM certificates to verify an https hub with (default: the system's trust roots). Its path is kept and read at every pass: put it where the agent's unit can read it (e.g. /etc/aisle/hub-ca.pem; the unit hides /home and /tmp).", valueName: "FILE")) var caFile: String?
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reporting {
                let dir = try storeOptions.directory()
                let e = try await SyncClient(store: try Store.open(at: dir), directory: dir).enroll(
                    hubURL: hub, token: try valueOrStandardInput(token, "the token").trimmingCharacters(in: .whitespaces), caFile: caFile.map { URL(fileURLWithPath: $0).path })
                print("enrolled as \(e.store) (\(e.name)) with the hub at \(e.hub), key \(e.hubKeys.fingerprint)")
            }
        }
    }

    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The hub this store syncs with, the outbox, the last pass, the global models taken.", discussion: "Example: aislectl sync status --json")
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        struct Model: Encodable { var kind: String; var version: Int; var round: Int64; var outcome: String; var detail: String?; var registryVersion: Int? }
        struct Out: Encodable {
            var enrollment: Enrollment?
            var outbox: Outbox.Status
            var lastSuccess: String?
            var lastError: String?
            var models: [Model]
        }

        func run() async throws {
            try reporting {
                let out = try storeOptions.openForReading().database.read { db in
                    Out(
                        enrollment: try SyncState.enrollment(db), outbox: try Outbox.status(db),
                        lastSuccess: try Meta.string(db, "sync.last_success").flatMap { Int64($0) }.map(Timestamp.format),
                        lastError: try Meta.string(db, "sync.last_error"),
                        models: try Row.fetchAll(db, sql: "SELECT * FROM synced_models ORDER BY kind, version DESC").map {
                            Model(kind: $0["kind"], version: $0["version"], round: $0["round"], outcome: $0["outcome"], detail: $0["detail"], registryVersion: $0["registry_version"])
                        })
                }
                if output.json { return try printJSON(out) }
                if let e = out.enrollment {
                    print("enrolled as \(e.store) (\(e.name)) with \(e.hub), hub key \(e.hubKeys.fingerprint)")
                } else {
                    print("not enrolled; `aislectl sync enroll --hub URL --token T`")
                }
                let o = out.outbox
                print("outbox: \(o.pending) pending (\(o.bytes.formatted()) bytes), \(o.sent) delivered in all" + (o.oldest.map { "; oldest queued \(Timestamp.format($0))" } ?? ""))
                if let next = o.nextAttempt, o.pending > 0, next > Int64(Date().timeIntervalSince1970) { print("next attempt: \(Timestamp.format(next))") }
                for h in o.held { print("held: \(h.kind) \(h.contentId.prefix(12)) — \(h.error) (`aislectl sync retry` sends it again)") }
                print("last pass: \(out.lastSuccess ?? "never")" + (out.lastError.map { "; last error: \($0)" } ?? ""))
                for m in out.models { print("global \(m.kind) v\(m.version) (round \(m.round)): \(m.outcome)" + (m.detail.map { " — \($0)" } ?? "")) }
            }
        }
    }

    struct Now: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a sync pass now: hello, every queued upload (whatever its retry time), the hub's models.",
            discussion: "Exit 69 when the hub is out of reach or full (nothing is lost: the outbox keeps everything). Example: aislectl sync now")
        @Option(help: "Largest fall of a global model's local AUC before it is rolled back (default: sync.rollback_margin of the agent's configuration, else 0.02).")
        var rollbackMargin: Double?
        @Option(help: "ε this store may spend on training rounds; 0: no limit, rounds without noise joined too (default: privacy.budget_epsilon of the agent's configuration, else 8).")
        var privacyBudget: Double?
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions
        /// The configuration's ranges (a negative budget would have meant no limit).
        func validate() throws {
            try requireIn(rollbackMargin, 0...0.5, "--rollback-margin")
            try requireIn(privacyBudget, 0...1000, "--privacy-budget")
        }

        func run() async throws {
            try await reporting {
                let dir = try storeOptions.directory()
                let store = try Store.open(at: dir)
                let queued = try await store.database.write { try StorePriors.queueDue($0) }
                let agent = try storeOptions.agentConfig() ?? AgentConfig()
                let margin = rollbackMargin ?? agent.syncRollbackMargin
                var client = SyncClient(store: store, directory: dir, installer: GlobalModels(store: store, margin: margin), contributor: FederatedContributor(store: store))
                client.privacyBudget = privacyBudget ?? agent.privacyBudgetEpsilon
                let report = try await SyncLock.run(store: dir) { [client] in try await client.pass(everything: true) }
                if output.json { return try printJSON(report) }
                print("delivered \(report.delivered) uploads (\(queued) daily summaries queued); \(report.pending) pending")
                for line in report.models { print(line) }
                for line in report.refused { print("refused: \(line)") }
                if !report.rounds.isEmpty { print("open rounds: " + report.rounds.map { "\($0.round) (\($0.kind))" }.joined(separator: ", ")) }
            }
        }
    }

    struct Export: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write the queued uploads, sealed, to a folder (removable media) for `aisle-hub import`.",
            discussion: "They stay queued until the hub acknowledges them, online or at the next pass; the hub keeps each once. Example: aislectl sync export /media/usb/aisle")
        @Argument(help: "The folder to write *.aisle-envelope files into.") var folder: String
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reporting {
                let dir = try storeOptions.directory()
                let store = try Store.open(at: dir)
                _ = try await store.database.write { try StorePriors.queueDue($0) }
                let files = try await SyncLock.run(store: dir) { try await SyncClient(store: store, directory: dir).export(to: URL(fileURLWithPath: folder)) }
                print("wrote \(files) envelopes to \(folder)")
            }
        }
    }

    struct Report: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Queue the store summary of one day for the hub (the agent queues each finished day itself).",
            discussion: "Example: aislectl sync report --day 2011-12-08")
        @Option(help: "The day, YYYY-MM-DD (UTC).") var day: String
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await reporting {
                guard let t = try? Timestamp.parse(day + "T00:00:00Z") else { throw CLIError.usage("--day \(day): expected YYYY-MM-DD") }
                let store = try Store.open(at: try storeOptions.directory())
                let id = try await store.database.write { try StoreSummary.enqueue($0, day: t.floorDiv(86_400)) }
                print("queued the summary of \(day) as \(id.prefix(12))")
            }
        }
    }
}

struct PrivacyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "privacy",
        abstract: "The differential privacy this store has spent on federated training rounds, and every round it was offered.",
        discussion: "Example: aislectl privacy --delta 1e-5")
    @Option(help: "δ to state ε at (the store's budget is measured at 1e-5).") var delta = PrivacyLedger.delta
    @Option(help: "The budget to compare with (default: privacy.budget_epsilon of the agent's configuration, else 8).") var budget: Double?
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions
    func validate() throws {
        guard delta > 0, delta < 1 else { throw ValidationError("--delta must be above 0 and below 1, got \(delta)") }
        try requireIn(budget, 0...1000, "--budget")
    }

    struct Round: Encodable { var round: Int64; var kind: String; var step: String; var noiseMultiplier: Double; var note: String? }
    struct Out: Encodable { var epsilon: Double?; var delta: Double; var budget: Double; var rounds: [Round] }

    func run() async throws {
        try reporting {
            let budget = try budget ?? (storeOptions.agentConfig() ?? AgentConfig()).privacyBudgetEpsilon
            let out = try storeOptions.openForReading().database.read { db in
                let e = try PrivacyLedger.accountant(db).epsilon(delta: delta)
                return Out(
                    epsilon: e.isFinite ? e : nil, delta: delta, budget: budget,
                    rounds: try Row.fetchAll(db, sql: "SELECT * FROM fl_rounds ORDER BY round").map {
                        Round(round: $0["round"], kind: $0["kind"], step: $0["step"], noiseMultiplier: $0["noise_multiplier"], note: $0["note"])
                    })
            }
            if output.json { return try printJSON(out) }
            let spent = out.epsilon.map { String(format: "ε %.2f", $0) } ?? "unbounded (a round without noise)"
            print("spent: \(spent) at δ \(delta); budget ε \(budget)\(budget == 0 ? " (no limit)" : "")")
            for r in out.rounds {
                print("round \(r.round) \(r.kind): \(r.step), noise multiplier \(r.noiseMultiplier)" + (r.note.map { " — \($0)" } ?? ""))
            }
        }
    }
}
