import Foundation

/// The active catalog's words and a symmetric-delete index over them
/// (Garbe's SymSpell idea), so a misspelt query word finds the catalog words one edit away —
/// a letter dropped, added, changed or two swapped — without scanning the vocabulary.
struct Vocabulary: Sendable {
    /// Word → number of items whose title or category has it.
    let documents: [String: Int]
    /// Each word with one letter deleted → the words it came from (words of four letters or more).
    let deletes: [String: [String]]
    /// The words in order, to tell a partial word (a prefix of one) from a misspelt one.
    let sorted: [String]

    init(documents: [String: Int]) {
        self.documents = documents
        sorted = documents.keys.sorted()
        var deletes: [String: [String]] = [:]
        for word in documents.keys where word.count >= 4 {
            for d in Self.oneDeleted(word) { deletes[d, default: []].append(word) }
        }
        self.deletes = deletes.mapValues { Array(Set($0)).sorted() }
    }

    /// Catalog words one edit from `word` — for words of eight letters or more also two, when a
    /// letter deleted from each makes them meet ("chrismas" → "christmas") — most common first;
    /// empty for short words, words the catalog has and the start of one ("teap" of "teapot":
    /// the search's prefix match finds it, a "correction" to "tea" would outrank it).
    func corrections(_ word: String, limit: Int = 3) -> [String] {
        guard word.count >= 4, documents[word] == nil, !startsSomeWord(word) else { return [] }
        var found = Set(deletes[word] ?? [])
        for d in Self.oneDeleted(word) {
            if documents[d] != nil { found.insert(d) }
            found.formUnion(deletes[d] ?? [])
        }
        let allowed = word.count >= 8 ? 2 : 1
        return found.filter { Self.editDistance(Array(word), Array($0)) <= allowed }
            .sorted { (documents[$0] ?? 0, $1) > (documents[$1] ?? 0, $0) }
            .prefix(limit).map { $0 }
    }

    /// Whether some catalog word begins with `prefix`: the first word not before it, in order.
    func startsSomeWord(_ prefix: String) -> Bool {
        var (low, high) = (0, sorted.count)
        while low < high {
            let mid = (low + high) / 2
            if sorted[mid] < prefix { low = mid + 1 } else { high = mid }
        }
        return low < sorted.count && sorted[low].hasPrefix(prefix)
    }

    static func oneDeleted(_ word: String) -> Set<String> {
        let letters = Array(word)
        return Set(letters.indices.map { i in String(letters[..<i] + letters[(i + 1)...]) })
    }

    /// Optimal-string-alignment distance: insertions, deletions, substitutions and swaps of
    /// neighbours each cost one.
    static func editDistance(_ a: [Character], _ b: [Character]) -> Int {
        guard !a.isEmpty else { return b.count }
        guard !b.isEmpty else { return a.count }
        var previous2 = [Int](repeating: 0, count: b.count + 1)
        var previous = Array(0...b.count)
        var current = previous
        for i in 1...a.count {
            current[0] = i
            for j in 1...b.count {
                current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { current[j] = min(current[j], previous2[j - 2] + 1) }
            }
            (previous2, previous) = (previous, current)
        }
        return previous[b.count]
    }

    /// The words of a text as SQLite's `unicode61 remove_diacritics 2` tokenizer sees them:
    /// runs of letters and digits, lower-cased, accents removed from Latin letters only
    /// (``fold(_:)``).
    static func words(_ text: String) -> [String] {
        fold(text).split { !($0.isLetter || $0.isNumber) }.map(String.init)
    }

    /// Lower case, a final sigma as any other, and the combining accents of the letters a–z
    /// removed — as unicode61 folds (it keeps those of "ǿ", whose base "ø" is not ASCII):
    /// "Crème" is "creme", but "Чайник" stays "чайник" (not "чаиник"), "Καφές" is "καφέσ" and
    /// "Straße" "straße" (Foundation's diacritic- and case-insensitive folding does otherwise,
    /// and its words would match nothing indexed).
    static func fold(_ text: String) -> String {
        var folded = String.UnicodeScalarView()
        var base: Unicode.Scalar?
        for scalar in text.lowercased().decomposedStringWithCanonicalMapping.unicodeScalars {
            let accent = (0x300...0x36F).contains(scalar.value)
            if accent, let base, (0x61...0x7A).contains(base.value) { continue }
            if !accent { base = scalar }
            folded.append(scalar == "ς" ? "σ" : scalar)
        }
        return String(folded).precomposedStringWithCanonicalMapping
    }
}
