import AisleFeatures
import AisleInsight
import AisleModels
import AisleStore
import Foundation
import GRDB
import Testing

/// Federated purchase intent end to end: five real stores (the Taobao slice split by shopper),
/// a real hub, only `aislectl sync now` passes between them. A moments round gives the first
/// global model, an update round the second; the hub publishes both signed, the stores take
/// them, and nothing the hub stored holds a store's vector.
@Suite struct SyncFederationTests {
    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func fiveStoresTrainTheIntentModelTogetherThroughTheHub() async throws {
        let hub = try await HubFixture()
        let shared = try #require(TestSupport.shared)
        let rows = try ModelsTests.csv(shared.appendingPathComponent("data/taobao_userbehavior/ub_timeslice_110k.csv")).filter { $0.count == 5 }
        let types = ["pv": "view", "cart": "cart", "fav": "fav", "buy": "purchase"]
        var stores: [URL] = []
        for s in 0..<5 {
            let mine = rows.filter { (Int($0[0]) ?? 0) % 5 == s }
            let events = mine.map { #"{"ts":\#($0[4]),"type":"\#(types[$0[3]] ?? $0[3])","customer":"tb\#($0[0])","item":"tb\#($0[1])"}"# }
            let catalog = Set(mine.map { "\($0[1])\t\($0[2])" }).map { line -> String in
                let f = line.split(separator: "\t")
                return #"{"item":"tb\#(f[0])","title":"item \#(f[0])","category":"\#(f[1])"}"#
            }
            let dir = hub.dir.appendingPathComponent("taobao-\(s)")
            stores.append(try hub.enrolledStore(name: "taobao \(s)", existing: URL(fileURLWithPath: try ModelsTests.store(events: events, catalog: catalog, in: dir))))
        }
        func sweep() throws -> [String] {
            try stores.map { store in
                let r = try TestSupport.run("aislectl", ["sync", "now", "--store", store.path, "--privacy-budget", "0"])
                #expect(r.status == 0, "\(r.err)")
                return r.out
            }
        }
        struct Model: Decodable { var kind: String; var version: Int; var round: Int; var epsilon: Double? }
        func models() throws -> [Model] { try JSONDecoder().decode([Model].self, from: Data(try hub.cli(["models", "list", "--json"]).out.utf8)) }

        #expect(try hub.cli(["rounds", "open", "intent", "--min-stores", "5"]).err.contains("no global intent model yet"))
        #expect(try hub.cli(["rounds", "open", "intent-moments", "--min-stores", "5", "--phase-seconds", "120"]).status == 0)
        /// Sync passes until the hub has published `version` and every store has taken it.
        func syncUntilTaken(_ version: Int) throws {
            for _ in 0..<8 {
                _ = try sweep()
                let taken = try stores.allSatisfy { store in
                    try Store.open(at: store, readOnly: true).database.read { db in
                        try Bool.fetchOne(db, sql: "SELECT 1 FROM synced_models WHERE kind = 'intent' AND version = ?", arguments: [version]) ?? false
                    }
                }
                if taken { return }
            }
            Issue.record("global intent v\(version) not taken by every store: \(try models())")
        }
        try syncUntilTaken(1)
        let first = try models()
        #expect(first.count == 1 && first.first?.version == 1 && first.first?.round == 1 && first.first?.epsilon == nil, "\(first)")

        #expect(try hub.cli(["rounds", "open", "intent", "--min-stores", "5", "--phase-seconds", "120"]).status == 0)
        try syncUntilTaken(2)
        let all = try models()
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
        // Each store's vectors stay in the store: none is anywhere in the hub's database.
        let hubCells = try hub.read { db -> [String] in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'").flatMap { table in
                try Row.fetchAll(db, sql: "SELECT * FROM \(table)").flatMap { row in
                    row.databaseValues.compactMap { Data.fromDatabaseValue($0).map { String(decoding: $0, as: UTF8.self) } ?? String.fromDatabaseValue($0) }
                }
            }
        }
        for store in stores {
            let vectors = try await Store.open(at: store, readOnly: true).database.read { try Data.fetchAll($0, sql: "SELECT vector FROM fl_rounds WHERE vector IS NOT NULL") }
            #expect(vectors.count == 2)
            for v in vectors {
                let text = String(decoding: v, as: UTF8.self)
                #expect(!hubCells.contains { $0.contains(text.dropFirst().prefix(40)) }, "a store's vector is in the hub's database")
            }
        }
    }
}
