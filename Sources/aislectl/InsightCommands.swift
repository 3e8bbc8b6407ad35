import AisleCore
import AisleFeatures
import AisleModels
import AisleStore
import ArgumentParser
import Foundation

struct SegmentsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segments",
        abstract: "RFM segments of the store's customers at a date, and how they moved since another.",
        discussion: """
            Scores recency, frequency (receipts) and spend 1–5 by quintile among the customers with a \
            purchase before --at, and names segments: champions, loyal, new, promising, needs attention, \
            at risk, hibernating (docs/MODELS.md). With --since, also the movement from the segments at \
            that date ("none": not a customer yet).

            Example: aislectl segments --at 2011-12-01 --since 2011-09-01
            """)

    @Option(help: "The date, e.g. 2011-12-01 (events before it).") var at: String
    @Option(help: "An earlier date to show movement from.") var since: String?
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try reporting {
            let t = try moment(at, "--at")
            if let since, try moment(since, "--since") >= t { throw CLIError.usage("--since \(since) must come before --at \(at)") }
            let store = try storeOptions.openForReading()
            let now = try segments(store, at: t)
            let before = try since.map { try segments(store, at: try moment($0, "--since")) }
            let names = RFM.Segment.allCases.map(\.rawValue)
            var sizes: [String: Int] = [:]
            for s in now.values { sizes[s.segment.rawValue, default: 0] += 1 }
            var movement: [String: [String: Int]] = [:]
            if let before {
                for (id, s) in now { movement[before[id]?.segment.rawValue ?? "none", default: [:]][s.segment.rawValue, default: 0] += 1 }
            }
            struct Out: Encodable { var at: String; var since: String?; var customers: Int; var sizes: [String: Int]; var movement: [String: [String: Int]]? }
            if output.json { return try printJSON(Out(at: at, since: since, customers: now.count, sizes: sizes, movement: before == nil ? nil : movement)) }
            print("\(now.count) customers at \(at)")
            for n in names { print("  \(n.padding(toLength: 16, withPad: " ", startingAt: 0))\(String(sizes[n] ?? 0).leftPad(7))") }
            guard let since else { return }
            print("movement since \(since) (rows: then, columns: now)")
            print("  " + "".padding(toLength: 16, withPad: " ", startingAt: 0) + names.map { String($0.prefix(8)).leftPad(9) }.joined())
            for from in ["none"] + names {
                print("  " + from.padding(toLength: 16, withPad: " ", startingAt: 0) + names.map { String(movement[from]?[$0] ?? 0).leftPad(9) }.joined())
            }
        }
    }

    func segments(_ store: Store, at t: Int64) throws -> [Int64: RFM.Score] {
        try store.database.read { try CustomerSnapshot.load($0, asOf: t) }.rfm()
    }
}
