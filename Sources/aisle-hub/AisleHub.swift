import AisleConfig
import AisleHub
import AisleServe
import ArgumentParser
import Foundation
import Logging

@main
struct AisleHubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aisle-hub",
        abstract: "The Aisle HQ aggregator.",
        subcommands: [Serve.self])

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve stores over HTTP.",
            discussion: """
                Exit codes: 0 clean stop, 1 failure, 78 configuration error.
                Example: aisle-hub serve --config firmware-config/aisle-hub.toml
                """)
        @Option(help: ArgumentHelp("The TOML configuration.", valueName: "FILE")) var config: String?
        @Option(help: "Override listen.port.") var port: Int?

        func run() async throws {
            var cfg = HubConfig()
            if let config {
                do { cfg = try HubConfig.load(path: config) } catch {
                    FileHandle.standardError.write(Data("aisle-hub: \(error.description)\n".utf8))
                    throw ExitCode(78)
                }
            }
            if let port { cfg.port = port }
            StructuredLogHandler.bootstrap(level: cfg.logLevel, format: cfg.logFormat)
            let logger = Logger(label: "aisle-hub")
            do { try await Hub.run(config: cfg, logger: logger) } catch {
                logger.critical("cannot run", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
        }
    }
}

