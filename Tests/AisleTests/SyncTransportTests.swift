import AisleClient
@testable import AisleSync
import AisleIngest
import AisleStore
import Foundation
import Testing

/// What a store makes of answers that do not come from its hub — a proxy's page, a forged
/// refusal, a body that never ends — over a real TCP connection to a server that answers
/// every request with the same bytes.
@Suite struct SyncTransportTests {
    static let hub = SyncIdentity()
    static let store = SyncIdentity()

    /// An envelope of `store` for the hub, as a sync pass sends one.
    static func envelope(seq: UInt64 = 7) throws -> Envelope {
        try Envelope.seal(Data("{}".utf8), header: EnvelopeHeader(store: "s-test", type: .hello, round: 0, seq: seq), from: store, to: hub.publicKeys.agree)
    }

    static func answer(_ status: String, _ body: String, type: String = "application/json", extra: String = "") -> [UInt8] {
        Array("HTTP/1.1 \(status)\r\nContent-Type: \(type)\r\nContent-Length: \(body.utf8.count)\r\n\(extra)\r\n\(body)".utf8)
    }

    @Test func onlyASignedRefusalIsTheHubs() async throws {
        let refusal = #"{"error":{"code":"bad_request","message":"not this content"}}"#
        let envelope = try Self.envelope()
        let signature = Self.hub.sign(ReplySignature.signedBytes(store: envelope.store, seq: envelope.seq, body: Data(refusal.utf8))).base64EncodedString()
        let cases: [([UInt8], SyncError.Code)] = [
            (Self.answer("429 Too Many Requests", "slow down", type: "text/plain"), .unavailable),  // a proxy's page
            (Self.answer("400 Bad Request", refusal), .unavailable),  // the hub's words, unsigned: anyone's
            (Self.answer("400 Bad Request", refusal, extra: "\(ReplySignature.header): \(Data(repeating: 1, count: 64).base64EncodedString())\r\n"), .unavailable),
            (Self.answer("400 Bad Request", refusal, extra: "\(ReplySignature.header): \(signature)\r\n"), .badRequest),
        ]
        for (bytes, code) in cases {
            let server = try CannedHTTPServer(answer: bytes)
            let connection = try HubConnection(url: "http://127.0.0.1:\(server.port)", deadline: .seconds(120))
            await #expect { _ = try await connection.send(envelope, hub: Self.hub.publicKeys) } throws: { ($0 as? SyncError)?.code == code }
        }
    }

    /// Every enroll is seq 0: a reply the hub signed for an earlier enrollment of the store, with
    /// another key, is refused when replayed, and the store stays unenrolled.
    @Test func aReplayedEnrollReplyIsRefused() async throws {
        let dir = try TestSupport.temporaryDirectory().appendingPathComponent("store")
        let store = try StoreSetup.initialise(at: dir, importedSecret: Data(repeating: 7, count: 32))
        let info = Array(String(decoding: SyncJSON.encode(HubInfo(Self.hub.publicKeys)), as: UTF8.self).utf8)
        let old = SyncJSON.encode(EnrollReply(store: "s-test", name: "Leeds", signKey: SyncIdentity().publicKeys.sign))
        let signature = Self.hub.sign(ReplySignature.signedBytes(store: "s-test", seq: 0, body: old)).base64EncodedString()
        let server = try CannedHTTPServer(answers: [
            Self.answer("200 OK", String(decoding: info, as: UTF8.self)),
            Self.answer("200 OK", String(decoding: old, as: UTF8.self), extra: "\(ReplySignature.header): \(signature)\r\n"),
        ])
        let client = SyncClient(store: store, directory: dir)
        await #expect {
            _ = try await client.enroll(hubURL: "http://127.0.0.1:\(server.port)", token: "s-test.secret.\(Self.hub.publicKeys.fingerprint)")
        } throws: { ($0 as? SyncError)?.code == .wrongKey && "\($0)".contains("an old reply replayed") }
        #expect(try await store.database.read { try SyncState.enrollment($0) } == nil)
    }

    /// A body longer than the caller takes is not read into memory to the end: a model's
    /// payload is cut off at its manifest's length (at least ``HubConnection/answerLimit``).
    @Test func anAnswerPastItsLimitIsGivenUp() async throws {
        let server = try CannedHTTPServer(answer: Array("HTTP/1.1 200 OK\r\nContent-Length: 1000000000\r\n\r\n".utf8), thenZeros: true)
        await #expect(throws: UnixHTTP.ResponseTooLarge.self) {
            _ = try await UnixHTTP.request(.tcp(host: "127.0.0.1", port: server.port), .GET, "/v1/models/intent/2", deadline: .seconds(120), limit: 1_000)
        }
    }
}

/// A TCP server on 127.0.0.1 that reads each request and answers it with `answer` (followed,
/// with `thenZeros`, by zeros until the client goes), or the n-th connection with `answers[n]`
/// (the last one from then on), one connection at a time.
struct CannedHTTPServer {
    let port: Int

    init(answer: [UInt8], thenZeros: Bool = false) throws { try self.init(answers: [answer], thenZeros: thenZeros) }

    init(answers: [[UInt8]], thenZeros: Bool = false) throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) == 0 && listen(listener, 8) == 0 && getsockname(listener, $0, &length) == 0 }
        }
        guard listener >= 0, bound else { throw POSIXError(.EADDRNOTAVAIL) }
        port = Int(UInt16(bigEndian: address.sin_port))
        Thread {
            var n = 0
            while true {
                let client = accept(listener, nil, nil)
                if client < 0, errno == EINTR { continue }
                guard client >= 0 else { return }
                defer { n += 1 }
                Self.readRequest(client)
                var sent = Self.send(client, answers[min(n, answers.count - 1)])
                let zeros = [UInt8](repeating: 0, count: 64 << 10)
                while thenZeros, sent { sent = Self.send(client, zeros) }
                // The client closes first: closing here could beat its last write of the request.
                var rest = [UInt8](repeating: 0, count: 4096)
                while true {
                    let r = recv(client, &rest, rest.count, 0)
                    if r < 0, errno == EINTR { continue }
                    if r <= 0 { break }
                }
                close(client)
            }
        }.start()
    }

    /// Reads a request's head and its `Content-Length` bytes of body.
    static func readRequest(_ fd: Int32) {
        var received: [UInt8] = [], buffer = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { return }
            received += buffer.prefix(n)
            let text = String(decoding: received, as: UTF8.self)
            guard let end = text.range(of: "\r\n\r\n") else { continue }
            let head = text[..<end.lowerBound].lowercased()
            let bodyLength = head.split(separator: "\r\n").first { $0.hasPrefix("content-length:") }.flatMap { Int($0.dropFirst(15).trimmingCharacters(in: .whitespaces)) } ?? 0
            if received.count >= text.utf8.distance(from: text.startIndex, to: end.upperBound) + bodyLength { return }
        }
    }

    /// Writes all of `bytes`; false once the client has gone (no SIGPIPE).
    static func send(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Foundation.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n < 0, errno == EINTR { continue }  // a signal (another test's child process ending)
            guard n > 0 else { return false }
            offset += n
        }
        return true
    }
}
