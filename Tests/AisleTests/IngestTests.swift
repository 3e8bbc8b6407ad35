import AisleSync
import AisleCore
import AisleHub
import AisleIngest
import AisleStore
import Foundation
import GRDB
import Testing

/// A fresh store in a temporary directory.
struct TempStore {
    let directory: URL
    let store: Store

    init(secret: Data? = nil) throws {
        directory = try TestSupport.temporaryDirectory().appendingPathComponent("store")
        store = try StoreSetup.initialise(at: directory, importedSecret: secret ?? Data(repeating: 7, count: 32))
    }

    func importer(kind: String = "events", rejects: String? = nil) throws -> Importer {
        var options = ImportOptions()
        options.quiet = true
        options.rejectsPath = rejects
        options.batchSize = 7
        return try Importer(store: store, pseudonymizer: try Pseudonymizer(storeDirectory: directory), kind: kind, source: "test", options: options)
    }

    func importEvents(_ text: String, rejects: String? = nil) throws -> ImportReport {
        let file = directory.deletingLastPathComponent().appendingPathComponent("events-\(UUID().uuidString.prefix(6)).jsonl")
        try Data(text.utf8).write(to: file)
        let imp = try importer(rejects: rejects)
        try Sources.importEvents(path: file.path, into: imp)
        return try imp.finish()
    }

    func digest() throws -> String { try store.database.read { try ContentDigest.compute($0) } }
    func count(_ sql: String) throws -> Int { try store.database.read { try Int.fetchOne($0, sql: sql) ?? -1 } }
}

extension Data {
    var hex: String { Hex.string(self) }
}

