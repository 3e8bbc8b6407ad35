import AisleFederated
import AisleFeatures
import AisleInsight
import AisleModels
import AisleStore
import AisleTraining
import Foundation
import GRDB
import Testing

/// Federated purchase intent end to end: five real stores (the Taobao slice split by shopper),
/// a real hub, only `aislectl sync now` passes between them. A moments round gives the first
/// global model, an update round the second; the hub publishes both signed, the stores take
/// them, and nothing the hub stored holds a store's vector.
@Suite struct SyncFederationTests {
    /// Five stores of the Taobao slice split by shopper, enrolled with `hub`.
    static func taobaoStores(_ hub: HubFixture) throws -> [URL] {
        let shared = try #require(TestSupport.shared)
        let rows = try ModelsTests.csv(shared.appendingPathComponent("data/taobao_userbehavior/ub_timeslice_110k.csv")).filter { $0.count == 5 }
        let types = ["pv": "view", "cart": "cart", "fav": "fav", "buy": "purchase"]
        return try (0..<5).map { s in
            let mine = rows.filter { (Int($0[0]) ?? 0) % 5 == s }
            let events = mine.map { #"{"ts":\#($0[4]),"type":"\#(types[$0[3]] ?? $0[3])","customer":"tb\#($0[0])","item":"tb\#($0[1])"}"# }
            let catalog = Set(mine.map { "\($0[1])\t\($0[2])" }).map { line -> String in
                let f = line.split(separator: "\t")
                return #"{"item":"tb\#(f[0])","title":"item \#(f[0])","category":"\#(f[1])"}"#
            }
            let dir = hub.dir.appendingPathComponent("taobao-\(s)")
            return try hub.enrolledStore(name: "taobao \(s)", existing: URL(fileURLWithPath: try ModelsTests.store(events: events, catalog: catalog, in: dir)))
        }
    }

    /// `aislectl sync now` on every store in turn.
    static func sweep(_ stores: [URL], _ extra: [String] = []) throws {
        for store in stores {
            let r = try TestSupport.run("aislectl", ["sync", "now", "--store", store.path] + extra)
            #expect(r.status == 0, "\(r.err)")
        }
    }

    /// Sync passes until every store has taken global `kind` `version`.
    static func syncUntilTaken(_ version: Int, _ stores: [URL], _ extra: [String] = [], kind: String = "intent") throws {
        for _ in 0..<8 {
            try sweep(stores, extra)
            let taken = try stores.allSatisfy { store in
                try Store.open(at: store, readOnly: true).database.read { db in
                    try Bool.fetchOne(db, sql: "SELECT 1 FROM synced_models WHERE kind = ? AND version = ?", arguments: [kind, version]) ?? false
                }
            }
            if taken { return }
        }
        Issue.record("global \(kind) v\(version) not taken by every store")
    }

    struct Model: Decodable { var kind: String; var version: Int; var round: Int; var epsilon: Double? }
    static func models(_ hub: HubFixture) throws -> [Model] { try JSONDecoder().decode([Model].self, from: Data(try hub.cli(["models", "list", "--json"]).out.utf8)) }

    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func fiveStoresTrainTheIntentModelTogetherThroughTheHub() async throws {
        let hub = try await HubFixture()
        let stores = try Self.taobaoStores(hub)
        let unlimited = ["--privacy-budget", "0"]
        #expect(try hub.cli(["rounds", "open", "intent", "--min-stores", "5"]).err.contains("no global intent model yet"))
        #expect(try hub.cli(["rounds", "open", "intent-moments", "--min-stores", "5", "--phase-seconds", "120"]).status == 0)
        try Self.syncUntilTaken(1, stores, unlimited)
        let first = try Self.models(hub)
        #expect(first.count == 1 && first.first?.version == 1 && first.first?.round == 1 && first.first?.epsilon == nil, "\(first)")

        #expect(try hub.cli(["rounds", "open", "intent", "--min-stores", "5", "--phase-seconds", "120"]).status == 0)
        try Self.syncUntilTaken(2, stores, unlimited)
        let all = try Self.models(hub)
        #expect(all.first { $0.version == 2 }?.round == 2, "\(all)")
        // The second global model, scored on every store's shoppers at the evaluation cutoff.
        let payload = try #require(try hub.read { try Data.fetchOne($0, sql: "SELECT payload FROM models WHERE kind = 'intent' AND version = 2") })
        let model = try JSONDecoder().decode(IntentModel.self, from: payload)
        var scores: [Double] = [], labels: [Bool] = []
        for store in stores {
            let data = try await Store.open(at: store, readOnly: true).database.read { db in
                try IntentFeatures.labelled(db, asOf: Int64(PurchaseIntentTests.cutoff), lookback: 70 * 60, until: Int64(PurchaseIntentTests.cutoff) + 31 * 60)
            }
            scores += data.rows.map(model.model.probability)
            labels += data.bought
        }
        let auc = try #require(Metrics.auc(scores: scores, labels: labels))
        print("federated intent through the hub: global v2 AUC \(auc) on \(labels.count) shoppers")
        #expect(auc > 0.62, "AUC \(auc)")
        // A noised round after the moments: its model is not differentially private either (the
        // moments went exact), and the hub steps by the server method this round's offer names.
        let fedAdam = ["--noise-multiplier", "1", "--clip-norm", "0.5", "--server", "fedadam", "--server-rate", "0.1"]
        #expect(try hub.cli(["rounds", "open", "intent", "--min-stores", "5", "--phase-seconds", "120"] + fedAdam).status == 0)
        try Self.syncUntilTaken(3, stores, unlimited)
        let third = try Self.models(hub).first { $0.version == 3 }
        #expect(third?.round == 3 && third?.epsilon == nil, "\(String(describing: third))")
        let intent = try #require(FederatedModel.of(round: "intent"))
        let (v2, v3, result) = try hub.read { db in
            (try Data.fetchOne(db, sql: "SELECT payload FROM models WHERE kind = 'intent' AND version = 2").flatMap(intent.logistic),
             try Data.fetchOne(db, sql: "SELECT payload FROM models WHERE kind = 'intent' AND version = 3").flatMap(intent.logistic),
             try Data.fetchOne(db, sql: "SELECT result FROM rounds WHERE id = 3"))
        }
        let sum = FixedPoint().decode(try JSONDecoder().decode([UInt32].self, from: try #require(result)))
        let mean = sum[0...intent.dimension].map { $0 / sum[intent.dimension + 1] }
        // FedAdam's first step written out (Reddi et al.: β1 0.9, β2 0.99, τ 1e-3, v from τ²), not
        // the hub's own optimizer, so a wrong formula there shows.
        let tau = 1e-3
        let expected = zip(FederatedLogistic.parameters(try #require(v2)), mean).map { w, d in w + 0.1 * (0.1 * d) / ((0.99 * tau * tau + 0.01 * d * d).squareRoot() + tau) }
        let got = FederatedLogistic.parameters(try #require(v3))
        #expect(zip(expected, got).allSatisfy { abs($0 - $1) < 1e-9 }, "v3 is not v2 plus one FedAdam step at 0.1")
        // Each store's vectors stay in the store: none is anywhere in the hub's database.
        let hubCells = try hub.read { db -> [String] in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'").flatMap { table in
                try Row.fetchAll(db, sql: "SELECT * FROM \(table)").flatMap { row in
                    row.databaseValues.compactMap { Data.fromDatabaseValue($0).map { String(decoding: $0, as: UTF8.self) } ?? String.fromDatabaseValue($0) }
                }
            }
        }
        // Nor in its logs, nor in its memory (as words or as text), while it is still running.
        let logs = try hub.logs()
        #expect(logs.contains("listening"), "the hub's logs were not read")
        var needles: [Data] = []
        for store in stores {
            let vectors = try await Store.open(at: store, readOnly: true).database.read { try Data.fetchAll($0, sql: "SELECT vector FROM fl_rounds WHERE vector IS NOT NULL") }
            #expect(vectors.count == 3)
            for v in vectors {
                let text = String(decoding: v, as: UTF8.self)
                #expect(!hubCells.contains { $0.contains(text.dropFirst().prefix(40)) }, "a store's vector is in the hub's database")
                #expect(!logs.contains(text.dropFirst().prefix(40)), "a store's vector is in the hub's logs")
                let words = try JSONDecoder().decode([UInt32].self, from: v).prefix(8).withUnsafeBytes { Data($0) }
                needles.append(Data(text.dropFirst().prefix(40).utf8))
                if words.contains(where: { $0 != 0 && $0 != 0xFF }) { needles.append(words) }
            }
        }
        // The search finds what the hub does hold in its heap: its database file's path (its
        // command line names only the config file beside that directory).
        let found = try hub.memoryHolds(needles + [Data(hub.data.appendingPathComponent("hub.sqlite").path.utf8)])
        #expect(found.last == true, "the search of the hub's memory finds nothing it holds")
        #expect(!found.dropLast().contains(true), "a store's unmasked vector is in the hub's memory")
    }

    /// With noise the stores spend their budget: ε 4.75 after one round at z = 2 (δ 10⁻⁵; the
    /// Gaussian mechanism at z / 2, a store's update replaced moving the sum by 2C), 7.09
    /// after two, both in the signed manifests; a third would pass the budget of 8, so every store
    /// declines it and the round fails without publishing.
    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func storesSpendTheirPrivacyBudgetAndStopWhenItIsSpent() async throws {
        let hub = try await HubFixture()
        let stores = try Self.taobaoStores(hub)
        #expect(try hub.cli(["models", "blank"]).status == 0)
        try Self.syncUntilTaken(1, stores)
        for (round, version) in [(1, 2), (2, 3)] {
            let opened = try hub.cli(["rounds", "open", "intent", "--min-stores", "5", "--phase-seconds", "120", "--noise-multiplier", "2", "--clip-norm", "0.5", "--server", "fedadam", "--server-rate", "0.1"])
            #expect(opened.status == 0 && opened.out.contains("round \(round)"), "\(opened.out)\(opened.err)")
            try Self.syncUntilTaken(version, stores)
        }
        let eps = try Self.models(hub).filter { $0.version > 1 }.sorted { $0.version < $1.version }.map { $0.epsilon ?? .nan }
        #expect(eps.count == 2 && abs(eps[0] - 4.7527) < 1e-3 && abs(eps[1] - 7.0879) < 1e-3, "\(eps)")
        // (Open long enough for a loaded machine's sweep to see it; it then fails for want of stores.)
        // Offered at δ 10⁻³, where three rounds would be ε 7.0: the stores measure at their own 10⁻⁵.
        #expect(try hub.cli(["rounds", "open", "intent", "--min-stores", "5", "--phase-seconds", "20", "--noise-multiplier", "2", "--clip-norm", "0.5", "--delta", "0.001"]).status == 0)
        try Self.sweep(stores)
        let privacy = try TestSupport.run("aislectl", ["privacy", "--store", stores[0].path])
        #expect(privacy.out.contains("spent: ε 7.09") && privacy.out.contains("round 3 intent: declined") && privacy.out.contains("joining would spend ε 9.02 of a budget of 8.00 (δ 1e-05)"), "\(privacy.out)")
        // The budget shown is the agent's configured one when the store comes from its configuration.
        let config = hub.dir.appendingPathComponent("aisled.toml")
        try TestSupport.write("[store]\npath = \"\(stores[0].path)\"\n[privacy]\nbudget_epsilon = 7.5\n", to: config)
        let configured = try TestSupport.run("aislectl", ["privacy", "--config", config.path, "--json"])
        struct Spent: Decodable { var budget: Double }
        #expect(try JSONDecoder().decode(Spent.self, from: Data(configured.out.utf8)).budget == 7.5, "\(configured.out)\(configured.err)")
        var phase = ""
        for _ in 0..<300 where phase != "failed" {
            try await Task.sleep(for: .milliseconds(200))
            struct R: Decodable { var round: Int; var phase: String }
            phase = try JSONDecoder().decode([R].self, from: Data(try hub.cli(["rounds", "list", "--json"]).out.utf8)).first { $0.round == 3 }?.phase ?? ""
        }
        #expect(try phase == "failed" && Self.models(hub).count == 3)
    }
}
