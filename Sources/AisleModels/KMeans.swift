import Foundation

/// Spherical k-means: clusters unit vectors (sentence embeddings) by cosine similarity, with
/// k-means++ seeding from a fixed seed (the same data gives the same clusters), and the
/// silhouette to choose k from the data.
public struct KMeans: Sendable, Codable, Equatable {
    /// Unit-length centroids, k × d.
    public var centroids: [[Float]]

    /// The centroid nearest (by cosine) to `x`, and the similarity.
    public func assign(_ x: [Float]) -> (cluster: Int, similarity: Float) {
        var best = (cluster: 0, similarity: -Float.infinity)
        for (c, centroid) in centroids.enumerated() {
            let s = Self.dot(centroid, x)
            if s > best.similarity { best = (c, s) }
        }
        return best
    }

    /// Fits `k` clusters to unit vectors (Lloyd iterations until no point moves, at most
    /// `iterations`).
    public static func fit(_ points: [[Float]], k: Int, iterations: Int = 50, seed: UInt64 = 1) -> (model: KMeans, labels: [Int]) {
        precondition(k >= 1 && k <= points.count, "k must be between 1 and the number of points")
        var rng = SplitMix(state: seed)
        // k-means++: each next seed drawn with probability ∝ its distance to the nearest seed.
        var centroids = [points[Int(rng.next() % UInt64(points.count))]]
        var nearest = points.map { 1 - dot($0, centroids[0]) }
        while centroids.count < k {
            let total = nearest.reduce(0, +)
            var target = Float(Double(rng.next() >> 11) / Double(1 << 53)) * total
            var pick = points.count - 1
            for (i, d) in nearest.enumerated() {
                target -= d
                if target <= 0 { pick = i; break }
            }
            centroids.append(points[pick])
            for i in points.indices { nearest[i] = min(nearest[i], 1 - dot(points[i], points[pick])) }
        }
        var model = KMeans(centroids: centroids)
        var labels = points.map { model.assign($0).cluster }
        for _ in 0..<iterations {
            var sums = [[Float]](repeating: [Float](repeating: 0, count: points[0].count), count: k)
            var counts = [Int](repeating: 0, count: k)
            for (p, c) in zip(points, labels) {
                counts[c] += 1
                for j in p.indices { sums[c][j] += p[j] }
            }
            for c in 0..<k where counts[c] > 0 { model.centroids[c] = normalized(sums[c]) }
            // An emptied cluster takes the point farthest from its own centroid.
            for c in 0..<k where counts[c] == 0 {
                let far = points.indices.min { dot(points[$0], model.centroids[labels[$0]]) < dot(points[$1], model.centroids[labels[$1]]) } ?? 0
                model.centroids[c] = points[far]
                labels[far] = c
            }
            let next = points.map { model.assign($0).cluster }
            if next == labels { break }
            labels = next
        }
        return (model, labels)
    }

    /// Mean silhouette (cosine distance) of a clustering over the points' pairwise similarities:
    /// for each point, (b − a) / max(a, b) with a its mean distance to its own cluster and b to
    /// the nearest other. In [−1, 1]; higher is better separated.
    public static func silhouette(similarities s: [[Float]], labels: [Int], k: Int) -> Double {
        var total = 0.0
        let sizes = (0..<k).map { c in labels.filter { $0 == c }.count }
        for i in labels.indices {
            var sum = [Double](repeating: 0, count: k)
            for j in labels.indices where j != i { sum[labels[j]] += Double(1 - s[i][j]) }
            let own = labels[i]
            guard sizes[own] > 1 else { continue }  // a singleton scores 0
            let a = sum[own] / Double(sizes[own] - 1)
            let b = (0..<k).filter { $0 != own && sizes[$0] > 0 }.map { sum[$0] / Double(sizes[$0]) }.min() ?? a
            total += max(a, b) > 0 ? (b - a) / max(a, b) : 0
        }
        return total / Double(max(1, labels.count))
    }

    /// The dot product (cosine of unit vectors).
    public static func dot(_ a: [Float], _ b: [Float]) -> Float {
        var s: Float = 0
        for i in a.indices { s += a[i] * b[i] }
        return s
    }

    /// The dot product of `n` floats at `a` and `b`, eight at a time (the search's hot loop;
    /// sums in another order than ``dot(_:_:)``, whose exact results training relies on).
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var sum = SIMD8<Float>()
        var i = 0
        while i + 8 <= n {
            sum += UnsafeRawPointer(a + i).loadUnaligned(as: SIMD8<Float>.self) * UnsafeRawPointer(b + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var total = sum.sum()
        while i < n { total += a[i] * b[i]; i += 1 }
        return total
    }

    static func normalized(_ v: [Float]) -> [Float] {
        let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return n > 0 ? v.map { $0 / n } : v
    }
}

/// SplitMix64: a small, fast, seedable generator for reproducible sampling.
public struct SplitMix: Sendable {
    public var state: UInt64
    public init(state: UInt64) { self.state = state }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
