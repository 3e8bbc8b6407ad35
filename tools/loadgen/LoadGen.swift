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
        subcommands: [Events.self, Get.self])

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
            guard duration > 0, duration <= 600, rate > 0 else { throw ValidationError("need 0 < duration ≤ 600 and rate > 0") }
            let total = Int(rate * duration)
            let start = ContinuousClock.now
            let interval = Duration.seconds(1 / rate)
            let latencies = try await drive(socket: socket, connections: connections, requests: total) { session, n in
                let due = start + interval * n
                if due > ContinuousClock.now { try await Task.sleep(until: due, clock: .continuous) }
                let r = try await session.request(.GET, path)
                guard r.status == 200 else { throw ValidationError("status \(r.status)") }
                return seconds(ContinuousClock.now - due)
            }
            let elapsed = seconds(ContinuousClock.now - start)
            print("get \(path): " + String(format: "%d requests in %.2f s = %.0f req/s (offered %.0f/s, %d connections)", total, elapsed, Double(total) / elapsed, rate, connections))
            print(Percentiles(latencies).line(unit: "latency"))
        }
    }
}

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
                    while case let n = next.take(), n < requests { measured.append(try await send(&session, n)) }
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

