import AisleCore
import AisleFederated
import Foundation

/// The JSON coders of message payloads: snake_case keys, sorted, bytes in standard base64.
public enum SyncJSON {
    public static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()
    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return d
    }()

    public static func encode(_ value: some Encodable) -> Data { (try? encoder.encode(value)) ?? Data() }

    /// Decodes `T`, naming the field that is wrong (`what` names the message).
    public static func decode<T: Decodable>(_ type: T.Type, _ data: Data, _ what: String) throws(SyncError) -> T {
        do { return try decoder.decode(T.self, from: data) } catch { throw SyncError(.badRequest, "\(what): \(describe(error))") }
    }
}

/// `GET /v1/hub`: the hub's public keys.
public struct HubInfo: Sendable, Codable, Equatable {
    public var `protocol`: Int
    public var signKey: Data
    public var agreeKey: Data
    public var fingerprint: String

    public init(_ keys: PublicKeys) {
        (self.protocol, signKey, agreeKey, fingerprint) = (Envelope.version, keys.sign, keys.agree, keys.fingerprint)
    }
}

/// `enroll`: a store registers its keys with a one-time token.
public struct EnrollRequest: Sendable, Codable, Equatable {
    public var token: String
    public var signKey: Data
    public var agreeKey: Data
    public var agentVersion: String
    public init(token: String, keys: PublicKeys, agentVersion: String) {
        (self.token, signKey, agreeKey, self.agentVersion) = (token, keys.sign, keys.agree, agentVersion)
    }
}

public struct EnrollReply: Sendable, Codable, Equatable {
    public var store: String
    public var name: String
    /// The signing key the hub registered: the store's own, or the reply is an old one replayed.
    public var signKey: Data
    public init(store: String, name: String, signKey: Data) { (self.store, self.name, self.signKey) = (store, name, signKey) }
}

/// `hello`: the store's state; the hub answers with open rounds and the current models.
public struct Hello: Sendable, Codable, Equatable {
    public var agentVersion: String
    /// Active registry version of each model kind.
    public var models: [String: Int]
    public var outbox: Int
    public init(agentVersion: String, models: [String: Int], outbox: Int) {
        (self.agentVersion, self.models, self.outbox) = (agentVersion, models, outbox)
    }
}

public struct HelloReply: Sendable, Codable, Equatable {
    public var time: Int64
    public var rounds: [RoundOffer]
    public var models: [SignedManifest]
    public init(time: Int64, rounds: [RoundOffer], models: [SignedManifest]) { (self.time, self.rounds, self.models) = (time, rounds, models) }
}

/// A training round a store may join (federated learning): its secure-aggregation step now
/// (`advertise`, `share`, `mask`, `unmask`) and the length of the vectors it sums.
public struct RoundOffer: Sendable, Codable, Equatable {
    public var round: UInt64
    public var kind: String
    public var globalVersion: Int
    public var deadline: Int64
    public var minStores: Int
    public var phase: String
    public var length: Int
    public var settings: RoundSettings
    public init(round: UInt64, kind: String, globalVersion: Int, deadline: Int64, minStores: Int, phase: String, length: Int, settings: RoundSettings) {
        (self.round, self.kind, self.globalVersion, self.deadline, self.minStores) = (round, kind, globalVersion, deadline, minStores)
        (self.phase, self.length, self.settings) = (phase, length, settings)
    }
}

/// How stores compute their vectors in a training round, fixed by the hub when it opens it.
public struct RoundSettings: Sendable, Codable, Equatable {
    /// Fixed-point scale of the vectors' values (two words each; ``FixedPoint``).
    public var scale: Double = 65_536
    /// L2 bound of a store's update (differential privacy; 0: not clipped).
    public var clipNorm: Double = 0
    /// Gaussian noise, in units of `clipNorm`, that the stores' shares add up to (0: none, and
    /// the round is not differentially private).
    public var noiseMultiplier: Double = 0
    public var delta: Double = 1e-5
    /// Local training: Newton steps from the global model, their size, the L2 penalty.
    public var localSteps: Int = 1
    public var learningRate: Double = 1
    public var l2: Double = 1e-2
    /// The purchase-intent windows, and how many training moments a store takes its rows at.
    public var lookbackMinutes: Int = 70
    public var horizonMinutes: Int = 30
    public var cutoffs: Int = 4
    public var cutoffSpacingMinutes: Int = 10
    /// The hub's step from the mean update: `fedavg` or `fedadam`, and its rate.
    public var server: String = "fedavg"
    public var serverRate: Double = 1
    public init() {}

