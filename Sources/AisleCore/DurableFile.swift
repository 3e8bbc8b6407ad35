import Foundation

/// Output files written whole or not at all: to a temporary file beside the target, synced,
/// renamed onto it, the directory synced — after a crash or a power cut the path holds the old
/// file or the new one, never part of one, and not a file the directory forgot.
public enum DurableFile {
    /// Writes `data` to `path`.
    public static func write(_ data: Data, to path: String) throws {
        let (temporary, handle) = try createTemporary(for: path)
        do {
            try handle.write(contentsOf: data)
            try handle.close()
            try commit(temporary, to: path)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Creates, for a writer that streams, the file it writes before ``commit(_:to:)``: beside
    /// `path`, hidden, named for this process — made afresh (a leftover of a crash replaced, a
    /// symbolic link there not followed) — and open for writing.
    public static func createTemporary(for path: String) throws -> (path: String, handle: FileHandle) {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())").path
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw failure(temporary, "cannot create it") }
        return (temporary, FileHandle(fileDescriptor: fd, closeOnDealloc: true))
    }

    /// Syncs `temporary` and renames it onto `path`, then syncs the directory.
    public static func commit(_ temporary: String, to path: String) throws {
        let fd = open(temporary, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw failure(temporary, "cannot open it to sync it") }
        let synced = fsync(fd) == 0
        close(fd)
        guard synced else { throw failure(temporary, "cannot sync it") }
        guard rename(temporary, path) == 0 else { throw failure(path, "cannot rename \(temporary) onto it") }
        try SecretFile.syncDirectory(of: path)
    }

    private static func failure(_ path: String, _ reason: String) -> CocoaError {
        CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "\(path): \(reason) (\(String(cString: strerror(errno))))"])
    }
}
