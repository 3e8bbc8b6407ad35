import AisleStore
import Foundation
import GRDB

/// A store's link to its hub, kept in the store's `meta` table: the hub's address and public
/// keys (pinned at enrollment), the store's id there, and the envelope sequence number.
public struct Enrollment: Sendable, Equatable, Encodable {
    public var hub: String
    public var store: String
    public var name: String
    public var hubKeys: PublicKeys
    public var enrolledAt: Int64
    /// PEM certificates that verify an https hub, instead of the system's trust roots.
    public var caFile: String?

    public init(hub: String, store: String, name: String, hubKeys: PublicKeys, enrolledAt: Int64, caFile: String? = nil) {
        (self.hub, self.store, self.name, self.hubKeys, self.enrolledAt, self.caFile) = (hub, store, name, hubKeys, enrolledAt, caFile)
    }

    /// The connection to the hub.
    public func connection() throws(SyncError) -> HubConnection { try HubConnection(url: hub, caFile: caFile) }
}

/// Reads and writes the sync keys of the store's `meta` table.
public enum SyncState {
    /// The store's key file, beside its database.
    public static func identityPath(store directory: URL) -> String { directory.appendingPathComponent(Store.syncIdentityFileName).path }

    public static func enrollment(_ db: Database) throws -> Enrollment? {
        let m = try Dictionary(uniqueKeysWithValues: Row.fetchAll(db, sql: "SELECT key, value FROM meta WHERE key LIKE 'sync.%'").map { ($0[0] as String, $0[1] as String) })
        guard let hub = m["sync.hub"], let store = m["sync.store"], let sign = m["sync.hub_sign_key"].flatMap({ Data(base64Encoded: $0) }),
            let agree = m["sync.hub_agree_key"].flatMap({ Data(base64Encoded: $0) })
        else { return nil }
        return Enrollment(
            hub: hub, store: store, name: m["sync.name"] ?? store, hubKeys: try PublicKeys(sign: sign, agree: agree),
            enrolledAt: Int64(m["sync.enrolled_at"] ?? "") ?? 0, caFile: m["sync.ca_file"].flatMap { $0.isEmpty ? nil : $0 })
    }

    public static func save(_ db: Database, _ e: Enrollment) throws {
        for (key, value) in [
            ("sync.hub", e.hub), ("sync.store", e.store), ("sync.name", e.name), ("sync.hub_sign_key", e.hubKeys.sign.base64EncodedString()),
            ("sync.hub_agree_key", e.hubKeys.agree.base64EncodedString()), ("sync.enrolled_at", String(e.enrolledAt)), ("sync.ca_file", e.caFile ?? ""),
        ] { try Meta.set(db, key, value) }
    }

    /// The next envelope sequence number (1, 2, …); never handed out twice.
    /// The next sequence number: the larger of the last one + 1 and the time in microseconds,
    /// so a store restored from an old backup does not reuse numbers the hub has seen.
    public static func nextSequence(_ db: Database, now: Date = Date()) throws -> UInt64 {
        let next = max((try integer(db, "sync.seq") ?? 0) + 1, Int64(now.timeIntervalSince1970 * 1_000_000))
        try Meta.set(db, "sync.seq", String(next))
        return UInt64(next)
    }

    public static func integer(_ db: Database, _ key: String) throws -> Int64? { try Meta.string(db, key).flatMap { Int64($0) } }

    static func add(_ db: Database, _ key: String, _ amount: Int64) throws {
        try Meta.set(db, key, String((try integer(db, key) ?? 0) + amount))
    }
}

/// Global model downloads that did not match their signed manifest, kept per kind in `meta`
/// (`sync.mismatched.<kind>` = version, how many in a row, when the last was). The first is
/// fetched again at the next sync (a proxy's hiccup); from the second, each wait doubles from
/// 15 minutes up to a day, so a copy damaged at the hub is not downloaded at every pass.
public enum MismatchedDownloads {
    static func key(_ kind: String) -> String { "sync.mismatched.\(kind)" }

    /// Downloads of `version` that did not match, in a row, and when the next may be tried
    /// (nil: now).
    public static func state(_ db: Database, kind: String, version: Int) throws -> (count: Int, retryAt: Date?) {
        let parts = (try Meta.string(db, key(kind)) ?? "").split(separator: " ").compactMap { Int64($0) }
        guard parts.count == 3, parts[0] == Int64(version), parts[1] > 0 else { return (0, nil) }
        let count = Int(parts[1])
        guard count >= 2 else { return (count, nil) }
        let wait = min(86_400, 900 << min(count - 2, 7))
        return (count, Date(timeIntervalSince1970: TimeInterval(parts[2] + Int64(wait))))
    }

    /// Records one more mismatched download of `version`; returns how many in a row.
    public static func record(_ db: Database, kind: String, version: Int, at now: Date) throws -> Int {
        let count = try state(db, kind: kind, version: version).count + 1
        try Meta.set(db, key(kind), "\(version) \(count) \(Int64(now.timeIntervalSince1970))")
        return count
    }

    /// Forgets the mismatches of `kind` (a download matched).
    public static func clear(_ db: Database, kind: String) throws {
        try Meta.remove(db, key(kind))
    }
}
