import Foundation

/// Output files written whole or not at all: to a temporary file beside the target, synced,
/// renamed onto it, the directory synced — after a crash or a power cut the path holds the old
/// file or the new one, never part of one, and not a file the directory forgot.
public enum DurableFile {
    /// Writes `data` to `path`.
    public static func write(_ data: Data, to path: String) throws {
        let temporary = temporaryPath(for: path)
        do {
            try data.write(to: URL(fileURLWithPath: temporary))
            try commit(temporary, to: path)
        } catch {
            unlink(temporary)
            throw error
        }
    }

    /// Where a writer that streams writes before ``commit(_:to:)``: beside `path`, hidden.
    public static func temporaryPath(for path: String) -> String {
        let url = URL(fileURLWithPath: path)
        return url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())").path
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
