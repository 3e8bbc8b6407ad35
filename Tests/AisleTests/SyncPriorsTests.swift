import AisleRecommend
import AisleStore
import AisleSync
import Foundation
import GRDB
import Testing

/// Anonymised feature deltas and global priors with real processes: four stores of UCI Online
/// Retail (customers split by id) send their noised, thresholded item, category and pair counts;
/// the hub sums them into signed global priors; a fifth store opening on 2011-09-01 with one week
/// of its own sales predicts its customers' next baskets better from the priors.
@Suite struct SyncPriorsTests {
    static func gunzip(_ file: URL) throws -> [Substring] {
        let r = try TestSupport.runExternal("/bin/gzip", ["-dc", file.path])
        guard r.status == 0 else { throw TestFailure("gzip: \(r.err)") }
        return r.out.split(separator: "\n")
    }

    /// Enrolled stores of UCI Online Retail, invoices split by customer id (by invoice number
    /// when anonymous) into `count` stores; store `s` keeps the lines whose date `keep(s, date)`.
    static func retailStores(_ hub: HubFixture, count: Int, keep: (Int, Substring) -> Bool) throws -> [URL] {
        let data = try #require(TestSupport.shared).appendingPathComponent("data/online_retail")
        let invoices = try Self.gunzip(data.appendingPathComponent("invoices.csv.gz"))
        let lines = try Self.gunzip(data.appendingPathComponent("lines.csv.gz"))
        var storeOf: [Substring: Int] = [:]
        for row in invoices.dropFirst() {
            let f = row.split(separator: ",", omittingEmptySubsequences: false)
            guard f.count >= 2 else { continue }
            storeOf[f[0]] = Int(f[1].isEmpty ? f[0].filter(\.isNumber) : f[1]).map { $0 % count } ?? 0
        }
        var stores: [URL] = []
        for s in 0..<count {
            let mine = lines.dropFirst().filter { line in
                let f = line.split(separator: ",", maxSplits: 2, omittingEmptySubsequences: false)
                return f.count == 3 && storeOf[f[0]] == s && keep(s, f[1])
            }
            let dir = hub.dir.appendingPathComponent("retail-\(s)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            try TestSupport.write(([lines[0]] + mine).joined(separator: "\n") + "\n", to: dir.appendingPathComponent("lines.csv"))
            try TestSupport.write(invoices.joined(separator: "\n") + "\n", to: dir.appendingPathComponent("invoices.csv"))
            let store = dir.appendingPathComponent("store")
            #expect(try TestSupport.run("aislectl", ["init", "--store", store.path]).status == 0)
            let imported = try TestSupport.run("aislectl", [
                "import", "online-retail", dir.appendingPathComponent("lines.csv").path, dir.appendingPathComponent("invoices.csv").path, "--store", store.path, "--quiet",
            ])
            #expect(imported.status == 0 || imported.status == 3, "\(imported.err)")
            stores.append(try hub.enrolledStore(name: "retail \(s)", existing: store))
        }
        return stores
    }

    /// A window released again carries the same noise, so averaging releases takes none of it
    /// away; another window, or another store, draws other noise.
    @Test func aWindowReleasedAgainCarriesTheSameNoise() throws {
        let t0 = 1_700_000_000
        let lines = (0..<30).flatMap { r in ["A", "B", "C"].map { #"{"ts":\#(t0 + r),"type":"purchase","customer":"c\#(r)","item":"\#($0)","receipt":"r\#(r)","qty":1,"price":2}"# } }
        func newStore() throws -> Store { try Store.open(at: URL(fileURLWithPath: try ModelsTests.store(events: lines, in: try TestSupport.temporaryDirectory()))) }
        let store = try newStore()
        let (first, again, nextDay) = try store.database.write { db in
            (try StorePriors.of(db, end: Int64(t0) + 86_400), try StorePriors.of(db, end: Int64(t0) + 86_400), try StorePriors.of(db, end: Int64(t0) + 2 * 86_400))
        }
        let one = try #require(first)
        #expect(one.items.count == 3 && one.items.values.allSatisfy { abs($0 - 30) < 10 } && one.items.values.contains { $0 != 30 }, "\(one.items)")
        // The total too: near 30, and not 30 in every window (each window draws its own).
        let totals = try store.database.write { db in try (1...5).map { try StorePriors.of(db, end: Int64(t0) + Int64($0) * 86_400)?.receipts ?? 0 } }
        #expect(abs(one.receipts - 30) < 10 && totals.contains { $0 != 30 }, "\(one.receipts) \(totals)")
        #expect(again == one)
        #expect(nextDay?.items != one.items)
        #expect(try newStore().database.write { try StorePriors.of($0, end: Int64(t0) + 86_400) }?.items != one.items)  // another store's key
    }

    /// Each count draws its own noise, so an item that drops out moves no other item's; and a
    /// window is released once, so two releases cannot be subtracted to show what changed.
    @Test func eachCountKeepsItsNoiseAndAWindowIsReleasedOnce() throws {
        let t0 = 1_700_000_000
        let lines = (0..<30).flatMap { r in ["A", "B", "C"].map { #"{"ts":\#(t0 + r),"type":"purchase","customer":"c\#(r)","item":"\#($0)","receipt":"r\#(r)","qty":1,"price":2}"# } }
        let store = try Store.open(at: URL(fileURLWithPath: try ModelsTests.store(events: lines, in: try TestSupport.temporaryDirectory())))
        let end = Int64(t0) + 86_400
        let before = try #require(try store.database.write { try StorePriors.of($0, end: end) })
        try store.database.write { try $0.execute(sql: "DELETE FROM events WHERE item_id = (SELECT id FROM items WHERE sku = 'B')") }
        let after = try #require(try store.database.write { try StorePriors.of($0, end: end) })
        #expect(after.items["B"] == nil && after.items.count == 2, "\(after.items)")
        #expect(after.items["A"] == before.items["A"] && after.items["C"] == before.items["C"], "\(before.items) \(after.items)")
        #expect(try store.database.write { try StorePriors.enqueue($0, end: end) } != nil)
        #expect { try store.database.write { try StorePriors.enqueue($0, end: end) } } throws: { "\($0)".contains("a window is released once") }
    }

    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func aNewStoreStartsBetterFromTheGlobalPriorsThanFromItsOwnFirstWeek() async throws {
        let hub = try await HubFixture()
        // Stores 0–3: everything before 2011-09-01. Store 4 opens then: a week before, four weeks after.
        let stores = try Self.retailStores(hub, count: 5) { s, date in s < 4 ? date < "2011-09-01" : date >= "2011-08-25" && date < "2011-09-29" }
        // The four stores sync (each pass queues its priors: the last 28 days, noised, counts ≥ 11).
        for store in stores.prefix(4) { #expect(try TestSupport.run("aislectl", ["sync", "now", "--store", store.path]).status == 0) }
        let published = try hub.cli(["models", "priors"])
        #expect(published.status == 0 && published.out.contains("4 stores"), "\(published.out)\(published.err)")
        // Nothing below the threshold travelled, and no customer did.
        let uploads = try hub.read { try Data.fetchAll($0, sql: "SELECT payload FROM uploads WHERE kind = 'priors'") }
        #expect(uploads.count == 4)
        // Every name in them is a catalog item's SKU: no customer id (Online Retail's are numbers like 17850) travelled.
        var skus = Set<String>()
        for store in stores.prefix(4) { skus.formUnion(try await Store.open(at: store, readOnly: true).database.read { try String.fetchAll($0, sql: "SELECT sku FROM items") }) }
        for payload in uploads {
            struct P: Decodable { var items: [String: Double]; var pairs: [Pair]; struct Pair: Decodable { var a, b: String; var count: Double } }
            let p = try JSONDecoder().decode(P.self, from: payload)
            let least = Double(StorePriors.defaultMinCount)
            #expect(!p.items.isEmpty && p.items.values.allSatisfy { $0 >= least } && p.pairs.allSatisfy { $0.count >= least })
            #expect(Set(p.items.keys).isSubset(of: skus) && p.pairs.allSatisfy { skus.contains($0.a) && skus.contains($0.b) })
        }
        // The new store takes the priors and is scored on its customers' next baskets.
        let synced = try TestSupport.run("aislectl", ["sync", "now", "--store", stores[4].path])
        #expect(synced.out.contains("priors global v1: installed"), "\(synced.out)")
        let eval = try TestSupport.run("aislectl", ["eval", "coldstart", "--store", stores[4].path, "--cutoff", "2011-09-01", "--history-days", "7", "--json"])
        struct Out: Decodable { var users: Int; var recallOwn: Double; var recallPriors: Double; var recallServedOwn: Double; var recallServedPriors: Double }
        let d = JSONDecoder()
        d.keyDecodingStrategy = .convertFromSnakeCase
        let out = try d.decode(Out.self, from: Data(eval.out.utf8))
        print("cold start: \(out.users) customers, recall@10 own first week \(out.recallOwn), global priors \(out.recallPriors); the agent's slate \(out.recallServedOwn) → \(out.recallServedPriors) with the priors")
        #expect(out.users >= 100 && out.recallPriors > out.recallOwn && out.recallServedPriors > out.recallServedOwn, "\(eval.out)")
        #expect(FleetPopularity.kind == StorePriors.kind)
    }
}
