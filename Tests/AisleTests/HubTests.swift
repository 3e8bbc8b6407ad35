import AisleClient
import AisleSync
import Foundation
import GRDB
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite struct HubTests {
    @Test func hubStartsFromItsConfigAndAnswersHealth() async throws {
        // Started from its config file (the fixture writes one with its port and data directory).
        let hub = try await HubFixture()
        let dir = hub.dir
        let (data, _) = try await URLSession.shared.data(from: try #require(URL(string: hub.url + "/v1/health")))
        let body = String(decoding: data, as: UTF8.self)
        #expect(body.contains(#""status":"ok""#) && body.contains(#""role":"hub""#))
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("hub").path))

        let bad = dir.appendingPathComponent("bad.toml")
        try TestSupport.write("[listen]\nport = 99999\n", to: bad)
        let refused = try TestSupport.run("aisle-hub", ["serve", "--config", bad.path])
        #expect(refused.status == 78 && refused.err.contains("listen.port"))
        // An admin command on a directory without a hub (a mistyped --data) makes none.
        let nowhere = dir.appendingPathComponent("hbu")
        let lost = try TestSupport.run("aisle-hub", ["stores", "add", "Leeds", "--data", nowhere.path])
        #expect(lost.status == 4 && lost.err.contains("no hub at") && !FileManager.default.fileExists(atPath: nowhere.path), "\(lost.err)")
    }

    /// Admin commands refuse what would leave the hub wrong (stop 27's review): a token issued
    /// again replaces the unused one (and the name); a control character in a name; a manifest
    /// JSON cannot carry (NaN: it was signed empty); a round too short or never offered.
    @Test func adminCommandsRefuseWhatWouldLeaveTheHubWrong() async throws {
        let hub = try await HubFixture()
        struct Added: Decodable { var store: String; var token: String }
        func add(_ name: String) throws -> Added { try JSONDecoder().decode(Added.self, from: Data(try hub.cli(["stores", "add", name, "--id", "leeds-1", "--json"]).out.utf8)) }
        let lost = try add("Leeds"), again = try add("Leeds, Briggate")
        let listed = try hub.cli(["stores", "list"]).out
        #expect(lost.token != again.token && listed.contains("Leeds, Briggate"), "\(listed)")
        let store = hub.dir.appendingPathComponent("leeds")
        _ = try TestSupport.run("aislectl", ["init", "--store", store.path])
        let old = try TestSupport.run("aislectl", ["sync", "enroll", "--hub", hub.url, "--token", lost.token, "--store", store.path])
        #expect(old.status == 1 && old.err.contains("bad_token"), "\(old.err)")
        #expect(try TestSupport.run("aislectl", ["sync", "enroll", "--hub", hub.url, "--token", again.token, "--store", store.path]).status == 0)
        let model = hub.dir.appendingPathComponent("m.json")
        try TestSupport.write("{}", to: model)
        for (args, says) in [
            (["stores", "add", "Leeds\nfake line"], "no control characters"),
            (["models", "publish", "intent", model.path, "--metric", "auc=nan"], "metric auc: not a finite number"),
            (["models", "publish", "intent", model.path, "--epsilon=-1"], "epsilon"),
            (["rounds", "open", "intent-moments", "--hours=-1"], "hours: above 0"),
            (["rounds", "open", "intent-moments", "--hours", "0.1", "--phase-seconds", "600"], "four steps"),
        ] {
            let r = try hub.cli(args)
            #expect(r.status != 0 && r.err.contains(says), "\(args): \(r.status) \(r.err)")
        }
        #expect(try hub.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM models") } == 0)
        // Ending a step that too few stores sent would fail the round: refused, the round kept.
        #expect(try hub.cli(["rounds", "open", "sum", "--length", "4", "--min-stores", "3"]).status == 0)
        let early = try hub.cli(["rounds", "advance", "1"])
        #expect(early.status != 0 && early.err.contains("advertise step has 0 of the 3 stores it needs"), "\(early.err)")
        #expect(try hub.read { try String.fetchOne($0, sql: "SELECT phase FROM rounds WHERE id = 1") } == "advertise")
        // A new version of a model whose round is open, blank or a file, would fail that round at
        // its end after its stores spent ε: refused.
        #expect(try hub.cli(["models", "blank", "intent"]).status == 0)
        let round = try hub.cli(["rounds", "open", "intent", "--min-stores", "3"])
        #expect(round.status == 0, "\(round.err)")
        for args in [["models", "blank", "intent"], ["models", "publish", "intent", model.path]] {
            let r = try hub.cli(args)
            #expect(r.status != 0 && r.err.contains("of the intent model is open; close it first"), "\(args): \(r.status) \(r.err)")
        }
    }

    /// With a certificate and key configured the hub speaks only HTTPS; a store enrolled with
    /// the CA file syncs over it, and one that does not trust the certificate cannot connect.
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"), "needs openssl to make a certificate"))
    func theHubServesHTTPSWhenConfigured() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let (cert, key) = (dir.appendingPathComponent("cert.pem").path, dir.appendingPathComponent("key.pem").path)
        let made = try TestSupport.runExternal("/usr/bin/openssl", [
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
        ])
        #expect(made.status == 0, "\(made.err)")
        let hub = try await HubFixture(config: "[tls]\ncertificate = \"\(cert)\"\nprivate_key = \"\(key)\"\n", caFile: cert, in: dir)
        let store = try hub.enrolledStore()
        _ = try TestSupport.run("aislectl", ["sync", "report", "--day", "2011-12-01", "--store", store.path])
        let now = try TestSupport.run("aislectl", ["sync", "now", "--store", store.path])
        #expect(now.status == 0 && now.out.contains("delivered 1 uploads"), "\(now.out)\(now.err)")
        await #expect(throws: SyncError.self, "plain HTTP to a TLS hub") { try await HubConnection(url: "http://127.0.0.1:\(hub.port)", deadline: .seconds(3)).info() }
        await #expect(throws: SyncError.self, "a certificate the system does not trust") { try await HubConnection(url: hub.url, deadline: .seconds(3)).info() }
        let bad = dir.appendingPathComponent("half.toml")
        try TestSupport.write("[tls]\ncertificate = \"\(cert)\"\n", to: bad)
        let refused = try TestSupport.run("aisle-hub", ["serve", "--config", bad.path])
        #expect(refused.status == 78 && refused.err.contains("tls.private_key"))
        // Files that do not load are configuration errors naming them, before the hub starts.
        let missing = dir.appendingPathComponent("missing.toml"), garbled = dir.appendingPathComponent("garbled.toml")
        try TestSupport.write("[tls]\ncertificate = \"\(dir.path)/nope.pem\"\nprivate_key = \"\(key)\"\n", to: missing)
        try TestSupport.write("not a certificate", to: dir.appendingPathComponent("junk.pem"))
        try TestSupport.write("[tls]\ncertificate = \"\(dir.path)/junk.pem\"\nprivate_key = \"\(key)\"\n", to: garbled)
        for (config, says) in [(missing, "tls.certificate: \(dir.path)/nope.pem: No such file"), (garbled, "not a PEM certificate and key")] {
            let r = try TestSupport.run("aisle-hub", ["serve", "--config", config.path, "--data", dir.appendingPathComponent("tls-data").path])
            #expect(r.status == 78 && r.err.contains(says), "\(r.status) \(r.err)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("tls-data").path))  // nothing started
    }
}

