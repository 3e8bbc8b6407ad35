import AisleFederated
import AisleSync
import Foundation
import GRDB

/// Secure-aggregation rounds at the hub: each store's steps are stored as they arrive; the
/// round moves to its next step when every store expected has sent, or when the step has
/// waited `phase_seconds` and enough have; the aggregator is rebuilt from the stored steps, so
/// the hub holds masked vectors and shares, and in the end only the sum.
enum HubRounds {
    static let phases = ["advertise", "share", "mask", "unmask"]
    /// The step a store sends in each phase.
    static let stepOf: [String: RoundMessage.Step] = ["advertise": .advert, "share": .shares, "mask": .masked, "unmask": .unmask]

    struct Round {
        var id: UInt64
        var kind: String
        var phase: String
        var phaseStarted: Int64
        var phaseSeconds: Int64
        var length: Int
        var threshold: Int
        var minStores: Int
        var deadline: Int64
        var globalVersion: Int
        var settings: RoundSettings
        /// Words of Z(2^32) in each vector (``FixedPoint``).
        var words: Int { length * FixedPoint.wordsPerValue }

        init(_ row: Row) throws {
            (id, kind, phase) = (UInt64(row["id"] as Int64), row["kind"], row["phase"])
            (phaseStarted, phaseSeconds, length, threshold) = (row["phase_started"], row["phase_seconds"], row["length"], row["threshold"])
            (minStores, deadline, globalVersion) = (row["min_stores"], row["deadline"], row["global_version"])
            settings = try HubRounds.settings(row)
        }
    }

    /// A `rounds` row's settings (absent keys take their defaults; a value that does not decode
    /// is an error, never a default).
    static func settings(_ row: Row) throws -> RoundSettings {
        try SyncJSON.decode(RoundSettings.self, Data((row["settings"] as String).utf8), "settings")
    }

    static func load(_ db: Database, _ id: UInt64) throws -> Round? {
        try Row.fetchOne(db, sql: "SELECT * FROM rounds WHERE id = ?", arguments: [Int64(id)]).map { try Round($0) }
    }

    /// Takes one store's step of round `id` and answers with the round's status for it.
    static func handle(_ db: Database, _ hub: HubDatabase, round id: UInt64, store: String, _ m: RoundMessage, now: Int64) throws -> RoundStatus {
        let notOpen = SyncError(.wrongRound, "round: \(id) is not an open round")
        guard var round = try load(db, id), round.phase != "failed" else { throw notOpen }
        if m.step != .status, let sent = try Data.fetchOne(
            db, sql: "SELECT payload FROM round_steps WHERE round = ? AND store = ? AND step = ?", arguments: [Int64(id), store, m.step.rawValue])
        {
            // The same step again (its answer was lost), whatever step the round is in now, done
            // included: answered, not stored twice. Other content for a step already taken is refused.
            guard sent == (try encoded(m)) else { throw SyncError(.badRequest, "step: \(m.step.rawValue) already sent for round \(id), with other content") }
            return try status(db, round, for: store)  // also once the round is done: the last unmask's answer may be what was lost
        }
        guard round.phase != "done", round.deadline > now else { throw notOpen }
        if m.step != .status {
            guard stepOf[round.phase] == m.step else {
                throw SyncError(.wrongRound, "step: \(m.step.rawValue) refused; round \(id) is in its \(round.phase) step")
            }
            if round.phase != "advertise" {
                guard try stored(db, id, step: .advert).keys.contains(store) else { throw SyncError(.wrongRound, "store \(store) is not in round \(id)'s roster") }
            }
            guard m.advert == nil || m.advert?.store == store, m.unmasking == nil || m.unmasking?.from == store else {
                throw SyncError(.badRequest, "\(m.step.rawValue): not this store's")
            }
            if m.step == .masked, m.masked?.count != round.words { throw SyncError(.badRequest, "masked: expected \(round.words) words (\(round.length) values)") }
            let payload = try encoded(m)
            try db.execute(
                sql: "INSERT INTO round_steps(round, store, step, payload, at) VALUES (?, ?, ?, ?, ?)",
                arguments: [Int64(id), store, m.step.rawValue, payload, now])
            // Checks the step against the protocol by replaying the round with it.
            do { _ = try aggregator(db, round) } catch let e as SecureAggregation.ProtocolError { throw SyncError(.badRequest, "\(m.step.rawValue): \(e.description)") }
            try advance(db, hub, &round, now: now)
        }
        return try status(db, round, for: store)
    }

    /// What is stored of a step: its one field, as JSON.
    static func encoded(_ m: RoundMessage) throws -> Data {
        switch m.step {
        case .advert:
            guard let a = m.advert, a.shareKey.count == 32, a.maskKey.count == 32 else { throw SyncError(.badRequest, "advert: missing, or keys not 32 bytes") }
            return SyncJSON.encode(a)
        case .shares:
            guard let s = m.shares else { throw SyncError(.badRequest, "shares: missing") }
            return SyncJSON.encode(s)
        case .masked:
            guard let v = m.masked else { throw SyncError(.badRequest, "masked: missing") }
            return SyncJSON.encode(v)
        case .unmask:
            guard let u = m.unmasking else { throw SyncError(.badRequest, "unmasking: missing") }
            return SyncJSON.encode(u)
        case .status:
            return Data()
        }
    }

    /// The stores the round's current step needs to move on: never fewer than min_stores in any
    /// step (the noise each store adds assumes as many), past advertising the threshold.
    static func needed(_ round: Round) -> Int { max(round.minStores, round.phase == "advertise" ? 2 : round.threshold) }

