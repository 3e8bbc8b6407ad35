import AisleCore
import AisleModels
import AisleStore
import ArgumentParser
import Foundation

struct RulesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rules",
        abstract: "Association rules between items bought together (FP-Growth).",
        discussion: """
            One basket per receipt: its distinct sellable items, lines priced above zero. Prints \
            mlxtend's columns: antecedents, consequents, antecedent support, consequent support, \
            support, confidence, lift, leverage, conviction, count, antecedent_count, \
            consequent_count; sorted by lift.

            Example: aislectl rules --min-support 0.02 --min-confidence 0.3 --customers-only --format csv
            """)

    enum Format: String, ExpressibleByArgument { case table, csv, json }

    @Option(help: "Least share of baskets an itemset must be in.") var minSupport = 0.01
    @Option(help: "Least confidence of a rule.") var minConfidence = 0.3
    @Option(help: "Largest itemset.") var maxLength: Int?
    @Option(help: "Receipts from this date (inclusive), e.g. 2011-01-01.") var from: String?
    @Option(help: "Receipts before this date.") var to: String?
    @Flag(help: "Only receipts of known customers.") var customersOnly = false
    @Option(help: "table, csv or json.") var format: Format = .table
    @OptionGroup var storeOptions: StoreOptions

    func validate() throws {
        guard minSupport > 0, minSupport <= 1 else { throw ValidationError("--min-support must be in (0, 1]") }
        guard (0...1).contains(minConfidence) else { throw ValidationError("--min-confidence must be in [0, 1]") }
        if let maxLength { try requirePositive(maxLength, "--max-length") }
    }

    func run() throws {
        try reporting {
            let window = try (from.map { try moment($0, "--from") }, to.map { try moment($0, "--to") })
            let store = try storeOptions.openForReading()
            let data = try store.database.read { try Baskets.load($0, from: window.0, to: window.1, customersOnly: customersOnly) }
            let itemsets = FPGrowth.frequentItemsets(data.baskets, minSupport: minSupport, maxLength: maxLength)
            let rules = AssociationRule.mine(itemsets, baskets: data.baskets.count, minConfidence: minConfidence)
            let sku = { (ids: [Int]) in ids.map { data.skus[$0] ?? "?" }.sorted() }
            switch format {
            case .csv:
                print("antecedents,consequents,antecedent support,consequent support,support,confidence,lift,leverage,conviction,count,antecedent_count,consequent_count")
                for r in rules {
                    let lists = [sku(r.antecedents), sku(r.consequents)].map { "\"" + jsonList($0).replacingOccurrences(of: "\"", with: "\"\"") + "\"" }
                    let numbers = [r.antecedentSupport, r.consequentSupport, r.support, r.confidence, r.lift, r.leverage, r.conviction].map(number)
                    print((lists + numbers + [r.count, r.antecedentCount, r.consequentCount].map(String.init)).joined(separator: ","))
                }
            case .json:
                struct Rule: Encodable {
                    var antecedents, consequents: [String]
                    var antecedentSupport, consequentSupport, support, confidence, lift, leverage: Double
                    var conviction: Double?
                    var count, antecedentCount, consequentCount: Int
                }
                struct Out: Encodable { var baskets: Int; var itemsets: Int; var rules: [Rule] }
                try printJSON(Out(baskets: data.baskets.count, itemsets: itemsets.count, rules: rules.map {
                    Rule(antecedents: sku($0.antecedents), consequents: sku($0.consequents), antecedentSupport: $0.antecedentSupport,
                         consequentSupport: $0.consequentSupport, support: $0.support, confidence: $0.confidence, lift: $0.lift,
                         leverage: $0.leverage, conviction: $0.conviction.isFinite ? $0.conviction : nil, count: $0.count,
                         antecedentCount: $0.antecedentCount, consequentCount: $0.consequentCount)
                }))
            case .table:
                print("\(data.baskets.count) baskets, \(itemsets.count) frequent itemsets, \(rules.count) rules")
                for r in rules {
                    print("\(sku(r.antecedents).joined(separator: " + ")) → \(sku(r.consequents).joined(separator: " + "))  support \(String(format: "%.4f", r.support))  confidence \(String(format: "%.3f", r.confidence))  lift \(String(format: "%.2f", r.lift))")
                }
            }
        }
    }

    func jsonList(_ items: [String]) -> String { "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
    func number(_ v: Double) -> String { v.isFinite ? "\(v)" : "inf" }
}

