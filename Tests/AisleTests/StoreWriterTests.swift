import AisleCore
import AisleIngest
@testable import AisleServe
import AisleStore
import Foundation
import GRDB
import Testing

/// The agent's writer: events posted to it get their outlier flags when it settles its recent
/// tier, as an import's do — off the writer's thread, so ingest does not wait for the scan.
@Suite struct StoreWriterTests {
    /// Past its limit of waiting events the writer refuses a batch (the agent answers 503
    /// `store_busy`) instead of holding it in memory; the batches it took are written once the
    /// store is free.
    @Test func aBatchPastTheWaitingLimitIsRefused() async throws {
        let s = try TempStore()
        let writer = StoreWriter(store: s.store, maxWaiting: 100)
        var preparer = EventPreparer(pseudonymizer: try Pseudonymizer(storeDirectory: s.directory))
        func batch(_ n: Int, from: Int) -> [PreparedEvent] {
            (0..<n).map { preparer.prepare(IncomingEvent(ts: 1_300_000_000 + Int64(from + $0), type: .view, item: "A")) }
        }
        // Another connection holds the store's write lock: the writer's first transaction waits for it.
        let (held, release) = (DispatchSemaphore(value: 0), DispatchSemaphore(value: 0))
        let other = try DatabaseQueue(path: s.directory.appendingPathComponent(Store.databaseName).path)
        Thread {
            try? other.writeWithoutTransaction { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                held.signal()
                release.wait()
                try db.execute(sql: "COMMIT")
            }
        }.start()
        defer { release.signal() }  // also when an expectation below ends the test early
        #expect(held.wait(timeout: .now() + 30) == .success)
        let (a, b, c) = (batch(60, from: 0), batch(60, from: 100), batch(60, from: 200))
        func until(_ condition: () -> Bool) async throws {
            for _ in 0..<3000 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
            try #require(condition())
        }
        let first = Task { try await writer.write(a) }
        try await until { writer.takenEvents == 60 }  // in a transaction, waiting for the lock
        let second = Task { try await writer.write(b) }
        try await until { writer.waitingEvents == 60 }
        await #expect(throws: StoreBusy.self) { try await writer.write(c) }
        release.signal()
        let (taken1, taken2) = (try await first.value, try await second.value)
        #expect(taken1.count == 60 && taken2.count == 60)
        #expect(try await s.store.database.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM events") } == 120)
        #expect(try await writer.write(c).count == 60)  // the store free again: taken
    }

    @Test func postedEventsAreFlaggedAtTheSettling() async throws {
        let s = try TempStore()
        let writer = StoreWriter(store: s.store, settleBatch: 20)
        var preparer = EventPreparer(pseudonymizer: try Pseudonymizer(storeDirectory: s.directory))
        var lines = (0..<24).map { #"{"ts":\#(1_300_000_000 + $0 * 3600),"type":"purchase","item":"MUG","qty":\#(1 + $0 % 3),"price":3.0}"# }
        lines.append(#"{"ts":1300200000,"type":"purchase","item":"MUG","qty":80995,"price":3.0}"#)
        let events = try lines.map { preparer.prepare(try Interchange.event(from: try JSONParser.parse(Array($0.utf8)))) }
        let outcomes = try await writer.write(events)
        #expect(outcomes.count == 25)
        var flagged = -1
        for _ in 0..<100 {  // the pass runs on its own queue
            flagged = try s.count("SELECT count(*) FROM events WHERE qty = 80995 AND flags = \(EventFlag.quantityOutlier)")
            if flagged == 1 { break }
            try await Task.sleep(for: .milliseconds(50))
        }
        let anyFlagged = try s.count("SELECT count(*) FROM events WHERE flags != 0")
        #expect(flagged == 1 && anyFlagged == 1)
    }
}
