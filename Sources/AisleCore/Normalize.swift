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
        if ascii && clean && !previousSpace { return s }
        let nfc = ascii ? s : s.precomposedStringWithCanonicalMapping
        var out = String.UnicodeScalarView()
        var pendingSpace = false
        for scalar in nfc.unicodeScalars {
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

    /// The canonical SKU: normalised text, upper-cased, inner white space kept as one space.
    public static func sku(_ s: String) -> String { text(s).uppercased() }
}
