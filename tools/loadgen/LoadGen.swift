import ArgumentParser
import Foundation

/// Load generator for the agent's Unix socket. Bounded in count and time; it stops by itself.
@main
struct LoadGen: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aisle-loadgen",
        abstract: "Drive an aisled socket with load and report throughput and latency percentiles.",
        subcommands: [Events.self, Get.self, Post.self])

    /// `POST /v1/events` as fast as the agent answers, with `connections` clients.
    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Post synthetic event batches as fast as the agent takes them (closed loop).",
            discussion: "Example: aisle-loadgen events --socket demo-data/aisled.sock --batch 1000 --batches 100")
        @Option(help: "The agent's socket.") var socket: String
        @Option(help: "Events per request.") var batch = 1000
        @Option(help: "Requests in all.") var batches = 100
        @Option(help: "Concurrent connections.") var connections = 2
        @Option(help: "Prefix of event ids (use a new one per run to avoid duplicates).") var runID = String(Int(Date().timeIntervalSince1970))

        func validate() throws {
            guard batch >= 1, batches >= 1 else { throw ValidationError("--batch and --batches: need at least 1") }
        }

        func run() throws {
            let bodies = (0..<batches).map { Array(payload(batch: $0).utf8) }  // built before the clock starts
            let start = Clock.now()
            let latencies = try drive(socket: socket, connections: connections, requests: batches) { connection, n in
                let t0 = Clock.now()
                _ = try connection.request("POST", "/v1/events", body: bodies[n]).ok()
                return seconds(Clock.now() - t0)
            }
            let elapsed = seconds(Clock.now() - start)
            let events = latencies.count * batch  // the requests answered, not those asked for
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
    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "GET a path at a fixed offered rate and report latency percentiles (open loop).",
            discussion: "Example: aisle-loadgen get --socket demo-data/aisled.sock --path /v1/health --rate 2000 --duration 10")
        @Option(help: "The agent's socket.") var socket: String
        @Option(help: "The path to request.") var path = "/v1/health"
        @Option(help: "Requests per second offered.") var rate = 1000.0
        @Option(help: "Seconds to run (at most 600).") var duration = 10.0
        @Option(help: "Concurrent connections.") var connections = 8

        func run() throws {
            try openLoop(socket: socket, connections: connections, rate: rate, duration: duration, label: "get \(path)") { connection, _ in
                try connection.request("GET", path)
            }
        }
    }

    /// POST bodies from a file (JSON, one per line, used in turn) at a fixed offered rate, or as
    /// fast as the agent answers with `--rate 0` (its saturation throughput).
    struct Post: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "POST JSON bodies at a fixed offered rate (open loop) or flat out (--rate 0), and report latency percentiles.",
            discussion: "Example: aisle-loadgen post --socket demo-data/aisled.sock --path /v1/recommendations --bodies requests.jsonl --rate 2000 --duration 60")
        @Option(help: "The agent's socket.") var socket: String
        @Option(help: "The path to post to.") var path: String
        @Option(help: ArgumentHelp("JSON bodies, one per line.", valueName: "FILE")) var bodies: String
        @Option(help: "Requests per second offered; 0: as fast as answered.") var rate = 1000.0
        @Option(help: "Seconds to run (at most 600).") var duration = 10.0
        @Option(help: "Concurrent connections.") var connections = 8

        func run() throws {
            guard let text = try? String(contentsOfFile: bodies, encoding: .utf8) else { throw ValidationError("cannot read \(bodies)") }
            let payloads = text.split(separator: "\n").map { Array($0.utf8) }
            guard !payloads.isEmpty else { throw ValidationError("\(bodies) has no bodies") }
            try openLoop(socket: socket, connections: connections, rate: rate, duration: duration, label: "post \(path)") { connection, n in
                try connection.request("POST", path, body: payloads[n % payloads.count])
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
    _ send: @escaping @Sendable (SocketHTTP, Int) throws -> SocketHTTP.Response
) throws {
    guard duration > 0, duration <= 600, rate >= 0 else { throw ValidationError("need 0 < duration ≤ 600 and rate ≥ 0") }
    let flatOut = rate == 0
    let total = flatOut ? Int.max : Int(rate * duration)
    let start = Clock.now()
    let stop = start + UInt64(duration * 1e9)
    let interval = flatOut ? 0 : 1e9 / rate
    let latencies = try drive(socket: socket, connections: connections, requests: total) { connection, n in
        let due = flatOut ? Clock.now() : start + UInt64(Double(n) * interval)
        if flatOut, due >= stop { return nil }
        if due > Clock.now() { Clock.sleep(until: due) }
        _ = try send(connection, n).ok()
        return seconds(Clock.now() - due)
    }
    let elapsed = seconds(Clock.now() - start)
    let offered = flatOut ? "flat out" : String(format: "offered %.0f/s", rate)
    print("\(label): " + String(format: "%d requests in %.2f s = %.0f req/s (%@, %d connections)", latencies.count, elapsed, Double(latencies.count) / elapsed, offered, connections))
    print(Percentiles(latencies).line(unit: "latency"))
}

func seconds(_ nanoseconds: UInt64) -> Double { Double(nanoseconds) / 1e9 }

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

