@testable import AisleFederated
@testable import AisleSync
import AisleStore
import Foundation
import GRDB
import Testing

/// Secure aggregation through a real hub process: nine enrolled stores run a round over the
/// sync channel (signed, sealed `round` messages); a third of them vanish after sending their
/// masked vectors; the hub publishes the exact sum of all nine, and what it stored holds no
/// store's vector.
@Suite struct SyncRoundTests {
    struct Member {
        var credentials: StoreCredentials
        var participant: SecAggParticipant
        var vector: [UInt32]
    }

    static func send(_ m: Member, round: UInt64, _ message: RoundMessage, to hub: HubFixture) async throws -> RoundStatus {
        let envelope = try m.credentials.envelope(message, type: .round, round: round)
        let reply = try await HubConnection(url: hub.url).call(.POST, "/v1/messages", body: envelope.encoded())
        return try SyncJSON.decode(RoundStatus.self, reply, "round status")
    }

    @Test func nineStoresSumSecurelyThroughTheHubWithAThirdGoneAfterMasking() async throws {
        let hub = try await HubFixture()
        var members: [Member] = []
        for i in 0..<9 {
            let credentials = try StoreCredentials(try hub.enrolledStore(name: "store \(i)"))
            // Distinctive values, to look for in everything the hub wrote.
            let vector = FixedPoint().encode((0..<12).map { Double(1000 + 37 * i + $0) + 0.123 })
            members.append(Member(credentials: credentials, participant: SecAggParticipant(store: credentials.enrollment.store, round: 1), vector: vector))
        }
        let opened = try hub.cli(["rounds", "open", "sum", "--length", "12", "--min-stores", "6", "--phase-seconds", "600"])
        #expect(opened.status == 0, "\(opened.err)")
        // Step 0: every store advertises its round keys; the ninth closes the roster.
        var status: RoundStatus?
        for m in members { status = try await Self.send(m, round: 1, .init(step: .advert, advert: m.participant.advert), to: hub) }
        let roster = try #require(status?.roster)
        #expect(status?.phase == "share" && roster.count == 9 && status?.threshold == 5)
        // A step sent again as it was (its answer lost) is answered; with other content, refused.
        #expect(try await Self.send(members[0], round: 1, .init(step: .advert, advert: members[0].participant.advert), to: hub).phase == "share")
        let changed = SecAggParticipant(store: members[0].credentials.enrollment.store, round: 1).advert
        #expect(try await hub.post(try members[0].credentials.envelope(RoundMessage(step: .advert, advert: changed), type: .round, round: 1).encoded()).code == "bad_request")
        // A step out of turn is refused.
        let early = try await hub.post(try members[0].credentials.envelope(RoundMessage(step: .masked, masked: members[0].vector), type: .round, round: 1).encoded())
        #expect(early.code == "wrong_round")
        // Step 1: shares.
        for i in members.indices {
            let shares = try members[i].participant.share(roster: roster, threshold: 5)
            status = try await Self.send(members[i], round: 1, .init(step: .shares, shares: shares), to: hub)
        }
        #expect(status?.phase == "mask")
        // Step 2: masked vectors, each from the shares the hub relays to its store.
        for i in members.indices {
            let mine = try await Self.send(members[i], round: 1, .init(step: .status), to: hub)
            let y = try members[i].participant.mask(members[i].vector, shares: mine.shares)
            status = try await Self.send(members[i], round: 1, .init(step: .masked, masked: y), to: hub)
        }
        #expect(status?.phase == "unmask" && status?.included.count == 9)
        // Step 3: three stores (a third) are gone; six answer; the operator ends the step.
        var unmaskings: [RoundMessage] = []
        for m in members.prefix(6) {
            unmaskings.append(.init(step: .unmask, unmasking: try m.participant.unmask(included: status?.included ?? [])))
            _ = try await Self.send(m, round: 1, unmaskings[unmaskings.count - 1], to: hub)
        }
        let advanced = try hub.cli(["rounds", "advance", "1"])
        #expect(advanced.status == 0 && advanced.out.contains("round 1: done"), "\(advanced.out)\(advanced.err)")
        struct Rounds: Decodable { var phase: String; var sum: [Double]?; var included: [String] }
        var round: Rounds?
        for _ in 0..<300 {
            round = try JSONDecoder().decode([Rounds].self, from: Data(try hub.cli(["rounds", "list", "--json"]).out.utf8)).first
            if round?.phase == "done" { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let expected = members.reduce([UInt32](repeating: 0, count: 24)) { t, m in zip(t, m.vector).map { $0 &+ $1 } }
        #expect(round?.phase == "done" && round?.included.count == 9)
        // The last step sent again once the round is done (its answer lost): answered, with the round's end.
        #expect(try await Self.send(members[5], round: 1, unmaskings[5], to: hub).phase == "done")
        #expect(round?.sum == FixedPoint().decode(expected))
        let plainSum: [Double] = (0..<12).map { (j: Int) -> Double in
            var total = 0.0
            for i in 0..<9 { total += Double(1000 + 37 * i + j) + 0.123 }
            return total
        }
        #expect(zip(round?.sum ?? [], plainSum).allSatisfy { abs($0 - $1) < 1e-3 })
        // Nothing the hub stored holds a store's vector, as words or as the JSON it travelled in.
        let cells = try hub.read { db -> [Data] in
            var cells: [Data] = []
            for table in try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") {
                for row in try Row.fetchAll(db, sql: "SELECT * FROM \(table)") {
                    for value in row.databaseValues {
                        if let d = Data.fromDatabaseValue(value) { cells.append(d) } else if let s = String.fromDatabaseValue(value) { cells.append(Data(s.utf8)) }
                    }
                }
            }
            return cells
        }
        for m in members {
            let asJSON = SyncJSON.encode(m.vector)
            let firstWords = String(decoding: SyncJSON.encode(Array(m.vector.prefix(3))), as: UTF8.self).dropFirst().dropLast()
            #expect(!cells.contains { $0 == asJSON || String(decoding: $0, as: UTF8.self).contains(firstWords) }, "\(m.credentials.enrollment.store)'s vector is in the hub's database")
        }
    }
}

/// Round settings a store will not follow: the hub opens no such round, and a store offered one
/// anyway (here written into the hub's database, as an intruder at HQ could) declines it.
@Suite struct RoundSettingsTests {
    @Test func unsoundSettingsAreNamed() throws {
        #expect(RoundSettings().problem(minStores: 3) == nil)
        #expect(RoundSettings().problem(minStores: 2)?.contains("min_stores 2") == true)
        var s = RoundSettings()
        s.localSteps = 50
        #expect(s.problem(minStores: 3)?.contains("local steps 50") == true)
        s = RoundSettings()
        s.noiseMultiplier = 1
        #expect(s.problem(minStores: 3)?.contains("clip norm") == true)
        s = RoundSettings()
        s.delta = .nan
        #expect(s.problem(minStores: 3)?.contains("delta") == true)
        // Stored settings: an absent key takes its default, a value that does not decode is an error.
        #expect(try SyncJSON.decode(RoundSettings.self, Data("{}".utf8), "settings") == RoundSettings())
        #expect(try SyncJSON.decode(RoundSettings.self, Data(#"{"noise_multiplier":1.5}"#.utf8), "settings").noiseMultiplier == 1.5)
        #expect(throws: SyncError.self) { try SyncJSON.decode(RoundSettings.self, Data(#"{"noise_multiplier":"lots"}"#.utf8), "settings") }
    }

