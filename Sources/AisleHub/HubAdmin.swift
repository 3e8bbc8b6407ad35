import AisleCore
import AisleFederated
import AisleSync
import AisleTraining
import Crypto
import Foundation
import GRDB

/// Reads of the hub's state shared by the server and the CLI.
enum HubQueries {
    /// The round of `model` (its moments or its update) not yet done or failed, if any.
    static func unfinishedRound(_ db: Database, of model: FederatedModel) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT id FROM rounds WHERE kind IN (?, ?) AND phase NOT IN ('done', 'failed')", arguments: [model.momentsKind, model.kind])
    }

    static func openRounds(_ db: Database, now: Int64) throws -> [RoundOffer] {
        // A round whose settings do not decode is not offered (the clock fails it).
        try Row.fetchAll(db, sql: "SELECT * FROM rounds WHERE state = 'open' AND deadline > ? ORDER BY id", arguments: [now]).compactMap { row in
            guard let settings = try? HubRounds.settings(row) else { return nil }
            return RoundOffer(
                round: UInt64(row["id"] as Int64), kind: row["kind"], globalVersion: row["global_version"], deadline: row["deadline"], minStores: row["min_stores"],
                phase: row["phase"], length: row["length"], settings: settings)
        }
    }

    /// The newest published version of `kind`; 0 when there is none.
    static func newestVersion(_ db: Database, kind: String) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT max(version) FROM models WHERE kind = ?", arguments: [kind]) ?? 0
    }

    /// The payload of a published model.
    static func payload(_ db: Database, kind: String, version: Int) throws -> Data? {
        try Data.fetchOne(db, sql: "SELECT payload FROM models WHERE kind = ? AND version = ?", arguments: [kind, version])
    }

    /// The newest signed manifest of each model kind.
    static func latestManifests(_ db: Database) throws -> [SignedManifest] {
        try Row.fetchAll(
            db, sql: "SELECT manifest, signature FROM models m WHERE version = (SELECT max(version) FROM models WHERE kind = m.kind) ORDER BY kind"
        ).map { SignedManifest(manifest: $0["manifest"], signature: $0["signature"]) }
    }
}

/// What `aisle-hub stores|rounds|models|import` do, over the hub's database.
public struct HubAdmin: Sendable {
    public let database: HubDatabase

    public init(database: HubDatabase) { self.database = database }

    /// One store on the list, as `aisle-hub stores list` shows it.
    public struct StoreRow: Sendable, Encodable {
        public var id: String
        public var name: String
        public var state: String
        public var fingerprint: String?
        public var enrolledAt: Int64?
        public var lastSeen: Int64?
        public var agentVersion: String?
        public var uploads: Int
    }

