import AisleCore
import AisleIngest
@testable import AisleStore
import AisleText
import Foundation
import GRDB
import Testing

/// `aislectl customer forget`: everything the store holds about one customer goes — the bytes
/// too, not only the rows — and everyone else's data stays.
@Suite struct ErasureTests {
    @Test func aForgottenCustomerLeavesNoBytesBehind() throws {
        let dir = try TestSupport.temporaryDirectory()
        let t0 = 1_700_000_000
        let notes = ["alice-7731": "QZXJ unforgettable teapot", "bob-4410": "WVKY sturdy mug"]
        var events: [String] = []
        for (who, note) in notes.sorted(by: { $0.key < $1.key }) {
            events += [
                #"{"ts":\#(t0),"type":"purchase","customer":"\#(who)","item":"TEAPOT","receipt":"\#(who)-r1","qty":1,"price":20}"#,
                #"{"ts":\#(t0),"type":"purchase","customer":"\#(who)","item":"MUG","receipt":"\#(who)-r1","qty":2,"price":5}"#,
                #"{"ts":\#(t0 + 60),"type":"review","customer":"\#(who)","item":"TEAPOT","rating":5,"text":"\#(note)"}"#,
                #"{"ts":\#(t0 + 120),"type":"search","customer":"\#(who)","session":"kiosk-\#(who)","text":"\#(note) again"}"#,
            ]
        }
        // Bob looks at a mug in alice's kiosk session: his event stays, detached from it.
        events.append(#"{"ts":\#(t0 + 180),"type":"view","customer":"bob-4410","session":"kiosk-alice-7731","item":"MUG"}"#)
        // A receipt rung up before her card was scanned, and a kiosk session she logged into in
        // the second it began: both hers, with the anonymous events in them.
        events += [
            #"{"ts":\#(t0 + 200),"type":"purchase","item":"MUG","receipt":"till-9","qty":1,"price":5}"#,
            #"{"ts":\#(t0 + 200),"type":"purchase","customer":"alice-7731","item":"TEAPOT","receipt":"till-9","qty":1,"price":20}"#,
            #"{"ts":\#(t0 + 300),"type":"view","session":"kiosk-anon-5","item":"MUG"}"#,
            #"{"ts":\#(t0 + 300),"type":"view","customer":"alice-7731","session":"kiosk-anon-5","item":"TEAPOT"}"#,
        ]
        let catalog = [#"{"item":"TEAPOT","title":"teapot","category":"tea"}"#, #"{"item":"MUG","title":"mug","category":"tea"}"#]
        let path = try ModelsTests.store(events: events, catalog: catalog, in: dir)
        let store = try Store.open(at: URL(fileURLWithPath: path))
        let names = try Pseudonymizer(storeDirectory: URL(fileURLWithPath: path))
        let alice = names.pseudonym("alice-7731"), bob = names.pseudonym("bob-4410")
        // What the agent would have added: a cached embedding of alice's review, a slate served to her.
        let (id, item) = try store.database.write { db in
            for text in notes.values {
                try db.execute(sql: "INSERT INTO embeddings(model, text_hash, dimensions, vector) VALUES ('m', ?, 1, x'00000000')", arguments: [EncoderService.key(text)])
            }
            let alice = try #require(try Queries.customerID(db, pseudonym: alice))
            // The writer names them hers; a store written before it did has them nameless, as here.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM receipts WHERE key LIKE '%till-9' AND customer_id = ?", arguments: [alice]) == 1)
            let anon = names.sessionKey("kiosk-anon-5")
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM sessions WHERE key = ? AND customer_id = ?", arguments: [anon, alice]) == 1)
            try db.execute(sql: "UPDATE receipts SET customer_id = NULL WHERE key LIKE '%till-9'; UPDATE sessions SET customer_id = NULL WHERE key = ?", arguments: [anon])
            return (alice, try #require(try Int64.fetchOne(db, sql: "SELECT id FROM items WHERE sku = 'TEAPOT'")))
        }
        try RecommendationLog.connection(store).write { db in
            try db.execute(sql: """
                INSERT INTO rec_slates(request_id, ts, customer_id, placement, model, items)
                VALUES ('r1', ?, ?, 'home', 'heuristic', json_array(json_array(?, 1, 'popular', 1)))
                """, arguments: [t0, id, item])
            // A slate of her kiosk session served before the session knew her: only its key names her.
            try db.execute(sql: """
                INSERT INTO rec_slates(request_id, ts, session, placement, model, items)
                VALUES ('r2', ?, ?, 'kiosk', 'heuristic', json_array(json_array(?, 1, 'popular', 1)))
                """, arguments: [t0 + 1, names.sessionKey("kiosk-alice-7731"), item])
        }
        try store.close()
        func bytes() -> Data {
            [Store.databaseName, RecommendationLog.fileName].flatMap { [$0, $0 + "-wal"] }.reduce(into: Data()) { all, name in
                all += FileManager.default.contents(atPath: path + "/" + name) ?? Data()
            }
        }
        #expect(bytes().range(of: alice) != nil && bytes().range(of: Data("QZXJ unforgettable".utf8)) != nil)
        // Kiosk session keys are kept keyed, never as sent (one could name the shopper).
        #expect(bytes().range(of: Data("kiosk-".utf8)) == nil)

        #expect(try TestSupport.run("aislectl", ["customer", "forget", "alice-7731", "--store", path]).status == 64)  // no --yes
        #expect(try TestSupport.run("aislectl", ["customer", "forget", "-", "--yes", "--store", path], input: "").status == 64)  // no id
        // The id on standard input, out of the process list and sudo's log.
        #expect(try TestSupport.run("aislectl", ["customer", "show", "-", "--store", path], input: "alice-7731\n").out.contains("review"))
        let forget = try TestSupport.run("aislectl", ["customer", "forget", "-", "--yes", "--json", "--store", path], input: "alice-7731\n")
        #expect(forget.status == 0, "\(forget.err)")
        struct Out: Decodable { var erased: CustomerErasure.Erased; var walTruncated: Bool }
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        let out = try decoder.decode(Out.self, from: Data(forget.out.utf8))
        #expect(out.erased == CustomerErasure.Erased(events: 8, receipts: 2, sessions: 2, slates: 2, embeddings: 1) && out.walTruncated, "\(forget.out)")

        // Gone to the byte: her pseudonym and her words are nowhere in the database or its log.
        let after = bytes()
        #expect(after.range(of: alice) == nil && after.range(of: Data("QZXJ unforgettable".utf8)) == nil && after.range(of: Data("kiosk-alice".utf8)) == nil
            && after.range(of: Data("till-9".utf8)) == nil && after.range(of: Data("kiosk-anon-5".utf8)) == nil)
        #expect(after.range(of: bob) != nil && after.range(of: Data("WVKY sturdy".utf8)) != nil)
        #expect(try TestSupport.run("aislectl", ["customer", "show", "alice-7731", "--store", path]).status == 4)
        #expect(try TestSupport.run("aislectl", ["customer", "show", "bob-4410", "--store", path]).out.contains("review"))
        #expect(try TestSupport.run("aislectl", ["customer", "forget", "alice-7731", "--yes", "--store", path]).status == 4)
        #expect(try TestSupport.run("aislectl", ["check", "--store", path]).status == 0)
        let reopened = try Store.open(at: URL(fileURLWithPath: path), readOnly: true)
        try reopened.database.read { db in
            #expect(try Row.fetchAll(db, sql: "PRAGMA foreign_key_check").isEmpty)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events") == 5)  // bob's
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM events WHERE type = 'view' AND session_id IS NULL") == 1)
            // Her row keeps its id under a random pseudonym, so no newcomer inherits it.
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM customers") == 2)
            #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM embeddings") == 1)
            #expect(try CustomerErasure.generation(db) == 1)
            #expect(try Meta.string(db, CustomerErasure.pendingKey) == nil)  // finished
            // The audit log says what went, not whose.
            let audit = try #require(try String.fetchOne(db, sql: "SELECT detail FROM audit_log WHERE action = 'customer forget'"))
            #expect(audit == "8 events, 2 receipts, 2 sessions, 2 slates, 1 cached embeddings")
        }
    }

    /// `[privacy] text_days`: the words of searches and questions older than that go, the events
    /// stay; reviews and newer searches keep theirs.
    /// An erasure is recorded as pending in its transaction; once its late pass is done the record
    /// keeps no session key, and once the write-ahead logs are truncated it is gone.
    @Test func anErasureIsPendingUntilItsLogsAreTruncated() throws {
        let store = try TempStore().store
        let id = try store.database.write { db in
            try db.execute(sql: "INSERT INTO customers(pseudonym) VALUES (randomblob(32))")
            let id = db.lastInsertedRowID
            try db.execute(sql: "INSERT INTO sessions(key, customer_id, first_ts, last_ts) VALUES ('kiosk-9', ?, 0, 0)", arguments: [id])
            return id
        }
        _ = try CustomerErasure.erase(store, customer: id, embeddingKey: EncoderService.key)
        let text = try #require(try store.database.read { try Meta.string($0, CustomerErasure.pendingKey) })
        let pending = try JSONDecoder().decode(CustomerErasure.Pending.self, from: Data(text.utf8))
        #expect(pending.customer == id && pending.sessionKeys.isEmpty && pending.erased.sessions == 1)
        #expect(CustomerErasure.truncateLogs(store) == [])
        #expect(try store.database.read { try Meta.string($0, CustomerErasure.pendingKey) } == nil)
    }

    /// An erasure cut short by a crash after the store's transaction (its record left in `meta`)
    /// is finished by the next start: the slates of sessions that became the customer's
    /// meanwhile go, the audit row counts them, the record goes; then there is none.
    @Test func anErasureACrashCutShortIsFinished() throws {
        let store = try TempStore().store
        let t0: Int64 = 1_700_000_000
        let audit = try store.database.write { db in
            try Store.audit(db, "customer forget", detail: "3 events, 0 receipts, 1 sessions, 0 slates, 0 cached embeddings")
            return db.lastInsertedRowID
        }
        try RecommendationLog.connection(store).write { db in
            for (request, session) in [("r-late", "kiosk-late"), ("r-other", "kiosk-other")] {
                try db.execute(sql: """
                    INSERT INTO rec_slates(request_id, ts, session, placement, model, items)
                    VALUES (?, ?, ?, 'kiosk', 'heuristic', json_array(json_array(1, 1, 'popular', 1)))
                    """, arguments: [request, t0 + 5, session])
            }
        }
        let pending = CustomerErasure.Pending(customer: 42, since: t0, sessionKeys: ["kiosk-late"], audit: audit, erased: .init(events: 3, sessions: 1))
        try store.database.write { try Meta.set($0, CustomerErasure.pendingKey, String(decoding: try JSONEncoder().encode(pending), as: UTF8.self)) }
        #expect(try CustomerErasure.finishPending(store) == [])
        let (slates, detail, left) = try store.database.read { db in
            (try String.fetchAll(db, sql: "SELECT request_id FROM rec_slates ORDER BY 1"),
             try String.fetchOne(db, sql: "SELECT detail FROM audit_log WHERE id = ?", arguments: [audit]),
             try Meta.string(db, CustomerErasure.pendingKey))
        }
        #expect(slates == ["r-other"] && left == nil)
        #expect(detail == "3 events, 0 receipts, 1 sessions, 1 slates, 0 cached embeddings")
        #expect(try CustomerErasure.finishPending(store) == nil)
    }

    @Test func oldSearchWordsAreClearedAndTheEventsStay() throws {
        let dir = try TestSupport.temporaryDirectory()
        let now: Int64 = 1_700_000_000, day: Int64 = 86_400
        let events = [
            #"{"ts":\#(now - 100 * day),"type":"search","customer":"c1","text":"gift for jane doe 0612345678"}"#,
            #"{"ts":\#(now - 100 * day),"type":"question","session":"k1","text":"where are the toilets"}"#,
            #"{"ts":\#(now - 100 * day),"type":"review","customer":"c1","item":"MUG","rating":5,"text":"lovely mug"}"#,
            #"{"ts":\#(now - 10 * day),"type":"search","customer":"c1","text":"red teapot"}"#,
        ]
        let path = try ModelsTests.store(events: events, in: dir)
        let store = try Store.open(at: URL(fileURLWithPath: path))
        let seal = try Pseudonymizer(storeDirectory: URL(fileURLWithPath: path)).sealedKey
        let keys = { try store.database.read { try Data.fetchAll($0, sql: "SELECT key FROM events ORDER BY ts, type") } }
        let before = try keys()
        let cleared = [1, 1_000].map { try? TextRetention.clear(store.database, before: now - 90 * day, rows: $0, seal: seal) }
        #expect(cleared == [1, 1])
        let rows = try store.database.read { try Row.fetchAll($0, sql: "SELECT type, text, customer_id IS NOT NULL AS named FROM events ORDER BY ts, type") }
        #expect(rows.map { [$0["type"], $0["text"] ?? "—"] as [String] } == [["question", "—"], ["review", "lovely mug"], ["search", "—"], ["search", "red teapot"]])
        #expect(rows.filter { $0["type"] == "search" }.allSatisfy { $0["named"] == true })
        // The words went with the keys they made: the cleared ones are sealed with the store's
        // secret, the others kept; importing the same lines again finds all four.
        #expect(try keys() == [seal(before[0]), before[1], seal(before[2]), before[3]])
        try store.close()
        let again = try TestSupport.run("aislectl", ["import", "events", dir.appendingPathComponent("events.jsonl").path, "--store", path, "--json"])
        #expect(again.status == 0 && again.out.contains(#""duplicates" : 4"#), "\(again.out)\(again.err)")
    }

    /// A store from before v19 kept kiosk session keys as sent; its upgrade keys them with the
    /// store secret in both files — the sessions, the log's slates, a pending erasure's record —
    /// drops the log's digests of keys as sent, and leaves no copy of them in either file.
    @Test func sessionKeysAsSentAreKeyedOnUpgrade() throws {
        let dir = try TestSupport.temporaryDirectory()
        try Pseudonymizer.writeSecret(to: dir)
        let names = try Pseudonymizer(storeDirectory: dir)
        var configuration = Configuration()
        configuration.foreignKeysEnabled = false
        let queue = try DatabaseQueue(path: dir.appendingPathComponent(Store.databaseName).path, configuration: configuration)
        try Schema.migrator.migrate(queue, upTo: "v18-search-text-retention")
        let pending = CustomerErasure.Pending(customer: 7, since: 0, sessionKeys: ["kiosk-gone-1"], audit: 1, erased: .init())
        // Two views in alice's session as a v18 agent keyed them: one sent without an id (keyed
        // by its content, the session's key as sent in it), one with an id (keyed by that).
        let view = IncomingEvent(ts: 1_700_000_000, type: .view, session: "kiosk-alice-7731", item: "MUG")
        var scratch: [UInt8] = []
        let oldKeys = [EventKey.idempotency(view, pseudonym: nil, scratch: &scratch), EventKey.idempotency({ var e = view; e.id = "v-2"; return e }(), pseudonym: nil, scratch: &scratch)]
        try queue.write { db in
            try db.execute(sql: "INSERT INTO sessions(key, first_ts, last_ts) VALUES ('kiosk-alice-7731', 1, 2), ('kiosk-anon-5', 3, 4)")
            try db.execute(sql: "INSERT INTO items(sku, title) VALUES ('MUG', 'mug')")
            for key in oldKeys {
                try db.execute(sql: "INSERT INTO events(key, ts, type, session_id, item_id, ingested_at) VALUES (?, 1700000000, 'view', 1, 1, 0)", arguments: [key])
            }
            try Meta.set(db, CustomerErasure.pendingKey, pending.json)
            try Meta.set(db, TextRetention.doneKey, "1")  // v20 has the agent look for unsealed keys again
        }
        try queue.close()
        try RecommendationLog.prepareFile(in: dir)
        try RecommendationLog.connection(in: dir, durable: true).write { db in
            for (request, session) in [("r1", "kiosk-alice-7731"), ("r2", "kiosk-gone-1"), ("r3", nil)] {
                try db.execute(sql: "INSERT INTO rec_slates(request_id, ts, session, placement, model, items) VALUES (?, 1, ?, 'kiosk', 'm', '[]')", arguments: [request, session])
            }
            try db.execute(sql: "INSERT INTO erased_sessions(digest) VALUES (?)", arguments: [RecommendationLog.sessionDigest("kiosk-erased-2")])
        }
        func check(_ store: Store) throws {
            try store.database.read { db in
                #expect(try String.fetchAll(db, sql: "SELECT key FROM sessions ORDER BY first_ts") == ["kiosk-alice-7731", "kiosk-anon-5"].map(names.sessionKey))
                #expect(try Row.fetchAll(db, sql: "SELECT session FROM rec_slates ORDER BY request_id").map { $0["session"] as String? }
                    == [names.sessionKey("kiosk-alice-7731"), names.sessionKey("kiosk-gone-1"), nil])
                #expect(try Int.fetchOne(db, sql: "SELECT count(*) FROM erased_sessions") == 0)
                let record = try JSONDecoder().decode(CustomerErasure.Pending.self, from: Data(try #require(try Meta.string(db, CustomerErasure.pendingKey)).utf8))
                #expect(record.sessionKeys == [names.sessionKey("kiosk-gone-1")] && record.customer == 7)
                #expect(try Meta.string(db, TextRetention.doneKey) == nil)
                // The content key is made with the stored session key now; the id's stays.
                var stored = view
                stored.session = names.sessionKey("kiosk-alice-7731")
                #expect(try Data.fetchAll(db, sql: "SELECT key FROM events ORDER BY id") == [EventKey.idempotency(stored, pseudonym: nil, scratch: &scratch), oldKeys[1]])
            }
        }
        let store = try Store.open(at: dir)
        try check(store)
        try store.close()
        let files = try FileManager.default.contentsOfDirectory(atPath: dir.path).filter { $0.hasSuffix(".sqlite") || $0.hasSuffix("-wal") }
        #expect(files.count >= 2)
        for file in files {
            let bytes = try Data(contentsOf: dir.appendingPathComponent(file))
            #expect(bytes.range(of: Data("kiosk-".utf8)) == nil && bytes.range(of: RecommendationLog.sessionDigest("kiosk-erased-2")) == nil, "\(file)")
        }
        // Opened again, nothing is keyed twice; the same events sent again are duplicates.
        let again = try Store.open(at: dir)
        try check(again)
        try again.close()
        let events = dir.appendingPathComponent("again.jsonl")
        try TestSupport.write(#"{"ts":1700000000,"type":"view","session":"kiosk-alice-7731","item":"MUG"}"# + "\n"
            + #"{"id":"v-2","ts":1700000000,"type":"view","session":"kiosk-alice-7731","item":"MUG"}"# + "\n", to: events)
        let imported = try TestSupport.run("aislectl", ["import", "events", events.path, "--store", dir.path, "--json"])
        #expect(imported.status == 0 && imported.out.contains(#""duplicates" : 2"#), "\(imported.out)\(imported.err)")
    }

    /// A store whose words were cleared before keys were sealed has their keys sealed once.
    @Test func keysOfWordsClearedBeforeAreSealedOnce() throws {
        let dir = try TestSupport.temporaryDirectory()
        let path = try ModelsTests.store(events: [#"{"ts":1600000000,"type":"search","text":"old words"}"#, #"{"ts":1600000000,"type":"view","item":"A"}"#], in: dir)
        let store = try Store.open(at: URL(fileURLWithPath: path))
        let seal = try Pseudonymizer(storeDirectory: URL(fileURLWithPath: path)).sealedKey
        let keys = { try store.database.read { try Data.fetchAll($0, sql: "SELECT key FROM events ORDER BY type") } }
        try store.database.write { try $0.execute(sql: "UPDATE events SET text = NULL WHERE type = 'search'") }  // as the version before did
        let before = try keys()
        let old = try TextRetention.oldKeys(store.database)
        #expect(old.count == 1)
        #expect(try TextRetention.sealOldKeys(store.database, ids: old, seal: seal) == 1)
        #expect(try keys() == [seal(before[0]), before[1]])
        #expect(try TextRetention.sealOldKeys(store.database, ids: old, seal: seal) == 0)  // sealed once
        try TextRetention.markOldKeysSealed(store.database)
        #expect(try TextRetention.oldKeys(store.database).isEmpty)
        #expect(try keys() == [seal(before[0]), before[1]])
    }

    /// The agent clears them itself, at start and hourly after, as `[privacy] text_days` says.
    @Test func theAgentClearsOldWordsAtStart() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let now = Int64(Date().timeIntervalSince1970), day: Int64 = 86_400
        let events = [
            #"{"ts":\#(now - 40 * day),"type":"search","text":"old words"}"#,
            #"{"ts":\#(now - 10 * day),"type":"search","text":"new words"}"#,
        ]
        let store = URL(fileURLWithPath: try ModelsTests.store(events: events, in: dir))
        let log = dir.appendingPathComponent("agent.log")
        let agent = try await TestSupport.startAgent(store: store, socket: dir.appendingPathComponent("t.sock").path, log: log, config: "[privacy]\ntext_days = 30\n")
        defer { TestSupport.kill9(agent) }
        let reader = try Store.open(at: store, readOnly: true)
        // Logged once the pass has committed.
        for _ in 0..<600 where (try? String(contentsOf: log, encoding: .utf8))?.contains("old search and question texts cleared") != true {
            try await Task.sleep(for: .milliseconds(100))
        }
        let texts = try await reader.database.read { try String?.fetchAll($0, sql: "SELECT text FROM events WHERE type = 'search' ORDER BY ts") }
        #expect(texts == [nil, "new words"])
    }
}
