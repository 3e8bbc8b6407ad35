import NIOCore
import NIOHTTP1
import NIOPosix

/// A response from the agent.
public struct HTTPResult: Sendable {
    public var status: Int
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// The connection closed before a complete response.
public struct ConnectionClosed: Error, CustomStringConvertible {
    public var description: String { "the connection closed before a complete response" }
}

/// HTTP/1.1 over a Unix socket (kiosk tooling, load generation, tests).
public enum UnixHTTP {
    /// Opens one keep-alive connection to the socket at `path`, runs `body` with it, closes it.
    /// Requests on one connection are sequential; open several connections for concurrency.
    public static func withConnection<R: Sendable>(
        path: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        _ body: (inout Session) async throws -> R
    ) async throws -> R {
        let channel = try await ClientBootstrap(group: group).connect(unixDomainSocketPath: path) { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
            }
        }
        return try await channel.executeThenClose { inbound, outbound in
            var session = Session(responses: inbound.makeAsyncIterator(), outbound: outbound)
            return try await body(&session)
        }
    }

    /// One request on a new connection.
    public static func request(path: String, _ method: HTTPMethod, _ uri: String, body: [UInt8]? = nil) async throws -> HTTPResult {
        try await withConnection(path: path) { try await $0.request(method, uri, body: body) }
    }

    /// An open connection.
    public struct Session {
        var responses: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
        let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

        /// Sends one request and waits for its whole response.
        public mutating func request(_ method: HTTPMethod, _ uri: String, body: [UInt8]? = nil) async throws -> HTTPResult {
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: uri)
            head.headers.add(name: "Host", value: "localhost")
            if let body {
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: String(body.count))
            }
            try await outbound.write(.head(head))
            if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try await outbound.write(.end(nil))
            var status = 0
            var received: [UInt8] = []
            while let part = try await responses.next() {
                switch part {
                case .head(let h): status = Int(h.status.code)
                case .body(let b): received.append(contentsOf: b.readableBytesView)
                case .end: return HTTPResult(status: status, body: received)
                }
            }
            throw ConnectionClosed()
        }
    }
}
