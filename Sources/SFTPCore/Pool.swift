import CLibssh2
import Foundation

/// One file to move in a batch.
public struct TransferJob {
    public enum Direction { case download, upload }
    public var direction: Direction
    public var remote: String
    public var local: String
    public var preserveMtime: Bool
    public var confirm: Bool
    /// The caller has already checked that the target is not a directory (from a listing),
    /// which saves a round trip per file.
    public var targetChecked: Bool
    /// The source's attributes when the caller listed them (downloads: saves the stat).
    public var sourceAttributes: FileAttributes?

    public init(_ direction: Direction, remote: String, local: String, preserveMtime: Bool = true,
                confirm: Bool = true, targetChecked: Bool = false, sourceAttributes: FileAttributes? = nil) {
        self.direction = direction
        self.remote = remote
        self.local = local
        self.preserveMtime = preserveMtime
        self.confirm = confirm
        self.targetChecked = targetChecked
        self.sourceAttributes = sourceAttributes
    }
}

/// Moves many files with several in flight. SFTP answers one request at a time per file, so
/// a tree of small files is bound by round trips; the pool overlaps them by running jobs on
/// extra connections (each its own Session and SFTP channel, on its own thread) besides the
/// caller's. Results are handed to `done` on the calling thread only, in completion order, so
/// the caller may run Lua there. Extra connections that fail to open are simply not used.
public final class TransferPool {
    let main: SFTP
    let options: ConnectOptions
    let parallel: Int

    public init(main: SFTP, options: ConnectOptions, parallel: Int) {
        self.main = main
        self.options = options
        self.parallel = max(1, parallel)
    }

    /// Runs every job; `done(index, result)` is called once per finished job. If `done` throws,
    /// no new job starts, the ones in flight finish, and the error is rethrown.
    public func run(_ jobs: [TransferJob], done: (Int, Result<FileAttributes, Error>) throws -> Void) throws {
        let state = PoolState(count: jobs.count)
        let extra = jobs.count > 1 ? min(parallel - 1, jobs.count - 1) : 0
        for _ in 0..<extra {
            state.started()
            let options = self.options
            let thread = Thread {
                defer { state.finished() }
                guard let session = try? Session(options) else { return }
                defer { session.close() }
                guard let sftp = try? SFTP(session: session) else { return }
                defer { sftp.close() }
                while let i = state.take() {
                    state.deliver(i, TransferPool.perform(sftp, jobs[i]))
                }
            }
            thread.stackSize = 1 << 20
            thread.start()
        }
        var failure: Error?
        func hand(_ batch: [(Int, Result<FileAttributes, Error>)]) {
            for (i, r) in batch where failure == nil {
                do { try done(i, r) } catch { failure = error; state.cancel() }
            }
        }
        while failure == nil, let i = state.take() {
            let r = TransferPool.perform(main, jobs[i])
            hand([(i, r)] + state.collect(wait: false))
            if failure == nil, Interrupt.pending() {
                Interrupt.clear()
                failure = SSHError(.interrupted, "interrupted (Ctrl-C)")
                state.cancel()
            }
        }
        while true {
            let batch = state.collect(wait: true)
            if batch.isEmpty { break }
            hand(batch)
        }
        if let failure { throw failure }
    }

    static func perform(_ sftp: SFTP, _ job: TransferJob) -> Result<FileAttributes, Error> {
        Result {
            switch job.direction {
            case .download:
                return try Transfer.download(sftp, remote: job.remote, local: job.local, preserveMtime: job.preserveMtime,
                                             known: job.sourceAttributes)
            case .upload:
                return try Transfer.upload(sftp, local: job.local, remote: job.remote, preserveMtime: job.preserveMtime,
                                           confirm: job.confirm, targetChecked: job.targetChecked)
            }
        }
    }
}

/// The pool's shared counters, behind one condition lock.
private final class PoolState: @unchecked Sendable {
    private let cond = NSCondition()
    private let count: Int
    private var next = 0
    private var cancelled = false
    private var workers = 0
    private var results: [(Int, Result<FileAttributes, Error>)] = []

    init(count: Int) { self.count = count }

    func started() { cond.lock(); workers += 1; cond.unlock() }
    func finished() { cond.lock(); workers -= 1; cond.broadcast(); cond.unlock() }
    func cancel() { cond.lock(); cancelled = true; cond.unlock() }

    /// The next job's index, or nil when all are taken (or the run was cancelled).
    func take() -> Int? {
        cond.lock(); defer { cond.unlock() }
        guard !cancelled, next < count else { return nil }
        next += 1
        return next - 1
    }

