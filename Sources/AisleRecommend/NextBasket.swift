import Foundation

/// The next-basket protocol of EVALUATION.md (R1, R2): customers who bought before the cutoff and
/// in the test window; target = the distinct items they bought in it.
public enum NextBasket {
    public struct Result: Sendable, Encodable {
        public var users: Int
        public var recall: Double
        public var ndcg: Double
        public var hit: Double
        public var newItemRecall: Double
        /// Users with new items in their target (the new-item recall's denominator).
        public var newItemUsers: Int
    }

    /// Scores ranked lists against targets at `k`: recall (hits / |target|), NDCG (binary
    /// relevance, ideal over min(k, |target|)), hit rate; and new-item recall on the lists and
    /// targets without each user's earlier items (users with no new target item left out).
    public static func evaluate(
        ranked: [Int64: [Int]], targets: [Int64: Set<Int>], earlier: [Int64: Set<Int>], k: Int
    ) -> Result {
        var recall = 0.0, ndcg = 0.0, hit = 0.0, newRecall = 0.0, newUsers = 0
        // Users in order: the same sums, to the last bit, in every run.
        for (user, target) in targets.sorted(by: { $0.key < $1.key }) where !target.isEmpty {
            let list = Array((ranked[user] ?? []).prefix(k))
            let hits = list.enumerated().filter { target.contains($0.element) }
            recall += Double(hits.count) / Double(target.count)
            let dcg = hits.reduce(0.0) { $0 + 1 / log2(Double($1.offset) + 2) }
            let ideal = (0..<min(k, target.count)).reduce(0.0) { $0 + 1 / log2(Double($1) + 2) }
            ndcg += dcg / ideal
            hit += hits.isEmpty ? 0 : 1
            let old = earlier[user] ?? []
            let newTarget = target.subtracting(old)
            if !newTarget.isEmpty {
                let newList = (ranked[user] ?? []).lazy.filter { !old.contains($0) }.prefix(k)
                newRecall += Double(newList.filter { newTarget.contains($0) }.count) / Double(newTarget.count)
                newUsers += 1
            }
        }
        let n = Double(max(1, targets.count))
        return Result(users: targets.count, recall: recall / n, ndcg: ndcg / n, hit: hit / n,
                      newItemRecall: newRecall / Double(max(1, newUsers)), newItemUsers: newUsers)
    }
}
