import AisleConfig
import Foundation
import Testing

@Suite struct ConfigTests {
    @Test func shippedConfigIsValidAndEqualsTheDefaults() throws {
        let c = try AgentConfig.load(path: TestSupport.repository.appendingPathComponent("firmware-config/aisled.toml").path)
        var expected = AgentConfig()
        expected.assistantAnswers = TestSupport.repository.appendingPathComponent("firmware-config/answers.toml").path
        #expect(c == expected)
        #expect(try AgentConfig.parse("[assistant]\nanswers = \"faq/answers.toml\"\n", path: "/etc/aisle/aisled.toml").assistantAnswers == "/etc/aisle/faq/answers.toml")
        #expect(try AgentConfig.parse("[assistant]\nanswers = \"/srv/a.toml\"\n", path: "/etc/aisle/aisled.toml").assistantAnswers == "/srv/a.toml")
        let h = try HubConfig.load(path: TestSupport.repository.appendingPathComponent("firmware-config/aisle-hub.toml").path)
        #expect(h == HubConfig())
    }

    @Test func emptyFileGivesDefaults() throws {
        #expect(try AgentConfig.parse("") == AgentConfig())
    }

    @Test func everyErrorIsReportedWithItsKey() {
        let toml = """
            [socket]
            mode = "0666"
            path = 12
            group = "no-such-group-for-aisle"
            [http]
            max_batch_events = 0
            [log]
            level = "loud"
            colour = true
            [stroe]
            path = "/x"
            [recommendations]
            log_days = 0
            """
        #expect {
            try AgentConfig.parse(toml, path: "bad.toml")
        } throws: { error in
            guard let e = error as? ConfigError else { return false }
            let keys = e.issues.map(\.key)
            return e.path == "bad.toml"
                && keys.contains("socket.mode") && keys.contains("socket.path") && keys.contains("http.max_batch_events")
                && keys.contains("log.level") && keys.contains("log.colour") && keys.contains("stroe.path") && keys.contains("recommendations.log_days")
                && e.issues.first { $0.key == "socket.path" }?.reason == "expected a string, got a integer"
                && e.issues.first { $0.key == "socket.group" }?.reason == "no such group 'no-such-group-for-aisle'"
                && e.issues.first { $0.key == "log.colour" }?.reason == "unknown key"
                && e.issues.first { $0.key == "http.max_batch_events" }?.reason == "must be between 1 and 1000000; got 0"
        }
    }

    @Test func syncAndHubKeysAreChecked() {
        #expect {
            try AgentConfig.parse("[sync]\nretry_min_seconds = 60\nretry_max_seconds = 10\nrollback_margin = 2\n", path: "s.toml")
        } throws: { error in
            let keys = (error as? ConfigError)?.issues.map(\.key) ?? []
            return keys.contains("sync.retry_max_seconds") && keys.contains("sync.rollback_margin")
        }
        #expect {
            try HubConfig.parse("[storage]\nmax_database_mb = -1\n[enrollment]\ntoken_hours = 0\n", path: "h.toml")
        } throws: { error in
            let keys = (error as? ConfigError)?.issues.map(\.key) ?? []
            return keys.contains("storage.max_database_mb") && keys.contains("enrollment.token_hours")
        }
    }

    @Test func syntaxErrorsNameTheLine() {
        #expect {
            try AgentConfig.parse("[store]\npath = \n", path: "x.toml")
        } throws: { ($0 as? ConfigError)?.issues.first?.reason.hasPrefix("line 2") == true }
    }
}