@Suite struct IngestTests {
    @Test func mixedFileKeepsEveryValidRowAndRejectsEachBadOneWithItsLine() throws {
        let s = try TempStore()
        var lines: [[UInt8]] = [
            Array(#"{"ts":"2011-09-01 08:26","type":"purchase","customer":"c1","receipt":"r1","item":"A","qty":2,"price":1.5}"#.utf8),
            Array(#"{"ts":"2011-09-01 08:26","type":"purchase","customer":"c1","receipt":"r1","item":"B"#.utf8),  // malformed JSON
            Array(#"{"ts":"2011-09-01 08:27","type":"view","customer":"c2","item":"A"}"#.utf8),
            Array(#"{"ts":"2011-09-01 08:28","type":"purchase","item":"A","qty":"three"}"#.utf8),  // wrong type
            Array(#"{"ts":"2011-09-01 08:29","type":"purchase","item":"A","qty":5000000}"#.utf8),  // absurd value
            Array(#"{"ts":"2011-09-01 08:30","type":"levitate","item":"A"}"#.utf8),  // unknown type
            Array(#"{"ts":"2011-09-31 08:30","type":"view","item":"A"}"#.utf8),  // bad date
            Array(#"{"ts":"2011-09-01 08:31","type":"review","item":"A","text":"caf"#.utf8) + [0xE9] + Array(#"","rating":4}"#.utf8),  // invalid UTF-8
            [],  // blank line: skipped, not a reject
            Array(#"{"ts":"2011-09-01 08:32","type":"search","session":"k1","text":"red  teapot"}"#.utf8),
            Array(#"{"ts":"2011-09-01 08:33","type":"purchase","customer":"c2","receipt":"r2","item":"A","price":-4}"#.utf8),  // negative price
            Array(#"{"ts":"2011-09-01 08:34","type":"return","customer":"c1","receipt":"r3","item":"A","qty":1,"price":1.5}"#.utf8),
        ]
        lines.append(Array("not json at all".utf8))
        let file = s.directory.deletingLastPathComponent().appendingPathComponent("mixed.jsonl")
        try Data(lines.joined(separator: [10]) + [10]).write(to: file)
        let rejectsFile = s.directory.deletingLastPathComponent().appendingPathComponent("rejects.jsonl").path
        let imp = try s.importer(rejects: rejectsFile)
        try Sources.importEvents(path: file.path, into: imp)
        let report = try imp.finish()

        #expect(report.lines == 12)
        #expect(report.accepted == 4)
        #expect(report.rejected == 8)
        #expect(report.duplicates == 0)
        let rejects = try String(contentsOfFile: rejectsFile, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(Reject.self, from: Data($0.utf8))
        }
        let byLine = Dictionary(uniqueKeysWithValues: rejects.map { ($0.line, $0) })
        #expect(byLine.keys.sorted() == [2, 4, 5, 6, 7, 8, 11, 13])
        #expect(byLine[2]?.reason.hasPrefix("malformed JSON at byte") == true)
        #expect(byLine[4]?.field == "qty" && byLine[4]?.reason == "expected an integer, got string")
        #expect(byLine[5]?.field == "qty" && byLine[5]?.reason.hasPrefix("absurd") == true)
        #expect(byLine[6]?.field == "type" && byLine[6]?.reason == "unknown event type; one of view, cart, fav, purchase, return, review, search, question")
        #expect(byLine[7]?.field == "ts" && byLine[7]?.reason == "no such date or time")
        #expect(byLine[8]?.reason == "invalid UTF-8")
        #expect(byLine[11]?.field == "price" && byLine[11]?.reason == "negative")
        #expect(rejects.allSatisfy { $0.file == "mixed.jsonl" })
        // The rejects are in the store too, and the return found its sale.
        #expect(try s.count("SELECT count(*) FROM import_rejects") == 8)
        #expect(try s.count("SELECT count(*) FROM events") == 4)
        #expect(try s.count("SELECT count(*) FROM events WHERE type = 'return' AND sale_event_id IS NOT NULL") == 1)
        #expect(try s.count("SELECT count(*) FROM events WHERE text = 'red teapot'") == 1)
    }

    /// Key files others may read are refused by what reads them, by their mode as opened.
    @Test func keyFilesOthersMayReadAreRefused() throws {
        let store = try TempStore()
        let secret = store.directory.appendingPathComponent(Store.secretFileName).path
        #expect(throws: Never.self) { try Pseudonymizer(storeDirectory: store.directory) }
        try FileManager.default.setAttributes([.posixPermissions: 0o640], ofItemAtPath: secret)
        #expect { try Pseudonymizer(storeDirectory: store.directory) } throws: { "\($0)".contains("mode 640") && "\($0)".contains("chmod 600") }
        let identity = store.directory.appendingPathComponent(Store.syncIdentityFileName).path
        _ = try SyncIdentity.loadOrCreate(path: identity)
        try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: identity)
        #expect { try SyncIdentity.load(path: identity) } throws: { "\($0)".contains("has mode 644") }
    }

    @Test func importingAgainAddsNothing() throws {
        let s = try TempStore()
        let text = (0..<40).map { i in
            #"{"ts":\#(1_300_000_000 + i * 60),"type":"purchase","customer":"c\#(i % 6)","receipt":"r\#(i / 3)","item":"SKU\#(i % 9)","qty":\#(1 + i % 4),"price":\#(Double(i % 5) + 0.25)}"#
        }.joined(separator: "\n")
        let first = try s.importEvents(text)
        let digest = try s.digest()
        let second = try s.importEvents(text)
        #expect(first.accepted == 40 && first.duplicates == 0)
        #expect(second.accepted == 0 && second.duplicates == 40)
        #expect(try s.digest() == digest)
        #expect(try s.count("SELECT count(*) FROM import_runs WHERE status = 'completed'") == 2)
    }

    @Test func duplicatesByIdAndByContentAreDroppedAndCounted() throws {
        let s = try TempStore()
        let report = try s.importEvents("""
            {"id":"e1","ts":1300000000,"type":"view","item":"A"}
            {"id":"e1","ts":1300000099,"type":"view","item":"B"}
            {"ts":1300000000,"type":"cart","item":"A","customer":"x"}
            {"ts":1300000000,"type":"cart","item":"A","customer":"x"}
            {"ts":1300000000,"type":"cart","item":"A","customer":"y"}
            """)
        #expect(report.accepted == 3 && report.duplicates == 2)
    }

    @Test func gzipAndPlainFilesGiveTheSameStore() throws {
        let text = (0..<25).map { #"{"ts":\#(1_300_000_000 + $0),"type":"view","item":"I\#($0 % 4)","session":"s\#($0 % 3)"}"# }.joined(separator: "\n")
        let plain = try TempStore()
        _ = try plain.importEvents(text)
        let gz = try TempStore()
        let dir = try TestSupport.temporaryDirectory()
        let file = dir.appendingPathComponent("e.jsonl")
        try Data(text.utf8).write(to: file)
        try TestSupport.gzip(file)
        let imp = try gz.importer()
        try Sources.importEvents(path: file.path + ".gz", into: imp)
        #expect(try imp.finish().accepted == 25)
        #expect(try gz.digest() == plain.digest())
    }

    @Test func truncatedGzipIsReportedAndEarlierLinesKept() throws {
        let s = try TempStore()
        let dir = try TestSupport.temporaryDirectory()
        let file = dir.appendingPathComponent("big.jsonl")
        let text = (0..<20_000).map { #"{"ts":\#(1_300_000_000 + $0),"type":"view","item":"I\#($0 % 97)","session":"s\#($0)"}"# }.joined(separator: "\n")
        try Data(text.utf8).write(to: file)
        try TestSupport.gzip(file)
        let full = try Data(contentsOf: URL(fileURLWithPath: file.path + ".gz"))
        try full.prefix(full.count / 2).write(to: URL(fileURLWithPath: file.path + ".gz"))
        let imp = try s.importer()
        #expect { try Sources.importEvents(path: file.path + ".gz", into: imp) } throws: {
            "\($0)".contains("truncated or corrupt gzip data") || "\($0)".contains("unexpected end of file")
        }
        #expect(try s.count("SELECT count(*) FROM events") > 0)
        #expect(try s.store.database.read { try Queries.integrityCheck($0) } == ["ok"])
    }

    /// A read error ends the import, and every line read before it is written (the batch being
    /// filled included).
    @Test func aLineTooLongEndsTheImportAndKeepsEveryLineBefore() throws {
        let s = try TempStore()
        let file = try TestSupport.temporaryDirectory().appendingPathComponent("long.jsonl")
        var text = (0..<10).map { #"{"ts":\#(1_300_000_000 + $0),"type":"view","item":"I\#($0)","session":"s\#($0)"}"# }.joined(separator: "\n")
        text += "\n" + String(repeating: "x", count: 65 << 20) + "\n"
        try Data(text.utf8).write(to: file)
        let imp = try s.importer()
        #expect { try Sources.importEvents(path: file.path, into: imp) } throws: { "\($0)".contains("line 11 is longer than 64 MiB") }
        #expect(try s.count("SELECT count(*) FROM events") == 10)
    }

    /// Online Retail's files without their header lines: the first line is data, not skipped.
    @Test func onlineRetailFilesWithoutHeadersLoseNoLine() throws {
        let s = try TempStore()
        let dir = try TestSupport.temporaryDirectory()
        let (lines, invoices) = (dir.appendingPathComponent("lines.csv"), dir.appendingPathComponent("invoices.csv"))
        try Data("536365,2010-12-01 08:26,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2.55\n536365,2010-12-01 08:26,71053,WHITE METAL LANTERN,6,3.39\n".utf8)
            .write(to: lines)
        try Data("536365,17850,United Kingdom\n".utf8).write(to: invoices)
        let imp = try s.importer(kind: "online-retail")
        try OnlineRetail.importPair(lines: lines.path, invoices: invoices.path, into: imp)
        let r = try imp.finish()
        #expect(r.accepted == 2 && r.rejected == 0)
        #expect(try s.count("SELECT count(*) FROM events WHERE customer_id IS NOT NULL") == 2)
        // Header lines after a byte-order mark (as spreadsheets export) are headers still.
        let bom = "\u{FEFF}"
        try Data("\(bom)InvoiceNo,InvoiceDate,StockCode,Description,Quantity,UnitPrice\n536366,2010-12-01 08:28,22633,HAND WARMER UNION JACK,6,1.85\n".utf8).write(to: lines)
        try Data("\(bom)InvoiceNo,CustomerID,Country\n536366,17850,United Kingdom\n".utf8).write(to: invoices)
        let again = try s.importer(kind: "online-retail")
        try OnlineRetail.importPair(lines: lines.path, invoices: invoices.path, into: again)
        let r2 = try again.finish()
        #expect(r2.accepted == 1 && r2.rejected == 0, "\(r2)")
    }

    @Test func returnsLinkAnonymousBasketsAndItemDailyTotals() throws {
        let s = try TempStore()
        _ = try s.importEvents("""
            {"ts":"2011-01-01 10:00","type":"purchase","customer":"c1","receipt":"R1","item":"A","qty":3,"price":2}
            {"ts":"2011-01-01 10:00","type":"purchase","customer":"c1","receipt":"R1","item":"B","qty":1,"price":5}
            {"ts":"2011-01-01 11:00","type":"purchase","receipt":"R2","item":"A","qty":2,"price":2.5}
            {"ts":"2011-01-03 09:00","type":"purchase","customer":"c1","receipt":"C9","item":"A","qty":-1,"price":2}
            """)
        #expect(try s.count("SELECT count(*) FROM receipts") == 3)
        #expect(try s.count("SELECT count(*) FROM receipts WHERE customer_id IS NULL") == 1)
        #expect(try s.count("SELECT count(*) FROM events e JOIN events s ON s.id = e.sale_event_id WHERE e.type = 'return' AND s.receipt_id = (SELECT id FROM receipts WHERE key = 'R1')") == 1)
        let row = try s.store.database.read { try Row.fetchOne($0, sql: "SELECT purchases, units, revenue, returns, min_price, max_price FROM item_daily JOIN items ON items.id = item_id WHERE sku = 'A' AND day = 14975") }
        let purchases: Int? = row?["purchases"], units: Int? = row?["units"], revenue: Double? = row?["revenue"]
        let low: Double? = row?["min_price"], high: Double? = row?["max_price"]
        #expect(purchases == 2 && units == 5 && revenue == 11.0)
        #expect(low == 2.0 && high == 2.5)
    }

    @Test func timeRangeComesFromTheKeyIndex() throws {
        let s = try TempStore()
        #expect(try s.store.database.read { try Queries.timeRange($0) } == nil)
        _ = try s.importEvents("""
            {"ts":"2011-05-01 10:59:59","type":"view","item":"A"}
            {"ts":"2011-05-01 10:00:01","type":"view","item":"B"}
            {"id":"x","ts":"2011-06-02 23:30:00","type":"view","item":"A"}
            {"ts":"2011-06-02 23:59:30","type":"view","item":"C"}
            {"ts":"2011-05-20 12:00:00","type":"view","item":"C"}
            """)
        let range = try s.store.database.read { try Queries.timeRange($0) }
        #expect(range?.first == (try Timestamp.parse("2011-05-01 10:00:01")))
        #expect(range?.last == (try Timestamp.parse("2011-06-02 23:59:30")))
        let (lower, upper) = EventKey.range(from: try Timestamp.parse("2011-05-20"), to: try Timestamp.parse("2011-05-21"))
        #expect(try s.count("SELECT count(*) FROM events WHERE key >= X'\(lower.hex)' AND key < X'\(upper.hex)'") == 1)
    }

    @Test func recentTierIsQueriedAndSettlesWithoutChangingContent() throws {
        let s = try TempStore()
        let pseudonymizer = try Pseudonymizer(storeDirectory: s.directory)
        var preparer = EventPreparer(pseudonymizer: pseudonymizer)
        var writer = EventWriter(tier: Tiers.recent)
        let events = try [
            #"{"ts":"2011-01-01 10:00","type":"purchase","customer":"c1","receipt":"R1","item":"A","qty":2,"price":3}"#,
            #"{"ts":"2011-01-02 10:00","type":"purchase","customer":"c1","receipt":"R2","item":"B","price":5}"#,
            #"{"ts":"2011-01-03 10:00","type":"return","customer":"c1","receipt":"C3","item":"A","price":3}"#,
        ].map { try Interchange.event(from: try JSONParser.parse(Array($0.utf8))) }
        _ = try s.store.database.write { db in
            let outcomes = try writer.write(events.map { preparer.prepare($0) }, now: 0, db: db)
            try writer.finishTransaction(db)
            return outcomes
        }
        let customer = try s.store.database.read { try Queries.customerID($0, pseudonym: pseudonymizer.pseudonym("c1")) }
        let id = try #require(customer)
        func history() throws -> [HistoryEntry] { try s.store.database.read { try Queries.history($0, customerID: id, limit: 10) } }
        let before = try history()
        let digest = try s.digest()
        #expect(before.map(\.type) == ["return", "purchase", "purchase"])
        #expect(try s.count("SELECT count(*) FROM events WHERE tier = 0") == 3)
        #expect(try s.count("SELECT count(*) FROM events WHERE type = 'return' AND sale_event_id IS NOT NULL") == 1)
        #expect(try s.store.database.write { try Tiers.settle($0, limit: 2) } == 2)
        #expect(try s.store.database.write { try Tiers.settle($0, limit: 10) } == 1)
        #expect(try s.count("SELECT count(*) FROM events WHERE tier = 1") == 3)
        #expect(try history() == before)
        #expect(try s.digest() == digest)
    }

    @Test func outliersAreFlaggedNotDropped() throws {
        let s = try TempStore()
        var lines = (0..<30).map { #"{"ts":\#(1_300_000_000 + $0 * 3600),"type":"purchase","item":"MUG","qty":\#(1 + $0 % 6),"price":\#(3.0 + Double($0 % 3) * 0.1)}"# }
        lines.append(#"{"ts":1300200000,"type":"purchase","item":"MUG","qty":80995,"price":3.0}"#)
        lines.append(#"{"ts":1300300000,"type":"purchase","item":"MUG","qty":2,"price":3000}"#)
        let report = try s.importEvents(lines.joined(separator: "\n"))
        #expect(report.accepted == 32 && report.outliersFlagged == 2)
        #expect(try s.count("SELECT count(*) FROM events WHERE qty = 80995 AND flags = \(EventFlag.quantityOutlier)") == 1)
        #expect(try s.count("SELECT count(*) FROM events WHERE price = 3000 AND flags = \(EventFlag.priceOutlier)") == 1)
    }

    /// An import started again after a crash between its batches and its outlier pass flags
    /// what the first run wrote: the lines are all duplicates then, and touch no item.
    @Test func aRunAgainFlagsWhatACrashLeftUnflagged() throws {
        let s = try TempStore()
        var lines = (0..<12).map { #"{"ts":\#(1_300_000_000 + $0 * 3600),"type":"purchase","item":"MUG","qty":\#(1 + $0 % 3),"price":3.0}"# }
        lines.append(#"{"ts":1300200000,"type":"purchase","item":"MUG","qty":80995,"price":3.0}"#)
        let text = lines.joined(separator: "\n")
        #expect(try s.importEvents(text).outliersFlagged == 1)
        try s.store.database.write { try $0.execute(sql: "UPDATE events SET flags = 0") }  // as if the pass never ran
        let again = try s.importEvents(text)
        #expect(again.accepted == 0 && again.duplicates == 13 && again.outliersFlagged == 1, "\(again)")
        #expect(try s.count("SELECT count(*) FROM events WHERE qty = 80995 AND flags = \(EventFlag.quantityOutlier)") == 1)
    }

    /// Inputs that passed unseen or with a misleading reason before a review (stop 27).
    @Test func subtleBadInputIsRefusedWithItsReason() throws {
        let s = try TempStore()
        let future = Int64(Date().timeIntervalSince1970) + 3 * 86_400
        let lines = [
            #"{"ts":1300000000,"type":"purchase","item":"A","customer":"alice","customer":"bob","qty":1}"#,  // duplicate key
            #"{"ts":\#(future),"type":"view","item":"A"}"#,  // a till clock years ahead would move "now"
            #"{"ts":1300000000,"type":"purchase","qty":-2,"price":5}"#,  // a return without its item
            #"{"ts":1300000000,"type":"purchase","item":"A","qty":12345678901234567890}"#,
            #"{"ts":1300000000,"type":"view","item":"A","customer":12345678901234567890}"#,
            "[" + Array(repeating: "0", count: 300).joined(separator: ",") + "]",  // values past the line's cap
            #"{"ts":1300000000,"type":"view","item":"A","session":"k"}"#,
        ]
        let file = s.directory.deletingLastPathComponent().appendingPathComponent("subtle.jsonl")
        try Data(("\u{FEFF}" + lines.joined(separator: "\n")).utf8).write(to: file)  // a byte-order mark first
        let rejectsFile = s.directory.deletingLastPathComponent().appendingPathComponent("subtle-rejects.jsonl").path
        let imp = try s.importer(rejects: rejectsFile)
        try Sources.importEvents(path: file.path, into: imp)
        let report = try imp.finish()
        let rejects = try String(contentsOfFile: rejectsFile, encoding: .utf8).split(separator: "\n").map {
            try JSONDecoder().decode(Reject.self, from: Data($0.utf8))
        }
        let byLine = Dictionary(uniqueKeysWithValues: rejects.map { ($0.line, "\($0.field ?? "-"): \($0.reason)") })
        #expect(report.accepted == 1 && report.rejected == 6, "\(byLine)")
        #expect(byLine[1]?.contains("duplicate key \"customer\"") == true, "\(byLine)")
        #expect(byLine[2]?.hasPrefix("ts: ") == true && byLine[2]?.contains("more than a day ahead of this machine's clock") == true, "\(byLine)")
        #expect(byLine[3] == "item: missing (required for return)", "\(byLine)")
        #expect(byLine[4] == "qty: integer out of range", "\(byLine)")
        #expect(byLine[5]?.hasPrefix("customer: integer out of range") == true, "\(byLine)")
        #expect(byLine[6]?.contains("more than 256 values") == true, "\(byLine)")
        // A catalog's category is bounded as its title is.
        let catalog = s.directory.deletingLastPathComponent().appendingPathComponent("catalog.jsonl")
        try Data(#"{"item":"A","title":"Mug","category":"\#(String(repeating: "k", count: 1_001))"}"#.utf8).write(to: catalog)
        let cat = try s.importer(kind: "catalog", rejects: rejectsFile)
        try Sources.importCatalog(path: catalog.path, into: cat)
        let c = try cat.finish()
        #expect(c.rejected == 1 && c.firstRejects.first?.field == "category", "\(c)")
    }

    /// Online Retail's files pass the interchange's limits, and an invoice listed twice with
    /// another customer is refused instead of moving its basket.
    @Test func onlineRetailFieldsAreBoundedAndInvoicesNotReassigned() throws {
        let s = try TempStore()
        let dir = try TestSupport.temporaryDirectory()
        let (lines, invoices) = (dir.appendingPathComponent("lines.csv"), dir.appendingPathComponent("invoices.csv"))
        let long = String(repeating: "X", count: 300)
        try Data("536365,2010-12-01 08:26,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,2.55\n536365,2010-12-01 08:26,\(long),LONG,6,3.39\n536365,2010-12-01 08:26,71053,\(String(repeating: "W", count: 1_001)),6,3.39\n".utf8)
            .write(to: lines)
        try Data("536365,17850,United Kingdom\n536365,17851,United Kingdom\n536365,17850,United Kingdom\n".utf8).write(to: invoices)
        let imp = try s.importer(kind: "online-retail")
        try OnlineRetail.importPair(lines: lines.path, invoices: invoices.path, into: imp)
        let r = try imp.finish()
        let reasons = r.firstRejects.map { "\($0.field ?? "-"): \($0.reason)" }
        #expect(r.accepted == 1 && r.rejected == 3, "\(reasons)")
        #expect(reasons.contains("InvoiceNo: listed again with another customer or country; the first is kept"), "\(reasons)")
        #expect(reasons.contains("StockCode: longer than 256 bytes"), "\(reasons)")
        #expect(reasons.contains { $0.hasPrefix("Description: longer than 1000 characters") }, "\(reasons)")
    }

    @Test func catalogImportKeepsPriceHistoryAndIsIdempotent() throws {
        let s = try TempStore()
        let dir = s.directory.deletingLastPathComponent()
        func load(_ text: String) throws -> ImportReport {
            let file = dir.appendingPathComponent("cat-\(UUID().uuidString.prefix(4)).jsonl")
            try Data(text.utf8).write(to: file)
            let imp = try s.importer(kind: "catalog")
            try Sources.importCatalog(path: file.path, into: imp)
            return try imp.finish()
        }
        let a = try load("""
            {"item":"t1","title":"Red teapot","category":"Kitchen","price":20}
            {"item":"t2","title":"Blue mug","price":4.5,"active":false}
            {"item":"t3"}
            """)
        #expect(a.accepted == 2 && a.rejected == 1)
        let again = try load(#"{"item":"t1","title":"Red teapot","category":"Kitchen","price":20}"#)
        #expect(again.accepted == 0 && again.duplicates == 1)
        try s.store.database.write { try $0.execute(sql: "UPDATE item_prices SET ts = ts - 10") }
        _ = try load(#"{"item":"t1","title":"Red teapot","category":"Kitchen","price":18}"#)
        #expect(try s.count("SELECT count(*) FROM item_prices JOIN items ON items.id = item_id WHERE sku = 'T1'") == 2)
        #expect(try s.count("SELECT count(*) FROM items WHERE sku = 'T2' AND active = 0") == 1)
    }

    @Test func onlineRetailSampleImports() throws {
        let s = try TempStore()
        let imp = try s.importer(kind: "online-retail")
        let sample = TestSupport.repository.appendingPathComponent("tools/sample")
        try OnlineRetail.importPair(
            lines: sample.appendingPathComponent("lines.csv.gz").path,
            invoices: sample.appendingPathComponent("invoices.csv.gz").path, into: imp)
        let r = try imp.finish()
        #expect(r.lines == 20_814)
        #expect(r.accepted + r.duplicates + r.rejected == r.lines)
        #expect(r.accepted > 20_000 && r.returns > 0 && r.returnsLinked > 0 && r.anonymousPurchases > 0)
        #expect(try s.count("SELECT count(*) FROM items WHERE sku = 'POST' AND sellable = 0") == 1)
        #expect(try s.count("SELECT count(*) FROM items WHERE sku = '85123A' AND title = 'WHITE HANGING HEART T-LIGHT HOLDER'") == 1)
        #expect(try s.count("SELECT count(DISTINCT store) FROM events") > 3)
    }

    /// What the agent acknowledges is synced to disk at commit (GRDB turns a pool's writer to
    /// NORMAL when it sets up WAL); imports run NORMAL, and their last commit FULL.
    @Test func theWriterCommitsAsDurablyAsAsked() throws {
        let s = try TempStore()
        let synchronous = "PRAGMA synchronous"
        #expect(try s.store.database.write { try Int.fetchOne($0, sql: synchronous) } == 2)  // FULL
        try s.store.close()
        let normal = try Store.open(at: s.directory, durability: .normal)
        #expect(try normal.database.write { try Int.fetchOne($0, sql: synchronous) } == 1)  // NORMAL
        // An import on it commits its last write ("completed") FULL, which syncs every commit before.
        let file = s.directory.deletingLastPathComponent().appendingPathComponent("durable.jsonl")
        try Data(#"{"ts":1300000000,"type":"view","item":"A","session":"k"}"#.utf8).write(to: file)
        var options = ImportOptions()
        options.quiet = true
        let imp = try Importer(store: normal, pseudonymizer: try Pseudonymizer(storeDirectory: s.directory), kind: "events", source: "test", options: options)
        try Sources.importEvents(path: file.path, into: imp)
        #expect(try imp.finish().status == "completed")
        #expect(try normal.database.writeWithoutTransaction { try Int.fetchOne($0, sql: synchronous) } == 2)
        try normal.close()
        let hub = try HubDatabase.open(path: TestSupport.temporaryDirectory().appendingPathComponent("hub").path)
        #expect(try hub.pool.write { try Int.fetchOne($0, sql: synchronous) } == 2)
    }

    /// Two `init`s of one directory at once: one store, keyed by the secret of the one that made it.
    @Test func twoInitsAtOnceLeaveOneStoreWithItsOwnSecret() async throws {
        for _ in 0..<5 {
            let dir = try TestSupport.temporaryDirectory().appendingPathComponent("store")
            let winners = await withTaskGroup(of: UInt8?.self) { group in
                for n in UInt8(1)...2 {
                    group.addTask { (try? StoreSetup.initialise(at: dir, importedSecret: Data(repeating: n, count: 32))).map { _ in n } }
                }
                return await group.reduce(into: [UInt8]()) { if let n = $1 { $0.append(n) } }
            }
            #expect(winners.count == 1)
            let secret = FileManager.default.contents(atPath: dir.appendingPathComponent(Store.secretFileName).path)
            #expect(secret == winners.first.map { Data(repeating: $0, count: 32) })
        }
    }

    @Test func rawIdentifiersNeverReachTheDatabaseFiles() throws {
        let s = try TempStore()
        let raws = (0..<50).map { "LOYALTY-CARD-\(9_000_000 + $0 * 7919)" }
        // A kiosk that keys its sessions by the card scanned (it should not) leaks nothing either.
        let text = raws.enumerated().map { i, raw in
            #"{"ts":\#(1_300_000_000 + i),"type":"purchase","customer":"\#(raw)","receipt":"R\#(i)","item":"X\#(i % 3)","price":1}"#
                + "\n" + #"{"ts":\#(1_300_000_000 + i),"type":"view","session":"\#(raw)","item":"X\#(i % 3)"}"#
        }.joined(separator: "\n")
        _ = try s.importEvents(text)
        let status = try s.store.database.read { try Queries.status($0, diskBytes: s.store.diskBytes) }
        #expect(status.customers == 50 && status.sessions == 50)
        #expect(status.schemaVersion == Store.schemaVersion)  // the newest, not the last by name (v9 > v14)
        for name in [Store.databaseName, RecommendationLog.fileName].flatMap({ [$0, $0 + "-wal"] }) {
            guard let bytes = FileManager.default.contents(atPath: s.directory.appendingPathComponent(name).path) else { continue }
            for raw in raws { #expect(bytes.range(of: Data(raw.utf8)) == nil, "\(raw) found in \(name)") }
            #expect(bytes.range(of: Data("LOYALTY-CARD".utf8)) == nil)
        }
    }

    /// The agent's kiosk lookups go through `requestReader()`: they must answer while background
    /// work holds both of the store's own reader connections, and they cannot write.
    @Test func requestReadsDoNotWaitForBackgroundReads() throws {
        let s = try TempStore()
        _ = try s.importEvents(#"{"ts":1300000000,"type":"purchase","customer":"c1","receipt":"R1","item":"A","price":1}"#)
        let pseudonym = try Pseudonymizer(storeDirectory: s.directory).pseudonym("c1")
        let reads = try s.store.requestReader()
        defer { try? reads.close() }
        let (started, release, answered) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        // Threads of their own: GCD's pool may have no idle thread on a busy two-core machine.
        for _ in 0..<2 {
            Thread { _ = try? s.store.database.read { _ in started.signal(); release.wait() } }.start()
        }
        defer { release.signal(); release.signal() }
        for _ in 0..<2 { #expect(started.wait(timeout: .now() + 10) == .success) }
        let store = s.store
        Thread {
            if (try? store.database.read { try Queries.customerID($0, pseudonym: pseudonym) }) != nil { answered.signal() }
        }.start()
        #expect(answered.wait(timeout: .now() + 0.5) == .timedOut)  // the store's own readers are all taken
        Thread {
            if (try? reads.read { try Queries.customerID($0, pseudonym: pseudonym) }) != nil { answered.signal() }
        }.start()
        #expect(answered.wait(timeout: .now() + 10) == .success)
        let cache = StoredEmbeddings(store: store, reads: reads)  // what `/v1/embed` reads first
        Thread {
            if (try? cache.vectors(model: "m", keys: [Data([1])])) != nil { answered.signal() }
        }.start()
        #expect(answered.wait(timeout: .now() + 10) == .success)
        #expect(throws: DatabaseError.self) { try reads.write { try $0.execute(sql: "DELETE FROM events") } }
    }
}
