import Foundation

/// The Gamma-Gamma model of spend per transaction (Fader, Hardie & Lee 2005): a customer's
/// transaction values are Gamma(p, ν) around their own mean, with ν ~ Gamma(q, γ) across
/// customers. Fitted by maximum likelihood on customers with repeat purchases; with BG/NBD it
/// gives customer lifetime value.
public struct GammaGamma: Sendable, Equatable {
    public var p, q, v: Double

    public init(p: Double, q: Double, v: Double) { (self.p, self.q, self.v) = (p, q, v) }

    /// One customer's log-likelihood: `frequency` repeat transactions of mean value `meanValue`.
    public func logLikelihood(frequency x: Int, meanValue m: Double) -> Double {
        let px = p * Double(x)
        return lgamma(px + q) - lgamma(px) - lgamma(q) + q * log(v) + (px - 1) * log(m) + px * log(Double(x)) - (px + q) * log(Double(x) * m + v)
    }

    /// The expected mean transaction value of a customer with this history (the population mean
    /// for one without repeat purchases).
    public func expectedValue(frequency x: Int, meanValue m: Double) -> Double {
        let px = p * Double(x)
        let population = p * v / (q - 1)
        return (q - 1) / (px + q - 1) * population + px / (px + q - 1) * m
    }

    /// The maximum-likelihood fit over (frequency ≥ 1, mean value > 0) pairs, with q > 1: the
    /// population's mean spend, p v / (q − 1), exists only there.
    public static func fit(_ customers: [(frequency: Int, meanValue: Double)]) -> (model: GammaGamma, logLikelihood: Double) {
        let usable = customers.filter { $0.frequency > 0 && $0.meanValue > 0 }
        let model = { (x: [Double]) in GammaGamma(p: exp(x[0]), q: 1 + exp(x[1]), v: exp(x[2])) }
        let f = { (x: [Double]) -> Double in
            let m = model(x)
            return -usable.reduce(0) { $0 + m.logLikelihood(frequency: $1.frequency, meanValue: $1.meanValue) }
        }
        let best = NelderMead.minimize(f, from: [0, 0, 0])
        return (model(best.point), -best.value)
    }
}