    /// Adds a store (or re-issues a token for one) and returns its one-time enrollment token:
    /// `STORE.SECRET.HUB-FINGERPRINT`, valid for `hours`.
    public func addStore(name: String, id: String? = nil, hours: Int = 72, now: Int64 = Int64(Date().timeIntervalSince1970)) throws -> (store: String, token: String) {
        guard !name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty, name.count <= 100, !name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw SyncError(.badRequest, "name: 1 to 100 characters, no control characters")
        }
        let store = id ?? "s-" + SymmetricKey(size: .bits128).withUnsafeBytes { Hex.string($0.prefix(5)) }
        guard store.range(of: "^[a-z0-9][a-z0-9-]{1,39}$", options: .regularExpression) != nil else {
            throw SyncError(.badRequest, "store id \"\(store)\": lower-case letters, digits and -, 2 to 40")
        }
        let secret = SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }.base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let token = "\(store).\(secret).\(database.identity.publicKeys.fingerprint)"
        try database.write { db in
            if let revoked = try Row.fetchOne(db, sql: "SELECT revoked_at FROM stores WHERE id = ?", arguments: [store]) {
                guard revoked[0] as Int64? == nil else { throw SyncError(.revoked, "store \(store) is revoked; add it under a new id") }
                // A new token replaces the unused ones (a lost token must not stay good), and the name is the one given now.
                try db.execute(sql: "DELETE FROM tokens WHERE store_id = ? AND used_at IS NULL", arguments: [store])
                try db.execute(sql: "UPDATE stores SET name = ? WHERE id = ?", arguments: [name, store])
            } else {
                try db.execute(sql: "INSERT INTO stores(id, name, created_at) VALUES (?, ?, ?)", arguments: [store, name, now])
            }
            try db.execute(
                sql: "INSERT INTO tokens(hash, store_id, expires_at) VALUES (?, ?, ?)",
                arguments: [Digests.sha256(token), store, now + Int64(hours) * 3600])
            try database.audit(db, "stores add", "\(store) (\(name)), token valid \(hours) h")
        }
        return (store, token)
    }

    /// Cuts a store off at once: its messages are refused from the next one on.
    public func revoke(_ store: String, now: Int64 = Int64(Date().timeIntervalSince1970)) throws {
        try database.write { db in
            try db.execute(sql: "UPDATE stores SET revoked_at = coalesce(revoked_at, ?) WHERE id = ?", arguments: [now, store])
            guard db.changesCount == 1 else { throw SyncError(.notFound, "no store \(store); `aisle-hub stores list` shows them") }
            try db.execute(sql: "DELETE FROM tokens WHERE store_id = ?", arguments: [store])
            try database.audit(db, "stores revoke", store)
        }
    }

    public func stores() throws -> [StoreRow] {
        try database.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT s.*, (SELECT count(*) FROM uploads u WHERE u.store_id = s.id) AS uploads FROM stores s ORDER BY id").map { r in
                let keys = (r["sign_key"] as Data?).flatMap { s in (r["agree_key"] as Data?).flatMap { try? PublicKeys(sign: s, agree: $0) } }
                let state = r["revoked_at"] as Int64? != nil ? "revoked" : keys == nil ? "awaiting enrollment" : "enrolled"
                return StoreRow(
                    id: r["id"], name: r["name"], state: state, fingerprint: keys?.fingerprint, enrolledAt: r["enrolled_at"], lastSeen: r["last_seen"],
                    agentVersion: r["agent_version"], uploads: r["uploads"])
            }
        }
    }

    /// Signs and publishes a model version (the next number of its kind).
    public func publish(kind: String, payload: Data, round: UInt64 = 0, epsilon: Double = 0, delta: Double = 0, metrics: [String: Double] = [:]) throws -> ModelManifest {
        guard kind.range(of: "^[a-z][a-z0-9_-]{0,31}$", options: .regularExpression) != nil else { throw SyncError(.badRequest, "kind \"\(kind)\": lower-case letters, digits, - and _") }
        guard !payload.isEmpty else { throw SyncError(.badRequest, "the model file is empty") }
        // JSON cannot carry NaN or infinity: the manifest would be signed empty.
        guard epsilon.isFinite, epsilon >= 0 else { throw SyncError(.badRequest, "epsilon: a finite number, 0 or more") }
        guard delta.isFinite, (0..<1).contains(delta) else { throw SyncError(.badRequest, "delta: a number from 0 up to (not including) 1") }
        if let bad = metrics.first(where: { !$0.value.isFinite }) { throw SyncError(.badRequest, "metric \(bad.key): not a finite number") }
        return try database.write { db in
            try Self.refuseWhileARoundIsOpen(db, kind: kind)
            return try Self.publish(db, database, kind: kind, payload: payload, round: round, epsilon: epsilon, delta: delta, metrics: metrics) }
    }

    /// A round of the model still open would fail at its end ("moved during the round") after
    /// its stores spent ε: a new version waits until it is closed.
    static func refuseWhileARoundIsOpen(_ db: Database, kind: String) throws {
        if let model = FederatedModel.all.first(where: { $0.kind == kind }), let open = try HubQueries.unfinishedRound(db, of: model) {
            throw SyncError(.badRequest, "round \(open) of the \(kind) model is open; close it first (`aisle-hub rounds close \(open)`)")
        }
    }

    /// Signs and stores the next version of `kind` inside the caller's transaction.
    static func publish(
        _ db: Database, _ database: HubDatabase, kind: String, payload: Data, round: UInt64, epsilon: Double?, delta: Double, metrics: [String: Double]
    ) throws -> ModelManifest {
        let version = try HubQueries.newestVersion(db, kind: kind) + 1
        let manifest = ModelManifest(
            kind: kind, version: version, round: round, payload: payload, createdAt: Int64(Date().timeIntervalSince1970), epsilon: epsilon, delta: delta,
            metrics: metrics, hub: database.identity.publicKeys.fingerprint)
        let signed = SignedManifest(manifest, by: database.identity)
        try db.execute(
            sql: "INSERT INTO models(kind, version, round, manifest, signature, payload, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [kind, version, Int64(round), signed.manifest, signed.signature, payload, manifest.createdAt])
        try database.audit(db, "models publish", "\(kind) v\(version) (\(payload.count) bytes, sha256 \(manifest.sha256.prefix(12)))")
        return manifest
    }

    /// Sums the newest priors of every store not revoked into the global priors and publishes
    /// them, signed, as the next `priors` version.
    public func publishPriors() throws -> (manifest: ModelManifest, priors: GlobalPriors) {
        try database.write { db in
            let payloads = try Data.fetchAll(
                db, sql: """
                    SELECT u.payload FROM uploads u JOIN stores s ON s.id = u.store_id
                    WHERE u.kind = ? AND s.revoked_at IS NULL
                      AND u.received_at = (SELECT max(received_at) FROM uploads v WHERE v.store_id = u.store_id AND v.kind = u.kind)
                    GROUP BY u.store_id
                    """, arguments: [StorePriors.kind])
            let parts = try payloads.map { try SyncJSON.decode(StorePriors.self, $0, "priors") }
            guard parts.count >= 2 else { throw SyncError(.notFound, "priors from \(parts.count) store(s); at least 2 are needed, so none can be told apart") }
            let priors = GlobalPriors(parts)
            let manifest = try Self.publish(
                db, database, kind: StorePriors.kind, payload: SyncJSON.encode(priors), round: 0, epsilon: nil, delta: 0,
                metrics: ["stores": Double(priors.stores), "items": Double(priors.items.count), "pairs": Double(priors.pairs.count)])
            return (manifest, priors)
        }
    }

    /// Publishes the blank first global model of a federated `kind` (``FederatedModel/blank(_:)``)
    /// for the rounds' `settings` (its windows), starting the hub's optimizer and accountant afresh.
    public func publishBlank(kind: String, settings: RoundSettings) throws -> ModelManifest {
        guard let model = FederatedModel.all.first(where: { $0.kind == kind }) else {
            throw SyncError(.badRequest, "\(kind) is not a federated model; these are: \(FederatedModel.all.map(\.kind).joined(separator: ", "))")
        }
        if let problem = model.problem(settings, global: nil) { throw SyncError(.badRequest, problem) }
        let payload = try model.blank(settings)
        return try database.write { db in
            try Self.refuseWhileARoundIsOpen(db, kind: kind)
            try HubFederation.restart(db, kind: kind)
            return try Self.publish(db, database, kind: kind, payload: payload, round: 0, epsilon: 0, delta: 0, metrics: [:])
        }
    }

    public func models() throws -> [ModelManifest] {
        try database.pool.read { db in
            try Data.fetchAll(db, sql: "SELECT manifest FROM models ORDER BY kind, version DESC").map { try SyncJSON.decode(ModelManifest.self, $0, "manifest") }
        }
    }

    /// A published model's payload.
    public func payload(kind: String, version: Int) throws -> Data? {
        try database.pool.read { try HubQueries.payload($0, kind: kind, version: version) }
    }

    /// Opens a secure-aggregation round of `kind` for `hours`; each step waits at most
    /// `phaseSeconds` for late stores. Federated kinds (``HubFederation``) fix their own vector
    /// length and build the next global model from the sum; any other kind is a plain secure
    /// sum of vectors of `length`.
    public func openRound(
        kind: String, length: Int? = nil, hours: Double, minStores: Int, phaseSeconds: Int = 600, settings: RoundSettings = .init(),
        now: Int64 = Int64(Date().timeIntervalSince1970)
    ) throws -> RoundOffer {
        // A masked vector of more values would not fit one message (≤ 11 JSON bytes a word, two
        // words a value, sealed and base64'd: ~30 bytes a value against the 1 MiB body limit).
        let maxLength = 32_768
        guard hours.isFinite, hours > 0, hours <= 24 * 365 else { throw SyncError(.badRequest, "hours: above 0 and at most a year") }
        guard (1...86_400).contains(phaseSeconds), Double(4 * phaseSeconds) <= hours * 3600 else {
            throw SyncError(.badRequest, "phase seconds: 1 to 86400, and the round's hours must hold its four steps")
        }
        guard let length = HubFederation.length(of: kind) ?? length, length > 0, length <= maxLength else {
            throw SyncError(.badRequest, "length: 1 to \(maxLength) values, so that a store's masked vector fits one message (\(kind) is not a federated model kind, so give --length)")
        }
        if let problem = settings.problem(minStores: minStores) { throw SyncError(.badRequest, problem) }
        return try database.write { db in
            let model = FederatedModel.of(round: kind)
            let global = try HubQueries.newestVersion(db, kind: model?.kind ?? kind)
            if let model, kind == model.kind, global == 0 {
                throw SyncError(.badRequest, "no global \(kind) model yet: run a \(model.momentsKind) round first, or publish a blank one (aisle-hub models blank \(kind))")
            }
            if let model, kind == model.momentsKind, settings.noiseMultiplier > 0 {
                throw SyncError(.badRequest, "noise multiplier: a \(kind) round sums exact moments and takes none (0); stores with a privacy budget do not join it, and the model it starts is not differentially private")
            }
            if let model, let problem = model.problem(settings, global: kind == model.kind ? try HubQueries.payload(db, kind: model.kind, version: global) : nil) {
                throw SyncError(.badRequest, problem)
            }
            if let model, let open = try HubQueries.unfinishedRound(db, of: model) {
                throw SyncError(.badRequest, "round \(open) of the \(model.kind) model is still open; one at a time, or its update would be lost")
            }
            let deadline = now + Int64(hours * 3600)
            try db.execute(
                sql: """
                    INSERT INTO rounds(kind, global_version, opened_at, deadline, min_stores, state, phase, phase_started, phase_seconds, length, settings)
                    VALUES (?, ?, ?, ?, ?, 'open', 'advertise', ?, ?, ?, ?)
                    """,
                arguments: [kind, global, now, deadline, minStores, now, phaseSeconds, length, String(decoding: SyncJSON.encode(settings), as: UTF8.self)])
            let id = db.lastInsertedRowID
            try database.audit(db, "rounds open", "\(kind) round \(id)")
            return RoundOffer(
                round: UInt64(id), kind: kind, globalVersion: global, deadline: deadline, minStores: minStores, phase: "advertise", length: length,
                settings: settings)
        }
    }

    /// Ends the round's current step now with the stores that have sent it (as its timeout
    /// would); returns the phase it is in after. Refused while fewer have sent it than the step
    /// needs: that would fail the round, which `closeRound` does when meant.
    public func advanceRound(_ id: UInt64, now: Int64 = Int64(Date().timeIntervalSince1970)) throws -> String {
        try database.write { db in
            guard var round = try HubRounds.load(db, id), let step = HubRounds.stepOf[round.phase] else { throw SyncError(.notFound, "no open round \(id)") }
            let (senders, needed) = (try HubRounds.stored(db, round.id, step: step).count, HubRounds.needed(round))
            guard senders >= needed else {
                throw SyncError(
                    .badRequest,
                    "round \(id)'s \(round.phase) step has \(senders) of the \(needed) stores it needs: ending it now would fail the round; wait for more, or end the round with `aisle-hub rounds close \(id)`")
            }
            round.phaseStarted = now - round.phaseSeconds
            try HubRounds.advance(db, database, &round, now: now)
            try database.audit(db, "rounds advance", "\(id) → \(round.phase)")
            return round.phase
        }
    }

    public func closeRound(_ round: UInt64) throws {
        try database.write { db in
            try db.execute(
                sql: "UPDATE rounds SET state = 'closed', phase = CASE WHEN phase = 'done' THEN phase ELSE 'failed' END, failure = CASE WHEN phase = 'done' THEN failure ELSE coalesce(failure, 'closed by hand') END, phase_started = ? WHERE id = ?",
                arguments: [Int64(Date().timeIntervalSince1970), Int64(round)])
            guard db.changesCount == 1 else { throw SyncError(.notFound, "no round \(round)") }
            try database.audit(db, "rounds close", "\(round)")
        }
    }

    public struct RoundRow: Sendable, Encodable {
        public var round: UInt64
        public var kind: String
        public var state: String
        public var phase: String
        public var globalVersion: Int
        public var deadline: Int64
        public var minStores: Int
        public var threshold: Int
        public var length: Int
        /// Stores whose vectors are in the sum, once done.
        public var included: [String]
        /// The secure sum, once done (values, decoded from their fixed-point words).
        public var sum: [Double]?
        public var failure: String?
    }

    public func rounds() throws -> [RoundRow] {
        try database.pool.read { db in
            try Row.fetchAll(db, sql: "SELECT * FROM rounds ORDER BY id DESC").map { r in
                let scale = (try? HubRounds.settings(r))?.scale ?? RoundSettings().scale
                let sum = try (r["result"] as Data?).map { FixedPoint(scale: scale).decode(try SyncJSON.decode([UInt32].self, $0, "result")) }
                return RoundRow(
                    round: UInt64(r["id"] as Int64), kind: r["kind"], state: r["state"], phase: r["phase"], globalVersion: r["global_version"], deadline: r["deadline"],
                    minStores: r["min_stores"], threshold: r["threshold"], length: r["length"],
                    included: (r["included"] as String?)?.split(separator: ",").map(String.init) ?? [], sum: sum, failure: r["failure"])
            }
        }
    }

    /// What `aisle-hub import` did with a folder of envelopes.
    public struct ImportResult: Sendable, Encodable {
        public var accepted = 0
        public var complete = 0
        /// Envelopes the hub had taken before (an import run again): acknowledged, not refused.
        public var alreadyTaken = 0
        public var refused: [String] = []
    }

    /// Takes every `*.aisle-envelope` file under `folder` (from `aislectl sync export`), in name
    /// order, exactly as if it had arrived over HTTP.
    public func importFolder(_ folder: URL) throws -> ImportResult {
        let service = HubService(database: database)
        var result = ImportResult()
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".aisle-envelope") }.sorted()
        for name in names {
            do {
                let file = folder.appendingPathComponent(name)
                let size = (try FileManager.default.attributesOfItem(atPath: file.path)[.size] as? NSNumber)?.intValue ?? 0
                guard size <= Hub.maxBodyBytes else { throw SyncError(.tooLarge, "the file is over \(Hub.maxBodyBytes) bytes, as no envelope is") }
                let body = try Data(contentsOf: file)
                let reply = try service.handle(body)
                result.accepted += 1
                if (try? SyncJSON.decode(UploadAck.self, reply, "ack"))?.complete == true { result.complete += 1 }
            } catch let error as SyncError where error.code == .replayed {
                result.alreadyTaken += 1  // its sequence number was taken: so was its content
            } catch {
                result.refused.append("\(name): \(error)")
            }
        }
        return result
    }
}
