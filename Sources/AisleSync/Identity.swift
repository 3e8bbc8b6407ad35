import AisleCore
import Crypto
import Foundation

/// The public half of a sync identity: an Ed25519 key that signs and an X25519 key that
/// envelopes are sealed to.
public struct PublicKeys: Sendable, Equatable, Codable {
    public var sign: Data
    public var agree: Data

    public init(sign: Data, agree: Data) throws(SyncError) {
        guard sign.count == 32, (try? Curve25519.Signing.PublicKey(rawRepresentation: sign)) != nil else {
            throw SyncError(.badRequest, "sign_key: expected a 32-byte Ed25519 public key")
        }
        guard agree.count == 32, (try? Curve25519.KeyAgreement.PublicKey(rawRepresentation: agree)) != nil else {
            throw SyncError(.badRequest, "agree_key: expected a 32-byte X25519 public key")
        }
        (self.sign, self.agree) = (sign, agree)
    }

    /// Keys known to be well-formed (made by swift-crypto here).
    init(trusted sign: Data, _ agree: Data) { (self.sign, self.agree) = (sign, agree) }

    /// 16 hex digits of SHA-256(sign ‖ agree): what an enrollment token pins and people compare.
    public var fingerprint: String { Hex.string(SHA256.hash(data: sign + agree).prefix(8)) }

    /// Whether `signature` is this identity's Ed25519 signature of `message`.
    public func verifies(_ signature: Data, of message: Data) -> Bool { Self.isValid(signature, of: message, by: sign) }

    /// Whether `signature` is the Ed25519 signature of `message` by the public key `key`.
    public static func isValid(_ signature: Data, of message: Data, by key: Data) -> Bool {
        (try? Curve25519.Signing.PublicKey(rawRepresentation: key))?.isValidSignature(signature, for: message) ?? false
    }
}

/// A store's or the hub's long-term keys, kept in one file of 64 bytes (the Ed25519 seed, then
/// the X25519 private key) that only its owner may read.
public struct SyncIdentity: Sendable {
    public let signing: Curve25519.Signing.PrivateKey
    public let agreement: Curve25519.KeyAgreement.PrivateKey

    public init(signing: Curve25519.Signing.PrivateKey = .init(), agreement: Curve25519.KeyAgreement.PrivateKey = .init()) {
        (self.signing, self.agreement) = (signing, agreement)
    }

    /// The 64 bytes of a key file.
    public init(raw: Data) throws(SyncError) {
        guard raw.count == 64,
            let s = try? Curve25519.Signing.PrivateKey(rawRepresentation: raw.prefix(32)),
            let a = try? Curve25519.KeyAgreement.PrivateKey(rawRepresentation: raw.suffix(32))
        else { throw SyncError(.badRequest, "a key file holds 64 bytes (Ed25519 seed, X25519 key); got \(raw.count)") }
        self.init(signing: s, agreement: a)
    }

    public var raw: Data { signing.rawRepresentation + agreement.rawRepresentation }

    public var publicKeys: PublicKeys {
        PublicKeys(trusted: signing.publicKey.rawRepresentation, agreement.publicKey.rawRepresentation)
    }

    /// Signs `message` (Ed25519).
    public func sign(_ message: Data) -> Data {
        (try? signing.signature(for: message)) ?? Data()
    }

    /// Reads the key file at `path`, refusing one that others could read.
    public static func load(path: String) throws(SyncError) -> SyncIdentity {
        let read: Data?
        do { read = try SecretFile.read(path) } catch { throw SyncError(.badRequest, "the key file \(error)") }
        guard let data = read else { throw SyncError(.notEnrolled, "no key file at \(path)") }
        return try SyncIdentity(raw: data)
    }

    /// The key file at `path`, made (mode 0600) when there is none. Two processes making it at
    /// once both end with the one that landed first.
    public static func loadOrCreate(path: String) throws -> SyncIdentity {
        if FileManager.default.fileExists(atPath: path) { return try load(path: path) }
        let identity = SyncIdentity()
        let temporary = path + ".new-\(getpid())"
        unlink(temporary)  // a leftover of a crash of a process with this id
        unlink(path + ".new")  // one of a version that used a single name
        do { try SecretFile.create(temporary, contents: identity.raw) } catch { throw SyncError(.internal, "cannot write the key file \(temporary): \(error)") }
        // Linked, not renamed: a key another process put there meanwhile is kept, and read.
        let linked = link(temporary, path) == 0 ? 0 : errno
        unlink(temporary)
        if linked == EEXIST { return try load(path: path) }
        guard linked == 0 else { throw SyncError(.internal, "cannot link \(temporary) to \(path) (errno \(linked))") }
        // Else a power cut could undo the rename, and the next start make another key.
        do { try SecretFile.syncDirectory(of: path) } catch { throw SyncError(.internal, "cannot sync the key file's directory: \(error)") }
        return identity
    }
}
