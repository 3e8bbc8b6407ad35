import AisleFederated
import AisleStore
import Foundation
import GRDB

/// What a store puts into a training round (AisleTraining provides the store's).
public protocol RoundContributor: Sendable {
    /// The round kinds this store joins.
    var kinds: Set<String> { get }
    /// The vector to sum (`offer.length` values; sent as fixed-point words), or nil with the reason to stay out.
    func contribution(to offer: RoundOffer) async throws -> (vector: [Double]?, reason: String)
}

/// A store's privacy spending: the accountant over the rounds it put noised vectors into, and
/// its budget (ε at ``delta``, 10⁻⁵; 0: no limit, and rounds without noise are joined too).
public enum PrivacyLedger {
    public static func accountant(_ db: Database) throws -> PrivacyAccountant {
        var a = PrivacyAccountant()
        for z in try Double.fetchAll(db, sql: "SELECT noise_multiplier FROM fl_rounds WHERE vector IS NOT NULL") { a.spend(roundAt: z) }
        return a
    }

    /// The δ a store states its ε at, whatever δ a round's offer names: a hub offering a larger
    /// one (up to 10⁻³) would otherwise have the store's whole history measured more leniently
    /// (with a budget of 8 at z = 3: 8 rounds instead of 5, ε ≈ 10 at 10⁻⁵).
    public static let delta = 1e-5

    /// Whether a round with noise multiplier `z` fits in `budget` at ``delta``; the reason when not.
    public static func allows(_ db: Database, noiseMultiplier z: Double, budget: Double) throws -> String? {
        guard budget != 0 else { return nil }
        guard budget > 0 else { return "the privacy budget ε \(budget) is not a budget (0: no limit)" }
        guard z > 0 else { return "the round adds no noise, and this store has a privacy budget (ε \(budget))" }
        var a = try accountant(db)
        a.spend(roundAt: z)
        let after = a.epsilon(delta: delta)
        return after > budget ? String(format: "joining would spend ε %.2f of a budget of %.2f (δ %g)", after, budget, delta) : nil
    }
}

extension SyncClient {
    /// Takes this store's steps in an open round as far as the others let it now.
    func takePart(in offer: RoundOffer, _ e: Enrollment, _ identity: SyncIdentity, _ connection: HubConnection) async throws -> String? {
        guard let contributor, contributor.kinds.contains(offer.kind) else { return nil }
        let row = try store.database.read { try Row.fetchOne($0, sql: "SELECT * FROM fl_rounds WHERE round = ?", arguments: [Int64(offer.round)]) }
        var participant: SecAggParticipant
        var vector: [UInt32]
        var step: String
        if let row {
            step = row["step"]
            guard ["new", "advert", "shares", "masked"].contains(step), let state = row["state"] as Data?, let v = row["vector"] as Data? else { return nil }
            participant = try SyncJSON.decode(SecAggParticipant.self, state, "round state")
            vector = try SyncJSON.decode([UInt32].self, v, "round vector")
        } else {
            guard offer.phase == "advertise" else { return nil }
            let budget = privacyBudget
            let unsound = offer.settings.problem(minStores: offer.minStores).map { "unsound settings: \($0)" }
            if let no = try await store.database.read({
                try unsound ?? PrivacyLedger.allows($0, noiseMultiplier: offer.settings.noiseMultiplier, budget: budget)
            }) {
                try await record(offer, step: "declined", note: no)
                return "round \(offer.round) (\(offer.kind)): declined — \(no)"
            }
            let (values, reason) = try await contributor.contribution(to: offer)
            guard let values, values.count == offer.length else {
                try await record(offer, step: "declined", note: reason)
                return "round \(offer.round) (\(offer.kind)): not joined — \(reason)"
            }
            participant = SecAggParticipant(store: e.store, round: offer.round, minimum: offer.minStores)
            vector = FixedPoint(scale: offer.settings.scale).encode(values)
            step = "new"
        }
        var status: RoundStatus
        if let row, let pending = row["pending"] as Data?, let next = row["pending_step"] as String? {
            // The last step's answer was lost: the same message again.
            status = try await exchange(pending, round: offer.round, e, identity, connection)
            step = next
            try await save(offer, participant, vector, step: step, pending: nil)
        } else {
            status = try await round(offer.round, .init(step: .status), e, identity, connection)
        }
        while step != "unmask" {
            if status.phase == "done" || status.phase == "failed" {
                try await record(offer, step: "out", note: "round \(status.phase) without this store's next step")
                return nil
            }
            guard let (message, next) = try Self.nextStep(&participant, after: step, status, vector) else { return nil }  // waiting for the other stores
            // Written before it is sent, so a lost answer leads to the same message, not a new one.
            let body = SyncJSON.encode(message)
            try await save(offer, participant, vector, step: step, pending: (body, next))
            status = try await exchange(body, round: offer.round, e, identity, connection)
            step = next
            try await save(offer, participant, vector, step: step, pending: nil)
        }
        return "round \(offer.round) (\(offer.kind)): this store's part done"
    }

