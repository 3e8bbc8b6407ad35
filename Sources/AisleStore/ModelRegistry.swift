import AisleCore
import Foundation
import GRDB

/// One trained model in the registry: what it is, what it was trained on, how well it did.
public struct ModelRecord: Sendable, Encodable {
    public var kind: String
    public var version: Int
    public var createdAt: String
    public var actor: String
    /// The events it learnt from: from (when known) up to, not including, `dataUntil`.
    public var dataFrom: String?
    public var dataUntil: String?
    public var parameters: JSONValue
    public var metrics: JSONValue
    public var features: [String]
    public var bytes: Int
    public var sha256: String
    public var active: Bool
}

/// Why the registry refused a request.
public struct RegistryError: Error, CustomStringConvertible {
    public var description: String
    init(_ description: String) { self.description = description }
}

/// The store's model registry: versioned models per kind (`sentiment`, `churn`, `intent` …),
/// each with its data window, parameters, metrics and feature list, and one active version per
/// kind. Registering, activating and rolling back are single transactions, so a reader sees the
/// old model or the new one, never a mix; payloads are checked against their SHA-256 on load.
public enum ModelRegistry {
    /// Versions kept per kind; older ones that are not active are deleted when a new one arrives.
    public static let keptVersions = 10

    /// Stores a new version of `kind` (the next number) and, with `activate`, makes it the
    /// active one. `parameters` and `metrics` are stored as JSON.
    @discardableResult
    public static func register(
        _ db: Database, kind: String, payload: Data, parameters: some Encodable, metrics: some Encodable,
        features: [String], dataFrom: Int64?, dataUntil: Int64?, activate: Bool = true, actor: String = Store.currentActor
    ) throws -> ModelRecord {
        guard kind.range(of: "^[a-z][a-z0-9_-]{0,31}$", options: .regularExpression) != nil else {
            throw RegistryError("model kind \"\(kind)\": use lower-case letters, digits, - and _")
        }
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = .sortedKeys
        let version = (try Int.fetchOne(db, sql: "SELECT max(version) FROM models WHERE kind = ?", arguments: [kind]) ?? 0) + 1
        try db.execute(
            sql: """
                INSERT INTO models(kind, version, created_at, actor, data_from, data_until, parameters, metrics, features, payload, sha256)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                kind, version, Int64(Date().timeIntervalSince1970), actor, dataFrom, dataUntil,
                String(decoding: try encoder.encode(parameters), as: UTF8.self), String(decoding: try encoder.encode(metrics), as: UTF8.self),
                String(decoding: try encoder.encode(features), as: UTF8.self), payload, Digests.sha256(payload),
            ])
        if activate { try self.activate(db, kind: kind, version: version) }
        try db.execute(
            sql: """
                DELETE FROM models WHERE kind = ? AND version <= ? - ?
                  AND id NOT IN (SELECT model_id FROM active_models)
                """,
            arguments: [kind, version, keptVersions])
        guard let record = try record(db, kind: kind, version: version) else { throw RegistryError("model \(kind) v\(version) vanished") }
        return record
    }

    /// Every version, newest first; of one kind when given.
    public static func list(_ db: Database, kind: String? = nil) throws -> [ModelRecord] {
        try Row.fetchAll(db, sql: select() + (kind == nil ? "" : " WHERE m.kind = ?") + " ORDER BY m.kind, m.version DESC", arguments: kind.map { [$0] } ?? [])
            .map(decode)
    }

    /// One version's record.
    public static func record(_ db: Database, kind: String, version: Int) throws -> ModelRecord? {
        try Row.fetchOne(db, sql: select() + " WHERE m.kind = ? AND m.version = ?", arguments: [kind, version]).map(decode)
    }

    /// Records that a person chose `version` of `kind` (`aislectl model rollback`).
    public static func markChosenByHand(_ db: Database, kind: String, version: Int) throws {
        try Meta.set(db, chosenKey + kind, String(version))
    }

    /// The kinds whose active version is still the one a person chose by rolling back (another
    /// version made active since, by training or by the hub, ends it).
    public static func rolledBack(_ db: Database) throws -> Set<String> {
        let active = try activeVersions(db)
        var kinds = Set<String>()
        for row in try Row.fetchAll(db, sql: "SELECT key, value FROM meta WHERE key LIKE ? || '%'", arguments: [chosenKey]) {
            let kind = String((row[0] as String).dropFirst(chosenKey.count))
            if let version = Int(row[1] as String), active[kind] == version { kinds.insert(kind) }
        }
        return kinds
    }

    static let chosenKey = "registry.chosen_by_hand."

    /// The active version of each kind (of `kinds` only, when given).
    public static func activeVersions(_ db: Database, of kinds: Set<String>? = nil) throws -> [String: Int] {
        var out: [String: Int] = [:]
        for row in try Row.fetchAll(db, sql: "SELECT a.kind, m.version FROM active_models a JOIN models m ON m.id = a.model_id") {
            let kind: String = row[0]
            if kinds?.contains(kind) ?? true { out[kind] = row[1] }
        }
        return out
    }

    /// The active model of `kind` and its payload, checked against its digest; nil when none is active.
    public static func active(_ db: Database, kind: String) throws -> (record: ModelRecord, payload: Data)? {
        guard let row = try Row.fetchOne(db, sql: select(payload: true) + " WHERE m.kind = ? AND a.kind IS NOT NULL", arguments: [kind]) else {
            return nil
        }
        let payload: Data = row["payload"]
        let record = try decode(row)
        guard Digests.sha256Hex(payload) == record.sha256 else {
            throw RegistryError("model \(kind) v\(record.version): payload does not match its SHA-256; roll back with `aislectl model rollback \(kind)`")
        }
        return (record, payload)
    }

    /// The active model of `kind` decoded from its JSON payload, with its version; nil when none
    /// is active. A payload that does not decode is an error that says how to recover.
    public static func activeModel<Model: Decodable>(_ db: Database, kind: String, as type: Model.Type) throws -> (model: Model, version: Int)? {
        guard let entry = try active(db, kind: kind) else { return nil }
        do {
            return (try JSONDecoder().decode(Model.self, from: entry.payload), entry.record.version)
        } catch {
            throw RegistryError("\(kind) v\(entry.record.version) in the registry cannot be read (\(error)); `aislectl model rollback \(kind)` or `aislectl train \(kind)`")
        }
    }

    /// Makes `version` the active one of `kind`; returns its record as it now is.
    @discardableResult
    public static func activate(_ db: Database, kind: String, version: Int) throws -> ModelRecord {
        guard let id = try Int64.fetchOne(db, sql: "SELECT id FROM models WHERE kind = ? AND version = ?", arguments: [kind, version]) else {
            throw RegistryError("no model \(kind) v\(version); `aislectl model list` shows what there is")
        }
        try db.execute(
            sql: "INSERT INTO active_models(kind, model_id, since) VALUES (?, ?, ?) ON CONFLICT(kind) DO UPDATE SET model_id = excluded.model_id, since = excluded.since",
            arguments: [kind, id, Int64(Date().timeIntervalSince1970)])
        try db.execute(sql: "UPDATE models SET ever_active = 1 WHERE id = ?", arguments: [id])
        guard let record = try record(db, kind: kind, version: version) else { throw RegistryError("model \(kind) v\(version) vanished") }
        return record
    }

    /// Activates the newest version older than the active one that has been active before (one
    /// registered inactive and never used is passed over) and returns it.
    public static func rollback(_ db: Database, kind: String) throws -> ModelRecord {
        guard let current = try activeVersions(db)[kind] else { throw RegistryError("no active \(kind) model to roll back") }
        guard let previous = try Int.fetchOne(db, sql: "SELECT max(version) FROM models WHERE kind = ? AND version < ? AND ever_active", arguments: [kind, current]) else {
            throw RegistryError("\(kind) v\(current) is the oldest version in use kept; nothing to roll back to (`--to N` activates any version)")
        }
        return try activate(db, kind: kind, version: previous)
    }

    private static func select(payload: Bool = false) -> String {
        """
        SELECT m.kind, m.version, m.created_at, m.actor, m.data_from, m.data_until, m.parameters, m.metrics, m.features,
               length(m.payload) AS bytes, m.sha256, a.kind IS NOT NULL AS active\(payload ? ", m.payload" : "")
        FROM models m LEFT JOIN active_models a ON a.model_id = m.id
        """
    }

    private static func decode(_ row: Row) throws -> ModelRecord {
        func json(_ column: String) throws -> JSONValue { try JSONParser.parse(Array((row[column] as String).utf8)) }
        let features: [String]
        if case .array(let names) = try json("features") { features = names.compactMap { if case .string(let s) = $0 { s } else { nil } } } else { features = [] }
        return ModelRecord(
            kind: row["kind"], version: row["version"], createdAt: Timestamp.format(row["created_at"]), actor: row["actor"],
            dataFrom: (row["data_from"] as Int64?).map(Timestamp.format), dataUntil: (row["data_until"] as Int64?).map(Timestamp.format),
            parameters: try json("parameters"), metrics: try json("metrics"), features: features,
            bytes: row["bytes"], sha256: Hex.string(row["sha256"] as Data), active: row["active"])
    }
}
