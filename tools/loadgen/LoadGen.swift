import AisleClient
import ArgumentParser
import Foundation
import Synchronization

/// Load generator for the agent's Unix socket. Bounded in count and time; it stops by itself.
@main
struct LoadGen: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aisle-loadgen",
        abstract: "Drive an aisled socket with load and report throughput and latency percentiles.",
        subcommands: [Events.self, Get.self, Post.self])

    /// `POST /v1/events` as fast as the agent answers, with `connections` clients.
    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Post synthetic event batches as fast as the agent takes them (closed loop).",
            discussion: "Example: aisle-loadgen events --socket demo-data/aisled.sock --batch 1000 --batches 100")
        @Option(help: "The agent's socket.") var socket: String
        @Option(help: "Events per request.") var batch = 1000
        @Option(help: "Requests in all.") var batches = 100
        @Option(help: "Concurrent connections.") var connections = 2
        @Option(help: "Prefix of event ids (use a new one per run to avoid duplicates).") var runID = String(Int(Date().timeIntervalSince1970))

        func run() async throws {
            let bodies = (0..<batches).map { Array(payload(batch: $0).utf8) }  // built before the clock starts
            let start = ContinuousClock.now
            let latencies = try await drive(socket: socket, connections: connections, requests: batches) { session, n in
                let t0 = ContinuousClock.now
                let r = try await session.request(.POST, "/v1/events", body: bodies[n])
                guard r.status == 200 else { throw ValidationError("status \(r.status): \(r.text.prefix(200))") }
                return seconds(ContinuousClock.now - t0)
            }
            let elapsed = seconds(ContinuousClock.now - start)
            let events = batches * batch
            print(String(format: "events: %d in %.2f s = %.0f events/s (batch %d, %d connections)", events, elapsed, Double(events) / elapsed, batch, connections))
            print(Percentiles(latencies).line(unit: "request latency"))
        }

        func payload(batch n: Int) -> String {
            var s = "["
            for k in 0..<batch {
                if k > 0 { s += "," }
                let i = n * batch + k
                s += #"{"id":"lg-\#(runID)-\#(i)","ts":\#(1_700_000_000 + i / 100),"type":"purchase","customer":"lg-cust-\#(i % 5000)","receipt":"lg-\#(runID)-r\#(i / 4)","item":"SKU\#(i % 3000)","qty":\#(1 + i % 5),"price":\#(Double(i % 1000) / 10 + 0.5),"source":"pos","store":"bench"}"#
            }
            return s + "]"
        }
    }

    /// GET at a fixed offered rate (open loop): latency counts from when each request was due,
    /// so a stalled server shows in the tail instead of slowing the load down.
    struct Get: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "GET a path at a fixed offered rate and report latency percentiles (open loop).",
            discussion: "Example: aisle-loadgen get --socket demo-data/aisled.sock --path /v1/health --rate 2000 --duration 10")
        @Option(help: "The agent's socket.") var socket: String
        @Option(help: "The path to request.") var path = "/v1/health"
        @Option(help: "Requests per second offered.") var rate = 1000.0
        @Option(help: "Seconds to run (at most 600).") var duration = 10.0
        @Option(help: "Concurrent connections.") var connections = 8

        func run() async throws {
            try await openLoop(socket: socket, connections: connections, rate: rate, duration: duration, label: "get \(path)") { session, _ in
                try await session.request(.GET, path)
            }
        }
    }

    /// POST bodies from a file (JSON, one per line, used in turn) at a fixed offered rate, or as
    /// fast as the agent answers with `--rate 0` (its saturation throughput).
    struct Post: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "POST JSON bodies at a fixed offered rate (open loop) or flat out (--rate 0), and report latency percentiles.",
            discussion: "Example: aisle-loadgen post --socket demo-data/aisled.sock --path /v1/recommendations --bodies requests.jsonl --rate 2000 --duration 60")
        @Option(help: "The agent's socket.") var socket: String
        @Option(help: "The path to post to.") var path: String
        @Option(help: ArgumentHelp("JSON bodies, one per line.", valueName: "FILE")) var bodies: String
        @Option(help: "Requests per second offered; 0: as fast as answered.") var rate = 1000.0
        @Option(help: "Seconds to run (at most 600).") var duration = 10.0
        @Option(help: "Concurrent connections.") var connections = 8

        func run() async throws {
            guard let text = try? String(contentsOfFile: bodies, encoding: .utf8) else { throw ValidationError("cannot read \(bodies)") }
            let payloads = text.split(separator: "\n").map { Array($0.utf8) }
            guard !payloads.isEmpty else { throw ValidationError("\(bodies) has no bodies") }
            try await openLoop(socket: socket, connections: connections, rate: rate, duration: duration, label: "post \(path)") { session, n in
                try await session.request(.POST, path, body: payloads[n % payloads.count])
            }
        }
    }
}

