import Foundation

/// Carries out a plan of file transfers over one connection with many files in flight.
///
/// A small file costs two round trips down (OPEN; READs) and three up (OPEN; WRITEs, CLOSE;
/// RENAME), and up to `maxFiles` files are at some step at once, so a tree of small files costs
/// a handful of round trips, not a few per file. Files of `Transfer.resumeThreshold` or more
/// (and downloads whose size nobody listed) go through `Transfer`, which pipelines one file's
/// blocks and keeps a journal to resume; they run after the small ones on the same connection.
///
/// Results are handed to `deliver` from the executor's own loop (never from inside a reply's
/// completion), so the caller may run Lua there, including calls on this connection.
public final class Executor {
    public let sftp: SFTP
    let jobs: JobList
    /// Files at some step at once (also bounded by the server's open-handle limit and the
    /// connection's byte budgets).
    // nonisolated(unsafe): read from the environment once, at first use; never written after.
    nonisolated(unsafe) public static var maxFiles: Int = {
        if let v = ProcessInfo.processInfo.environment["SFTPLUA_FILES_IN_FLIGHT"], let n = Int(v), (1...1024).contains(n) { return n }
        return 64
    }()

    private var results: [(Int, Result<FileAttributes, Error>)] = []
    /// REMOVEs of failed or abandoned uploads' temp files not answered yet (`run` waits for them).
    var cleanupsInFlight = 0
    private var active: [Int: Task] = [:]
    /// Tasks with blocks still to send (they wait for room in the connection's budgets).
    private var hungry: [Task] = []
    /// Jobs handed to `Transfer` (large, or refused by the pipelined path).
    private var sequential: [Int] = []

    /// Connections a large file may be split across (besides `sftp`), and a progress report for
    /// a single file (a job with a report goes through `Transfer`, which reports block by block).
    let extra: ExtraChannels?
    let progress: TransferProgress?

    public convenience init(sftp: SFTP, jobs: [TransferJob], extra: ExtraChannels? = nil, progress: TransferProgress? = nil) {
        self.init(sftp: sftp, jobs: JobList(jobs), extra: extra, progress: progress)
    }

    public init(sftp: SFTP, jobs: JobList, extra: ExtraChannels? = nil, progress: TransferProgress? = nil) {
        self.sftp = sftp
        self.jobs = jobs
        self.extra = extra
        self.progress = progress
    }

    /// One file, waited for: `get` and `put` run through here too.
    public static func one(_ sftp: SFTP, _ job: TransferJob, extra: ExtraChannels? = nil, progress: TransferProgress? = nil) throws -> FileAttributes {
        var result: Result<FileAttributes, Error>?
        try Executor(sftp: sftp, jobs: [job], extra: extra, progress: progress).run { _, r in result = r }
        return try result!.get()
    }

