import Foundation

/// The store agent's configuration (`firmware-config/aisled.toml` documents every key).
public struct AgentConfig: Sendable, Equatable {
    /// The store directory.
    public var storePath = "/var/lib/aisle/store"
    /// The kiosk-facing Unix socket.
    public var socketPath = "/run/aisle/aisled.sock"
    /// Permission bits of the socket file.
    public var socketMode = 0o660
    /// Group that owns the socket file; empty keeps the agent's own group.
    public var socketGroup = ""
    /// Largest request body accepted.
    public var maxBodyBytes = 16 << 20
    /// Most events accepted in one `POST /v1/events`.
    public var maxBatchEvents = 10_000
    /// Most kiosk and till connections open at once; one more is closed as it opens.
    public var maxConnections = 256
    /// The int8 encoder model file; empty: `minilm-int8.safetensors` in the model cache
    /// (`$AISLE_MODEL_CACHE/all-MiniLM-L6-v2`, default `~/.cache/aisle/models`).
    public var encoderModel = ""
    /// The kiosk assistant's answers file (firmware-config/answers.toml): by default
    /// `answers.toml` beside the configuration file (this path without one); a relative path is
    /// taken from the configuration file's directory too.
    public var assistantAnswers = "/etc/aisle/answers.toml"
    /// Threads one encoder batch runs on: 1 on a 2-core box, so kiosk requests keep a core.
    public var encoderThreads = 1
    /// Hours between scheduled retraining of the registry's models (0: never; train with
    /// `aislectl train`).
    public var trainingEveryHours = 24
    /// Days without a purchase that count as churn.
    public var churnHorizonDays = 91
    /// Minutes of a shopper's recent activity the intent model reads, and the horizon it predicts.
    public var intentLookbackMinutes = 70
    public var intentHorizonMinutes = 30
    /// Slate positions (from the end) the exploration policy chooses, and how it chooses: the
    /// share of uniform picks, LinUCB's confidence width, and how long a shown item may wait for
    /// feedback before it counts as not taken.
    public var exploreSlots = 1
    public var exploreEpsilon = 0.1
    public var exploreAlpha = 0.5
    public var rewardWindowSeconds = 600
    /// Days the served slates, explored choices and feedback are kept (`rec_slates` …).
    public var recommendationLogDays = 90
    /// An A/B experiment on the recommendations (empty name: none): the share of customers (or
    /// sessions) in arm B, and B's exploration settings (arm A has the ones above).
    public var experimentName = ""
    public var experimentShareB = 0.5
    public var experimentBExploreSlots = 1
    public var experimentBEpsilon = 0.1
    /// Sync with the hub once enrolled (`aislectl sync enroll`): seconds between passes, the
    /// retry delays after a failed one (exponential with jitter), and how far a global model's
    /// local AUC may fall below the model in use before it is rolled back.
    public var syncEnabled = true
    public var syncIntervalSeconds = 900
    public var syncRetryMinSeconds = 5
    public var syncRetryMaxSeconds = 3600
    public var syncRollbackMargin = 0.02
    /// ε (at δ 10⁻⁵, whatever δ a round names) this store may spend on federated training
    /// rounds; once spent, it stops contributing. 0: no limit, and rounds without noise are
    /// joined too.
    public var privacyBudgetEpsilon = 8.0
    /// Days the words of kiosk searches and questions are kept (the events stay); 0: for ever.
    public var privacyTextDays = 90
    /// `debug`, `info`, `notice`, `warning` or `error`.
    public var logLevel = "info"
    /// `json` (one object per line, for journald and collectors) or `text`.
    public var logFormat = "json"

    public init() {}