    /// Moves `round` on while its current step is complete or has waited long enough.
    static func advance(_ db: Database, _ hub: HubDatabase, _ round: inout Round, now: Int64) throws {
        while let step = stepOf[round.phase] {
            let senders = try stored(db, round.id, step: step).count
            let expected = try expectedSenders(db, round)
            let timedOut = now >= round.phaseStarted + round.phaseSeconds
            guard senders >= expected || timedOut else { return }
            let needed = needed(round)
            guard senders >= needed else {
                if timedOut { try fail(db, &round, "\(round.phase): \(senders) stores in time, \(needed) needed") }
                return
            }
            let next = phases.firstIndex(of: round.phase).map { $0 + 1 < phases.count ? phases[$0 + 1] : "done" } ?? "done"
            if round.phase == "advertise" { round.threshold = senders / 2 + 1 }
            if next == "done" {
                do {
                    let aggregator = try aggregator(db, round)
                    let sum = try aggregator.sum()
                    try db.execute(
                        sql: "UPDATE rounds SET result = ?, included = ?, state = 'closed' WHERE id = ?",
                        arguments: [SyncJSON.encode(sum), aggregator.included.joined(separator: ","), Int64(round.id)])
                    _ = try HubFederation.finish(db, hub, round: round, sum: sum, included: aggregator.included.count)
                } catch let e as SecureAggregation.ProtocolError {
                    return try fail(db, &round, e.description)
                } catch let e as SyncError {
                    return try fail(db, &round, e.message)
                }
            }
            round.phase = next
            round.phaseStarted = now
            try db.execute(
                sql: "UPDATE rounds SET phase = ?, phase_started = ?, threshold = ? WHERE id = ?",
                arguments: [round.phase, now, round.threshold, Int64(round.id)])
        }
    }

    /// Moves every open round on (timeouts), for the server's clock: each in a transaction of its
    /// own, so a round that cannot be moved holds up no other. Returns those that could not, with
    /// why.
    static func advanceAll(_ hub: HubDatabase, now: Int64) throws -> [(round: Int64, error: any Error)] {
        let open = try hub.pool.read { try Int64.fetchAll($0, sql: "SELECT id FROM rounds WHERE phase NOT IN ('done', 'failed') ORDER BY id") }
        var stuck: [(round: Int64, error: any Error)] = []
        for id in open {
            do {
                try hub.write { db in
                    guard let row = try Row.fetchOne(db, sql: "SELECT * FROM rounds WHERE id = ? AND phase NOT IN ('done', 'failed')", arguments: [id]) else { return }
                    // Settings that do not read cannot be followed: the round ends here.
                    guard var round = try? Round(row) else { return try fail(db, id: id, "its settings do not decode") }
                    try advance(db, hub, &round, now: now)
                }
            } catch {
                stuck.append((id, error))
            }
        }
        return stuck
    }

    static func fail(_ db: Database, _ round: inout Round, _ why: String) throws {
        round.phase = "failed"
        try fail(db, id: Int64(round.id), why)
    }

    static func fail(_ db: Database, id: Int64, _ why: String) throws {
        // phase_started marks when it ended: retention keeps a round's steps a day after that.
        try db.execute(sql: "UPDATE rounds SET phase = 'failed', state = 'closed', failure = ?, phase_started = ? WHERE id = ?", arguments: [why, Int64(Date().timeIntervalSince1970), id])
    }

    /// Stores expected in the current step: every enrolled store to advertise; then those that
    /// sent the step before.
    static func expectedSenders(_ db: Database, _ round: Round) throws -> Int {
        switch round.phase {
        case "advertise": return try Int.fetchOne(db, sql: "SELECT count(*) FROM stores WHERE sign_key IS NOT NULL AND revoked_at IS NULL") ?? 0
        case "share": return try stored(db, round.id, step: .advert).count
        case "mask": return try stored(db, round.id, step: .shares).count
        default: return try stored(db, round.id, step: .masked).count
        }
    }

    static func stored(_ db: Database, _ id: UInt64, step: RoundMessage.Step) throws -> [String: Data] {
        Dictionary(uniqueKeysWithValues: try Row.fetchAll(db, sql: "SELECT store, payload FROM round_steps WHERE round = ? AND step = ?", arguments: [Int64(id), step.rawValue]).map {
            ($0[0] as String, $0[1] as Data)
        })
    }

    /// The aggregator as the stored steps leave it.
    static func aggregator(_ db: Database, _ round: Round) throws -> SecAggAggregator {
        var a = SecAggAggregator(round: round.id, length: round.words)
        for (_, p) in try stored(db, round.id, step: .advert) { try a.add(SyncJSON.decode(SecureAggregation.Advert.self, p, "advert")) }
        guard round.phase != "advertise" else { return a }
        _ = a.roster()
        for (store, p) in try stored(db, round.id, step: .shares) {
            try a.add(shares: try SyncJSON.decode([SecureAggregation.SealedShares].self, p, "shares"), from: store)
        }
        for (store, p) in try stored(db, round.id, step: .masked) { try a.add(masked: try SyncJSON.decode([UInt32].self, p, "masked"), from: store) }
        for (_, p) in try stored(db, round.id, step: .unmask) { try a.add(try SyncJSON.decode(SecureAggregation.Unmasking.self, p, "unmasking")) }
        return a
    }

    static func status(_ db: Database, _ round: Round, for store: String) throws -> RoundStatus {
        let past = { (phase: String) in (phases.firstIndex(of: round.phase) ?? phases.count) >= (phases.firstIndex(of: phase) ?? 0) }
        var a = try aggregator(db, round)
        let roster = past("share") ? a.roster() : []
        return RoundStatus(
            round: round.id, phase: round.phase, threshold: round.threshold, length: round.length, roster: roster,
            shares: past("mask") ? a.shares(for: store) : [], included: past("unmask") ? a.included : [])
    }
}