struct BTYDCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "btyd", abstract: "Buy-till-you-die models of repeat buying.", subcommands: [Fit.self])

    struct Fit: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Fit BG/NBD (repeat purchases) and Gamma-Gamma (spend) on the purchases up to a cutoff.",
            discussion: """
                Known customers with a purchase on or before --cutoff (inclusive); purchases on one day \
                count once. With --holdout-end, also scores every customer's expected purchases over \
                (cutoff, holdout end] and reports the AUC for "bought again in the holdout".

                Example: aislectl btyd fit --cutoff 1997-09-30 --holdout-end 1998-06-30 --unit weeks --json
                """)

        enum Unit: String, ExpressibleByArgument { case days, weeks }

        @Option(help: "Last day of the calibration period, e.g. 1997-09-30.") var cutoff: String
        @Option(help: "Last day of the holdout period.") var holdoutEnd: String?
        @Option(help: "days or weeks.") var unit: Unit = .weeks
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let day = { (text: String, option: String) throws -> Int in Int(try moment(text, option) / 86_400) }
                let end = try day(cutoff, "--cutoff")
                let holdout = try holdoutEnd.map { try day($0, "--holdout-end") }
                if let holdout, holdout <= end { throw CLIError.usage("--holdout-end must come after --cutoff") }
                let store = try storeOptions.openForReading()
                let days = try store.database.read { try PurchaseDays.load($0, through: holdout ?? end) }
                let scale = unit == .weeks ? 7.0 : 1.0
                var customers: [PurchaseSummary] = []
                var spend: [(frequency: Int, meanValue: Double)] = []
                var returned: [Bool] = []
                for (_, all) in days.sorted(by: { $0.key < $1.key }) {
                    let calibration = all.filter { $0.day <= end }
                    guard !calibration.isEmpty else { continue }
                    customers.append(PurchaseSummary(days: calibration.map(\.day), end: Double(end), unitDays: scale))
                    let repeats = calibration.dropFirst().map(\.value)
                    spend.append((repeats.count, repeats.isEmpty ? 0 : repeats.reduce(0, +) / Double(repeats.count)))
                    returned.append(all.contains { $0.day > end })
                }
                guard customers.count >= BGNBD.minCustomers else { throw CLIError("only \(customers.count) customers bought by \(cutoff); BG/NBD needs more", code: 1) }
                let (model, logLikelihood) = BGNBD.fit(customers)
                let usable = spend.filter { $0.frequency > 0 && $0.meanValue > 0 }
                let value = usable.count >= 10 ? GammaGamma.fit(usable).model : nil
                var auc: Double?
                if let holdout {
                    let horizon = Double(holdout - end) / scale
                    auc = Metrics.auc(scores: customers.map { model.expectedPurchases($0, in: horizon) }, labels: returned)
                }
                struct Spend: Encodable { var p, q, v: Double; var customers: Int }
                struct Out: Encodable { var r, alpha, a, b, loglik: Double; var customers: Int; var unit: String; var auc: Double?; var spend: Spend? }
                let result = Out(
                    r: model.r, alpha: model.alpha, a: model.a, b: model.b, loglik: logLikelihood, customers: customers.count, unit: unit.rawValue,
                    auc: auc, spend: value.map { Spend(p: $0.p, q: $0.q, v: $0.v, customers: usable.count) })
                if output.json { return try printJSON(result) }
                print(String(format: "BG/NBD on %d customers (unit %@): r %.4f  alpha %.4f  a %.4f  b %.4f  log-likelihood %.2f",
                             customers.count, unit.rawValue, model.r, model.alpha, model.a, model.b, logLikelihood))
                if let auc { print(String(format: "holdout AUC (any purchase after the cutoff): %.4f", auc)) }
                if let value { print(String(format: "Gamma-Gamma spend on %d repeat customers: p %.4f  q %.4f  v %.4f", usable.count, value.p, value.q, value.v)) }
            }
        }
    }
}
