import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A response from the agent.
public struct HTTPResult: Sendable {
    public var status: Int
    public var body: [UInt8]
    /// The response's header fields, in order.
    public var headers: [(name: String, value: String)] = []
    /// The first value of the header `name` (case-insensitive).
    public func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// The connection closed before a complete response.
public struct ConnectionClosed: Error, CustomStringConvertible {
    public var description: String { "the connection closed before a complete response" }
}

/// Where an HTTP server listens.
public enum HTTPTarget: Sendable, Equatable {
    case unix(path: String)
    /// TCP; with `tls`, HTTPS verified against the system's trust roots, or only against the
    /// PEM certificates in `tls.caFile` when it is given.
    case tcp(host: String, port: Int, tls: TLS? = nil)

    public struct TLS: Sendable, Equatable {
        public var caFile: String?
        public init(caFile: String? = nil) { self.caFile = caFile }
    }
}

/// HTTP/1.1 over a Unix socket (kiosk tooling, load generation, tests) or TCP (the hub).
public enum UnixHTTP {
    /// Opens one keep-alive connection to the socket at `path`, runs `body` with it, closes it.
    /// Requests on one connection are sequential; open several connections for concurrency.
    public static func withConnection<R: Sendable>(
        path: String, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        _ body: (inout Session) async throws -> R
    ) async throws -> R {
        try await withConnection(to: .unix(path: path), group: group, body)
    }

    /// Opens one keep-alive connection to `target`; with a `deadline`, the connection is closed
    /// when it passes, so a request that has not finished by then fails with ``ConnectionClosed``.
    public static func withConnection<R: Sendable>(
        to target: HTTPTarget, deadline: Duration? = nil, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        _ body: (inout Session) async throws -> R
    ) async throws -> R {
        let bootstrap = ClientBootstrap(group: group).connectTimeout(.seconds(5))
        var tlsContext: NIOSSLContext?
        var serverName: String?
        if case .tcp(let host, _, let tls?) = target {
            var configuration = TLSConfiguration.makeClientConfiguration()
            if let caFile = tls.caFile { configuration.trustRoots = .file(caFile) }
            tlsContext = try NIOSSLContext(configuration: configuration)
            serverName = host.allSatisfy({ $0.isNumber || $0 == "." || $0 == ":" }) ? nil : host
        }
        let setUp: @Sendable (any Channel) -> EventLoopFuture<NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>> = { [tlsContext, serverName] channel in
            channel.eventLoop.makeCompletedFuture {
                if let tlsContext {
                    try channel.pipeline.syncOperations.addHandler(try NIOSSLClientHandler(context: tlsContext, serverHostname: serverName))
                }
                try channel.pipeline.syncOperations.addHTTPClientHandlers()
                return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
            }
        }
        let channel =
            switch target {
            case .unix(let path): try await bootstrap.connect(unixDomainSocketPath: path, channelInitializer: setUp)
            case .tcp(let host, let port, _): try await bootstrap.connect(host: host, port: port, channelInitializer: setUp)
            }
        let timer = deadline.map { d in
            channel.channel.eventLoop.scheduleTask(in: .nanoseconds(Int64(d.components.seconds) * 1_000_000_000 + d.components.attoseconds / 1_000_000_000)) {
                channel.channel.close(promise: nil)
            }
        }
        defer { timer?.cancel() }
        return try await channel.executeThenClose { inbound, outbound in
            var session = Session(responses: inbound.makeAsyncIterator(), outbound: outbound)
            return try await body(&session)
        }
    }

    /// One request on a new connection.
    public static func request(path: String, _ method: HTTPMethod, _ uri: String, body: [UInt8]? = nil) async throws -> HTTPResult {
        try await withConnection(path: path) { try await $0.request(method, uri, body: body) }
    }

    /// One request on a new connection to `target`, failing if it takes longer than `deadline`
    /// or its response's body grows past `limit` bytes (``ResponseTooLarge``).
    public static func request(
        _ target: HTTPTarget, _ method: HTTPMethod, _ uri: String, body: [UInt8]? = nil, deadline: Duration = .seconds(30), limit: Int = .max
    ) async throws -> HTTPResult {
        try await withConnection(to: target, deadline: deadline) { try await $0.request(method, uri, body: body, limit: limit) }
    }

    /// A response body longer than the caller would take; the connection is given up.
    public struct ResponseTooLarge: Error, CustomStringConvertible {
        public let limit: Int
        public var description: String { "the response's body is over \(limit) bytes" }
    }

    /// An open connection.
    public struct Session {
        var responses: NIOAsyncChannelInboundStream<HTTPClientResponsePart>.AsyncIterator
        let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

        /// Sends one request and waits for its whole response (its body at most `limit` bytes).
        public mutating func request(_ method: HTTPMethod, _ uri: String, body: [UInt8]? = nil, limit: Int = .max) async throws -> HTTPResult {
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
            var headers: [(name: String, value: String)] = []
            while let part = try await responses.next() {
                switch part {
                case .head(let h): (status, headers) = (Int(h.status.code), h.headers.map { ($0.name, $0.value) })
                case .body(let b):
                    guard b.readableBytes <= limit - received.count else { throw ResponseTooLarge(limit: limit) }
                    received.append(contentsOf: b.readableBytesView)
                case .end: return HTTPResult(status: status, body: received, headers: headers)
                }
            }
            throw ConnectionClosed()
        }
    }
}
