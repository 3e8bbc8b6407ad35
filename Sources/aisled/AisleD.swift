import AisleConfig
import AisleServe
import ArgumentParser
import Foundation
import Logging

/// The store agent.
@main
struct AisleD: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aisled",
        abstract: "The Aisle store agent: serves kiosks and tills over a Unix socket.",
        discussion: """
            Reads its configuration from --config (default /etc/aisle/aisled.toml when present; \
            built-in defaults otherwise). SIGTERM or SIGINT stops it cleanly. Exit codes: 0 clean \
            stop, 1 failure, 78 configuration error.

            Example: aisled --config firmware-config/aisled.toml --store demo-data/store --socket demo-data/aisled.sock
            """)

    @Option(help: ArgumentHelp("The TOML configuration.", valueName: "FILE")) var config: String?
    @Option(help: ArgumentHelp("Override store.path.", valueName: "DIR")) var store: String?
    @Option(help: ArgumentHelp("Override socket.path.", valueName: "PATH")) var socket: String?

    func run() async throws {
        // A reload asked for while starting (systemd allows one at once) must not end the agent:
        // what it would load is loaded at start anyway. `Agent` handles later ones.
        signal(SIGHUP, SIG_IGN)
        var cfg = AgentConfig()
        let path = config ?? (FileManager.default.fileExists(atPath: "/etc/aisle/aisled.toml") ? "/etc/aisle/aisled.toml" : nil)
        if let path {
            do { cfg = try AgentConfig.load(path: path) } catch {
                FileHandle.standardError.write(Data("aisled: \(error.description)\n".utf8))
                throw ExitCode(78)
            }
        }
        if let store { cfg.storePath = store }
        if let socket { cfg.socketPath = socket }
        let overridden = cfg.pathIssues(store: store == nil ? "store.path" : "--store", socket: socket == nil ? "socket.path" : "--socket")
        guard overridden.isEmpty else {
            FileHandle.standardError.write(Data("aisled: \(ConfigError(path: "(command line)", issues: overridden).description)\n".utf8))
            throw ExitCode(78)
        }
        StructuredLogHandler.bootstrap(level: cfg.logLevel, format: cfg.logFormat)
        let logger = Logger(label: "aisled")
        do {
            try await Agent.run(config: cfg, logger: logger)
        } catch {
            logger.critical("cannot run", metadata: ["error": "\(error)"])
            throw ExitCode(1)
        }
    }
}