    /// Parses and validates a TOML document; `path` names it in errors.
    public static func parse(_ toml: String, path: String = "(config)") throws(ConfigError) -> AgentConfig {
        var r: ConfigReader
        do { r = try ConfigReader(toml: toml) } catch { throw ConfigError(path: path, issues: error.issues) }
        var c = AgentConfig()
        c.storePath = r.string("store.path", c.storePath)
        c.socketPath = r.string("socket.path", c.socketPath)
        let mode = r.string("socket.mode", "0660")
        if let m = Int(mode, radix: 8), (0...0o777).contains(m) {
            c.socketMode = m
            if m & 0o600 != 0o600 { r.fail("socket.mode", "the agent's own user needs read and write (0600 at least)") }
            if m & 0o007 != 0 { r.fail("socket.mode", "others must not have access; use 0660 and a group") }
        } else {
            r.fail("socket.mode", "expected octal permission bits such as \"0660\"; got \"\(mode)\"")
        }
        c.socketGroup = r.string("socket.group", c.socketGroup)
        if !c.socketGroup.isEmpty, groupID(c.socketGroup) == nil { r.fail("socket.group", "no such group '\(c.socketGroup)'") }
        c.maxBodyBytes = r.int("http.max_body_bytes", c.maxBodyBytes, in: 1024...(1 << 30))
        c.maxBatchEvents = r.int("http.max_batch_events", c.maxBatchEvents, in: 1...1_000_000)
        c.maxConnections = r.int("http.max_connections", c.maxConnections, in: 1...65_536)
        c.encoderModel = r.string("encoder.model", c.encoderModel)
        c.encoderThreads = r.int("encoder.threads", c.encoderThreads, in: 1...16)
        c.trainingEveryHours = r.int("training.every_hours", c.trainingEveryHours, in: 0...24 * 365)
        c.churnHorizonDays = r.int("training.churn_horizon_days", c.churnHorizonDays, in: 7...365)
        c.intentLookbackMinutes = r.int("training.intent_lookback_minutes", c.intentLookbackMinutes, in: 5...1440)
        c.intentHorizonMinutes = r.int("training.intent_horizon_minutes", c.intentHorizonMinutes, in: 5...1440)
        c.exploreSlots = r.int("recommendations.explore_slots", c.exploreSlots, in: 0...5)
        c.exploreEpsilon = r.double("recommendations.epsilon", c.exploreEpsilon, in: 0.0...1.0)
        c.exploreAlpha = r.double("recommendations.alpha", c.exploreAlpha, in: 0.0...10.0)
        c.rewardWindowSeconds = r.int("recommendations.reward_window_seconds", c.rewardWindowSeconds, in: 10...86_400)
        c.recommendationLogDays = r.int("recommendations.log_days", c.recommendationLogDays, in: 1...3650)
        c.experimentName = r.string("experiment.name", c.experimentName)
        if c.experimentName.range(of: "^[a-z0-9][a-z0-9_-]{0,63}$|^$", options: .regularExpression) == nil {
            r.fail("experiment.name", "lower-case letters, digits, - and _ (at most 64)")
        }
        c.experimentShareB = r.double("experiment.share_b", c.experimentShareB, in: 0.0...1.0)
        c.experimentBExploreSlots = r.int("experiment.b_explore_slots", c.exploreSlots, in: 0...5)
        c.experimentBEpsilon = r.double("experiment.b_epsilon", c.exploreEpsilon, in: 0.0...1.0)
        // Beside the configuration file unless absolute (text given without a file: as written).
        let answers = r.string("assistant.answers", "answers.toml")
        if answers.isEmpty {
            r.fail("assistant.answers", "must not be empty")
        } else if answers.hasPrefix("/") || path == "(config)" {
            if answers != "answers.toml" || path != "(config)" { c.assistantAnswers = answers }
        } else {
            c.assistantAnswers = URL(fileURLWithPath: path).deletingLastPathComponent().appendingPathComponent(answers).path
        }
        c.syncEnabled = r.bool("sync.enabled", c.syncEnabled)
        c.syncIntervalSeconds = r.int("sync.interval_seconds", c.syncIntervalSeconds, in: 1...86_400)
        c.syncRetryMinSeconds = r.int("sync.retry_min_seconds", c.syncRetryMinSeconds, in: 1...3600)
        c.syncRetryMaxSeconds = r.int("sync.retry_max_seconds", c.syncRetryMaxSeconds, in: 1...86_400)
        if c.syncRetryMaxSeconds < c.syncRetryMinSeconds { r.fail("sync.retry_max_seconds", "must be at least sync.retry_min_seconds") }
        c.syncRollbackMargin = r.double("sync.rollback_margin", c.syncRollbackMargin, in: 0.0...0.5)
        c.privacyBudgetEpsilon = r.double("privacy.budget_epsilon", c.privacyBudgetEpsilon, in: 0.0...1000.0)
        c.privacyTextDays = r.int("privacy.text_days", c.privacyTextDays, in: 0...3650)
        c.logLevel = r.string("log.level", c.logLevel, oneOf: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        c.logFormat = r.string("log.format", c.logFormat, oneOf: ["json", "text"])
        for issue in c.pathIssues() { r.fail(issue.key, issue.reason) }
        try r.finish(path: path)
        return c
    }

    /// What is wrong with the store and socket paths, named `store` and `socket` (the file's
    /// keys, or the command line's options that override them).
    public func pathIssues(store: String = "store.path", socket: String = "socket.path") -> [ConfigIssue] {
        var issues: [ConfigIssue] = []
        if storePath.isEmpty { issues.append(ConfigIssue(key: store, reason: "must not be empty")) }
        if socketPath.isEmpty { issues.append(ConfigIssue(key: socket, reason: "must not be empty")) }
        if socketPath.utf8.count > 107 { issues.append(ConfigIssue(key: socket, reason: "longer than the 107 bytes a Unix socket path may have")) }
        return issues
    }

    /// Loads a file.
    public static func load(path: String) throws(ConfigError) -> AgentConfig {
        try parse(try readConfigText(path), path: path)
    }
}

/// The hub's configuration (`firmware-config/aisle-hub.toml`).
public struct HubConfig: Sendable, Equatable {
    public var host = "127.0.0.1"
    public var port = 7443
    /// Connections open at once; one more is closed at once (the store retries at its next sync).
    public var maxConnections = 1024
    public var dataPath = "/var/lib/aisle-hub"
    /// Largest the hub's database may grow, in MiB (0: as large as the disk allows); past it
    /// uploads are refused as `storage_full` and the stores keep them.
    public var maxDatabaseMB = 0
    /// Hours an enrollment token from `aisle-hub stores add` stays valid.
    public var tokenHours = 72
    /// HTTPS: the certificate chain and private key (PEM files); both empty: plain HTTP.
    public var tlsCertificate = ""
    public var tlsPrivateKey = ""
    public var logLevel = "info"
    public var logFormat = "json"

