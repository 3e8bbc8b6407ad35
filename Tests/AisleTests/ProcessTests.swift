import AisleClient
import AisleStore
import Foundation
import GRDB
import Testing

/// Tests with real processes: the built `aisled` and `aislectl`, a real socket, real files,
/// and `kill -9`.
@Suite(.serialized) struct ProcessTests {
    static let secret = Data((0..<32).map { UInt8($0 * 5 + 1) })

    /// Deterministic events without outliers; customer parity splits them into two parts.
    static func events(count: Int) -> [String] {
        (0..<count).map { i in
            let customer = i % 997
            let receipt = "R\(customer)-\(i / 2000)"
            let item = "SKU\((i * 31) % 613)"
            let price = Double((i * 31) % 613 % 40) + 0.99
            if i % 50 == 49 {
                return #"{"ts":\#(1_300_000_000 + i * 30),"type":"return","customer":"cust-\#(customer)","receipt":"C\#(receipt)","item":"\#(item)","qty":1,"price":\#(price)}"#
            }
            return #"{"ts":\#(1_300_000_000 + i * 30),"type":"purchase","customer":"cust-\#(customer)","receipt":"\#(receipt)","item":"\#(item)","qty":\#(1 + i % 3),"price":\#(price),"store":"S1"}"#
        }
    }

    func makeStore(_ dir: URL, _ name: String) throws -> URL {
        let secretFile = dir.appendingPathComponent("secret.bin")
        if !FileManager.default.fileExists(atPath: secretFile.path) { try Self.secret.write(to: secretFile) }
        let store = dir.appendingPathComponent(name)
        let r = try TestSupport.run("aislectl", ["init", "--store", store.path, "--import-secret", secretFile.path])
        #expect(r.status == 0, "\(r.err)")
        return store
    }

    func digest(_ store: URL) throws -> (integrity: String, digest: String) {
        let r = try TestSupport.run("aislectl", ["check", "--store", store.path, "--json"])
        struct Out: Decodable { var integrity: [String]; var digest: String }
        let out = try JSONDecoder().decode(Out.self, from: Data(r.out.utf8))
        return (out.integrity.joined(), out.digest)
    }

    func eventCount(_ store: URL) throws -> Int {
        let s = try Store.open(at: store, readOnly: true)
        defer { try? s.close() }
        return try s.database.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM events") ?? 0 }
    }

    /// Lines the running import has committed so far.
    func importedLines(_ store: URL) throws -> Int {
        let s = try Store.open(at: store, readOnly: true)
        defer { try? s.close() }
        return try s.database.read { try Int.fetchOne($0, sql: "SELECT coalesce(max(lines), 0) FROM import_runs WHERE status = 'running'") ?? 0 }
    }

