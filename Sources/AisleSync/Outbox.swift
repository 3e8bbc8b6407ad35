import AisleStore
import Foundation
import GRDB

/// Everything a store sends the hub waits here, in its own database, until the hub has
/// acknowledged all of it: it survives restarts and outages, and a content id (see
/// ``UploadPart/contentId(kind:round:payload:)``) makes each upload idempotent.
public enum Outbox {
    /// One queued upload.
    public struct Item: Sendable, Equatable {
        public var contentId: String
        public var kind: String
        public var round: UInt64
        public var payload: Data
        public var createdAt: Int64
        public var attempts: Int
        /// Parts before this one are known to be at the hub.
        public var nextPart: Int

        /// Number of parts it travels in.
        public var parts: Int { UploadPart.partCount(payload.count) }

        /// Part `index` of it, as sent.
        public func part(_ index: Int) -> UploadPart {
            let start = index * UploadPart.maxPartBytes
            return UploadPart(
                contentId: contentId, kind: kind, round: round, part: index, parts: parts, size: payload.count,
                data: payload.subdata(in: start..<min(payload.count, start + UploadPart.maxPartBytes)))
        }
    }

    /// What `aislectl sync status` shows.
    public struct Status: Sendable, Encodable {
        public var pending: Int
        public var bytes: Int
        public var oldest: Int64?
        public var nextAttempt: Int64?
        public var lastError: String?
        public var sent: Int
        /// Refused by the hub for good: kept, not retried (``release(_:)``), with the refusal.
        public var held: [Held]
        public struct Held: Sendable, Encodable { public var contentId: String; public var kind: String; public var error: String }
    }

    /// Retry delays: exponential from `minimum` to `maximum`, each scaled by a random factor in
    /// [0.5, 1] so a fleet that lost its hub does not come back in step.
    public struct Backoff: Sendable, Equatable {
        public var minimum: Int64
        public var maximum: Int64
        public init(minimum: Int64 = 5, maximum: Int64 = 3600) { (self.minimum, self.maximum) = (minimum, maximum) }

        public func delay(afterAttempts attempts: Int, random: Double = .random(in: 0.5...1)) -> Int64 {
            let exponential = Double(minimum) * pow(2, Double(max(0, min(attempts - 1, 30))))
            return max(1, Int64(min(Double(maximum), exponential) * random))
        }
    }

    /// Queues `payload`; queuing the same content again does nothing. Returns its content id.
    @discardableResult
    public static func enqueue(_ db: Database, kind: String, round: UInt64 = 0, payload: Data, now: Int64 = Int64(Date().timeIntervalSince1970)) throws -> String {
        let id = UploadPart.contentId(kind: kind, round: round, payload: payload)
        try db.execute(
            sql: "INSERT OR IGNORE INTO outbox(content_id, kind, round, payload, created_at) VALUES (?, ?, ?, ?, ?)",
            arguments: [id, kind, Int64(round), payload, now])
        return id
    }

    /// Items due for sending at `now` (all of them with `now` nil), oldest first.
    public static func due(_ db: Database, at now: Int64?) throws -> [Item] {
        try Row.fetchAll(
            db, sql: "SELECT * FROM outbox WHERE held = 0 AND next_attempt_at <= ? ORDER BY created_at, content_id", arguments: [now ?? Int64.max]
        ).map { row in
            Item(
                contentId: row["content_id"], kind: row["kind"], round: UInt64(row["round"] as Int64), payload: row["payload"],
                createdAt: row["created_at"], attempts: row["attempts"], nextPart: row["next_part"])
        }
    }

    /// Records that the hub holds the parts before `nextPart`.
    public static func progress(_ db: Database, contentId: String, nextPart: Int) throws {
        try db.execute(sql: "UPDATE outbox SET next_part = ? WHERE content_id = ?", arguments: [nextPart, contentId])
    }

    /// The hub has all of it: the item leaves the outbox.
    public static func delivered(_ db: Database, contentId: String) throws {
        try db.execute(sql: "DELETE FROM outbox WHERE content_id = ?", arguments: [contentId])
        if db.changesCount > 0 { try SyncState.add(db, "sync.sent", 1) }
    }

    /// A failed attempt: the item waits `backoff` longer each time.
    public static func failed(_ db: Database, contentId: String, error: String, backoff: Backoff, now: Int64 = Int64(Date().timeIntervalSince1970)) throws {
        let attempts = (try Int.fetchOne(db, sql: "SELECT attempts FROM outbox WHERE content_id = ?", arguments: [contentId]) ?? 0) + 1
        try db.execute(
            sql: "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE content_id = ?",
            arguments: [attempts, now + backoff.delay(afterAttempts: attempts), error, contentId])
    }

    /// The hub refused the item for what it is (`error`), so sending it again would fail the
    /// same way: it stays in the outbox, held, until ``release(_:)``.
    public static func hold(_ db: Database, contentId: String, error: String) throws {
        try db.execute(sql: "UPDATE outbox SET held = 1, last_error = ? WHERE content_id = ?", arguments: [error, contentId])
    }

    /// Held items back in the queue, due now (after an upgrade of agent or hub); returns how many.
    @discardableResult
    public static func release(_ db: Database) throws -> Int {
        try db.execute(sql: "UPDATE outbox SET held = 0, attempts = 0, next_attempt_at = 0 WHERE held = 1")
        return db.changesCount
    }

    /// Marks items as written to removable media (they stay queued until the hub acknowledges).
    public static func exported(_ db: Database, contentIds: [String], at now: Int64 = Int64(Date().timeIntervalSince1970)) throws {
        for id in contentIds { try db.execute(sql: "UPDATE outbox SET exported_at = ? WHERE content_id = ?", arguments: [now, id]) }
    }

    public static func status(_ db: Database) throws -> Status {
        let row = try Row.fetchOne(db, sql: "SELECT count(*), coalesce(sum(length(payload)), 0), min(created_at), min(next_attempt_at) FROM outbox WHERE held = 0")
        let lastError = try String.fetchOne(db, sql: "SELECT last_error FROM outbox WHERE last_error IS NOT NULL AND held = 0 ORDER BY next_attempt_at DESC LIMIT 1")
        let held = try Row.fetchAll(db, sql: "SELECT content_id, kind, last_error FROM outbox WHERE held = 1 ORDER BY created_at").map {
            Status.Held(contentId: $0[0], kind: $0[1], error: $0[2] ?? "")
        }
        return Status(
            pending: row?[0] ?? 0, bytes: row?[1] ?? 0, oldest: row?[2], nextAttempt: row?[3], lastError: lastError,
            sent: Int(try SyncState.integer(db, "sync.sent") ?? 0), held: held)
    }
}
