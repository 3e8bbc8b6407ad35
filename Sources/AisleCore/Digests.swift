import Crypto
import Foundation

/// SHA-256 as the store names things by it.
public enum Digests {
    /// The digest of a text's UTF-8 bytes (an enrolment token, a kiosk session key, an embedded text).
    public static func sha256(_ text: String) -> Data { Data(SHA256.hash(data: Data(text.utf8))) }

    /// The digest of bytes (a model's payload).
    public static func sha256(_ bytes: some DataProtocol) -> Data { Data(SHA256.hash(data: bytes)) }

    /// The digest of bytes as lower-case hex (model files, sync payloads).
    public static func sha256Hex(_ bytes: some DataProtocol) -> String { Hex.string(SHA256.hash(data: bytes)) }
}