    /// Runs the jobs that `take` hands out (job indices) until it returns nil; `deliver` gets
    /// the results as they come. If `deliver` throws, no new job starts, the ones in flight
    /// finish, and the error is rethrown. Ctrl-C stops it at once (in-flight temp files are
    /// removed), also one taken in `deliver`'s Lua code.
    public func run(take: () -> Int?, deliver: ([(Int, Result<FileAttributes, Error>)]) throws -> Void) throws {
        var exhausted = false
        var failure: Error?
        let limit = max(1, min(Self.maxFiles, (sftp.maxOpenHandles ?? Int.max) / 2))
        var rounds = 0
        let takenAtStart = Interrupt.requestsTaken
        var cutOff = false   // a timeout or a lost connection: nothing more is waited for
        defer {
            abortAll()
            // The REMOVEs of abandoned uploads' temp files are waited for (unpaced; a second
            // Ctrl-C ends the wait): after Ctrl-C the script may end at once, and a request only
            // queued, or sent but not yet done when the connection drops, leaves the temp file.
            if cleanupsInFlight > 0, sftp.isOpen, !cutOff {
                Interrupt.workerStopped()   // a worker stopped by Ctrl-C can still wait for them
                try? sftp.waitUnpaced { cleanupsInFlight == 0 || Interrupt.pending() }
            }
        }
        do {
        while rounds < 100_000_000 {
            rounds += 1
            // Ctrl-C stops at once: the files in flight are abandoned (the deferred abortAll
            // removes their temp files), not finished (with bwlimit that could take minutes).
            try Interrupt.checkpoint()
            feed()
            while failure == nil, !exhausted, active.count < limit, sftp.hasRoom(expect: 1 << 20, sending: 1 << 20) {
                guard let i = take() else { exhausted = true; break }
                start(i)
            }
            if !results.isEmpty {
                let r = results
                results.removeAll()
                if failure == nil {
                    do { try deliver(r) } catch {
                        // Ctrl-C taken in the caller's Lua code (its hook): stop at once, as
                        // for one taken here, rather than finish the files in flight.
                        if Interrupt.requestsTaken != takenAtStart { RateLimiter.active?.stop(); throw error }
                        failure = error
                    }
                }
                continue
            }
            if !active.isEmpty {
                do {
                    try sftp.wait { !results.isEmpty || active.isEmpty || hungry.contains { $0.wantsRoom(sftp) }
                        || (failure == nil && !exhausted && active.count < limit && sftp.hasRoom(expect: 1 << 20, sending: 1 << 20))
                        || Interrupt.pending() }
                } catch {
                    if ProcessInfo.processInfo.environment["SFTPLUA_DEBUG_EXEC"] != nil {
                        for t in active.values { FileHandle.standardError.write(Data("task \(t.index) \(t.debugState)\n".utf8)) }
                        FileHandle.standardError.write(Data("hungry \(hungry.count) exhausted \(exhausted) failure \(String(describing: failure)) results \(results.count) seq \(sequential)\n".utf8))
                    }
                    abortAll()
                    throw failure ?? error
                }
                continue
            }
            if failure == nil, !sequential.isEmpty {
                let i = sequential.removeFirst()
                results.append((i, Result { try runSequential(jobs[i]) }))
                continue
            }
            if failure == nil, !exhausted, sftp.inFlight > 0 {
                // Replies still owed to an earlier call (one cut by Ctrl-C) fill the budgets:
                // they are taken first, then the jobs start.
                try sftp.waitForRoom(expect: 1 << 20, sending: 1 << 20)
                continue
            }
            break
        }
        } catch let e as SSHError where e.kind == .timeout || e.kind == .connection {
            cutOff = true
            throw e
        }
        if let failure { throw failure }
    }

    /// Convenience: every job, in order, results to `done` one by one.
    public func run(done: (Int, Result<FileAttributes, Error>) throws -> Void) throws {
        var next = 0
        try run(take: {
            guard next < jobs.count else { return nil }
            next += 1
            return next - 1
        }, deliver: { batch in for (i, r) in batch { try done(i, r) } })
    }

    private func runSequential(_ job: TransferJob) throws -> FileAttributes {
        switch job.direction {
        case .download: return try Transfer.download(Channels(sftp, extra: extra), job, progress: progress)
        case .upload: return try Transfer.upload(Channels(sftp, extra: extra), job, progress: progress)
        }
    }

    private func feed() {
        guard !hungry.isEmpty else { return }
        let tasks = hungry
        hungry.removeAll()
        for t in tasks where active[t.index] != nil { t.pump(self) }
    }

    fileprivate func finish(_ t: Task, _ r: Result<FileAttributes, Error>) {
        guard active.removeValue(forKey: t.index) != nil else { return }
        results.append((t.index, r))
    }

    fileprivate func handOver(_ t: Task) {
        guard active.removeValue(forKey: t.index) != nil else { return }
        sequential.append(t.index)
    }

    fileprivate func starve(_ t: Task) {
        if !hungry.contains(where: { $0 === t }) { hungry.append(t) }
    }