    /// The message of this store's step after `step` in the round's current phase, and the step
    /// it leads to; nil while the round is not there yet.
    static func nextStep(_ participant: inout SecAggParticipant, after step: String, _ status: RoundStatus, _ vector: [UInt32]) throws -> (RoundMessage, String)? {
        switch (step, status.phase) {
        case ("new", "advertise"): (.init(step: .advert, advert: participant.advert), "advert")
        case ("advert", "share"): (.init(step: .shares, shares: try participant.share(roster: status.roster, threshold: status.threshold)), "shares")
        case ("shares", "mask"): (.init(step: .masked, masked: try participant.mask(vector, shares: status.shares)), "masked")
        case ("masked", "unmask"): (.init(step: .unmask, unmasking: try participant.unmask(included: status.included)), "unmask")
        default: nil
        }
    }

    /// Sends an encoded `round` message and reads the round's status from the answer.
    func exchange(_ body: Data, round id: UInt64, _ e: Enrollment, _ identity: SyncIdentity, _ connection: HubConnection) async throws -> RoundStatus {
        let answer = try await send(raw: body, round: id, e, identity, connection)
        return try SyncJSON.decode(RoundStatus.self, answer, "round status")
    }

    /// Keeps the store's state in the round (its keys are dropped once it has unmasked).
    func save(_ offer: RoundOffer, _ participant: SecAggParticipant, _ vector: [UInt32], step: String, pending: (Data, String)?) async throws {
        let (state, saved) = (step == "unmask" ? nil : SyncJSON.encode(participant), SyncJSON.encode(vector))
        try await store.database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO fl_rounds(round, kind, state, vector, step, noise_multiplier, joined_at, pending, pending_step) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(round) DO UPDATE SET state = excluded.state, step = excluded.step, pending = excluded.pending, pending_step = excluded.pending_step,
                        finished_at = CASE WHEN excluded.step = 'unmask' THEN excluded.joined_at END
                    """,
                arguments: [
                    Int64(offer.round), offer.kind, state, saved, step, offer.settings.noiseMultiplier, Int64(Date().timeIntervalSince1970), pending?.0, pending?.1,
                ])
        }
    }

    /// Seals and sends an encoded `round` message.
    func send(raw body: Data, round id: UInt64, _ e: Enrollment, _ identity: SyncIdentity, _ connection: HubConnection) async throws -> Data {
        let seq = try await store.database.write { try SyncState.nextSequence($0) }
        let envelope = try Envelope.seal(body, header: .init(store: e.store, type: .round, round: id, seq: seq), from: identity, to: e.hubKeys.agree)
        return try await connection.send(envelope, hub: e.hubKeys)
    }

    /// Rounds this store was in that the hub no longer offers are over: their keys are deleted.
    func closeRounds(except open: Set<UInt64>) async throws {
        try await store.database.write { db in
            for id in try Int64.fetchAll(db, sql: "SELECT round FROM fl_rounds WHERE state IS NOT NULL") where !open.contains(UInt64(id)) {
                try db.execute(
                    sql: "UPDATE fl_rounds SET state = NULL, pending = NULL, pending_step = NULL, step = CASE step WHEN 'unmask' THEN step ELSE 'out' END, finished_at = ? WHERE round = ?",
                    arguments: [Int64(Date().timeIntervalSince1970), id])
            }
        }
    }

    func round(_ id: UInt64, _ message: RoundMessage, _ e: Enrollment, _ identity: SyncIdentity, _ connection: HubConnection) async throws -> RoundStatus {
        let answer = try await send(message, type: .round, round: id, e, identity, connection)
        return try SyncJSON.decode(RoundStatus.self, answer, "round status")
    }

    func record(_ offer: RoundOffer, step: String, note: String) async throws {
        try await store.database.write { db in
            try db.execute(
                sql: """
                    INSERT INTO fl_rounds(round, kind, step, joined_at, finished_at, note) VALUES (?, ?, ?, ?, ?, ?)
                    ON CONFLICT(round) DO UPDATE SET step = excluded.step, state = NULL, finished_at = excluded.finished_at, note = excluded.note
                    """,
                arguments: [Int64(offer.round), offer.kind, step, Int64(Date().timeIntervalSince1970), Int64(Date().timeIntervalSince1970), note])
        }
    }
}
