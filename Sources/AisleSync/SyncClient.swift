import AisleCore
import AisleStore
import Foundation
import GRDB

/// What became of a global model the hub offered.
public struct InstallOutcome: Sendable, Equatable, Encodable {
    public enum Outcome: String, Sendable, Encodable { case installed, rolledBack = "rolled_back", refused }
    public var outcome: Outcome
    public var registryVersion: Int?
    public var detail: String
    public init(_ outcome: Outcome, registryVersion: Int? = nil, detail: String) { (self.outcome, self.registryVersion, self.detail) = (outcome, registryVersion, detail) }
}

/// Checks a verified global model on the store's own data and registers it (AisleTraining
/// provides the store's; the sync client knows nothing of model formats).
public protocol ModelInstaller: Sendable {
    /// The model kinds this store takes from the hub.
    var kinds: Set<String> { get }
    /// Checks and registers a model; `record` writes what the store keeps of the outcome, in
    /// the transaction that registers it (apart, a crash between them would register it twice).
    /// A model refused is not registered, and the caller records it.
    func install(_ manifest: ModelManifest, payload: Data, record: @escaping @Sendable (Database, InstallOutcome) throws -> Void) async throws -> InstallOutcome
}

/// What one sync pass did.
public struct SyncReport: Sendable, Encodable {
    public var delivered = 0
    public var pending = 0
    public var models: [String] = []
    public var refused: [String] = []
    public var rounds: [RoundOffer] = []
}

/// The store's side of the protocol: enrollment, the sync pass (hello, the outbox, the hub's
/// models) and the file transport. One pass at a time per store: callers hold ``SyncLock``.
public struct SyncClient: Sendable {
    public let store: Store
    public let directory: URL
    public var installer: (any ModelInstaller)?
    public var contributor: (any RoundContributor)?
    /// ε this store may spend on training rounds (at δ 10⁻⁵, ``PrivacyLedger/delta``); 0: no limit.
    public var privacyBudget = 8.0
    public var backoff = Outbox.Backoff()

    public init(store: Store, directory: URL, installer: (any ModelInstaller)? = nil, contributor: (any RoundContributor)? = nil) {
        (self.store, self.directory, self.installer, self.contributor) = (store, directory, installer, contributor)
    }

    /// Registers this store with the hub at `hubURL` using a token from `aisle-hub stores add`.
    public func enroll(hubURL: String, token: String, caFile: String? = nil) async throws -> Enrollment {
        let parts = token.split(separator: ".")
        guard parts.count == 3, parts[2].count == 16 else {
            throw SyncError(.badToken, "token: expected STORE.SECRET.FINGERPRINT as printed by `aisle-hub stores add`")
        }
        let connection = try HubConnection(url: hubURL, caFile: caFile)
        let info = try await connection.info()
        let hubKeys = try PublicKeys(sign: info.signKey, agree: info.agreeKey)
        guard hubKeys.fingerprint == parts[2] else {
            throw SyncError(.wrongKey, "the hub at \(hubURL) has key fingerprint \(hubKeys.fingerprint), not the token's \(parts[2]); is this the right hub?")
        }
        let identity = try SyncIdentity.loadOrCreate(path: SyncState.identityPath(store: directory))
        let request = EnrollRequest(token: token, keys: identity.publicKeys, agentVersion: AisleVersion.current)
        let envelope = try Envelope.seal(
            SyncJSON.encode(request), header: .init(store: String(parts[0]), type: .enroll, seq: 0), from: identity, to: hubKeys.agree)
        let answer = try await connection.send(envelope, hub: hubKeys)
        let reply = try SyncJSON.decode(EnrollReply.self, answer, "enroll reply")
        // Every enroll is seq 0: an earlier enrollment's signed reply, replayed, names another key.
        guard reply.signKey == identity.publicKeys.sign, reply.store == String(parts[0]) else {
            throw SyncError(.wrongKey, "the enroll reply names another store or key than this enrollment's (an old reply replayed?); not enrolled")
        }
        let enrollment = Enrollment(hub: connection.url, store: reply.store, name: reply.name, hubKeys: hubKeys, enrolledAt: Int64(Date().timeIntervalSince1970), caFile: caFile)
        try await store.database.write { try SyncState.save($0, enrollment) }
        try store.audit("sync enroll", detail: "\(reply.store) at \(connection.url)")
        return enrollment
    }

