import AisleClient
import Foundation
import NIOHTTP1

/// HTTP to the hub: `GET /v1/hub`, `POST /v1/messages`, `GET /v1/models/{kind}/{version}`.
/// Every failure is a ``SyncError``: `unavailable` when the hub cannot be reached or the
/// connection breaks, the hub's own code when it refuses.
public struct HubConnection: Sendable {
    public let url: String
    let target: HTTPTarget
    let deadline: Duration

    /// `http://HOST[:PORT]` or `https://HOST[:PORT]` (default port 7443); for https, `caFile`
    /// (PEM) replaces the system's trust roots.
    public init(url: String, caFile: String? = nil, deadline: Duration = .seconds(30)) throws(SyncError) {
        let trimmed = url.hasSuffix("/") ? String(url.dropLast()) : url
        let secure = trimmed.hasPrefix("https://")
        guard secure || trimmed.hasPrefix("http://") else { throw SyncError(.badRequest, "hub URL \(url): expected http(s)://HOST[:PORT]") }
        let rest = trimmed.dropFirst(secure ? "https://".count : "http://".count)
        let parts = rest.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count <= 2, let host = parts.first, !host.isEmpty, !host.contains("/") else { throw SyncError(.badRequest, "hub URL \(url): expected http(s)://HOST[:PORT]") }
        var port = 7443
        if parts.count == 2 {
            guard let p = Int(parts[1]), (1...65_535).contains(p) else { throw SyncError(.badRequest, "hub URL \(url): port \"\(parts[1])\" is not 1–65535") }
            port = p
        }
        if let caFile, !FileManager.default.isReadableFile(atPath: caFile) { throw SyncError(.badRequest, "CA file \(caFile): cannot be read") }
        (self.url, target, self.deadline) = (trimmed, .tcp(host: String(host), port: port, tls: secure ? .init(caFile: caFile) : nil), deadline)
    }

    /// The hub's public keys.
    public func info() async throws(SyncError) -> HubInfo {
        let answer = try await call(.GET, "/v1/hub")
        return try SyncJSON.decode(HubInfo.self, answer, "hub info")
    }

    /// Sends an envelope; returns the hub's answer (JSON) once its signature verifies with the
    /// `hub`'s key for this envelope's store and sequence number (``ReplySignature``).
    /// A refusal is the hub's code only when signed so too; unsigned, it is `unavailable` (tried
    /// again later: a forged refusal can make a store wait, never give up its content).
    public func send(_ envelope: Envelope, hub: PublicKeys) async throws(SyncError) -> Data {
        let result = try await exchange(.POST, "/v1/messages", body: envelope.encoded(), refusals: .returned)
        let body = Data(result.body)
        let signed = result.header(ReplySignature.header).flatMap { Data(base64Encoded: $0) }.map {
            hub.verifies($0, of: ReplySignature.signedBytes(store: envelope.store, seq: envelope.seq, body: body))
        } ?? false
        guard result.status == 200 else {
            let reply = try? SyncJSON.decode(ErrorReply.self, body, "error")
            if signed, let reply { throw reply.error }
            throw SyncError(.unavailable, "hub \(url) answered \(result.status) without the hub's signature (\(result.text.prefix(200))); tried again later")
        }
        guard signed else { throw SyncError(.badSignature, "the answer from \(url) is not signed by the hub key this store pinned; refused") }
        return body
    }

    /// A model payload of `bytes` bytes (its manifest's): a longer answer is cut off there.
    public func model(kind: String, version: Int, bytes: Int) async throws(SyncError) -> Data {
        Data(try await exchange(.GET, "/v1/models/\(kind)/\(version)", limit: max(bytes, Self.answerLimit)).body)
    }

    func call(_ method: HTTPMethod, _ uri: String, body: Data? = nil) async throws(SyncError) -> Data {
        Data(try await exchange(method, uri, body: body).body)
    }

    /// Whether ``exchange(_:_:body:limit:refusals:)`` throws an answer other than 200 as the
    /// hub's error, or returns it for the caller to check.
    enum Refusals { case thrown, returned }

    /// The most a JSON answer of the hub may hold (a round's status with 255 stores' shares is
    /// well under it): a longer one is not read into memory.
    static let answerLimit = 4 << 20

    /// One request; the whole response when its status is 200, else the hub's error. An error
    /// that does not come as the hub's JSON (a proxy's page, say) is `unavailable`, whatever its
    /// status: nothing in it can be trusted to say the content is at fault.
    func exchange(
        _ method: HTTPMethod, _ uri: String, body: Data? = nil, limit: Int = answerLimit, refusals: Refusals = .thrown
    ) async throws(SyncError) -> HTTPResult {
        let result: HTTPResult
        do {
            result = try await UnixHTTP.request(target, method, uri, body: body.map { Array($0) }, deadline: deadline, limit: limit)
        } catch let error as UnixHTTP.ResponseTooLarge {
            throw SyncError(.unavailable, "hub \(url): \(error); given up")
        } catch {
            throw SyncError(.unavailable, "hub \(url) unreachable: \(error)")
        }
        guard result.status == 200 || refusals == .returned else {
            if let reply = try? SyncJSON.decode(ErrorReply.self, Data(result.body), "error") { throw reply.error }
            throw SyncError(.unavailable, "hub \(url) answered \(result.status): \(result.text.prefix(200))")
        }
        return result
    }
}
