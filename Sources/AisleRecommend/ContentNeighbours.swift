import AisleCore
import AisleModels
import Foundation

/// Each catalog item's nearest items by the cosine of their title embeddings (the int8
/// encoder's, L2-normalised): the content-based candidates, "similar to … you looked at".
/// Every pair is compared once at build — quadratic, so catalogs of more than ``maxItems``
/// embedded items get none (the other sources still serve).
public struct ContentNeighbours: Sendable {
    public struct Neighbour: Sendable, Equatable {
        public var item: Int
        public var similarity: Float
    }

    /// Neighbours kept per item, the most similar first.
    public static let perItem = 10
    /// Below this cosine a title is not "similar" (MiniLM titles of unrelated products sit near 0.2–0.4).
    public static let minimumSimilarity: Float = 0.6
    public static let maxItems = 20_000

    private let neighbours: [Int: [Neighbour]]
    /// Each item's neighbours and the items it is a neighbour of: every pair whose likeness
    /// counts, from either side.
    private let alikeLists: [Int: [Neighbour]]

    /// From item ids and their embeddings (equal lengths); nil when there are too many.
    public init?(_ embeddings: [(item: Int, vector: [Float])]) {
        let dimensions = embeddings.first?.vector.count ?? 0
        let kept = embeddings.filter { $0.vector.count == dimensions && dimensions > 0 }
        guard kept.count <= Self.maxItems else { return nil }
        let matrix = kept.flatMap(\.vector)
        neighbours = Parallel.dictionary(count: kept.count) { row in
            var best = TopK<Neighbour>(Self.perItem) { $0.similarity > $1.similarity }
            matrix.withUnsafeBufferPointer { m in
                guard let base = m.baseAddress else { return }
                for other in kept.indices where other != row {
                    let s = KMeans.dot(base + row * dimensions, base + other * dimensions, dimensions)
                    if s >= Self.minimumSimilarity { best.offer(Neighbour(item: kept[other].item, similarity: s)) }
                }
            }
            return best.elements.isEmpty ? nil : (kept[row].item, best.elements)
        }
        var alike = neighbours
        for (item, list) in neighbours {
            for n in list where alike[n.item]?.contains(where: { $0.item == item }) != true {
                alike[n.item, default: []].append(Neighbour(item: item, similarity: n.similarity))
            }
        }
        alikeLists = alike
    }

    /// The items most like `item`, most similar first (none when it has no embedding).
    public func of(_ item: Int) -> [Neighbour] { neighbours[item] ?? [] }

    /// The items whose titles' cosine with `item`'s counts: its neighbours and those it is a
    /// neighbour of (for any other item the likeness is 0).
    public func alike(_ item: Int) -> [Neighbour] { alikeLists[item] ?? [] }

    /// Items with at least one neighbour.
    public var count: Int { neighbours.count }
}
