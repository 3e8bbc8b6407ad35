import AisleCore
import Foundation
import Testing

@Suite struct TimestampTests {
    @Test(arguments: [
        ("2011-09-01T08:26:00Z", Int64(1_314_865_560)),
        ("2011-09-01 08:26", 1_314_865_560),
        ("2011-09-01 08:26:00", 1_314_865_560),
        ("2011-09-01T10:26:00+02:00", 1_314_865_560),
        ("2011-09-01T08:26:00.123Z", 1_314_865_560),
        ("2011-09-01", 1_314_835_200),
        ("1314865560", 1_314_865_560),
        ("2012-02-29", 1_330_473_600),
    ])
    func parses(text: String, expected: Int64) throws {
        #expect(try Timestamp.parse(text) == expected)
    }

    @Test(arguments: ["", "2011-13-01", "2011-02-30", "2011-09-01T25:00", "yesterday", "2011-09-01X", "1850-01-01", "2011-9-1", "12"])
    func refuses(text: String) {
        #expect(throws: FieldError.self) { try Timestamp.parse(text) }
    }

    @Test func formatsRoundTrip() throws {
        for ts: Int64 in [951_782_400, 1_314_865_560, 4_102_444_799] {
            #expect(try Timestamp.parse(Timestamp.format(ts)) == ts)
        }
        #expect(Timestamp.format(0) == "1970-01-01T00:00:00Z")
        #expect(Timestamp.format(1_314_865_560) == "2011-09-01T08:26:00Z")
    }
}

@Suite struct JSONParserTests {
    func parse(_ s: String) throws(JSONSyntaxError) -> JSONValue { try JSONParser.parse(Array(s.utf8)) }

