import AisleConfig
import AisleCore
import AisleIngest
import AisleInsight
import AisleTraining
import AisleStore
import AisleText
import Foundation
import Synchronization
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle

/// Why the agent could not start.
public enum AgentError: Error, CustomStringConvertible {
    case socketInUse(String)
    case notASocket(String)
    case unknownGroup(String)

    public var description: String {
        switch self {
        case .socketInUse(let p): "another agent is already listening on \(p)"
        case .notASocket(let p): "\(p) exists and is not a socket; refusing to replace it"
        case .unknownGroup(let g): "socket.group: no such group '\(g)'"
        }
    }
}

/// The store agent: owns the store and serves kiosks and tills on a Unix socket until SIGTERM
/// or SIGINT, then drains in-flight requests, stops its background loops, removes the socket
/// and closes the database once the background work in flight has ended (up to 5 s).
public enum Agent {
    public static func run(config: AgentConfig, logger: Logger) async throws {
        let directory = URL(fileURLWithPath: config.storePath)
        Scheduling.startNormalPriorityThreads()
        let store = try Store.open(at: directory, durability: .full)
        // A `customer forget` a crash cut short: its last steps, before anything is served.
        if let left = try CustomerErasure.finishPending(store) {
            logger.notice("an interrupted customer erasure was finished", metadata: left.isEmpty ? [:] : ["write_ahead_logs_not_truncated": "\(left)"])
        }
        let reads = try store.requestReader()
        let pseudonymizer = try Pseudonymizer(storeDirectory: directory)
        for (name, mode) in store.openToOthers {
            logger.warning("a store file is open to others; chmod g-w,o-rwx it (a key file: 600)", metadata: ["file": "\(name)", "mode": "\(String(mode, radix: 8))"])
        }
        let gid = try groupID(config.socketGroup)
        try SocketFile.prepare(config.socketPath)
        _ = Telemetry.registry

        let encoder = EncoderHost(
            path: config.encoderModel.isEmpty ? ModelFiles.default.int8Weights.path : config.encoderModel,
            threads: config.encoderThreads, cache: StoredEmbeddings(store: store, reads: reads), logger: logger)
        var settings = ModelTrainer.Settings()
        settings.churnHorizonDays = config.churnHorizonDays
        (settings.intentLookbackMinutes, settings.intentHorizonMinutes) = (config.intentLookbackMinutes, config.intentHorizonMinutes)
        let retrainer = Retrainer(
            store: store, settings: settings, interval: config.trainingEveryHours > 0 ? .seconds(config.trainingEveryHours * 3600) : nil, encoder: encoder,
            logger: logger)
        let insight = InsightHost(store: store, logger: logger)
        let insightTask = Task { await insight.run(every: .seconds(3600)) }
        defer { insightTask.cancel() }
        let retrainTask = Task {
            while !Task.isCancelled, await !insight.started { try? await Task.sleep(for: .seconds(1)) }  // the insight first, as a kiosk needs it
            while !Task.isCancelled {
                await retrainer.trainDue()
                await insight.modelsMayHaveChanged()
                try? await Task.sleep(for: .seconds(60))
            }
        }
        defer { retrainTask.cancel() }
        let intent = IntentHost(store: store, reads: reads, logger: logger)
        let intentTask = Task { await intent.run() }
        defer { intentTask.cancel() }
        let exploration = RecommendationHost.Exploration(
            slots: config.exploreSlots, epsilon: config.exploreEpsilon, alpha: config.exploreAlpha, rewardWindow: Int64(config.rewardWindowSeconds))
        var armB = exploration
        (armB.slots, armB.epsilon) = (config.experimentBExploreSlots, config.experimentBEpsilon)
        let recommendations = try RecommendationHost(
            store: store, encoder: encoder, exploration: exploration,
            experiment: config.experimentName.isEmpty ? nil : .init(name: config.experimentName, shareB: config.experimentShareB, b: armB),
            logDays: config.recommendationLogDays, logger: logger)
        let recommendationTask = Task { await recommendations.run() }
        defer { recommendationTask.cancel() }
        let reviews = TextScorer(store: store, encoder: encoder, logger: logger)
        let reviewTask = Task { await reviews.run() }
        defer { reviewTask.cancel() }
        let ingest = IngestService(store: store, pseudonymizer: pseudonymizer)
        let assist = AssistHost(store: store, encoder: encoder, ingest: ingest, answersPath: config.assistantAnswers, logger: logger)
        Task {  // the socket comes up meanwhile; /v1/embed and /v1/assist answer 503 until loaded
            await encoder.reload()
            await assist.refresh(answers: false)  // the model now loaded; the answers are read at start and on SIGHUP
        }
        let assistTask = Task { await assist.run() }
        defer { assistTask.cancel() }
        let retentionTask = Task { await keepTextFor(days: config.privacyTextDays, store: store, pseudonymizer: pseudonymizer, logger: logger) }
        defer { retentionTask.cancel() }
        let sync = SyncHost(
            store: store, directory: directory,
            settings: .init(
                interval: .seconds(config.syncIntervalSeconds),
                backoff: .init(minimum: Int64(config.syncRetryMinSeconds), maximum: Int64(config.syncRetryMaxSeconds)),
                rollbackMargin: config.syncRollbackMargin, privacyBudget: config.privacyBudgetEpsilon),
            intent: intent, logger: logger)
        let syncTask = Task { if config.syncEnabled { await sync.run() } }
        defer { syncTask.cancel() }
        let hangup = reloadOnHangup(encoder, insight, reviews, intent, recommendations, assist)
        defer { hangup.cancel() }

        let router = Router(context: BasicRequestContext.self)
        router.add(middleware: MetricsMiddleware())
        AgentRoutes(
            store: store, reads: reads, pseudonymizer: pseudonymizer, ingest: ingest, encoder: encoder, insight: insight, intent: intent, recommendations: recommendations, assist: assist,
            config: .init(maxBodyBytes: config.maxBodyBytes, maxBatchEvents: config.maxBatchEvents, socketPath: config.socketPath)
        ).register(on: router)

        let path = config.socketPath
        let mode = mode_t(config.socketMode)
        let previousMask = umask(0o177)  // the socket is born owner-only, then opened up to the configured mode
        // Only a socket this agent bound is removed at the end: one that lost the bind to another
        // agent starting at the same moment must not delete the winner's.
        let bound = Atomic<Bool>(false)
        let limit = ConnectionLimit(limit: config.maxConnections, refused: "aisle_connections_refused_total")
        let app = Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [limit.handler()])),  // (an autoclosure: a handler per connection)
            configuration: .init(address: .unixDomainSocket(path: path), serverName: "aisled"),
            onServerRunning: { _ in
                bound.store(true, ordering: .sequentiallyConsistent)
                umask(previousMask)
                // Failing closed: without the configured group the socket's group is the agent's
                // own, whose members were not meant to reach it — it stays owner-only then.
                var mode = mode
                if let gid, chown(path, uid_t.max, gid) != 0 {
                    logger.error("cannot give the socket its group; it stays owner-only (0600) until the agent can (is the agent's user in socket.group?)",
                                 metadata: ["group": "\(config.socketGroup)", "error": "\(String(cString: strerror(errno)))"])
                    mode = 0o600
                }
                chmod(path, mode)
                logger.info("listening", metadata: ["socket": "\(path)", "mode": "\(String(mode, radix: 8))", "store": "\(directory.path)"])
            },
            logger: logger)
        let background = [insightTask, retrainTask, intentTask, recommendationTask, reviewTask, syncTask, retentionTask]
        defer {
            if bound.load(ordering: .sequentiallyConsistent) { unlink(path) }
            for task in background { task.cancel() }  // (already, unless the server failed)
            // A connection closed under a read still running would crash the process: the store
            // is closed once the background work in flight has ended, or left to SQLite, which
            // recovers its write-ahead log at the next open (training may run for minutes).
            if Blocking.drained(within: .seconds(5)) {
                try? reads.close()
                try? store.close()
            } else {
                logger.warning("background work still running at stop; the store is left open for SQLite to recover at the next start")
            }
            logger.info("stopped", metadata: ["socket": "\(path)"])
        }
        // Requests still open get 15 s (a slow body, an unread answer): then the slates, the
        // questions and the store are written and closed within the unit's 30 s.
        var group = ServiceGroupConfiguration(services: [app], gracefulShutdownSignals: [.sigterm, .sigint], logger: logger)
        group.maximumGracefulShutdownDuration = .seconds(15)
        try await ServiceGroup(configuration: group).run()
        // No new background work from here.
        for task in background { task.cancel() }
        hangup.cancel()
        // The last slates served are logged before the store closes.
        await recommendations.flush()
        try? await recommendations.closeLog()
        // The last second's questions and searches are written before the store closes.
        assistTask.cancel()
        await assistTask.value
    }

    /// SIGHUP (`systemctl reload aisled`) reloads the encoder model and the assistant's answers
    /// file, and switches to newly activated models at once rather than at the next poll.
    static func reloadOnHangup(
        _ encoder: EncoderHost, _ insight: InsightHost, _ reviews: TextScorer, _ intent: IntentHost, _ recommendations: RecommendationHost, _ assist: AssistHost
    ) -> any DispatchSourceSignal {
        signal(SIGHUP, SIG_IGN)  // the source needs it ignored; aisled's first line did so already, for the start
        let source = DispatchSource.makeSignalSource(signal: SIGHUP)
        source.setEventHandler {
            Task {
                await encoder.reload()
                await assist.refresh()  // before the scoring, which may take minutes: kiosks first
                try? await reviews.scorePending()
            }
            Task { await insight.modelsMayHaveChanged() }
            Task { await intent.refresh() }
            Task { await recommendations.refresh() }
        }
        source.resume()
        return source
    }

    static func groupID(_ name: String) throws -> gid_t? {
        guard !name.isEmpty else { return nil }
        guard let gid = AgentConfig.groupID(name) else { throw AgentError.unknownGroup(name) }
        return gid
    }
}

/// The socket file's life cycle: a stale socket left by a crash is replaced, a live agent on it
/// is detected and refused.
public enum SocketFile {
    public static func prepare(_ path: String) throws {
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        var info = stat()
        guard lstat(path, &info) == 0 else { return }
        guard info.st_mode & S_IFMT == S_IFSOCK else { throw AgentError.notASocket(path) }
        if isLive(path) { throw AgentError.socketInUse(path) }
        unlink(path)
    }

    /// Whether something accepts connections on the socket.
    public static func isLive(_ path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8.prefix(107)) + [0]
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in raw.copyBytes(from: bytes) }
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) == 0 }
        }
    }
}
