import AisleCore
import AisleSync
import Foundation
import GRDB

/// What the hub does with one envelope. Every check runs before anything is written, and the
/// effect and the sequence number are written in one transaction: a refused message changes
/// nothing, an accepted one is applied exactly once.
public struct HubService: Sendable {
    /// Upload kinds the hub takes, and whether they belong to a round.
    public static let uploadKinds: [String: Bool] = [StoreSummary.kind: false, StorePriors.kind: false]

    public let database: HubDatabase

    public init(database: HubDatabase) { self.database = database }

    /// Handles a message as it arrived (the envelope's JSON) and returns the answer's JSON.
    public func handle(_ body: Data, now: Int64 = Int64(Date().timeIntervalSince1970)) throws(SyncError) -> Data {
        var authenticated = false
        return try handle(body, now: now, authenticated: &authenticated)
    }

    /// As ``handle(_:now:)``; `authenticated` turns true once the envelope has opened with its
    /// store's registered key (what is refused after that, the store itself sent).
    func handle(_ body: Data, now: Int64, authenticated: inout Bool) throws(SyncError) -> Data {
        let envelope = try Envelope.decode(body)
        guard envelope.seq <= UInt64(Int64.max), envelope.round <= UInt64(Int64.max) else { throw SyncError(.badRequest, "seq/round: above 2^63 − 1") }
        do {
            return try envelope.type == .enroll ? enroll(envelope, now: now, authenticated: &authenticated) : message(envelope, now: now, authenticated: &authenticated)
        } catch let e as SyncError {
            throw e
        } catch {
            throw SyncError(.internal, "\(error)")
        }
    }

    /// What the hub sends back for a message: its answer, or its refusal as `{"error": …}`, with
    /// the hub's signature for the envelope's store and sequence number (``ReplySignature``,
    /// base64) — over a refusal only when the store's registered key signed the envelope, so that
    /// no one else can obtain a signed refusal for a store's sequence number (a store acts on a
    /// refusal's code only when it is signed; sync/PROTOCOL.md § 7).
    public func reply(to body: Data, now: Int64 = Int64(Date().timeIntervalSince1970)) -> (refusal: SyncError?, body: Data, signature: String?) {
        var authenticated = false
        let envelope = try? Envelope.decode(body)
        func signature(_ reply: Data) -> String? {
            envelope.map { database.identity.sign(ReplySignature.signedBytes(store: $0.store, seq: $0.seq, body: reply)).base64EncodedString() }
        }
        do {
            let answer = try handle(body, now: now, authenticated: &authenticated)
            return (nil, answer, signature(answer))
        } catch {
            let refusal = SyncJSON.encode(ErrorReply(error))
            return (error, refusal, authenticated ? signature(refusal) : nil)
        }
    }

