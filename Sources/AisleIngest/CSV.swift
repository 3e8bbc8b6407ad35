import AisleCore

/// Splits one RFC 4180 CSV record (a line; quoted fields may hold commas and doubled quotes).
enum CSV {
    static func fields(_ b: UnsafeBufferPointer<UInt8>, into out: inout [String]) throws(FieldError) {
        out.removeAll(keepingCapacity: true)
        var i = 0
        var scratch: [UInt8] = []
        while true {
            if i < b.count, b[i] == UInt8(ascii: "\"") {
                scratch.removeAll(keepingCapacity: true)
                i += 1
                while true {
                    guard i < b.count else { throw FieldError(field: nil, "unterminated quoted field") }
                    if b[i] == UInt8(ascii: "\"") {
                        if i + 1 < b.count, b[i + 1] == UInt8(ascii: "\"") { scratch.append(34); i += 2; continue }
                        i += 1
                        break
                    }
                    scratch.append(b[i])
                    i += 1
                }
                guard i == b.count || b[i] == UInt8(ascii: ",") else {
                    throw FieldError(field: nil, "text after a closing quote in field \(out.count + 1)")
                }
                out.append(try utf8(scratch, field: out.count))
            } else {
                let start = i
                while i < b.count, b[i] != UInt8(ascii: ",") { i += 1 }
                out.append(try utf8(UnsafeBufferPointer(rebasing: b[start..<i]), field: out.count))
            }
            if i >= b.count { return }
            i += 1  // the comma
        }
    }

    private static func utf8<C: Collection<UInt8>>(_ bytes: C, field: Int) throws(FieldError) -> String {
        if bytes.allSatisfy({ $0 < 0x80 }) { return String(decoding: bytes, as: UTF8.self) }
        guard let s = String(validating: bytes, as: UTF8.self) else {
            throw FieldError(field: nil, "invalid UTF-8 in field \(field + 1)")
        }
        return s
    }
}
