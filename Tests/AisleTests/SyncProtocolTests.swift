import AisleHub
@testable import AisleSync
import Crypto
import Foundation
import GRDB
import Testing

/// The known-answer vectors of sync/vectors/ (written by tools/sync-vectors, an independent
/// Python implementation of sync/PROTOCOL.md), checked on the store's side (sealing) and on
/// the hub's (opening and refusing, through its real message handling over a real database).
@Suite struct SyncProtocolTests {
    struct Vector: Decodable {
        struct Header: Decodable { var store: String; var type: String; var round: UInt64; var seq: UInt64 }
        var hubKeyFile: String
        var storeKeyFile: String
        var hubFingerprint: String
        var ephemeralPrivate: String
        var nonce: String
        var header: Header
        var plaintext: String
        var associatedData: String
        var envelope: Envelope
    }

    struct Refusals: Decodable {
        struct Case: Decodable { var name: String; var envelope: Envelope; var error: String }
        var cases: [Case]
    }

    static func load<T: Decodable>(_ name: String, as: T.Type) throws -> T {
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        return try d.decode(T.self, from: Data(contentsOf: TestSupport.repository.appendingPathComponent("sync/vectors/\(name)")))
    }

    static func hex(_ s: String) -> Data {
        Data(stride(from: 0, to: s.count, by: 2).compactMap { UInt8(s.dropFirst($0).prefix(2), radix: 16) })
    }

