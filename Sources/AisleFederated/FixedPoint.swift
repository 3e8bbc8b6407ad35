/// Real vectors as words of Z(2^32), for secure aggregation: x ↦ round(x · scale) as a two's
/// complement Int32. Sums stay exact while |Σ x| · scale < 2^31.
public struct FixedPoint: Sendable, Equatable, Codable {
    public var scale: Double
    public init(scale: Double = 65_536) { self.scale = scale }

    public func encode(_ x: [Double]) -> [UInt32] {
        x.map { UInt32(bitPattern: Int32(clamping: Int64(($0 * scale).rounded()))) }
    }

    public func decode(_ words: [UInt32]) -> [Double] { words.map { Double(Int32(bitPattern: $0)) / scale } }
}
