import Crypto
import Foundation

/// Secure aggregation after Bonawitz et al. (CCS 2017), semi-honest server: each store adds
/// to its vector pairwise masks that cancel in the sum (seeds from X25519 agreements with
/// every other store, expanded by a PRG) and a self-mask, and Shamir-shares its mask key and
/// self-mask seed among the others. The aggregator learns the sum of the vectors of the stores
/// that sent one, nothing else, as long as `threshold` stores answer the unmasking step; stores
/// that drop before sending their vector are left out, their pairwise masks removed from their
/// shared keys. Vectors are in Z(2^32) (fixed point; see ``FixedPoint``). Not protected against:
/// a hub that makes up stores (the roster and their keys come from it), or stores that give
/// the hub their own vectors — the sum less theirs is the others' (docs/PRIVACY.md).
public enum SecureAggregation {
    /// The most stores in one round: ``FixedPoint``'s word sums decode exactly for fewer than 256.
    public static let maxStores = 255

    /// Step 0: a store's two public keys for the round.
    public struct Advert: Sendable, Codable, Equatable {
        public var store: String
        /// X25519: sealing the shares sent to this store.
        public var shareKey: Data
        /// X25519: agreeing pairwise masks with this store.
        public var maskKey: Data
    }

    /// Step 1: one store's shares for another, sealed so only the recipient reads them.
    public struct SealedShares: Sendable, Codable, Equatable {
        public var from: String
        public var to: String
        public var ciphertext: Data
    }

    /// What the sealed shares hold: shares of the sender's mask key and self-mask seed.
    struct SharePair: Codable, Sendable {
        var mask: Shamir.Share
        var seed: Shamir.Share
    }

    /// Step 3: a survivor's shares for the unmasking: self-mask seeds of the stores whose vector
    /// is in, mask keys of the stores that dropped before sending one.
    public struct Unmasking: Sendable, Codable, Equatable {
        public var from: String
        public var seeds: [String: Shamir.Share]
        public var maskKeys: [String: Shamir.Share]
    }

    /// A refusal of a step whose inputs break the protocol's rules.
    public struct ProtocolError: Error, CustomStringConvertible, Equatable {
        public var description: String
    }

    /// Expands a 32-byte seed into `count` words: HMAC-SHA256(seed, "aisle-secagg prg" ‖ block
    /// counter), eight words per block.
    public static func prg(_ seed: Data, count: Int) -> [UInt32] {
        let key = SymmetricKey(data: seed)
        var out: [UInt32] = []
        out.reserveCapacity(count + 8)
        var block: UInt64 = 0
        while out.count < count {
            var message = Data("aisle-secagg prg".utf8)
            withUnsafeBytes(of: block.bigEndian) { message.append(contentsOf: $0) }
            let mac = Data(HMAC<SHA256>.authenticationCode(for: message, using: key))
            for i in stride(from: 0, to: 32, by: 4) { out.append(mac[i..<i + 4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }) }
            block += 1
        }
        return Array(out.prefix(count))
    }

    /// The Shamir points of a roster: 1, 2, … in store-id order.
    static func points(_ roster: [String]) -> [String: UInt64] {
        Dictionary(uniqueKeysWithValues: roster.sorted().enumerated().map { ($1, UInt64($0 + 1)) })
    }

    /// The pairwise mask seed of stores `a` and `b` from one's private and the other's public key.
    static func pairSeed(_ mine: Curve25519.KeyAgreement.PrivateKey, _ theirs: Data, round: UInt64) throws -> Data {
        let shared = try mine.sharedSecretFromKeyAgreement(with: try Curve25519.KeyAgreement.PublicKey(rawRepresentation: theirs))
        return shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: Data(), sharedInfo: Data("aisle-secagg mask \(round)".utf8), outputByteCount: 32)
            .withUnsafeBytes { Data($0) }
    }

    /// `target` += sign × PRG(seed), in Z(2^32).
    static func addMask(_ target: inout [UInt32], seed: Data, negative: Bool) {
        for (i, m) in prg(seed, count: target.count).enumerated() { target[i] = negative ? target[i] &- m : target[i] &+ m }
    }
}
