import AisleCore
import Crypto
import Foundation

/// Errors about the store secret.
public enum SecretError: Error, CustomStringConvertible {
    case missing(String)
    case badLength(String, Int)
    case tooOpen(String, String)

    public var description: String {
        switch self {
        case .missing(let p): "no store secret at \(p)"
        case .badLength(let p, let n): "the store secret \(p) has \(n) bytes; expected 32"
        case .tooOpen(let p, let mode): "the store secret \(p) has mode \(mode); it must be readable by its owner only (chmod 600)"
        }
    }
}

/// Replaces raw customer identifiers with HMAC-SHA256 under the per-store secret.
///
/// The secret is 32 random bytes in `<store>/secret`, mode 0600, made by `aislectl init`. Without
/// it a pseudonym cannot be linked back to a raw identifier, nor computed for a guessed one.
public struct Pseudonymizer: Sendable {
    private let key: SymmetricKey

    public init(secret: Data) { key = SymmetricKey(data: secret) }

    /// Loads the secret of the store at `directory`, refusing one that others could read.
    public init(storeDirectory directory: URL) throws {
        let path = directory.appendingPathComponent(Store.secretFileName).path
        let read: Data?
        do { read = try SecretFile.read(path) } catch let e as SecretFile.TooOpen { throw SecretError.tooOpen(path, String(e.mode, radix: 8)) }
        guard let data = read else { throw SecretError.missing(path) }
        guard data.count == 32 else { throw SecretError.badLength(path, data.count) }
        self.init(secret: data)
    }

    /// The 32-byte pseudonym of a raw identifier (already normalised).
    public func pseudonym(_ raw: String) -> Data {
        Data(HMAC<SHA256>.authenticationCode(for: Data(raw.utf8), using: key))
    }

    /// How a kiosk session's key is stored and logged: `s_` and 32 hex digits of its keyed hash
    /// under the store secret. A kiosk's key could name the shopper (a device id, a card
    /// number); stored this way it cannot be tested against a guess without the secret, and the
    /// same key always maps to the same stored one.
    public func sessionKey(_ raw: String) -> String {
        "s_" + Hex.string(HMAC<SHA256>.authenticationCode(for: Data("aisle-session\u{0}".utf8) + Data(raw.utf8), using: key).prefix(16))
    }

    /// The key an event keeps once its words are cleared (``TextRetention``): the hour of
    /// `key`, then 12 bytes of its keyed hash under the store secret — guessed words cannot be
    /// tested against it without the secret, and the same event imported again still finds it.
    public func sealedKey(_ key: Data) -> Data {
        key.prefix(4) + HMAC<SHA256>.authenticationCode(for: Data("aisle-sealed-key\u{0}".utf8) + key, using: self.key).prefix(12)
    }

    /// Writes a new random secret (or `imported`, to keep pseudonyms when replacing hardware).
    public static func writeSecret(to directory: URL, imported: Data? = nil) throws {
        let path = directory.appendingPathComponent(Store.secretFileName).path
        let secret = imported ?? SymmetricKey(size: .bits256).withUnsafeBytes { Data($0) }
        guard secret.count == 32 else { throw SecretError.badLength("(imported)", secret.count) }
        unlink(path)  // only a setup that stopped before making the database leaves one: nothing was pseudonymised with it
        try SecretFile.create(path, contents: secret)
    }
}

/// How pseudonyms are shown: a short hex prefix, enough to tell customers apart in reports.
public enum Pseudonym {
    public static func display(_ pseudonym: Data) -> String {
        "c_" + Hex.string(pseudonym.prefix(8))
    }
}

/// Creating a new store: directory, secret and database.
public enum StoreSetup {
    /// Initialises a store at `directory` (created with mode 0750 if missing; an existing one
    /// loses what others had and its group's write).
    /// Two at once in one directory take turns (a lock on the directory): the second finds the
    /// first's store, instead of replacing its secret.
    public static func initialise(at directory: URL, importedSecret: Data? = nil) throws -> Store {
        let fm = FileManager.default
        try fm.createDirectory(at: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o750])
        let cannotLock = CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: directory.path, NSLocalizedDescriptionKey: "cannot lock the directory"])
        let lock = open(directory.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard lock >= 0 else { throw cannotLock }
        defer { close(lock) }  // closing releases the lock
        while flock(lock, LOCK_EX) != 0 {
            guard errno == EINTR else { throw cannotLock }  // a signal while waiting: wait again
        }
        if fm.fileExists(atPath: directory.appendingPathComponent(Store.databaseName).path) {
            throw StoreError.alreadyInitialised(directory.path)
        }
        var info = stat()
        guard fstat(lock, &info) == 0, fchmod(lock, info.st_mode & 0o750) == 0 else { throw cannotLock }
        try Pseudonymizer.writeSecret(to: directory, imported: importedSecret)
        return try Store.create(at: directory)
    }
}
