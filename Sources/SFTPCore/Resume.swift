import CLibssh2
import Foundation

/// What an interrupted large transfer leaves behind so that the next one can resume: the
/// source's identity (size, mtime) and, for each range of the file, how far it got. Data is
/// written before the journal says so, so a journal never claims bytes that are not there.
struct ResumeJournal: Codable {
    var size: UInt64
    var mtime: UInt64
    var mtimeNanos: UInt64
    /// [start, end, done] per range; done is the next offset to write in [start, end].
    var ranges: [[UInt64]]

    var valid: Bool {
        !ranges.isEmpty && ranges.allSatisfy { $0.count == 3 && $0[0] <= $0[2] && $0[2] <= $0[1] && $0[1] <= size }
    }
    var remaining: UInt64 { ranges.reduce(0) { $0 + ($1[1] - $1[2]) } }
    var done: UInt64 { size - remaining }

    static func load(_ path: String) -> ResumeJournal? {
        let fd = LocalPath.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        let d = FileHandle(fileDescriptor: fd, closeOnDealloc: true).readDataToEndOfFile()
        guard let j = try? JSONDecoder().decode(ResumeJournal.self, from: d), j.valid else { return nil }
        return j
    }
}

/// The journal file of one transfer, updated as blocks land (from several threads).
/// `@unchecked Sendable`: `journal` is only used under `lock`.
final class JournalFile: @unchecked Sendable {
    let path: String
    private let lock = NSLock()
    private var journal: ResumeJournal

    init(path: String, journal: ResumeJournal) {
        self.path = path
        self.journal = journal
    }

    var ranges: [[UInt64]] { lock.lock(); defer { lock.unlock() }; return journal.ranges }
    var done: UInt64 { lock.lock(); defer { lock.unlock() }; return journal.done }

    func save() throws {
        lock.lock()
        let data = try? JSONEncoder().encode(journal)
        lock.unlock()
        guard let data else { return }
        // Written in place (small): a torn write makes it unreadable, and then the next run starts over.
        let fd = LocalPath.open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw LocalError(errno, "cannot write the resume journal", path: path) }
        defer { Foundation.close(fd) }
        _ = data.withUnsafeBytes { Foundation.write(fd, $0.baseAddress, $0.count) }
    }

    private var lastSave = Date()

    /// Range `i` is complete up to `done`; returns the bytes done overall. The file is rewritten
    /// at most twice a second (and once more by `save()` when a transfer stops).
    func advance(_ i: Int, to done: UInt64) throws -> UInt64 {
        lock.lock()
        journal.ranges[i][2] = done
        let total = journal.done
        let now = Date()
        let due = now.timeIntervalSince(lastSave) >= 0.5
        if due { lastSave = now }
        lock.unlock()
        if due { try save() }
        return total
    }

    func remove() { LocalPath.unlink(path) }
}

/// A range worker stopped because another one failed (or Ctrl-C): never the error reported.
struct RangeStopped: Error {}

extension SSHError {
    /// Failures after which a partial temp file is kept for the next run to resume.
    var isResumable: Bool { kind == .connection || kind == .timeout || kind == .interrupted }
}

extension Transfer {
    /// Files at least this big are split across several connections when `streams` > 1.
    public static let rangeThreshold: UInt64 = 64 << 20
    /// Files at least this big keep their partial temp file and a journal after a dropped
    /// connection, Timeout or Ctrl-C, and the next transfer of the same file resumes there.
    // nonisolated(unsafe) (this and streamsOverride): read from the environment once; tests set
    // them before starting transfers, never during one.
    nonisolated(unsafe) public static var resumeThreshold: UInt64 = {
        if let v = ProcessInfo.processInfo.environment["SFTPLUA_RESUME_MIN"], let n = UInt64(v) { return n }
        return 8 << 20
    }()
    /// Connections used for one large file by default: 2 from `rangeThreshold` (64 MiB), 4 from
    /// 256 MiB (as rclone's multi-thread streams). `SFTPLUA_STREAMS` (1-64) sets one number for all.
    nonisolated(unsafe) public static var streamsOverride: Int? = {
        if let v = ProcessInfo.processInfo.environment["SFTPLUA_STREAMS"], let n = Int(v), (1...64).contains(n) { return n }
        return nil
    }()
    public static func defaultStreams(size: UInt64) -> Int {
        if let n = streamsOverride { return n }
        return size >= 256 << 20 ? 4 : 2
    }

    /// The size of a local file (following links), nil when it cannot be opened.
    public static func localSize(_ path: String) -> UInt64? {
        let fd = LocalPath.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { Foundation.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return UInt64(max(0, st.st_size))
    }

    /// Ranges per connection for a split file: the connections take ranges from one queue, so
    /// the caller's connection, which starts first, does more while the others connect.
    static let rangesPerConnection = 2

    /// How a file of `size` bytes is split into `n` ranges (aligned to the block size).
    static func ranges(size: UInt64, n: Int) -> [[UInt64]] {
        let align = UInt64(blockSize)
        var per = (size + UInt64(max(n, 1)) - 1) / UInt64(max(n, 1))
        per = max(align, (per + align - 1) / align * align)
        var out: [[UInt64]] = []
        var start: UInt64 = 0
        while start < size { out.append([start, min(size, start + per), start]); start += per }
        return out.isEmpty ? [[0, 0, 0]] : out
    }

    /// Runs the unfinished ranges of `journal` over `channels`: each channel's thread takes the
    /// next range, opens the file on its channel, and moves it block by block. Channel 0 is the
    /// caller's and runs on this thread (so progress and Ctrl-C are handled here).
    static func runRanges(_ channels: Channels, _ journal: JournalFile,
                         _ move: @escaping @Sendable (_ sftp: SFTP, _ range: Int, _ from: UInt64, _ to: UInt64, _ landed: (UInt64) throws -> Void) throws -> Void) throws {
        defer { try? journal.save() }   // what landed is recorded, however this ends
        let pending = journal.ranges.enumerated().filter { $0.element[2] < $0.element[1] }.map(\.offset)
        let next = Locked(0)
        // One worker's failure, or Ctrl-C (seen by the calling thread, also while it waits),
        // stops the others at their next block.
        let stop = Locked(false)
        do {
        try fanOut(min(channels.count, max(pending.count, 1)), whileWaiting: {
            if Interrupt.pending() { stop.update { $0 = true } }
        }) { worker in
            // An extra connection joins once connected; one that failed takes no range.
            guard let channel = channels.channel(worker) else { return }
            while true {
                let k: Int? = next.update { i in
                    guard i < pending.count, !stop.value else { return nil }
                    i += 1
                    return pending[i - 1]
                }
                guard let r = k else { return }
                let range = journal.ranges[r]
                do {
                    try move(channel, r, range[2], range[1]) { upTo in
                        if worker == 0 { try Interrupt.checkpoint() }
                        _ = try journal.advance(r, to: upTo)
                        if stop.value { throw RangeStopped() }
                    }
                } catch {
                    stop.update { $0 = true }
                    throw error
                }
            }
        }
        } catch is RangeStopped {
            // Only stopped workers: it was Ctrl-C, seen while waiting.
            try Interrupt.checkpoint()
            throw SSHError(.interrupted, "interrupted (Ctrl-C)")
        }
        try Interrupt.checkpoint()
    }
}
