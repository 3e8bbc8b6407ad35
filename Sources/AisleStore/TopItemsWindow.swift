import AisleCore
import Foundation
import GRDB

/// The window of a "top items" report. With neither bound given it is the calendar month of
/// the store's latest event ("this month" for a live store; the last month of a historical one).
public struct TopItemsWindow: Sendable {
    public var from: Int64?
    public var to: Int64?

    /// Errors name `from` or `to`: a moment that does not parse, or `from` not before `to`.
    public init(from: String?, to: String?) throws {
        func parse(_ text: String?, _ field: String) throws -> Int64? {
            do { return try text.map { try Timestamp.parse($0) } } catch let e as FieldError { throw FieldError(field: field, e.reason) }
        }
        self.from = try parse(from, "from")
        self.to = try parse(to, "to")
        if let f = self.from, let t = self.to, f >= t { throw FieldError(field: "from", "must be before to") }
    }

    public func query(_ db: Database, limit: Int) throws -> (from: Int64, to: Int64, items: [TopItem]) {
        var from = self.from
        var to = self.to
        if from == nil || to == nil {
            // The month holding the last moment before `to` (`to` itself may start a month).
            let anchor = try to.map { $0 - 1 } ?? Queries.lastEventTime(db) ?? Int64(Date().timeIntervalSince1970)
            let day = Int(anchor.floorDiv(86_400))
            let (y, m, _) = Timestamp.civil(fromDays: day)
            let monthStart = Int64(Timestamp.daysFromCivil(year: y, month: m, day: 1)) * 86_400
            let next = m == 12 ? (y + 1, 1) : (y, m + 1)
            from = from ?? monthStart
            to = to ?? Int64(Timestamp.daysFromCivil(year: next.0, month: next.1, day: 1)) * 86_400
        }
        let (f, t) = (from ?? 0, to ?? 0)
        // Only `from` given, after the latest event's month: the default `to` falls before it.
        guard f < t else { throw FieldError(field: "from", "must be before to (by default \(Timestamp.format(t)), the end of the latest event's month)") }
        return (f, t, try Queries.topItems(db, from: f, to: t, limit: limit))
    }
}