    /// One pass: hello, then every due upload, then the hub's models. Throws when the hub is
    /// out of reach (nothing is lost: the outbox keeps everything for the next pass).
    public func pass(now: Int64 = Int64(Date().timeIntervalSince1970), everything: Bool = false) async throws -> SyncReport {
        let (enrollment, identity) = try await credentials()
        let connection = try enrollment.connection()
        var report = SyncReport()
        let hello = try await store.database.read { db in
            Hello(agentVersion: AisleVersion.current, models: try ModelRegistry.activeVersions(db), outbox: try Outbox.status(db).pending)
        }
        let reply = try SyncJSON.decode(
            HelloReply.self, try await send(hello, type: .hello, enrollment, identity, connection), "hello reply")
        report.rounds = reply.rounds
        for item in try await store.database.read({ try Outbox.due($0, at: everything ? nil : now) }) {
            do {
                try await upload(item, enrollment, identity, connection)
                report.delivered += 1
            } catch let error as SyncError where error.code.refusesContent {
                try await store.database.write { try Outbox.hold($0, contentId: item.contentId, error: error.description) }
                report.refused.append("upload \(item.kind) \(item.contentId.prefix(12)): \(error); held (`aislectl sync retry` sends it again)")
            } catch let error as SyncError where !error.code.isTransient || error.code == .replayed {
                try await store.database.write { try Outbox.failed($0, contentId: item.contentId, error: error.description, backoff: backoff) }
                report.refused.append("upload \(item.kind) \(item.contentId.prefix(12)): \(error)")
            } catch {
                try await store.database.write { try Outbox.failed($0, contentId: item.contentId, error: "\(error)", backoff: backoff) }
                throw error
            }
        }
        for signed in reply.models {
            do {
                if let line = try await consider(signed, enrollment, connection) { report.models.append(line) }
            } catch {
                report.refused.append("model: \(error)")
            }
        }
        for offer in reply.rounds {
            do {
                if let line = try await takePart(in: offer, enrollment, identity, connection) { report.models.append(line) }
            } catch {
                report.refused.append("round \(offer.round): \(error)")
            }
        }
        try await closeRounds(except: Set(reply.rounds.map(\.round)))
        report.pending = try await store.database.read { try Outbox.status($0).pending }
        try await store.database.write { try Meta.set($0, "sync.last_success", String(now)) }
        return report
    }

    /// Sends the parts the hub does not have yet; done when it acknowledges the whole.
    func upload(_ item: Outbox.Item, _ e: Enrollment, _ identity: SyncIdentity, _ connection: HubConnection) async throws {
        let parts = item.parts
        var next = min(item.nextPart, parts - 1)
        while true {
            let answer = try await send(item.part(next), type: .upload, round: item.round, e, identity, connection)
            let ack = try SyncJSON.decode(UploadAck.self, answer, "upload ack")
            guard ack.contentId == item.contentId else { throw SyncError(.badRequest, "upload ack: for \(ack.contentId), not \(item.contentId)") }
            if ack.complete {
                guard let signature = ack.signature,
                    PublicKeys.isValid(signature, of: UploadAck.signedBytes(store: e.store, contentId: item.contentId), by: e.hubKeys.sign)
                else { throw SyncError(.badSignature, "upload ack: not signed by the enrolled hub; the upload stays queued") }
                try await store.database.write { try Outbox.delivered($0, contentId: item.contentId) }
                return
            }
            let held = Set(ack.received)
            next = (0..<parts).first { !held.contains($0) } ?? 0
            try await store.database.write { [next] in try Outbox.progress($0, contentId: item.contentId, nextPart: next) }
        }
    }

