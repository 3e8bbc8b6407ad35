import Foundation

/// Gradient-boosted decision trees for binary classification (log loss, Newton leaf values,
/// histogram splits between a feature's distinct values, or 32 groups of them), as LightGBM and XGBoost fit
/// them, at the scale of a store: thousands of rows, tens of features.
public struct GradientBoostedTrees: Sendable, Codable, Equatable {
    public struct Parameters: Sendable, Codable, Equatable {
        public var trees = 200
        public var depth = 3
        public var learningRate = 0.05
        public var minLeaf = 20
        public var l2 = 1.0
        public init() {}
    }

    /// A tree as arrays: node i splits on `feature[i]` at `threshold[i]` (to `left[i]` when ≤,
    /// else `right[i]`), or is a leaf worth `value[i]` when `feature[i]` is -1. Node 0 is the root.
    struct Tree: Sendable, Codable, Equatable {
        var feature: [Int] = []
        var threshold: [Double] = []
        var left: [Int] = []
        var right: [Int] = []
        var value: [Double] = []

        func predict(_ x: [Double]) -> Double {
            var i = 0
            while feature[i] >= 0 { i = x[feature[i]] <= threshold[i] ? left[i] : right[i] }
            return value[i]
        }
    }

    var base: Double
    var trees: [Tree]
    public var parameters: Parameters
    /// The trees for scoring (a request's hot path): each made complete to one depth, `levels`
    /// (a leaf above it repeated on both sides below), so that a walk is `levels` steps without
    /// a branch. Tree t's splits are `splitFeature`/`splitValue` from t × (2^levels − 1) in
    /// breadth-first order, its leaves `leafValue` from t × 2^levels.
    private var splitFeature: [Int32] = [], splitValue: [Double] = [], leafValue: [Double] = []
    private var levels = 0
    /// The largest feature index a split reads.
    private var widest = -1
    /// Deeper trees than any trainer here grows are refused (a complete one has 2^depth leaves).
    static let maxDepth = 12

    init(base: Double, trees: [Tree], parameters: Parameters) throws(Malformed) {
        (self.base, self.trees, self.parameters) = (base, trees, parameters)
        var levels = 0  // the deepest tree's depth
        for (t, tree) in trees.enumerated() {
            let n = tree.feature.count
            guard n > 0, [tree.threshold.count, tree.left.count, tree.right.count, tree.value.count].allSatisfy({ $0 == n }) else {
                throw Malformed(description: "tree \(t): its node arrays are empty or of different lengths")
            }
            var depth = [Int](repeating: 0, count: n)
            for i in 0..<n where tree.feature[i] != -1 {
                // Children come after their parent: no cycles, every walk ends at a leaf.
                guard tree.feature[i] >= 0, tree.left[i] > i && tree.left[i] < n && tree.right[i] > i && tree.right[i] < n else {
                    throw Malformed(description: "tree \(t), node \(i): a split must lead to later nodes of its tree")
                }
                widest = max(widest, tree.feature[i])
                for child in [tree.left[i], tree.right[i]] { depth[child] = max(depth[child], depth[i] + 1) }
            }
            guard let deepest = depth.max(), deepest <= Self.maxDepth else {
                throw Malformed(description: "tree \(t): deeper than \(Self.maxDepth) levels")
            }
            levels = max(levels, deepest)
        }
        let (splits, leaves) = ((1 << levels) - 1, 1 << levels)
        var features = [Int32](repeating: 0, count: trees.count * splits), values = [Double](repeating: 0, count: trees.count * splits)
        var leafValues = [Double](repeating: 0, count: trees.count * leaves)
        for (t, tree) in trees.enumerated() {
            // Node `node` of the tree at position `at` of the complete one, `level` steps down.
            func place(_ node: Int, at: Int, level: Int) {
                if level == levels { return leafValues[t * leaves + at - splits] = tree.value[node] }
                let split = tree.feature[node] >= 0
                if split { (features[t * splits + at], values[t * splits + at]) = (Int32(tree.feature[node]), tree.threshold[node]) }
                place(split ? tree.left[node] : node, at: 2 * at + 1, level: level + 1)
                place(split ? tree.right[node] : node, at: 2 * at + 2, level: level + 1)
            }
            place(0, at: 0, level: 0)
        }
        (self.levels, splitFeature, splitValue, leafValue) = (levels, features, values, leafValues)
    }

