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
