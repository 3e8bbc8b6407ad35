import AisleCore
import Foundation

/// What the hub says about one global model version. Signed as its exact JSON bytes, so a
/// verifier never re-serialises it.
public struct ModelManifest: Sendable, Codable, Equatable {
    public var kind: String
    public var version: Int
    /// The federated round that produced it (0: published by hand).
    public var round: UInt64
    /// Hex SHA-256 and length of the model payload.
    public var sha256: String
    public var bytes: Int
    public var createdAt: Int64
    /// Differential privacy spent on it so far: ε for `delta`; 0 when no store data went in,
    /// absent when store data went in without noise (not differentially private).
    public var epsilon: Double?
    public var delta: Double
    public var metrics: [String: Double]
    /// Fingerprint of the hub key that signs it.
    public var hub: String

    public init(kind: String, version: Int, round: UInt64, payload: Data, createdAt: Int64, epsilon: Double?, delta: Double, metrics: [String: Double], hub: String) {
        (self.kind, self.version, self.round, self.bytes, self.createdAt) = (kind, version, round, payload.count, createdAt)
        sha256 = Digests.sha256Hex(payload)
        (self.epsilon, self.delta, self.metrics, self.hub) = (epsilon, delta, metrics, hub)
    }

    /// Whether `payload` is the model this manifest describes.
    public func matches(_ payload: Data) -> Bool {
        payload.count == bytes && Digests.sha256Hex(payload) == sha256
    }
}

/// A manifest's JSON bytes and the hub's Ed25519 signature over
/// "aisle-sync/1 manifest" 0x00 followed by those bytes.
public struct SignedManifest: Sendable, Codable, Equatable {
    public var manifest: Data
    public var signature: Data

    public init(_ manifest: ModelManifest, by hub: SyncIdentity) {
        self.manifest = SyncJSON.encode(manifest)
        signature = hub.sign(Self.signedBytes(self.manifest))
    }

    public init(manifest: Data, signature: Data) { (self.manifest, self.signature) = (manifest, signature) }

    static func signedBytes(_ manifest: Data) -> Data { Data("aisle-sync/1 manifest".utf8) + Data([0]) + manifest }

    /// The manifest, if the hub key `signKey` signed it.
    public func verified(by signKey: Data) throws(SyncError) -> ModelManifest {
        guard PublicKeys.isValid(signature, of: Self.signedBytes(manifest), by: signKey) else {
            throw SyncError(.badSignature, "model manifest: the signature is not the hub's (forged or altered)")
        }
        return try SyncJSON.decode(ModelManifest.self, manifest, "model manifest")
    }
}