    private func start(_ i: Int) {
        let job = jobs[i]
        if progress != nil { sequential.append(i); return }
        switch job.direction {
        case .download:
            guard let a = job.sourceAttributes, let size = a.size, size < Transfer.resumeThreshold, a.kind == .file else {
                sequential.append(i); return
            }
            do {
                let t = try DownloadTask(index: i, job: job, size: size, attrs: a)
                active[i] = t
                t.begin(self)
            } catch { results.append((i, .failure(error))) }
        case .upload:
            do {
                guard let t = try UploadTask(index: i, job: job, sftp: sftp) else { sequential.append(i); return }
                active[i] = t
                t.begin(self)
            } catch { results.append((i, .failure(error))) }
        }
    }

    /// Every task still in flight is dropped: local temp files removed, remote temps removed.
    private func abortAll() {
        let tasks = active.values
        active.removeAll()
        hungry.removeAll()
        for t in tasks { t.abort(self) }
    }
}

/// One file moving through the executor.
class Task {
    let index: Int
    let job: TransferJob
    init(index: Int, job: TransferJob) { self.index = index; self.job = job }
    func begin(_ x: Executor) {}
    func pump(_ x: Executor) {}
    func wantsRoom(_ sftp: SFTP) -> Bool { false }
    func abort(_ x: Executor) {}
    var debugState: String { "" }
}

/// OPEN; READs for the listed size (written into a hidden temp file beside the target as they
/// land); then CLOSE (not waited for) and the temp file takes the target's name.
final class DownloadTask: Task {
    let size: UInt64
    let attrs: FileAttributes
    let local: LocalTemp
    var handle: [UInt8]?
    var nextOffset: UInt64 = 0
    var outstanding = 0
    var received: UInt64 = 0
    var end: UInt64
    var failed = false

    init(index: Int, job: TransferJob, size: UInt64, attrs: FileAttributes) throws {
        self.size = size
        self.end = size
        self.attrs = attrs
        self.local = try LocalTemp(local: job.local)
        super.init(index: index, job: job)
    }

    override func begin(_ x: Executor) {
        x.sftp.send(FXP.OPEN, { $0.string(job.remote); $0.u32(OpenFlags.read.rawValue); $0.u32(0) }) { [self] r in
            if failed {   // abandoned meanwhile (Ctrl-C): the handle is closed, nothing is read
                if case .success(.handle(let h)) = r { x.sftp.fireAndForget(FXP.CLOSE) { $0.string(h) } }
                return
            }
            switch r {
            case .failure(let e): fail(x, e)
            case .success(.handle(let h)):
                handle = h
                pump(x)
            case .success(let other): fail(x, x.sftp.unexpected(other, "cannot open", path: job.remote))
            }
        }
    }

    override func wantsRoom(_ sftp: SFTP) -> Bool {
        handle != nil && !failed && nextOffset < end
            && sftp.hasRoom(expect: min(sftp.readLength, Int(end - nextOffset)) + 64, data: min(sftp.readLength, Int(end - nextOffset)))
    }

    override func pump(_ x: Executor) {
        guard let h = handle, !failed else { return }
        let sftp = x.sftp
        while nextOffset < end {
            let n = Int(min(UInt64(sftp.readLength), end - nextOffset))
            guard sftp.hasRoom(expect: n + 64, data: n) else { x.starve(self); return }
            read(x, h, at: nextOffset, length: n)
            nextOffset += UInt64(n)
        }
        if outstanding == 0 { complete(x) }
    }

    private func read(_ x: Executor, _ h: [UInt8], at off: UInt64, length n: Int) {
        outstanding += 1
        x.sftp.send(FXP.READ, expect: n + 64, data: n, { $0.string(h); $0.u64(off); $0.u32(UInt32(n)) }) { [self] r in
            outstanding -= 1
            guard !failed else { return }
            switch r {
            case .failure(let e): return fail(x, e)
            case .success(.data(let d)) where d.isEmpty:
                end = min(end, off)
            case .success(.data(let d)):
                do { try local.write(d, at: off) } catch { return fail(x, error) }
                received += UInt64(d.count)
                if d.count < n, !d.isEmpty {
                    // A short answer (the server caps its reads): the rest is asked again.
                    read(x, h, at: off + UInt64(d.count), length: n - d.count)
                }
            case .success(.status(let code, let msg)):
                if code == FX.EOF {
                    // The file shrank since it was listed: what there is (as `get` does).
                    end = min(end, off)
                } else {
                    return fail(x, x.sftp.statusError(code, msg, "cannot read", path: job.remote))
                }
            case .success(let other): return fail(x, x.sftp.unexpected(other, "cannot read", path: job.remote))
            }
            if outstanding == 0 && nextOffset >= end { complete(x) }
        }
    }

