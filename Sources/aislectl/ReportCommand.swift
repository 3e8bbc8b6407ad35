import AisleCore
import AisleInsight
import AisleStore
import ArgumentParser
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "The store report: segments and their movement, churn risk, basket rules, review sentiment, sales trend.",
        discussion: """
            --html FILE writes a self-contained page (charts as inline SVG) a manager can open or \
            mail; --json prints the figures.

            Example: aislectl report --html store-report.html
            """)
    @Option(help: ArgumentHelp("Write the report as HTML here.", valueName: "FILE")) var html: String?
    @Option(help: "As of this moment (default: just after the latest event).") var asOf: String?
    @Option(help: "Segment movement since this date (default: 91 days before).") var since: String?
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    func validate() throws {
        if html == nil && !output.json { throw ValidationError("give --html FILE or --json") }
    }

    func run() throws {
        try reporting {
            let (asOfMoment, sinceMoment) = (try asOf.map { try moment($0, "--as-of") }, try since.map { try moment($0, "--since") })
            let store = try storeOptions.openForReading()
            let started = Date()
            let report = try store.database.read { db -> StoreReport in
                guard let last = try Queries.lastEventTime(db) else { throw CLIError("the store has no events to report on") }
                let t = asOfMoment ?? last + 1
                let from = sinceMoment ?? t - 91 * 86_400
                guard from < t else { throw CLIError.usage("--since \(since ?? "") must come before the report's moment \(Timestamp.format(t))") }
                return try StoreReport.build(db, asOf: t, since: from)
            }
            if let html {
                try DurableFile.write(Data(ReportHTML.render(report, store: store.directory.path).utf8), to: html)
                FileHandle.standardError.write(Data(String(format: "wrote %@ (%d customers, %.1f s)\n", html, report.customers, Date().timeIntervalSince(started)).utf8))
            }
            if output.json { try printJSON(report) }
        }
    }
}
