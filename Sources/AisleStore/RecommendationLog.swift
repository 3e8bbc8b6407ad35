import GRDB

/// The served slates' log (`rec_impressions`, with `rec_explore` and `rec_feedback` by request
/// id), which `aislectl eval policy` and `aislectl experiments report` read. It is kept for a
/// number of days, not for ever: at 2,000 slates a second it grows by 20,000 rows a second.
public enum RecommendationLog {
    /// Deletes up to `limit` slates served before `ts` (seconds), with their explored positions
    /// and feedback, in one transaction; returns how many slates went. Call it until it returns
    /// less than `limit`: small batches keep the writer free for events between them.
    public static func prune(_ db: Database, before ts: Int64, limit: Int) throws -> Int {
        let requests = try String.fetchAll(db, sql: "SELECT DISTINCT request_id FROM rec_impressions WHERE ts < ? LIMIT ?", arguments: [ts, limit])
        guard !requests.isEmpty else { return 0 }
        let ids = "(" + repeatElement("?", count: requests.count).joined(separator: ",") + ")"
        for table in ["rec_explore", "rec_feedback", "rec_impressions"] {
            try db.execute(sql: "DELETE FROM \(table) WHERE request_id IN \(ids)", arguments: StatementArguments(requests))
        }
        return requests.count
    }
}
