@testable import AisleSync
import AisleClient
import AisleStore
import Foundation
import GRDB
import Testing

/// Signed global models from a real hub into a store with real data (the Taobao slice): a good
/// one is installed and hot-swapped into the running agent, one that does worse on the store's
/// own recent data is rolled back, a forged, altered or older one is refused.
@Suite struct SyncModelTests {
    static func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try TestSupport.run("aislectl", args) }

    /// The payload with the calibration's slope negated: the same model ranking shoppers backwards.
    static func reversed(_ payload: Data) throws -> Data {
        var json = try #require(try JSONSerialization.jsonObject(with: payload) as? [String: Any])
        var model = try #require(json["model"] as? [String: Any])
        var calibration = try #require(model["calibration"] as? [Double])
        calibration[0] = -calibration[0]
        model["calibration"] = calibration
        json["model"] = model
        return try JSONSerialization.data(withJSONObject: json)
    }

    @Test func mismatchedDownloadsWaitLongerEachTime() throws {
        let store = try TempStore()
        let t0 = Date(timeIntervalSince1970: 1_800_000_000)
        var waits: [TimeInterval?] = []
        for n in 1...10 {
            #expect(try store.store.database.write { try MismatchedDownloads.record($0, kind: "intent", version: 7, at: t0) } == n)
            waits.append(try store.store.database.read { try MismatchedDownloads.state($0, kind: "intent", version: 7).retryAt?.timeIntervalSince(t0) })
        }
        #expect(waits == [nil, 900, 1800, 3600, 7200, 14400, 28800, 57600, 86400, 86400])
        // Another version starts again; a matching download forgets them.
        #expect(try store.store.database.read { try MismatchedDownloads.state($0, kind: "intent", version: 8).count } == 0)
        try store.store.database.write { try MismatchedDownloads.clear($0, kind: "intent") }
        #expect(try store.store.database.read { try MismatchedDownloads.state($0, kind: "intent", version: 7).count } == 0)
    }

    @Test(.enabled(if: TestSupport.shared != nil, "needs ../shared"))
    func globalModelsAreVerifiedCheckedLocallyAndRolledBackWhenWorse() async throws {
        let hub = try await HubFixture()
        let (path, rows) = try PurchaseIntentTests.taobaoStore(in: hub.dir.appendingPathComponent("taobao"))
        let dir = try hub.enrolledStore(existing: URL(fileURLWithPath: path))
        #expect(try Self.run(["train", "intent", "--store", path, "--as-of", "\(PurchaseIntentTests.cutoff)", "--horizon-minutes", "31"]).status == 0)
        let good = hub.dir.appendingPathComponent("intent.json")
        #expect(try Self.run(["model", "export", "intent", "--out", good.path, "--store", path]).status == 0)
        let bad = hub.dir.appendingPathComponent("reversed.json")
        try Self.reversed(try Data(contentsOf: good)).write(to: bad)
        func publish(_ file: URL) throws {
            let r = try hub.cli(["models", "publish", "intent", file.path, "--metric", "auc=0.7"])
            #expect(r.status == 0 && r.out.contains("published"), "\(r.err)")
        }
        func sync() throws -> String {
            let r = try Self.run(["sync", "now", "--store", path])
            #expect(r.status == 0, "\(r.err)")
            return r.out
        }
        func active() throws -> Int? {
            try Store.open(at: dir, readOnly: true).database.read { try ModelRegistry.activeVersions($0)["intent"] }
        }

        // Global v1 (as good as the local model): checked on the store's last hours, installed.
        try publish(good)
        let first = try sync()
        #expect(first.contains("intent global v1: installed — local AUC"), "\(first)")
        #expect(try active() == 2)
        // Global v2 ranks shoppers backwards: registered, but the version in use stays.
        try publish(bad)
        let second = try sync()
        #expect(second.contains("intent global v2: rolled back — local AUC"), "\(second)")
        #expect(try active() == 2)
        #expect(try Self.run(["model", "list", "intent", "--store", path]).out.contains("  intent v3"))
        // v3 with its signature altered at the hub: refused, nothing fetched or recorded.
        try publish(good)
        try hub.write { try $0.execute(sql: "UPDATE models SET signature = zeroblob(64) WHERE version = 3") }
        let forged = try sync()
        #expect(forged.contains("refused: model: bad_signature"), "\(forged)")
        // v4 whose payload was swapped after signing (as on the way): not taken, not recorded —
        // fetched again at the next sync, not refused for good.
        try publish(good)
        try hub.write { try $0.execute(sql: "UPDATE models SET payload = ? WHERE version = 4", arguments: [try Data(contentsOf: bad)]) }
        for _ in 0..<2 { #expect(try sync().contains("intent global v4: not taken — payload does not match")) }
        // Two in a row: the hub's copy may be damaged, so it is not downloaded at every pass.
        let waiting = try sync()
        #expect(waiting.contains("intent global v4: not fetched — its last 2 downloads did not match the manifest; next try after"), "\(waiting)")
        #expect(try await Store.open(at: dir, readOnly: true).database.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM synced_models WHERE version = 4") } == 0)
        // The hub now offers v1 again (a rollback at HQ, or an attacker replaying it): no downgrade.
        try hub.write { try $0.execute(sql: "DELETE FROM models WHERE version > 1") }
        let older = try sync()
        #expect(older.contains("older than v2") && older.contains("no downgrade"), "\(older)")
        #expect(try active() == 2)
        let status = try Self.run(["sync", "status", "--store", path]).out
        #expect(status.contains("global intent v2 (round 0): rolled_back") && status.contains("global intent v1 (round 0): installed"), "\(status)")

        // A good new version reaches the running agent without a restart.
        try hub.write { try $0.execute(sql: "DELETE FROM models") }
        for _ in 0..<5 { try publish(good) }  // v1 … v5 again; the store has taken up to v2, so v5 is new
        let socket = hub.dir.appendingPathComponent("a.sock").path
        let agent = try await TestSupport.startAgent(store: dir, socket: socket, log: hub.dir.appendingPathComponent("agent.log"), config: "[sync]\ninterval_seconds = 1\n")
        defer { TestSupport.kill9(agent) }
        let shopper = try #require(rows.last { $0[3] == "buy" }?[0].trimmingCharacters(in: .whitespacesAndNewlines))
        var served = ""
        for _ in 0..<600 {  // a pass downloads, checks on the store's data and registers: slow on a loaded machine
            do {
                served = try await UnixHTTP.request(path: socket, .GET, "/v1/customers/tb\(shopper)/intent?at=\(PurchaseIntentTests.cutoff)").text
            } catch { served = "\(error)" }
            if served.contains("intent v4") { break }  // registry v4: local v1, global v1 and v2, now global v5
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(served.contains("intent v4"), "\(served)")
    }
}
