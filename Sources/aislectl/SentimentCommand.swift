import AisleCore
import AisleStore
import ArgumentParser
import Foundation

struct SentimentCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sentiment",
        abstract: "Review sentiment as the agent scored it: per product (least liked first) and per month.",
        discussion: """
            The agent scores every review with the active sentiment model (`aislectl model list \
            sentiment`); scores are P(positive), 0 to 1.

            Example: aislectl sentiment --min-reviews 5 --limit 20
            """)
    @Option(help: "Only products with at least this many scored reviews.") var minReviews = 3
    @Option(help: "Products to show.") var limit = 20
    func validate() throws {
        try requirePositive(limit, "--limit")
        try requirePositive(minReviews, "--min-reviews")
    }
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try reporting {
            let (items, months) = try storeOptions.openForReading().database.read { db in
                (try ReviewSentiment.byItem(db, minReviews: minReviews), try ReviewSentiment.byMonth(db))
            }
            struct Item: Encodable { var sku: String; var title: String; var sentiment: ReviewSentiment.Aggregate }
            struct Month: Encodable { var month: String; var sentiment: ReviewSentiment.Aggregate }
            struct Out: Encodable { var products: [Item]; var months: [Month] }
            let out = Out(products: items.prefix(limit).map { Item(sku: $0.sku, title: $0.title, sentiment: $0.sentiment) },
                          months: months.map { Month(month: $0.month, sentiment: $0.sentiment) })
            if output.json { return try printJSON(out) }
            if months.isEmpty { return print("no scored reviews yet (the agent scores them in the background)") }
            print("products, least liked first (mean P(positive), share positive, reviews):")
            for i in out.products {
                print(String(format: "  %@  %.2f  %3.0f%%  %5d  %@", i.sku, i.sentiment.meanScore, 100 * i.sentiment.positiveShare, i.sentiment.reviews, i.title))
            }
            print("by month:")
            for m in out.months { print(String(format: "  %@  %.2f  %3.0f%%  %5d", m.month, m.sentiment.meanScore, 100 * m.sentiment.positiveShare, m.sentiment.reviews)) }
        }
    }
}
