import AisleCore
import Crypto
import Foundation

/// The layout of `events.key`: the hour of the event (Unix seconds / 3600, 4 bytes, big endian)
/// followed by 12 bytes of a hash. Because keys sort by hour, the unique key index doubles as the
/// time index: a window is a key range, then a filter on `ts`.
public enum EventKey {
    /// The 4-byte hour prefix of an event at `ts`.
    public static func hourPrefix(_ ts: Int64) -> Data {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: ts.floorDiv(3600)).bigEndian) { Data($0) }
    }

    /// Key bounds covering every event with `from <= ts < to`: use as
    /// `key >= lower AND key < upper AND ts >= from AND ts < to`.
    public static func range(from: Int64, to: Int64) -> (lower: Data, upper: Data) {
        (hourPrefix(from), hourPrefix((to - 1).floorDiv(3600) * 3600 + 3600))
    }

    /// 16 bytes: the hour of the event, then 12 bytes of SHA-256 of its id when it has one, else
    /// of its whole content, so that the same line imported twice, or a till's retry, is
    /// recognised. Leading with the hour keeps a day's events together in the key index, so a
    /// commit rewrites a few index pages instead of pages all over it.
    public static func idempotency(_ e: IncomingEvent, pseudonym: Data?, scratch: inout [UInt8]) -> Data {
        scratch.removeAll(keepingCapacity: true)
        if let id = e.id {
            scratch.append(contentsOf: "id\u{0}".utf8)
            scratch.append(contentsOf: id.utf8)
        } else {
            func field(_ s: String?) {
                if let s { scratch.append(contentsOf: s.utf8) } else { scratch.append(0) }
                scratch.append(0x1F)
            }
            func int(_ v: Int64?) { field(v.map { String($0) }) }
            scratch.append(contentsOf: "c\u{0}".utf8)
            int(e.ts)
            field(e.type.rawValue)
            for part in [e.session, e.receipt, e.item, e.text, e.source, e.store] { field(part) }
            int(e.qty)
            field(e.price.map { "\($0)" })
            int(e.rating)
            if let pseudonym { scratch.append(contentsOf: pseudonym) }
        }
        var key = hourPrefix(e.ts)
        SHA256.hash(data: scratch).withUnsafeBytes { key.append(contentsOf: $0.prefix(12)) }
        return key
    }
}
