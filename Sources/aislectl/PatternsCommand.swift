import AisleCore
import AisleModels
import AisleStore
import ArgumentParser
import Foundation

struct PatternsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "patterns", abstract: "Behaviour over time: what customers buy next, and when they buy again.",
        subcommands: [Next.self, Cycles.self])

    struct Next: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Frequent transitions between a customer's consecutive purchases.",
            discussion: """
                For every pair of consecutive receipts of a known customer, each category (or item) of the \
                first → each of the second. Prints count, confidence (share of pairs starting with `from` \
                that reach `to`) and lift.

                Example: aislectl patterns next --level category --limit 20
                """)
        enum Level: String, ExpressibleByArgument { case category, item }
        @Option var level: Level = .category
        @Option(help: "Least number of pairs.") var minCount = 5
        @Option var limit = 20
        func validate() throws {
            try requirePositive(limit, "--limit")
            try requirePositive(minCount, "--min-count")
        }
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let lines = try storeOptions.openForReading().database.read { try CustomerPurchases.load($0) }
                var customers: [[Set<String>]] = []
                var current: (customer: Int64, receipt: Int64)?
                for line in lines {
                    if current?.customer != line.customer { customers.append([]) }
                    if current?.customer != line.customer || current?.receipt != line.receipt { customers[customers.count - 1].append([]) }
                    current = (line.customer, line.receipt)
                    // A receipt of uncategorised items stays, empty: its neighbours are not consecutive.
                    guard let label = level == .item ? line.sku : line.category else { continue }
                    customers[customers.count - 1][customers[customers.count - 1].count - 1].insert(label)
                }
                let transitions = Array(Sequences.transitions(customers, minCount: minCount).prefix(limit))
                struct T: Encodable { var from, to: String; var count: Int; var confidence, lift: Double }
                if output.json { return try printJSON(transitions.map { T(from: $0.from, to: $0.to, count: $0.count, confidence: $0.confidence, lift: $0.lift) }) }
                if transitions.isEmpty { print("no transitions seen \(minCount) times (does the catalog give items a \(level.rawValue)?)") }
                for t in transitions {
                    print("\(t.from) → \(t.to)  \(t.count) pairs, confidence \(String(format: "%.3f", t.confidence)), lift \(String(format: "%.2f", t.lift))")
                }
            }
        }
    }

    struct Cycles: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per item, how many days customers take to buy it again (for restock reminders).",
            discussion: """
                Gaps between a customer's consecutive purchase days of the item; the median and quartiles, \
                over items bought again by at least --min-customers customers.

                Example: aislectl patterns cycles --min-customers 20 --limit 10
                """)
        @Option var minCustomers = 5
        @Option var limit = 20
        func validate() throws {
            try requirePositive(limit, "--limit")
            try requirePositive(minCustomers, "--min-customers")
        }
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let lines = try storeOptions.openForReading().database.read { try CustomerPurchases.load($0) }
                let cycles = Array(Sequences.repurchaseCycles(lines.map { ($0.sku, $0.customer, Int($0.ts / 86_400)) }, minCustomers: minCustomers).prefix(limit))
                struct C: Encodable { var item: String; var customers, gaps: Int; var medianDays, lowerQuartileDays, upperQuartileDays: Double }
                if output.json {
                    return try printJSON(cycles.map {
                        C(item: $0.item, customers: $0.customers, gaps: $0.gaps, medianDays: $0.medianDays, lowerQuartileDays: $0.lowerQuartileDays, upperQuartileDays: $0.upperQuartileDays)
                    })
                }
                for c in cycles {
                    print("\(c.item): \(c.customers) customers bought again, median \(String(format: "%.0f", c.medianDays)) days (quartiles \(String(format: "%.0f", c.lowerQuartileDays))–\(String(format: "%.0f", c.upperQuartileDays)))")
                }
            }
        }
    }
}
