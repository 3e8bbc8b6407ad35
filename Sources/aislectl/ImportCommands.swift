import AisleConfig
import AisleCore
import AisleIngest
import AisleStore
import ArgumentParser
import Foundation

struct ImportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "import",
        abstract: "Import events, a catalog, or the UCI Online Retail data.",
        discussion: """
            Files may be plain or gzip-compressed. Every valid line is kept; every invalid one is \
            rejected with its line number, field and reason (all of them with --rejects FILE). \
            Duplicates — the same event id, or identical content — are dropped and counted, so \
            importing a file again adds nothing, and an interrupted import completes when run again.
            """,
        subcommands: [Events.self, Catalog.self, OnlineRetailPair.self])

    /// Options every import takes.
    struct Common: ParsableArguments {
        @Option(help: ArgumentHelp("Write every rejected line (file, line, field, reason) as JSON Lines.", valueName: "FILE"))
        var rejects: String?
        @Flag(help: "No progress output.") var quiet = false
        @Option(help: "Lines per transaction.") var batchSize = 50_000
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run(kind: String, source: String, _ body: (Importer) throws -> Void) throws {
            try reporting {
                guard batchSize > 0 else { throw CLIError.usage("--batch-size must be positive") }
                let dir = try storeOptions.directory()
                let store = try Store.open(at: dir, durability: .normal)
                var options = ImportOptions()
                options.rejectsPath = rejects
                options.quiet = quiet
                options.batchSize = batchSize
                let importer = try Importer(
                    store: store, pseudonymizer: try Pseudonymizer(storeDirectory: dir), kind: kind, source: source, options: options)
                do {
                    try body(importer)
                } catch {
                    importer.fail(error)
                    throw error
                }
                let report = try importer.finish()
                try store.audit("import \(kind)", detail: "\(source): run \(report.runID), \(report.accepted) accepted, \(report.rejected) rejected")
                if output.json { try printJSON(report) } else { printSummary(report) }
                if report.rejected > 0 { throw ExitCode(3) }
            }
        }

        func printSummary(_ r: ImportReport) {
            print("import #\(r.runID) \(r.kind) from \(r.source): \(r.status) in \(String(format: "%.1f", r.seconds)) s (\(Int(r.linesPerSecond).formatted()) lines/s)")
            let rows: [(String, Int)] = [
                ("lines read", r.lines), ("accepted", r.accepted), ("duplicates dropped", r.duplicates),
                ("rejected", r.rejected), ("returns", r.returns), ("returns linked to their sale", r.returnsLinked),
                ("anonymous purchase lines", r.anonymousPurchases), ("outliers flagged", r.outliersFlagged),
                ("items created", r.itemsCreated), ("customers created", r.customersCreated),
                ("catalog entries changed", r.catalogUpdated),
            ]
            for (label, n) in rows where n > 0 || ["lines read", "accepted", "duplicates dropped", "rejected"].contains(label) {
                print("  \(label.padding(toLength: 30, withPad: " ", startingAt: 0)) \(n.formatted())")
            }
            if !r.rejectReasons.isEmpty {
                print("  rejects by reason:")
                for (reason, n) in r.rejectReasons.sorted(by: { $0.value > $1.value }).prefix(10) { print("    \(n.formatted())  \(reason)") }
                for j in r.firstRejects.prefix(5) { print("    e.g. \(j.file):\(j.line) \(j.field.map { "\($0): " } ?? "")\(j.reason)") }
                if rejects == nil { print("  (all rejects: --rejects FILE)") }
            }
        }
    }

    struct Events: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import events in the JSON Lines interchange format (docs/INTERCHANGE.md).",
            discussion: "Example: aislectl import events tills-2024-05.jsonl.gz --rejects rejects.jsonl")
        @Argument(help: "The events file (.jsonl or .jsonl.gz).") var file: String
        @OptionGroup var common: Common
        func run() throws { try common.run(kind: "events", source: file) { try Sources.importEvents(path: file, into: $0) } }
    }

    struct Catalog: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Import catalog entries {\"item\",\"title\",\"category\"?,\"price\"?,\"active\"?,\"sellable\"?,\"in_stock\"?}.",
            discussion: """
                A field left out (but the title) keeps what the item had; "category": "" takes the category away. Search and recommendations offer only items \
                active, sellable and in stock; a running agent leaves out one withdrawn or sold out within seconds. \
                Example: aislectl import catalog catalog.jsonl
                """)
        @Argument(help: "The catalog file (.jsonl or .jsonl.gz).") var file: String
        @OptionGroup var common: Common
        func run() throws { try common.run(kind: "catalog", source: file) { try Sources.importCatalog(path: file, into: $0) } }
    }

    struct OnlineRetailPair: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "online-retail",
            abstract: "Import the UCI Online Retail data as shipped: invoice lines and invoice headers.",
            discussion: "Example: aislectl import online-retail ../shared/data/online_retail/lines.csv.gz ../shared/data/online_retail/invoices.csv.gz")
        @Argument(help: "lines.csv[.gz]: InvoiceNo, InvoiceDate, StockCode, Description, Quantity, UnitPrice.") var lines: String
        @Argument(help: "invoices.csv[.gz]: InvoiceNo, CustomerID, Country.") var invoices: String
        @OptionGroup var common: Common
        func run() throws {
            try common.run(kind: "online-retail", source: lines) { try OnlineRetail.importPair(lines: lines, invoices: invoices, into: $0) }
        }
    }
}

struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config", abstract: "Work with configuration files.", subcommands: [Check.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate an agent configuration file; print each error with its key and reason.",
            discussion: "Exits 78 when the file has errors. Example: aislectl config check firmware-config/aisled.toml")
        @Argument(help: "The TOML file.") var file: String
        @OptionGroup var output: OutputOptions

        func run() throws {
            let c: AgentConfig
            do { c = try AgentConfig.load(path: file) } catch {
                if output.json {
                    struct Out: Encodable { var ok = false; var errors: [[String: String]] }
                    try printJSON(Out(errors: error.issues.map { ["key": $0.key, "reason": $0.reason] }))
                } else {
                    FileHandle.standardError.write(Data("\(error.description)\n".utf8))
                }
                throw ExitCode(78)
            }
            struct Out: Encodable { var ok = true; var store: String; var socket: String }
            if output.json { try printJSON(Out(store: c.storePath, socket: c.socketPath)) } else { print("\(file): ok") }
        }
    }
}
