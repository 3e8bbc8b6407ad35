import AisleCore
import AisleFeatures
import AisleIngest
import AisleInsight
import AisleStore
import AisleText
import ArgumentParser
import Foundation
import GRDB

struct InitCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create a new store: its directory, database and secret.",
        discussion: """
            The secret (32 random bytes, mode 0600) keys the hash that replaces customer ids. Keep \
            a copy: with --import-secret a replacement appliance keeps the same pseudonyms.

            Example: aislectl init --store /var/lib/aisle/store
            """)

    @OptionGroup var storeOptions: StoreOptions
    @Option(help: ArgumentHelp("Use this 32-byte secret instead of a new random one.", valueName: "FILE"))
    var importSecret: String?
    @OptionGroup var output: OutputOptions

    func run() throws {
        try reporting {
            let dir = try storeOptions.directory()
            var secret: Data?
            if let importSecret {
                guard let data = FileManager.default.contents(atPath: importSecret) else {
                    throw CLIError("cannot read \(importSecret)")
                }
                secret = data
                // A backup's own modes are its keeper's (a USB stick shows 755), but worth a word.
                var info = stat()
                if stat(importSecret, &info) == 0, info.st_mode & 0o077 != 0 {
                    FileHandle.standardError.write(Data("warning: \(importSecret) has mode \(String(info.st_mode & 0o777, radix: 8)): whoever can read it can link pseudonyms to customers; keep it 600, or remove it once imported\n".utf8))
                }
            }
            let store = try StoreSetup.initialise(at: dir, importedSecret: secret)
            try store.audit("init", detail: importSecret == nil ? "new secret" : "imported secret")
            struct Out: Encodable { var store: String; var created: Bool }
            if output.json { try printJSON(Out(store: dir.path, created: true)) } else { print("created store at \(dir.path)") }
        }
    }
}

struct StatusCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show what the store holds and the last import.",
        discussion: "Example: aislectl status --store demo-data/store --json")

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try reporting {
            let store = try storeOptions.openForReading()
            let dir = store.directory
            let s = try store.database.read { try Queries.status($0, diskBytes: store.diskBytes) }
            if output.json { return try printJSON(s) }
            print("store      \(dir.path) (schema \(s.schemaVersion), \(ByteCountFormatter.string(fromByteCount: s.databaseBytes, countStyle: .file)))")
            print("events     \(s.events.formatted())  " + s.eventsByType.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.formatted())" }.joined(separator: ", "))
            print("customers  \(s.customers.formatted())   items \(s.items.formatted())   receipts \(s.receipts.formatted())   sessions \(s.sessions.formatted())")
            print("period     \(s.firstEvent ?? "-") … \(s.lastEvent ?? "-")")
            if let r = s.lastImport {
                print("last import #\(r.id) \(r.kind) \(r.status) at \(r.startedAt): \(r.lines.formatted()) lines, \(r.accepted.formatted()) accepted, \(r.duplicates.formatted()) duplicates, \(r.rejected.formatted()) rejected")
            }
        }
    }
}

struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Check the database's integrity and print a digest of its content.",
        discussion: """
            The digest covers customers, items, prices, sessions, receipts and events, not row ids \
            or bookkeeping: two stores with the same secret and the same data have the same digest. \
            Also lists the store's files that others (neither owner nor group) can reach. Exits 65 \
            when the integrity check fails or a file is open to others.

            Example: aislectl check --store demo-data/store
            """)

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try reporting {
            let store: Store
            do { store = try storeOptions.openForReading() } catch let error as DatabaseError where error.isDamagedFile {
                throw CLIError("the store does not open: \(error)", code: 65)  // a damaged header fails before the check can run
            }
            struct Out: Encodable { var integrity: [String]; var digest: String; var openToOthers: [String] }
            let open = store.openToOthers.map { "\($0.name) \(String($0.mode, radix: 8))" }
            let out = try store.database.read { db in
                Out(integrity: try Queries.integrityCheck(db), digest: try ContentDigest.compute(db), openToOthers: open)
            }
            if output.json { try printJSON(out) } else {
                print("integrity  \(out.integrity.joined(separator: "; "))")
                print("digest     \(out.digest)")
                print("access     " + (open.isEmpty ? "ok" : "open to others (chmod g-w,o-rwx; key files 600): " + open.joined(separator: ", ")))
            }
            if out.integrity != ["ok"] || !open.isEmpty { throw ExitCode(65) }
        }
    }
}

