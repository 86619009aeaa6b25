import Foundation

/// The one progress display of long work (training, generation, feature extraction, dataset
/// building): a redrawn bar with rate and ETA on a terminal, plain lines at most every
/// `plainInterval` seconds otherwise (logs, CI). Writes to standard error, so results on standard
/// output stay clean.
public final class ProgressReporter: @unchecked Sendable {
    public let title: String
    public let total: Int?
    private let isTerminal: Bool
    private let plainInterval: Double
    private let start = Date()
    private var lastDraw = Date.distantPast
    private var completed = 0
    /// Units done before this process began (a resumed run's steps): counted as done, not in the rate.
    private let initial: Int
    private var status = ""
    private var drawn: (completed: Int, status: String)?
    private let lock = NSLock()
    /// Draws nothing (the ranks of a data-parallel run other than 0 stay quiet).
    private let silent: Bool

    /// `total` nil for work of unknown length; `initial` units were done before (a resumed run).
    public init(title: String, total: Int?, initial: Int = 0, plainInterval: Double = 10,
                isTerminal: Bool = isatty(FileHandle.standardError.fileDescriptor) != 0, silent: Bool = false) {
        self.title = title
        self.total = total
        self.initial = initial
        completed = initial
        self.isTerminal = isTerminal
        self.plainInterval = plainInterval
        self.silent = silent
    }

    /// Records that `completed` units are done; `status` is shown after the counts (e.g. a loss).
    public func update(_ completed: Int, status: String = "") {
        guard !silent else { return }
        lock.lock()
        defer { lock.unlock() }
        self.completed = completed
        self.status = status
        let now = Date()
        let interval = isTerminal ? 0.1 : plainInterval
        if now.timeIntervalSince(lastDraw) >= interval || completed == total {
            lastDraw = now
            draw(final: false)
        }
    }

    /// Draws the final state and ends the line.
    public func finish(status: String? = nil) {
        guard !silent else { return }
        lock.lock()
        defer { lock.unlock() }
        if let status { self.status = status }
        // Plain output already has this state as its last line.
        if !isTerminal, let drawn, drawn.completed == completed, drawn.status == self.status { return }
        draw(final: true)
    }

    /// The text of the current state, without terminal control characters.
    public func line() -> String {
        let elapsed = Date().timeIntervalSince(start)
        let rate = elapsed > 0 ? Double(completed - initial) / elapsed : 0
        var parts = [title]
        if let total, total > 0 {
            let fraction = min(1, Double(completed) / Double(total))
            let width = 24
            let filled = Int(fraction * Double(width))
            parts.append("[" + String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled) + "]")
            parts.append("\(completed)/\(total)")
            if rate > 0, completed < total { parts.append("ETA " + Self.duration(Double(total - completed) / rate)) }
        } else {
            parts.append("\(completed)")
        }
        parts.append(String(format: "%.2f/s", rate))
        parts.append(Self.duration(elapsed))
        if !status.isEmpty { parts.append(status) }
        return parts.joined(separator: "  ")
    }

    private func draw(final: Bool) {
        drawn = (completed, status)
        let text = line()
        let output = isTerminal ? "\r\u{1B}[2K" + text + (final ? "\n" : "") : text + "\n"
        FileHandle.standardError.write(Data(output.utf8))
    }

    static func duration(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
                         : String(format: "%d:%02d", s / 60, s % 60)
    }
}
