@testable import AisleSync
import AisleHub
import AisleStore
import Foundation
import GRDB
import Synchronization
import Testing

/// A real `aisle-hub serve` on loopback, with its own data directory, and stores enrolled with
/// it through the real CLI.
final class HubFixture: @unchecked Sendable {
    let dir: URL
    let data: URL
    private(set) var port: Int
    /// The certificate a TLS hub is verified with (nil: plain HTTP).
    let caFile: String?
    private(set) var process: Process?

    var url: String { caFile == nil ? "http://127.0.0.1:\(port)" : "https://localhost:\(port)" }

    /// `listen`: more keys of the `[listen]` table; `config`: more tables.
    init(listen: String = "", config extra: String = "", caFile: String? = nil, in directory: URL? = nil, data dataDirectory: URL? = nil) async throws {
        self.caFile = caFile
        dir = try directory ?? TestSupport.temporaryDirectory()
        data = dataDirectory ?? dir.appendingPathComponent("hub")
        port = Self.nextPort()
        // A port something else on the machine holds: the next one.
        for attempt in 1...5 {
            try TestSupport.write("[listen]\nport = \(port)\n\(listen)[storage]\npath = \"\(data.path)\"\n" + extra, to: dir.appendingPathComponent("hub.toml"))
            do {
                try await start()
                return
            } catch let failure as TestFailure where failure.description.contains("in use") && attempt < 5 {
                port = Self.nextPort()
            }
        }
    }

    /// Ports for this run's hubs, one each, so parallel tests never meet: from a random start
    /// below Linux's ephemeral ports (which clients take).
    private static let ports = Mutex(Int.random(in: 20_000..<30_000))
    private static func nextPort() -> Int { ports.withLock { $0 += 1; return $0 } }

