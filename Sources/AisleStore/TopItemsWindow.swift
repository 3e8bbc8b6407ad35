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
        /// The start of the month holding `moment`, and of the month after.
        func month(_ moment: Int64) -> (start: Int64, next: Int64) {
            let (y, m, _) = Timestamp.civil(fromDays: Int(moment.floorDiv(86_400)))
            let next = Timestamp.monthAfter(year: y, month: m)
            return (Int64(Timestamp.daysFromCivil(year: y, month: m, day: 1)) * 86_400, Int64(Timestamp.daysFromCivil(year: next.year, month: next.month, day: 1)) * 86_400)
        }
        var from = self.from
        var to = self.to
        if from == nil || to == nil {
            // The month holding the last moment before `to` (`to` itself may start a month).
            let anchor = month(try to.map { $0 - 1 } ?? Queries.lastEventTime(db) ?? Int64(Date().timeIntervalSince1970))
            from = from ?? anchor.start
            // Only `from` given: at least to the end of its month (a month begun without sales yet is empty, not refused).
            to = to ?? max(anchor.next, month(from ?? anchor.start).next)
        }
        let (f, t) = (from ?? 0, to ?? 0)
        return (f, t, try Queries.topItems(db, from: f, to: t, limit: limit))
    }
}
