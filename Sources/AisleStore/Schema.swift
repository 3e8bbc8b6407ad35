import Foundation
import GRDB

/// The store's versioned schema. Migrations only ever append; a store opened by an older
/// build with a newer schema is refused by GRDB's migrator check in ``Store/open(at:readOnly:)``.
enum Schema {
    /// The migrations, for checking versions.
    static var migrator: DatabaseMigrator { migrator(in: nil) }

    /// The migrations of the store at `directory`, whose secret v19 reads when it has kiosk
    /// sessions to rewrite.
    static func migrator(in directory: URL?) -> DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1-events") { db in
            try db.execute(sql: """
                CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;

                -- Pseudonymous customers: HMAC-SHA256 of the raw identifier with the store secret.
                CREATE TABLE customers(
                    id INTEGER PRIMARY KEY,
                    pseudonym BLOB NOT NULL UNIQUE CHECK(length(pseudonym) = 32));

                CREATE TABLE items(
                    id INTEGER PRIMARY KEY,
                    sku TEXT NOT NULL UNIQUE,
                    title TEXT NOT NULL DEFAULT '',
                    category TEXT,
                    price REAL,
                    active INTEGER NOT NULL DEFAULT 1,
                    sellable INTEGER NOT NULL DEFAULT 1);

                -- Catalog prices over time (from catalog imports).
                CREATE TABLE item_prices(
                    item_id INTEGER NOT NULL REFERENCES items(id),
                    ts INTEGER NOT NULL,
                    price REAL NOT NULL,
                    PRIMARY KEY(item_id, ts)) WITHOUT ROWID;

                -- Observed sales per item and day: units and revenue sold and returned, the price range paid.
                CREATE TABLE item_daily(
                    item_id INTEGER NOT NULL REFERENCES items(id),
                    day INTEGER NOT NULL,
                    purchases INTEGER NOT NULL DEFAULT 0,
                    units INTEGER NOT NULL DEFAULT 0,
                    revenue REAL NOT NULL DEFAULT 0,
                    returns INTEGER NOT NULL DEFAULT 0,
                    returned_value REAL NOT NULL DEFAULT 0,
                    min_price REAL,
                    max_price REAL,
                    PRIMARY KEY(item_id, day)) WITHOUT ROWID;

                CREATE TABLE sessions(
                    id INTEGER PRIMARY KEY,
                    key TEXT NOT NULL UNIQUE,
                    customer_id INTEGER REFERENCES customers(id),
                    store TEXT,
                    first_ts INTEGER NOT NULL,
                    last_ts INTEGER NOT NULL);

                -- Baskets: the lines of one purchase share a receipt.
                CREATE TABLE receipts(
                    id INTEGER PRIMARY KEY,
                    key TEXT NOT NULL UNIQUE,
                    ts INTEGER NOT NULL,
                    customer_id INTEGER REFERENCES customers(id),
                    store TEXT);

                CREATE TABLE import_runs(
                    id INTEGER PRIMARY KEY,
                    kind TEXT NOT NULL,
                    source TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    started_at INTEGER NOT NULL,
                    finished_at INTEGER,
                    status TEXT NOT NULL CHECK(status IN ('running','completed','failed','interrupted')),
                    lines INTEGER NOT NULL DEFAULT 0,
                    accepted INTEGER NOT NULL DEFAULT 0,
                    duplicates INTEGER NOT NULL DEFAULT 0,
                    rejected INTEGER NOT NULL DEFAULT 0,
                    summary TEXT);

                CREATE TABLE import_rejects(
                    run_id INTEGER NOT NULL REFERENCES import_runs(id) ON DELETE CASCADE,
                    line INTEGER NOT NULL,
                    field TEXT,
                    reason TEXT NOT NULL);
                CREATE INDEX import_rejects_run ON import_rejects(run_id, line);

                -- Append-only events. `key` is the idempotency key: the event's hour (4 bytes, big
                -- endian) then a hash of its id, or of its content when there is no id. Leading with
                -- the hour makes the key index a time index too (see EventKey).
                CREATE TABLE events(
                    id INTEGER PRIMARY KEY,
                    key BLOB NOT NULL UNIQUE,
                    ts INTEGER NOT NULL,
                    type TEXT NOT NULL CHECK(type IN ('view','cart','fav','purchase','return','review','search','question')),
                    customer_id INTEGER REFERENCES customers(id),
                    session_id INTEGER REFERENCES sessions(id),
                    receipt_id INTEGER REFERENCES receipts(id),
                    item_id INTEGER REFERENCES items(id),
                    qty INTEGER NOT NULL DEFAULT 1 CHECK(qty > 0),
                    price REAL,
                    text TEXT,
                    rating INTEGER CHECK(rating BETWEEN 1 AND 5),
                    source TEXT,
                    store TEXT,
                    flags INTEGER NOT NULL DEFAULT 0,
                    sale_event_id INTEGER REFERENCES events(id),
                    import_run_id INTEGER,
                    ingested_at INTEGER NOT NULL,
                    tier INTEGER NOT NULL DEFAULT 1 CHECK(tier IN (0, 1)));
                -- Two tiers (see Tiers.swift): events the agent takes one by one arrive in tier 0,
                -- whose indexes stay small and cached; they are settled into tier 1 in large sorted
                -- batches. Queries by customer or item read both tiers.
                CREATE INDEX events_customer_ts ON events(customer_id, ts) WHERE customer_id IS NOT NULL AND tier = 1;
                CREATE INDEX events_item_customer ON events(item_id, customer_id) WHERE item_id IS NOT NULL AND customer_id IS NOT NULL AND tier = 1;
                CREATE INDEX events_recent_customer_ts ON events(customer_id, ts) WHERE customer_id IS NOT NULL AND tier = 0;
                CREATE INDEX events_recent_item_customer ON events(item_id, customer_id) WHERE item_id IS NOT NULL AND customer_id IS NOT NULL AND tier = 0;
                CREATE INDEX events_recent ON events(id) WHERE tier = 0;
                CREATE INDEX events_receipt ON events(receipt_id) WHERE receipt_id IS NOT NULL;
                CREATE INDEX events_session ON events(session_id) WHERE session_id IS NOT NULL;

                -- Who did what, when, from the admin CLI and the agent.
                CREATE TABLE audit_log(
                    id INTEGER PRIMARY KEY,
                    ts INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    action TEXT NOT NULL,
                    detail TEXT);
                """)
        }
        m.registerMigration("v2-embeddings") { db in
            try db.execute(sql: """
                -- Text embeddings by encoder version and SHA-256 of the text: a catalog is encoded
                -- once, and again only when the model changes.
                CREATE TABLE embeddings(
                    model TEXT NOT NULL,
                    text_hash BLOB NOT NULL,
                    dimensions INTEGER NOT NULL,
                    vector BLOB NOT NULL,
                    PRIMARY KEY(model, text_hash)) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v3-models") { db in
            try db.execute(sql: """
                -- The model registry: every trained model (sentiment, churn, intent …) with what it
                -- was trained on and how well it did; one version per kind is active.
                CREATE TABLE models(
                    id INTEGER PRIMARY KEY,
                    kind TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    created_at INTEGER NOT NULL,
                    actor TEXT NOT NULL,
                    data_from INTEGER,
                    data_until INTEGER,
                    parameters TEXT NOT NULL,
                    metrics TEXT NOT NULL,
                    features TEXT NOT NULL,
                    payload BLOB NOT NULL,
                    sha256 BLOB NOT NULL CHECK(length(sha256) = 32),
                    UNIQUE(kind, version));
                CREATE TABLE active_models(
                    kind TEXT PRIMARY KEY,
                    model_id INTEGER NOT NULL REFERENCES models(id),
                    since INTEGER NOT NULL) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v4-review-sentiment") { db in
            try db.execute(sql: """
                -- Each review's P(positive) under a version of the sentiment model; rescored when
                -- another version becomes active.
                CREATE TABLE review_sentiment(
                    event_id INTEGER PRIMARY KEY REFERENCES events(id) ON DELETE CASCADE,
                    model_version INTEGER NOT NULL,
                    score REAL NOT NULL CHECK(score BETWEEN 0 AND 1));
                """)
        }
        m.registerMigration("v5-text-themes") { db in
            try db.execute(sql: """
                -- The catalog theme nearest each search, question and review text under a version of
                -- the themes model (customers' interests count what they ask and write).
                CREATE TABLE text_themes(
                    event_id INTEGER PRIMARY KEY REFERENCES events(id) ON DELETE CASCADE,
                    model_version INTEGER NOT NULL,
                    theme INTEGER NOT NULL,
                    similarity REAL NOT NULL);
                """)
        }
        m.registerMigration("v6-recommendation-log") { db in
            try db.execute(sql: """
                -- Every slate served (one row per item shown, with the policy's propensity of showing
                -- it there) and what the shopper did with it: the data for offline policy evaluation.
                CREATE TABLE rec_impressions(
                    request_id TEXT NOT NULL,
                    ts INTEGER NOT NULL,
                    customer_id INTEGER REFERENCES customers(id) ON DELETE CASCADE,
                    session TEXT,
                    placement TEXT NOT NULL,
                    model TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    item_id INTEGER NOT NULL REFERENCES items(id),
                    score REAL NOT NULL,
                    source TEXT NOT NULL,
                    propensity REAL NOT NULL CHECK(propensity > 0 AND propensity <= 1),
                    PRIMARY KEY(request_id, position)) WITHOUT ROWID;
                CREATE INDEX rec_impressions_ts ON rec_impressions(ts);
                CREATE TABLE rec_feedback(
                    request_id TEXT NOT NULL,
                    item_id INTEGER NOT NULL REFERENCES items(id),
                    action TEXT NOT NULL CHECK(action IN ('click', 'cart', 'purchase', 'dismiss')),
                    ts INTEGER NOT NULL,
                    PRIMARY KEY(request_id, item_id, action)) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v7-exploration") { db in
            try db.execute(sql: """
                -- For each explored slate position: the arms the bandit chose among (their contexts)
                -- and which it chose, so a different policy can be evaluated offline.
                CREATE TABLE rec_explore(
                    request_id TEXT NOT NULL,
                    position INTEGER NOT NULL,
                    chosen INTEGER NOT NULL,
                    arms TEXT NOT NULL,
                    PRIMARY KEY(request_id, position)) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v8-experiments") { db in
            try db.execute(sql: """
                -- The experiment and arm each slate was served under (NULL: no experiment running).
                ALTER TABLE rec_impressions ADD COLUMN experiment TEXT;
                ALTER TABLE rec_impressions ADD COLUMN arm TEXT;
                CREATE INDEX rec_impressions_experiment ON rec_impressions(experiment, arm) WHERE experiment IS NOT NULL;
                """)
        }
        m.registerMigration("v9-catalog-search") { db in
            try db.execute(sql: """
                -- Full-text index of the catalog (BM25 over titles and categories) for kiosk search,
                -- kept in step with `items` by triggers.
                CREATE VIRTUAL TABLE item_search USING fts5(
                    title, category, content='items', content_rowid='id', tokenize='unicode61 remove_diacritics 2');
                CREATE TRIGGER items_search_insert AFTER INSERT ON items BEGIN
                    INSERT INTO item_search(rowid, title, category) VALUES (new.id, new.title, new.category);
                END;
                CREATE TRIGGER items_search_delete AFTER DELETE ON items BEGIN
                    INSERT INTO item_search(item_search, rowid, title, category) VALUES ('delete', old.id, old.title, old.category);
                END;
                CREATE TRIGGER items_search_update AFTER UPDATE OF title, category ON items BEGIN
                    INSERT INTO item_search(item_search, rowid, title, category) VALUES ('delete', old.id, old.title, old.category);
                    INSERT INTO item_search(rowid, title, category) VALUES (new.id, new.title, new.category);
                END;
                INSERT INTO item_search(item_search) VALUES ('rebuild');
                """)
        }
        m.registerMigration("v10-sync") { db in
            try db.execute(sql: """
                -- What the store sends the hub, kept until the hub acknowledges it (AisleSync.Outbox).
                CREATE TABLE outbox(
                    content_id TEXT PRIMARY KEY,
                    kind TEXT NOT NULL,
                    round INTEGER NOT NULL DEFAULT 0,
                    payload BLOB NOT NULL,
                    created_at INTEGER NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0,
                    next_attempt_at INTEGER NOT NULL DEFAULT 0,
                    next_part INTEGER NOT NULL DEFAULT 0,
                    last_error TEXT,
                    exported_at INTEGER) WITHOUT ROWID;
                -- Global models offered by the hub, and what became of each.
                CREATE TABLE synced_models(
                    kind TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    round INTEGER NOT NULL,
                    manifest BLOB NOT NULL,
                    signature BLOB NOT NULL,
                    received_at INTEGER NOT NULL,
                    registry_version INTEGER,
                    outcome TEXT NOT NULL CHECK(outcome IN ('installed','rolled_back','refused')),
                    detail TEXT,
                    PRIMARY KEY(kind, version)) WITHOUT ROWID;
                """)
        }
        m.registerMigration("v11-federated-rounds") { db in
            try db.execute(sql: """
                -- Training rounds this store takes part in: its secure-aggregation state for the
                -- round (keys and shares, deleted when the round ends), its vector, its last step,
                -- and the noise multiplier it spent privacy budget on.
                CREATE TABLE fl_rounds(
                    round INTEGER PRIMARY KEY,
                    kind TEXT NOT NULL,
                    state BLOB,
                    vector BLOB,
                    step TEXT NOT NULL,
                    noise_multiplier REAL NOT NULL DEFAULT 0,
                    joined_at INTEGER NOT NULL,
                    finished_at INTEGER,
                    note TEXT);
                """)
        }
        m.registerMigration("v12-round-pending") { db in
            // The step a store is about to send, written before it goes: sent again as it was
            // when its answer is lost, never recomputed (a recomputed unmasking could reveal both
            // secrets of one store to a lying hub).
            try db.execute(sql: "ALTER TABLE fl_rounds ADD COLUMN pending BLOB; ALTER TABLE fl_rounds ADD COLUMN pending_step TEXT;")
        }
        m.registerMigration("v13-outbox-held") { db in
            // An upload the hub refused for good (its content, not the moment): kept, not retried
            // until someone releases it (`aislectl sync retry`).
            try db.execute(sql: "ALTER TABLE outbox ADD COLUMN held INTEGER NOT NULL DEFAULT 0")
        }
        m.registerMigration("v14-erasure-indexes") { db in
            // What erasing a customer (CustomerErasure) and pruning the slate log look rows up by,
            // rather than scanning their tables inside a write: returns by the sale they undo,
            // receipts and sessions by customer, feedback by time.
            try db.execute(sql: """
                CREATE INDEX events_sale ON events(sale_event_id) WHERE sale_event_id IS NOT NULL;
                CREATE INDEX receipts_customer ON receipts(customer_id) WHERE customer_id IS NOT NULL;
                CREATE INDEX sessions_customer ON sessions(customer_id) WHERE customer_id IS NOT NULL;
                CREATE INDEX rec_feedback_ts ON rec_feedback(ts);
                """)
        }
        m.registerMigration(slateRowsMigration) { db in
            // A row per served slate instead of one per item shown: the log is written beside the
            // requests on the same two cores, and ten rows a slate cost it most of its time. The
            // items, by position: [[item_id, score, source, propensity], …]. `rec_impressions`
            // stays, as a view with its old columns, for reports and ad hoc queries.
            try db.execute(sql: """
                CREATE TABLE rec_slates(
                    request_id TEXT PRIMARY KEY NOT NULL,
                    ts INTEGER NOT NULL,
                    customer_id INTEGER REFERENCES customers(id) ON DELETE CASCADE,
                    session TEXT,
                    placement TEXT NOT NULL,
                    model TEXT NOT NULL,
                    experiment TEXT,
                    arm TEXT,
                    items TEXT NOT NULL) WITHOUT ROWID;
                INSERT INTO rec_slates
                    SELECT request_id, min(ts), customer_id, session, placement, model, experiment, arm,
                           json_group_array(json_array(item_id, score, source, propensity))
                    FROM (SELECT * FROM rec_impressions ORDER BY request_id, position) GROUP BY request_id;
                PRAGMA secure_delete = ON;  -- the old rows name customers and sessions: no copies left in free pages
                DROP TABLE rec_impressions;
                PRAGMA secure_delete = FAST;
                CREATE INDEX rec_slates_ts ON rec_slates(ts);
                CREATE INDEX rec_slates_experiment ON rec_slates(experiment, arm) WHERE experiment IS NOT NULL;
                CREATE VIEW rec_impressions AS
                    SELECT s.request_id, s.ts, s.customer_id, s.session, s.placement, s.model, j.key AS position,
                           json_extract(j.value, '$[0]') AS item_id, json_extract(j.value, '$[1]') AS score,
                           json_extract(j.value, '$[2]') AS source, json_extract(j.value, '$[3]') AS propensity,
                           s.experiment, s.arm
                    FROM rec_slates s, json_each(s.items) j;
                """)
        }
        m.registerMigration(logFileMigration) { db in
            // The slate log moves to its own file (RecommendationLog.fileName), written from a
            // low-priority thread without holding the store's writer. Store.open has copied the
            // rows there in a transaction of its own; the store's copies go, zeroed.
            try db.execute(sql: """
                PRAGMA secure_delete = ON;
                DROP VIEW main.rec_impressions;
                DROP TABLE main.rec_explore;
                DROP TABLE main.rec_feedback;
                DROP TABLE main.rec_slates;
                PRAGMA secure_delete = FAST;
                """)
        }
        m.registerMigration("v17-models-ever-active") { db in
            // Rollback goes back to versions that were in use, not to ones registered inactive
            // (a hub model the AUC gate refused, `train --no-activate`). Versions from before
            // this count as used: rollback stepped through them all.
            try db.execute(sql: "ALTER TABLE models ADD COLUMN ever_active INTEGER NOT NULL DEFAULT 0; UPDATE models SET ever_active = 1")
        }
        m.registerMigration("v18-search-text-retention") { db in
            // The searches and questions whose words are still kept, oldest first (TextRetention).
            try db.execute(sql: "CREATE INDEX events_kept_text ON events(ts) WHERE text IS NOT NULL AND type IN ('search', 'question')")
        }
        m.registerMigration(sessionKeysMigration, foreignKeyChecks: .immediate) { db in
            // Kiosk sessions' keys as sent become their keyed hashes (SessionKeys); Store.migrate
            // has rewritten the slate log's first.
            try SessionKeys.rewriteStore(db, in: directory)
        }
        m.registerMigration("v20-recheck-cleared-keys", foreignKeyChecks: .immediate) { db in
            // A build of v18 from before keys were sealed still opens a store whose old keys a
            // later v18 build sealed, and clears words without sealing their keys; the marker
            // would keep them unsealed. It goes, so the agent's next start looks once more; no
            // build before this one opens the store from now on.
            try Meta.remove(db, TextRetention.doneKey)
        }
        m.registerMigration("v21-in-stock", foreignKeyChecks: .immediate) { db in
            // Whether the shelves have the item now (catalog `in_stock`): search and
            // recommendations offer only those. Every item so far counts as in stock.
            try db.execute(sql: "ALTER TABLE items ADD COLUMN in_stock INTEGER NOT NULL DEFAULT 1")
        }
        return m
    }

    /// The migration that keyed kiosk sessions' keys with the store secret.
    static let sessionKeysMigration = "v19-session-keys"

    /// The migration that made the slate log a row per slate.
    static let slateRowsMigration = "v15-slate-rows"
    /// The migration that moved the slate log to its own file.
    static let logFileMigration = "v16-log-file"
}

/// The items a shopper may be offered — by search, the assistant or recommendations: active,
/// sellable and in stock. Indexes are built over the listed items (active, sellable), and stock,
/// which changes by the minute, is checked when they are read.
public enum OfferedItems {
    /// The condition on a row of `items` (`alias`: the table's alias in the query, if any).
    public static func condition(_ alias: String? = nil) -> String { listed(alias) + " AND \(prefix(alias))in_stock = 1" }

    /// Active and sellable, in stock or not.
    public static func listed(_ alias: String? = nil) -> String { "\(prefix(alias))active = 1 AND \(prefix(alias))sellable = 1" }

    private static func prefix(_ alias: String?) -> String { alias.map { $0 + "." } ?? "" }
}

/// Bits of `events.flags`.
public enum EventFlag {
    /// Quantity far outside the item's robust range.
    public static let quantityOutlier: Int64 = 1
    /// Unit price far outside the item's robust range.
    public static let priceOutlier: Int64 = 2
    /// Its words cleared and its key sealed (``TextRetention``).
    public static let keySealed: Int64 = 4
}
