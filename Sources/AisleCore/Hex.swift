/// Lower-case hexadecimal text of bytes (digests, pseudonyms, request ids), without the cost of
/// `String(format:)` on a request's path.
public enum Hex {
    private static let digits = Array("0123456789abcdef".utf8)

    public static func string(_ bytes: some Sequence<UInt8>) -> String {
        var utf8: [UInt8] = []
        utf8.reserveCapacity(bytes.underestimatedCount * 2)
        for b in bytes {
            utf8.append(digits[Int(b >> 4)])
            utf8.append(digits[Int(b & 15)])
        }
        return String(decoding: utf8, as: UTF8.self)
    }

    /// An unsigned integer as two digits per byte (16 for a `UInt64`), most significant first.
    public static func string<T: FixedWidthInteger & UnsignedInteger>(_ value: T) -> String {
        string((0..<T.bitWidth / 8).reversed().map { UInt8(truncatingIfNeeded: value >> (8 * $0)) })
    }
}
