@testable import AisleFederated
import Foundation
import Testing

/// Secure aggregation, Shamir sharing, fixed point and the privacy accountant, with real
/// X25519, HKDF and ChaCha20-Poly1305 between the parties.
@Suite struct FederatedTests {
    @Test func shamirRecoversFromAnyThresholdSharesAndNotFromFewer() throws {
        let secret = Data((0..<32).map { UInt8($0 * 7 + 3) })
        let shares = Shamir.split(secret, threshold: 4, at: [1, 2, 3, 4, 5, 6, 7])
        for subset in [[0, 1, 2, 3], [3, 4, 5, 6], [0, 2, 4, 6], [0, 1, 2, 3, 4, 5, 6]] {
            #expect(Shamir.combine(subset.map { shares[$0] }) == secret)
        }
        #expect(Shamir.combine([0, 1, 2].map { shares[$0] }) != secret)
        #expect(Shamir.combine([shares[0], shares[0], shares[1], shares[2]]) == nil)
        // The field product agrees with exact arithmetic.
        let p = Shamir.p
        for (a, b) in [(p - 1, p - 1), (123_456_789_012, 987_654_321_098), (1 << 60, 3)] as [(UInt64, UInt64)] {
            let exact = (a.multipliedFullWidth(by: b))
            let wide = (UInt128(exact.high) << 64 | UInt128(exact.low)) % UInt128(p)
            #expect(UInt128(Shamir.mul(a, b)) == wide)
        }
    }

    /// Runs a round of `n` stores; `dropBeforeVector` share keys and then vanish, `dropAfterVector`
    /// send their masked vector and vanish before the unmasking.
    static func round(n: Int, length: Int, dropBeforeVector: Set<Int>, dropAfterVector: Set<Int>) throws -> (sum: [UInt32], expected: [UInt32], masked: [String: [UInt32]], plain: [String: [UInt32]]) {
        var stores = (0..<n).map { SecAggParticipant(store: String(format: "s-%02d", $0), round: 7) }
        var hub = SecAggAggregator(round: 7, length: length * FixedPoint.wordsPerValue)
        for s in stores { try hub.add(s.advert) }
        let roster = hub.roster()
        for i in stores.indices { try hub.add(shares: try stores[i].share(roster: roster, threshold: hub.threshold), from: stores[i].store) }
        var plain: [String: [UInt32]] = [:]
        for i in stores.indices where !dropBeforeVector.contains(i) {
            let x = FixedPoint().encode((0..<length).map { _ in Double.random(in: -3...3) })
            plain[stores[i].store] = x
            try hub.add(masked: try stores[i].mask(x, shares: hub.shares(for: stores[i].store)), from: stores[i].store)
        }
        for i in stores.indices where !dropBeforeVector.contains(i) && !dropAfterVector.contains(i) {
            try hub.add(try stores[i].unmask(included: hub.included))
        }
        let expected = plain.values.reduce([UInt32](repeating: 0, count: length * FixedPoint.wordsPerValue)) { t, x in zip(t, x).map { $0 &+ $1 } }
        return (try hub.sum(), expected, hub.masked, plain)
    }

