import AisleConfig
import AisleCore
import AisleStore
import AisleSync
import ArgumentParser
import Foundation

@main
struct AisleCtl: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aislectl",
        abstract: "Administer an Aisle store: set it up, import data, inspect it.",
        discussion: """
            Every command that touches a store takes --store DIR; without it the store comes from \
            $AISLE_STORE, then from store.path in --config (default /etc/aisle/aisled.toml).

            Exit codes: 0 success; 1 failure; 3 an import (or embed) finished but some lines were \
            rejected; 4 not found; 64 usage error; 65 the store failed its check (integrity, or a \
            file open to others), or a model version that cannot be read was refused; 69 the hub \
            is out of reach or full (nothing is lost); 78 configuration error.
            """,
        subcommands: [
            InitCommand.self, StatusCommand.self, ImportCommand.self, CustomerCommand.self,
            TopItemsCommand.self, ConfigCommand.self, CheckCommand.self, ModelCommand.self, EmbedCommand.self, RulesCommand.self, BTYDCommand.self, TrainCommand.self, EvalCommand.self, SegmentsCommand.self, PatternsCommand.self, SentimentCommand.self, ReportCommand.self, ExperimentsCommand.self, SyncCommand.self, PrivacyCommand.self,
        ])

    /// What aislectl writes (reports, exported models, embeddings, envelopes) is for the agent's
    /// user and group, never others — whatever umask sudo or a login shell gave it.
    static func main() async {
        umask(umask(0) | 0o027)
        await main(nil)
    }
}

/// Where the store is.
struct StoreOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("The store directory.", valueName: "DIR"))
    var store: String?

    @Option(name: .long, help: ArgumentHelp("Agent configuration to take store.path from.", valueName: "FILE"))
    var config: String?

    /// Opens the store for reading.
    func openForReading() throws -> Store { try Store.open(at: try directory(), readOnly: true) }

    func directory() throws -> URL {
        if let store { return URL(fileURLWithPath: store) }
        if let env = ProcessInfo.processInfo.environment["AISLE_STORE"], !env.isEmpty { return URL(fileURLWithPath: env) }
        guard let agent = try agentConfig() else {
            throw CLIError.usage("no store given: pass --store DIR, set AISLE_STORE, or install /etc/aisle/aisled.toml")
        }
        return URL(fileURLWithPath: agent.storePath)
    }

    /// The agent's configuration of this store: --config, or /etc/aisle/aisled.toml when the
    /// store comes from it (neither --store nor AISLE_STORE); nil otherwise.
    func agentConfig() throws -> AgentConfig? {
        let fromDefault = store == nil && (ProcessInfo.processInfo.environment["AISLE_STORE"] ?? "").isEmpty
        let path = config ?? "/etc/aisle/aisled.toml"
        guard config != nil || (fromDefault && FileManager.default.fileExists(atPath: path)) else { return nil }
        do {
            return try AgentConfig.load(path: path)
        } catch {
            throw CLIError("\(error)", code: 78)
        }
    }
}

/// Whether to print JSON.
struct OutputOptions: ParsableArguments {
    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false
}

/// An error with a message for the operator and an exit code for scripts.
struct CLIError: Error, CustomStringConvertible {
    var description: String
    var code: Int32
    init(_ message: String, code: Int32 = 1) {
        description = message
        self.code = code
    }

    /// A usage error: the code ArgumentParser exits with for a bad option (EX_USAGE, 64).
    static func usage(_ message: String) -> CLIError { CLIError(message, code: ExitCode.validationFailure.rawValue) }
}

/// Runs `body`, turning errors into a message on standard error and the documented exit code.
func reporting(_ body: () throws -> Void) throws {
    do { try body() } catch { throw exitCode(for: error) }
}

/// The same for async commands.
func reporting(_ body: () async throws -> Void) async throws {
    do { try await body() } catch { throw exitCode(for: error) }
}

/// Prints `error` for the operator and returns the exit code it maps to.
func exitCode(for error: any Error) -> ExitCode {
    if let e = error as? ExitCode { return e }
    let (message, code): (String, Int32) =
        switch error {
        case let e as CLIError: (e.description, e.code)
        case let e as ConfigError: (e.description, 78)
        case let e as SyncError: (e.description, e.code == .notEnrolled || e.code == .notFound ? 4 : e.code == .unavailable || e.code == .storageFull ? 69 : 1)
        default: ("\(error)", 1)
        }
    FileHandle.standardError.write(Data("aislectl: \(message)\n".utf8))
    return ExitCode(code)
}

/// `value`, or for `-` the first line of standard input (a secret kept out of the process list
/// and the shell's history); `what` names it in the error when there is none.
func valueOrStandardInput(_ value: String, _ what: String) throws -> String {
    guard value == "-" else { return value }
    guard let line = readLine(strippingNewline: true), !Normalize.text(line).isEmpty else {
        throw CLIError.usage("- reads \(what) from standard input, which gave none")
    }
    return line
}

/// The moment an option gives (RFC 3339, a date, or Unix seconds); a bad one is a usage error
/// that names the option.
func moment(_ text: String, _ option: String) throws -> Int64 {
    do { return try Timestamp.parse(text) } catch let e as FieldError { throw CLIError.usage("\(option) \(text): \(e.reason)") }
}

/// Refuses a count option below 1 (a usage error, exit 64): a negative one would trap where it
/// takes a prefix or makes a range, and 0 makes some metrics 0 / 0.
func requirePositive(_ value: Int, _ option: String) throws {
    guard value >= 1 else { throw ValidationError("\(option) must be 1 or more, got \(value)") }
    // Days and minutes become seconds: a count this large is a typo, and would overflow.
    guard value <= maxCount else { throw ValidationError("\(option) must be at most \(maxCount), got \(value)") }
}

/// The largest count option taken.
let maxCount = 1_000_000

/// Refuses a number option outside `range` (NaN too), a usage error naming it.
func requireIn(_ value: Double?, _ range: ClosedRange<Double>, _ option: String) throws {
    guard let value, !range.contains(value) else { return }
    throw ValidationError("\(option) must be in \(range.lowerBound) … \(range.upperBound), got \(value)")
}

/// A note for the operator on standard error (standard output stays the result).
func printError(_ message: String) {
    FileHandle.standardError.write(Data("aislectl: \(message)\n".utf8))
}