    /// Why stored trees cannot be used.
    struct Malformed: Error, CustomStringConvertible { var description: String }

    enum CodingKeys: String, CodingKey { case base, trees, parameters }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        do {
            try self.init(
                base: c.decode(Double.self, forKey: .base), trees: c.decode([Tree].self, forKey: .trees), parameters: c.decode(Parameters.self, forKey: .parameters))
        } catch let error as Malformed {
            throw DecodingError.dataCorruptedError(forKey: .trees, in: c, debugDescription: error.description)
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(base, forKey: .base)
        try c.encode(trees, forKey: .trees)
        try c.encode(parameters, forKey: .parameters)
    }

    public static func == (a: Self, b: Self) -> Bool { a.base == b.base && a.trees == b.trees && a.parameters == b.parameters }

    /// How many features the splits read (one past the widest's index): a row must be as long.
    public var featuresRead: Int { widest + 1 }

    /// The probability of the positive class for `x` (at least as long as the widest split reads).
    public func probability(_ x: [Double]) -> Double {
        precondition(x.count > widest, "\(x.count) features for trees that read feature \(widest)")
        let (splits, leaves) = ((1 << levels) - 1, 1 << levels)
        var total = base
        splitFeature.withUnsafeBufferPointer { f in
            splitValue.withUnsafeBufferPointer { v in
                leafValue.withUnsafeBufferPointer { leaf in
                    x.withUnsafeBufferPointer { x in
                        for t in trees.indices {
                            let s = t * splits
                            var i = 0
                            // Left when x ≤ the split (a missing value, NaN, goes right, as when grown).
                            for _ in 0..<levels { i = 2 * i + (x[Int(f[s + i])] <= v[s + i] ? 1 : 2) }
                            total += leaf[t * leaves + i - splits]
                        }
                    }
                }
            }
        }
        return sigmoid(total)
    }

    public static func fit(_ x: [[Double]], _ y: [Bool], parameters p: Parameters = Parameters()) -> GradientBoostedTrees {
        let n = x.count, d = x.first?.count ?? 0
        let positives = Double(y.filter { $0 }.count)
        let prior = min(max(positives / Double(max(n, 1)), 1e-6), 1 - 1e-6)
        let base = log(prior / (1 - prior))
        let edges = (0..<d).map { j in binEdges(x.map { $0[j] }) }
        let bins: [[UInt8]] = x.map { row in (0..<d).map { j in UInt8(edges[j].partitionIndex { row[j] <= $0 }) } }
        var margin = [Double](repeating: base, count: n)
        var trees: [Tree] = []
        for _ in 0..<p.trees {
            var g = [Double](repeating: 0, count: n), h = g
            for i in 0..<n {
                let q = sigmoid(margin[i])
                g[i] = q - (y[i] ? 1 : 0)
                h[i] = max(q * (1 - q), 1e-12)
            }
            var tree = Tree()
            grow(&tree, rows: Array(0..<n), depth: 0, bins: bins, edges: edges, g: g, h: h, p: p)
            for i in 0..<n { margin[i] += tree.predict(x[i]) }
            trees.append(tree)
        }
        // Grown as ``init(base:trees:parameters:)`` requires.
        guard let model = try? GradientBoostedTrees(base: base, trees: trees, parameters: p) else { preconditionFailure("a grown tree is malformed") }
        return model
    }

    /// A feature with at most this many distinct values splits between any two of them (a row's
    /// bin is a byte).
    static let maxBins = 256
    /// A feature with more splits between this many groups of about equal counts: coarser than
    /// its values, so that trees cannot chase noise in where a continuous feature is cut.
    static let groups = 32

