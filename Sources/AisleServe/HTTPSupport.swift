import Foundation
import Hummingbird
import NIOCore

/// JSON bodies and the error shape every endpoint shares:
/// `{"error": {"code": "...", "message": "..."}}`.
public enum HTTPJSON {
    private static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.keyEncodingStrategy = .convertToSnakeCase
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }()

    public static func response<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok) throws -> Response {
        let data = try encoder.encode(value)
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    struct ErrorBody: Encodable {
        struct Detail: Encodable {
            var code: String
            var message: String
        }
        var error: Detail
    }

    public static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String) -> Response {
        (try? response(ErrorBody(error: .init(code: code, message: message)), status: status))
            ?? Response(status: status)
    }
}

/// An error answer, as a value (for `Result`).
struct ErrorResponse: Error {
    let status: HTTPResponse.Status
    let code: String
    let message: String

    init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        (self.status, self.code, self.message) = (status, code, message)
    }

    var response: Response { HTTPJSON.error(status, code, message) }
}

/// The `limit` query parameter: `fallback` when absent, an error naming it when it is not a
/// whole number from 1 to 1000.
func limitParameter(_ request: Request, fallback: Int) -> Result<Int, ErrorResponse> {
    guard let raw = request.uri.queryParameters.get("limit") else { return .success(fallback) }
    guard let limit = Int(raw), (1...1000).contains(limit) else {
        return .failure(ErrorResponse(.badRequest, "bad_limit", "limit: \(raw.prefix(40)) is not a whole number from 1 to 1000"))
    }
    return .success(limit)
}

/// JSON string literals.
enum JSONText {
    /// `s` as a quoted, escaped JSON string.
    static func quoted(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        append(s, to: &out)
        return out
    }

    /// Appends `s` quoted and escaped (in one copy when nothing needs escaping, the usual case).
    static func append(_ s: String, to out: inout [UInt8]) {
        let utf8 = s.utf8
        out.append(UInt8(ascii: "\""))
        if !utf8.contains(where: { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }) {
            out.append(contentsOf: utf8)
            out.append(UInt8(ascii: "\""))
            return
        }
        for u in utf8 {
            switch u {
            case UInt8(ascii: "\""): out += [92, 34]
            case UInt8(ascii: "\\"): out += [92, 92]
            case 0..<0x20: out += Array(String(format: "\\u%04x", u).utf8)
            default: out.append(u)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// Appends `x` rounded to six decimals, without trailing zeros (0 for what is not finite):
    /// scores and bandit contexts, many to a request, at a fraction of `description`'s cost.
    static func append(number x: Double, to out: inout [UInt8]) {
        let scaled = (abs(x) * 1e6).rounded()
        guard x.isFinite, scaled < 1e15 else {
            out += x.isFinite ? Array("\(x)".utf8) : [UInt8(ascii: "0")]
            return
        }
        let n = UInt64(scaled)
        if x < 0, n > 0 { out.append(UInt8(ascii: "-")) }
        appendDigits(n / 1_000_000, count: 1, to: &out)
        var fraction = n % 1_000_000, places = 6
        guard fraction > 0 else { return }
        while fraction % 10 == 0 { fraction /= 10; places -= 1 }
        out.append(UInt8(ascii: "."))
        appendDigits(fraction, count: places, to: &out)
    }

    /// `n` in decimal, zero-padded to at least `count` digits.
    private static func appendDigits(_ n: UInt64, count: Int, to out: inout [UInt8]) {
        let start = out.count
        var n = n
        repeat {
            out.append(UInt8(ascii: "0") + UInt8(n % 10))
            n /= 10
        } while n > 0 || out.count - start < count
        out[start...].reverse()
    }
}
