import AisleStore
@testable import AisleSync
import Foundation
import Testing

/// Every message the hub must refuse, each against a real hub process: refused with its code
/// and a message that says why, and the hub's state unchanged.
@Suite struct SyncRefusalTests {
    @Test func enrollmentTokensAreOneTimeAndPinTheHubsKey() async throws {
        let hub = try await HubFixture()
        let store = try hub.enrolledStore(name: "Leeds")
        let listed = try hub.cli(["stores", "list", "--json"])
        #expect(listed.status == 0 && listed.out.contains("\"state\" : \"enrolled\"") && listed.out.contains("Leeds"))
        // A token is used once; one whose fingerprint is not this hub's is refused before anything is sent.
        struct Added: Decodable { var token: String }
        let token = try JSONDecoder().decode(Added.self, from: Data(try hub.cli(["stores", "add", "York", "--json"]).out.utf8)).token
        let other = hub.dir.appendingPathComponent("other")
        _ = try TestSupport.run("aislectl", ["init", "--store", other.path])
        let pinned = try TestSupport.run("aislectl", ["sync", "enroll", "--hub", hub.url, "--token", String(token.dropLast(16)) + "0000000000000000", "--store", other.path])
        #expect(pinned.status == 1 && pinned.err.contains("wrong_key") && pinned.err.contains("right hub"), "\(pinned.err)")
        #expect(try TestSupport.run("aislectl", ["sync", "enroll", "--hub", hub.url, "--token", token, "--store", other.path]).status == 0)
        // Its answer lost on the way, the same store asks again with the same key (the token on
        // standard input): answered again, not refused as used.
        let retried = try TestSupport.run("aislectl", ["sync", "enroll", "--hub", hub.url, "--token", "-", "--store", other.path], input: token + "\n")
        #expect(retried.status == 0 && retried.out.contains("enrolled as"), "\(retried.err)")
        let again = try TestSupport.run("aislectl", ["sync", "enroll", "--hub", hub.url, "--token", token, "--store", store.path])
        #expect(again.status == 1 && again.err.contains("bad_token: token: already used"), "\(again.err)")
        let status = try TestSupport.run("aislectl", ["sync", "status", "--store", store.path])
        #expect(status.out.contains("enrolled as s-") && status.out.contains("Leeds"))
    }

    @Test func aTamperedEnvelopeIsRefusedAndChangesNothing() async throws {
        let hub = try await HubFixture()
        let creds = try StoreCredentials(try hub.enrolledStore())
        let before = try hub.state()
        var flipped = try creds.report("{\"day\":1}")
        flipped.ciphertext[flipped.ciphertext.startIndex] ^= 1
        var moved = try creds.report("{\"day\":2}")
        moved.round = 3  // the header is authenticated: any change breaks the signature
        var resigned = try creds.report("{\"day\":3}")
        resigned.store = "s-someoneelse"
        for (envelope, code) in [(flipped, "bad_signature"), (moved, "bad_signature"), (resigned, "unknown_store")] {
            let r = try await hub.post(envelope.encoded())
            #expect(r.code == code && r.status >= 400)
        }
        // Another version is named as such, before its fields (which may be another version's) are read.
        var future = try JSONSerialization.jsonObject(with: try creds.report("{\"day\":6}").encoded()) as? [String: Any] ?? [:]
        (future["v"], future["ephemeral"]) = (2, nil)
        #expect(try await hub.post(try JSONSerialization.data(withJSONObject: future)).code == "unsupported_version")
        var truncated = try creds.report("{\"day\":4}").encoded()
        truncated.removeLast(40)
        #expect(try await hub.post(truncated).code == "bad_request")
        #expect(try hub.state() == before)
        // Priors that do not decode are refused when they arrive, not stored to stop the hub's
        // publishing of everyone's later.
        let badPriors = try await hub.post(try creds.report("{\"x\":1}", kind: StorePriors.kind).encoded())
        #expect(badPriors.code == "bad_request", "\(badPriors)")
        #expect(try hub.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM uploads WHERE kind = 'priors'") } == 0)
    }

