import CLibssh2
import Foundation

/// One file to move in a batch.
public struct TransferJob: Sendable {
    public enum Direction: Sendable { case download, upload }
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
    /// The written file is flushed to disk before it takes its name (uploads:
    /// `fsync@openssh.com`, an IOError where the server lacks it; downloads: fsync(2)).
    public var fsync = false
    /// Uploads: the server's acknowledgement of every write confirms the size (no stat).
    public var acksConfirm = false
    /// Uploads: what the caller listed at the target (with `targetChecked`, nil means nothing is
    /// there). A file there keeps its mode, and its owner where the server allows; a symlink
    /// there stays a link and the file it names gets the content.
    public var existing: FileAttributes?
    /// Uploads: nil (default) writes in place when the directory refuses the temp name and the
    /// target is writable; true makes that an error; false is the same as nil.
    public var atomic: Bool?
    /// Uploads: write the target itself (set after a refused rename, not by callers).
    public var inPlace = false

    public init(_ direction: Direction, remote: String, local: String, preserveMtime: Bool = true,
                confirm: Bool = true, targetChecked: Bool = false, sourceAttributes: FileAttributes? = nil,
                fsync: Bool = false, acksConfirm: Bool = false) {
        self.fsync = fsync
        self.acksConfirm = acksConfirm
        self.direction = direction
        self.remote = remote
        self.local = local
        self.preserveMtime = preserveMtime
        self.confirm = confirm
        self.targetChecked = targetChecked
        self.sourceAttributes = sourceAttributes
    }
}

/// The jobs of a run, made when they are taken: a mirror of 100,000 files holds its plan
/// compactly and makes each `TransferJob` only when an executor starts it. `make` is called from
/// the threads of extra connections too, so it must only read what it captured.
/// `@unchecked Sendable` because `make` is a plain closure; what it captures is immutable (a
/// plan, or an array of jobs) and only read.
public struct JobList: @unchecked Sendable {
    public let count: Int
    let make: (Int) -> TransferJob
    public init(count: Int, make: @escaping (Int) -> TransferJob) { self.count = count; self.make = make }
    public init(_ jobs: [TransferJob]) { self.init(count: jobs.count) { jobs[$0] } }
    public subscript(i: Int) -> TransferJob { make(i) }
}

/// Moves many files: one `Executor` (many files in flight over one connection) on the caller's
/// connection, and, when `parallel` asks for more connections, one more executor per extra
/// connection, each on its own thread, all taking jobs from one queue. Results are handed to
/// `done` on the calling thread only, so the caller may run Lua there. Extra connections that
/// fail to open are simply not used.
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
        try run(JobList(jobs), done: done)
    }

    /// `started(i)` is called (on any of the pool's threads) as an executor takes job i.
    public func run(_ jobs: JobList, started: (@Sendable (Int) -> Void)? = nil,
                    done: (Int, Result<FileAttributes, Error>) throws -> Void) throws {
        let state = PoolState(count: jobs.count)
        let take: @Sendable () -> Int? = {
            let i = state.take()
            if let i { started?(i) }
            return i
        }
        let extra = jobs.count > 1 ? min(parallel - 1, jobs.count - 1) : 0
        for _ in 0..<extra {
            state.started()
            let options = self.options
            startWorker {
                defer { state.finished() }
                guard let sftp = SFTP.connectExtra(options) else { return }
                defer { sftp.closeWithSession() }
                try? Executor(sftp: sftp, jobs: jobs).run(take: take, deliver: { batch in
                    for (i, r) in batch { state.deliver(i, r) }
                })
            }
        }
        var failure: Error?
        func hand(_ batch: [(Int, Result<FileAttributes, Error>)]) throws {
            for (i, r) in batch where failure == nil {
                do { try done(i, r) } catch { failure = error; state.cancel(); throw error }
            }
        }
        do {
            try Executor(sftp: main, jobs: jobs).run(take: take, deliver: { batch in
                try hand(batch + state.collect(wait: false))
            })
        } catch {
            failure = failure ?? error
            state.cancel()
        }
        while true {
            let batch = state.collect(wait: true)
            if batch.isEmpty { break }
            try? hand(batch)
        }
        if let failure { throw failure }
    }
}

/// The pool's shared counters, behind one condition lock (`@unchecked Sendable` for that:
/// every field is used under `cond`).
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
/// They connect in the background: a transfer starts on the caller's connection at once, and
/// each extra one joins when it is ready (`wait`). One that cannot connect is left out.
public final class ExtraChannels: @unchecked Sendable {
    // Safe to share: every field is read and written under `cond`.
    private let cond = NSCondition()
    /// nil: still connecting; .some(nil): failed; .some(c): ready.
    private var slots: [SFTP??]
    private var closed = false
    public let count: Int

    public init(options: ConnectOptions, count: Int) {
        self.count = max(0, count)
        slots = Array(repeating: nil, count: self.count)
        for i in 0..<self.count {
            startWorker { [self] in
                let c = SFTP.connectExtra(options)
                cond.lock()
                let late = closed
                slots[i] = .some(late ? nil : c)
                cond.broadcast()
                cond.unlock()
                if late { c?.closeWithSession() }
            }
        }
    }

    deinit { close() }

