import AisleClient
import Foundation
import Synchronization
import Testing

/// Helpers shared by the tests: temporary directories, the built executables, real processes.
enum TestSupport {
    /// The directory holding the built products (beside the test bundle).
    static let productsDirectory: URL = {
        let exe = URL(fileURLWithPath: (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0])
        return exe.deletingLastPathComponent()
    }()

    /// `../shared` beside the repository, if present.
    static let shared: URL? = {
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { dir.deleteLastPathComponent() }
        let shared = dir.deletingLastPathComponent().appendingPathComponent("shared")
        return FileManager.default.fileExists(atPath: shared.path) ? shared : nil
    }()

    /// The repository root.
    static let repository: URL = {
        var dir = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { dir.deleteLastPathComponent() }
        return dir
    }()

    /// A store holding the whole UCI Online Retail data, imported once per test run (about 20 s
    /// in a debug build) and shared read-only by the tests that evaluate on it.
    static let onlineRetailStore: Result<URL, any Error> = Result {
        guard let shared else { throw TestFailure("needs ../shared") }
        let store = try temporaryDirectory().appendingPathComponent("online-retail")
        let data = shared.appendingPathComponent("data/online_retail")
        guard try run("aislectl", ["init", "--store", store.path]).status == 0 else { throw TestFailure("init failed") }
        let r = try run("aislectl", [
            "import", "online-retail", data.appendingPathComponent("lines.csv.gz").path, data.appendingPathComponent("invoices.csv.gz").path,
            "--store", store.path, "--quiet",
        ])
        guard r.status == 0 || r.status == 3 else { throw TestFailure("import failed: \(r.err)") }
        return store
    }

    /// A new empty directory under /tmp (short, so socket paths fit), removed when the test
    /// run exits.
    static func temporaryDirectory() throws -> URL {
        _ = sweepAtExit
        let dir = URL(fileURLWithPath: "/tmp").appendingPathComponent("aisle-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        made.withLock { $0.append(dir) }
        return dir
    }

    private static let made = Mutex<[URL]>([])
    private static let sweepAtExit: Void = { atexit { TestSupport.sweep() } }()

    static func sweep() {
        for dir in made.withLock({ $0 }) { try? FileManager.default.removeItem(at: dir) }
    }

    /// Runs a built executable to completion.
    @discardableResult
    static func run(_ tool: String, _ args: [String], environment: [String: String]? = nil, input: String? = nil) throws -> (status: Int32, out: String, err: String) {
        let p = try launch(tool, args, environment: environment, input: input)
        let out = p.stdout.fileHandleForReading.readDataToEndOfFile()
        let err = p.stderr.fileHandleForReading.readDataToEndOfFile()
        p.process.waitUntilExit()
        return (p.process.terminationStatus, String(decoding: out, as: UTF8.self), String(decoding: err, as: UTF8.self))
    }

    /// Runs any program to completion.
    static func runExternal(_ path: String, _ args: [String]) throws -> (status: Int32, out: String, err: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    struct Launched {
        var process: Process
        var stdout: Pipe
        var stderr: Pipe
    }

    /// Starts a built executable, `input` on its standard input; the caller waits or kills it.
    static func launch(_ tool: String, _ args: [String], environment: [String: String]? = nil, stderrTo file: URL? = nil, input: String? = nil) throws -> Launched {
        let p = Process()
        p.executableURL = productsDirectory.appendingPathComponent(tool)
        p.arguments = args
        if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let out = Pipe(), err = Pipe(), stdin = Pipe()
        if input != nil { p.standardInput = stdin }
        p.standardOutput = out
        if let file {
            _ = FileManager.default.createFile(atPath: file.path, contents: nil)
            p.standardError = try FileHandle(forWritingTo: file)
        } else {
            p.standardError = err
        }
        try p.run()
        if let input {
            try stdin.fileHandleForWriting.write(contentsOf: Data(input.utf8))
            try stdin.fileHandleForWriting.close()
        }
        return Launched(process: p, stdout: out, stderr: err)
    }

    /// Starts `aisled` on a store and waits until its socket answers. Scheduled retraining is off
    /// (`training.every_hours = 0`) unless `training`: agents of parallel tests share stores.
    static func startAgent(store: URL, socket: String, log: URL, training: Bool = false, config extra: String = "") async throws -> Process {
        let config = log.deletingLastPathComponent().appendingPathComponent("aisled-\(UUID().uuidString.prefix(8)).toml")
        try write("[training]\nevery_hours = \(training ? 24 : 0)\n" + extra, to: config)
        let p = try launch("aisled", ["--config", config.path, "--store", store.path, "--socket", socket], stderrTo: log)
        for _ in 0..<200 {
            if (try? await UnixHTTP.request(path: socket, .GET, "/v1/health"))?.status == 200 { return p.process }
            guard p.process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let text = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
        p.process.terminate()
        throw TestFailure("aisled did not come up: \(text)")
    }

    /// Sends SIGKILL and waits for the process to go; nothing when it has gone already (its pid
    /// may be another process's by then), so a `defer` may follow a clean stop.
    static func kill9(_ p: Process) {
        guard p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
    }

    /// Compresses `file` in place to `file.gz`.
    static func gzip(_ file: URL) throws {
        let r = try runExternal("/bin/gzip", [file.path])
        guard r.status == 0 else { throw TestFailure("gzip: \(r.err)") }
    }

    /// Writes text as a file.
    static func write(_ text: String, to url: URL) throws {
        try Data(text.utf8).write(to: url)
    }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