/// Sends `rate × duration` requests, each due at its place in a fixed schedule (latency counts
/// from when it was due, so a stalled server shows in the tail instead of slowing the load
/// down); with rate 0, as fast as answered for `duration` seconds. Prints throughput and
/// latency percentiles; any status but 200 stops the run.
func openLoop(
    socket: String, connections: Int, rate: Double, duration: Double, label: String,
    _ send: @escaping @Sendable (inout UnixHTTP.Session, Int) async throws -> HTTPResult
) async throws {
    guard duration > 0, duration <= 600, rate >= 0 else { throw ValidationError("need 0 < duration ≤ 600 and rate ≥ 0") }
    let flatOut = rate == 0
    let total = flatOut ? Int.max : Int(rate * duration)
    let start = ContinuousClock.now
    let stop = start + .seconds(duration)
    let interval = Duration.seconds(flatOut ? 0 : 1 / rate)
    let latencies = try await drive(socket: socket, connections: connections, requests: total) { session, n in
        let due = flatOut ? ContinuousClock.now : start + interval * n
        if flatOut, due >= stop { throw Finished() }
        if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) }
        let r = try await send(&session, n)
        guard r.status == 200 else { throw ValidationError("status \(r.status): \(r.text.prefix(200))") }
        return seconds(ContinuousClock.now - due)
    }
    let elapsed = seconds(ContinuousClock.now - start)
    let offered = flatOut ? "flat out" : String(format: "offered %.0f/s", rate)
    print("\(label): " + String(format: "%d requests in %.2f s = %.0f req/s (%@, %d connections)", latencies.count, elapsed, Double(latencies.count) / elapsed, offered, connections))
    print(Percentiles(latencies).line(unit: "latency"))
}

/// Ends a connection's loop when a flat-out run's time is up.
struct Finished: Error {}

/// Sends requests 0..<requests over `connections` keep-alive connections, each taking the next
/// request number as it is free; returns what `send` measured for each request.
func drive(
    socket: String, connections: Int, requests: Int,
    _ send: @escaping @Sendable (inout UnixHTTP.Session, Int) async throws -> Double
) async throws -> [Double] {
    let next = Counter()
    return try await withThrowingTaskGroup(of: [Double].self) { group in
        for _ in 0..<connections {
            group.addTask {
                try await UnixHTTP.withConnection(path: socket) { session in
                    var measured: [Double] = []
                    do {
                        while case let n = next.take(), n < requests { measured.append(try await send(&session, n)) }
                    } catch is Finished {}
                    return measured
                }
            }
        }
        return try await group.reduce(into: []) { $0 += $1 }
    }
}

/// A shared ticket counter.
final class Counter: Sendable {
    private let value = Atomic<Int>(0)
    func take() -> Int { value.wrappingAdd(1, ordering: .relaxed).oldValue }
}

func seconds(_ d: Duration) -> Double {
    Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Latency percentiles of a run.
struct Percentiles {
    let sorted: [Double]
    init(_ xs: [Double]) { sorted = xs.sorted() }
    func at(_ p: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let rank = Int((p / 100 * Double(sorted.count)).rounded(.up))
        return sorted[max(0, min(sorted.count, rank) - 1)]
    }
    func line(unit: String) -> String {
        let ms = { (s: Double) in String(format: "%.3f", s * 1000) }
        return "\(unit) ms: p50 \(ms(at(50))) p90 \(ms(at(90))) p99 \(ms(at(99))) p99.9 \(ms(at(99.9))) max \(ms(sorted.last ?? .nan))"
    }
}

