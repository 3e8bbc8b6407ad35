import Foundation

/// One customer's purchase summary in a calibration window, in a chosen time unit: `frequency`
/// = repeat purchase days, `recency` = first to last purchase, `age` = first purchase to the end
/// of the window (lifetimes' x, t_x and T).
public struct PurchaseSummary: Sendable, Equatable {
    public var frequency: Int
    public var recency: Double
    public var age: Double

    public init(frequency: Int, recency: Double, age: Double) {
        (self.frequency, self.recency, self.age) = (frequency, recency, age)
    }

    /// From distinct purchase days (ascending, at least one) up to the window's last day `end`,
    /// in units of `unitDays` days (7: weeks).
    public init(days: [Int], end: Double, unitDays: Double = 7) {
        let first = Double(days.first ?? 0), last = Double(days.last ?? 0)
        self.init(frequency: max(0, days.count - 1), recency: (last - first) / unitDays, age: (end - first) / unitDays)
    }
}

/// The BG/NBD model of repeat buying (Fader, Hardie & Lee 2005): while alive a customer buys at
/// a Poisson rate λ ~ Gamma(r, α) and after each purchase drops out with probability
/// p ~ Beta(a, b). Fitted by maximum likelihood.
public struct BGNBD: Sendable, Equatable {
    public var r, alpha, a, b: Double

    public init(r: Double, alpha: Double, a: Double, b: Double) {
        (self.r, self.alpha, self.a, self.b) = (r, alpha, a, b)
    }

    /// The log-likelihood of one customer (lifetimes' formulation).
    public func logLikelihood(_ c: PurchaseSummary) -> Double {
        let x = Double(c.frequency)
        let a1 = lgamma(r + x) - lgamma(r) + r * log(alpha)
        // B(a, b + x) / B(a, b) as −Σ log(1 + a / (b + i)), i < x: the four log-gammas it is
        // written with cancel to nothing for b large (1e11 and x 10: −4.9e-4 for −1e-19), and
        // the fit would climb that rounding error.
        var a2 = 0.0
        for i in 0..<c.frequency { a2 -= log1p(a / (b + Double(i))) }
        let a3 = -(r + x) * log(alpha + c.age)
        guard c.frequency > 0 else { return a1 + a2 + a3 }
        let a4 = log(a) - log(b + x - 1) - (r + x) * log(alpha + c.recency)
        let m = max(a3, a4)
        return a1 + a2 + m + log(exp(a3 - m) + exp(a4 - m))
    }

    public func logLikelihood(_ customers: [PurchaseSummary]) -> Double {
        customers.reduce(0) { $0 + logLikelihood($1) }
    }

    /// Expected purchases in the next `t` units for a customer with this history.
    public func expectedPurchases(_ c: PurchaseSummary, in t: Double) -> Double {
        let x = Double(c.frequency)
        let hyp = hypergeometric2F1(r + x, b + x, a + b + x - 1, t / (alpha + c.age + t))
        let first = (a + b + x - 1) / (a - 1) * (1 - pow((alpha + c.age) / (alpha + c.age + t), r + x) * hyp)
        let alive = c.frequency > 0 ? a / (b + x - 1) * pow((alpha + c.age) / (alpha + c.recency), r + x) : 0
        return first / (1 + alive)
    }

    /// The probability that the customer is still active.
    public func probabilityAlive(_ c: PurchaseSummary) -> Double {
        guard c.frequency > 0 else { return 1 }
        let x = Double(c.frequency)
        return 1 / (1 + a / (b + x - 1) * pow((alpha + c.age) / (alpha + c.recency), r + x))
    }

    /// Fewest customers a fit is made from (as `aislectl btyd fit` asks): one or two run off to
    /// extremes (b → 0: every repeat buyer dead a day after buying).
    public static let minCustomers = 10

    /// What stands in for a fit on fewer customers: lifetimes' published CDNOW fit (weeks), a
    /// real population's, not this store's.
    public static let prior = BGNBD(r: 0.2426, alpha: 4.4135, a: 0.7929, b: 2.4258)

    /// The fit on `customers`, or ``prior`` when there are fewer than ``minCustomers``.
    public static func fitOrPrior(_ customers: [PurchaseSummary]) -> BGNBD {
        customers.count >= minCustomers ? fit(customers).model : prior
    }

    /// The maximum-likelihood fit, over log-parameters (so all stay positive).
    public static func fit(_ customers: [PurchaseSummary]) -> (model: BGNBD, logLikelihood: Double) {
        let f = { (p: [Double]) -> Double in
            -BGNBD(r: exp(p[0]), alpha: exp(p[1]), a: exp(p[2]), b: exp(p[3])).logLikelihood(customers)
        }
        let best = NelderMead.minimize(f, from: [0, 0, 0, 0])
        let p = best.point.map(exp)
        return (BGNBD(r: p[0], alpha: p[1], a: p[2], b: p[3]), -best.value)
    }
}

/// Gauss's hypergeometric ₂F₁(a, b; c; z) for |z| < 1 by its series.
func hypergeometric2F1(_ a: Double, _ b: Double, _ c: Double, _ z: Double) -> Double {
    var term = 1.0, sum = 1.0
    for n in 0..<10_000 {
        let k = Double(n)
        term *= (a + k) * (b + k) / ((c + k) * (k + 1)) * z
        sum += term
        if abs(term) < 1e-15 * abs(sum) { break }
    }
    return sum
}
