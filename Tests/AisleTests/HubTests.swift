import Foundation
import Testing

#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif

@Suite struct HubTests {
    @Test func hubStartsFromItsConfigAndAnswersHealth() async throws {
        let dir = try TestSupport.temporaryDirectory()
        let port = Int.random(in: 20_000..<32_768)
        let config = dir.appendingPathComponent("hub.toml")
        try TestSupport.write("[listen]\nport = \(port)\n[storage]\npath = \"\(dir.appendingPathComponent("hub").path)\"\n", to: config)
        let hub = try TestSupport.launch("aisle-hub", ["serve", "--config", config.path], stderrTo: dir.appendingPathComponent("hub.log"))
        defer {
            hub.process.terminate()
            hub.process.waitUntilExit()
        }
        var body = ""
        for _ in 0..<100 {
            if let (data, _) = try? await URLSession.shared.data(from: URL(string: "http://127.0.0.1:\(port)/v1/health")!) {
                body = String(decoding: data, as: UTF8.self)
                break
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(body.contains(#""status":"ok""#) && body.contains(#""role":"hub""#))
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("hub").path))

        let bad = dir.appendingPathComponent("bad.toml")
        try TestSupport.write("[listen]\nport = 99999\n", to: bad)
        let refused = try TestSupport.run("aisle-hub", ["serve", "--config", bad.path])
        #expect(refused.status == 78 && refused.err.contains("listen.port"))
    }
}
