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
                slates, shoppers, items shown (each item once per shopper, however often it was \
                shown), the share of those taken (clicked, carted or bought through the kiosk), the \
                share carted, and the share the customer bought within --purchase-days of first \
                seeing it (from the till's purchases). Shoppers, not items shown, are what the arms \
                were drawn by: each shopper's items are one cluster — Wilson's interval at the \
                effective number of items for each share, a normal one for the difference. Requests without a shopper key are in neither arm; a \
                customer the agent's index does not know yet (new since its hourly rebuild) is \
                logged with the id the store has for them when the slate is written; one with no \
                event in the store yet has none, and counts a shopper per slate.

                Example: aislectl experiments report explore-2
                """)
        @Argument(help: "The experiment's name.") var name: String
        @Option(help: "Days after a slate in which a purchase of a shown item counts for it.") var purchaseDays = 7
        func validate() throws { try requirePositive(purchaseDays, "--purchase-days") }
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        struct Rate: Encodable { var value: Double; var low: Double; var high: Double }
        struct Arm: Encodable { var requests: Int; var shoppers: Int; var shown: Int; var taken: Rate; var carted: Rate; var bought: Rate }
        struct Out: Encodable { var experiment: String; var arms: [String: Arm]; var takenDifference: Rate?; var boughtDifference: Rate? }

        /// One shopper's items shown, and how many of them were taken, carted and bought.
        struct Shopper { var shown: Double; var taken: Double; var carted: Double; var bought: Double }

        func run() throws {
            try reporting {
                let window = Int64(purchaseDays) * 86_400
                let (rows, slates) = try storeOptions.openForReading().database.read { db in
                    (
                        try Row.fetchAll(db, sql: """
                            WITH impressions AS (
                              SELECT i.arm, coalesce('c' || i.customer_id, 's' || i.session, 'r' || i.request_id) AS shopper, i.customer_id, i.item_id, i.ts,
                                EXISTS(SELECT 1 FROM rec_feedback f WHERE f.request_id = i.request_id AND f.item_id = i.item_id AND f.action != 'dismiss') AS taken,
                                EXISTS(SELECT 1 FROM rec_feedback f WHERE f.request_id = i.request_id AND f.item_id = i.item_id AND f.action = 'cart') AS carted
                              FROM rec_impressions i WHERE i.experiment = ?),
                            pairs AS (
                              SELECT arm, shopper, customer_id, item_id, min(ts) AS ts, max(taken) AS taken, max(carted) AS carted
                              FROM impressions GROUP BY arm, shopper, item_id)
                            SELECT i.arm, count(*), sum(i.taken), sum(i.carted), sum(i.customer_id IS NOT NULL AND (\(Self.bought(tier: 1)) OR \(Self.bought(tier: 0))))
                            FROM pairs i GROUP BY i.arm, i.shopper ORDER BY i.arm, i.shopper
                            """, arguments: [name, window, window]),
                        try Row.fetchAll(db, sql: "SELECT arm, count(*) FROM rec_slates WHERE experiment = ? GROUP BY arm", arguments: [name])
                    )
                }
                guard !rows.isEmpty else { throw CLIError("no slates served under experiment \"\(name)\"", code: 4) }
                var shoppers: [String: [Shopper]] = [:]
                for row in rows {
                    shoppers[row[0] ?? "?", default: []].append(Shopper(shown: row[1], taken: row[2], carted: row[3], bought: row[4]))
                }
                let requests = Dictionary(slates.map { ((($0[0] as String?) ?? "?"), $0[1] as Int) }, uniquingKeysWith: +)
                var arms: [String: Arm] = [:]
                for (arm, list) in shoppers {
                    arms[arm] = Arm(
                        requests: requests[arm] ?? 0, shoppers: list.count, shown: Int(list.reduce(0) { $0 + $1.shown }),
                        taken: Self.rate(list, \.taken), carted: Self.rate(list, \.carted), bought: Self.rate(list, \.bought))
                }
                let out = Out(
                    experiment: name, arms: arms,
                    takenDifference: Self.difference(shoppers["b"], shoppers["a"], \.taken), boughtDifference: Self.difference(shoppers["b"], shoppers["a"], \.bought))
                if output.json { return try printJSON(out) }
                let f = { (r: Rate) in String(format: "%.4f [%.4f, %.4f]", r.value, r.low, r.high) }
                print("experiment \(name)")
                for (arm, a) in arms.sorted(by: { $0.key < $1.key }) {
                    print("  arm \(arm): \(a.requests) slates, \(a.shoppers) shoppers, \(a.shown) items shown; taken \(f(a.taken)), carted \(f(a.carted)), bought within \(purchaseDays) days \(f(a.bought))")
                }
                if let d = out.takenDifference { print("  B − A taken: \(f(d))") }
                if let d = out.boughtDifference { print("  B − A bought: \(f(d))") }
            }
        }

        /// The share of the shoppers' items shown that `count` counts, and its variance with each
        /// shopper as a cluster: m / (m − 1) · Σ (yᵢ − R nᵢ)² / (Σ nᵢ)².
        static func ratio(_ list: [Shopper], _ count: KeyPath<Shopper, Double>) -> (value: Double, variance: Double) {
            let n = list.reduce(0) { $0 + $1.shown }, m = Double(list.count)
            guard n > 0 else { return (0, 0) }
            let r = list.reduce(0) { $0 + $1[keyPath: count] } / n
            let spread = list.reduce(0) { $0 + ($1[keyPath: count] - r * $1.shown) * ($1[keyPath: count] - r * $1.shown) }
            return (r, m > 1 ? m / (m - 1) * spread / (n * n) : 0)
        }

        /// The share with Wilson's 95 % interval at the effective number of items — the items
        /// shown shrunk by the clustering's variance, or the shoppers when the share is 0 or 1
        /// (a normal interval there is zero wide).
        static func rate(_ list: [Shopper], _ count: KeyPath<Shopper, Double>) -> Rate {
            let (r, v) = ratio(list, count)
            let n = list.reduce(0) { $0 + $1.shown }
            let effective = v > 0 && r > 0 && r < 1 ? min(n, r * (1 - r) / v) : Double(list.count)
            guard effective > 0 else { return Rate(value: r, low: 0, high: 1) }
            let z = 1.96, centre = (r + z * z / (2 * effective)) / (1 + z * z / effective)
            let half = z * (r * (1 - r) / effective + z * z / (4 * effective * effective)).squareRoot() / (1 + z * z / effective)
            return Rate(value: r, low: max(0, centre - half), high: min(1, centre + half))
        }

        /// B's share less A's, with a normal 95 % interval.
        static func difference(_ b: [Shopper]?, _ a: [Shopper]?, _ count: KeyPath<Shopper, Double>) -> Rate? {
            guard let b, let a, !b.isEmpty, !a.isEmpty else { return nil }
            let (rb, vb) = ratio(b, count), (ra, va) = ratio(a, count)
            let se = (vb + va).squareRoot()
            return Rate(value: rb - ra, low: rb - ra - 1.96 * se, high: rb - ra + 1.96 * se)
        }

        /// Whether the customer bought the shown item within the window, through one tier's
        /// customer index (the partial indexes need the tier named).
        static func bought(tier: Int) -> String {
            """
            EXISTS(SELECT 1 FROM events e WHERE e.customer_id = i.customer_id AND e.customer_id IS NOT NULL AND e.tier = \(tier)
              AND e.ts >= i.ts AND e.ts < i.ts + ? AND e.item_id = i.item_id AND e.type = 'purchase')
            """
        }
    }
}