    /// Connection `i` once its attempt has ended (nil when it failed or after close).
    public func wait(_ i: Int) -> SFTP? {
        cond.lock(); defer { cond.unlock() }
        var rounds = 0
        while slots[i] == nil && !closed && rounds < 1_000_000 { rounds += 1; cond.wait() }
        return closed ? nil : slots[i] ?? nil
    }

    /// Every connection that opened (waits for all attempts).
    public var channels: [SFTP] { (0..<count).compactMap { wait($0) } }

    public func close() {
        cond.lock()
        closed = true
        let ready = slots.compactMap { $0 ?? nil }
        slots = slots.map { $0 == nil ? nil : .some(nil) }
        cond.broadcast()
        cond.unlock()
        for c in ready { c.closeWithSession() }
    }
}

/// The connections one transfer may use: the caller's, and extra ones that join when ready.
public struct Channels: Sendable {
    public let main: SFTP
    public let extra: ExtraChannels?
    public init(_ main: SFTP, extra: ExtraChannels? = nil) { self.main = main; self.extra = extra }
    public var count: Int { 1 + (extra?.count ?? 0) }
    /// Connection `w` (0 is the caller's); waits for an extra one to connect.
    public func channel(_ w: Int) -> SFTP? { w == 0 ? main : extra?.wait(w - 1) }
}

/// A value handed to a worker closure that only the calling thread uses (a progress report
/// that runs Lua: called where `ch === sftp`, i.e. on worker 0, the caller's thread).
/// `@unchecked Sendable` for that reason alone: workers on other threads never touch it.
struct CallerOnly<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}

/// Runs `body(i)` for i in 1..<count on threads and `body(0)` on the calling thread; waits for
/// all; rethrows the first error (the calling thread's first).
func fanOut(_ count: Int, whileWaiting: (() -> Void)? = nil, _ body: @escaping @Sendable (Int) throws -> Void) throws {
    let errors = Locked<[Error]>([])
    let running = Running()
    for i in 1..<max(count, 1) {
        running.started()
        startWorker {
            defer { running.finished() }
            do { try body(i) } catch { errors.update { $0.append(error) } }
        }
    }
    var mine: Error?
    do { try body(0) } catch { mine = error }
    // Wait for the others; every 50 ms `whileWaiting` runs (it watches for Ctrl-C).
    while !running.waitForAll(upTo: whileWaiting == nil ? nil : 0.05) { whileWaiting?() }
    // The cause, not a worker that merely stopped because of it.
    let all = (mine.map { [$0] } ?? []) + errors.value
    if let e = all.first(where: { !($0 is RangeStopped) }) ?? all.first { throw e }
}

/// Threads still running, counted under a condition (the one way threads are waited for here,
/// as in PoolState and ExtraChannels). `@unchecked Sendable`: `n` is only used under `cond`.
final class Running: @unchecked Sendable {
    private let cond = NSCondition()
    private var n = 0
    func started() { cond.lock(); n += 1; cond.unlock() }
    func finished() { cond.lock(); n -= 1; cond.broadcast(); cond.unlock() }
    /// True when none is running; waits up to `seconds` (nil: until then).
    func waitForAll(upTo seconds: Double?) -> Bool {
        cond.lock(); defer { cond.unlock() }
        let deadline = seconds.map { Date().addingTimeInterval($0) }
        while n > 0 {
            if let deadline { if !cond.wait(until: deadline) { return n == 0 } } else { cond.wait() }
        }
        return true
    }
}

/// A value shared between threads, behind a lock (`@unchecked Sendable` for that: `value` is
/// only used under `lock`).
final class Locked<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var v: T
    init(_ v: T) { self.v = v }
    var value: T { lock.lock(); defer { lock.unlock() }; return v }
    func update<R>(_ body: (inout T) -> R) -> R { lock.lock(); defer { lock.unlock() }; return body(&v) }
}


/// Starts a worker thread (1 MiB stack) that never takes SIGINT. Ctrl-C's handler sets the flag
/// and arms a hook on the Lua state, which only the thread that runs Lua may touch, and it must
/// cut that thread's blocking calls short (EINTR: `sftp.sleep`, poll, the REPL's read); the
/// kernel gives a process-directed signal to any thread that does not block it. So SIGINT is
/// blocked in the starting thread while the thread is made (it inherits the mask: no window at
/// its start), and again at its start (whatever the Thread implementation does); a SIGINT that
/// arrives meanwhile stays pending and is delivered to the Lua thread when it unblocks.
func startWorker(_ body: @escaping @Sendable () -> Void) {
    var sigint = sigset_t()
    sigemptyset(&sigint)
    sigaddset(&sigint, SIGINT)
    var old = sigset_t()
    pthread_sigmask(SIG_BLOCK, &sigint, &old)
    defer { pthread_sigmask(SIG_SETMASK, &old, nil) }
    let requests = Interrupt.requestsTaken   // a Ctrl-C taken from now on stops this worker too
    let t = Thread {
        var mask = sigset_t()
        sigemptyset(&mask)
        sigaddset(&mask, SIGINT)
        pthread_sigmask(SIG_BLOCK, &mask, nil)
        Interrupt.enterWorker(startedAt: requests)
        body()
    }
    t.stackSize = 1 << 20
    t.start()
}
