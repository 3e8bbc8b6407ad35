/// A refusal in the sync protocol: a stable code (sync/PROTOCOL.md lists them) and a message
/// for people that names the field or the check that failed.
public struct SyncError: Error, Sendable, Equatable, CustomStringConvertible, Codable {
    public enum Code: String, Sendable, Codable, CaseIterable {
        case badRequest = "bad_request"
        case unsupportedVersion = "unsupported_version"
        case unknownStore = "unknown_store"
        case revoked
        case wrongKey = "wrong_key"
        case badSignature = "bad_signature"
        case undecryptable
        case replayed
        case wrongRound = "wrong_round"
        case badToken = "bad_token"
        case tooLarge = "too_large"
        case storageFull = "storage_full"
        case notFound = "not_found"
        case notEnrolled = "not_enrolled"
        case unavailable
        case `internal`

        /// The HTTP status the hub answers with.
        public var httpStatus: Int {
            switch self {
            case .badRequest, .unsupportedVersion, .undecryptable, .badSignature: 400
            case .unknownStore, .wrongKey, .badToken: 401
            case .revoked: 403
            case .notFound, .notEnrolled: 404
            case .replayed, .wrongRound: 409
            case .tooLarge: 413
            case .storageFull: 507
            case .unavailable: 503
            case .internal: 500
            }
        }

        /// Whether sending the same content again later may succeed.
        public var isTransient: Bool { [.storageFull, .unavailable, .internal, .replayed].contains(self) }

        /// Whether the refusal is of the content itself (sending it again fails the same way),
        /// not of the store or the moment.
        public var refusesContent: Bool { [.badRequest, .tooLarge].contains(self) }
    }

    public var code: Code
    public var message: String

    public init(_ code: Code, _ message: String) { (self.code, self.message) = (code, message) }

    public var description: String { "\(code.rawValue): \(message)" }
}
