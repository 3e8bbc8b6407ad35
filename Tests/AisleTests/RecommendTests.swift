import AisleRecommend
import Foundation
import Testing

/// Next-basket evaluation (EVALUATION.md R1, R2) and its metrics.
@Suite struct NextBasketTests {
    @Test func metricsByHand() {
        // u1: target {1, 2, 3}; list [1, 9, 3, …]: 2 hits at ranks 1 and 3.
        // u2: target {5}, earlier {5}: no new items; list misses.
        let r = NextBasket.evaluate(
            ranked: [1: [1, 9, 3, 4], 2: [7, 8]], targets: [1: [1, 2, 3], 2: [5]], earlier: [1: [1], 2: [5]], k: 3)
        #expect(r.users == 2 && abs(r.recall - (2.0 / 3 + 0) / 2) < 1e-12 && r.hit == 0.5)
        let dcg = 1 + 1 / log2(4.0), ideal = 1 + 1 / log2(3.0) + 1 / log2(4.0)
        #expect(abs(r.ndcg - dcg / ideal / 2) < 1e-12)
        // New items: u1's target without 1 is {2, 3}; list without 1 is [9, 3, 4] → 1 of 2. u2 has none.
        #expect(r.newItemUsers == 1 && abs(r.newItemRecall - 0.5) < 1e-12)
    }

    struct Out: Decodable {
        var users: Int; var recall: Double; var ndcg: Double; var hit: Double; var newItemRecall: Double
        enum CodingKeys: String, CodingKey { case users, recall = "recall@10", ndcg = "ndcg@10", hit = "hit@10", newItemRecall = "new_item_recall@10" }
    }

    func eval(_ args: [String]) throws -> Out {
        let store = try TestSupport.onlineRetailStore.get()
        let r = try TestSupport.run("aislectl", ["eval", "nextbasket", "--store", store.path, "--json"] + args)
        guard r.status == 0 else { throw TestFailure(r.err) }
        return try JSONDecoder().decode(Out.self, from: Data(r.out.utf8))
    }

    /// The protocol's users, and its popularity and P-Pop baselines reproduced.
    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func baselinesReproduce() throws {
        let pop = try eval(["--cutoff", "2011-09-01", "--model", "pop"])
        #expect(pop.users == 1947 && abs(pop.recall - 0.0305) < 5e-4 && abs(pop.ndcg - 0.1146) < 5e-4 && abs(pop.hit - 0.5208) < 5e-4)
        let ppop = try eval(["--cutoff", "2011-09-01", "--model", "ppop"])
        #expect(abs(ppop.recall - 0.1384) < 1e-3 && abs(ppop.ndcg - 0.3918) < 2e-3)
    }

    /// R2: the recommender's ranking above P-Pop on recall and NDCG, and above item-kNN on new items.
    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func rankingBeatsPersonalPopularityOnR2() throws {
        let r = try eval(["--cutoff", "2011-06-01", "--until", "2011-09-01"])
        #expect(r.users == 1346)
        #expect(r.recall > 0.1705 && r.ndcg > 0.4065, "recall \(r.recall), NDCG \(r.ndcg)")  // P-Pop 0.1705 / 0.4065
        #expect(r.newItemRecall > 0.0678, "new-item recall \(r.newItemRecall)")  // item-kNN 0.0678
    }
}
