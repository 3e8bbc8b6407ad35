import AisleStore
import Foundation
import GRDB

/// Flags (never drops) purchase and return lines whose quantity or unit price lies far outside
/// the item's robust range.
///
/// Per item with at least ``minObservations`` lines, on a log scale: a value is an outlier when
/// its robust z-score 0.6745·|x − median| / MAD exceeds ``threshold``; when the MAD is zero,
/// when it is more than ``flatRatio`` times away from the median. Flags are a pure function of
/// the item's lines, so re-running gives the same result whatever the arrival order.
public enum OutlierFlagger {
    public static let minObservations = 5
    public static let threshold = 5.0
    public static let flatRatio = 10.0

    /// Recomputes the flags of the given items' lines; returns how many of those lines are
    /// flagged now.
    @discardableResult
    public static func flag(items: Set<Int64>, db: Database) throws -> Int {
        let found = try changes(items: items, db: db)
        try apply(found.changes, db: db)
        return found.flagged
    }

    /// The flags the given items' lines should have where they differ from what is stored (a
    /// read: a writer need not wait for the scan), and how many of the lines are flagged.
    public static func changes(items: Set<Int64>, db: Database) throws -> (changes: [(id: Int64, flags: Int64)], flagged: Int) {
        guard !items.isEmpty else { return ([], 0) }
        // One sequential scan beats an index probe per item once a run touches many items.
        var lines: [Int64: [(id: Int64, qty: Int64, price: Double?, flags: Int64)]] = [:]
        let rows = try Row.fetchCursor(db, sql: """
            SELECT item_id, id, qty, price, flags FROM events NOT INDEXED
            WHERE type IN ('purchase', 'return') AND item_id IS NOT NULL
            """)
        while let row = try rows.next() {
            let item: Int64 = row[0]
            guard items.contains(item) else { continue }
            lines[item, default: []].append((row[1], row[2], row[3], row[4]))
        }
        var changes: [(id: Int64, flags: Int64)] = [], flagged = 0
        for (_, rows) in lines where rows.count >= minObservations {
            let qtyOut = outliers(rows.map { Double($0.qty) })
            let priceOut = outliers(rows.map { $0.price ?? .nan })
            for (k, row) in rows.enumerated() {
                var new = row.flags & ~(EventFlag.quantityOutlier | EventFlag.priceOutlier)
                if qtyOut[k] { new |= EventFlag.quantityOutlier }
                if priceOut[k] { new |= EventFlag.priceOutlier }
                if new != 0 { flagged += 1 }
                if new != row.flags { changes.append((row.id, new)) }
            }
        }
        return (changes, flagged)
    }

    /// Writes flags found by ``changes(items:db:)``.
    public static func apply(_ changes: [(id: Int64, flags: Int64)], db: Database) throws {
        let update = try db.cachedStatement(sql: "UPDATE events SET flags = ? WHERE id = ?")
        for change in changes { try update.execute(arguments: [change.flags, change.id]) }
    }

    /// Which values are outliers (non-positive and NaN values are never flagged).
    static func outliers(_ values: [Double]) -> [Bool] {
        let logs = values.compactMap { $0 > 0 ? log($0) : nil }
        guard logs.count >= minObservations else { return values.map { _ in false } }
        let med = median(logs)
        let mad = median(logs.map { abs($0 - med) })
        return values.map { v in
            guard v > 0 else { return false }
            let d = abs(log(v) - med)
            return mad > 0 ? 0.6745 * d / mad > threshold : d > log(flatRatio)
        }
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }
}
