import AisleConfig
import AisleCore
import AisleHub
import AisleServe
import AisleSync
import ArgumentParser
import Foundation
import Logging

@main
struct AisleHubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aisle-hub",
        abstract: "The Aisle HQ aggregator.",
        discussion: "Exit codes: 0 success; 1 failure; 4 not found; 64 usage error; 78 configuration error.",
        subcommands: [Serve.self, Stores.self, Rounds.self, Models.self, Import.self])

    struct Serve: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Serve stores over HTTP.",
            discussion: "Example: aisle-hub serve --config firmware-config/aisle-hub.toml")
        @OptionGroup var hub: HubOptions
        @Option(help: "Override listen.port.") var port: Int?

        func run() async throws {
            var cfg = try hub.load()
            if let port { cfg.port = port }
            do { try Hub.checkTLS(cfg, path: hub.configPath ?? "(defaults)") } catch {
                FileHandle.standardError.write(Data("aisle-hub: \(error.description)\n".utf8))
                throw ExitCode(78)
            }
            StructuredLogHandler.bootstrap(level: cfg.logLevel, format: cfg.logFormat)
            let logger = Logger(label: "aisle-hub")
            do { try await Hub.run(config: cfg, logger: logger) } catch {
                logger.critical("cannot run", metadata: ["error": "\(error)"])
                throw ExitCode(1)
            }
        }
    }
}

/// `--config FILE` (default /etc/aisle/aisle-hub.toml when present) and `--data DIR`.
struct HubOptions: ParsableArguments {
    @Option(help: ArgumentHelp("The TOML configuration.", valueName: "FILE")) var config: String?
    @Option(help: ArgumentHelp("The data directory (overrides storage.path).", valueName: "DIR")) var data: String?

    /// The configuration file read: `--config`, else /etc/aisle/aisle-hub.toml when present.
    var configPath: String? { config ?? (FileManager.default.fileExists(atPath: "/etc/aisle/aisle-hub.toml") ? "/etc/aisle/aisle-hub.toml" : nil) }

    func load() throws -> HubConfig {
        var cfg = HubConfig()
        if let path = configPath {
            do { cfg = try HubConfig.load(path: path) } catch {
                FileHandle.standardError.write(Data("aisle-hub: \(error.description)\n".utf8))
                throw ExitCode(78)
            }
        }
        if let data { cfg.dataPath = data }
        return cfg
    }

    /// Opens the hub's database and runs `body` on it, reporting errors with exit codes.
    /// A directory without a hub is refused (4) rather than made a new hub with a new key: a
    /// mistyped path would hand out tokens of a hub that does not serve.
    func admin<T>(_ body: (HubAdmin, HubConfig) throws -> T) throws -> T {
        let cfg = try load()
        do {
            return try body(HubAdmin(database: try HubDatabase.open(path: cfg.dataPath, maxBytes: Int64(cfg.maxDatabaseMB) << 20, create: false)), cfg)
        } catch let e as SyncError {
            FileHandle.standardError.write(Data("aisle-hub: \(e.message)\n".utf8))
            throw e.code == .notFound ? ExitCode(4) : e.code == .badRequest ? .validationFailure : .failure
        } catch let e as ExitCode {
            throw e
        } catch {
            FileHandle.standardError.write(Data("aisle-hub: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

func time(_ t: Int64?) -> String {
    guard let t else { return "-" }
    return ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: TimeInterval(t)))
}
