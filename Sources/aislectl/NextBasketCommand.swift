import AisleCore
import AisleRecommend
import AisleStore
import ArgumentParser
import Foundation

extension EvalCommand {
    struct Nextbasket: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Next basket: what the customers who bought before the cutoff buy in the window after it.",
            discussion: """
                Customers with a purchase before --cutoff and in [--cutoff, --until); target: the \
                distinct items they bought in that window. Everything is learnt from purchases before \
                the cutoff. Prints users, recall@K, ndcg@K, hit@K and new_item_recall@K (lists and \
                targets without each user's earlier items). --model ltr is the recommender's ranking \
                (candidates from repurchase, similar customers, baskets, popularity and trend, ranked \
                by gradient-boosted trees trained on the horizon before the cutoff); ppop and pop are \
                the protocol's baselines.

                Example: aislectl eval nextbasket --cutoff 2011-09-01 --json
                """)
        enum Method: String, ExpressibleByArgument { case ltr, ppop, pop }

        @Option(help: "The cutoff date.") var cutoff: String
        @Option(help: "End of the test window (default: the end of the data).") var until: String?
        @Option var k = 10
        func validate() throws {
            for (value, option) in [(k, "--k"), (horizonDays, "--horizon-days"), (windows, "--windows")] { try requirePositive(value, option) }
        }
        @Option(help: "ltr, ppop (personal frequency, then popularity) or pop (popularity of the last 90 days).") var model: Method = .ltr
        @Option(help: "Ranking training: days of each label window.") var horizonDays = 60
        @Option(help: "Ranking training: label windows before the cutoff.") var windows = 3
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let started = Date()
                let t = try moment(cutoff, "--cutoff")
                let end = try until.map { try moment($0, "--until") } ?? Int64.max / 2
                let store = try storeOptions.openForReading()
                let (history, test) = try store.database.read { db in
                    (try PurchaseHistory.load(db, to: t), try PurchaseHistory.load(db, from: t, to: end))
                }
                let earlier = history.itemSets
                let targets = test.itemSets.filter { earlier[$0.key] != nil }
                guard !targets.isEmpty else { throw CLIError("no customer bought both before \(cutoff) and after it") }
                let signals = Signals(history)
                let byPopularity = signals.buyers90.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map(\.key)
                var ranked: [Int64: [Int]] = [:]
                switch model {
                case .pop:
                    for user in targets.keys { ranked[user] = Array(byPopularity.prefix(200)) }
                case .ppop:
                    for user in targets.keys {
                        // Purchase days, ties broken by the store's popularity (as the protocol's P-Pop).
                        let own = (signals.counts[user] ?? [:]).map { (item: $0.key, days: $0.value.days, buyers: signals.buyers90[$0.key] ?? 0) }
                            .sorted { ($0.days, $0.buyers, -$0.item) > ($1.days, $1.buyers, -$1.item) }.map(\.item)
                        ranked[user] = own + byPopularity.prefix(200).filter { signals.counts[user]?[$0] == nil }
                    }
                case .ltr:
                    guard let ranker = Ranker.train(history, horizonDays: horizonDays, windows: windows)?.ranker else { throw CLIError("too little history before \(cutoff) to train the ranking") }
                    for user in targets.keys {
                        ranked[user] = Ranking.candidates(signals, customer: user).map { ($0.item, ranker.score($0)) }
                            .sorted { $0.1 != $1.1 ? $0.1 > $1.1 : $0.0 < $1.0 }.map(\.0)
                    }
                }
                let r = NextBasket.evaluate(ranked: ranked, targets: targets, earlier: earlier, k: k)
                let seconds = Date().timeIntervalSince(started)
                if output.json {
                    return try printJSON([
                        "users": Double(r.users), "recall@\(k)": r.recall, "ndcg@\(k)": r.ndcg, "hit@\(k)": r.hit,
                        "new_item_recall@\(k)": r.newItemRecall, "seconds": seconds,
                    ])
                }
                print(String(format: "next basket after %@ (%@): %d users, recall@%d %.4f, NDCG@%d %.4f, hit@%d %.4f, new-item recall@%d %.4f, %.1f s",
                             cutoff, model.rawValue, r.users, k, r.recall, k, r.ndcg, k, r.hit, k, r.newItemRecall, seconds))
            }
        }
    }
}
