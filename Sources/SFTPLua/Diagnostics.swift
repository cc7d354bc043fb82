import Foundation
import SFTPCore

/// What the CLI's `-v`, `--quiet` and `--progress`/`--no-progress` set. Messages never carry
/// secrets: what reaches `note` is the same text as the connection log (no passwords or
/// passphrases are ever formatted into it).
public enum Diagnostics {
    public enum ProgressMode { case auto, on, off }
    // nonisolated(unsafe): set once by the CLI before any work starts, only read afterwards.
    nonisolated(unsafe) public static var verbose = false
    nonisolated(unsafe) public static var quiet = false
    nonisolated(unsafe) public static var progress: ProgressMode = .auto
    /// `--stats PERIOD`: seconds between status lines when no progress block is drawn.
    nonisolated(unsafe) public static var statsEvery: Double?

    /// One `-v` line on stderr.
    static func note(_ s: String) {
        guard verbose else { return }
        screen.lock(); defer { screen.unlock() }
        ProgressBar.current?.hide()
        FileHandle.standardError.write(Data("sftplua: \(Paths.oneLine(s))\n".utf8))
        ProgressBar.current?.show()
    }

    /// Serializes what goes to the terminal: the progress block (drawn on the Lua thread) and
    /// `-v` lines, which extra connections' threads write too.
    static let screen = NSRecursiveLock()

    /// Progress bars are drawn on a terminal (stderr), or always with `--progress`.
    static var progressEnabled: Bool {
        switch progress {
        case .on: return true
        case .off: return false
        case .auto: return !quiet && isatty(2) != 0
        }
    }
}

/// The progress of one transfer call, as rclone's `-P` shows it: a block on stderr (terminal, or
/// `--progress`) with bytes done and total, rate, ETA and elapsed time; files done and total,
/// checks and errors; and the files in flight by name. It appears once the call has run for a
/// second, redraws at most ten times a second, fits the terminal's width, and steps aside for
/// script output and log lines (`hide()` before, `show()` after). With `--stats PERIOD` and no
/// block (stderr is not a terminal), one status line goes to stderr every PERIOD.
/// `@unchecked Sendable`: the files in flight are kept under `lock` (executors on other threads
/// report them); everything else is used on the Lua thread, and drawing takes `Diagnostics.screen`.
final class ProgressBar: @unchecked Sendable {
    let label: String
    let totalBytes: UInt64
    let totalFiles: Int?
    /// Files compared and found current (a mirror's skipped files).
    var checks = 0
    var errors = 0
    private let start = Date()
    /// Seconds before a bar appears (`SFTPLUA_PROGRESS_DELAY` overrides the 1 s, for tests).
    static let delay: Double = {
        if let v = ProcessInfo.processInfo.environment["SFTPLUA_PROGRESS_DELAY"], let d = Double(v), d >= 0 { return d }
        return 1
    }()
    private var lastDraw = Date.distantPast
    private var lastStats = Date()
    private var drawnLines = 0
    private var bytes: UInt64 = 0
    private var files: Int?
    /// Files in flight (taken by an executor, possibly on another thread), by name.
    private let lock = NSLock()
    private var inFlight: [Int: String] = [:]
    let enabled: Bool
    let statsEvery: Double?

    /// The block on screen now, if any (script output and log lines step around it). A
    /// transfer started inside another's callback shows nothing of its own: the outer block stays.
    // nonisolated(unsafe): set and cleared on the Lua thread (the transfer's); other threads
    // only read it in `Diagnostics.note`, under `Diagnostics.screen`.
    nonisolated(unsafe) static weak var current: ProgressBar?

    init(label: String, totalBytes: UInt64, totalFiles: Int? = nil) {
        self.label = label
        self.totalBytes = totalBytes
        self.totalFiles = totalFiles
        let outer = ProgressBar.current != nil
        enabled = Diagnostics.progressEnabled && !outer
        statsEvery = enabled || outer ? nil : Diagnostics.statsEvery
        if enabled || statsEvery != nil { ProgressBar.current = self }
    }

