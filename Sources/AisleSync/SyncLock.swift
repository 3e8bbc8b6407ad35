import Foundation

/// One sync pass at a time per store, across processes (the agent's schedule and
/// `aislectl sync now`): an advisory lock on `<store>/sync.lock`.
public enum SyncLock {
    /// Runs `body` holding the lock; throws at once when another process holds it.
    public static func run<R>(store directory: URL, _ body: () async throws -> R) async throws -> R {
        let path = directory.appendingPathComponent("sync.lock").path
        let fd = open(path, O_CREAT | O_RDWR | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SyncError(.internal, "cannot open \(path) (errno \(errno))") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            throw SyncError(.unavailable, "another sync pass is running on this store (the agent's schedule?); try again in a moment")
        }
        defer { flock(fd, LOCK_UN) }
        return try await body()
    }
}
