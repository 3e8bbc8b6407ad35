import Dispatch
import Foundation
import Synchronization

/// Jobs waiting for one dedicated thread that takes them in batches: submitters never block,
/// and exactly one drain loop runs while there is work. The owner's drain loop calls ``take(_:)``
/// until it returns nothing, which marks the queue idle.
public final class WorkQueue<Job: Sendable>: Sendable {
    private let state = Mutex<(jobs: [Job], draining: Bool)>(([], false))
    private let thread: DispatchQueue

    public init(label: String) { thread = DispatchQueue(label: label) }

    /// Queues `job`; starts `drain` on the queue's thread unless a drain loop is already running.
    public func submit(_ job: Job, drain: @escaping @Sendable () -> Void) {
        let start = state.withLock { q in
            q.jobs.append(job)
            defer { q.draining = true }
            return !q.draining
        }
        if start { thread.async(execute: drain) }
    }

    /// How many jobs wait.
    public var waiting: Int { state.withLock { $0.jobs.count } }

    /// Removes the jobs `choose` picks from the waiting ones (in order); an empty result ends the
    /// drain loop, and the next ``submit(_:drain:)`` starts a new one.
    public func take(_ choose: (inout [Job]) -> [Job]) -> [Job] {
        state.withLock { q in
            let taken = q.jobs.isEmpty ? [] : choose(&q.jobs)
            if taken.isEmpty { q.draining = false }
            return taken
        }
    }
}

/// Blocking work — synchronous database access, long computation — run on a GCD thread instead
/// of Swift concurrency's cooperative pool. That pool has one thread per core: two tasks
/// blocked in it on a database reader can starve the very tasks that would release one.
public enum Blocking {
    public static func run<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        let work = counted(work)
        return await withCheckedContinuation { done in
            DispatchQueue.global(qos: .utility).async { done.resume(returning: work()) }
        }
    }

    public static func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await run { Result { try work() } }.get()
    }

    /// Work handed to ``run(_:)`` or ``background(_:)`` and not finished yet (queued included).
    private static let inFlight = Atomic<Int>(0)

    /// `work`, counted in ``inFlight`` from now until it returns.
    private static func counted<T>(_ work: @escaping @Sendable () -> T) -> @Sendable () -> T {
        inFlight.add(1, ordering: .relaxed)
        return {
            defer { inFlight.subtract(1, ordering: .releasing) }
            return work()
        }
    }

    /// Waits up to `timeout` for the blocking and background work in flight to end, and says
    /// whether it did. The agent closes its store only then: a connection closed under a read
    /// that is still running crashes the process.
    public static func drained(within timeout: Duration) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while inFlight.load(ordering: .acquiring) > 0 {
            guard ContinuousClock.now < deadline else { return false }
            Thread.sleep(forTimeInterval: 0.02)
        }
        return true
    }

    /// The nice value of ``background(_:)``'s threads.
    public static let backgroundNice: Int32 = 19

    /// Seconds-long computation that no request waits for — training, a whole insight
    /// computation, an index build — on a thread of its own at nice ``backgroundNice``, so the
    /// kernel gives a core to the threads answering requests first. Threads it starts
    /// (``Parallel``) inherit that priority.
    public static func background<T: Sendable>(_ work: @escaping @Sendable () -> T) async -> T {
        Scheduling.startNormalPriorityThreads()  // from here, at the caller's priority, if not yet
        let resumer = JobThread.resumes
        let work = counted(work)
        return await withCheckedContinuation { done in
            Thread {
                Scheduling.lowerPriority(to: backgroundNice)
                let result = work()
                resumer.submit { done.resume(returning: result) }
            }.start()
        }
    }

    public static func background<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await background { Result { try work() } }.get()
    }
}

/// A thread of its own that runs the jobs submitted to it in turn, at its creator's nice value or
/// lowered to a given one (a thread inherits its creator's nice value, and only privilege raises
/// it again).
public final class JobThread: Sendable {
    /// Resumes background work's waiters. Resuming queues the waiting task, which may start a new
    /// GCD worker thread from the resuming thread; a worker started from a nice-19 thread would
    /// inherit nice 19 and go on to run requests with it.
    static let resumes = JobThread()
    /// Runs background work's writes (``Scheduling/atNormalPriority(_:)``).
    static let writes = JobThread()