    @Test func theStoreSealsTheVectorByteForByte() throws {
        let v = try Self.load("envelope.json", as: Vector.self)
        let store = try SyncIdentity(raw: Self.hex(v.storeKeyFile))
        let hub = try SyncIdentity(raw: Self.hex(v.hubKeyFile))
        #expect(hub.publicKeys.fingerprint == v.hubFingerprint)
        let header = EnvelopeHeader(store: v.header.store, type: try #require(MessageType(rawValue: v.header.type)), round: v.header.round, seq: v.header.seq)
        let sealed = try Envelope.seal(
            Data(v.plaintext.utf8), header: header, from: store, to: hub.publicKeys.agree,
            ephemeral: try Curve25519.KeyAgreement.PrivateKey(rawRepresentation: Self.hex(v.ephemeralPrivate)), nonce: Self.hex(v.nonce))
        #expect(sealed == v.envelope)
        #expect(Envelope.associatedData(header, sender: store.publicKeys.sign) == Self.hex(v.associatedData))
        // The plaintext is what this implementation writes for the same upload part.
        let part = try SyncJSON.decode(UploadPart.self, Data(v.plaintext.utf8), "upload")
        #expect(String(decoding: SyncJSON.encode(part), as: UTF8.self) == v.plaintext)
        #expect(try v.envelope.open(signedBy: store.publicKeys.sign, with: hub) == Data(v.plaintext.utf8))
        #expect(try Envelope.decode(v.envelope.encoded()) == v.envelope)
    }

    @Test func everyRefusalVectorIsRefusedWithItsCode() throws {
        let v = try Self.load("envelope.json", as: Vector.self)
        let (store, hub) = (try SyncIdentity(raw: Self.hex(v.storeKeyFile)), try SyncIdentity(raw: Self.hex(v.hubKeyFile)))
        let refusals = try Self.load("refusals.json", as: Refusals.self)
        #expect(refusals.cases.count >= 7)
        for c in refusals.cases {
            #expect(throws: SyncError.self, "\(c.name)") { try c.envelope.open(signedBy: store.publicKeys.sign, with: hub) }
            do { _ = try c.envelope.open(signedBy: store.publicKeys.sign, with: hub) } catch { #expect(error.code.rawValue == c.error, "\(c.name): \(error)") }
        }
    }

    @Test func contentIdManifestAndAckSignaturesMatchTheVectors() throws {
        struct Signatures: Decodable {
            struct ContentId: Decodable { var kind: String; var round: UInt64; var payload: String; var id: String }
            struct Manifest: Decodable { var bytes: Data; var signature: Data; var payload: String }
            struct Ack: Decodable { var store: String; var contentId: String; var signature: Data }
            var contentId: ContentId
            var manifest: Manifest
            var ack: Ack
        }
        let v = try Self.load("envelope.json", as: Vector.self)
        let hub = try SyncIdentity(raw: Self.hex(v.hubKeyFile))
        let s = try Self.load("signatures.json", as: Signatures.self)
        #expect(UploadPart.contentId(kind: s.contentId.kind, round: s.contentId.round, payload: Self.hex(s.contentId.payload)) == s.contentId.id)
        let signed = SignedManifest(manifest: s.manifest.bytes, signature: s.manifest.signature)
        let manifest = try signed.verified(by: hub.publicKeys.sign)
        #expect(manifest.kind == "intent" && manifest.version == 2 && manifest.epsilon == 2.5 && manifest.matches(Self.hex(s.manifest.payload)))
        #expect(hub.sign(Data("aisle-sync/1 manifest".utf8) + Data([0]) + s.manifest.bytes) == s.manifest.signature)  // Ed25519 is deterministic
        var altered = s.manifest.bytes
        altered[altered.startIndex + 10] ^= 1
        #expect(throws: SyncError.self) { try SignedManifest(manifest: altered, signature: s.manifest.signature).verified(by: hub.publicKeys.sign) }
        #expect(PublicKeys.isValid(s.ack.signature, of: UploadAck.signedBytes(store: s.ack.store, contentId: s.ack.contentId), by: hub.publicKeys.sign))
    }

    /// The hub's own handling (a real database in a temporary directory) takes the vector
    /// envelope and refuses every refusal vector, storing nothing for them.
    @Test func theHubTakesTheVectorAndRefusesTheRest() throws {
        let v = try Self.load("envelope.json", as: Vector.self)
        let dir = try TestSupport.temporaryDirectory()
        try Self.hex(v.hubKeyFile).write(to: dir.appendingPathComponent(HubDatabase.identityFileName))
        chmod(dir.appendingPathComponent(HubDatabase.identityFileName).path, 0o600)
        let database = try HubDatabase.open(path: dir.path)
        let store = try SyncIdentity(raw: Self.hex(v.storeKeyFile))
        try database.pool.write { db in
            try db.execute(
                sql: "INSERT INTO stores(id, name, sign_key, agree_key, created_at, enrolled_at) VALUES (?, 'vector', ?, ?, 0, 0)",
                arguments: [v.header.store, store.publicKeys.sign, store.publicKeys.agree])
        }
        let service = HubService(database: database)
        for c in try Self.load("refusals.json", as: Refusals.self).cases {
            do {
                _ = try service.handle(c.envelope.encoded())
                Issue.record("\(c.name): accepted")
            } catch { #expect(error.code.rawValue == c.error, "\(c.name)") }
        }
        #expect(try database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM seen") } == 0)
        let ack = try SyncJSON.decode(UploadAck.self, try service.handle(v.envelope.encoded()), "ack")
        #expect(ack.complete)
        #expect(try database.pool.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM uploads") } == 1)
    }

    /// A Python with the `cryptography` package: Debian's, for which tools/install-deps installs
    /// python3-cryptography, else the one on PATH (another Python first on PATH may lack it).
    static let referencePython = ["/usr/bin/python3", "python3"].first { (try? TestSupport.runExternal("/usr/bin/env", [$0, "-c", "import cryptography"]).status) == 0 }

    /// The Python reference writes exactly the committed vectors, and as a third-party store it
    /// enrolls, says hello, uploads (verifying the hub's signed ack) and is refused a replay.
    /// Without a Python that can run it, the test fails rather than passing unrun.
    @Test func aThirdPartyClientFromTheSpecTalksToTheRealHub() async throws {
        let python = try #require(Self.referencePython, "no python3 with the cryptography package (tools/install-deps installs python3-cryptography)")
        let script = TestSupport.repository.appendingPathComponent("tools/sync-reference").path
        let check = try TestSupport.runExternal("/usr/bin/env", [python, script, "check"])
        #expect(check.status == 0, "\(check.err)")
        let hub = try await HubFixture()
        struct Added: Decodable { var token: String }
        let token = try JSONDecoder().decode(Added.self, from: Data(try hub.cli(["stores", "add", "python", "--json"]).out.utf8)).token
        let r = try TestSupport.runExternal("/usr/bin/env", [python, script, "client", hub.url, token])
        #expect(r.status == 0, "\(r.err)")
        for line in ["enroll: 200", "hello: 200", "upload: 200 complete True ack signature verified; every answer's signature verified", "replay: 409 replayed"] {
            #expect(r.out.contains(line), "\(r.out)")
        }
        #expect(try hub.count("SELECT count(*) FROM uploads") == 1)
    }

    @Test func backoffGrowsExponentiallyWithJitterUpToItsCeiling() {
        let b = Outbox.Backoff(minimum: 5, maximum: 300)
        #expect(b.delay(afterAttempts: 1, random: 1) == 5 && b.delay(afterAttempts: 2, random: 1) == 10 && b.delay(afterAttempts: 4, random: 1) == 40)
        #expect(b.delay(afterAttempts: 40, random: 1) == 300 && b.delay(afterAttempts: 40, random: 0.5) == 150)
        let spread = Set((0..<50).map { _ in b.delay(afterAttempts: 6) })
        #expect(spread.count > 10 && spread.allSatisfy { (80...160).contains($0) })
    }
}
