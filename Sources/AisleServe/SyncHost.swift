import AisleStore
import AisleSync
import AisleTraining
import Foundation
import Logging

/// The agent's side of store ↔ HQ sync: once the store is enrolled, a pass every interval
/// (hello, the outbox, the hub's models); after a failed pass, retries at exponentially longer
/// delays with jitter. It runs beside the kiosk routes and never holds them up: a hub that is
/// down only grows the outbox.
public actor SyncHost {
    public struct Settings: Sendable {
        public var interval: Duration
        public var backoff: Outbox.Backoff
        public var rollbackMargin: Double
        public var privacyBudget: Double
        public init(interval: Duration, backoff: Outbox.Backoff, rollbackMargin: Double, privacyBudget: Double) {
            (self.interval, self.backoff, self.rollbackMargin, self.privacyBudget) = (interval, backoff, rollbackMargin, privacyBudget)
        }
    }

    private let store: Store
    private let directory: URL
    private let settings: Settings
    private let intent: IntentHost
    private let logger: Logger

    public init(store: Store, directory: URL, settings: Settings, intent: IntentHost, logger: Logger) {
        (self.store, self.directory, self.settings, self.intent, self.logger) = (store, directory, settings, intent, logger)
    }

    /// Passes until cancelled.
    public func run() async {
        var failures = 0
        while !Task.isCancelled {
            let delay: Duration
            switch await passOnce() {
            case .done: (failures, delay) = (0, settings.interval)
            case .notEnrolled: (failures, delay) = (0, settings.interval)
            case .failed:
                failures += 1
                delay = .seconds(settings.backoff.delay(afterAttempts: failures))
            }
            try? await Task.sleep(for: delay)
        }
    }

    enum Outcome { case done, notEnrolled, failed }

    func passOnce() async -> Outcome {
        var client = SyncClient(
            store: store, directory: directory, installer: GlobalModels(store: store, margin: settings.rollbackMargin), contributor: FederatedContributor(store: store))
        (client.backoff, client.privacyBudget) = (settings.backoff, settings.privacyBudget)
        do {
            guard try await store.database.read({ try SyncState.enrollment($0) }) != nil else { return .notEnrolled }
            let queued = try await store.database.write { try StorePriors.queueDue($0) }
            let report = try await SyncLock.run(store: directory) { [client] in try await client.pass() }
            logger.info(
                "synced",
                metadata: ["delivered": "\(report.delivered)", "pending": "\(report.pending)", "queued": "\(queued)", "models": "\(report.models.count)"])
            for line in report.models { logger.notice("global model", metadata: ["result": "\(line)"]) }
            for line in report.refused { logger.warning("sync refused", metadata: ["reason": "\(line)"]) }
            if !report.models.isEmpty { await intent.refresh() }
            return .done
        } catch {
            logger.warning("sync pass failed; retrying later", metadata: ["error": "\(error)"])
            try? await store.database.write { try Meta.set($0, "sync.last_error", "\(error)") }
            return .failed
        }
    }
}
