import AisleCore
import AisleFeatures
import AisleInsight
import AisleStore
import Foundation
import GRDB
import Logging

/// Purchase intent in real time: the registry's active intent model over a shopper's events in
/// its lookback, read from the store as the request arrives (so an event posted a moment ago
/// counts). The conversion rates of items and categories, which take a pass over the history,
/// are refreshed in the background hourly and when the model changes.
public actor IntentHost {
    struct Loaded: Sendable {
        var version: Int
        var model: IntentModel
        var rates: IntentFeatures.ConversionRates
        var ratesAt: ContinuousClock.Instant
    }

    private let store: Store
    private let reads: DatabasePool
    private let logger: Logger
    private var loaded: Loaded?

    /// `reads`: the pool a request's own reads go through (`Store.requestReader`).
    public init(store: Store, reads: DatabasePool, logger: Logger) {
        (self.store, self.reads, self.logger) = (store, reads, logger)
    }

    /// The model and rates in use, nil before an intent model has been trained.
    var current: Loaded? { loaded }

    /// Loads the active version when it changed, and the rates when they are an hour old; after
    /// any refresh still running (whose older version would otherwise land last).
    public func refresh() async { await refreshes.append { await self.load() }.finished() }

    private var refreshes = TaskChain()

    private func load() async {
        let store = store
        do {
            guard let active = try await store.database.read({ try IntentModel.active($0) }) else { loaded = nil; return }
            if let l = loaded, l.version == active.version, ContinuousClock.now - l.ratesAt < .seconds(3600) { return }
            let rates = try await store.database.read { db in try IntentFeatures.ConversionRates.load(db, before: (try Queries.lastEventTime(db) ?? 0) + 1) }
            if loaded?.version != active.version { logger.info("intent model loaded", metadata: ["version": "\(active.version)"]) }
            loaded = Loaded(version: active.version, model: active.model, rates: rates, ratesAt: .now)
        } catch {
            logger.error("intent model not loaded; serving the previous one", metadata: ["error": "\(error)"])
        }
    }

    /// Refreshes every `poll` until cancelled.
    public func run(poll: Duration = .seconds(60)) async {
        while !Task.isCancelled {
            await refresh()
            try? await Task.sleep(for: poll)
        }
    }

    /// Scores the shopper `unit` as of `t` (off the actor); nil without a model.
    nonisolated func score(_ unit: IntentFeatures.Unit, asOf t: Int64) async throws -> IntentScore? {
        guard let l = await current else { return nil }
        let lookback = Int64(l.model.lookbackMinutes) * 60
        let recent = try await reads.read { try IntentFeatures.recent($0, unit: unit, asOf: t, lookback: lookback) }
        return l.model.score(recent.events, purchasesBefore: recent.purchasesBefore, asOf: t, rates: l.rates, version: l.version)
    }
}
