/// Frequent itemsets by FP-Growth (Han, Pei & Yin 2000): one pass counts items, a second builds
/// the prefix tree of every basket's frequent items in descending frequency, and mining recurses
/// into each item's conditional tree. Items are dense integer ids; baskets are sets.
public enum FPGrowth {
    /// An itemset (ascending ids) and the number of baskets that contain all of it.
    public struct Itemset: Hashable, Sendable {
        public var items: [Int]
        public var count: Int
    }

    /// Every itemset whose support (count / baskets) is at least `minSupport`, as mlxtend's
    /// `fpgrowth` defines it — single items by that ratio, longer itemsets by count ≥
    /// ⌈minSupport × baskets⌉, which differ at floating-point edges (0.07 × 100 is
    /// 7.000000000000001: a pair in 7 of 100 baskets is not frequent there); `maxLength` bounds
    /// the itemset size (nil: no bound).
    public static func frequentItemsets(_ baskets: [[Int]], minSupport: Double, maxLength: Int? = nil) -> [Itemset] {
        let n = baskets.count
        guard n > 0 else { return [] }
        let frequent = { (count: Int) in Double(count) / Double(n) >= minSupport }
        var counts: [Int: Int] = [:]
        for basket in baskets { for item in Set(basket) { counts[item, default: 0] += 1 } }
        // Rank: descending count, then ascending id, so the tree is the same on every run.
        let ranked = counts.filter { frequent($0.value) }.sorted { ($0.value, -$0.key) > ($1.value, -$1.key) }.map(\.key)
        let rank = Dictionary(uniqueKeysWithValues: ranked.enumerated().map { ($1, $0) })
        let tree = Tree()
        for basket in baskets {
            let path = Set(basket).compactMap { rank[$0] }.sorted()
            if !path.isEmpty { tree.insert(path, count: 1) }
        }
        var found: [Itemset] = []
        let minCount = Int((minSupport * Double(n)).rounded(.up))
        mine(tree, suffix: [], frequent: { $0 >= minCount }, maxLength: maxLength ?? .max) { ranks, count in
            found.append(Itemset(items: ranks.map { ranked[$0] }.sorted(), count: count))
        }
        return found
    }

    /// Emits every frequent itemset of `tree` joined with `suffix` (ranks), with its count; the
    /// single items of the top tree are frequent already, longer itemsets when `frequent`.
    static func mine(_ tree: Tree, suffix: [Int], frequent: (Int) -> Bool, maxLength: Int, emit: ([Int], Int) -> Void) {
        for rank in tree.heads.keys.sorted(by: >) {  // least frequent first
            let count = tree.total(rank)
            guard suffix.isEmpty || frequent(count) else { continue }
            let itemset = suffix + [rank]
            emit(itemset, count)
            guard itemset.count < maxLength else { continue }
            // The conditional tree: every prefix path ending in `rank`, weighted by its count.
            let conditional = Tree()
            for node in tree.nodes(rank) {
                var path: [Int] = []
                var up = node.parent
                while let p = up, p.rank >= 0 { path.append(p.rank); up = p.parent }
                if !path.isEmpty { conditional.insert(path.reversed(), count: node.count) }
            }
            conditional.prune(frequent)
            if !conditional.heads.isEmpty { mine(conditional, suffix: itemset, frequent: frequent, maxLength: maxLength, emit: emit) }
        }
    }

    /// The FP-tree: nodes by rank, children by rank, and a list of every node of each rank.
    final class Tree {
        final class Node {
            let rank: Int
            var count = 0
            weak var parent: Node?
            var children: [Int: Node] = [:]
            init(rank: Int, parent: Node?) { self.rank = rank; self.parent = parent }
        }

        let root = Node(rank: -1, parent: nil)
        private(set) var heads: [Int: [Node]] = [:]

        /// Adds a path of ranks (ascending: most frequent first).
        func insert(_ path: some Sequence<Int>, count: Int) {
            var node = root
            for rank in path {
                if let child = node.children[rank] {
                    node = child
                } else {
                    let child = Node(rank: rank, parent: node)
                    node.children[rank] = child
                    heads[rank, default: []].append(child)
                    node = child
                }
                node.count += count
            }
        }

        func nodes(_ rank: Int) -> [Node] { heads[rank] ?? [] }
        func total(_ rank: Int) -> Int { nodes(rank).reduce(0) { $0 + $1.count } }

        /// Drops the ranks that are not frequent in this tree (their nodes stay as pass-through;
        /// mining skips them by count).
        func prune(_ frequent: (Int) -> Bool) {
            for rank in Array(heads.keys) where !frequent(total(rank)) { heads[rank] = nil }
        }
    }
}
