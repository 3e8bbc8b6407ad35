import GRDB

/// What the agent derives from event texts in the background, one model version at a time:
/// review sentiment (``ReviewSentiment``) and the theme of searches, questions and reviews.
public enum TextScores {
    public enum Kind: Sendable {
        case reviewSentiment, textThemes

        var table: String { self == .reviewSentiment ? "review_sentiment" : "text_themes" }
        var types: String { self == .reviewSentiment ? "'review'" : "'review', 'search', 'question'" }
    }

    /// Events with text after event `after` (by id) that `version` has not scored, oldest first.
    public static func pending(_ db: Database, _ kind: Kind, version: Int, after: Int64, limit: Int) throws -> [(id: Int64, text: String)] {
        try Row.fetchAll(db, sql: """
            SELECT e.id, e.text FROM events e LEFT JOIN \(kind.table) r ON r.event_id = e.id
            WHERE e.id > ? AND e.type IN (\(kind.types)) AND e.text IS NOT NULL AND e.text != ''
              AND (r.event_id IS NULL OR r.model_version != ?)
            ORDER BY e.id LIMIT ?
            """, arguments: [after, version, limit]).map { ($0[0], $0[1]) }
    }

    /// The highest event id that `version` has scored (where to resume after a restart).
    public static func highWater(_ db: Database, _ kind: Kind, version: Int) throws -> Int64 {
        try Int64.fetchOne(db, sql: "SELECT max(event_id) FROM \(kind.table) WHERE model_version = ?", arguments: [version]) ?? 0
    }

    /// Records the nearest theme of texts under one version of the themes model.
    public static func recordThemes(_ db: Database, version: Int, themes: [(id: Int64, theme: Int, similarity: Double)]) throws {
        let statement = try db.cachedStatement(sql: "INSERT OR REPLACE INTO text_themes(event_id, model_version, theme, similarity) VALUES (?, ?, ?, ?)")
        for t in themes { try statement.execute(arguments: [t.id, version, t.theme, t.similarity]) }
    }
}
