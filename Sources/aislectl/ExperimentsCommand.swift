import AisleCore
import AisleStore
import ArgumentParser
import Foundation
import GRDB

struct ExperimentsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "experiments", abstract: "A/B experiments on the recommendations.", subcommands: [Report.self])

    struct Report: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Per-arm metrics of an experiment with 95 % intervals, and arm B against arm A.",
            discussion: """
                From the slates the agent served under the experiment ([experiment] in aisled.toml): \
                requests, items shown, the share of shown items taken (clicked, carted or bought \
                through the kiosk), the share carted, and the share the customer bought within \
                --purchase-days of seeing it (from the till's purchases). Intervals: Wilson for each \
                arm's rate, normal for the difference.

                Example: aislectl experiments report explore-2
                """)
        @Argument(help: "The experiment's name.") var name: String
        @Option(help: "Days after a slate in which a purchase of a shown item counts for it.") var purchaseDays = 7
        func validate() throws { try requirePositive(purchaseDays, "--purchase-days") }
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        struct Rate: Encodable { var value: Double; var low: Double; var high: Double }
        struct Arm: Encodable { var requests: Int; var shown: Int; var taken: Rate; var carted: Rate; var bought: Rate }
        struct Out: Encodable { var experiment: String; var arms: [String: Arm]; var takenDifference: Rate?; var boughtDifference: Rate? }

        func run() throws {
            try reporting {
                let counts = try storeOptions.openForReading().database.read { db in
                    try Row.fetchAll(db, sql: """
                        SELECT i.arm, count(DISTINCT i.request_id), count(*),
                          sum(EXISTS(SELECT 1 FROM rec_feedback f WHERE f.request_id = i.request_id AND f.item_id = i.item_id AND f.action != 'dismiss')),
                          sum(EXISTS(SELECT 1 FROM rec_feedback f WHERE f.request_id = i.request_id AND f.item_id = i.item_id AND f.action = 'cart')),
                          sum(i.customer_id IS NOT NULL AND (\(Self.bought(tier: 1)) OR \(Self.bought(tier: 0))))
                        FROM rec_impressions i WHERE i.experiment = ? GROUP BY i.arm ORDER BY i.arm
                        """, arguments: [Int64(purchaseDays) * 86_400, Int64(purchaseDays) * 86_400, name])
                }
                guard !counts.isEmpty else { throw CLIError("no slates served under experiment \"\(name)\"", code: 4) }
                var arms: [String: Arm] = [:], raw: [String: (shown: Int, taken: Int, bought: Int)] = [:]
                for row in counts {
                    let arm: String = row[0] ?? "?", shown: Int = row[2], taken: Int = row[3], carted: Int = row[4], bought: Int = row[5]
                    arms[arm] = Arm(requests: row[1], shown: shown, taken: Self.wilson(taken, shown), carted: Self.wilson(carted, shown), bought: Self.wilson(bought, shown))
                    raw[arm] = (shown, taken, bought)
                }
                let out = Out(
                    experiment: name, arms: arms,
                    takenDifference: Self.difference(raw["b"].map { ($0.taken, $0.shown) }, raw["a"].map { ($0.taken, $0.shown) }),
                    boughtDifference: Self.difference(raw["b"].map { ($0.bought, $0.shown) }, raw["a"].map { ($0.bought, $0.shown) }))
                if output.json { return try printJSON(out) }
                let f = { (r: Rate) in String(format: "%.4f [%.4f, %.4f]", r.value, r.low, r.high) }
                print("experiment \(name)")
                for (arm, a) in arms.sorted(by: { $0.key < $1.key }) {
                    print("  arm \(arm): \(a.requests) slates, \(a.shown) items shown; taken \(f(a.taken)), carted \(f(a.carted)), bought within \(purchaseDays) days \(f(a.bought))")
                }
                if let d = out.takenDifference { print("  B − A taken: \(f(d))") }
                if let d = out.boughtDifference { print("  B − A bought: \(f(d))") }
            }
        }

        /// Whether the customer bought the shown item within the window, through one tier's
        /// customer index (the partial indexes need the tier named).
        static func bought(tier: Int) -> String {
            """
            EXISTS(SELECT 1 FROM events e WHERE e.customer_id = i.customer_id AND e.customer_id IS NOT NULL AND e.tier = \(tier)
              AND e.ts >= i.ts AND e.ts < i.ts + ? AND e.item_id = i.item_id AND e.type = 'purchase')
            """
        }

        /// A proportion with its 95 % Wilson interval.
        static func wilson(_ k: Int, _ n: Int) -> Rate {
            guard n > 0 else { return Rate(value: 0, low: 0, high: 1) }
            let p = Double(k) / Double(n), z = 1.96, nn = Double(n)
            let centre = (p + z * z / (2 * nn)) / (1 + z * z / nn)
            let half = z * (p * (1 - p) / nn + z * z / (4 * nn * nn)).squareRoot() / (1 + z * z / nn)
            return Rate(value: p, low: centre - half, high: centre + half)
        }

        /// The difference of two proportions with a normal 95 % interval.
        static func difference(_ b: (Int, Int)?, _ a: (Int, Int)?) -> Rate? {
            guard let (kb, nb) = b, let (ka, na) = a, nb > 0, na > 0 else { return nil }
            let pb = Double(kb) / Double(nb), pa = Double(ka) / Double(na)
            let se = (pb * (1 - pb) / Double(nb) + pa * (1 - pa) / Double(na)).squareRoot()
            return Rate(value: pb - pa, low: pb - pa - 1.96 * se, high: pb - pa + 1.96 * se)
        }
    }
}
