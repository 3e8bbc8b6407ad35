import AisleCore
import AisleStore
import Foundation
import Logging

/// Clears the words of kiosk searches and questions older than `days` (``TextRetention``) at
/// start and hourly, 1,000 events to a transaction; `days` 0 keeps them.
func keepTextFor(days: Int, store: Store, logger: Logger) async {
    guard days > 0 else { return }
    while !Task.isCancelled {
        let before = Int64(Date().timeIntervalSince1970) - Int64(days) * 86_400
        var cleared = 0
        do {
            while !Task.isCancelled {
                // Through Blocking, so that the agent's stop waits for a pass under way.
                let n = try await Blocking.run { try TextRetention.clear(store.database, before: before, rows: 1_000) }
                cleared += n
                if n == 0 { break }
            }
        } catch {
            logger.error("old search and question texts not cleared", metadata: ["error": "\(error)"])
        }
        if cleared > 0 { logger.info("old search and question texts cleared", metadata: ["events": "\(cleared)", "days_kept": "\(days)"]) }
        try? await Task.sleep(for: .seconds(3600))
    }
}
