import Foundation

/// Output files written whole or not at all: to a temporary file beside the target, synced,
/// renamed onto it, the directory synced — after a crash or a power cut the path holds the old
/// file or the new one, never part of one, and not a file the directory forgot.
public enum DurableFile {
    /// Writes `data` to `path`. `mode`, when given, replaces the one the umask leaves; `check`
    /// runs on the whole new file before it replaces anything (throwing leaves `path` as it was).
    public static func write(_ data: Data, to path: String, mode: mode_t? = nil, check: (String) throws -> Void = { _ in }) throws {
        let temporary = try createTemporary(for: path)
        defer { try? temporary.handle.close() }
        do {
            try temporary.handle.write(contentsOf: data)
            if let mode, fchmod(temporary.handle.fileDescriptor, mode) != 0 { throw failure(temporary.path, "cannot set its mode") }
            try check(temporary.path)
            try commit(temporary, to: path)
        } catch {
            unlink(temporary.path)
            throw error
        }
    }

    /// Creates, for a writer that streams, the file it writes before ``commit(_:to:)``: beside
    /// `path`, hidden, named for this process — made afresh (a leftover of a crash replaced, a
    /// symbolic link there not followed) — and open for writing (the caller closes it).
    public static func createTemporary(for path: String) throws -> (path: String, handle: FileHandle) {
        let url = URL(fileURLWithPath: path)
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).partial-\(getpid())").path
        unlink(temporary)
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o666)
        guard fd >= 0 else { throw failure(temporary, "cannot create it") }
        return (temporary, FileHandle(fileDescriptor: fd, closeOnDealloc: true))
    }

    /// Syncs the temporary file and renames it onto `path`, then syncs the directory.
    public static func commit(_ temporary: (path: String, handle: FileHandle), to path: String) throws {
        try temporary.handle.synchronize()
        guard rename(temporary.path, path) == 0 else { throw failure(path, "cannot rename \(temporary.path) onto it") }
        try SecretFile.syncDirectory(of: path)
    }

    private static func failure(_ path: String, _ reason: String) -> CocoaError {
        CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: path, NSLocalizedDescriptionKey: "\(path): \(reason) (\(String(cString: strerror(errno))))"])
    }
}