    private func complete(_ x: Executor) {
        guard let h = handle, !failed else { return }
        handle = nil
        x.sftp.fireAndForget(FXP.CLOSE) { $0.string(h) }
        var a = attrs
        a.size = end
        do {
            try local.commit(size: a.size ?? 0, attrs: a, preserveMtime: job.preserveMtime, fsync: job.fsync)
            x.finish(self, .success(a))
        } catch { fail(x, error) }
    }

    private func fail(_ x: Executor, _ e: Error) {
        guard !failed else { return }
        failed = true
        if let h = handle { handle = nil; x.sftp.fireAndForget(FXP.CLOSE) { $0.string(h) } }
        local.discard()
        x.finish(self, .failure(e))
    }

    override func abort(_ x: Executor) {
        failed = true
        if let h = handle, x.sftp.isOpen { handle = nil; x.sftp.fireAndForget(FXP.CLOSE) { $0.string(h) } }
        local.discard()
    }
}

/// [STAT of the target when nobody listed it]; OPEN of a hidden temp name beside the target
/// (exclusive create); WRITEs, [FSETSTAT of the times], CLOSE, all sent without waiting; once
/// all are acknowledged, the temp takes the target's name (posix-rename where offered: no moment
/// without the file). A temp name that cannot be created exclusively hands the file to
/// `Transfer`, which knows how to clear what is in the way.
final class UploadTask: Task {
    let fd: Int32
    let size: UInt64
    let mode: Int32
    let times: (UInt64, UInt64)?
    let temp: String
    var handle: [UInt8]?
    var nextOffset: UInt64 = 0
    var outstanding = 0
    var failed = false
    var closing = false
    var tempCreated = false
    /// The OPEN that creates the temp file is in flight; `removeWhenOpened`: the task was
    /// abandoned meanwhile, so its answer closes and removes the file (in that order: a Windows
    /// server removes no open file).
    var opening = false
    var removeWhenOpened = false
    /// What is at the target now: a file there keeps its mode and owner.
    var existing: FileAttributes?
    var keptMode: Int32? { existing?.kind == .file ? existing?.mode.map { Int32($0 & 0o7777) } : nil }
    var ownerKept = false

