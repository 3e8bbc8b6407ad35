import Foundation

/// Rényi differential privacy of the Gaussian mechanism, composed over rounds (Mironov 2017):
/// a round whose aggregate carries Gaussian noise of `noiseMultiplier` × the clipping norm has
/// RDP α / (2 z²) at order α; rounds add; (ε, δ) is the best conversion over a grid of orders
/// (Balle et al. 2020, as Opacus and TensorFlow Privacy use).
public struct PrivacyAccountant: Sendable, Equatable, Codable {
    static let orders: [Double] = [1.25, 1.5, 1.75, 2, 2.25, 2.5, 3, 3.5, 4, 4.5, 5, 6, 7, 8, 10, 12, 14, 16, 20, 24, 28, 32, 48, 64, 96, 128, 256, 512]

    /// RDP spent so far at each order.
    public private(set) var rdp: [Double]

    public init() { rdp = Array(repeating: 0, count: Self.orders.count) }

    /// Adds `rounds` rounds of the Gaussian mechanism with noise multiplier `z`.
    public mutating func spend(noiseMultiplier z: Double, rounds: Int = 1) {
        guard z > 0 else {
            rdp = rdp.map { _ in .infinity }
            return
        }
        for (i, alpha) in Self.orders.enumerated() { rdp[i] += Double(rounds) * alpha / (2 * z * z) }
    }

    /// Adds one federated round at noise multiplier `z` (of the clip norm C). A store's data
    /// replaced by any other moves the sum of clipped updates by up to 2C (which stores take part
    /// is public: the roster), so the round is the Gaussian mechanism at z / 2.
    public mutating func spend(roundAt z: Double) { spend(noiseMultiplier: z / 2) }

    /// ε at `delta` for what has been spent.
    public func epsilon(delta: Double) -> Double {
        guard rdp.contains(where: { $0 > 0 }) else { return 0 }
        return zip(Self.orders, rdp).map { alpha, r in
            r + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1)
        }.min().map { max(0, $0) } ?? .infinity
    }

    /// ε at `delta` after `rounds` rounds at noise multiplier `z`.
    public static func epsilon(noiseMultiplier z: Double, rounds: Int, delta: Double) -> Double {
        var a = PrivacyAccountant()
        a.spend(noiseMultiplier: z, rounds: rounds)
        return a.epsilon(delta: delta)
    }
}
