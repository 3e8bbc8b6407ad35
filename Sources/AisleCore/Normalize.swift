import Foundation

/// Text and identifier normalisation applied to everything that is stored.
public enum Normalize {
    /// Unicode NFC, control characters removed, runs of white space folded to one space, trimmed.
    public static func text(_ s: String) -> String {
        var ascii = true
        var clean = true
        var previousSpace = true
        for u in s.utf8 {
            if u >= 0x80 { ascii = false; break }
            let space = u == 32
            if u < 32 || u == 127 || (space && previousSpace) { clean = false }
            previousSpace = space
        }
        if ascii { return clean && !previousSpace ? s : foldASCII(s) }
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in s.precomposedStringWithCanonicalMapping.unicodeScalars {
            if scalar.properties.isWhitespace {
                pendingSpace = !out.isEmpty
                continue
            }
            if scalar.properties.generalCategory == .control { continue }
            if pendingSpace { out.append(" "); pendingSpace = false }
            out.append(scalar)
        }
        return String(out)
    }

    /// The same folding for ASCII text, byte by byte.
    private static func foldASCII(_ s: String) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        var pendingSpace = false
        for u in s.utf8 {
            if u == 32 || (u >= 9 && u <= 13) {
                pendingSpace = !out.isEmpty
                continue
            }
            if u < 32 || u == 127 { continue }
            if pendingSpace { out.append(32); pendingSpace = false }
            out.append(u)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The canonical SKU: normalised text, upper-cased, inner white space kept as one space.
    public static func sku(_ s: String) -> String { text(s).uppercased() }
}
