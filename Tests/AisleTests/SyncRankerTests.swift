import AisleModels
import AisleRecommend
import AisleStore
import AisleSync
import AisleTraining
import Foundation
import GRDB
import Testing

/// The recommendation ranker trained by the fleet: four real stores of UCI Online Retail
/// (customers split by id) and a real hub, only `aislectl sync now` between them. A moments
/// round and two ranker rounds go through secure aggregation; every store takes the global
/// ranker (a logistic regression over the ranking features), it ranks the stores' candidates as
/// well as central training on their rows pooled, and the store's recommendations use it.
@Suite struct SyncRankerTests {
    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func fourStoresTrainTheRankerTogetherThroughTheHub() async throws {
        let hub = try await HubFixture()
        let stores = try SyncPriorsTests.retailStores(hub, count: 4) { _, date in date < "2011-10-01" }
        let unlimited = ["--privacy-budget", "0"]
        let (days, windows) = (30, 2)
        let settings = ["--min-stores", "4", "--phase-seconds", "120", "--horizon-minutes", "\(days * 1440)", "--cutoffs", "\(windows)"]
        #expect(try hub.cli(["rounds", "open", "ranker", "--min-stores", "4"]).err.contains("no global ranker model yet"))
        #expect(try hub.cli(["rounds", "open", "ranker-moments"] + settings).status == 0)
        try SyncFederationTests.syncUntilTaken(1, stores, unlimited, kind: "ranker")
        for version in 2...3 {
            #expect(try hub.cli(["rounds", "open", "ranker"] + settings).status == 0)
            try SyncFederationTests.syncUntilTaken(version, stores, unlimited, kind: "ranker")
        }
        let published = try SyncFederationTests.models(hub).filter { $0.kind == "ranker" }
        #expect(published.map(\.version).sorted() == [1, 2, 3], "\(published)")

        // The same rows the stores trained on, pooled: central training's optimum, and how the
        // global ranker and central training order them (AUC of bought against not).
        let payload = try #require(try hub.read { try Data.fetchOne($0, sql: "SELECT payload FROM models WHERE kind = 'ranker' AND version = 3") })
        let global = try #require(try JSONDecoder().decode(Ranker.self, from: payload).linear)
        var x: [[Double]] = [], y: [Bool] = []
        var round = RoundSettings()
        (round.horizonMinutes, round.cutoffs) = (days * 1440, windows)
        for store in stores {
            let rows = try await Store.open(at: store, readOnly: true).database.read { [round] db in try FederatedModel.ranker.rows(db, round) }
            (x, y) = (x + rows.rows, y + rows.labels)
        }
        let central = LogisticRegression.fit(x, y, l2: 1e-2 * Double(x.count))
        let aucGlobal = try #require(Metrics.auc(scores: x.map(global.probability), labels: y))
        let aucCentral = try #require(Metrics.auc(scores: x.map(central.probability), labels: y))
        print("federated ranker through the hub: global v3 AUC \(aucGlobal), central \(aucCentral) on \(x.count) candidate rows (\(y.filter { $0 }.count) bought)")
        #expect(aucCentral > 0.75 && abs(aucGlobal - aucCentral) <= 0.01, "global \(aucGlobal), central \(aucCentral)")

        // Each store made it its active ranker (it had none) and ranks its recommendations by it.
        for store in stores {
            let (ranker, recommended) = try await Store.open(at: store, readOnly: true).database.read { db -> (Ranker?, Int) in
                let active = try Ranker.active(db)
                let last = try Queries.lastEventTime(db) ?? 0
                let index = try RecommendationIndex.build(db, asOf: last + 1, ranker: active, themes: nil, fleet: nil)
                let customer = try Int64.fetchOne(db, sql: "SELECT customer_id FROM events WHERE type = 'purchase' AND customer_id IS NOT NULL ORDER BY ts DESC LIMIT 1")
                return (active?.model, index.recommend(.init(customer: customer)).count)
            }
            #expect(ranker?.linear == global && recommended == 10)
        }
    }
}