/// The hub's connections: past `listen.max_connections` a new one is closed as it opens, until
/// one of the others goes.
@Suite struct HubConnectionTests {
    /// A connection that sends nothing — TCP to the hub, or to an agent's Unix socket. Its calls
    /// are taken again when a signal interrupts them (the test process's children end all the
    /// time), and its descriptor is closed once, by `deinit` — a second close could end a socket
    /// another test opened since.
    final class IdleConnection {
        let fd: Int32

        init(unixPath path: String) throws {
            fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in
                for (i, byte) in path.utf8.prefix(raw.count - 1).enumerated() { raw[i] = byte }
            }
            var connected: Int32
            repeat {
                connected = withUnsafePointer(to: &address) {
                    $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
                }
            } while connected != 0 && errno == EINTR
            guard fd >= 0, connected == 0 else { throw TestFailure("connect to \(path): errno \(errno)") }
        }

        init(port: Int) throws {
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var address = sockaddr_in()
            address.sin_family = sa_family_t(AF_INET)
            address.sin_port = in_port_t(UInt16(port).bigEndian)
            address.sin_addr.s_addr = inet_addr("127.0.0.1")
            var connected = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            }
            if connected != 0, errno == EINTR {  // the handshake goes on: wait for it
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                var error: Int32 = 0, length = socklen_t(MemoryLayout<Int32>.size)
                while poll(&p, 1, 10_000) < 0 && errno == EINTR {}
                connected = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length) == 0 && error == 0 ? 0 : -1
            }
            guard fd >= 0, connected == 0 else { throw TestFailure("connect to port \(port): errno \(errno)") }
        }

        /// Whether the hub closed it within `seconds` (a read meets the end or an error).
        func closedByHub(within seconds: Double) -> Bool {
            let deadline = Date().addingTimeInterval(seconds)
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while true {
                let ready = poll(&p, 1, Int32(max(0, deadline.timeIntervalSinceNow) * 1000))
                if ready == 1 { break }
                if ready == 0 || errno != EINTR { return false }
            }
            var byte: UInt8 = 0, n = 0
            repeat { n = read(fd, &byte, 1) } while n < 0 && errno == EINTR
            return n <= 0
        }

        deinit { if fd >= 0 { close(fd) } }
    }

    static func answers(_ hub: HubFixture) async -> Bool { (try? await HubConnection(url: hub.url, deadline: .seconds(3)).info()) != nil }

    /// Polls `condition` every 100 ms for up to `seconds`.
    static func eventually(_ seconds: Double, _ condition: () async throws -> Bool) async throws -> Bool {
        for _ in 0..<Int(seconds * 10) {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(100))
        }
        return try await condition()
    }

    @Test func connectionsPastTheCapAreClosed() async throws {
        let hub = try await HubFixture(listen: "max_connections = 3\n")
        var held: [IdleConnection] = []
        // Three held open, a fourth is closed as it opens. One of the three the hub closed (it
        // came while the fixture's own last request was still counted) is opened again.
        #expect(
            try await Self.eventually(20) {
                held = held.filter { !$0.closedByHub(within: 0) }
                while held.count < 3 { held.append(try IdleConnection(port: hub.port)) }
                return await !Self.answers(hub)
            })
        #expect(!held[0].closedByHub(within: 0.2))
        held.removeLast()
        #expect(try await Self.eventually(20) { await Self.answers(hub) })
        var metrics = ""
        let counted = try await Self.eventually(20) {
            metrics = (try? await UnixHTTP.request(.tcp(host: "127.0.0.1", port: hub.port, tls: nil), .GET, "/metrics").text) ?? ""
            return metrics.contains("aisle_hub_connections_refused_total")
        }
        #expect(counted, "\(metrics.prefix(300))")
    }
}