    /// A file is in flight (any thread). Its name is shown with control bytes escaped, so a
    /// name can never move the cursor or forge a line.
    func started(_ key: Int, _ name: String) {
        guard enabled else { return }
        let safe = String(name.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F || (0x80..<0xA0).contains($0.value) ? "?" : Character($0) })
        lock.lock(); inFlight[key] = safe; lock.unlock()
    }

    /// A file is no longer in flight (any thread).
    func ended(_ key: Int) {
        guard enabled else { return }
        lock.lock(); inFlight.removeValue(forKey: key); lock.unlock()
    }

    func update(bytes: UInt64, files: Int? = nil) {
        self.bytes = bytes
        if let files { self.files = files }
        let now = Date()
        if let every = statsEvery, now.timeIntervalSince(lastStats) >= every {
            lastStats = now
            FileHandle.standardError.write(Data("sftplua: \(statusLine(elapsed: now.timeIntervalSince(start)))\n".utf8))
        }
        guard enabled else { return }
        let elapsed = now.timeIntervalSince(start)
        guard elapsed >= Self.delay, now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        draw(elapsed: elapsed)
    }

    /// Time passed with no news of bytes (a transfer waiting for its rate): redraw or print a
    /// status line if one is due.
    func tick() {
        let moved = RateLimiter.active?.moved ?? 0
        update(bytes: max(bytes, totalBytes > 0 ? min(moved, totalBytes) : moved))
    }

    func finish(bytes: UInt64, files: Int? = nil) {
        defer { if ProgressBar.current === self { ProgressBar.current = nil } }
        if statsEvery != nil, Date().timeIntervalSince(start) >= statsEvery! {
            // A last status line with the totals, as rclone's final stats.
            self.bytes = bytes
            if let files { self.files = files }
            FileHandle.standardError.write(Data("sftplua: \(statusLine(elapsed: Date().timeIntervalSince(start)))\n".utf8))
        }
        guard enabled, drawnLines > 0 else { return }
        self.bytes = bytes
        if let files { self.files = files }
        lock.lock(); inFlight.removeAll(); lock.unlock()
        draw(elapsed: Date().timeIntervalSince(start))
        FileHandle.standardError.write(Data("\n".utf8))
        drawnLines = 0
    }

    /// Clears the block (before other output on the terminal).
    func hide() {
        Diagnostics.screen.lock(); defer { Diagnostics.screen.unlock() }
        guard drawnLines > 0 else { return }
        FileHandle.standardError.write(Data((Self.up(drawnLines) + "\u{1B}[J").utf8))
        drawnLines = 0
    }

    /// Draws it again after other output (which, when it did not end its line, stays above it).
    func show(afterPartialLine: Bool = false) {
        if afterPartialLine { partialLine = true }
        guard enabled, lastDraw != Date.distantPast else { return }
        draw(elapsed: Date().timeIntervalSince(start))
    }
    private var partialLine = false

    static func up(_ lines: Int) -> String { "\r" + (lines > 1 ? "\u{1B}[\(lines - 1)A" : "") }

    private func draw(elapsed: Double) {
        Diagnostics.screen.lock(); defer { Diagnostics.screen.unlock() }
        let width = Self.columns() - 1
        let lines = block(elapsed: elapsed).map { Self.fit($0, width) }
        var out = drawnLines > 0 ? Self.up(drawnLines) : ""
        if drawnLines == 0 && partialLine { out = "\n"; partialLine = false }
        out += lines.map { "\u{1B}[2K" + $0 }.joined(separator: "\n") + "\u{1B}[J"
        FileHandle.standardError.write(Data(out.utf8))
        drawnLines = lines.count
    }

    /// The lines of the block.
    func block(elapsed: Double) -> [String] {
        var lines = ["\(label)", "Transferred:  \(bytesPart(elapsed: elapsed))"]
        if let totalFiles {
            let done = files ?? 0
            let pct = totalFiles > 0 ? done * 100 / totalFiles : 100
            lines.append("Files:        \(done) / \(totalFiles), \(pct)%   Checks: \(checks)   Errors: \(errors)")
        }
        lines.append("Elapsed:      " + Self.duration(elapsed))
        lock.lock()
        let names = inFlight.sorted { $0.key < $1.key }.map(\.value)
        lock.unlock()
        for (k, n) in names.prefix(4).enumerated() { lines.append((k == 0 ? "Transferring: " : "              ") + n) }
        if names.count > 4 { lines.append("              (and \(names.count - 4) more)") }
        return lines
    }

    func bytesPart(elapsed: Double) -> String {
        let rate = elapsed > 0 ? Double(bytes) / elapsed : 0
        var s = Self.size(bytes)
        if totalBytes > 0 {
            s += " / \(Self.size(totalBytes)), \(min(100, Int(Double(bytes) * 100 / Double(totalBytes))))%"
        }
        s += ", \(Self.size(UInt64(rate)))/s"
        if totalBytes > bytes, rate > 0 { s += ", ETA " + Self.duration(Double(totalBytes - bytes) / rate) }
        return s
    }

    /// One line for `--stats`: the block's numbers.
    func statusLine(elapsed: Double) -> String {
        var s = "\(label): \(bytesPart(elapsed: elapsed))"
        if let totalFiles { s += "; \(files ?? 0) / \(totalFiles) files, \(checks) checks, \(errors) errors" }
        return s + "; elapsed " + Self.duration(elapsed)
    }

    /// A line cut to `width` characters; a long one loses its middle ("..."), so a path keeps
    /// its start and its name.
    static func fit(_ line: String, _ width: Int) -> String {
        guard line.count > width, width > 8 else { return line }
        let keep = width - 3
        return String(line.prefix(keep / 2)) + "..." + String(line.suffix(keep - keep / 2))
    }

    static func duration(_ t: Double) -> String {
        let s = Int(t.rounded())
        if t < 60 { return String(format: "%.1fs", t) }
        if s < 3600 { return String(format: "%dm%02ds", s / 60, s % 60) }
        return String(format: "%dh%02dm%02ds", s / 3600, s / 60 % 60, s % 60)
    }

    static func size(_ n: UInt64) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var v = Double(n)
        var i = 0
        while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
        return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
    }

    static func columns() -> Int {
        var ws = winsize()
        if ioctl(2, UInt(TIOCGWINSZ), &ws) == 0, ws.ws_col > 10 { return Int(ws.ws_col) }
        return 80
    }
}