    @Test func aReplayedEnvelopeIsRefusedAndChangesNothing() async throws {
        let hub = try await HubFixture()
        let creds = try StoreCredentials(try hub.enrolledStore())
        let upload = try creds.report("{\"day\":5}")
        #expect(try await hub.post(upload.encoded()).status == 200)
        let after = try hub.state()
        let replay = try await hub.post(upload.encoded())
        #expect(replay.status == 409 && replay.code == "replayed")
        let hello = try creds.hello()
        #expect(try await hub.post(hello.encoded()).status == 200)
        let seen = try hub.state()
        #expect(seen != after)  // a hello is recorded …
        #expect(try await hub.post(hello.encoded()).code == "replayed")
        #expect(try hub.state() == seen)  // … its replay is not
        #expect(try hub.count("SELECT count(*) FROM uploads") == 1)
    }

    /// A store restored from a backup taken before its last passes syncs on: its sequence
    /// numbers follow the clock, not only its (restored) counter, so none is a replay.
    @Test func aStoreRestoredFromAnOldBackupIsNotTakenForAReplay() async throws {
        let hub = try await HubFixture()
        let dir = try hub.enrolledStore()
        #expect(try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path]).status == 0)
        let backup = hub.dir.appendingPathComponent("backup")
        try FileManager.default.copyItem(at: dir, to: backup)
        for _ in 0..<2 { #expect(try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path]).status == 0) }
        try FileManager.default.removeItem(at: dir)
        try FileManager.default.copyItem(at: backup, to: dir)
        let restored = try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path])
        #expect(restored.status == 0 && !restored.out.contains("replayed") && !restored.err.contains("replayed"), "\(restored.out)\(restored.err)")
        let seq = try await Store.open(at: dir, readOnly: true).database.read { try SyncState.integer($0, "sync.seq") } ?? 0
        #expect(seq > Int64(Date().timeIntervalSince1970 - 3600) * 1_000_000)
    }

    @Test func aWrongRoundEnvelopeIsRefusedAndChangesNothing() async throws {
        let hub = try await HubFixture()
        let creds = try StoreCredentials(try hub.enrolledStore())
        #expect(try hub.cli(["rounds", "open", "sum", "--length", "4", "--hours", "1"]).status == 0)
        let before = try hub.state()
        // A report belongs to no round; an envelope whose header and upload disagree; a closed round.
        let r1 = try await hub.post(try creds.report("{\"day\":6}", round: 1).encoded())
        #expect(r1.code == "wrong_round" && r1.status == 409)
        #expect(try await hub.post(try creds.report("{\"day\":7}", round: 0, headerRound: 1).encoded()).code == "wrong_round")
        #expect(try await hub.post(try creds.envelope(Hello(agentVersion: "t", models: [:], outbox: 0), type: .hello, round: 1).encoded()).code == "wrong_round")
        #expect(try hub.cli(["rounds", "close", "1"]).status == 0)
        #expect(try hub.state() == before)
        #expect(try hub.cli(["rounds", "close", "9"]).status == 4)
    }

    @Test func aRevokedStoreIsRefusedAndChangesNothing() async throws {
        let hub = try await HubFixture()
        let dir = try hub.enrolledStore()
        let creds = try StoreCredentials(dir)
        #expect(try hub.cli(["stores", "revoke", creds.enrollment.store]).status == 0)
        let before = try hub.state()
        let r = try await hub.post(try creds.report("{\"day\":8}").encoded())
        #expect(r.status == 403 && r.code == "revoked")
        _ = try TestSupport.run("aislectl", ["sync", "report", "--day", "2011-12-01", "--store", dir.path])
        let now = try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path])
        #expect(now.status == 1 && now.err.contains("revoked"), "\(now.err)")
        #expect(try hub.state() == before)
        let status = try TestSupport.run("aislectl", ["sync", "status", "--store", dir.path, "--json"])
        #expect(status.out.contains("\"pending\" : 1"))  // kept for a hub that takes it back
        #expect(try hub.cli(["stores", "revoke", "s-nosuchstore"]).status == 4)
    }

    @Test func aWrongKeyEnvelopeIsRefusedAndChangesNothing() async throws {
        let hub = try await HubFixture()
        let creds = try StoreCredentials(try hub.enrolledStore())
        let before = try hub.state()
        let impostor = SyncIdentity()
        let signed = try await hub.post(try creds.envelope(Hello(agentVersion: "t", models: [:], outbox: 0), type: .hello, from: impostor).encoded())
        #expect(signed.status == 401 && signed.code == "wrong_key")
        let misdirected = try await hub.post(try creds.report("{\"day\":9}", to: SyncIdentity().publicKeys.agree).encoded())
        #expect(misdirected.code == "undecryptable")
        #expect(try hub.state() == before)
    }
}
