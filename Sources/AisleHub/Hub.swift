import AisleConfig
import AisleCore
import AisleServe
import Foundation
import Hummingbird
import Logging

/// The HQ aggregator's server. For now it owns its data directory and answers health checks;
/// enrollment, rounds and model distribution build on it (docs/ARCHITECTURE.md).
public enum Hub {
    public static func run(config: HubConfig, logger: Logger) async throws {
        try FileManager.default.createDirectory(
            atPath: config.dataPath, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: MetricsMiddleware())
        router.get("/v1/health") { _, _ in
            try HTTPJSON.response(["status": "ok", "role": "hub", "version": AisleVersion.current])
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: Telemetry.exposition())))
        }
        let app = Application(
            router: router,
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: "aisle-hub"),
            onServerRunning: { channel in
                logger.info("listening", metadata: ["address": "\(channel.localAddress.map { "\($0)" } ?? "?")"])
            },
            logger: logger)
        try await app.runService(gracefulShutdownSignals: [.sigterm, .sigint])
        logger.info("stopped")
    }
}