    enum CodingKeys: String, CodingKey {
        case scale, clipNorm, noiseMultiplier, delta, localSteps, learningRate, l2, lookbackMinutes, horizonMinutes, cutoffs, cutoffSpacingMinutes, server, serverRate
    }

    /// A key that is absent takes its default (rounds stored before a setting existed); one
    /// that is present must decode.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T { try c.decodeIfPresent(T.self, forKey: key) ?? fallback }
        let d = RoundSettings()
        (scale, clipNorm, noiseMultiplier, delta) = (try value(.scale, d.scale), try value(.clipNorm, d.clipNorm), try value(.noiseMultiplier, d.noiseMultiplier), try value(.delta, d.delta))
        (localSteps, learningRate, l2) = (try value(.localSteps, d.localSteps), try value(.learningRate, d.learningRate), try value(.l2, d.l2))
        (lookbackMinutes, horizonMinutes) = (try value(.lookbackMinutes, d.lookbackMinutes), try value(.horizonMinutes, d.horizonMinutes))
        (cutoffs, cutoffSpacingMinutes) = (try value(.cutoffs, d.cutoffs), try value(.cutoffSpacingMinutes, d.cutoffSpacingMinutes))
        (server, serverRate) = (try value(.server, d.server), try value(.serverRate, d.serverRate))
    }

    /// What makes these settings, with `minStores`, unsound to follow (nil when sound): the hub
    /// opens no such round, and a store declines one offered (a hub's bug or a forged offer).
    public func problem(minStores: Int) -> String? {
        let year = 366 * 1440
        let checks: [(Bool, String)] = [
            (minStores >= 3, "min_stores \(minStores): at least 3, or one store's vector could be read off the sum"),
            (scale >= 1 && scale <= 16_777_216, "scale \(scale): 1 to 2^24"),
            (noiseMultiplier >= 0 && noiseMultiplier <= 100, "noise multiplier \(noiseMultiplier): 0 to 100"),
            (noiseMultiplier == 0 || (clipNorm > 0 && clipNorm <= 100), "clip norm \(clipNorm): above 0 and at most 100 with noise"),
            (delta > 0 && delta <= 1e-3, "delta \(delta): above 0 and at most 10⁻³"),
            ((1...10).contains(localSteps), "local steps \(localSteps): 1 to 10"),
            (learningRate > 0 && learningRate <= 10 && l2 >= 0 && l2 <= 100, "learning rate \(learningRate) (above 0, at most 10) or L2 \(l2) (0 to 100)"),
            ((1...year).contains(lookbackMinutes) && (1...year).contains(horizonMinutes) && (1...year).contains(cutoffSpacingMinutes), "windows: 1 minute to a year"),
            ((1...24).contains(cutoffs), "cutoffs \(cutoffs): 1 to 24"),
            (["fedavg", "fedadam"].contains(server) && serverRate > 0 && serverRate <= 10, "server step \(server) at \(serverRate): fedavg or fedadam, rate above 0 and at most 10"),
        ]
        return checks.first { !$0.0 }?.1
    }
}

/// `round`: one step of a store in a secure-aggregation round (sync/PROTOCOL.md § 4.4), or
/// `status` to read where the round is.
public struct RoundMessage: Sendable, Codable, Equatable {
    public enum Step: String, Sendable, Codable { case advert, shares, masked, unmask, status }
    public var step: Step
    public var advert: SecureAggregation.Advert?
    public var shares: [SecureAggregation.SealedShares]?
    public var masked: [UInt32]?
    public var unmasking: SecureAggregation.Unmasking?
    public init(step: Step, advert: SecureAggregation.Advert? = nil, shares: [SecureAggregation.SealedShares]? = nil, masked: [UInt32]? = nil, unmasking: SecureAggregation.Unmasking? = nil) {
        (self.step, self.advert, self.shares, self.masked, self.unmasking) = (step, advert, shares, masked, unmasking)
    }
}

