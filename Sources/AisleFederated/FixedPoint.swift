/// Real vectors as words of Z(2^32), for secure aggregation. A value x becomes
/// q = round(x · scale), a 64-bit integer, sent as two words: its low 24 bits, then q >> 24
/// (arithmetic shift) as two's complement. Word sums stay exact for up to 256 stores while
/// |Σ q| < 2^55 (with the default scale 2^16, |Σ x| < 5 · 10^11: sums of squares of counts fit).
public struct FixedPoint: Sendable, Equatable, Codable {
    public static let wordsPerValue = 2
    public var scale: Double
    public init(scale: Double = 65_536) { self.scale = scale }

    public func encode(_ x: [Double]) -> [UInt32] {
        x.flatMap { v -> [UInt32] in
            let q = Int64(clamping: Int(exactly: (v * scale).rounded()) ?? (v < 0 ? Int.min : Int.max))
            return [UInt32(truncatingIfNeeded: q & 0xFF_FFFF), UInt32(truncatingIfNeeded: q >> 24)]
        }
    }

    public func decode(_ words: [UInt32]) -> [Double] {
        stride(from: 0, to: words.count - 1, by: 2).map { i in
            Double(Int64(Int32(bitPattern: words[i + 1])) << 24 + Int64(words[i])) / scale
        }
    }
}
