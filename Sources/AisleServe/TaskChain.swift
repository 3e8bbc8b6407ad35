/// Work that must not overlap itself, run in call order: each piece starts when the one before
/// has ended. A host keeps one per kind of work (its refreshes, its log flushes), so that a
/// later call cannot finish first and be overwritten by an earlier one, nor return before the
/// earlier one's work is done.
struct TaskChain {
    private var last: Task<Void, Never>?

    /// Queues `work` after what is queued and returns its task.
    mutating func append(_ work: @escaping @Sendable () async -> Void) -> Task<Void, Never> {
        let previous = last
        let task = Task {
            await previous?.value
            await work()
        }
        last = task
        return task
    }
}

extension Task where Success == Void, Failure == Never {
    /// Waits for the task; cancelling the waiter cancels it (the agent stopping reaches the work).
    func finished() async {
        await withTaskCancellationHandler { await value } onCancel: { cancel() }
    }
}
