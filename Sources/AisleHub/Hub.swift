import AisleConfig
import AisleCore
import AisleServe
import AisleSync
import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import NIOSSL
import Logging
import Metrics

/// The HQ aggregator's server: the sync protocol over HTTP (sync/PROTOCOL.md), health and
/// Prometheus metrics. Each request is a transaction over ``HubDatabase``; nothing is cached.
public enum Hub {
    /// Largest message body (an upload part is at most 192 KiB before sealing and base64).
    public static let maxBodyBytes = 1 << 20

    public static func run(config: HubConfig, logger: Logger) async throws {
        let database = try HubDatabase.open(path: config.dataPath, maxBytes: Int64(config.maxDatabaseMB) << 20)
        _ = Telemetry.registry
        let service = HubService(database: database)
        let admin = HubAdmin(database: database)
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: MetricsMiddleware())
        router.get("/v1/health") { _, _ in
            try HTTPJSON.response(["status": "ok", "role": "hub", "version": AisleVersion.current])
        }
        router.get("/v1/hub") { _, _ in
            Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: SyncJSON.encode(HubInfo(database.identity.publicKeys)))))
        }
        router.post("/v1/messages") { request, _ -> Response in
            let body: ByteBuffer
            do { body = try await request.body.collect(upTo: maxBodyBytes) } catch {
                return reply(SyncError(.tooLarge, "the body is over \(maxBodyBytes) bytes"), logger)
            }
            let reply = await Blocking.run { service.reply(to: Data(buffer: body)) }
            if let refusal = reply.refusal {
                count(refusal, logger)
            } else {
                Counter(label: "aisle_hub_messages_total", dimensions: [("outcome", "accepted")]).increment()
            }
            return signed(reply.refusal.map { .init(code: $0.code.httpStatus) } ?? .ok, reply.body, reply.signature)
        }
        router.get("/v1/models") { _, _ -> Response in
            struct Models: Encodable { var models: [SignedManifest] }
            let models = try await Blocking.run { try database.pool.read { try HubQueries.latestManifests($0) } }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: SyncJSON.encode(Models(models: models)))))
        }
        router.get("/v1/models/{kind}/{version}") { _, context -> Response in
            guard let kind = context.parameters.get("kind"), let version = context.parameters.get("version", as: Int.self),
                let payload = try await Blocking.run({ try admin.payload(kind: kind, version: version) })
            else { return reply(SyncError(.notFound, "no such model version"), logger) }
            return Response(status: .ok, headers: [.contentType: "application/octet-stream"], body: .init(byteBuffer: ByteBuffer(bytes: payload)))
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: Telemetry.exposition())))
        }
        let app = Application(
            router: router, server: try server(config),
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "aisle-hub"),
            onServerRunning: { channel in
                logger.info(
                    "listening",
                    metadata: [
                        "address": "\(channel.localAddress.map { "\($0)" } ?? "?")", "data": "\(config.dataPath)",
                        "fingerprint": "\(database.identity.publicKeys.fingerprint)",
                    ])
            },
            logger: logger)
        // Rounds whose step has waited long enough move on without waiting for a message; what
        // has outlived its keeping goes (HubDatabase.prune). A round that cannot be moved is
        // logged and stops neither the others nor the pruning.
        let clock = Task {
            while !Task.isCancelled {
                do {
                    try await Blocking.run {
                        let now = Int64(Date().timeIntervalSince1970)
                        for (round, error) in try HubRounds.advanceAll(database, now: now) {
                            logger.error("round not advanced", metadata: ["round": "\(round)", "error": "\(error)"])
                        }
                        try database.write { try HubDatabase.prune($0, now: now) }
                    }
                } catch {
                    logger.error("rounds not advanced or pruned", metadata: ["error": "\(error)"])
                }
                try? await Task.sleep(for: .seconds(1))
            }
        }
        defer { clock.cancel() }
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        logger.info("stopped")
    }

    /// Loads the TLS certificate and key the configuration names, or says which file fails and
    /// why — before anything else starts, so that a bad file is a configuration error (exit 78,
    /// which systemd does not restart on), not NIOSSL's bare error after the database opened.
    public static func checkTLS(_ config: HubConfig, path: String) throws(ConfigError) {
        guard !config.tlsCertificate.isEmpty else { return }
        for (key, file) in [("tls.certificate", config.tlsCertificate), ("tls.private_key", config.tlsPrivateKey)] where access(file, R_OK) != 0 {
            throw ConfigError(path: path, issues: [ConfigIssue(key: key, reason: "\(file): \(String(cString: strerror(errno)))")])
        }
        do { _ = try server(config) } catch {
            throw ConfigError(path: path, issues: [ConfigIssue(key: "tls", reason: "\(config.tlsCertificate), \(config.tlsPrivateKey): not a PEM certificate and key (\(error))")])
        }
    }

    /// HTTP/1.1, over TLS when the configuration names a certificate and key; at most
    /// `listen.max_connections` open at once. (No idle timeout: Hummingbird's closed connections
    /// of the test suite's hubs under load; see docs/OPERATIONS.md.)
    static func server(_ config: HubConfig) throws -> HTTPServerBuilder {
        let limit = ConnectionLimit(limit: config.maxConnections, refused: "aisle_hub_connections_refused_total")
        let http = HTTPServerBuilder.http1(configuration: .init(additionalChannelHandlers: [limit.handler()]))
        guard !config.tlsCertificate.isEmpty else { return http }
        let chain = try NIOSSLCertificate.fromPEMFile(config.tlsCertificate).map { .certificate($0) } as [NIOSSLCertificateSource]
        let key = try NIOSSLPrivateKey(file: config.tlsPrivateKey, format: .pem)
        return try .tls(http, tlsConfiguration: .makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key)))
    }

    /// A refusal: its HTTP status and `{"error": {"code", "message"}}`, counted and logged.
    static func reply(_ error: SyncError, _ logger: Logger) -> Response {
        count(error, logger)
        return HTTPJSON.error(.init(code: error.code.httpStatus), error.code.rawValue, error.message)
    }

    static func count(_ error: SyncError, _ logger: Logger) {
        Counter(label: "aisle_hub_messages_total", dimensions: [("outcome", error.code.rawValue)]).increment()
        logger.notice("refused", metadata: ["code": "\(error.code.rawValue)", "message": "\(error.message)"])
    }

    /// A JSON answer to a message with the hub's signature over it (``ReplySignature``), if any.
    static func signed(_ status: HTTPResponse.Status, _ body: Data, _ signature: String?) -> Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let signature, let name = HTTPFields.Element.Name(ReplySignature.header) { headers[name] = signature }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
