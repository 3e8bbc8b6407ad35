import AisleCore
import AisleFeatures
import AisleFederated
import AisleInsight
import AisleModels
import AisleStore
import AisleSync
import AisleTraining
import ArgumentParser
import Foundation
import GRDB

/// A fleet of real store agents against a real hub on loopback: UCI Online Retail split into
/// stores (by country, or by customer), each store an `aisled` with its own store and socket,
/// syncing every second; the hub runs federated rounds of the purchase-intent model or the
/// recommendation ranker; then each store's AUC on the month after the cutoff for the federated
/// model, central training on the pooled rows, and training on the store's own rows alone.
@main
struct FleetSim: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aisle-fleet-sim",
        abstract: "Federated purchase intent or ranking over a simulated fleet (docs/OPERATIONS.md § Federated training).",
        discussion: "Example: aisle-fleet-sim --stores 10 --split country --rounds 5 --data ../shared/data/online_retail")

    enum Model: String, ExpressibleByArgument {
        case intent, ranker
        var federated: FederatedModel { self == .intent ? .intent : .ranker }
    }

    enum Split: String, ExpressibleByArgument { case country, hash, zipf }

    @Option(help: "Stores in the fleet.") var stores = 10
    @Option(help: "intent: purchase within the horizon (shoppers of the lookback); ranker: which candidates a customer buys within the horizon.") var model: Model = .intent
    @Option(help: "country: the largest countries, one store each (non-IID); hash: customers spread evenly by id; zipf: by id, store k getting a share ∝ 1/(k+1) (a few large stores, many small).") var split: Split = .country
    @Option(help: "Federated update rounds.") var rounds = 5
    @Option(help: "The Online Retail folder (lines.csv.gz, invoices.csv.gz).") var data = "../shared/data/online_retail"
    @Option(help: "Working folder (emptied first).") var work = "/tmp/aisle-fleet"
    @Option(help: "Training data ends here; the model is scored on the horizon after it.") var cutoff = "2011-10-01"
    @Option var lookbackDays = 60
    @Option var horizonDays = 30
    @Option(help: "Differential privacy: noise multiplier (0: none) and clipping norm.") var noiseMultiplier = 0.0
    @Option var clipNorm = 0.5
    @Option(help: "The hub's step with differential privacy: fedavg or fedadam, and its rate.") var server = "fedavg"
    @Option var serverRate = 1.0
    @Option(help: "Share of stores killed (SIGKILL) after masking in each round, restarted after it.") var dropout = 0.0
    @Flag(help: "Kill and restart the hub in the middle of every round.") var restartHub = false

    var settings: RoundSettings {
        var s = RoundSettings()
        (s.lookbackMinutes, s.horizonMinutes, s.cutoffs, s.cutoffSpacingMinutes) = (lookbackDays * 1440, horizonDays * 1440, model == .intent ? 4 : 3, 7 * 1440)
        (s.noiseMultiplier, s.clipNorm) = (noiseMultiplier, noiseMultiplier > 0 ? clipNorm : 0)
        (s.server, s.serverRate) = noiseMultiplier > 0 ? (server, serverRate) : ("fedavg", 1)
        return s
    }

    func validate() throws {
        // The hub's rounds need two thirds of the stores, and at least 3 (secure aggregation).
        guard stores >= 3 else { throw ValidationError("--stores: need at least 3 (a round needs 3 stores' updates)") }
        guard rounds >= 1 else { throw ValidationError("--rounds: need at least 1") }
        guard (0...1).contains(dropout) else { throw ValidationError("--dropout: a share from 0 to 1") }
    }

    func run() async throws {
        let fleet = try Fleet(work: URL(fileURLWithPath: work), tools: URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent())
        let t = try Timestamp.parse(cutoff + "T00:00:00Z")
        log("splitting \(data) into \(stores) stores by \(split.rawValue)")
        let names = try fleet.prepare(data: URL(fileURLWithPath: data), stores: stores, split: split, cutoff: cutoff, horizonDays: horizonDays)
        defer { fleet.stopAgents(); fleet.stopHub() }  // on a failure too: no agent or hub left running
        try await fleet.startHub()
        try await fleet.startAgents(names, budget: noiseMultiplier > 0 ? 8 : 0)
        let minStores = max(3, (names.count * 2 + 2) / 3)
        let m = model.federated
        if noiseMultiplier > 0 {
            try fleet.hub(["models", "blank", m.kind, "--lookback-minutes", "\(settings.lookbackMinutes)", "--horizon-minutes", "\(settings.horizonMinutes)"])
        } else {
            try await fleet.round(m.momentsKind, of: m, settings: settings, minStores: minStores, dropout: 0, restartHub: false)
        }
        for r in 1...rounds {
            log("round \(r) of \(rounds)")
            try await fleet.round(m.kind, of: m, settings: settings, minStores: minStores, dropout: dropout, restartHub: restartHub)
        }
        fleet.stopAgents()
        try fleet.report(names, model: m, settings: settings, cutoff: t)
    }
}

func log(_ s: String) { FileHandle.standardError.write(Data("fleet-sim: \(s)\n".utf8)) }