    func deliver(_ i: Int, _ r: Result<FileAttributes, Error>) {
        cond.lock(); results.append((i, r)); cond.broadcast(); cond.unlock()
    }

    /// The results so far. With `wait`, blocks until there is one or every worker has ended
    /// (an empty answer then means all is done).
    func collect(wait: Bool) -> [(Int, Result<FileAttributes, Error>)] {
        cond.lock(); defer { cond.unlock() }
        while wait && results.isEmpty && workers > 0 { cond.wait() }
        let out = results
        results.removeAll()
        return out
    }
}

/// Extra connections opened side by side (each a Session + SFTP channel), closed together.
public final class ExtraChannels {
    public private(set) var channels: [SFTP] = []
    private var sessions: [Session] = []

    /// Opens up to `count` connections concurrently; those that fail are left out.
    public init(options: ConnectOptions, count: Int) {
        guard count > 0 else { return }
        let opened = Locked<[(Session, SFTP)]>([])
        let group = DispatchGroup()
        for _ in 0..<count {
            group.enter()
            Thread {
                defer { group.leave() }
                guard let s = try? Session(options) else { return }
                guard let f = try? SFTP(session: s) else { s.close(); return }
                opened.update { $0.append((s, f)) }
            }.start()
        }
        group.wait()
        sessions = opened.value.map { $0.0 }
        channels = opened.value.map { $0.1 }
    }

    deinit { close() }

    public func close() {
        for c in channels { c.close() }
        for s in sessions { s.close() }
        channels = []
        sessions = []
    }
}

/// Runs `body(i)` for i in 1..<count on threads and `body(0)` on the calling thread; waits for
/// all; rethrows the first error (the calling thread's first).
func fanOut(_ count: Int, _ body: @escaping (Int) throws -> Void) throws {
    let errors = Locked<[Error]>([])
    let group = DispatchGroup()
    for i in 1..<max(count, 1) {
        group.enter()
        let t = Thread {
            defer { group.leave() }
            do { try body(i) } catch { errors.update { $0.append(error) } }
        }
        t.stackSize = 1 << 20
        t.start()
    }
    var mine: Error?
    do { try body(0) } catch { mine = error }
    group.wait()
    if let e = mine ?? errors.value.first { throw e }
}

/// A value shared between threads, behind a lock.
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var v: T
    init(_ v: T) { self.v = v }
    var value: T { lock.lock(); defer { lock.unlock() }; return v }
    func update<R>(_ body: (inout T) -> R) -> R { lock.lock(); defer { lock.unlock() }; return body(&v) }
}

/// A byte counter shared by the threads of one transfer.
final class SharedCounter: @unchecked Sendable {
    private let total = Locked<UInt64>(0)
    func add(_ n: UInt64) -> UInt64 { total.update { $0 += n; return $0 } }
    var current: UInt64 { total.value }
}

extension Transfer {
    /// Files at least this big are split across several connections when `streams` > 1.
    public static let rangeThreshold: UInt64 = 64 << 20
    /// Connections used for one large file by default (`SFTPLUA_STREAMS` overrides, 1-64).
    nonisolated(unsafe) public static var defaultStreams: Int = {
        if let v = ProcessInfo.processInfo.environment["SFTPLUA_STREAMS"], let n = Int(v), (1...64).contains(n) { return n }
        return 2
    }()

    /// The size of a local file (following links), nil when it cannot be stat'ed.
    public static func localSize(_ path: String) -> UInt64? {
        let fd = Foundation.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK)
        guard fd >= 0 else { return nil }
        defer { Foundation.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { return nil }
        return UInt64(max(0, st.st_size))
    }

    /// How a file of `size` bytes is split into `n` ranges (aligned to the block size).
    static func ranges(size: UInt64, n: Int) -> [(UInt64, UInt64)] {
        let align = UInt64(blockSize)
        var per = (size + UInt64(n) - 1) / UInt64(n)
        per = (per + align - 1) / align * align
        var out: [(UInt64, UInt64)] = []
        var start: UInt64 = 0
        while start < size && out.count < n { out.append((start, min(size, start + per))); start += per }
        return out
    }