struct CustomerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "customer", abstract: "Look up customers by their raw id, or forget one.", subcommands: [Show.self, Forget.self])

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a customer's recent history and, with --insight, what the store knows of them.",
            discussion: """
                The raw id is hashed with the store secret to find the customer; aislectl neither \
                stores nor logs it. A command line is seen by other users and kept in sudo's log and \
                shell history: give - and the id on standard input to keep it out of them. Exits 4 \
                when the store has no such customer. --insight computes the agent's \
                customer insight (segment, RFM, BG/NBD, spend, churn risk and its drivers) as of the \
                store's latest event; it takes seconds, as it scores every customer.

                Example: aislectl customer show 17850 --store demo-data/store --limit 5
                """)

        @Argument(help: CustomerCommand.rawIDHelp) var rawID: String
        @Option(help: "How many events to show, newest first.") var limit = 20
        func validate() throws { try requirePositive(limit, "--limit") }
        @Flag(help: "Also show the customer's insight.") var insight = false
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                let store = try storeOptions.openForReading()
                let (id, pseudonym) = try CustomerCommand.find(rawID, in: store)
                let (history, customerInsight) = try store.database.read { db -> ([HistoryEntry], CustomerInsight?) in
                    let history = try Queries.history(db, customerID: id, limit: limit)
                    guard insight, let last = try Queries.lastEventTime(db) else { return (history, nil) }
                    var found = try CustomerInsight.computeAll(db, asOf: last + 1).insight[id]
                    if let (model, version) = try IntentModel.active(db) {
                        let now = Int64(Date().timeIntervalSince1970)
                        let rates = try IntentFeatures.ConversionRates.load(db, before: last + 1)
                        let recent = try IntentFeatures.recent(db, unit: .init(session: nil, customer: id), asOf: now, lookback: Int64(model.lookbackMinutes) * 60)
                        found?.purchaseIntent = model.score(recent.events, purchasesBefore: recent.purchasesBefore, asOf: now, rates: rates, version: version)
                    }
                    return (history, found)
                }
                struct Out: Encodable { var customer: String; var events: [HistoryEntry]; var insight: CustomerInsight? }
                let out = Out(customer: Pseudonym.display(pseudonym), events: history, insight: customerInsight)
                if output.json { return try printJSON(out) }
                if let i = customerInsight {
                    print("customer \(out.customer) as of \(i.asOf): \(i.segment) (R \(i.rfm["r"] ?? 0) F \(i.rfm["f"] ?? 0) M \(i.rfm["m"] ?? 0))")
                    print(String(format: "  churn risk %.2f (%@); P(alive) %.2f; %.1f purchases expected in %d days, %.2f each",
                                 i.churnProbability, i.churnDrivers.map { String(format: "%@ %+.2f", $0.feature, $0.contribution) }.joined(separator: ", "),
                                 i.probabilityAlive, i.expectedPurchases, i.horizonDays, i.expectedValuePerPurchase))
                    if !i.interests.isEmpty {
                        print("  interests: " + i.interests.map { String(format: "%@ %.0f%%", $0.name, 100 * $0.share) }.joined(separator: ", "))
                    }
                    if let s = i.sentiment { print(String(format: "  reviews: %d, mean P(positive) %.2f", s.reviews, s.meanScore)) }
                    if let p = i.purchaseIntent { print(String(format: "  purchase intent now: %.3f within %d minutes (%d recent events; %@)", p.probability, p.horizonMinutes, p.events, p.model)) }
                }
                print("customer \(out.customer) — last \(history.count) events")
                for e in history {
                    let what = [e.item, e.title].compactMap { $0 }.joined(separator: " ")
                    let price = e.price.map { String(format: " @ %.2f", $0) } ?? ""
                    print("  \(e.ts)  \(e.type.padding(toLength: 8, withPad: " ", startingAt: 0)) \(e.qty) × \(what)\(price)\(e.receipt.map { "  [\($0)]" } ?? "")")
                }
            }
        }
    }
}

extension CustomerCommand {
    static let rawIDHelp = ArgumentHelp(
        "The customer's raw identifier (loyalty card, account number), or - to read it from standard input.", valueName: "raw-id")

    /// The store id and pseudonym of a raw customer id (hashed with the store secret; `-`: the
    /// first line of standard input); exit 4 when the store has no such customer.
    static func find(_ rawID: String, in store: Store) throws -> (id: Int64, pseudonym: Data) {
        let rawID = try valueOrStandardInput(rawID, "the customer's id")
        let pseudonym = try Pseudonymizer(storeDirectory: store.directory).pseudonym(Normalize.text(rawID))
        guard let id = try store.database.read({ try Queries.customerID($0, pseudonym: pseudonym) }) else {
            throw CLIError("no customer with that id in this store", code: 4)
        }
        return (id, pseudonym)
    }

