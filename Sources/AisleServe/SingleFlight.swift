/// An actor's refresh run one at a time: a call made while one runs has it go once more after,
/// instead of interleaving with it at its suspension points (two interleaved runs can finish
/// in the wrong order and leave the older result in place).
struct SingleFlight {
    private var running = false
    private var again = false

    /// Whether the caller runs now; if not, the run under way goes again once it ends.
    mutating func begin() -> Bool {
        guard !running else {
            again = true
            return false
        }
        running = true
        return true
    }

    /// Whether the run goes again (a call came meanwhile); ends it when not.
    mutating func next() -> Bool {
        if again {
            again = false
            return true
        }
        running = false
        return false
    }

    /// Ends the run at once (it failed).
    mutating func end() { (running, again) = (false, false) }
}
