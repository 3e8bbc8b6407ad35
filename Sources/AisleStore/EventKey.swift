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
}