    /// Reads [start, end) of the open `file` (already positioned) into `fd` at the same offsets.
    static func copyRange(_ file: SFTPFile, to fd: Int32, start: UInt64, end: UInt64, local: String,
                          counter: SharedCounter, progress: ((UInt64) throws -> Void)?) throws {
        let buf = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 16)
        defer { buf.deallocate() }
        var off = start
        while off < end {
            if progress != nil { try Interrupt.checkpoint() }
            let want = Int(min(UInt64(blockSize), end - off))
            let n = try file.read(into: buf, count: want)
            if n == 0 { throw SSHError(.io, "cannot read \(file.path): the file shrank during the download", path: file.path) }
            var w = 0
            while w < n {
                let r = pwrite(fd, buf.advanced(by: w), n - w, off_t(off) + off_t(w))
                if r < 0 { if errno == EINTR { continue }; throw SSHError.local(errno, "cannot write", path: local) }
                w += r
            }
            off += UInt64(n)
            let total = counter.add(UInt64(n))
            try progress?(total)
        }
    }

    /// Downloads one large file over several channels at once (`channels[0]` is the caller's and
    /// is used on this thread, so `progress` runs here). Atomic like `download`.
    @discardableResult
    public static func downloadRanges(_ channels: [SFTP], remote: String, local: String, preserveMtime: Bool = false,
                                      known: FileAttributes? = nil, progress: TransferProgress? = nil) throws -> FileAttributes {
        let sftp = channels[0]
        let attrs = try known ?? sftp.stat(remote)
        guard channels.count > 1, let size = attrs.size, size >= rangeThreshold, !attrs.isDir else {
            return try download(sftp, remote: remote, local: local, preserveMtime: preserveMtime, known: attrs, progress: progress)
        }
        return try writeLocalAtomically(local: local) { fd in
            guard ftruncate(fd, off_t(size)) == 0 else { throw SSHError.local(errno, "cannot write", path: local) }
            let parts = ranges(size: size, n: channels.count)
            let counter = SharedCounter()
            try progress?(0, size)
            try fanOut(parts.count) { i in
                let file = try channels[i].open(remote, flags: LIBSSH2_FXF_READ)
                defer { try? file.close() }
                try file.seek(parts[i].0)
                try copyRange(file, to: fd, start: parts[i].0, end: parts[i].1, local: local, counter: counter,
                              progress: i == 0 ? { _ in try progress?(counter.current, size) } : nil)
            }
            try progress?(size, size)
            return attrs
        } finish: { fd in
            try finishLocal(fd, attrs: attrs, preserveMtime: preserveMtime)
        }
    }

    /// Uploads one large local file over several channels at once; atomic like `upload`.
    @discardableResult
    public static func uploadRanges(_ channels: [SFTP], local: String, remote: String, preserveMtime: Bool = false,
                                    confirm: Bool = true, progress: TransferProgress? = nil) throws -> FileAttributes {
        let fd = Foundation.open(local, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SSHError.local(errno, "cannot read", path: local) }
        defer { Foundation.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SSHError.local(errno, "cannot read", path: local) }
        let size = UInt64(st.st_size)
        guard channels.count > 1, st.st_mode & S_IFMT == S_IFREG, size >= rangeThreshold else {
            return try upload(channels[0], local: local, remote: remote, preserveMtime: preserveMtime, confirm: confirm, progress: progress)
        }
        let parts = ranges(size: size, n: channels.count)
        let counter = SharedCounter()
        return try uploadAtomically(channels[0], remote: remote, mode: Int32(st.st_mode & 0o777),
                                    mtime: preserveMtime ? (UInt64(st.st_atim.tv_sec), UInt64(st.st_mtim.tv_sec)) : nil,
                                    confirm: confirm, targetChecked: false) { first, temp in
            try progress?(0, size)
            try fanOut(parts.count) { i in
                let file = i == 0 ? first : try channels[i].open(temp, flags: LIBSSH2_FXF_WRITE)
                defer { if i != 0 { try? file.close() } }
                try file.seek(parts[i].0)
                let buf = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 16)
                defer { buf.deallocate() }
                var off = parts[i].0
                while off < parts[i].1 {
                    if i == 0 { try Interrupt.checkpoint() }
                    let n = pread(fd, buf, Int(min(UInt64(blockSize), parts[i].1 - off)), off_t(off))
                    if n < 0 { if errno == EINTR { continue }; throw SSHError.local(errno, "cannot read", path: local) }
                    if n == 0 { throw SSHError(.os, "cannot read \(local): the file shrank during the upload", path: local) }
                    try file.write(UnsafeRawBufferPointer(start: buf, count: n))
                    off += UInt64(n)
                    let total = counter.add(UInt64(n))
                    if i == 0 { try progress?(total, size) }
                }
            }
            try progress?(size, size)
            return size
        }
    }
}
