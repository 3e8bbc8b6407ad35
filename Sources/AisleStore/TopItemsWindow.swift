import AisleCore
import Foundation
import GRDB

/// The window of a "top items" report. With neither bound given it is the calendar month of
/// the store's latest event ("this month" for a live store; the last month of a historical one).
public struct TopItemsWindow: Sendable {
    public var from: Int64?
    public var to: Int64?

    public init(from: String?, to: String?) throws {
        self.from = try from.map { try Timestamp.parse($0) }
        self.to = try to.map { try Timestamp.parse($0) }
    }

    public func query(_ db: Database, limit: Int) throws -> (from: Int64, to: Int64, items: [TopItem]) {
        var from = self.from
        var to = self.to
        if from == nil || to == nil {
            let anchor = try to ?? Queries.lastEventTime(db) ?? Int64(Date().timeIntervalSince1970)
            let day = Int(anchor.floorDiv(86_400))
            let (y, m, _) = Timestamp.civil(fromDays: day)
            let monthStart = Int64(Timestamp.daysFromCivil(year: y, month: m, day: 1)) * 86_400
            let next = m == 12 ? (y + 1, 1) : (y, m + 1)
            from = from ?? monthStart
            to = to ?? Int64(Timestamp.daysFromCivil(year: next.0, month: next.1, day: 1)) * 86_400
        }
        let (f, t) = (from ?? 0, to ?? 0)
        return (f, t, try Queries.topItems(db, from: f, to: t, limit: limit))
    }
}
