import Foundation

/// Shamir secret sharing of byte strings over the prime field GF(2^61 − 1): the secret is cut
/// into 7-byte limbs, each limb shared with its own random polynomial of degree `threshold − 1`
/// at the same points. Any `threshold` shares give the secret back; fewer say nothing about it.
public enum Shamir {
    static let p: UInt64 = (1 << 61) - 1

    /// One party's share: the point `x` (1, 2, … ; never 0) and a value per limb.
    public struct Share: Sendable, Codable, Equatable {
        public var x: UInt64
        public var values: [UInt64]
        public var length: Int

        /// Whether it can be a share of a `length`-byte secret at one of the points 1 … `points`.
        public func fits(length expected: Int, points: Int) -> Bool {
            length == expected && (1...UInt64(max(1, points))).contains(x) && values.count == (expected + 6) / 7 && values.allSatisfy { $0 < Shamir.p }
        }
    }

    /// Shares of `secret` at the points `xs` (distinct, non-zero), recoverable from any `threshold`.
    public static func split(_ secret: Data, threshold: Int, at xs: [UInt64], random: (Int) -> [UInt64] = randomElements) -> [Share] {
        let limbs = stride(from: 0, to: secret.count, by: 7).map { i in
            secret[secret.startIndex + i..<secret.startIndex + min(secret.count, i + 7)].reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
        }
        let polynomials = limbs.map { [$0] + random(max(0, threshold - 1)) }
        return xs.map { x in
            Share(x: x, values: polynomials.map { coefficients in coefficients.reversed().reduce(UInt64(0)) { add(mul($0, x), $1) } }, length: secret.count)
        }
    }

    /// The secret from `threshold` or more shares (Lagrange interpolation at 0 through the first
    /// `threshold`; all of them when nil); nil when the shares are too few, disagree in shape or
    /// repeat a point, or when one beyond the first `threshold` is not on their polynomial (a
    /// share altered: with more shares than the threshold, a wrong one is caught, not combined).
    public static func combine(_ shares: [Share], threshold: Int? = nil) -> Data? {
        guard let first = shares.first, shares.count >= max(1, threshold ?? 1), Set(shares.map(\.x)).count == shares.count,
            shares.allSatisfy({ $0.values.count == first.values.count && $0.length == first.length && $0.x != 0 })
        else { return nil }
        let basis = Array(shares.prefix(threshold ?? shares.count))
        var out = Data()
        for limb in 0..<first.values.count {
            for extra in shares.dropFirst(basis.count) where interpolate(basis, limb: limb, at: extra.x % p) != extra.values[limb] { return nil }
            let value = interpolate(basis, limb: limb, at: 0)
            let bytes = min(7, first.length - limb * 7)
            for k in (0..<bytes).reversed() { out.append(UInt8(truncatingIfNeeded: value >> (8 * UInt64(k)))) }
        }
        return out
    }

    /// The value at `t` of the polynomial through the shares' points for one limb.
    static func interpolate(_ shares: [Share], limb: Int, at t: UInt64) -> UInt64 {
        var value: UInt64 = 0
        for (i, si) in shares.enumerated() {
            var numerator: UInt64 = 1, denominator: UInt64 = 1
            for (j, sj) in shares.enumerated() where i != j {
                numerator = mul(numerator, sub(t, sj.x % p))
                denominator = mul(denominator, sub(si.x % p, sj.x % p))
            }
            value = add(value, mul(si.values[limb], mul(numerator, inverse(denominator))))
        }
        return value
    }

    public static func randomElements(_ n: Int) -> [UInt64] {
        var g = SystemRandomNumberGenerator()
        return (0..<n).map { _ in UInt64.random(in: 0..<p, using: &g) }
    }

    static func add(_ a: UInt64, _ b: UInt64) -> UInt64 { let s = a + b; return s >= p ? s - p : s }
    static func sub(_ a: UInt64, _ b: UInt64) -> UInt64 { a >= b ? a - b : a + p - b }
    static func mul(_ a: UInt64, _ b: UInt64) -> UInt64 {
        let (high, low) = a.multipliedFullWidth(by: b)
        // 2^64 ≡ 2^3 (mod 2^61 − 1): fold the 122-bit product.
        let folded = (low & p) + (low >> 61) + (high << 3)
        return folded % p
    }
    static func inverse(_ a: UInt64) -> UInt64 {
        var (result, base, e) = (UInt64(1), a % p, p - 2)
        while e > 0 {
            if e & 1 == 1 { result = mul(result, base) }
            base = mul(base, base)
            e >>= 1
        }
        return result
    }
}