/// The agent's connections: past `[http] max_connections` a kiosk's new one is closed as it
/// opens, so a client that leaks connections cannot take the agent's descriptors.
@Suite struct AgentConnectionTests {
    @Test func connectionsPastTheCapAreClosed() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let store = URL(fileURLWithPath: try ModelsTests.store(events: [], in: dir))
        let socket = dir.appendingPathComponent("a.sock").path
        let agent = try await TestSupport.startAgent(store: store, socket: socket, log: dir.appendingPathComponent("log"), config: "[http]\nmax_connections = 3\n")
        defer { TestSupport.kill9(agent) }
        let health = { (try? await UnixHTTP.request(path: socket, .GET, "/v1/health"))?.status == 200 }
        var held: [HubConnectionTests.IdleConnection] = []
        #expect(
            try await HubConnectionTests.eventually(20) {
                held = held.filter { !$0.closedByHub(within: 0) }
                while held.count < 3 { held.append(try HubConnectionTests.IdleConnection(unixPath: socket)) }
                return await !health()
            })
        #expect(!held[0].closedByHub(within: 0.2))
        held.removeLast()
        #expect(try await HubConnectionTests.eventually(20) { await health() })
        let metrics = try await UnixHTTP.request(path: socket, .GET, "/metrics").text
        #expect(metrics.contains("aisle_connections_refused_total"), "\(metrics.prefix(300))")
    }
}
