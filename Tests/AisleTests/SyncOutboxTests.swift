@testable import AisleSync
import AisleClient
import AisleHub
import AisleStore
import Crypto
import Foundation
import GRDB
import Testing

/// The outbox against real hub processes: outages, crashes mid-upload, cut connections, a
/// full hub, removable media. Whatever happens, every queued upload lands exactly once.
@Suite struct SyncOutboxTests {
    /// Queues `count` uploads, the first one large enough to travel in several parts.
    static func queue(_ dir: URL, count: Int, largeBytes: Int = 900_000) throws -> [String: Data] {
        let store = try Store.open(at: dir)
        defer { try? store.close() }
        return try store.database.write { db in
            var queued: [String: Data] = [:]
            for i in 0..<count {
                var payload = Data("{\"n\":\(i)}".utf8)
                if i == 0 { payload = Data((0..<largeBytes).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) }) }
                queued[try Outbox.enqueue(db, kind: StoreSummary.kind, payload: payload)] = payload
            }
            return queued
        }
    }

    /// The uploads the hub holds from `store`, by content id, with their payloads' digests.
    static func landed(_ hub: HubFixture) throws -> [String: String] {
        try hub.read { db in
            Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT content_id, payload FROM uploads").map {
                ($0[0] as String, SHA256.hash(data: $0[1] as Data).description)
            })
        }
    }

    static func pending(_ dir: URL) throws -> Int {
        let out = try TestSupport.run("aislectl", ["sync", "status", "--store", dir.path, "--json"])
        struct S: Decodable { struct O: Decodable { var pending: Int; var sent: Int }; var outbox: O }
        return try JSONDecoder().decode(S.self, from: Data(out.out.utf8)).outbox.pending
    }

    @Test func queuedUploadsLandExactlyOnceThroughOutagesAndCrashes() async throws {
        let hub = try await HubFixture()
        let dir = try hub.enrolledStore()
        let total = 300  // enough that the uploads take a good while, however loaded the machine
        let queued = try Self.queue(dir, count: total)
        // The hub is down: nothing is lost, the command says so.
        hub.kill()
        let down = try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path])
        #expect(down.status == 69 && down.err.contains("unreachable"), "\(down.err)")
        #expect(try Self.pending(dir) == total)
        // Back up, and killed (SIGKILL) while the store is uploading: once the first upload has
        // landed, then once half have.
        for threshold in [1, total / 2] {
            try await hub.start()
            let sync = try TestSupport.launch("aislectl", ["sync", "now", "--store", dir.path])
            try hub.waitFor(uploads: threshold, while: sync.process)
            hub.kill()
            sync.process.waitUntilExit()
            #expect(try Self.landed(hub).count < total, "the crash came after the last upload")
        }
        try await hub.start()
        var passes = 0
        while try Self.pending(dir) > 0, passes < 5 {
            _ = try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path])
            passes += 1
        }
        let landed = try Self.landed(hub)
        #expect(landed.count == total && Set(landed.keys) == Set(queued.keys))
        #expect(queued.allSatisfy { landed[$0.key] == SHA256.hash(data: $0.value).description })
        #expect(try hub.count("SELECT count(*) FROM upload_parts") == 0)
        // Sending everything again (the acks lost, say) stores nothing twice.
        let again = try Self.queue(dir, count: total)
        #expect(Set(again.keys) == Set(queued.keys))
        #expect(try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path]).status == 0)
        #expect(try Self.landed(hub).count == total && Self.pending(dir) == 0)
    }

    @Test func cutConnectionsAndTruncatedBodiesStoreNothing() async throws {
        let hub = try await HubFixture()
        let creds = try StoreCredentials(try hub.enrolledStore())
        let body = try creds.report("{\"day\":1}").encoded()
        let before = try hub.state()
        // The connection closes after a third of the body it announced; then a body cut short.
        let head = "POST /v1/messages HTTP/1.1\\r\\nHost: hub\\r\\nContent-Length: \(body.count)\\r\\n\\r\\n"
        let cut = String(decoding: body.prefix(body.count / 3), as: UTF8.self)
        let r = try TestSupport.runExternal("/bin/bash", ["-c", "exec 3<>/dev/tcp/127.0.0.1/\(hub.port); printf '%b' '\(head)' >&3; printf '%s' '\(cut)' >&3; exec 3>&-"])
        #expect(r.status == 0)
        #expect(try await hub.post(body.prefix(body.count - 10)).code == "bad_request")
        #expect(try hub.state() == before)
        #expect(try await hub.post(body).status == 200)  // the hub is still serving, and the intact message is taken
        #expect(try hub.count("SELECT count(*) FROM uploads") == 1)
    }

    @Test func aFullHubRefusesUploadsAndTheStoreKeepsThemUntilThereIsRoom() async throws {
        let hub = try await HubFixture(config: "max_database_mb = 1\n")
        let dir = try hub.enrolledStore()
        let queued = try Self.queue(dir, count: 6, largeBytes: 3_000_000)
        let full = try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path])
        #expect(full.status == 69 && full.err.contains("storage_full"), "\(full.status) \(full.out) \(full.err)")
        #expect(try Self.pending(dir) >= 1)
        // Room again (the limit lifted, as when a disk is cleared): everything lands once.
        hub.kill()
        try TestSupport.write("[listen]\nport = \(hub.port)\n[storage]\npath = \"\(hub.data.path)\"\n", to: hub.dir.appendingPathComponent("roomy.toml"))
        try await hub.start(config: "roomy.toml")
        #expect(try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path]).status == 0)
        #expect(try Set(Self.landed(hub).keys) == Set(queued.keys) && Self.pending(dir) == 0)
    }

    /// An upload the hub refuses for what it is (a kind it does not take) is held: kept, not sent
    /// again at each pass, named by `sync status`; the others land; `sync retry` queues it again.
    @Test func anUploadRefusedForGoodIsHeldAndKept() async throws {
        let hub = try await HubFixture()
        let dir = try hub.enrolledStore()
        let store = try Store.open(at: dir)
        try await store.database.write { _ = try Outbox.enqueue($0, kind: "bogus", payload: Data("{}".utf8)) }
        try store.close()
        let queued = try Self.queue(dir, count: 2, largeBytes: 10)
        let first = try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path])
        #expect(first.out.contains("bad_request") && first.out.contains("held"), "\(first.out)\(first.err)")
        #expect(try Set(Self.landed(hub).keys) == Set(queued.keys) && Self.pending(dir) == 0)
        let status = try TestSupport.run("aislectl", ["sync", "status", "--store", dir.path])
        #expect(status.out.contains("held: bogus") && status.out.contains("kind"), "\(status.out)")
        let again = try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path, "--privacy-budget", "0"])
        #expect(again.status == 0 && !again.out.contains("bogus"), "\(again.out)")
        let retry = try TestSupport.run("aislectl", ["sync", "retry", "--store", dir.path])
        #expect(try retry.out.contains("1 held uploads queued again") && Self.pending(dir) == 1, "\(retry.out)\(retry.err)")
    }

    /// Whether this machine lets the tests mount a small tmpfs (root in a sandbox that allows it).
    static let canMountTmpfs: Bool = {
        guard let dir = try? TestSupport.temporaryDirectory().appendingPathComponent("probe") else { return false }
        try? FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        guard (try? TestSupport.runExternal("/bin/mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir.path]))?.status == 0 else { return false }
        _ = try? TestSupport.runExternal("/bin/umount", [dir.path])
        return true
    }()

    /// The hub's data on a real file system that fills up (a 4 MiB tmpfs, most of it taken by
    /// another file): uploads are refused as `storage_full`, the hub keeps serving, and once the
    /// other file is deleted everything lands once.
    @Test(.enabled(if: canMountTmpfs, "needs permission to mount a tmpfs"))
    func aReallyFullDiskAtTheHubLosesNothing() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let disk = dir.appendingPathComponent("disk")
        try FileManager.default.createDirectory(at: disk, withIntermediateDirectories: true)
        #expect(try TestSupport.runExternal("/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", disk.path]).status == 0)
        defer { _ = try? TestSupport.runExternal("/bin/umount", ["-l", disk.path]) }
        let filler = disk.appendingPathComponent("filler")
        try Data(count: 2_800_000).write(to: filler)
        let hub = try await HubFixture(in: dir, data: disk.appendingPathComponent("hub"))
        defer { hub.kill() }
        let store = try hub.enrolledStore()
        let queued = try Self.queue(store, count: 6, largeBytes: 1_500_000)
        let full = try TestSupport.run("aislectl", ["sync", "now", "--store", store.path])
        #expect(full.status == 69 && full.err.contains("storage_full"), "\(full.status) \(full.out) \(full.err)")
        #expect(try Self.pending(store) >= 1)
        #expect(try await HubConnection(url: hub.url).info().protocol == 1)  // still serving
        try FileManager.default.removeItem(at: filler)
        #expect(try TestSupport.run("aislectl", ["sync", "now", "--store", store.path]).status == 0)
        #expect(try Set(Self.landed(hub).keys) == Set(queued.keys) && Self.pending(store) == 0)
    }

    @Test func removableMediaCarryTheOutboxAndTheHubKeepsEachUploadOnce() async throws {
        let hub = try await HubFixture()
        let dir = try hub.enrolledStore()
        let queued = try Self.queue(dir, count: 5, largeBytes: 500_000)
        hub.kill()
        let media = hub.dir.appendingPathComponent("usb")
        let exported = try TestSupport.run("aislectl", ["sync", "export", media.path, "--store", dir.path])
        #expect(exported.status == 0 && exported.out.contains("wrote 7 envelopes"), "\(exported.out)\(exported.err)")
        // A file altered on the way is refused; the others are taken.
        let files = try FileManager.default.contentsOfDirectory(atPath: media.path).sorted()
        let victim = media.appendingPathComponent(files[files.count - 1])
        var text = try String(contentsOf: victim, encoding: .utf8)
        text = text.replacingOccurrences(of: "\"seq\":", with: "\"seq\":1")
        try text.write(to: victim, atomically: true, encoding: .utf8)
        // A file larger than any envelope is refused by its size, not read whole.
        try Data(repeating: 0x20, count: Hub.maxBodyBytes + 1).write(to: media.appendingPathComponent("zz-huge.aisle-envelope"))
        let imported = try hub.cli(["import", media.path])
        #expect(imported.status == 1 && imported.out.contains("6 envelopes accepted") && imported.out.contains("bad_signature"), "\(imported.out)")
        #expect(imported.out.contains("zz-huge.aisle-envelope: too_large"), "\(imported.out)")
        #expect(try Self.landed(hub).count == 4)
        // Online again: the store sends what is missing; what the hub has is acknowledged, not stored twice.
        try await hub.start()
        #expect(try TestSupport.run("aislectl", ["sync", "now", "--store", dir.path]).status == 0)
        #expect(try Set(Self.landed(hub).keys) == Set(queued.keys) && Self.pending(dir) == 0)
        // The same media imported again: what the hub took before is acknowledged, not refused.
        let again = try hub.cli(["import", media.path])
        #expect(again.out.contains("0 envelopes accepted") && again.out.contains("6 taken before") && again.out.contains("2 refused"), "\(again.out)")
    }

    @Test func theAgentServesKiosksWhileTheHubIsDownAndDeliversWhenItIsBack() async throws {
        let hub = try await HubFixture()
        let dir = try hub.enrolledStore()
        let queued = try Self.queue(dir, count: 8, largeBytes: 400_000)
        hub.kill()
        let socket = hub.dir.appendingPathComponent("a.sock").path
        let log = hub.dir.appendingPathComponent("aisled.log")
        let agent = try await TestSupport.startAgent(
            store: dir, socket: socket, log: log, config: "[sync]\ninterval_seconds = 1\nretry_min_seconds = 1\nretry_max_seconds = 1\n")
        defer { TestSupport.kill9(agent) }
        // Twenty events, one after another, each taken while the agent fails to reach the hub.
        var answered = 0
        for n in 0..<20 {
            let event = #"[{"ts":1300000000,"type":"view","customer":"c1","item":"SKU\#(n)"}]"#
            if (try? await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array(event.utf8)))?.status == 200 { answered += 1 }
        }
        #expect(answered == 20)
        for _ in 0..<150 where !((try? String(contentsOf: log, encoding: .utf8))?.contains("sync pass failed") ?? false) {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try String(contentsOf: log, encoding: .utf8).contains("sync pass failed"))
        try await hub.start()
        for _ in 0..<300 where try Self.landed(hub).count < queued.count { try await Task.sleep(for: .milliseconds(200)) }
        #expect(try Set(Self.landed(hub).keys).isSuperset(of: queued.keys))
    }
}
