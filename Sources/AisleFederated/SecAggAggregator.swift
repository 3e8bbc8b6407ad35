import Crypto
import Foundation

/// The hub's side of one secure-aggregation round (``SecureAggregation``): it relays adverts
/// and sealed shares, collects masked vectors and unmasking shares, and computes the sum. It
/// holds masked vectors only; no step gives it one store's vector.
public struct SecAggAggregator: Sendable {
    public let round: UInt64
    public let length: Int
    public private(set) var adverts: [String: SecureAggregation.Advert] = [:]
    public private(set) var threshold = 0
    var shares: [String: [SecureAggregation.SealedShares]] = [:]
    var sharers: Set<String> = []
    public private(set) var masked: [String: [UInt32]] = [:]
    var unmaskings: [String: SecureAggregation.Unmasking] = [:]

    public init(round: UInt64, length: Int) { (self.round, self.length) = (round, length) }

    /// Step 0, from one store: its public keys. Refused past ``SecureAggregation/maxStores``.
    public mutating func add(_ advert: SecureAggregation.Advert) throws {
        guard adverts[advert.store] != nil || adverts.count < SecureAggregation.maxStores else {
            throw SecureAggregation.ProtocolError(description: "the round is full: \(SecureAggregation.maxStores) stores, the most whose sums decode exactly")
        }
        adverts[advert.store] = advert
    }

    /// Closes step 0: the roster every store shares with, and the threshold (a majority).
    public mutating func roster() -> [SecureAggregation.Advert] {
        threshold = adverts.count / 2 + 1
        return adverts.values.sorted { $0.store < $1.store }
    }

    /// Step 1, from one store: its sealed shares, passed on to their recipients.
    public mutating func add(shares list: [SecureAggregation.SealedShares], from store: String) throws {
        guard adverts[store] != nil, list.allSatisfy({ $0.from == store && adverts[$0.to] != nil }) else {
            throw SecureAggregation.ProtocolError(description: "shares from \(store) name stores off the roster")
        }
        // One for every other store: a store left out could not help rebuild its masks.
        guard list.count == adverts.count - 1, Set(list.map(\.to)) == Set(adverts.keys).subtracting([store]) else {
            throw SecureAggregation.ProtocolError(description: "shares from \(store) are not one for each of the \(adverts.count - 1) other stores")
        }
        sharers.insert(store)
        for s in list { shares[s.to, default: []].append(s) }
    }

    /// What store `store` receives for step 2: the shares sealed to it by the stores that shared.
    public func shares(for store: String) -> [SecureAggregation.SealedShares] { (shares[store] ?? []).filter { sharers.contains($0.from) } }

    /// Step 2, from one store that shared: its masked vector.
    public mutating func add(masked vector: [UInt32], from store: String) throws {
        guard sharers.contains(store) else { throw SecureAggregation.ProtocolError(description: "\(store) sent a vector without having shared keys") }
        guard vector.count == length else { throw SecureAggregation.ProtocolError(description: "\(store)'s vector has \(vector.count) values; the round has \(length)") }
        masked[store] = vector
    }

    /// The stores whose vectors are in the sum (sent to every survivor for step 3).
    public var included: [String] { masked.keys.sorted() }

    /// Step 3, from one included store.
    public mutating func add(_ unmasking: SecureAggregation.Unmasking) throws {
        guard masked[unmasking.from] != nil else { throw SecureAggregation.ProtocolError(description: "unmasking from \(unmasking.from), whose vector is not in") }
        guard Set(unmasking.seeds.keys).isDisjoint(with: unmasking.maskKeys.keys) else {
            throw SecureAggregation.ProtocolError(description: "\(unmasking.from) sent both a seed and a mask key share for one store")
        }
        guard (Array(unmasking.seeds.values) + Array(unmasking.maskKeys.values)).allSatisfy({ $0.fits(length: 32, points: adverts.count) }) else {
            throw SecureAggregation.ProtocolError(description: "\(unmasking.from) sent a share that is not a share of a 32-byte secret of this roster")
        }
        unmaskings[unmasking.from] = unmasking
    }

    /// The sum of the included vectors, once `threshold` stores have answered step 3.
    public func sum() throws -> [UInt32] {
        guard unmaskings.count >= threshold, masked.count >= threshold else {
            throw SecureAggregation.ProtocolError(description: "\(unmaskings.count) of \(masked.count) stores unmasked; the round needs \(threshold)")
        }
        var total = [UInt32](repeating: 0, count: length)
        for vector in masked.values { for i in 0..<length { total[i] = total[i] &+ vector[i] } }
        for store in masked.keys {
            let seedShares = unmaskings.values.compactMap { $0.seeds[store] }
            guard seedShares.count >= threshold, let seed = Shamir.combine(seedShares, threshold: threshold) else {
                throw SecureAggregation.ProtocolError(description: "the self-mask of \(store) cannot be rebuilt (too few shares, or they disagree)")
            }
            SecureAggregation.addMask(&total, seed: seed, negative: true)
        }
        for dropped in sharers.subtracting(masked.keys) {
            let keyShares = unmaskings.values.compactMap { $0.maskKeys[dropped] }
            guard keyShares.count >= threshold, let raw = Shamir.combine(keyShares, threshold: threshold),
                let key = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw)
            else { throw SecureAggregation.ProtocolError(description: "the mask key of \(dropped) cannot be rebuilt (too few shares, or they disagree)") }
            for store in masked.keys {
                guard let advert = adverts[store] else { continue }
                // `store` added +PRG if store < dropped, −PRG otherwise; take the same off.
                SecureAggregation.addMask(&total, seed: try SecureAggregation.pairSeed(key, advert.maskKey, round: round), negative: store < dropped)
            }
        }
        return total
    }
}