    /// The thread's nice value.
    public let nice: Int32
    private let state = Mutex<(jobs: [@Sendable () -> Void], stopped: Bool)>(([], false))
    private let wake = DispatchSemaphore(value: 0)

    /// Starts the thread, at the caller's nice value or at `lowered` if that is lower priority.
    public init(lowered: Int32? = nil) {
        let nice = max(Scheduling.currentNice, lowered ?? Int32.min)
        self.nice = nice
        Thread { [self] in
            Scheduling.lowerPriority(to: nice)
            while true {
                wake.wait()
                let (jobs, stopped) = state.withLock { s in defer { s.jobs = [] }; return (s.jobs, s.stopped) }
                for job in jobs { job() }
                if stopped { return }
            }
        }.start()
    }

    /// What ``run(_:)`` throws once the thread has been told to ``stop()``.
    public struct Stopped: Error {}

    /// Runs `job` on this thread (signalling it wakes a thread and starts none); false, with
    /// `job` not run, once the thread has been told to stop.
    @discardableResult
    func submit(_ job: @escaping @Sendable () -> Void) -> Bool {
        let queued = state.withLock { s -> Bool in
            guard !s.stopped else { return false }
            s.jobs.append(job)
            return true
        }
        if queued { wake.signal() }
        return queued
    }

    /// Ends the thread once the jobs submitted before have run, and returns then; later jobs
    /// are refused.
    public func stop() async {
        Scheduling.startNormalPriorityThreads()
        let resumer = JobThread.resumes
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let last: @Sendable () -> Void = { resumer.submit { done.resume() } }
            let queued = state.withLock { s -> Bool in
                guard !s.stopped else { return false }
                s.stopped = true
                s.jobs.append(last)
                return true
            }
            if queued { wake.signal() } else { done.resume() }
        }
    }

    /// Runs `work` on this thread; the waiting task is resumed from a thread at normal priority.
    /// Throws ``Stopped`` once the thread has been told to stop.
    public func run<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        Scheduling.startNormalPriorityThreads()
        let resumer = JobThread.resumes
        return try await withCheckedThrowingContinuation { done in
            let queued = submit {
                let result = Result { try work() }
                resumer.submit { done.resume(with: result) }
            }
            if !queued { done.resume(throwing: Stopped()) }
        }
    }
}

/// The calling thread's scheduling priority. On Linux the nice value belongs to each thread, and
/// `PRIO_PROCESS` with id 0 names the calling thread alone.
public enum Scheduling {
    /// Lowers the calling thread's priority to `nice` (never raises it: that needs privilege).
    public static func lowerPriority(to nice: Int32) {
        #if os(Linux)
        if nice > currentNice { _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice) }
        #endif
    }

    /// The calling thread's nice value.
    public static var currentNice: Int32 {
        #if os(Linux)
        getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        #else
        0
        #endif
    }

    /// Starts the threads at normal priority that background work hands jobs to, from the
    /// calling thread, whose nice value they take: the agent calls it at start.
    public static func startNormalPriorityThreads() {
        _ = (JobThread.resumes, JobThread.writes)
    }

    /// Runs `work` on a thread at normal priority and waits for it, when the calling thread's
    /// priority is lower than that (inline otherwise). For background work's writes: a write holds
    /// the store's one writer, and a nice-19 thread starved on a busy agent while holding it kept
    /// event batches waiting for seconds (docs/ARCHITECTURE.md, "Concurrency").
    public static func atNormalPriority<T: Sendable>(_ work: @escaping @Sendable () throws -> T) throws -> T {
        guard currentNice > JobThread.writes.nice else { return try work() }
        let outcome = Outcome<T>()
        JobThread.writes.submit {
            let r = Result { try work() }
            outcome.value.withLock { $0 = r }
            outcome.done.signal()
        }
        outcome.done.wait()
        guard let r = outcome.value.withLock({ $0 }) else { preconditionFailure("signalled before the result was set") }
        return try r.get()
    }
}

/// A result handed from one thread to another that waits for it.
private final class Outcome<T: Sendable>: Sendable {
    let value = Mutex<Result<T, any Error>?>(nil)
    let done = DispatchSemaphore(value: 0)
}