    func enroll(_ envelope: Envelope, now: Int64, authenticated: inout Bool) throws -> Data {
        guard envelope.round == 0, envelope.seq == 0 else { throw SyncError(.badRequest, "enroll: round and seq must be 0") }
        // Whatever answers it can only answer an enroll: no other message has sequence number 0.
        authenticated = true
        let identity = database.identity
        let request = try SyncJSON.decode(EnrollRequest.self, try envelope.open(signedBy: envelope.sender, with: identity), "enroll")
        guard request.signKey == envelope.sender else { throw SyncError(.wrongKey, "sign_key: differs from the key that signed the envelope") }
        let keys = try PublicKeys(sign: request.signKey, agree: request.agreeKey)
        let hash = Digests.sha256(request.token)
        return try database.write { db in
            guard let token = try Row.fetchOne(db, sql: "SELECT store_id, expires_at, used_at FROM tokens WHERE hash = ?", arguments: [hash]),
                token["store_id"] as String == envelope.store
            else { throw SyncError(.badToken, "token: not issued for store \(envelope.store) by this hub") }
            guard let store = try Row.fetchOne(db, sql: "SELECT name, revoked_at, sign_key, agree_key FROM stores WHERE id = ?", arguments: [envelope.store]) else {
                throw SyncError(.unknownStore, "store \(envelope.store): not on this hub's list")
            }
            guard store["revoked_at"] as Int64? == nil else { throw SyncError(.revoked, "store \(envelope.store): revoked") }
            if token["used_at"] as Int64? != nil {
                // The same keys again: the store never saw the reply (a dropped connection), so it
                // is answered again; only the holder of the signing key can ask.
                guard store["sign_key"] as Data? == keys.sign, store["agree_key"] as Data? == keys.agree else {
                    throw SyncError(.badToken, "token: already used; `aisle-hub stores add` issues a new one")
                }
                return SyncJSON.encode(EnrollReply(store: envelope.store, name: store["name"], signKey: keys.sign))
            }
            guard token["expires_at"] as Int64 > now else { throw SyncError(.badToken, "token: expired; `aisle-hub stores add` issues a new one") }
            try db.execute(sql: "UPDATE tokens SET used_at = ? WHERE hash = ?", arguments: [now, hash])
            // A new key starts a new sequence; the same key (re-enrolling) keeps its seen numbers,
            // so its old envelopes stay replays.
            if (try Data.fetchOne(db, sql: "SELECT sign_key FROM stores WHERE id = ?", arguments: [envelope.store])) != keys.sign {
                try db.execute(sql: "DELETE FROM seen WHERE store_id = ?", arguments: [envelope.store])
            }
            try db.execute(
                sql: "UPDATE stores SET sign_key = ?, agree_key = ?, enrolled_at = ?, agent_version = ? WHERE id = ?",
                arguments: [keys.sign, keys.agree, now, request.agentVersion, envelope.store])
            return SyncJSON.encode(EnrollReply(store: envelope.store, name: store["name"], signKey: keys.sign))
        }
    }

    func message(_ envelope: Envelope, now: Int64, authenticated: inout Bool) throws -> Data {
        let (signKey, revoked) = try database.pool.read { db -> (Data, Bool) in
            guard let store = try Row.fetchOne(db, sql: "SELECT sign_key, revoked_at FROM stores WHERE id = ?", arguments: [envelope.store]) else {
                throw SyncError(.unknownStore, "store \(envelope.store): not on this hub's list")
            }
            guard let key = store["sign_key"] as Data? else { throw SyncError(.unknownStore, "store \(envelope.store): not enrolled yet") }
            return (key, store["revoked_at"] as Int64? != nil)
        }
        let plaintext = try envelope.open(signedBy: signKey, with: database.identity)
        authenticated = true  // the store sent it: what is refused from here on, the hub signs
        guard !revoked else { throw SyncError(.revoked, "store \(envelope.store): revoked; its messages are refused") }
        switch envelope.type {
        case .hello:
            guard envelope.round == 0 else { throw SyncError(.wrongRound, "round: \(envelope.round); hello belongs to no round (0)") }
            let hello = try SyncJSON.decode(Hello.self, plaintext, "hello")
            return try database.write { db in
                try take(db, envelope, signedBy: signKey, now: now)
                try db.execute(
                    sql: "UPDATE stores SET last_seen = ?, agent_version = ?, hello = ? WHERE id = ?",
                    arguments: [now, hello.agentVersion, String(decoding: SyncJSON.encode(hello), as: UTF8.self), envelope.store])
                return SyncJSON.encode(HelloReply(time: now, rounds: try HubQueries.openRounds(db, now: now), models: try HubQueries.latestManifests(db)))
            }
        case .upload:
            let part = try SyncJSON.decode(UploadPart.self, plaintext, "upload")
            try part.validate()
            guard part.round == envelope.round else { throw SyncError(.wrongRound, "round: the envelope says \(envelope.round), the upload \(part.round)") }
            guard let inRound = Self.uploadKinds[part.kind] else {
                throw SyncError(.badRequest, "kind: \"\(part.kind)\"; this hub takes \(Self.uploadKinds.keys.sorted().joined(separator: ", "))")
            }
            return try database.write { db in
                if inRound {
                    guard try HubQueries.openRounds(db, now: now).contains(where: { $0.round == part.round && $0.kind == part.kind }) else {
                        throw SyncError(.wrongRound, "round: \(part.round) is not an open \(part.kind) round")
                    }
                } else if part.round != 0 {
                    throw SyncError(.wrongRound, "round: \(part.round); a \(part.kind) belongs to no round (0)")
                }
                try take(db, envelope, signedBy: signKey, now: now)
                return try receive(db, part, store: envelope.store, now: now)
            }.get()
        case .round:
            guard envelope.round > 0 else { throw SyncError(.wrongRound, "round: a round message names its round (not 0)") }
            let message = try SyncJSON.decode(RoundMessage.self, plaintext, "round")
            return try database.write { db in
                try take(db, envelope, signedBy: signKey, now: now)
                return SyncJSON.encode(try HubRounds.handle(db, database, round: envelope.round, store: envelope.store, message, now: now))
            }
        case .enroll:
            throw SyncError(.badRequest, "type: enroll is handled apart")
        }
    }