    func post(_ socket: String, _ lines: ArraySlice<String>) async throws -> HTTPResult {
        try await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array(("[" + lines.joined(separator: ",") + "]").utf8))
    }

    @Test func agentServesItsSocketAndStopsCleanly() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let store = try makeStore(dir, "store")
        let config = dir.appendingPathComponent("aisled.toml")
        let socket = dir.appendingPathComponent("a.sock").path
        try TestSupport.write("[http]\nmax_batch_events = 5\n[log]\nformat = \"json\"\n", to: config)
        let log = dir.appendingPathComponent("aisled.log")
        let p = try TestSupport.launch("aisled", ["--config", config.path, "--store", store.path, "--socket", socket], stderrTo: log)
        defer { TestSupport.kill9(p.process) }
        // Until it answers (the socket's mode is set once the server runs, after the file exists).
        for _ in 0..<400 where (try? await UnixHTTP.request(path: socket, .GET, "/v1/health"))?.status != 200 { try await Task.sleep(for: .milliseconds(50)) }

        var info = stat()
        for _ in 0..<100 where stat(socket, &info) != 0 || info.st_mode & 0o777 != 0o660 { try await Task.sleep(for: .milliseconds(50)) }
        #expect(stat(socket, &info) == 0 && info.st_mode & 0o777 == 0o660)
        #expect(try await UnixHTTP.request(path: socket, .GET, "/v1/health").text == #"{"status":"ok"}"#)

        let batch = try await post(socket, [
            #"{"id":"a","ts":"2011-01-01 10:00","type":"purchase","customer":"k1","item":"A","price":2}"#,
            #"{"id":"a","ts":"2011-01-01 10:00","type":"purchase","customer":"k1","item":"A","price":2}"#,
            #"{"ts":"2011-01-01 10:00","type":"fly","item":"A"}"#,
            #"{"ts":"2011-01-01 10:01","type":"view","item":"B","qty":"x"}"#,
        ])
        #expect(batch.status == 200)
        struct Answer: Decodable {
            struct R: Decodable { var index: Int; var status: String; var field: String?; var reason: String? }
            var accepted: Int; var duplicates: Int; var rejected: Int; var results: [R]
        }
        let answer = try JSONDecoder().decode(Answer.self, from: Data(batch.body))
        #expect(answer.accepted == 1 && answer.duplicates == 1 && answer.rejected == 2)
        #expect(answer.results.map(\.status) == ["accepted", "duplicate", "rejected", "rejected"])
        #expect(answer.results[2].field == "type" && answer.results[3].field == "qty")

        let tooMany = try await post(socket, ArraySlice(Array(repeating: #"{"ts":1300000000,"type":"view","item":"A"}"#, count: 6)))
        #expect(tooMany.status == 413 && tooMany.text.contains("batch_too_large"))
        let notJSON = try await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array("[{oops".utf8))
        #expect(notJSON.status == 400 && notJSON.text.contains("malformed_json"))
        let notArray = try await UnixHTTP.request(path: socket, .POST, "/v1/events", body: Array("{}".utf8))
        #expect(notArray.status == 400 && notArray.text.contains("expected_array"))

        let status = try await UnixHTTP.request(path: socket, .GET, "/v1/status")
        #expect(status.status == 200 && status.text.contains(#""events":1"#))
        let history = try await UnixHTTP.request(path: socket, .GET, "/v1/customers/k1/history")
        #expect(history.status == 200 && history.text.contains(#""item":"A""#))
        #expect(try await UnixHTTP.request(path: socket, .GET, "/v1/customers/nobody/history").status == 404)
        // A broken percent-encoding and a bad moment are named as such.
        let broken = try await UnixHTTP.request(path: socket, .GET, "/v1/customers/100%/history")
        #expect(broken.status == 400 && broken.text.contains("id: invalid percent-encoding"), "\(broken.text)")
        let badAt = try await UnixHTTP.request(path: socket, .GET, "/v1/sessions/s1/intent?at=yesterday")
        #expect(badAt.status == 400 && badAt.text.contains(#""at: "#) && !badAt.text.contains("ts:"), "\(badAt.text)")
        let top = try await UnixHTTP.request(path: socket, .GET, "/v1/items/top?limit=3")
        #expect(top.status == 200 && top.text.contains(#""from":"2011-01-01T00:00:00Z""#))
        // A window ending at a month's start is the month before it, not empty; bad windows and
        // limits are refused by name.
        let toFebruary = try await UnixHTTP.request(path: socket, .GET, "/v1/items/top?to=2011-02-01")
        #expect(toFebruary.status == 200 && toFebruary.text.contains(#""from":"2011-01-01T00:00:00Z""#), "\(toFebruary.text)")
        // Only `from`, after the latest event's month: that month, empty (not a reversed window).
        let later = try await UnixHTTP.request(path: socket, .GET, "/v1/items/top?from=2012-03-01")
        #expect(later.status == 200 && later.text.contains(#""to":"2012-04-01T00:00:00Z""#) && later.text.contains(#""items":[]"#), "\(later.text)")
        for (query, says) in [("from=2011-13-01", "from: "), ("from=2011-02-01&to=2011-01-01", "from: must be before to"), ("limit=abc", "limit: abc is not")] {
            let bad = try await UnixHTTP.request(path: socket, .GET, "/v1/items/top?" + query)
            #expect(bad.status == 400 && bad.text.contains(says), "\(query): \(bad.text)")
        }
        #expect(try await UnixHTTP.request(path: socket, .GET, "/v1/customers/k1/history?limit=1e3").text.contains("bad_limit"))
        let metrics = try await UnixHTTP.request(path: socket, .GET, "/metrics").text
        #expect(metrics.contains(#"aisle_events_ingested_total{outcome="accepted"} 1"#))
        #expect(metrics.contains("aisle_database_bytes"))
        #expect(metrics.contains("hb_requests") || metrics.contains("hb_request_duration"))

        // A second agent on the same socket is refused; the first keeps serving.
        let second = try TestSupport.run("aisled", ["--store", store.path, "--socket", socket])
        #expect(second.status == 1 && second.err.contains("another agent is already listening"))
        // A socket path given on the command line meets the configuration's checks (exit 78).
        let long = try TestSupport.run("aisled", ["--store", store.path, "--socket", "/tmp/" + String(repeating: "s", count: 110)])
        #expect(long.status == 78 && long.err.contains("--socket: longer than the 107 bytes"), "\(long.status) \(long.err)")
        #expect(try await UnixHTTP.request(path: socket, .GET, "/v1/health").status == 200)

        kill(p.process.processIdentifier, SIGTERM)
        p.process.waitUntilExit()
        #expect(p.process.terminationStatus == 0)
        #expect(!FileManager.default.fileExists(atPath: socket))
        let logText = try String(contentsOf: log, encoding: .utf8)
        #expect(logText.contains(#""msg":"listening""#) && logText.contains(#""msg":"stopped""#))
    }

    @Test func staleSocketIsReplaced() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let store = try makeStore(dir, "store")
        let socket = dir.appendingPathComponent("stale.sock").path
        // A socket file nobody listens on, as a crash leaves it.
        let fd = Glibc.socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: Array(socket.utf8) + [0]) }
        let bound = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) } }
        close(fd)
        #expect(bound == 0 && FileManager.default.fileExists(atPath: socket))
        let agent = try await TestSupport.startAgent(store: store, socket: socket, log: dir.appendingPathComponent("log"))
        defer { TestSupport.kill9(agent) }
        #expect(try await UnixHTTP.request(path: socket, .GET, "/v1/health").status == 200)
        agent.terminate()
        agent.waitUntilExit()
    }

    @Test func killNineDuringImportAndIngestLosesNothing() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let all = Self.events(count: 120_000)
        let part1 = all.enumerated().filter { $0.offset % 997 % 2 == 0 }.map(\.element)
        let part2 = all.enumerated().filter { $0.offset % 997 % 2 == 1 }.map(\.element)
        let file1 = dir.appendingPathComponent("part1.jsonl"), file2 = dir.appendingPathComponent("part2.jsonl")
        try TestSupport.write(part1.joined(separator: "\n"), to: file1)
        try TestSupport.write(part2.joined(separator: "\n"), to: file2)

        // The reference: both parts imported without interruption.
        let reference = try makeStore(dir, "reference")
        for f in [file1, file2] {
            let r = try TestSupport.run("aislectl", ["import", "events", f.path, "--store", reference.path, "--quiet"])
            #expect(r.status == 0, "\(r.err)")
        }
        let expected = try digest(reference)
        #expect(expected.integrity == "ok")
        #expect(try eventCount(reference) == 120_000)

        // The victim: part 1 through `aislectl import` while part 2 arrives over the socket;
        // both processes are killed with SIGKILL mid-way.
        let victim = try makeStore(dir, "victim")
        let socket = dir.appendingPathComponent("v.sock").path
        var agent = try await TestSupport.startAgent(store: victim, socket: socket, log: dir.appendingPathComponent("agent1.log"))
        defer { TestSupport.kill9(agent) }
        let batches = stride(from: 0, to: part2.count, by: 500).map { part2[$0..<min($0 + 500, part2.count)] }
        var posted = 0
        while posted < batches.count / 3 {
            #expect(try await post(socket, batches[posted]).status == 200)
            posted += 1
        }
        let importer = try TestSupport.launch("aislectl", ["import", "events", file1.path, "--store", victim.path, "--quiet", "--batch-size", "1000"])
        defer { TestSupport.kill9(importer.process) }
        // Until the import is under way (bounded: an import that finished before this looked
        // would otherwise be waited for for ever; the check below then says the kill came late).
        let deadline = ContinuousClock.now + .seconds(120)
        while try importedLines(victim) < 3_000, importer.process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
        let last = batches[posted]
        let inFlight = Task { try? await post(socket, last) }
        try await Task.sleep(for: .milliseconds(2))
        TestSupport.kill9(importer.process)
        TestSupport.kill9(agent)
        _ = await inFlight.value
        let partial = try eventCount(victim)
        // Killed mid-way, not finished before the kill (then nothing here would be tested).
        #expect(importer.process.terminationReason == .uncaughtSignal && partial < part1.count + (posted + 1) * 500, "the kill came too late: \(partial) events")
        #expect(try digest(victim).integrity == "ok")

        // Restart, and do it all again: the store ends exactly as the reference.
        agent = try await TestSupport.startAgent(store: victim, socket: socket, log: dir.appendingPathComponent("agent2.log"))
        let resumed = try TestSupport.run("aislectl", ["import", "events", file1.path, "--store", victim.path, "--quiet", "--json"])
        #expect(resumed.status == 0, "\(resumed.err)")
        for b in batches { #expect(try await post(socket, b).status == 200) }
        agent.terminate()
        agent.waitUntilExit()
        let got = try digest(victim)
        #expect(got.integrity == "ok")
        #expect(got.digest == expected.digest)
        #expect(try eventCount(victim) == 120_000)
        let runs = try TestSupport.run("aislectl", ["status", "--store", victim.path, "--json"])
        #expect(runs.status == 0)
        let s = try Store.open(at: victim, readOnly: true)
        let statuses = try await s.database.read { try String.fetchAll($0, sql: "SELECT status FROM import_runs ORDER BY id") }
        #expect(statuses == ["interrupted", "completed"])
    }

    @Test func acknowledgedEventsSurviveKillNine() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let store = try makeStore(dir, "store")
        let socket = dir.appendingPathComponent("k.sock").path
        var acknowledged = 0
        for round in 0..<5 {
            let agent = try await TestSupport.startAgent(store: store, socket: socket, log: dir.appendingPathComponent("log\(round)"))
            defer { TestSupport.kill9(agent) }
            let batch = (0..<200).map { #"{"id":"r\#(round)-\#($0)","ts":\#(1_300_000_000 + $0),"type":"cart","item":"I\#($0)"}"# }
            let r = try await post(socket, batch[...])
            #expect(r.status == 200 && r.text.contains(#""accepted":200"#))
            acknowledged += 200
            TestSupport.kill9(agent)  // right after the answer
            #expect(try eventCount(store) == acknowledged)
        }
        #expect(try digest(store).integrity == "ok")
    }

    @Test func rawIdentifiersAppearInNoFileOrLog() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let store = try makeStore(dir, "store")
        let socket = dir.appendingPathComponent("p.sock").path
        let raws = (0..<30).map { "MEMBER-\(4_410_000 + $0 * 37)-X" }
        let file = dir.appendingPathComponent("in.jsonl")
        let tooLong = #"{"ts":1300000999,"type":"view","customer":"MEMBER-\#(String(repeating: "9", count: 300))","item":"A"}"#
        try TestSupport.write((raws.enumerated().map { #"{"ts":\#(1_300_000_000 + $0.offset),"type":"view","customer":"\#($0.element)","item":"A"}"# } + [tooLong]).joined(separator: "\n"), to: file)
        let imported = try TestSupport.run("aislectl", ["import", "events", file.path, "--store", store.path])
        let log = dir.appendingPathComponent("agent.log")
        let agent = try await TestSupport.startAgent(store: store, socket: socket, log: log)
        defer { TestSupport.kill9(agent) }
        let posted = raws.enumerated().map { #"{"ts":\#(1_300_100_000 + $0.offset),"type":"cart","customer":"\#($0.element)","item":"B"}"# }
        #expect(try await post(socket, posted[...]).status == 200)
        #expect(try await UnixHTTP.request(path: socket, .GET, "/v1/customers/\(raws[3])/history").status == 200)
        let shown = try TestSupport.run("aislectl", ["customer", "show", raws[3], "--store", store.path])
        #expect(shown.status == 0 && !shown.out.contains(raws[3]))
        agent.terminate()
        agent.waitUntilExit()
        var files = [log] + [Store.databaseName, RecommendationLog.fileName].flatMap { [$0, $0 + "-wal"] }.map { store.appendingPathComponent($0) }
        files = files.filter { FileManager.default.fileExists(atPath: $0.path) }
        #expect(files.count >= 2)
        for f in files {
            let bytes = try Data(contentsOf: f)
            for raw in raws { #expect(bytes.range(of: Data(raw.utf8)) == nil, "\(raw) in \(f.lastPathComponent)") }
        }
        // Nor in what the import printed, its rejects included (an id too long for the store).
        #expect(imported.status == 3 && !imported.out.contains("MEMBER-") && !imported.err.contains("MEMBER-"), "\(imported.status) \(imported.out)")
    }

    @Test func cliExitCodesAndMessages() throws {
        let dir = try TestSupport.temporaryDirectory()
        let store = try makeStore(dir, "store")
        let bad = dir.appendingPathComponent("bad.toml")
        try TestSupport.write("[socket]\nmode = \"0777\"\n[log]\nlevel = 3\n", to: bad)
        let check = try TestSupport.run("aislectl", ["config", "check", bad.path])
        #expect(check.status == 78 && check.err.contains("socket.mode") && check.err.contains("log.level: expected a string"))
        #expect(try TestSupport.run("aislectl", ["config", "check", TestSupport.repository.appendingPathComponent("firmware-config/aisled.toml").path]).status == 0)
        #expect(try TestSupport.run("aislectl", ["customer", "show", "nobody", "--store", store.path]).status == 4)
        let file = dir.appendingPathComponent("e.jsonl")
        try TestSupport.write("{\"ts\":1300000000,\"type\":\"view\",\"item\":\"A\"}\n{\"ts\":1}\n", to: file)
        let imp = try TestSupport.run("aislectl", ["import", "events", file.path, "--store", store.path, "--json"])
        #expect(imp.status == 3)
        #expect(imp.out.contains(#""accepted" : 1"#) && imp.out.contains(#""rejected" : 1"#))
        let missing = try TestSupport.run("aislectl", ["status", "--store", dir.appendingPathComponent("nope").path])
        #expect(missing.status == 1 && missing.err.contains("aislectl init"))
        let again = try TestSupport.run("aislectl", ["init", "--store", store.path])
        #expect(again.status == 1 && again.err.contains("already exists"))
        var info = stat()
        #expect(stat(store.appendingPathComponent("secret").path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        // A store made in a directory others could list loses what they had, so check finds nothing.
        let existing = dir.appendingPathComponent("existing")
        try FileManager.default.createDirectory(at: existing, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o755])
        #expect(try TestSupport.run("aislectl", ["init", "--store", existing.path]).status == 0)
        #expect(stat(existing.path, &info) == 0 && info.st_mode & 0o777 == 0o750)
        #expect(try TestSupport.run("aislectl", ["check", "--store", existing.path]).out.contains("access     ok"))
        let help = try TestSupport.run("aislectl", ["import", "events", "--help"])
        #expect(help.out.contains("Example:"))
    }
}
