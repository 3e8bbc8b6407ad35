import AisleCore
import AisleRecommend
import AisleStore
import AisleSync
import ArgumentParser
import Foundation
import GRDB

extension EvalCommand {
    struct ColdStart: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "coldstart",
            abstract: "A new store's first weeks: next-basket recall of its own short history's best sellers against the hub's global priors.",
            discussion: """
                Each customer's next basket is their first receipt in [cutoff, cutoff + horizon); the store's own \
                popularity is its top items by receipts in the history days before the cutoff; the priors are the \
                active global priors (taken from the hub by `aislectl sync now`). Served: the agent's slate for a \
                shopper it does not know, built as of the cutoff from the store's purchases before it, without and \
                with the priors.
                Example: aislectl eval coldstart --cutoff 2011-09-01 --history-days 7 --json
                """)
        @Option(help: "The store's opening moment (YYYY-MM-DD or a timestamp).") var cutoff: String
        @Option(help: "Days of the store's own history before the cutoff.") var historyDays = 7
        @Option(help: "Days after the cutoff whose first baskets are predicted.") var horizonDays = 28
        @Option var k = 10
        func validate() throws {
            for (value, option) in [(k, "--k"), (historyDays, "--history-days"), (horizonDays, "--horizon-days")] { try requirePositive(value, option) }
        }
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        struct Out: Encodable {
            var users: Int
            var historyDays: Int
            var recallOwn: Double
            var recallPriors: Double
            var recallServedOwn: Double
            var recallServedPriors: Double
            var ownItems: Int
            var priorsStores: Int
        }

        func run() throws {
            try reporting {
                let t = try moment(cutoff.count == 10 ? cutoff + "T00:00:00Z" : cutoff, "--cutoff")
                let out = try storeOptions.openForReading().database.read { db -> Out in
                    guard let entry = try ModelRegistry.active(db, kind: StorePriors.kind) else {
                        throw CLIError("no global priors in this store; `aislectl sync now` takes them from the hub", code: 4)
                    }
                    let priors = try SyncJSON.decode(GlobalPriors.self, entry.payload, "priors")
                    let own = try Self.baskets(db, from: t - Int64(historyDays) * 86_400, to: t)
                    var counts: [String: Int] = [:]
                    for basket in own.values { for sku in basket.items { counts[sku, default: 0] += 1 } }
                    let ownTop = Set(counts.sorted { ($0.value, $1.key) > ($1.value, $0.key) }.prefix(k).map(\.key))
                    let priorTop = Set(priors.popular(k))
                    var first: [Int64: (ts: Int64, items: Set<String>)] = [:]
                    for (_, b) in try Self.baskets(db, from: t, to: t + Int64(horizonDays) * 86_400) {
                        guard let c = b.customer else { continue }
                        if first[c].map({ b.ts < $0.ts }) ?? true { first[c] = (b.ts, b.items) }
                    }
                    func recall(_ top: Set<String>) -> Double {
                        first.values.reduce(0) { $0 + Double($1.items.intersection(top).count) / Double(max(1, $1.items.count)) } / Double(max(1, first.count))
                    }
                    func served(_ fleet: FleetPopularity?) throws -> Set<String> {
                        let index = try RecommendationIndex.build(db, asOf: t, ranker: nil, themes: nil, fleet: fleet)
                        return Set(index.recommend(.init(customer: nil, k: k)).map(\.sku))
                    }
                    let fleet = FleetPopularity(receipts: priors.receipts, items: priors.items)
                    return Out(
                        users: first.count, historyDays: historyDays, recallOwn: recall(ownTop), recallPriors: recall(priorTop),
                        recallServedOwn: recall(try served(nil)), recallServedPriors: recall(try served(fleet)), ownItems: counts.count, priorsStores: priors.stores)
                }
                if output.json { return try printJSON(out) }
                print(String(
                    format: "cold start at %@: %d customers' next baskets; recall@%d own %d-day popularity %.4f, global priors (%d stores) %.4f; the agent's slate without priors %.4f, with %.4f",
                    cutoff, out.users, k, historyDays, out.recallOwn, out.priorsStores, out.recallPriors, out.recallServedOwn, out.recallServedPriors))
            }
        }

        /// Receipts in [from, to): customer, time and items.
        static func baskets(_ db: Database, from: Int64, to: Int64) throws -> [Int64: (customer: Int64?, ts: Int64, items: Set<String>)] {
            let keys = EventKey.range(from: from, to: to)
            var out: [Int64: (customer: Int64?, ts: Int64, items: Set<String>)] = [:]
            let rows = try Row.fetchCursor(
                db, sql: """
                    SELECT e.receipt_id, e.customer_id, e.ts, i.sku FROM events e JOIN items i ON i.id = e.item_id
                    WHERE e.key >= ? AND e.key < ? AND e.ts >= ? AND e.ts < ? AND e.type = 'purchase' AND e.receipt_id IS NOT NULL
                    """, arguments: [keys.lower, keys.upper, from, to])
            while let row = try rows.next() {
                let id: Int64 = row[0]
                out[id, default: (row[1], row[2], [])].items.insert(row[3])
            }
            return out
        }
    }
}