    /// Takes the envelope's sequence number; a second use is a replay. In the write transaction,
    /// the store must still be enrolled with the key that signed it and not revoked (the checks
    /// before opening it were a read, which a revocation may have overtaken).
    func take(_ db: Database, _ envelope: Envelope, signedBy signKey: Data, now: Int64) throws {
        let store = try Row.fetchOne(db, sql: "SELECT sign_key, revoked_at FROM stores WHERE id = ?", arguments: [envelope.store])
        guard let store, store["revoked_at"] as Int64? == nil, store["sign_key"] as Data? == signKey else {
            throw SyncError(.revoked, "store \(envelope.store): revoked or given a new key while its message was read; refused")
        }
        try db.execute(sql: "INSERT OR IGNORE INTO seen(store_id, seq, at) VALUES (?, ?, ?)", arguments: [envelope.store, Int64(envelope.seq), now])
        guard db.changesCount == 1 else { throw SyncError(.replayed, "seq: \(envelope.seq) from \(envelope.store) was already received") }
    }

    /// Stores one part; when all are there, checks the whole against its content id and keeps
    /// it. Parts that do not add up are dropped (committed) and the upload is refused.
    func receive(_ db: Database, _ part: UploadPart, store: String, now: Int64) throws -> Result<Data, SyncError> {
        let id = part.contentId
        if try Bool.fetchOne(db, sql: "SELECT 1 FROM uploads WHERE store_id = ? AND content_id = ?", arguments: [store, id]) ?? false {
            return .success(ack(store, id, received: Array(0..<part.parts), complete: true))
        }
        try db.execute(
            sql: "INSERT OR IGNORE INTO upload_parts(store_id, content_id, part, data, received_at) VALUES (?, ?, ?, ?, ?)",
            arguments: [store, id, part.part, part.data, now])
        let held = try Int.fetchAll(db, sql: "SELECT part FROM upload_parts WHERE store_id = ? AND content_id = ? ORDER BY part", arguments: [store, id])
        guard held.count == part.parts else { return .success(ack(store, id, received: held, complete: false)) }
        let payload = try Data.fetchAll(db, sql: "SELECT data FROM upload_parts WHERE store_id = ? AND content_id = ? ORDER BY part", arguments: [store, id])
            .reduce(into: Data()) { $0.append($1) }
        try db.execute(sql: "DELETE FROM upload_parts WHERE store_id = ? AND content_id = ?", arguments: [store, id])
        guard payload.count == part.size, UploadPart.contentId(kind: part.kind, round: part.round, payload: payload) == id else {
            return .failure(SyncError(.badRequest, "content_id: the \(part.parts) parts do not add up to the content they name; send it again"))
        }
        // Priors are read when the hub publishes: one store's that do not decode would stop it for all.
        if part.kind == StorePriors.kind {
            do throws(SyncError) { _ = try SyncJSON.decode(StorePriors.self, payload, "priors") } catch { return .failure(error) }
        }
        try db.execute(
            sql: "INSERT INTO uploads(store_id, content_id, kind, round, size, received_at, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
            arguments: [store, id, part.kind, Int64(part.round), part.size, now, payload])
        return .success(ack(store, id, received: held, complete: true))
    }

    func ack(_ store: String, _ id: String, received: [Int], complete: Bool) -> Data {
        SyncJSON.encode(
            UploadAck(
                contentId: id, received: received, complete: complete,
                signature: complete ? database.identity.sign(UploadAck.signedBytes(store: store, contentId: id)) : nil))
    }
}