    struct Forget: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Erase everything the store holds about a customer (a request to be forgotten).",
            discussion: """
                Deletes the customer's events — with the review scores, text themes and cached \
                text embeddings made from them — receipts, kiosk sessions, the recommendations \
                served to them and the customer itself — the slates from the log's file first, \
                then the rest in one transaction — the deleted rows overwritten (SQLite \
                secure_delete); the customer row keeps only its id, under a random pseudonym. \
                Then truncates both files' write-ahead logs (exit 1 if the agent keeps them busy \
                for 30 s: they are deleted when the agent stops). Store-wide \
                daily sales totals keep their figures; they name no one. A running agent stops \
                serving the customer within seconds; the audit log records the erasure and its \
                counts, not whose. Backups and files imported from still hold the customer: \
                importing such a file brings them back. Exits 4 when the store has no such customer.

                Example (the id on standard input, so that no process list or log holds it): \
                read -rs id && printf '%s\\n' "$id" | aislectl customer forget - --yes
                """)

        @Argument(help: CustomerCommand.rawIDHelp) var rawID: String
        @Flag(help: "Confirm: the erasure cannot be undone.") var yes = false
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() throws {
            try reporting {
                guard yes else { throw CLIError.usage("this erases the customer's data for good; add --yes to go ahead") }
                let store = try Store.open(at: try storeOptions.directory())
                if let left = try CustomerErasure.finishPending(store) {
                    FileHandle.standardError.write(Data("an interrupted erasure was finished first\(left.isEmpty ? "" : " (its write-ahead logs not yet truncated)")\n".utf8))
                }
                let (id, pseudonym) = try CustomerCommand.find(rawID, in: store)
                let erased = try CustomerErasure.erase(store, customer: id, embeddingKey: EncoderService.key)
                let walErrors = CustomerErasure.truncateLogs(store)
                let walError = walErrors.isEmpty ? nil : walErrors.joined(separator: "; ")
                struct Out: Encodable { var customer: String; var erased: CustomerErasure.Erased; var walTruncated: Bool }
                let out = Out(customer: Pseudonym.display(pseudonym), erased: erased, walTruncated: walError == nil)
                if output.json { try printJSON(out) } else {
                    print("customer \(out.customer) forgotten: \(erased.events) events, \(erased.receipts) receipts, \(erased.sessions) sessions, \(erased.slates) recommendation slates, \(erased.embeddings) cached text embeddings")
                }
                if let walError {
                    throw CLIError("""
                        erased, but the write-ahead log was not truncated (\(walError)): it still holds older copies of the \
                        rows until SQLite deletes it, when the agent stops
                        """)
                }
            }
        }
    }
}

struct TopItemsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top-items",
        abstract: "Best-selling items by units in a window.",
        discussion: """
            Without --from/--to the window is the calendar month of the store's latest event.

            Example: aislectl top-items --from 2011-11-01 --to 2011-12-01 --limit 5
            """)

    @Option(help: "Start of the window (inclusive), e.g. 2011-11-01.") var from: String?
    @Option(help: "End of the window (exclusive).") var to: String?
    @Option(help: "How many items.") var limit = 10
    func validate() throws { try requirePositive(limit, "--limit") }
    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() throws {
        try reporting {
            let window: TopItemsWindow
            do { window = try TopItemsWindow(from: from, to: to) } catch let e as FieldError { throw CLIError.usage("--\(e.field ?? "from") \(e.reason)") }
            let store = try storeOptions.openForReading()
            let r = try store.database.read { try window.query($0, limit: limit) }
            struct Out: Encodable { var from: String; var to: String; var items: [TopItem] }
            if output.json { return try printJSON(Out(from: Timestamp.format(r.from), to: Timestamp.format(r.to), items: r.items)) }
            print("top items \(Timestamp.format(r.from)) … \(Timestamp.format(r.to))")
            for (n, i) in r.items.enumerated() {
                let rank = String(n + 1).leftPad(3), sku = i.item.padding(toLength: 9, withPad: " ", startingAt: 0)
                let title = String(i.title.prefix(40)).padding(toLength: 41, withPad: " ", startingAt: 0)
                print("\(rank). \(sku)\(title)\(String(i.units).leftPad(8)) units \(String(format: "%11.2f", i.revenue)) \(String(i.customers).leftPad(6)) customers")
            }
        }
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
