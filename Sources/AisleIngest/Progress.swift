import Foundation

/// Shows progress of long work on standard error: a self-rewriting line with rate and ETA on a
/// terminal, a plain line every few seconds otherwise (logs, CI).
public final class ProgressReporter {
    private let label: String
    private let total: Int64
    private let interactive: Bool
    private let quiet: Bool
    private let started = Date()
    private lazy var lastShown = started

    public init(label: String, totalBytes: Int64, quiet: Bool = false) {
        self.label = label
        total = totalBytes
        interactive = isatty(STDERR_FILENO) == 1
        self.quiet = quiet
    }

    /// Reports `count` units done and `bytes` of the input consumed.
    public func update(count: Int, bytes: Int64) {
        guard !quiet else { return }
        let now = Date()
        guard now.timeIntervalSince(lastShown) >= (interactive ? 0.25 : 5) else { return }
        lastShown = now
        let elapsed = max(now.timeIntervalSince(started), 1e-3)
        let rate = Double(count) / elapsed
        var line = "\(label): \(count.formatted()) lines, \(Int(rate).formatted()) lines/s"
        if total > 0, bytes > 0 {
            let fraction = min(Double(bytes) / Double(total), 1)
            let eta = elapsed / max(fraction, 1e-6) - elapsed
            line += String(format: ", %.0f%%, ETA %.0fs", fraction * 100, eta)
        }
        write(interactive ? "\r\u{1B}[K" + line : line + "\n")
    }

    /// Clears the progress line.
    public func finish() {
        if interactive && !quiet && lastShown != started { write("\r\u{1B}[K") }
    }

    private func write(_ s: String) { FileHandle.standardError.write(Data(s.utf8)) }
}
