import Foundation

/// Files that hold secrets (key files, the store's pseudonym secret): created readable by their
/// owner only from the first byte — `open(O_CREAT | O_EXCL, 0600)`, then written and synced —
/// never written first and narrowed after.
public enum SecretFile {
    /// Writes `data` to a new file at `path` (refused when one exists), mode 0600, synced to disk.
    public static func create(_ path: String, contents data: Data) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSUnderlyingErrorKey: POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO)]) }
        defer { close(fd) }
        try data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = write(fd, raw.baseAddress.map { $0 + offset }, raw.count - offset)
                guard n > 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
                offset += n
            }
        }
        guard fsync(fd) == 0 else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path]) }
        // The directory too, or after a power cut the file may be gone while what it keyed stays.
        try syncDirectory(of: path)
    }

    /// A key file others may read: refused.
    public struct TooOpen: Error, CustomStringConvertible {
        public var path: String, mode: mode_t
        public var description: String { "\(path) has mode \(String(mode, radix: 8)); it must be readable by its owner only (chmod 600)" }
    }

    /// Reads the key file at `path` (nil when there is none), refusing it as ``TooOpen`` when
    /// anyone but its owner may read it — its mode as opened, not as the path says a moment later.
    public static func read(_ path: String) throws -> Data? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return nil }
            throw CocoaError(.fileReadUnknown, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "\(path): \(String(cString: strerror(errno)))"])
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSFilePathErrorKey: path]) }
        guard info.st_mode & 0o077 == 0 else { throw TooOpen(path: path, mode: info.st_mode & 0o777) }
        var data = Data(), buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = Glibc.read(fd, &buffer, buffer.count)
            if n < 0, errno == EINTR { continue }
            guard n >= 0 else { throw CocoaError(.fileReadUnknown, userInfo: [NSFilePathErrorKey: path]) }
            if n == 0 { return data }
            data.append(contentsOf: buffer[0..<n])
        }
    }

    /// Syncs the directory holding `path`, making its creation or a rename onto it durable.
    public static func syncDirectory(of path: String) throws {
        let directory = open(URL(fileURLWithPath: path).deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0, fsync(directory) == 0 else {
            if directory >= 0 { close(directory) }
            throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "cannot sync its directory"])
        }
        close(directory)
    }
}
