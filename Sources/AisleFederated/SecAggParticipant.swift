import Crypto
import Foundation

/// A store's side of one secure-aggregation round (``SecureAggregation``): fresh keys for the
/// round, its shares for the others, its masked vector, its part of the unmasking.
public struct SecAggParticipant: Sendable, Codable {
    public let store: String
    public let round: UInt64
    let shareKey: Curve25519.KeyAgreement.PrivateKey
    let maskKey: Curve25519.KeyAgreement.PrivateKey
    let seed: Data
    var roster: [String: SecureAggregation.Advert] = [:]
    var threshold = 0
    /// Shares held for each store that shared (itself included); their ids are the round's U2.
    var held: [String: SecureAggregation.SharePair] = [:]

    /// The fewest stores it shares its keys with and unmasks for: the round's minimum, which its
    /// share of the noise was sized for (a hub naming fewer is refused).
    public let minimum: Int

    public init(store: String, round: UInt64, minimum: Int = 3) {
        (self.store, self.round, self.minimum) = (store, round, minimum)
        (shareKey, maskKey) = (.init(), .init())
        seed = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
    }

    enum CodingKeys: String, CodingKey { case store, round, minimum, shareKey, maskKey, seed, roster, threshold, held }

    /// Kept in the store's database between sync passes (the round's own keys, deleted with it).
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        (store, round, seed) = (try c.decode(String.self, forKey: .store), try c.decode(UInt64.self, forKey: .round), try c.decode(Data.self, forKey: .seed))
        shareKey = try .init(rawRepresentation: try c.decode(Data.self, forKey: .shareKey))
        maskKey = try .init(rawRepresentation: try c.decode(Data.self, forKey: .maskKey))
        roster = try c.decode([String: SecureAggregation.Advert].self, forKey: .roster)
        threshold = try c.decode(Int.self, forKey: .threshold)
        held = try c.decode([String: SecureAggregation.SharePair].self, forKey: .held)
        minimum = try c.decodeIfPresent(Int.self, forKey: .minimum) ?? 3
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(store, forKey: .store)
        try c.encode(round, forKey: .round)
        try c.encode(minimum, forKey: .minimum)
        try c.encode(seed, forKey: .seed)
        try c.encode(shareKey.rawRepresentation, forKey: .shareKey)
        try c.encode(maskKey.rawRepresentation, forKey: .maskKey)
        try c.encode(roster, forKey: .roster)
        try c.encode(threshold, forKey: .threshold)
        try c.encode(held, forKey: .held)
    }

    public var advert: SecureAggregation.Advert {
        .init(store: store, shareKey: shareKey.publicKey.rawRepresentation, maskKey: maskKey.publicKey.rawRepresentation)
    }

    /// Step 1: Shamir shares of the mask key and the self-mask seed for every store of the
    /// roster, each sealed to its recipient's share key.
    public mutating func share(roster adverts: [SecureAggregation.Advert], threshold: Int) throws -> [SecureAggregation.SealedShares] {
        let ids = adverts.map(\.store)
        guard Set(ids).count == ids.count, ids.contains(store) else { throw SecureAggregation.ProtocolError(description: "the roster repeats a store or leaves this one out") }
        guard ids.count >= minimum else { throw SecureAggregation.ProtocolError(description: "a roster of \(ids.count) stores; this round needs at least \(minimum)") }
        guard threshold > ids.count / 2, threshold <= ids.count else {
            throw SecureAggregation.ProtocolError(description: "threshold \(threshold) of \(ids.count): must be a majority, so the unmasking cannot be split")
        }
        (roster, self.threshold) = (Dictionary(uniqueKeysWithValues: adverts.map { ($0.store, $0) }), threshold)
        let points = SecureAggregation.points(ids)
        let order = ids.sorted()
        let xs = order.map { points[$0] ?? 0 }
        let maskShares = Shamir.split(maskKey.rawRepresentation, threshold: threshold, at: xs)
        let seedShares = Shamir.split(seed, threshold: threshold, at: xs)
        var out: [SecureAggregation.SealedShares] = []
        for (i, to) in order.enumerated() {
            let pair = SecureAggregation.SharePair(mask: maskShares[i], seed: seedShares[i])
            if to == store { held[store] = pair; continue }
            guard let advert = roster[to] else { continue }
            let box = try ChaChaPoly.seal(try JSONEncoder().encode(pair), using: try sealKey(advert.shareKey), authenticating: Self.label(store, to))
            out.append(.init(from: store, to: to, ciphertext: box.combined))
        }
        return out
    }

    /// Step 2: opens the shares the other stores sent (their senders are the round's U2) and
    /// returns `vector` + self-mask + pairwise masks with every store of U2.
    public mutating func mask(_ vector: [UInt32], shares: [SecureAggregation.SealedShares]) throws -> [UInt32] {
        for s in shares where s.to == store {
            guard let advert = roster[s.from] else { throw SecureAggregation.ProtocolError(description: "shares from \(s.from), not on the roster") }
            let opened = try ChaChaPoly.open(try ChaChaPoly.SealedBox(combined: s.ciphertext), using: try sealKey(advert.shareKey), authenticating: Self.label(s.from, store))
            let pair = try JSONDecoder().decode(SecureAggregation.SharePair.self, from: opened)
            guard pair.mask.fits(length: 32, points: roster.count), pair.seed.fits(length: 32, points: roster.count) else {
                throw SecureAggregation.ProtocolError(description: "shares from \(s.from) are not shares of 32-byte secrets of this roster")
            }
            held[s.from] = pair
        }
        guard held.count >= threshold else { throw SecureAggregation.ProtocolError(description: "only \(held.count) stores shared keys; the round needs \(threshold)") }
        var y = vector
        SecureAggregation.addMask(&y, seed: seed, negative: false)
        for other in held.keys where other != store {
            guard let advert = roster[other] else { continue }
            SecureAggregation.addMask(&y, seed: try SecureAggregation.pairSeed(maskKey, advert.maskKey, round: round), negative: store > other)
        }
        return y
    }

    /// Step 3: for the stores whose vectors are in (`included`), shares of their self-mask
    /// seeds; for the stores that shared keys but sent no vector, shares of their mask keys.
    /// Never both for one store: that would unmask its vector.
    public func unmask(included: [String]) throws -> SecureAggregation.Unmasking {
        let inSet = Set(included)
        guard inSet.contains(store), inSet.isSubset(of: held.keys) else {
            throw SecureAggregation.ProtocolError(description: "the stores named as included are not all among those that shared keys")
        }
        guard inSet.count >= max(threshold, minimum) else {
            throw SecureAggregation.ProtocolError(description: "only \(inSet.count) vectors; fewer than the threshold \(threshold) or the round's minimum \(minimum)")
        }
        var seeds: [String: Shamir.Share] = [:], maskKeys: [String: Shamir.Share] = [:]
        for (other, pair) in held {
            if inSet.contains(other) { seeds[other] = pair.seed } else { maskKeys[other] = pair.mask }
        }
        return .init(from: store, seeds: seeds, maskKeys: maskKeys)
    }

    func sealKey(_ theirs: Data) throws -> SymmetricKey {
        let shared = try shareKey.sharedSecretFromKeyAgreement(with: try Curve25519.KeyAgreement.PublicKey(rawRepresentation: theirs))
        return shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: Data(), sharedInfo: Data("aisle-secagg shares \(round)".utf8), outputByteCount: 32)
    }

    static func label(_ from: String, _ to: String) -> Data { Data("\(from)\u{0}\(to)".utf8) }
}