    @Test func aThirdOfTheStoresDroppingAfterMaskingStillGivesTheExactSum() throws {
        // Four of twelve send their masked vector and vanish: their vectors are in the sum.
        let after = try Self.round(n: 12, length: 40, dropBeforeVector: [], dropAfterVector: [1, 5, 8, 11])
        #expect(after.sum == after.expected && after.plain.count == 12)
        // Four of twelve share keys and vanish before their vector: the sum is of the other eight.
        let before = try Self.round(n: 12, length: 40, dropBeforeVector: [0, 3, 6, 9], dropAfterVector: [])
        #expect(before.sum == before.expected && before.plain.count == 8)
        let both = try Self.round(n: 12, length: 40, dropBeforeVector: [2, 4], dropAfterVector: [7, 10])
        #expect(both.sum == both.expected)
        // What the hub holds of each store is masked: no vector equals, or comes near, the store's own.
        for (store, x) in after.plain {
            let y = try #require(after.masked[store])
            #expect(zip(x, y).filter { $0 == $1 }.count <= 1)
        }
        // Too many gone to unmask: the sum cannot be had.
        #expect(throws: SecureAggregation.ProtocolError.self) {
            _ = try Self.round(n: 12, length: 10, dropBeforeVector: [0, 1], dropAfterVector: [2, 3, 4, 5])
        }
    }

    @Test func aStoreNeverRevealsBothSecretsOfAnotherStore() throws {
        var stores = (0..<5).map { SecAggParticipant(store: "s-\($0)", round: 1) }
        var hub = SecAggAggregator(round: 1, length: 3)
        for s in stores { try hub.add(s.advert) }
        let roster = hub.roster()
        for i in stores.indices { try hub.add(shares: try stores[i].share(roster: roster, threshold: hub.threshold), from: stores[i].store) }
        for i in stores.indices { _ = try stores[i].mask([1, 2, 3], shares: hub.shares(for: stores[i].store)) }
        // A hub that names a store as included that never shared, or too few stores, is refused.
        #expect(throws: SecureAggregation.ProtocolError.self) { try stores[0].unmask(included: ["s-0", "s-1", "s-9"]) }
        #expect(throws: SecureAggregation.ProtocolError.self) { try stores[0].unmask(included: ["s-0", "s-1"]) }
        let u = try stores[0].unmask(included: ["s-0", "s-1", "s-2", "s-3"])
        #expect(Set(u.seeds.keys) == ["s-0", "s-1", "s-2", "s-3"] && Set(u.maskKeys.keys) == ["s-4"])
        // A threshold that is not a majority would let two halves unmask each other.
        var lone = SecAggParticipant(store: "s-0", round: 1)
        #expect(throws: SecureAggregation.ProtocolError.self) { try lone.share(roster: roster, threshold: 2) }
        // The round's minimum (what each store's noise share was sized for) binds the roster and
        // the unmasking, whatever threshold the hub names.
        var strict = (0..<5).map { SecAggParticipant(store: "s-\($0)", round: 2, minimum: 5) }
        #expect(throws: SecureAggregation.ProtocolError.self) { try strict[0].share(roster: Array(strict.prefix(4).map(\.advert)), threshold: 3) }
        var four = SecAggAggregator(round: 2, length: 3)
        for s in strict { try four.add(s.advert) }
        for i in strict.indices { try four.add(shares: try strict[i].share(roster: four.roster(), threshold: four.threshold), from: strict[i].store) }
        for i in strict.indices { _ = try strict[i].mask([1, 2, 3], shares: four.shares(for: strict[i].store)) }
        #expect(throws: SecureAggregation.ProtocolError.self) { try strict[0].unmask(included: ["s-0", "s-1", "s-2", "s-3"]) }
        #expect(try strict[0].unmask(included: ["s-0", "s-1", "s-2", "s-3", "s-4"]).seeds.count == 5)
    }

    /// What one dishonest store could slip into a round is refused or caught, not summed: shares
    /// that leave a store out, an altered share at the unmasking (caught while more stores answer
    /// than the threshold), and a roster past the size whose sums decode exactly.
    @Test func aDishonestStoresSharesAreRefusedOrCaught() throws {
        let secret = Data((0..<32).map { UInt8($0) })
        var shares = Shamir.split(secret, threshold: 4, at: [1, 2, 3, 4, 5, 6])
        #expect(Shamir.combine(shares, threshold: 4) == secret)
        shares[5].values[0] = Shamir.add(shares[5].values[0], 1)
        #expect(Shamir.combine(shares, threshold: 4) == nil)
        #expect(Shamir.combine(Array(shares.prefix(4)), threshold: 4) == secret)
        #expect(Shamir.combine(Array(shares.prefix(3)), threshold: 4) == nil)

        var stores = (0..<5).map { SecAggParticipant(store: "s-\($0)", round: 3) }
        var hub = SecAggAggregator(round: 3, length: 4)
        for s in stores { try hub.add(s.advert) }
        let roster = hub.roster()
        let partial = try stores[0].share(roster: roster, threshold: hub.threshold).filter { $0.to != "s-1" }
        #expect(throws: SecureAggregation.ProtocolError.self) { try hub.add(shares: partial, from: "s-0") }
        for i in stores.indices { try hub.add(shares: try stores[i].share(roster: roster, threshold: hub.threshold), from: stores[i].store) }
        for i in stores.indices { try hub.add(masked: try stores[i].mask([1, 2, 3, 4], shares: hub.shares(for: stores[i].store)), from: stores[i].store) }
        for i in stores.indices {
            var u = try stores[i].unmask(included: hub.included)
            if i == 4, var share = u.seeds["s-1"] {
                share.values[0] = Shamir.add(share.values[0], 1)
                u.seeds["s-1"] = share
            }
            try hub.add(u)
        }
        #expect { _ = try hub.sum() } throws: { "\($0)".contains("self-mask of s-1 cannot be rebuilt") }

        var full = SecAggAggregator(round: 4, length: 2)
        for n in 0..<SecureAggregation.maxStores { try full.add(SecAggParticipant(store: "s-\(n)", round: 4).advert) }
        #expect { try full.add(SecAggParticipant(store: "one-too-many", round: 4).advert) } throws: { "\($0)".contains("the round is full") }
    }

    @Test func fixedPointSumsExactly() {
        let f = FixedPoint(scale: 65_536)
        let a = [0.5, -1.25, 3.0], b = [-0.5, 2.0, -7.75]
        let sum = zip(f.encode(a), f.encode(b)).map { $0 &+ $1 }
        #expect(f.decode(sum) == [0, 0.75, -4.75])
        // Sums far past 32 bits (squares of counts over many rows) stay exact.
        let big = [3.0e9, -7.5e8, 123_456.789]
        let ten = (0..<10).map { _ in f.encode(big) }.reduce([UInt32](repeating: 0, count: 6)) { t, x in zip(t, x).map { $0 &+ $1 } }
        #expect(zip(f.decode(ten), big).allSatisfy { abs($0 - 10 * $1) < 1e-3 })
    }

    @Test func theAccountantMatchesTheRDPFormula() {
        // Values from the same formula in Python (orders as in PrivacyAccountant).
        for (z, t, eps) in [(1.0, 1, 4.7527), (1.0, 10, 19.0536), (2.0, 20, 12.3017), (5.0, 50, 7.0879)] {
            #expect(abs(PrivacyAccountant.epsilon(noiseMultiplier: z, rounds: t, delta: 1e-5) - eps) < 1e-3, "z \(z), \(t) rounds")
        }
        var a = PrivacyAccountant()
        a.spend(noiseMultiplier: 2, rounds: 10)
        let ten = a.epsilon(delta: 1e-5)
        a.spend(noiseMultiplier: 2, rounds: 10)
        #expect(a.epsilon(delta: 1e-5) > ten && abs(a.epsilon(delta: 1e-5) - 12.3017) < 1e-3)
        #expect(PrivacyAccountant().epsilon(delta: 1e-5) == 0)
    }
}
