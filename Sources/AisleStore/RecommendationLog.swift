import GRDB

/// The served slates' log (`rec_impressions`, with `rec_explore` and `rec_feedback` by request
/// id), which `aislectl eval policy` and `aislectl experiments report` read. It is kept for a
/// number of days, not for ever: at 2,000 slates a second it grows by 20,000 rows a second.
public enum RecommendationLog {
    /// Deletes the slates of the oldest `rows` impressions served before `ts` (seconds), with
    /// their explored positions and feedback, in one transaction; returns how many slates went.
    /// Call it until it returns 0 (small batches keep the writer free for events between them),
    /// then ``pruneFeedback(_:before:)``.
    public static func prune(_ db: Database, before ts: Int64, rows: Int) throws -> Int {
        // By the time index (a DISTINCT over the table would read it in key order, all of it
        // when nothing is old).
        let requests = try String.fetchAll(db, sql: """
            SELECT DISTINCT request_id FROM (SELECT request_id FROM rec_impressions WHERE ts < ? ORDER BY ts LIMIT ?)
            """, arguments: [ts, rows])
        guard !requests.isEmpty else { return 0 }
        try deleteSlates(db, in: "(" + repeatElement("?", count: requests.count).joined(separator: ",") + ")", arguments: StatementArguments(requests))
        return requests.count
    }

    /// Deletes feedback given before `ts` whose slate was never logged (its flush failed, or it
    /// was erased meanwhile), by the time index.
    public static func pruneFeedback(_ db: Database, before ts: Int64) throws {
        try db.execute(sql: "DELETE FROM rec_feedback WHERE ts < ?", arguments: [ts])
    }

    /// Deletes the slates whose request ids are `set` — a parenthesised list or a table — from
    /// the three tables.
    static func deleteSlates(_ db: Database, in set: String, arguments: StatementArguments = []) throws {
        for table in ["rec_explore", "rec_feedback", "rec_impressions"] {
            try db.execute(sql: "DELETE FROM \(table) WHERE request_id IN \(set)", arguments: arguments)
        }
    }
}
