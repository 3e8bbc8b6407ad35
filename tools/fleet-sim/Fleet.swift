import AisleCore
import AisleFeatures
import AisleInsight
import AisleModels
import AisleRecommend
import AisleStore
import AisleSync
import AisleTraining
import Foundation
import GRDB

/// The processes of a simulated fleet: the hub, one agent per store, and the CLI runs between.
final class Fleet: @unchecked Sendable {
    let work: URL
    let tools: URL
    let port = Int.random(in: 20_000..<32_768)
    var hubProcess: Process?
    var agents: [String: Process] = [:]

    init(work: URL, tools: URL) throws {
        (self.work, self.tools) = (work, tools)
        try? FileManager.default.removeItem(at: work)
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
    }

    var hubURL: String { "http://127.0.0.1:\(port)" }
    func trainStore(_ name: String) -> URL { work.appendingPathComponent(name).appendingPathComponent("store") }
    func evalStore(_ name: String) -> URL { work.appendingPathComponent(name).appendingPathComponent("eval") }

    @discardableResult
    func run(_ tool: String, _ args: [String]) throws -> String {
        let p = Process()
        p.executableURL = tool.hasPrefix("/") ? URL(fileURLWithPath: tool) : tools.appendingPathComponent(tool)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        (p.standardOutput, p.standardError) = (out, err)
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 || (tool == "aislectl" && args.first == "import" && p.terminationStatus == 3) else {
            throw ValidationErrorText("\(tool) \(args.prefix(3).joined(separator: " ")): exit \(p.terminationStatus): \(String(decoding: e, as: UTF8.self))")
        }
        return String(decoding: o, as: UTF8.self)
    }

    @discardableResult
    func hub(_ args: [String]) throws -> String { try run("aisle-hub", args + ["--data", work.appendingPathComponent("hub").path]) }

