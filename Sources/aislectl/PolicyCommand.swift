import AisleCore
import AisleModels
import AisleStore
import ArgumentParser
import Foundation
import GRDB

extension EvalCommand {
    struct Policy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Offline evaluation of recommendation policies from the agent's exploration logs.",
            discussion: """
                Every explored slate position was chosen by the agent's bandit among logged arms with a \
                known propensity, and rewarded when the shopper clicked, carted or bought the item \
                (`rec_explore`, `rec_impressions`, `rec_feedback`). For each target policy — ranked (the \
                ranking's own item, no exploration), greedy-score (the arm of highest ranking score), \
                popular (the most bought lately), uniform — prints the inverse propensity (IPS), \
                self-normalised (SNIPS) and doubly robust (DR, with a logistic reward model on the \
                arms' contexts) estimates of its reward per decision, with 95 % bootstrap intervals.

                Example: aislectl eval policy --json
                """)
        @Option(help: "Only decisions logged since this moment.") var since: String?
        @Option(help: "Seconds after a slate in which feedback counts as its reward, as the agent's bandit counts it ([recommendations] reward_window_seconds).")
        var rewardWindowSeconds = 600
        func validate() throws { try requirePositive(rewardWindowSeconds, "--reward-window-seconds") }
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        struct Decision { var arms: [[Double]]; var chosen: Int; var propensity: Double; var reward: Double }

        func run() throws {
            try reporting {
                let started = Date()
                let from = try since.map { try moment($0, "--since") } ?? 0
                let decisions = try storeOptions.openForReading().database.read { db in
                    try Row.fetchAll(db, sql: """
                        SELECT x.chosen, x.arms, i.propensity, i.item_id,
                               EXISTS(SELECT 1 FROM rec_feedback f WHERE f.request_id = x.request_id AND f.item_id = i.item_id AND f.action != 'dismiss'
                                      AND f.ts < i.ts + ?)
                        FROM rec_explore x JOIN rec_impressions i ON i.request_id = x.request_id AND i.position = x.position
                        WHERE i.ts >= ? ORDER BY x.request_id, x.position
                        """, arguments: [rewardWindowSeconds, from]).compactMap { row -> Decision? in
                        guard let contexts = RecommendationLog.armContexts(row[1]), (0..<contexts.count).contains(row[0] as Int) else { return nil }
                        return Decision(arms: contexts, chosen: row[0], propensity: row[2], reward: (row[4] as Bool) ? 1 : 0)
                    }
                }
                guard decisions.count >= 10 else { throw CLIError("\(decisions.count) explored decisions logged; need at least 10 (is exploration on? [recommendations] explore_slots)") }
                let model = LogisticRegression.fit(decisions.map { $0.arms[$0.chosen] }, decisions.map { $0.reward > 0 }, l2: 1)
                let policies: [(String, ([[Double]]) -> [Double])] = [
                    ("ranked", { arms in arms.indices.map { $0 == 0 ? 1 : 0 } }),
                    ("greedy_score", { arms in Self.argmax(arms.map { $0[1] }, count: arms.count) }),
                    ("popular", { arms in Self.argmax(arms.map { $0[7] }, count: arms.count) }),
                    ("uniform", { arms in arms.map { _ in 1 / Double(arms.count) } }),
                ]
                struct PolicyEstimate: Encodable { var ips: OffPolicy.Estimate; var snips: OffPolicy.Estimate; var dr: OffPolicy.Estimate }
                var estimates: [String: PolicyEstimate] = [:]
                for (name, policy) in policies {
                    let records = decisions.map { d -> OffPolicy.Record in
                        let pi = policy(d.arms), predicted = d.arms.map(model.probability)
                        return OffPolicy.Record(
                            target: pi[d.chosen], propensity: d.propensity, reward: d.reward,
                            modelLogged: predicted[d.chosen], modelTarget: zip(pi, predicted).reduce(0) { $0 + $1.0 * $1.1 })
                    }
                    estimates[name] = PolicyEstimate(
                        ips: OffPolicy.estimate(records, OffPolicy.ips), snips: OffPolicy.estimate(records, OffPolicy.snips),
                        dr: OffPolicy.estimate(records, OffPolicy.doublyRobust))
                }
                struct Out: Encodable { var decisions: Int; var loggedReward: Double; var policies: [String: PolicyEstimate]; var seconds: Double }
                let out = Out(decisions: decisions.count, loggedReward: decisions.reduce(0) { $0 + $1.reward } / Double(decisions.count),
                              policies: estimates, seconds: Date().timeIntervalSince(started))
                if output.json { return try printJSON(out) }
                print(String(format: "%d explored decisions, logged reward %.4f per decision", out.decisions, out.loggedReward))
                for (name, e) in estimates.sorted(by: { $0.key < $1.key }) {
                    let f = { (x: OffPolicy.Estimate) in String(format: "%.4f [%.4f, %.4f]", x.value, x.low, x.high) }
                    print("  \(name.padding(toLength: 13, withPad: " ", startingAt: 0)) IPS \(f(e.ips))  SNIPS \(f(e.snips))  DR \(f(e.dr))")
                }
            }
        }

        /// Probability 1 on the first arm of highest value.
        static func argmax(_ values: [Double], count: Int) -> [Double] {
            let best = values.indices.max { values[$0] < values[$1] || (values[$0] == values[$1] && $0 > $1) } ?? 0
            return (0..<count).map { $0 == best ? 1 : 0 }
        }
    }
}
