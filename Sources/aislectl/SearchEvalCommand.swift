import AisleAssist
import AisleCore
import AisleInsight
import AisleStore
import AisleText
import ArgumentParser
import Foundation

extension EvalCommand {
    struct Search: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Known-item search: lexical, dense and hybrid retrieval on queries made from catalog titles.",
            discussion: """
                Each query is 2–4 words of one item's title, lower-cased, with typos (docs/MODELS.md); \
                the target is that item. Prints, per method, MRR@10 and Recall@10, and the hybrid's \
                MRR@10 gain over each with a 95 % paired bootstrap interval. The catalog's title \
                embeddings are computed once and cached in the store.

                Example: aislectl eval search --json
                """)
        @Option(help: "How many queries (at most one per item with a title of its own).") var queries = 5000
        func validate() throws { try requirePositive(queries, "--queries") }
        @Option(help: "The seed the queries are drawn with.") var seed: UInt64 = 7
        @Option(help: ArgumentHelp("The int8 encoder.", valueName: "FILE")) var encoder: String = EncoderChoice.defaultInt8Path
        @Option(help: "Print this many sample queries and the hybrid's first hit.") var show = 0
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        struct Out: Encodable {
            var queries: Int
            var items: Int
            var lexical: KnownItemSearch.Scores
            var dense: KnownItemSearch.Scores
            var hybrid: KnownItemSearch.Scores
            var hybridGain: [String: Gain]
            var seconds: Double
        }

        struct Gain: Encodable {
            var mrr: Double
            var ci95: [Double]

            enum CodingKeys: String, CodingKey {
                case mrr = "mrr@10"
                case ci95
            }

            init(_ g: (value: Double, low: Double, high: Double)) { (mrr, ci95) = (g.value, [g.low, g.high]) }
        }

        func run() throws {
            try reporting {
                let started = Date()
                let store = try Store.open(at: try storeOptions.directory())
                let model = try TextModel.load(path: encoder, threads: 2)
                let embeddings = try CatalogEmbeddings.load(store, model: model)
                let search = try store.database.read { db in try CatalogSearch(db, embeddings: embeddings, encoderKey: model.cacheKey, themes: nil) }
                let sample = KnownItemSearch.queries(search, count: queries, seed: seed)
                guard !sample.isEmpty else { throw CLIError("the catalog has no items with two or more title words to search for") }
                // Dense alone embeds the query as typed; the hybrid embeds it spelling-corrected.
                let vectors = TextInputs.embed(sample.map(\.text), model)
                let correctedVectors = TextInputs.embed(sample.map { search.corrected($0.text) }, model)
                let scores = try store.database.read { db in
                    try CatalogSearch.Mode.allCases.map { mode in
                        try KnownItemSearch.score(search, db, queries: sample, vectors: mode == .hybrid ? correctedVectors : vectors, mode: mode)
                    }
                }
                if show > 0 {
                    try store.database.read { db in
                        for (query, vector) in zip(sample, correctedVectors).prefix(show) {
                            let first = try search.search(db, query: query.text, vector: vector, k: 1).first
                            let target = search.items.first { $0.id == query.target }?.title ?? "?"
                            printError("\"\(query.text)\" → \(first?.item.title ?? "nothing")\(first?.item.id == query.target ? " ✓" : " (wanted \(target))")")
                        }
                    }
                }
                let gain = ["over_lexical": Gain(scores[2].gain(over: scores[0])), "over_dense": Gain(scores[2].gain(over: scores[1]))]
                let out = Out(
                    queries: sample.count, items: search.items.count, lexical: scores[0], dense: scores[1], hybrid: scores[2], hybridGain: gain,
                    seconds: Date().timeIntervalSince(started))
                if output.json { return try printJSON(out) }
                print("known-item search, \(out.queries) queries over \(out.items) items:")
                for (name, s) in zip(["lexical", "dense", "hybrid"], scores) { print(String(format: "  %-8@ MRR@10 %.4f  Recall@10 %.4f", name as NSString, s.mrr, s.recall)) }
                for name in ["lexical", "dense"] {
                    guard let g = gain["over_\(name)"] else { continue }
                    print(String(format: "  hybrid − %@: MRR@10 %+.4f (95%% CI %+.4f to %+.4f)", name, g.mrr, g.ci95[0], g.ci95[1]))
                }
            }
        }
    }
}
