import CAisleKernels
import Foundation
import Synchronization

/// Threads that wait for parts of one job at a time. A forward pass hands out dozens of jobs of
/// tens of microseconds each, so a worker spins briefly for the next job before it sleeps;
/// handing over a job then costs well under a microsecond instead of a thread wake-up.
final class WorkerPool: Sendable {
    private let state: State
    /// One job at a time: concurrent callers queue here.
    private let gate = Mutex(())

    init(workers: Int) {
        state = State(workers: workers)
        for part in 1...workers {
            let state = state
            let thread = Thread { state.work(part: part) }
            thread.name = "aisle.encoder.\(part)"
            thread.start()
        }
    }

    deinit { state.stop() }

    /// Runs `body(0)` here and `body(1…workers)` on the workers; returns when all are done.
    func run(_ body: (Int) -> Void) {
        gate.withLock { _ in
            withoutActuallyEscaping(body) { body in
                state.start(Job(body: body))
                body(0)
                state.waitForWorkers()
            }
        }
    }

    /// The job in hand. Sound to share: `run` does not return until every part has finished.
    private struct Job: @unchecked Sendable { let body: (Int) -> Void }

    private final class State: @unchecked Sendable {
        let workers: Int
        let generation = Atomic<Int>(0)
        let pending = Atomic<Int>(0)
        let sleepers = Atomic<Int>(0)
        let stopped = Atomic<Bool>(false)
        let wake = DispatchSemaphore(value: 0)
        /// Written by `start` before `generation` is bumped, read by workers after they see it.
        nonisolated(unsafe) var job: Job?

        init(workers: Int) { self.workers = workers }

        /// About 0.1 ms of pauses: enough to catch the next job of a forward pass (tens of
        /// microseconds apart), short enough that a worker idle between kiosk requests gives its
        /// core back (20,000 — about 1 ms — cost a third of the CPU at 200 searches/s).
        static let spinsBeforeSleep = 2_000

        func start(_ job: Job) {
            self.job = job
            pending.store(workers, ordering: .sequentiallyConsistent)
            generation.add(1, ordering: .sequentiallyConsistent)
            wakeSleepers()
        }

        func waitForWorkers() {
            while pending.load(ordering: .acquiring) > 0 { aisle_cpu_relax() }
            job = nil
        }

        func stop() {
            stopped.store(true, ordering: .sequentiallyConsistent)
            generation.add(1, ordering: .sequentiallyConsistent)
            wakeSleepers()
        }

        private func wakeSleepers() {
            let n = sleepers.exchange(0, ordering: .sequentiallyConsistent)
            for _ in 0..<n { wake.signal() }
        }

        func work(part: Int) {
            var seen = 0  // not a fresh load: a job may already have started before this thread ran
            while true {
                var spins = 0
                while generation.load(ordering: .acquiring) == seen {
                    spins += 1
                    if spins < Self.spinsBeforeSleep { aisle_cpu_relax(); continue }
                    // Sleep: announce it, look once more, then wait (a signal may come early; loop).
                    sleepers.add(1, ordering: .sequentiallyConsistent)
                    if generation.load(ordering: .sequentiallyConsistent) == seen { wake.wait() }
                    spins = 0
                }
                seen = generation.load(ordering: .acquiring)
                if stopped.load(ordering: .acquiring) { return }
                job?.body(part)
                pending.subtract(1, ordering: .releasing)
            }
        }
    }
}