    /// Verifies a signed manifest, refuses a downgrade, fetches, checks the hash, installs.
    func consider(_ signed: SignedManifest, _ e: Enrollment, _ connection: HubConnection) async throws -> String? {
        let manifest = try signed.verified(by: e.hubKeys.sign)
        guard let installer, installer.kinds.contains(manifest.kind) else { return nil }
        let newest = try await store.database.read { db in
            try Int.fetchOne(db, sql: "SELECT max(version) FROM synced_models WHERE kind = ? AND outcome != 'refused'", arguments: [manifest.kind])
        }
        if let newest, manifest.version <= newest {
            if manifest.version == newest { return nil }
            throw SyncError(.badRequest, "\(manifest.kind) v\(manifest.version) from the hub is older than v\(newest) already taken; refused (no downgrade)")
        }
        let seen = try await store.database.read { db in
            try Bool.fetchOne(db, sql: "SELECT 1 FROM synced_models WHERE kind = ? AND version = ?", arguments: [manifest.kind, manifest.version]) ?? false
        }
        if seen { return nil }
        let (kind, version) = (manifest.kind, manifest.version)
        let mismatched = try await store.database.read { try MismatchedDownloads.state($0, kind: kind, version: version) }
        if let retryAt = mismatched.retryAt, retryAt > Date() {
            return "\(kind) global v\(version): not fetched — its last \(mismatched.count) downloads did not match the manifest; next try after \(Timestamp.format(Int64(retryAt.timeIntervalSince1970)))"
        }
        let payload = try await connection.model(kind: manifest.kind, version: manifest.version, bytes: manifest.bytes)
        let record: @Sendable (Database, InstallOutcome) throws -> Void = { db, outcome in
            try db.execute(
                sql: """
                    INSERT OR REPLACE INTO synced_models(kind, version, round, manifest, signature, received_at, registry_version, outcome, detail)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                arguments: [
                    manifest.kind, manifest.version, Int64(manifest.round), signed.manifest, signed.signature, Int64(Date().timeIntervalSince1970),
                    outcome.registryVersion, outcome.outcome.rawValue, outcome.detail,
                ])
        }
        // Downloads are not signed, the manifest is: one altered on the way (a broken proxy, say)
        // is left unrecorded and fetched again next time, not refused for good.
        // Fetched again at the next sync, then after waits that double (``MismatchedDownloads``).
        guard manifest.matches(payload) else {
            let count = try await store.database.write { try MismatchedDownloads.record($0, kind: kind, version: version, at: Date()) }
            let detail = "payload does not match the manifest's SHA-256 and length (\(count) in a row); fetched again \(count == 1 ? "at the next sync" : "later")"
            try store.audit("sync model \(kind)", detail: "global v\(version): not taken (\(detail))", actor: "aisle-sync")
            return "\(kind) global v\(version): not taken — \(detail)"
        }
        if mismatched.count > 0 { try await store.database.write { try MismatchedDownloads.clear($0, kind: kind) } }
        let outcome = try await installer.install(manifest, payload: payload, record: record)
        if outcome.outcome == .refused { try await store.database.write { try record($0, outcome) } }
        try store.audit("sync model \(manifest.kind)", detail: "global v\(manifest.version): \(outcome.outcome.rawValue) (\(outcome.detail))", actor: "aisle-sync")
        return "\(manifest.kind) global v\(manifest.version): \(outcome.outcome.rawValue.replacingOccurrences(of: "_", with: " ")) — \(outcome.detail)"
    }

    /// Writes every queued upload, sealed part by part, as files under `folder` for
    /// `aisle-hub import`; returns the number of files. Items stay queued until acknowledged.
    /// Sealed to the hub's key, the files are readable by anyone (the hub's user at HQ).
    public func export(to folder: URL) async throws -> Int {
        let (e, identity) = try await credentials()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o755])
        var files = 0
        let items = try await store.database.read { try Outbox.due($0, at: nil) }
        for item in items {
            for p in 0..<item.parts {
                let envelope = try await seal(item.part(p), type: .upload, round: item.round, e, identity)
                let name = "\(e.store)-\(String(format: "%012llu", envelope.seq)).aisle-envelope"
                let file = folder.appendingPathComponent(name)
                try DurableFile.write(envelope.encoded(), to: file.path)
                try FileManager.default.setAttributes([.posixPermissions: 0o644], ofItemAtPath: file.path)
                files += 1
            }
        }
        try await store.database.write { try Outbox.exported($0, contentIds: items.map(\.contentId)) }
        return files
    }

    func credentials() async throws -> (Enrollment, SyncIdentity) {
        guard let e = try await store.database.read({ try SyncState.enrollment($0) }) else {
            throw SyncError(.notEnrolled, "this store is not enrolled with a hub; `aislectl sync enroll --hub URL --token T`")
        }
        return (e, try SyncIdentity.load(path: SyncState.identityPath(store: directory)))
    }

    func seal(_ message: some Encodable, type: MessageType, round: UInt64 = 0, _ e: Enrollment, _ identity: SyncIdentity) async throws -> Envelope {
        let seq = try await store.database.write { try SyncState.nextSequence($0) }
        return try Envelope.seal(SyncJSON.encode(message), header: .init(store: e.store, type: type, round: round, seq: seq), from: identity, to: e.hubKeys.agree)
    }

    func send(_ message: some Encodable, type: MessageType, round: UInt64 = 0, _ e: Enrollment, _ identity: SyncIdentity, _ connection: HubConnection) async throws -> Data {
        try await connection.send(try await seal(message, type: type, round: round, e, identity), hub: e.hubKeys)
    }
}