    /// Starts the hub (again) and waits until it answers. It must say it is listening first: an
    /// answer alone could come from another hub that holds the port.
    func start(config: String = "hub.toml") async throws {
        let log = dir.appendingPathComponent("hub-\(UUID().uuidString.prefix(4)).log")
        let p = try TestSupport.launch("aisle-hub", ["serve", "--config", dir.appendingPathComponent(config).path], stderrTo: log)
        for _ in 0..<200 {
            let listening = (try? String(contentsOf: log, encoding: .utf8))?.contains("listening") == true
            if listening, (try? await HubConnection(url: url, caFile: caFile, deadline: .seconds(2)).info()) != nil {
                process = p.process
                return
            }
            guard p.process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        p.process.terminate()
        throw TestFailure("aisle-hub did not come up on port \(port): \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
    }

    /// Kills the hub at once (SIGKILL), as a crash or a power cut would.
    func kill() {
        if let process { TestSupport.kill9(process) }
        process = nil
    }

    deinit { if let process { TestSupport.kill9(process) } }

    /// Runs `aisle-hub` on this hub's data directory.
    func cli(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try TestSupport.run("aisle-hub", args + ["--data", data.path])
    }

    /// A new empty store, enrolled with this hub through `aisle-hub stores add` and `aislectl sync enroll`.
    func enrolledStore(name: String = "test store", existing: URL? = nil) throws -> URL {
        let store = existing ?? dir.appendingPathComponent("store-\(UUID().uuidString.prefix(6))")
        if existing == nil {
            guard try TestSupport.run("aislectl", ["init", "--store", store.path]).status == 0 else { throw TestFailure("init failed") }
        }
        let added = try cli(["stores", "add", name, "--json"])
        struct Added: Decodable { var token: String }
        let token = try JSONDecoder().decode(Added.self, from: Data(added.out.utf8)).token
        let enrolled = try TestSupport.run("aislectl", ["sync", "enroll", "--hub", url, "--token", token, "--store", store.path] + (caFile.map { ["--ca-file", $0] } ?? []))
        guard enrolled.status == 0 else { throw TestFailure("enroll: \(enrolled.err)") }
        return store
    }

    /// What a refused message must not change: the hub's counts and every store row.
    func state() throws -> String {
        try read { db in
            let counts = try Row.fetchOne(db, sql: "SELECT (SELECT count(*) FROM seen), (SELECT count(*) FROM uploads), (SELECT count(*) FROM upload_parts), (SELECT count(*) FROM tokens)")
            let stores = try Row.fetchAll(db, sql: "SELECT id, hex(sign_key), enrolled_at, revoked_at, last_seen, hello FROM stores ORDER BY id")
            return "\(counts.map { "\($0)" } ?? "")|\(stores.map { "\($0)" }.joined(separator: ";"))"
        }
    }

    /// A count from the hub's database.
    func count(_ sql: String) throws -> Int { try read { try Int.fetchOne($0, sql: sql) ?? 0 } }

    /// Changes the hub's database behind its back, as an intruder at HQ could.
    func write(_ body: (Database) throws -> Void) throws {
        var config = Configuration()
        config.busyMode = .timeout(10)  // the hub's clock writes every second
        let queue = try DatabaseQueue(path: data.appendingPathComponent(HubDatabase.fileName).path, configuration: config)
        defer { try? queue.close() }
        try queue.write(body)
    }

    /// Waits until the hub holds `uploads` complete uploads, or `process` has ended.
    func waitFor(uploads: Int, while process: Process) throws {
        var config = Configuration()
        config.readonly = true
        let queue = try DatabaseQueue(path: data.appendingPathComponent(HubDatabase.fileName).path, configuration: config)
        defer { try? queue.close() }
        while process.isRunning, try queue.read({ try Int.fetchOne($0, sql: "SELECT count(*) FROM uploads") ?? 0 }) < uploads { usleep(1000) }
    }

    /// Reads the hub's database as it is on disk (read-only, beside the running hub).
    func read<T>(_ body: (Database) throws -> T) throws -> T {
        var config = Configuration()
        config.readonly = true
        config.busyMode = .timeout(10)
        let queue = try DatabaseQueue(path: data.appendingPathComponent(HubDatabase.fileName).path, configuration: config)
        defer { try? queue.close() }
        return try queue.read(body)
    }

    /// Everything the hub has logged (every run of it in this fixture).
    func logs() throws -> String {
        try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil).filter { $0.lastPathComponent.hasPrefix("hub-") && $0.pathExtension == "log" }
            .map { try String(contentsOf: $0, encoding: .utf8) }.joined(separator: "\n")
    }

    /// Which of `needles` occur anywhere in the running hub's readable memory (its heap, stacks
    /// and mappings, read through /proc/PID/mem as a debugger or a core dump would).
    func memoryHolds(_ needles: [Data]) throws -> [Bool] {
        let pid = try #require(process?.processIdentifier)
        let maps = try String(contentsOfFile: "/proc/\(pid)/maps", encoding: .utf8)
        let fd = open("/proc/\(pid)/mem", O_RDONLY)
        guard fd >= 0 else { throw TestFailure("cannot open /proc/\(pid)/mem: errno \(errno)") }
        defer { close(fd) }
        var found = needles.map { _ in false }
        var regions = 0
        for line in maps.split(separator: "\n") {
            let f = line.split(separator: " ", omittingEmptySubsequences: true)
            guard f.count >= 2, f[1].hasPrefix("r"), let dash = f[0].firstIndex(of: "-"),
                let start = UInt64(f[0][..<dash], radix: 16), let end = UInt64(f[0][f[0].index(after: dash)...], radix: 16), end > start
            else { continue }
            var buffer = [UInt8](repeating: 0, count: Int(end - start))
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, off_t(Int64(bitPattern: start))) }
            guard n > 0 else { continue }
            regions += 1
            for (i, needle) in needles.enumerated() where !found[i] {
                found[i] = buffer.withUnsafeBytes { Self.find(Array(needle), in: UnsafeRawBufferPointer(rebasing: $0[..<n])) }
            }
        }
        guard regions > 10 else { throw TestFailure("read only \(regions) regions of the hub's memory") }
        return found
    }

    /// Whether `needle` occurs in `hay` (memchr on its first byte that is neither 0 nor 0xFF, then
    /// memcmp); a needle of only such bytes cannot be told from empty memory and is never found.
    static func find(_ needle: [UInt8], in hay: UnsafeRawBufferPointer) -> Bool {
        guard let k = needle.firstIndex(where: { $0 != 0 && $0 != 0xFF }), let base = hay.baseAddress else { return false }
        let end = base + hay.count
        var p = base + k
        while p < end, let q = memchr(p, Int32(needle[k]), end - p) {
            let at = UnsafeRawPointer(q) - k
            if end - at >= needle.count, memcmp(at, needle, needle.count) == 0 { return true }
            p = UnsafeRawPointer(q) + 1
        }
        return false
    }

    /// Posts raw bytes as a message; returns the status and the error code, if any.
    func post(_ body: Data) async throws -> (status: Int, code: String?) {
        do {
            _ = try await HubConnection(url: url).call(.POST, "/v1/messages", body: body)
            return (200, nil)
        } catch {
            return (error.code.httpStatus, error.code.rawValue)
        }
    }
}

/// A store's credentials, to build envelopes by hand as a test (or an attacker) would.
struct StoreCredentials {
    var enrollment: Enrollment
    var identity: SyncIdentity
    var store: Store

    init(_ directory: URL) throws {
        store = try Store.open(at: directory)
        enrollment = try #require(try store.database.read { try SyncState.enrollment($0) })
        identity = try SyncIdentity.load(path: SyncState.identityPath(store: directory))
    }

    /// A correctly sealed envelope with the store's next sequence number, unless `seq` is given.
    func envelope(_ message: some Encodable, type: MessageType, round: UInt64 = 0, seq: UInt64? = nil, from signer: SyncIdentity? = nil, to hubKey: Data? = nil) throws -> Envelope {
        let n = try seq ?? store.database.write { try SyncState.nextSequence($0) }
        return try Envelope.seal(
            SyncJSON.encode(message), header: .init(store: enrollment.store, type: type, round: round, seq: n), from: signer ?? identity,
            to: hubKey ?? enrollment.hubKeys.agree)
    }

    func hello() throws -> Envelope { try envelope(Hello(agentVersion: "test", models: [:], outbox: 0), type: .hello) }

    func report(_ text: String, kind: String = StoreSummary.kind, round: UInt64 = 0, headerRound: UInt64? = nil, to hubKey: Data? = nil) throws -> Envelope {
        let payload = Data(text.utf8)
        let id = UploadPart.contentId(kind: kind, round: round, payload: payload)
        let part = UploadPart(contentId: id, kind: kind, round: round, part: 0, parts: 1, size: payload.count, data: payload)
        return try envelope(part, type: .upload, round: headerRound ?? round, to: hubKey)
    }
}
