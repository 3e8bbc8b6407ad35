import Crypto
import Foundation

/// The kinds of message a store sends the hub (sync/PROTOCOL.md § Messages).
public enum MessageType: String, Sendable, Codable, CaseIterable {
    case enroll, hello, upload, round
}

/// What the associated data binds: who sends what, for which round, as which message.
public struct EnvelopeHeader: Sendable, Equatable {
    public var store: String
    public var type: MessageType
    public var round: UInt64
    public var seq: UInt64

    public init(store: String, type: MessageType, round: UInt64 = 0, seq: UInt64) {
        (self.store, self.type, self.round, self.seq) = (store, type, round, seq)
    }
}

/// One message on the wire (JSON; byte fields in standard base64): signed by the sender's
/// Ed25519 key, its payload sealed to the hub's X25519 key with a fresh ephemeral key
/// (X25519, HKDF-SHA256, ChaCha20-Poly1305). Store id, type, round, sequence number and the
/// sender's key are authenticated data, so a changed header fails both checks.
public struct Envelope: Sendable, Equatable, Codable {
    public static let version = 1
    static let domain = Data("aisle-sync/1".utf8)

    public var v: Int
    public var store: String
    public var type: MessageType
    public var round: UInt64
    public var seq: UInt64
    public var sender: Data
    public var ephemeral: Data
    public var nonce: Data
    public var ciphertext: Data
    public var signature: Data

    public var header: EnvelopeHeader { EnvelopeHeader(store: store, type: type, round: round, seq: seq) }

    /// Seals `plaintext` from `sender` to the hub key `recipient`. `ephemeral` and `nonce` are
    /// fresh random values unless given (the known-answer vectors fix them).
    public static func seal(
        _ plaintext: Data, header: EnvelopeHeader, from sender: SyncIdentity, to recipient: Data,
        ephemeral: Curve25519.KeyAgreement.PrivateKey = .init(), nonce: Data? = nil
    ) throws(SyncError) -> Envelope {
        let senderKey = sender.publicKeys.sign
        let ad = associatedData(header, sender: senderKey)
        let nonceBytes = nonce ?? Data(ChaChaPoly.Nonce())
        let key = try sealingKey(ephemeral: ephemeral, recipient: recipient)
        guard let n = try? ChaChaPoly.Nonce(data: nonceBytes), let box = try? ChaChaPoly.seal(plaintext, using: key, nonce: n, authenticating: ad) else {
            throw SyncError(.internal, "cannot seal (nonce of \(nonceBytes.count) bytes)")
        }
        var envelope = Envelope(
            v: version, store: header.store, type: header.type, round: header.round, seq: header.seq, sender: senderKey,
            ephemeral: ephemeral.publicKey.rawRepresentation, nonce: nonceBytes, ciphertext: box.ciphertext + box.tag, signature: Data())
        envelope.signature = sender.sign(envelope.signedBytes)
        return envelope
    }

    /// Checks the signature against `senderKey` (the key the hub has on file for this store;
    /// the envelope's own `sender` for enrollment) and opens the payload with `recipient`.
    public func open(signedBy senderKey: Data, with recipient: SyncIdentity) throws(SyncError) -> Data {
        guard v == Self.version else { throw SyncError(.unsupportedVersion, "v: \(v); this hub speaks version \(Self.version)") }
        guard sender == senderKey else {
            throw SyncError(.wrongKey, "sender: the envelope is signed by a key that is not \(store)'s enrolled key")
        }
        guard PublicKeys.isValid(signature, of: signedBytes, by: sender) else {
            throw SyncError(.badSignature, "signature: does not verify over the header and ciphertext (altered in transit, or not from \(store))")
        }
        guard ciphertext.count >= 16, let n = try? ChaChaPoly.Nonce(data: nonce),
            let ephemeralKey = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: ephemeral),
            let shared = try? recipient.agreement.sharedSecretFromKeyAgreement(with: ephemeralKey)
        else { throw SyncError(.undecryptable, "ephemeral/nonce/ciphertext: malformed") }
        let key = Self.derive(shared, ephemeral: ephemeral, recipient: recipient.publicKeys.agree)
        guard let box = try? ChaChaPoly.SealedBox(nonce: n, ciphertext: ciphertext.dropLast(16), tag: ciphertext.suffix(16)),
            let plaintext = try? ChaChaPoly.open(box, using: key, authenticating: Self.associatedData(header, sender: sender))
        else { throw SyncError(.undecryptable, "ciphertext: does not open with this hub's key (sealed to another hub key, or altered)") }
        return plaintext
    }

    /// The bytes the sender signs: domain, associated data, ephemeral key, nonce, ciphertext.
    var signedBytes: Data {
        Data("aisle-sync/1 signature".utf8) + Data([0]) + Self.associatedData(header, sender: sender) + ephemeral + nonce + ciphertext
    }

    /// "aisle-sync/1" 0x00 store 0x00 type 0x00 round (u64 big-endian) seq (u64 big-endian) sender key.
    static func associatedData(_ h: EnvelopeHeader, sender: Data) -> Data {
        var d = domain + Data([0]) + Data(h.store.utf8) + Data([0]) + Data(h.type.rawValue.utf8) + Data([0])
        withUnsafeBytes(of: h.round.bigEndian) { d.append(contentsOf: $0) }
        withUnsafeBytes(of: h.seq.bigEndian) { d.append(contentsOf: $0) }
        return d + sender
    }

    static func sealingKey(ephemeral: Curve25519.KeyAgreement.PrivateKey, recipient: Data) throws(SyncError) -> SymmetricKey {
        guard let hub = try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: recipient),
            let shared = try? ephemeral.sharedSecretFromKeyAgreement(with: hub)
        else { throw SyncError(.badRequest, "the hub's agree_key is not a usable X25519 key") }
        return derive(shared, ephemeral: ephemeral.publicKey.rawRepresentation, recipient: recipient)
    }

    /// HKDF-SHA256(shared secret, salt: ephemeral ‖ recipient, info: "aisle-sync/1 seal"), 32 bytes.
    static func derive(_ shared: SharedSecret, ephemeral: Data, recipient: Data) -> SymmetricKey {
        shared.hkdfDerivedSymmetricKey(using: SHA256.self, salt: ephemeral + recipient, sharedInfo: Data("aisle-sync/1 seal".utf8), outputByteCount: 32)
    }

    /// The JSON the envelope travels as.
    public func encoded() -> Data { (try? Self.encoder.encode(self)) ?? Data() }

    /// Reads an envelope, naming the field that is wrong; another version than ours is
    /// `unsupported_version` whatever else it holds (its fields may be another version's).
    public static func decode(_ data: Data) throws(SyncError) -> Envelope {
        struct Versioned: Decodable { var v: Int }
        if let v = try? JSONDecoder().decode(Versioned.self, from: data).v, v != version {
            throw SyncError(.unsupportedVersion, "v: \(v); this hub speaks version \(version)")
        }
        do { return try JSONDecoder().decode(Envelope.self, from: data) } catch { throw SyncError(.badRequest, "envelope: \(describe(error))") }
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()
}

/// A decoding error as "field: why".
func describe(_ error: any Error) -> String {
    guard let e = error as? DecodingError else { return "\(error)" }
    func path(_ c: DecodingError.Context) -> String {
        let p = c.codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
        return p.isEmpty ? "" : p + ": "
    }
    switch e {
    case .keyNotFound(let key, let c): return path(c) + "\(key.stringValue): missing"
    case .typeMismatch(_, let c), .valueNotFound(_, let c), .dataCorrupted(let c): return path(c) + c.debugDescription
    @unknown default: return "\(e)"
    }
}