    public init() {}

    public static func parse(_ toml: String, path: String = "(config)") throws(ConfigError) -> HubConfig {
        var r: ConfigReader
        do { r = try ConfigReader(toml: toml) } catch { throw ConfigError(path: path, issues: error.issues) }
        var c = HubConfig()
        c.host = r.string("listen.host", c.host)
        c.port = r.int("listen.port", c.port, in: 0...65_535)
        c.maxConnections = r.int("listen.max_connections", c.maxConnections, in: 1...65_536)
        c.dataPath = r.string("storage.path", c.dataPath)
        c.maxDatabaseMB = r.int("storage.max_database_mb", c.maxDatabaseMB, in: 0...(1 << 30))
        c.tokenHours = r.int("enrollment.token_hours", c.tokenHours, in: 1...24 * 90)
        c.tlsCertificate = r.string("tls.certificate", c.tlsCertificate)
        c.tlsPrivateKey = r.string("tls.private_key", c.tlsPrivateKey)
        if c.tlsCertificate.isEmpty != c.tlsPrivateKey.isEmpty { r.fail(c.tlsCertificate.isEmpty ? "tls.certificate" : "tls.private_key", "give both tls.certificate and tls.private_key, or neither") }
        c.logLevel = r.string("log.level", c.logLevel, oneOf: ["trace", "debug", "info", "notice", "warning", "error", "critical"])
        c.logFormat = r.string("log.format", c.logFormat, oneOf: ["json", "text"])
        try r.finish(path: path)
        return c
    }

    public static func load(path: String) throws(ConfigError) -> HubConfig {
        try parse(try readConfigText(path), path: path)
    }
}

extension AgentConfig {
    /// The id of the group `name`, nil when the system has no such group.
    public static func groupID(_ name: String) -> gid_t? { getgrnam(name).map { $0.pointee.gr_gid } }
}