    @Test func parsesValues() throws {
        #expect(try parse(#"{"a":[1,-2.5,true,null,"x\u00e9\ud83d\ude00"]}"#)
            == .object(["a": .array([.int(1), .double(-2.5), .bool(true), .null, .string("xé😀")])]))
        #expect(try parse(" 12 ") == .int(12))
        #expect(try parse("1e3") == .double(1000))
    }

    /// A budget of values bounds what a body of tiny values would take in memory.
    @Test func aTextOfTooManyValuesIsRefused() throws {
        #expect(try JSONParser.parse(Array("[1,[2]]".utf8), maxValues: 4) == .array([.int(1), .array([.int(2)])]))
        #expect { try JSONParser.parse(Array(#"[1,{"a":2}]"#.utf8), maxValues: 3) } throws: {
            ($0 as? JSONSyntaxError).map { ($0.offset, $0.reason) } ?? (0, "") == (8, "more than 3 values")
        }
    }

    @Test(arguments: [
        (#"{"a":1"#, "unexpected end of input"),
        (#"{"a" 1}"#, "expected ':'"),
        (#"[1,]"#, "unexpected character"),
        (#"{"a":1} x"#, "unexpected data after the value"),
        (#""\ud800""#, "unpaired surrogate"),
        ("01", "unexpected data after the value"),
        (#"{"a":tru}"#, "unexpected character"),
    ])
    func reportsErrors(text: String, reason: String) {
        #expect { try parse(text) } throws: { ($0 as? JSONSyntaxError)?.reason == reason }
    }

    @Test func refusesInvalidUTF8() {
        let bytes: [UInt8] = Array(#"{"a":""#.utf8) + [0xC3, 0x28] + Array(#""}"#.utf8)
        #expect { try JSONParser.parse(bytes) } throws: { ($0 as? JSONSyntaxError)?.reason == "invalid UTF-8 in string" }
    }

    @Test func limitsDepth() {
        let deep = String(repeating: "[", count: 100) + String(repeating: "]", count: 100)
        #expect(throws: JSONSyntaxError.self) { try parse(deep) }
    }
}

@Suite struct InterchangeTests {
    func event(_ s: String) throws(FieldError) -> IncomingEvent {
        guard let v = try? JSONParser.parse(Array(s.utf8)) else { throw FieldError(field: nil, "test input is not JSON") }
        return try Interchange.event(from: v)
    }

    @Test func acceptsAFullEvent() throws {
        let e = try event(#"{"ts":"2011-09-01 08:26","type":"purchase","customer":17850,"receipt":"536365","item":" 85123a ","qty":6,"price":2.55,"source":"pos","store":"UK"}"#)
        #expect(e == IncomingEvent(ts: 1_314_865_560, type: .purchase, customer: "17850", receipt: "536365", item: "85123A", qty: 6, price: 2.55, source: "pos", store: "UK"))
    }

    @Test func negativeQuantityBecomesAReturn() throws {
        let e = try event(#"{"ts":1314865560,"type":"purchase","item":"A","qty":-3}"#)
        #expect(e.type == .return && e.qty == 3)
    }

    @Test(arguments: [
        (#"{"type":"view","item":"A"}"#, "ts", "missing"),
        (#"{"ts":"2011-02-30","type":"view","item":"A"}"#, "ts", "no such date or time"),
        (#"{"ts":true,"type":"view","item":"A"}"#, "ts", "expected a string or integer, got boolean"),
        (#"{"ts":1314865560,"type":"teleport","item":"A"}"#, "type", "unknown event type; one of view, cart, fav, purchase, return, review, search, question"),
        (#"{"ts":1314865560,"type":"view"}"#, "item", "missing (required for view)"),
        (#"{"ts":1314865560,"type":"search"}"#, "text", "missing (required for search)"),
        (#"{"ts":1314865560,"type":"view","item":"A","qty":"2"}"#, "qty", "expected an integer, got string"),
        (#"{"ts":1314865560,"type":"view","item":"A","qty":1.5}"#, "qty", "expected an integer, got a fraction"),
        (#"{"ts":1314865560,"type":"view","item":"A","qty":0}"#, "qty", "zero"),
        (#"{"ts":1314865560,"type":"purchase","item":"A","qty":99999999}"#, "qty", "absurd; limit is ±1000000"),
        // The one integer whose absolute value does not exist: refused, not a crash.
        (#"{"ts":1314865560,"type":"purchase","item":"A","qty":-9223372036854775808}"#, "qty", "absurd; limit is ±1000000"),
        // One character that carries 30,000 combining accents (60,001 bytes).
        (#"{"ts":1314865560,"type":"review","item":"A","text":"a"# + String(repeating: "\u{301}", count: 30_000) + #""}"#, "text",
         "longer than 10000 characters or 40000 bytes"),
        (#"{"ts":1314865560,"type":"purchase","item":"A","price":-1}"#, "price", "negative"),
        (#"{"ts":1314865560,"type":"purchase","item":"A","price":1e12}"#, "price", "absurd; limit is 10000000.0"),
        (#"{"ts":1314865560,"type":"review","item":"A","rating":9}"#, "rating", "must be 1 to 5"),
        (#"{"ts":1314865560,"type":"view","item":"A","qty":-1}"#, "qty", "negative quantity on a view event"),
        (#"{"ts":1314865560,"type":"view","item":["A"]}"#, "item", "expected a string, got array"),
        (#"{"ts":1314865560,"type":"purchase"}"#, "item", "missing (a purchase needs an item or, receipt-level, a price)"),
    ])
    func rejects(text: String, field: String, reason: String) {
        #expect { try event(text) } throws: { ($0 as? FieldError) == FieldError(field: field, reason) }
    }

    @Test func rejectsNonObjects() {
        #expect { try event("[1]") } throws: { ($0 as? FieldError)?.reason == "expected a JSON object, got array" }
    }

    @Test func catalogEntries() throws {
        let v = try JSONParser.parse(Array(#"{"item":"a1","title":"  Red   Teapot ","category":"Kitchen","price":12.5,"active":false}"#.utf8))
        #expect(try Interchange.catalogEntry(from: v) == CatalogEntry(item: "A1", title: "Red Teapot", category: "Kitchen", price: 12.5, active: false))
        let bad = try JSONParser.parse(Array(#"{"item":"a1","title":"x","active":"yes"}"#.utf8))
        #expect { try Interchange.catalogEntry(from: bad) } throws: { ($0 as? FieldError) == FieldError(field: "active", "expected true or false, got string") }
    }
}

@Suite struct NormalizeTests {
    @Test func text() {
        #expect(Normalize.text("  a \t b\n") == "a b")
        #expect(Normalize.text("e\u{301}te\u{301}") == "\u{e9}t\u{e9}")  // NFC
        #expect(Normalize.text("a\u{0}b\u{7}") == "ab")
        #expect(Normalize.text("plain") == "plain")
    }

    @Test func sku() { #expect(Normalize.sku(" 85123a ") == "85123A") }
}

/// Secret files are the owner's alone from their first byte, and never overwritten.
@Suite struct SecretFileTests {
    @Test func aSecretFileIsCreatedOwnerOnlyAndNeverOverwritten() throws {
        let path = try TestSupport.temporaryDirectory().appendingPathComponent("key").path
        try SecretFile.create(path, contents: Data([1, 2, 3]))
        var info = stat()
        #expect(stat(path, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(FileManager.default.contents(atPath: path) == Data([1, 2, 3]))
        #expect(throws: (any Error).self) { try SecretFile.create(path, contents: Data([9])) }
        #expect(FileManager.default.contents(atPath: path) == Data([1, 2, 3]))
    }
}

@Suite struct BackgroundWorkTests {
    /// Index builds, training and whole insight computations run at the background priority,
    /// and so do the threads they spread their work over; the caller's priority is untouched.
    @Test func backgroundWorkAndItsThreadsRunAtLowPriority() async {
        let before = Scheduling.currentNice
        let seen = await Blocking.background { Parallel.dictionary(count: 64) { i in (i, Scheduling.currentNice) } }
        #expect(seen.count == 64)
        #expect(Set(seen.values) == [Blocking.backgroundNice])
        #expect(Scheduling.currentNice == before)
        let everyIndex = Parallel.dictionary(count: 1000) { i in i % 3 == 0 ? (i, i * i) : nil }
        #expect(everyIndex.count == 334 && everyIndex[999] == 998_001)
    }

    /// The agent closes its store only once no blocking or background work is running: work in
    /// flight — queued or running, on either path — keeps `drained` false until it ends. (Whether
    /// it turns true cannot be asserted here: other suites' work runs beside this one.)
    @Test func workInFlightIsCountedUntilItEnds() async throws {
        let started = DispatchSemaphore(value: 0)
        let (finishBackground, finishBlocking) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        let background = Task { await Blocking.background { started.signal(); finishBackground.wait() } }
        let blocking = Task { await Blocking.run { started.signal(); finishBlocking.wait() } }
        await Blocking.run { started.wait(); started.wait() }
        #expect(!Blocking.drained(within: .milliseconds(50)))
        finishBackground.signal()
        await background.value
        #expect(!Blocking.drained(within: .milliseconds(50)))  // the other one still runs
        finishBlocking.signal()
        await blocking.value
    }

    struct Refused: Error {}

    /// Background work's writes (a trained model's registration, cached embeddings) run at the
    /// normal priority, on another thread, with the answer or the error brought back; from a
    /// thread at normal priority the work runs inline.
    @Test func writesFromBackgroundWorkRunAtNormalPriority() async throws {
        let before = Scheduling.currentNice
        let (inside, write, failed) = await Blocking.background {
            (Scheduling.currentNice, (try? Scheduling.atNormalPriority { Scheduling.currentNice }) ?? -100,
             (try? Scheduling.atNormalPriority { () throws -> Int32 in throw Refused() }) == nil)
        }
        #expect(inside == Blocking.backgroundNice)
        #expect(write == before)
        #expect(failed)
        let caller = pthread_self()
        #expect(try Scheduling.atNormalPriority { pthread_equal(pthread_self(), caller) != 0 })
    }
}