/// The hub's answer to a `round` message: where the round is and what this store needs from
/// it for its next step (the roster from `share` on, the shares sealed to it from `mask` on,
/// the stores whose vectors are in from `unmask` on).
public struct RoundStatus: Sendable, Codable, Equatable {
    public var round: UInt64
    public var phase: String
    public var threshold: Int
    public var length: Int
    public var roster: [SecureAggregation.Advert]
    public var shares: [SecureAggregation.SealedShares]
    public var included: [String]
    public init(round: UInt64, phase: String, threshold: Int, length: Int, roster: [SecureAggregation.Advert], shares: [SecureAggregation.SealedShares], included: [String]) {
        (self.round, self.phase, self.threshold, self.length) = (round, phase, threshold, length)
        (self.roster, self.shares, self.included) = (roster, shares, included)
    }
}

/// `upload`: one part of a content-addressed upload.
public struct UploadPart: Sendable, Codable, Equatable {
    /// Largest part, in bytes.
    public static let maxPartBytes = 192 << 10
    /// Largest upload, in bytes.
    public static let maxBytes = 64 << 20

    public var contentId: String
    public var kind: String
    public var round: UInt64
    public var part: Int
    public var parts: Int
    public var size: Int
    public var data: Data

    public init(contentId: String, kind: String, round: UInt64, part: Int, parts: Int, size: Int, data: Data) {
        (self.contentId, self.kind, self.round, self.part, self.parts, self.size, self.data) = (contentId, kind, round, part, parts, size, data)
    }

    /// The content id: hex SHA-256 of "aisle-sync/1 content" 0x00 kind 0x00 round (u64 big-endian) payload.
    public static func contentId(kind: String, round: UInt64, payload: Data) -> String {
        var d = Data("aisle-sync/1 content".utf8) + Data([0]) + Data(kind.utf8) + Data([0])
        withUnsafeBytes(of: round.bigEndian) { d.append(contentsOf: $0) }
        return Digests.sha256Hex(d + payload)
    }

    /// Number of parts a payload of `size` bytes travels in.
    public static func partCount(_ size: Int) -> Int { max(1, (size + maxPartBytes - 1) / maxPartBytes) }

    /// Checks the fields that do not need the hub's state.
    public func validate() throws(SyncError) {
        guard contentId.range(of: "^[0-9a-f]{64}$", options: .regularExpression) != nil else { throw SyncError(.badRequest, "content_id: expected 64 hex digits") }
        guard (0...UploadPart.maxBytes).contains(size) else { throw SyncError(.tooLarge, "size: \(size) bytes; at most \(UploadPart.maxBytes)") }
        guard parts == UploadPart.partCount(size) else { throw SyncError(.badRequest, "parts: \(parts); \(size) bytes travel in \(UploadPart.partCount(size))") }
        guard (0..<parts).contains(part) else { throw SyncError(.badRequest, "part: \(part) not in 0..<\(parts)") }
        let expected = part < parts - 1 ? UploadPart.maxPartBytes : size - UploadPart.maxPartBytes * (parts - 1)
        guard data.count == expected else { throw SyncError(.badRequest, "data: part \(part) has \(data.count) bytes; expected \(expected)") }
    }
}

/// The hub's answer to an upload part: the parts it holds, and once all have arrived its
/// signature over "aisle-sync/1 ack" 0x00 store 0x00 content id.
public struct UploadAck: Sendable, Codable, Equatable {
    public var contentId: String
    public var received: [Int]
    public var complete: Bool
    public var signature: Data?
    public init(contentId: String, received: [Int], complete: Bool, signature: Data?) {
        (self.contentId, self.received, self.complete, self.signature) = (contentId, received, complete, signature)
    }

    public static func signedBytes(store: String, contentId: String) -> Data {
        Data("aisle-sync/1 ack".utf8) + Data([0]) + Data(store.utf8) + Data([0]) + Data(contentId.utf8)
    }
}

/// The hub's signature over its answer to one message (the `Aisle-Signature` header, base64):
/// Ed25519 over "aisle-sync/1 reply" 0x00 store 0x00 seq (decimal) 0x00 body, so an answer
/// cannot be altered, nor moved to another message, by anyone without the hub's key.
public enum ReplySignature {
    public static let header = "Aisle-Signature"

    public static func signedBytes(store: String, seq: UInt64, body: Data) -> Data {
        var out = Data("aisle-sync/1 reply".utf8)
        for field in [Data(store.utf8), Data(String(seq).utf8), body] {
            out.append(0)
            out.append(field)
        }
        return out
    }
}

/// An error answer: `{"error": {"code": …, "message": …}}`.
public struct ErrorReply: Sendable, Codable, Equatable {
    public var error: SyncError
    public init(_ error: SyncError) { self.error = error }
}
