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
    public func send(_ envelope: Envelope, hub: PublicKeys) async throws(SyncError) -> Data {
        let result = try await exchange(.POST, "/v1/messages", body: envelope.encoded())
        let body = Data(result.body)
        guard let signature = result.header(ReplySignature.header).flatMap({ Data(base64Encoded: $0) }),
            hub.verifies(signature, of: ReplySignature.signedBytes(store: envelope.store, seq: envelope.seq, body: body))
        else { throw SyncError(.badSignature, "the answer from \(url) is not signed by the hub key this store pinned; refused") }
        return body
    }

    /// A model payload.
    public func model(kind: String, version: Int) async throws(SyncError) -> Data {
        try await call(.GET, "/v1/models/\(kind)/\(version)")
    }

    func call(_ method: HTTPMethod, _ uri: String, body: Data? = nil) async throws(SyncError) -> Data {
        Data(try await exchange(method, uri, body: body).body)
    }

    /// One request; the whole response when its status is 200, else the hub's error.
    func exchange(_ method: HTTPMethod, _ uri: String, body: Data? = nil) async throws(SyncError) -> HTTPResult {
        let result: HTTPResult
        do {
            result = try await UnixHTTP.request(target, method, uri, body: body.map { Array($0) }, deadline: deadline)
        } catch {
            throw SyncError(.unavailable, "hub \(url) unreachable: \(error)")
        }
        guard result.status == 200 else {
            if let reply = try? SyncJSON.decode(ErrorReply.self, Data(result.body), "error") { throw reply.error }
            throw SyncError(result.status >= 500 ? .unavailable : .badRequest, "hub \(url) answered \(result.status): \(result.text.prefix(200))")
        }
        return result
    }
}
