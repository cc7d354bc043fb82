import Foundation
import SFTPCore

/// What the CLI's `-v`, `--quiet` and `--progress`/`--no-progress` set. Messages never carry
/// secrets: what reaches `note` is the same text as the connection log (no passwords or
/// passphrases are ever formatted into it).
public enum Diagnostics {
    public enum ProgressMode { case auto, on, off }
    nonisolated(unsafe) public static var verbose = false
    nonisolated(unsafe) public static var quiet = false
    nonisolated(unsafe) public static var progress: ProgressMode = .auto

    /// One `-v` line on stderr.
    static func note(_ s: String) {
        guard verbose else { return }
        FileHandle.standardError.write(Data("sftplua: \(s)\n".utf8))
    }

    /// Progress bars are drawn on a terminal (stderr), or always with `--progress`.
    static var progressEnabled: Bool {
        switch progress {
        case .on: return true
        case .off: return false
        case .auto: return !quiet && isatty(2) != 0
        }
    }
}

/// A one-line progress bar on stderr for a transfer: bytes, rate, ETA, and files done of total
/// for batches. It appears only once the transfer has run for a second, and redraws at most ten
/// times a second.
final class ProgressBar {
    let label: String
    let totalBytes: UInt64
    let totalFiles: Int?
    private let start = Date()
    /// Seconds before a bar appears (`SFTPLUA_PROGRESS_DELAY` overrides the 1 s, for tests).
    static let delay: Double = {
        if let v = ProcessInfo.processInfo.environment["SFTPLUA_PROGRESS_DELAY"], let d = Double(v), d >= 0 { return d }
        return 1
    }()
    private var lastDraw = Date.distantPast
    private var drawn = false
    let enabled: Bool

    init(label: String, totalBytes: UInt64, totalFiles: Int? = nil) {
        self.label = label
        self.totalBytes = totalBytes
        self.totalFiles = totalFiles
        enabled = Diagnostics.progressEnabled
    }

    func update(bytes: UInt64, files: Int? = nil) {
        guard enabled else { return }
        let now = Date()
        let elapsed = now.timeIntervalSince(start)
        guard elapsed >= Self.delay, now.timeIntervalSince(lastDraw) >= 0.1 else { return }
        lastDraw = now
        draw(bytes: bytes, files: files, elapsed: elapsed)
    }

    func finish(bytes: UInt64, files: Int? = nil) {
        guard enabled, drawn else { return }
        draw(bytes: bytes, files: files, elapsed: Date().timeIntervalSince(start))
        FileHandle.standardError.write(Data("\n".utf8))
    }

    private func draw(bytes: UInt64, files: Int?, elapsed: Double) {
        drawn = true
        let rate = elapsed > 0 ? Double(bytes) / elapsed : 0
        var parts = [label]
        if totalBytes > 0 {
            let pct = min(100, Int(Double(bytes) * 100 / Double(totalBytes)))
            let width = 20
            let filled = pct * width / 100
            parts.append("[" + String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled) + "] \(pct)%")
            parts.append("\(Self.size(bytes))/\(Self.size(totalBytes))")
        } else {
            parts.append(Self.size(bytes))
        }
        parts.append("\(Self.size(UInt64(rate)))/s")
        if totalBytes > bytes, rate > 0 {
            let eta = Int(Double(totalBytes - bytes) / rate)
            parts.append(String(format: "ETA %d:%02d", eta / 60, eta % 60))
        }
        if let files, let totalFiles { parts.append("\(files)/\(totalFiles) files") }
        var line = parts.joined(separator: "  ")
        let width = Self.columns()
        if line.count > width - 1 { line = String(line.prefix(width - 1)) }
        FileHandle.standardError.write(Data(("\r" + line + "\u{1B}[K").utf8))
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
