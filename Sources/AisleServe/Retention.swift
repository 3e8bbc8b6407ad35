import AisleCore
import AisleIngest
import AisleStore
import Foundation
import Logging

/// Clears the words of kiosk searches and questions older than `days` (``TextRetention``) at
/// start and hourly, 1,000 events to a transaction; `days` 0 keeps them. Keys of words cleared
/// before keys were sealed are sealed at the first start.
func keepTextFor(days: Int, store: Store, pseudonymizer: Pseudonymizer, logger: Logger) async {
    let seal = pseudonymizer.sealedKey
    do {
        // A transaction a batch, each through Blocking: the agent's stop waits for one only.
        let old = try await Blocking.run { try TextRetention.oldKeys(store.database) }
        var sealed = 0
        for start in stride(from: 0, to: old.count, by: 1_000) where !Task.isCancelled {
            let batch = Array(old[start..<min(start + 1_000, old.count)])
            sealed += try await Blocking.run { try TextRetention.sealOldKeys(store.database, ids: batch, seal: seal) }
        }
        if !Task.isCancelled { try await Blocking.run { try TextRetention.markOldKeysSealed(store.database) } }
        if sealed > 0 { logger.info("keys of cleared search and question texts sealed", metadata: ["events": "\(sealed)"]) }
    } catch {
        logger.error("keys of cleared search and question texts not sealed", metadata: ["error": "\(error)"])
    }
    guard days > 0 else { return }
    await repeatEvery(.seconds(3600)) {
        let before = Int64(Date().timeIntervalSince1970) - Int64(days) * 86_400
        do {
            // Through Blocking, so that the agent's stop waits for a pass under way.
            let cleared = try await inBatches { try await Blocking.run { try TextRetention.clear(store.database, before: before, rows: 1_000, seal: seal) } }
            if cleared > 0 { logger.info("old search and question texts cleared", metadata: ["events": "\(cleared)", "days_kept": "\(days)"]) }
        } catch {
            logger.error("old search and question texts not cleared", metadata: ["error": "\(error)"])
        }
    }
}

/// Runs `body` now and then every `period` until the task is cancelled.
func repeatEvery(_ period: Duration, isolation: isolated (any Actor)? = #isolation, _ body: () async -> Void) async {
    while !Task.isCancelled {
        await body()
        try? await Task.sleep(for: period)
    }
}

/// Runs `batch` — one transaction deleting or clearing up to some rows, returning how many — until
/// one finds none or the task is cancelled; the rows of all.
func inBatches(isolation: isolated (any Actor)? = #isolation, _ batch: () async throws -> Int) async throws -> Int {
    var total = 0
    while !Task.isCancelled {
        let n = try await batch()
        total += n
        if n == 0 { break }
    }
    return total
}