    /// Splits the data and imports each store twice: up to the cutoff (the agent's) and up to
    /// the end of the horizon (scoring only). Returns the store names.
    func prepare(data: URL, stores n: Int, split: FleetSim.Split, cutoff: String, horizonDays: Int) throws -> [String] {
        let invoices = try run("/bin/gzip", ["-dc", data.appendingPathComponent("invoices.csv.gz").path]).split(separator: "\n")
        let lines = try run("/bin/gzip", ["-dc", data.appendingPathComponent("lines.csv.gz").path]).split(separator: "\n")
        var owner: [Substring: String] = [:]
        let rows = invoices.dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }.filter { $0.count >= 3 && !$0[1].isEmpty }
        let names: [String]
        switch split {
        case .country:
            let counts = Dictionary(grouping: rows, by: { String($0[2]) }).mapValues(\.count)
            names = counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(n).map(\.key)
            for r in rows { if names.contains(String(r[2])) { owner[r[0]] = String(r[2]) } }
        case .hash:
            names = (0..<n).map { "store-\($0)" }
            for r in rows { owner[r[0]] = "store-\((Int(r[1].prefix { $0 != "." }) ?? 0) % n)" }
        case .zipf:
            // Store k's share of customers ∝ 1/(k+1), by a hash of the customer id.
            names = (0..<n).map { "store-\($0)" }
            let weights = (0..<n).map { 1 / Double($0 + 1) }, total = weights.reduce(0, +)
            let bounds = weights.indices.map { weights[0...$0].reduce(0, +) / total }
            for r in rows {
                let u = Double((UInt64(bitPattern: Int64(r[1].prefix { $0 != "." }) ?? 0) &* 0x9E37_79B9_7F4A_7C15) >> 11) / Double(1 << 53)
                owner[r[0]] = names[bounds.firstIndex { u < $0 } ?? n - 1]
            }
        }
        let end = try Timestamp.format(Timestamp.parse(cutoff + "T00:00:00Z") + Int64(horizonDays) * 86_400).prefix(10)
        let invoicesFile = work.appendingPathComponent("invoices.csv")
        try (invoices.joined(separator: "\n") + "\n").write(to: invoicesFile, atomically: true, encoding: .utf8)
        var byStore: [String: [Substring]] = [:]
        for line in lines.dropFirst() {
            let f = line.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
            if f.count == 3, let s = owner[f[0]], f[1] < end { byStore[s, default: []].append(line) }
        }
        for name in names {
            let all = byStore[name] ?? []
            for (dir, keep) in [(trainStore(name), all.filter { $0.split(separator: ",", maxSplits: 2)[1] < cutoff }), (evalStore(name), all)] {
                let file = dir.deletingLastPathComponent().appendingPathComponent("\(dir.lastPathComponent)-lines.csv")
                try FileManager.default.createDirectory(at: dir.deletingLastPathComponent(), withIntermediateDirectories: true)
                try (([lines[0]] + keep).joined(separator: "\n") + "\n").write(to: file, atomically: true, encoding: .utf8)
                try run("aislectl", ["init", "--store", dir.path])
                try run("aislectl", ["import", "online-retail", file.path, invoicesFile.path, "--store", dir.path, "--quiet"])
            }
            log("\(name): \(all.count) lines")
        }
        return names
    }

    func startHub() async throws {
        let config = work.appendingPathComponent("hub.toml")
        try "[listen]\nport = \(port)\n[storage]\npath = \"\(work.appendingPathComponent("hub").path)\"\n[log]\nformat = \"text\"\n".write(to: config, atomically: true, encoding: .utf8)
        hubProcess = try launch("aisle-hub", ["serve", "--config", config.path], log: work.appendingPathComponent("hub.log"))
        for _ in 0..<200 {
            if (try? await HubConnection(url: hubURL, deadline: .seconds(2)).info()) != nil { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw ValidationErrorText("the hub did not start; see \(work.path)/hub.log")
    }

    func stopHub() {
        hubProcess.map { kill($0.processIdentifier, SIGKILL); $0.waitUntilExit() }
        hubProcess = nil
    }

    func launch(_ tool: String, _ args: [String], log file: URL) throws -> Process {
        let p = Process()
        p.executableURL = tools.appendingPathComponent(tool)
        p.arguments = args
        guard FileManager.default.createFile(atPath: file.path, contents: nil) else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: file.path]) }
        let handle = try FileHandle(forWritingTo: file)
        handle.seekToEndOfFile()
        (p.standardOutput, p.standardError) = (handle, handle)
        try p.run()
        return p
    }

    func startAgents(_ names: [String], budget: Double) async throws {
        struct Added: Decodable { var token: String }
        for name in names {
            let token = try JSONDecoder().decode(Added.self, from: Data(try hub(["stores", "add", name, "--json"]).utf8)).token
            try run("aislectl", ["sync", "enroll", "--hub", hubURL, "--token", token, "--store", trainStore(name).path])
            let config = work.appendingPathComponent(name).appendingPathComponent("aisled.toml")
            try """
                [training]
                every_hours = 0
                [sync]
                interval_seconds = 1
                retry_min_seconds = 1
                retry_max_seconds = 2
                [privacy]
                budget_epsilon = \(budget)
                [log]
                format = "text"
                """.write(to: config, atomically: true, encoding: .utf8)
            try startAgent(name)
        }
    }

    func startAgent(_ name: String) throws {
        let dir = work.appendingPathComponent(name)
        agents[name] = try launch(
            "aisled", ["--config", dir.appendingPathComponent("aisled.toml").path, "--store", trainStore(name).path, "--socket", dir.appendingPathComponent("a.sock").path],
            log: dir.appendingPathComponent("aisled.log"))
    }

    func stopAgents() {
        for p in agents.values { p.terminate(); p.waitUntilExit() }
        agents = [:]
    }

    struct RoundRow: Decodable { var round: Int; var phase: String; var included: [String]; var failure: String? }

    /// Opens a round, waits for it to end (killing stores after masking and the hub midway when
    /// asked), then for every running store to take the model it published.
    func round(_ kind: String, of model: FederatedModel, settings s: RoundSettings, minStores: Int, dropout: Double, restartHub: Bool) async throws {
        var args = ["rounds", "open", kind, "--min-stores", "\(minStores)", "--phase-seconds", "60"]
        args += ["--lookback-minutes", "\(s.lookbackMinutes)", "--horizon-minutes", "\(s.horizonMinutes)", "--cutoffs", "\(s.cutoffs)", "--spacing-minutes", "\(s.cutoffSpacingMinutes)"]
        args += ["--local-steps", "\(s.localSteps)", "--server", s.server, "--server-rate", "\(s.serverRate)"]
        if s.noiseMultiplier > 0 { args += ["--noise-multiplier", "\(s.noiseMultiplier)", "--clip-norm", "\(s.clipNorm)"] }
        let opened = try hub(args)
        guard let id = opened.split(separator: ":").first.flatMap({ Int($0.dropFirst("round ".count)) }) else { throw ValidationErrorText("cannot read the round: \(opened)") }
        var killed: [String] = [], restarted = false
        let started = Date()
        while Date().timeIntervalSince(started) < 900 {
            let rows = try JSONDecoder().decode([RoundRow].self, from: Data(try hub(["rounds", "list", "--json"]).utf8))
            guard let r = rows.first(where: { $0.round == id }) else { break }
            if r.phase == "done" || r.phase == "failed" {
                log("round \(id) (\(kind)): \(r.phase), \(r.included.count) stores in the sum" + (r.failure.map { " — \($0)" } ?? ""))
                break
            }
            if restartHub, !restarted, r.phase == "mask" {
                stopHub()
                try await startHub()
                restarted = true
                log("round \(id): hub killed and restarted during its mask step")
            }
            if dropout > 0, killed.isEmpty, r.phase == "unmask" {
                for name in agents.keys.sorted().shuffled().prefix(Int((Double(agents.count) * dropout).rounded())) {
                    if let p = agents[name] { kill(p.processIdentifier, SIGKILL); p.waitUntilExit() }
                    killed.append(name)
                }
                log("round \(id): killed \(killed.joined(separator: ", ")) after masking")
            }
            try await Task.sleep(for: .milliseconds(300))
        }
        for name in killed { try startAgent(name) }
        let version = try hub(["models", "list", "--json"])
        struct M: Decodable { var kind: String; var version: Int }
        guard let latest = try JSONDecoder().decode([M].self, from: Data(version.utf8)).filter({ $0.kind == model.kind }).map(\.version).max() else { return }
        for _ in 0..<120 {
            let taken = try agents.keys.allSatisfy { name in
                try Store.open(at: trainStore(name), readOnly: true).database.read { db in
                    try Bool.fetchOne(db, sql: "SELECT 1 FROM synced_models WHERE kind = ? AND version = ?", arguments: [model.kind, latest]) ?? false
                }
            }
            if taken { return }
            try await Task.sleep(for: .milliseconds(500))
        }
        log("not every store took \(model.kind) v\(latest) within a minute")
    }

    /// Each store's AUC on the horizon after the cutoff: the last global model, central training
    /// on every store's rows pooled, and the store's own rows alone (the same logistic objective).
    func report(_ names: [String], model: FederatedModel, settings s: RoundSettings, cutoff t: Int64) throws {
        guard let payload = try DatabaseQueue(path: work.appendingPathComponent("hub/hub.sqlite").path).read({ db in
            try Data.fetchOne(db, sql: "SELECT payload FROM models WHERE kind = ? ORDER BY version DESC LIMIT 1", arguments: [model.kind])
        }), let federated = model.logistic(payload) else { throw ValidationErrorText("no global \(model.kind) model") }
        var train: [String: ([[Double]], [Bool])] = [:], test: [String: ([[Double]], [Bool])] = [:]
        for name in names {
            train[name] = try Store.open(at: trainStore(name), readOnly: true).database.read { try model.rows($0, s) }
            test[name] = try Store.open(at: evalStore(name), readOnly: true).database.read { db in
                if model.kind == Ranker.kind {
                    return Ranker.rows(try PurchaseHistory.load(db, to: t + Int64(s.horizonMinutes) * 60), horizonDays: s.horizonMinutes / 1440, windows: 1)
                }
                let d = try IntentFeatures.labelled(db, asOf: t, lookback: Int64(s.lookbackMinutes) * 60, until: t + Int64(s.horizonMinutes) * 60)
                return (d.rows, d.bought)
            }
        }
        let pooled = (names.flatMap { train[$0]?.0 ?? [] }, names.flatMap { train[$0]?.1 ?? [] })
        let central = LogisticRegression.fit(pooled.0, pooled.1, l2: s.l2 * Double(pooled.0.count))
        func auc(_ p: ([Double]) -> Double, _ rows: ([[Double]], [Bool])) -> Double? { Metrics.auc(scores: rows.0.map(p), labels: rows.1) }
        func pad(_ s: String) -> String { s.padding(toLength: 20, withPad: " ", startingAt: 0) }
        print(pad("store") + "  train  test  buyers  federated  central  local-only")
        var lines: [(name: String, rows: Int, f: Double, c: Double, l: Double)] = []
        var all: (f: [Double], c: [Double], l: [Double], y: [Bool]) = ([], [], [], [])
        for name in names {
            guard let tr = train[name], let te = test[name] else { continue }
            let enough = tr.1.filter { $0 }.count >= 2 && tr.1.filter { !$0 }.count >= 2
            let local = enough ? LogisticRegression.fit(tr.0, tr.1, l2: s.l2 * Double(tr.0.count)) : nil
            let localScore: ([Double]) -> Double = { x in local?.probability(x) ?? Double(tr.1.filter { $0 }.count) / Double(max(1, tr.1.count)) }
            all.f += te.0.map(federated.probability); all.c += te.0.map(central.probability); all.l += te.0.map(localScore); all.y += te.1
            guard let f = auc(federated.probability, te), let c = auc(central.probability, te), let l = auc(localScore, te) else {
                print(pad(name) + String(format: "  %5d  %4d  %6d  (one label only in the test window)", tr.0.count, te.0.count, te.1.filter { $0 }.count))
                continue
            }
            lines.append((name, tr.0.count, f, c, l))
            print(pad(name) + String(format: "  %5d  %4d  %6d     %.4f   %.4f      %.4f", tr.0.count, te.0.count, te.1.filter { $0 }.count, f, c, l))
        }
        let pooledAUC = { (s: [Double]) in Metrics.auc(scores: s, labels: all.y) ?? .nan }
        print(String(format: "all stores' test rows: federated %.4f, central %.4f, local-only %.4f", pooledAUC(all.f), pooledAUC(all.c), pooledAUC(all.l)))
        let smaller = lines.sorted { $0.rows < $1.rows }.prefix(lines.count / 2)
        let wins = smaller.filter { $0.f > $0.l }.count
        let mean = { (v: [Double]) in v.reduce(0, +) / Double(max(1, v.count)) }
        print(String(
            format: "smaller half (%d stores): federated beats local-only in %d; mean AUC federated %.4f, local-only %.4f",
            smaller.count, wins, mean(smaller.map(\.f)), mean(smaller.map(\.l))))
    }
}

struct ValidationErrorText: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