    init?(index: Int, job: TransferJob, sftp: SFTP) throws {
        let fd = LocalPath.open(job.local, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LocalError(errno, "cannot read", path: job.local) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { let e = errno; Foundation.close(fd); throw LocalError(e, "cannot read", path: job.local) }
        if st.st_mode & S_IFMT == S_IFDIR {
            Foundation.close(fd)
            throw LocalError(.os, "cannot upload \(job.local): is a directory", path: job.local, errno: EISDIR)
        }
        let temp = Transfer.tempPath(beside: job.remote)
        guard st.st_mode & S_IFMT == S_IFREG, UInt64(max(0, st.st_size)) < Transfer.resumeThreshold, let temp else {
            Foundation.close(fd)
            return nil
        }
        self.fd = fd
        size = UInt64(st.st_size)
        mode = Int32(st.st_mode & 0o777)
        times = job.preserveMtime ? (UInt64(st.st_atim.tv_sec), UInt64(st.st_mtim.tv_sec)) : nil
        self.temp = temp
        super.init(index: index, job: job)
    }

    deinit { Foundation.close(fd) }

    override func begin(_ x: Executor) {
        if job.targetChecked && job.existing?.kind != .link {
            existing = job.existing
            return open(x)
        }
        x.sftp.send(FXP.LSTAT, { $0.string(job.remote) }) { [self] r in
            guard !failed else { return }   // abandoned meanwhile: no temp file is made
            switch r {
            case .failure(let e): return fail(x, e)
            case .success(.attrs(let a)) where a.isDir:
                return fail(x, SSHError(.io, "cannot upload to \(job.remote): is a directory", path: job.remote))
            case .success(.attrs(let a)) where a.kind == .link:
                // The file the link names gets the content: `Transfer` follows the links.
                failed = true
                return x.handOver(self)
            case .success(.attrs(let a)): existing = a
            default: break   // nothing there
            }
            open(x)
        }
    }

    private func open(_ x: Executor, again: Bool = false) {
        let flags: OpenFlags = [.write, .create, .exclusive]
        if again {
            // What an interrupted run left under the temp name (or a link planted there: REMOVE
            // takes the link, never its target) goes, then the exclusive create is tried once more.
            x.sftp.fireAndForget(FXP.REMOVE) { $0.string(temp) }
        }
        let createMode = UInt32(keptMode ?? mode)
        opening = true
        x.sftp.send(FXP.OPEN, keep: true, { $0.string(temp); $0.u32(flags.rawValue); FileAttributes(mode: createMode).encode(&$0) }) { [self] r in
            opening = false
            if removeWhenOpened {
                removeWhenOpened = false
                if case .success(.handle(let h)) = r {
                    x.sftp.fireAndForget(FXP.CLOSE) { $0.string(h) }
                    sendRemove(x)   // (counted when the task was abandoned)
                } else {
                    x.cleanupsInFlight -= 1
                }
                return
            }
            switch r {
            case .failure(let e): fail(x, e)
            case .success(.handle(let h)):
                tempCreated = true
                handle = h
                pump(x)
            case .success(.status(let code, _)):
                guard !failed else { return }
                if !again && code != FX.PERMISSION_DENIED && code != FX.NO_SUCH_FILE { return open(x, again: true) }
                // The directory refuses new names, or something still is in the way: `Transfer`
                // sorts that out, one file at a time.
                failed = true
                x.handOver(self)
            case .success(let other): fail(x, x.sftp.unexpected(other, "cannot open for writing", path: job.remote))
            }
        }
    }

    override func wantsRoom(_ sftp: SFTP) -> Bool {
        handle != nil && !failed && !closing && sftp.hasRoom(sending: sftp.writeLength + 64, data: sftp.writeLength)
    }

    override func pump(_ x: Executor) {
        guard let h = handle, !failed, !closing else { return }
        let sftp = x.sftp
        let chunk = sftp.writeLength
        var buf = [UInt8](repeating: 0, count: chunk)
        while nextOffset < size {
            let want = Int(min(UInt64(chunk), size - nextOffset))
            guard sftp.hasRoom(sending: want + 64, data: want) else { x.starve(self); return }
            let n = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, want, off_t(nextOffset)) }
            if n < 0 { if errno == EINTR { continue }; return fail(x, LocalError(errno, "cannot read", path: job.local)) }
            if n == 0 { return fail(x, LocalError(.os, "cannot read \(job.local): the file shrank during the upload", path: job.local)) }
            let at = nextOffset
            outstanding += 1
            buf.withUnsafeBytes { b in
                let data = UnsafeRawBufferPointer(rebasing: b[0..<n])
                sftp.send(FXP.WRITE, data: n, { $0.string(h); $0.u64(at); $0.u32(UInt32(n)); $0.raw(data) }) { [self] r in acked(x, r, "cannot write") }
            }
            nextOffset += UInt64(n)
        }
        closing = true
        if job.fsync && !sftp.hasExtension("fsync@openssh.com") {
            return fail(x, SSHError(.io, "cannot fsync \(job.remote): the server does not offer fsync@openssh.com", path: job.remote))
        }
        if job.fsync {
            outstanding += 1
            sftp.send(FXP.EXTENDED, { $0.string("fsync@openssh.com"); $0.string(h) }) { [self] r in acked(x, r, "cannot fsync") }
        }
        if keptMode != nil || times != nil {
            // The kept mode exactly (the server's umask applied at creation), and the times.
            var set = FileAttributes(mode: keptMode.map { UInt32($0) })
            if let (atime, mtime) = times { set.atime = atime; set.mtime = mtime }
            outstanding += 1
            sftp.send(FXP.FSETSTAT, { $0.string(h); set.encode(&$0) }) { [self] r in acked(x, r, "cannot set the attributes of") }
        }
        if let old = existing, old.kind == .file, old.uid != nil || old.gid != nil {
            // The owner and group too, where the server lets us: a refusal is not an error.
            let owner = FileAttributes(uid: old.uid, gid: old.gid)
            sftp.send(FXP.FSETSTAT, { $0.string(h); owner.encode(&$0) }) { [self] r in
                if case .success(.status(let code, _)) = r, code == FX.OK { ownerKept = true }
            }
        }
        outstanding += 1
        sftp.send(FXP.CLOSE, { $0.string(h) }) { [self] r in
            handle = nil
            acked(x, r, "cannot close")
        }
    }

    private func acked(_ x: Executor, _ r: Result<Reply, SSHError>, _ what: String) {
        outstanding -= 1
        guard !failed else { return }
        switch r {
        case .failure(let e): return fail(x, e)
        case .success(.status(let code, let msg)) where code != FX.OK:
            return fail(x, x.sftp.statusError(code, msg, what, path: job.remote))
        case .success(.status): break
        case .success(let other): return fail(x, x.sftp.unexpected(other, what, path: job.remote))
        }
        if outstanding == 0 && closing { rename(x) }
    }

    private func rename(_ x: Executor) {
        let sftp = x.sftp
        let done: (Result<Reply, SSHError>) -> Void = { [self] r in
            switch r {
            case .failure(let e): fail(x, e)
            case .success(.status(let code, _)) where code == FX.OK:
                tempCreated = false
                var a = FileAttributes(size: size, mode: UInt32(keptMode ?? mode) | 0o100000)
                if ownerKept { a.uid = existing?.uid; a.gid = existing?.gid }
                if let (atime, mtime) = times { a.atime = atime; a.mtime = mtime }
                x.finish(self, .success(a))
            case .success:
                // The target exists and the server's rename does not replace: `Transfer`
                // removes it and renames (its own temp file is written anew).
                failed = true
                sftp.fireAndForget(FXP.REMOVE) { $0.string(temp) }
                tempCreated = false
                x.handOver(self)
            }
        }
        if sftp.hasExtension("posix-rename@openssh.com") {
            sftp.send(FXP.EXTENDED, { $0.string("posix-rename@openssh.com"); $0.string(temp); $0.string(job.remote) }, done: done)
        } else {
            sftp.send(FXP.RENAME, { $0.string(temp); $0.string(job.remote) }, done: done)
        }
    }

    private func fail(_ x: Executor, _ e: Error) {
        guard !failed else { return }
        failed = true
        cleanup(x)
        x.finish(self, .failure(e))
    }

    private func cleanup(_ x: Executor) {
        guard x.sftp.isOpen else { return }
        if let h = handle { handle = nil; x.sftp.fireAndForget(FXP.CLOSE) { $0.string(h) } }
        if tempCreated {
            tempCreated = false
            x.cleanupsInFlight += 1
            sendRemove(x)
        } else if opening && !removeWhenOpened {
            // The server creates the temp file before it reads anything sent now: its answer
            // removes it (counted now, so `run` waits for it).
            removeWhenOpened = true
            x.cleanupsInFlight += 1
        }
    }

    override func abort(_ x: Executor) {
        failed = true
        cleanup(x)
    }
    /// The temp file's REMOVE, counted in `cleanupsInFlight` by the caller until it is answered
    /// (`run` waits for it), and kept through `abandonAll`.
    private func sendRemove(_ x: Executor) {
        x.sftp.send(FXP.REMOVE, keep: true, { $0.string(temp) }) { [weak x] _ in x?.cleanupsInFlight -= 1 }
    }

    override var debugState: String { "up \(job.remote) handle \(handle != nil) next \(nextOffset)/\(size) out \(outstanding) failed \(failed) closing \(closing)" }
}
