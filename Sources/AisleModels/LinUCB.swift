import Foundation

/// A contextual bandit with a linear payoff shared across arms (LinUCB, Li et al. 2010), mixed
/// with uniform exploration so that every choice has a known propensity: with probability
/// 1 − ε the arm of highest upper confidence bound θᵀx + α √(xᵀA⁻¹x), else one of the arms at
/// random. Offline evaluation (``OffPolicy``) reads those propensities.
public struct LinUCB: Sendable, Codable, Equatable {
    public let dimensions: Int
    public var alpha: Double
    /// A⁻¹ (kept by Sherman–Morrison updates) and b, for θ = A⁻¹ b.
    var inverse: [Double]
    var b: [Double]
    public private(set) var updates = 0

    public init(dimensions: Int, alpha: Double = 0.5, ridge: Double = 1) {
        self.dimensions = dimensions
        self.alpha = alpha
        inverse = (0..<dimensions * dimensions).map { $0 % (dimensions + 1) == 0 ? 1 / ridge : 0 }
        b = [Double](repeating: 0, count: dimensions)
    }

    func product(_ x: [Double]) -> [Double] {
        (0..<dimensions).map { i in (0..<dimensions).reduce(0) { $0 + inverse[i * dimensions + $1] * x[$1] } }
    }

    /// The upper confidence bound of one arm's context.
    public func bound(_ x: [Double]) -> Double {
        let ax = product(x), theta = product(b)
        let mean = zip(theta, x).reduce(0) { $0 + $1.0 * $1.1 }
        let width = zip(x, ax).reduce(0) { $0 + $1.0 * $1.1 }
        return mean + alpha * max(0, width).squareRoot()
    }

    /// Chooses among the arms' contexts: the index and the probability it had of being chosen.
    public func choose(_ arms: [[Double]], epsilon: Double, draw: Double, pick: Int) -> (arm: Int, propensity: Double) {
        precondition(!arms.isEmpty)
        let bounds = arms.map(bound)
        let best = bounds.indices.max { bounds[$0] < bounds[$1] || (bounds[$0] == bounds[$1] && $0 > $1) } ?? 0
        let arm = draw < epsilon ? pick % arms.count : best
        let uniform = epsilon / Double(arms.count)
        return (arm, (arm == best ? 1 - epsilon : 0) + uniform)
    }

    /// Learns from one reward of an arm's context.
    public mutating func update(_ x: [Double], reward: Double) {
        let ax = product(x)
        let denominator = 1 + zip(x, ax).reduce(0) { $0 + $1.0 * $1.1 }
        for i in 0..<dimensions { for j in 0..<dimensions { inverse[i * dimensions + j] -= ax[i] * ax[j] / denominator } }
        for i in 0..<dimensions { b[i] += reward * x[i] }
        updates += 1
    }
}

/// Off-policy estimates of a target policy's mean reward from logs of another (stochastic)
/// policy: inverse propensity scoring, its self-normalised form, and the doubly robust estimator
/// with a reward model; 95 % intervals by bootstrap over the logged decisions.
public enum OffPolicy {
    /// One logged decision: the target policy's probability of the logged action, the logging
    /// propensity, the reward, and the reward model's predictions for the logged action and
    /// under the target policy.
    public struct Record: Sendable {
        public var target: Double
        public var propensity: Double
        public var reward: Double
        public var modelLogged: Double
        public var modelTarget: Double
        public init(target: Double, propensity: Double, reward: Double, modelLogged: Double, modelTarget: Double) {
            (self.target, self.propensity, self.reward, self.modelLogged, self.modelTarget) = (target, propensity, reward, modelLogged, modelTarget)
        }
    }

    public struct Estimate: Sendable, Encodable {
        public var value: Double
        public var low: Double
        public var high: Double
    }

    public static func ips(_ r: [Record]) -> Double { r.reduce(0) { $0 + $1.target / $1.propensity * $1.reward } / Double(max(1, r.count)) }

    public static func snips(_ r: [Record]) -> Double {
        let w = r.reduce(0) { $0 + $1.target / $1.propensity }
        return w > 0 ? r.reduce(0) { $0 + $1.target / $1.propensity * $1.reward } / w : 0
    }

    public static func doublyRobust(_ r: [Record]) -> Double {
        r.reduce(0) { $0 + $1.modelTarget + $1.target / $1.propensity * ($1.reward - $1.modelLogged) } / Double(max(1, r.count))
    }

    /// `estimator` on the records with a 95 % percentile bootstrap interval (`resamples`, seeded).
    public static func estimate(_ r: [Record], resamples: Int = 500, seed: UInt64 = 11, _ estimator: ([Record]) -> Double) -> Estimate {
        let (low, high) = Metrics.bootstrap(r, resamples: resamples, seed: seed, estimator)
        return Estimate(value: estimator(r), low: low, high: high)
    }
}
