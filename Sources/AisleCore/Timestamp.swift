/// Parsing of the interchange format's timestamps into Unix seconds (UTC).
///
/// Accepted: RFC 3339 (`2011-09-01T08:26:00Z`, `…+02:00`, fractional seconds),
/// `YYYY-MM-DD HH:MM[:SS]` and `YYYY-MM-DD` (naive: taken as UTC), and integer Unix seconds.
public enum Timestamp {
    /// The earliest and latest instants accepted as real event times (1990-01-01 … 2100-01-01).
    public static let plausible: ClosedRange<Int64> = 631_152_000...4_102_444_800

    /// Parses a textual timestamp; throws a reason on failure.
    public static func parse(_ text: String) throws -> Int64 {
        var text = text
        return try text.withUTF8 { try parse(bytes: $0) }
    }

    /// Parses a timestamp from raw UTF-8 bytes.
    public static func parse(bytes b: UnsafeBufferPointer<UInt8>) throws -> Int64 {
        let bad = FieldError(field: "ts", "not a timestamp (RFC 3339, YYYY-MM-DD[ HH:MM[:SS]] or Unix seconds)")
        if b.isEmpty { throw FieldError(field: "ts", "empty") }
        if b.allSatisfy({ $0 >= 48 && $0 <= 57 }) {
            guard b.count <= 12, let v = Int64(String(decoding: b, as: UTF8.self)) else { throw bad }
            return try checked(v)
        }
        var i = 0
        func digits(_ n: Int) throws -> Int {
            guard i + n <= b.count else { throw bad }
            var v = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 48 && c <= 57 else { throw bad }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) throws {
            guard i < b.count, b[i] == c else { throw bad }
            i += 1
        }
        let year = try digits(4); try expect(45)
        let month = try digits(2); try expect(45)
        let day = try digits(2)
        var hour = 0, minute = 0, second = 0, offset = 0
        if i < b.count {
            guard b[i] == 84 || b[i] == 116 || b[i] == 32 else { throw bad }  // T, t or space
            i += 1
            hour = try digits(2); try expect(58)
            minute = try digits(2)
            if i < b.count, b[i] == 58 {
                i += 1
                second = try digits(2)
                if i < b.count, b[i] == 46 || b[i] == 44 {  // fractional seconds are dropped
                    i += 1
                    let start = i
                    while i < b.count, b[i] >= 48 && b[i] <= 57 { i += 1 }
                    guard i > start else { throw bad }
                }
            }
            if i < b.count {
                switch b[i] {
                case 90, 122: i += 1  // Z
                case 43, 45:
                    let sign = b[i] == 45 ? -1 : 1
                    i += 1
                    let oh = try digits(2)
                    if i < b.count, b[i] == 58 { i += 1 }
                    let om = try digits(2)
                    guard oh < 24, om < 60 else { throw bad }
                    offset = sign * (oh * 3600 + om * 60)
                default: throw bad
                }
            }
        }
        guard i == b.count else { throw bad }
        guard (1...12).contains(month), day >= 1, day <= daysIn(month: month, year: year),
            hour < 24, minute < 60, second < 61
        else { throw FieldError(field: "ts", "no such date or time") }
        let days = daysFromCivil(year: year, month: month, day: day)
        return try checked(Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second - offset))
    }

    private static func checked(_ v: Int64) throws -> Int64 {
        guard plausible.contains(v) else {
            throw FieldError(field: "ts", "outside 1990-01-01 … 2100-01-01")
        }
        return v
    }

    static func daysIn(month: Int, year: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The civil date (year, month, day) of a day number since 1970-01-01.
    public static func civil(fromDays z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    /// The month after `month` of `year` (December → January of the next year).
    public static func monthAfter(year: Int, month: Int) -> (year: Int, month: Int) { month == 12 ? (year + 1, 1) : (year, month + 1) }

    /// RFC 3339 text of Unix seconds, in UTC.
    public static func format(_ ts: Int64) -> String {
        let days = Int(ts >= 0 ? ts / 86_400 : (ts - 86_399) / 86_400)
        let secs = Int(ts - Int64(days) * 86_400)
        let (y, m, d) = civil(fromDays: days)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : "\(v)" }
        return "\(y)-\(two(m))-\(two(d))T\(two(secs / 3600)):\(two(secs / 60 % 60)):\(two(secs % 60))Z"
    }
}
