import ArgumentParser
import Foundation
import Synchronization

/// One keep-alive HTTP/1.1 connection to a Unix socket with blocking reads and writes, used by
/// one thread: the load generator's client. A request is one `send` and usually one `read`, so
/// the generator takes little of the CPU it shares with the agent it measures (an event loop
/// with async hand-offs took ~180 µs of CPU a request at 2,000/s; docs/BENCHMARKS.md).
final class SocketHTTP {
    struct Response {
        var status: Int
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }

        /// Itself if the status is 200; the load generator stops at any other.
        func ok() throws -> Response {
            guard status == 200 else { throw Failure(description: "status \(status): \(text.prefix(200))") }
            return self
        }
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    private let fd: Int32
    /// Bytes received and not yet consumed (the next response's, on a keep-alive connection).
    private var received: [UInt8] = []
    private var chunk = [UInt8](repeating: 0, count: 65_536)

    init(path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw Failure(description: "\(path): socket path too long")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard connected == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw Failure(description: "\(path): cannot connect: \(reason)")
        }
    }

    deinit { close(fd) }

    /// Sends one request and reads its whole response (`Content-Length` or chunked).
    func request(_ method: String, _ path: String, body: [UInt8]? = nil) throws -> Response {
        var message = "\(method) \(path) HTTP/1.1\r\nHost: localhost\r\n"
        if let body { message += "Content-Type: application/json\r\nContent-Length: \(body.count)\r\n" }
        try send(Array((message + "\r\n").utf8) + (body ?? []))
        let headEnd = try readUntil { self.find([13, 10, 13, 10]) }
        let head = String(decoding: received[..<headEnd], as: UTF8.self).lowercased().split(separator: "\r\n")
        guard let statusLine = head.first, statusLine.hasPrefix("http/1.1 "), let status = Int(statusLine.dropFirst(9).prefix(3)) else {
            throw Failure(description: "not an HTTP/1.1 response: \(head.first ?? "")")
        }
        let fields = head.dropFirst().map { line -> (String, String) in
            let parts = line.split(separator: ":", maxSplits: 1)
            return (String(parts[0]), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
        }
        received.removeFirst(headEnd + 4)
        if fields.contains(where: { $0 == ("transfer-encoding", "chunked") }) { return Response(status: status, body: try chunkedBody()) }
        let length = fields.first { $0.0 == "content-length" }.flatMap { Int($0.1) } ?? 0
        try readUntil { self.received.count >= length ? length : nil }
        let body = Array(received[..<length])
        received.removeFirst(length)
        return Response(status: status, body: body)
    }

    private func chunkedBody() throws -> [UInt8] {
        var body: [UInt8] = []
        while true {
            let lineEnd = try readUntil { self.find([13, 10]) }
            let sizeText = String(decoding: received[..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
            guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { throw Failure(description: "bad chunk size \(sizeText)") }
            received.removeFirst(lineEnd + 2)
            if size == 0 {
                // Trailer fields, if any, end with an empty line.
                while true {
                    let end = try readUntil { self.find([13, 10]) }
                    received.removeFirst(end + 2)
                    if end == 0 { return body }
                }
            }
            try readUntil { self.received.count >= size + 2 ? size : nil }
            body += received[..<size]
            received.removeFirst(size + 2)
        }
    }

    private func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            // MSG_NOSIGNAL: an agent that closed the connection is an error here, not SIGPIPE's silent exit.
            let n = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: "send: \(String(cString: strerror(errno)))") }
            sent += n
        }
    }

    /// Reads until `done` finds what it looks for in `received`; returns what it found.
    @discardableResult
    private func readUntil(_ done: () -> Int?) throws -> Int {
        while true {
            if let found = done() { return found }
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw Failure(description: n == 0 ? "the agent closed the connection" : "read: \(String(cString: strerror(errno)))") }
            received += chunk[..<n]
        }
    }

    /// Where `pattern` first occurs in `received`.
    private func find(_ pattern: [UInt8]) -> Int? {
        guard received.count >= pattern.count else { return nil }
        return (0...(received.count - pattern.count)).first { i in pattern.indices.allSatisfy { received[i + $0] == pattern[$0] } }
    }
}

/// Monotonic time in nanoseconds, and sleeping until such a time.
enum Clock {
    static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    static func sleep(until deadline: UInt64) {
        var t = timespec(tv_sec: Int(deadline / 1_000_000_000), tv_nsec: Int(deadline % 1_000_000_000))
        while clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, nil) == EINTR {}
    }
}

/// Runs requests 0..<requests over `connections` keep-alive connections, a thread each, each
/// taking the next request number as it is free; returns what `send` measured for each. The
/// first error stops every connection and is thrown; `send` returning nil ends its connection.
func drive(socket: String, connections: Int, requests: Int, _ send: @escaping @Sendable (SocketHTTP, Int) throws -> Double?) throws -> [Double] {
    guard connections >= 1 else { throw ValidationError("--connections: need at least 1") }
    let next = Atomic<Int>(0)
    let results = Mutex<(measured: [Double], error: (any Error)?)>(([], nil))
    let done = DispatchGroup()
    for _ in 0..<connections {
        done.enter()
        Thread.detachNewThread {
            defer { done.leave() }
            var measured: [Double] = []
            do {
                let connection = try SocketHTTP(path: socket)
                while results.withLock({ $0.error == nil }) {
                    let n = next.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard n < requests, let m = try send(connection, n) else { break }
                    measured.append(m)
                }
            } catch {
                results.withLock { if $0.error == nil { $0.error = error } }
            }
            results.withLock { $0.measured += measured }
        }
    }
    done.wait()
    let (measured, error) = results.withLock { ($0.measured, $0.error) }
    if let error { throw error }
    return measured
}