    /// Split candidates for one feature's values, ascending: between every two neighbouring
    /// distinct values when there are at most ``maxBins`` of them (a rare tail of counts, where
    /// the few buyers are, is not lumped into one bin), else between ``groups`` groups of
    /// neighbouring values of about equal counts (a value that common has a bin to itself).
    /// Candidates lie halfway between the values they separate. NaN is left out (it falls past
    /// the last).
    static func binEdges(_ values: [Double]) -> [Double] {
        let sorted = values.filter { !$0.isNaN }.sorted()
        var distinct: [(value: Double, count: Int)] = []
        for v in sorted {
            if distinct.last?.value == v { distinct[distinct.count - 1].count += 1 } else { distinct.append((v, 1)) }
        }
        guard distinct.count > 1 else { return [] }
        var cuts: [Double] = [], binned = 0, filled = 0  // rows in closed bins; in the open one
        for (a, b) in zip(distinct, distinct.dropFirst()) {
            filled += a.count
            // A group closes at its share of the rows not yet grouped.
            if distinct.count <= maxBins || (cuts.count < groups - 1 && filled * (groups - cuts.count) >= sorted.count - binned) {
                cuts.append(a.value + (b.value - a.value) / 2)
                (binned, filled) = (binned + filled, 0)
            }
        }
        return cuts
    }

    /// Adds the node for `rows` (and its subtree) to `tree`; returns its index.
    @discardableResult
    private static func grow(_ tree: inout Tree, rows: [Int], depth: Int, bins: [[UInt8]], edges: [[Double]], g: [Double], h: [Double], p: Parameters) -> Int {
        let node = tree.feature.count
        tree.feature.append(-1); tree.threshold.append(0); tree.left.append(0); tree.right.append(0); tree.value.append(0)
        let G = rows.reduce(0) { $0 + g[$1] }, H = rows.reduce(0) { $0 + h[$1] }
        tree.value[node] = -G / (H + p.l2) * p.learningRate
        guard depth < p.depth, rows.count >= 2 * p.minLeaf else { return node }
        var best: (gain: Double, feature: Int, bin: Int) = (1e-9, -1, 0)
        let parent = G * G / (H + p.l2)
        for j in edges.indices where !edges[j].isEmpty {
            let k = edges[j].count + 1
            var gs = [Double](repeating: 0, count: k), hs = gs, cs = [Int](repeating: 0, count: k)
            for r in rows { let b = Int(bins[r][j]); gs[b] += g[r]; hs[b] += h[r]; cs[b] += 1 }
            var gl = 0.0, hl = 0.0, cl = 0
            for b in 0..<(k - 1) {
                gl += gs[b]; hl += hs[b]; cl += cs[b]
                guard cl >= p.minLeaf, rows.count - cl >= p.minLeaf else { continue }
                let gain = gl * gl / (hl + p.l2) + (G - gl) * (G - gl) / (H - hl + p.l2) - parent
                if gain > best.gain { best = (gain, j, b) }
            }
        }
        guard best.feature >= 0 else { return node }
        let j = best.feature, cut = best.bin
        let leftRows = rows.filter { Int(bins[$0][j]) <= cut }, rightRows = rows.filter { Int(bins[$0][j]) > cut }
        tree.feature[node] = j
        tree.threshold[node] = edges[j][cut]
        tree.left[node] = grow(&tree, rows: leftRows, depth: depth + 1, bins: bins, edges: edges, g: g, h: h, p: p)
        tree.right[node] = grow(&tree, rows: rightRows, depth: depth + 1, bins: bins, edges: edges, g: g, h: h, p: p)
        return node
    }
}

extension Array where Element == Double {
    /// The first index whose element satisfies `belongs` (the elements are ascending), or count.
    func partitionIndex(where belongs: (Double) -> Bool) -> Int {
        var lo = 0, hi = count
        while lo < hi { let mid = (lo + hi) / 2; if belongs(self[mid]) { hi = mid } else { lo = mid + 1 } }
        return lo
    }
}