    @Test func aStoreDeclinesARoundWithUnsoundSettings() async throws {
        let hub = try await HubFixture()
        #expect(try hub.cli(["rounds", "open", "sum", "--length", "4", "--min-stores", "3", "--local-steps", "50"]).err.contains("local steps 50"))
        let store = try hub.enrolledStore()
        #expect(try hub.cli(["rounds", "open", "intent-moments", "--min-stores", "3"]).status == 0)
        try hub.write { db in
            try db.execute(sql: "UPDATE rounds SET settings = json_set(settings, '$.local_steps', 50)")
        }
        let synced = try TestSupport.run("aislectl", ["sync", "now", "--store", store.path, "--privacy-budget", "0"])
        #expect(synced.status == 0 && synced.out.contains("declined — unsound settings: local steps 50"), "\(synced.out)\(synced.err)")
        let privacy = try TestSupport.run("aislectl", ["privacy", "--store", store.path])
        #expect(privacy.out.contains("declined"), "\(privacy.out)")
        // Settings that do not decode: the round is not offered, and the hub's clock fails it.
        #expect(try hub.cli(["rounds", "close", "1"]).status == 0)
        #expect(try hub.cli(["rounds", "open", "sum", "--length", "4", "--min-stores", "3"]).status == 0)
        try hub.write { db in try db.execute(sql: #"UPDATE rounds SET settings = '{"noise_multiplier":"lots"}' WHERE id = 2"#) }
        var failure: String?
        for _ in 0..<150 where failure == nil {
            try await Task.sleep(for: .milliseconds(200))
            failure = try hub.read { try String.fetchOne($0, sql: "SELECT failure FROM rounds WHERE id = 2 AND phase = 'failed'") }
        }
        #expect(failure == "its settings do not decode")
        // A moments round sums exact moments: the hub opens none with noise, and a store offered
        // one anyway declines it rather than have its ledger count noise it never added.
        let noised = ["--min-stores", "3", "--noise-multiplier", "1", "--clip-norm", "0.5"]
        #expect(try hub.cli(["rounds", "open", "intent-moments"] + noised).err.contains("takes none"))
        #expect(try hub.cli(["rounds", "open", "intent-moments", "--min-stores", "3"]).status == 0)
        try hub.write { db in
            try db.execute(sql: "UPDATE rounds SET settings = json_set(settings, '$.noise_multiplier', 4, '$.clip_norm', 0.5) WHERE id = 3")
        }
        let offered = try TestSupport.run("aislectl", ["sync", "now", "--store", store.path])
        #expect(offered.out.contains("not joined — a moments round adds no noise"), "\(offered.out)\(offered.err)")
        let spent = try await Store.open(at: store, readOnly: true).database.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM fl_rounds WHERE vector IS NOT NULL") }
        #expect(spent == 0)
    }
}

/// What the hub no longer needs goes: a finished round's steps (masked vectors, sealed shares)
/// a day after it ended, parts of an upload never completed after 30 days; the rest stays. A
/// round that cannot be moved on stops neither that nor the other rounds' timeouts.
@Suite struct HubRetentionTests {
    @Test func theHubLetsGoOfWhatItNoLongerNeeds() async throws {
        let hub = try await HubFixture()
        let now = Int64(Date().timeIntervalSince1970)
        try hub.write { db in
            // Round 904's step has timed out but it cannot be written (as on a fault of its own);
            // 905's has too, and fails with too few stores.
            try db.execute(sql: "CREATE TRIGGER stuck BEFORE UPDATE ON rounds WHEN OLD.id = 904 BEGIN SELECT RAISE(ABORT, 'round 904 cannot be written'); END")
            for (id, phase, started) in [
                (901, "done", now - 2 * 86_400), (902, "done", now - 60), (903, "advertise", now), (904, "advertise", now - 700), (905, "advertise", now - 700),
            ] {
                try db.execute(
                    sql: """
                        INSERT INTO rounds(id, kind, global_version, opened_at, deadline, min_stores, state, phase, phase_started, phase_seconds, length, settings)
                        VALUES (?, 'sum', 0, ?, ?, 3, 'open', ?, ?, 600, 4, '{}')
                        """, arguments: [id, started, now + 86_400, phase, started])
                try db.execute(sql: "INSERT INTO round_steps(round, store, step, payload, at) VALUES (?, 's-1', 'advert', x'00', ?)", arguments: [id, started])
            }
            for (content, at) in [("old", now - 31 * 86_400), ("new", now - 60)] {
                try db.execute(sql: "INSERT INTO upload_parts(store_id, content_id, part, data, received_at) VALUES ('s-1', ?, 0, x'00', ?)", arguments: [content, at])
            }
        }
        // The hub's clock prunes within a second or two; a loaded machine may take longer.
        var pruned: (rounds: [Int64], parts: [String]) = ([], [])
        for _ in 0..<150 {
            try await Task.sleep(for: .milliseconds(200))
            pruned = try hub.read { (try Int64.fetchAll($0, sql: "SELECT round FROM round_steps ORDER BY round"), try String.fetchAll($0, sql: "SELECT content_id FROM upload_parts")) }
            if pruned.rounds == [902, 903, 904, 905] && pruned.parts == ["new"] { break }
        }
        #expect(pruned.rounds == [902, 903, 904, 905])
        #expect(pruned.parts == ["new"])
        var phases: [String] = []
        for _ in 0..<150 {
            phases = try hub.read { try String.fetchAll($0, sql: "SELECT phase FROM rounds WHERE id IN (904, 905) ORDER BY id") }
            if phases == ["advertise", "failed"] { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(phases == ["advertise", "failed"])
    }
}

/// The hub signs each answer for the store and sequence number it answers: a store refuses an
/// answer not signed by the key it pinned, and a signature does not carry over to an altered
/// answer or to another message.
@Suite struct HubAnswerTests {
    @Test func theHubsAnswersAreSignedForTheMessageTheyAnswer() async throws {
        let hub = try await HubFixture()
        let credentials = try StoreCredentials(try hub.enrolledStore())
        let keys = credentials.enrollment.hubKeys
        let connection = try HubConnection(url: hub.url)
        _ = try await connection.send(try credentials.hello(), hub: keys)
        let hello = try credentials.hello()
        let result = try await connection.exchange(.POST, "/v1/messages", body: hello.encoded())
        let signature = try #require(result.header(ReplySignature.header).flatMap { Data(base64Encoded: $0) })
        let body = Data(result.body)
        #expect(keys.verifies(signature, of: ReplySignature.signedBytes(store: hello.store, seq: hello.seq, body: body)))
        #expect(!keys.verifies(signature, of: ReplySignature.signedBytes(store: hello.store, seq: hello.seq + 1, body: body)))
        var altered = body
        altered[altered.startIndex] ^= 1
        #expect(!keys.verifies(signature, of: ReplySignature.signedBytes(store: hello.store, seq: hello.seq, body: altered)))
        // Pinned to another key (as if this hub were an impostor): its answers are refused.
        let other = SyncIdentity().publicKeys
        await #expect(throws: SyncError.self) { try await connection.send(try credentials.hello(), hub: other) }
        // A refusal of what the store sent is signed, and the store acts on its code ...
        await #expect { _ = try await connection.send(hello, hub: keys) } throws: { ($0 as? SyncError)?.code == .replayed }
        // ... but no one else can have one signed for the store's next sequence numbers: an enroll
        // or a hello naming the store, from another key, is refused without a signature.
        let stranger = SyncIdentity()
        for type in [MessageType.enroll, .hello] {
            let forged = try Envelope.seal(
                Data("{}".utf8), header: EnvelopeHeader(store: hello.store, type: type, round: 0, seq: hello.seq + 5), from: stranger, to: keys.agree)
            let refused = try await connection.exchange(.POST, "/v1/messages", body: forged.encoded(), refusals: .returned)
            #expect(refused.status >= 400 && refused.header(ReplySignature.header) == nil, "\(type): \(refused.status)")
        }
    }
}
