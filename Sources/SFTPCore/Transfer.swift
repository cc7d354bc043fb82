import CLibssh2
import Foundation

/// Progress report: bytes done, total. Throwing stops the transfer (the error propagates).
public typealias TransferProgress = (UInt64, UInt64) throws -> Void

/// Streaming transfers with large buffers (libssh2 pipelines as many 30 KB requests as the
/// buffer holds). Files appear under their final name only when complete: downloads go to a
/// hidden temp file beside the target, uploads to a hidden temp name on the server, then rename.
public enum Transfer {
    /// Buffer per read/write call; libssh2 keeps this many bytes of requests in flight.
    /// `SFTPLUA_BLOCK_SIZE` (bytes, 64 KiB-64 MiB) overrides it, for benchmarking.
    // nonisolated(unsafe): read from the environment once, at first use; never written after.
    nonisolated(unsafe) public static var blockSize: Int = {
        if let v = ProcessInfo.processInfo.environment["SFTPLUA_BLOCK_SIZE"], let n = Int(v), (65536...(64 << 20)).contains(n) { return n }
        return 1 << 20   // measured here: 1 MiB beat 256 KiB, 512 KiB, 2, 4, 8 and 16 MiB (docs/performance.md)
    }()

    /// Downloads `remote` into `local` atomically, over `channels` (the first is the caller's;
    /// a file of `rangeThreshold` or more is split across all of them). Returns the remote
    /// attributes. A file of `resumeThreshold` or more keeps its temp file and a journal
    /// (`.NAME.sftplua.part.json`) when the connection drops, and the next download of the same
    /// unchanged file resumes from there.
    @discardableResult
    public static func download(_ channels: Channels, _ job: TransferJob, progress: TransferProgress? = nil) throws -> FileAttributes {
        let sftp = channels.main
        let (remote, local, known, preserveMtime, fsync) = (job.remote, job.local, job.sourceAttributes, job.preserveMtime, job.fsync)
        let attrs = try known ?? sftp.stat(remote)
        if attrs.isDir { throw SSHError(.io, "cannot download \(remote): is a directory", path: remote) }
        guard let size = attrs.size, size >= resumeThreshold else {
            let file = try sftp.open(remote, flags: .read)
            defer { try? file.close() }
            return try writeLocalAtomically(local: local, resumable: false) { fd, _ in
                try stream(file, size: attrs.size, exact: known != nil && attrs.kind == .file, progress: progress) { chunk in try writeAll(fd, chunk, local) }
                return attrs
            } finish: { fd in
                try finishLocal(fd, attrs: attrs, preserveMtime: preserveMtime, fsync: fsync, path: local)
            }
        }
        return try writeLocalAtomically(local: local, resumable: true) { fd, temp in
            let journal = try downloadJournal(channels, fd: fd, path: temp + ".json", size: size, attrs: attrs, local: local)
            try progress?(journal.done, size)
            let report = CallerOnly(progress)
            try runRanges(channels, journal) { ch, _, from, to, landed in
                let file = try ch.open(remote, flags: .read)
                defer { try? file.close() }
                file.knownSize = to   // read ahead up to the range's end, not past it
                // Memory stays flat whatever the number of connections: at most 12 MiB of read-ahead in all.
                file.readAheadLimit = min(SFTPFile.maxReadAhead, max(2 << 20, (12 << 20) / channels.count))
                try receiveRange(file, into: fd, from: from, to: to, remote: remote, local: local, landed: landed) {
                    if ch === sftp { try report.value?(journal.done, size) }
                }
            }
            try progress?(size, size)
            journal.remove()
            return attrs
        } finish: { fd in
            try finishLocal(fd, attrs: attrs, preserveMtime: preserveMtime, fsync: fsync, path: local)
        }
    }

    /// The download's journal: the one beside the temp file when it is for this same remote file
    /// and the temp file has its full size (a resume), else a new one saved, the temp file
    /// cleared and sized, and the file split into ranges (several from `rangeThreshold` on).
    private static func downloadJournal(_ channels: Channels, fd: Int32, path jpath: String, size: UInt64,
                                        attrs: FileAttributes, local: String) throws -> JournalFile {
        var st = stat()
        if let j = ResumeJournal.load(jpath), j.size == size, j.mtime == (attrs.mtime ?? 0),
           fstat(fd, &st) == 0, UInt64(st.st_size) == size {
            return JournalFile(path: jpath, journal: j)      // the same file: resume
        }
        guard ftruncate(fd, 0) == 0, ftruncate(fd, off_t(size)) == 0 else { throw LocalError(errno, "cannot write", path: local) }
        let n = size >= rangeThreshold ? channels.count * rangesPerConnection : 1
        let journal = JournalFile(path: jpath, journal: ResumeJournal(size: size, mtime: attrs.mtime ?? 0, mtimeNanos: 0,
                                                                      ranges: ranges(size: size, n: n)))
        try journal.save()
        return journal
    }

    /// Reads bytes `from..<to` of the remote file through `file` into the same place of the
    /// local file `fd`, telling `landed` how far it got after each block.
    private static func receiveRange(_ file: SFTPFile, into fd: Int32, from: UInt64, to: UInt64, remote: String, local: String,
                                     landed: (UInt64) throws -> Void, report: () throws -> Void) throws {
        try file.seek(from)
        let buf = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 16)
        defer { buf.deallocate() }
        var off = from
        while off < to {
            let n = try file.read(into: buf, count: Int(min(UInt64(blockSize), to - off)))
            if n == 0 { throw SSHError(.io, "cannot read \(remote): the file shrank during the download", path: remote) }
            var w = 0
            while w < n {
                let r = pwrite(fd, buf.advanced(by: w), n - w, off_t(off) + off_t(w))
                if r < 0 { if errno == EINTR { continue }; throw LocalError(errno, "cannot write", path: local) }
                w += r
            }
            off += UInt64(n)
            try landed(off)
            try report()
        }
    }

    static func writeAll(_ fd: Int32, _ chunk: UnsafeRawBufferPointer, _ local: String) throws {
        var off = 0
        while off < chunk.count {
            let w = Foundation.write(fd, chunk.baseAddress!.advanced(by: off), chunk.count - off)
            if w < 0 {
                if errno == EINTR { continue }
                throw LocalError(errno, "cannot write", path: local)
            }
            off += w
        }
    }

    /// Writes a new local file through a hidden temp file beside `local` (`LocalTemp`): `body`
    /// fills the temp file's descriptor, `finish` sets its metadata, then it is renamed over
    /// `local`. On an error the temp file is removed and `local` is untouched; when `resumable`
    /// and the error is a dropped connection, Timeout or Ctrl-C, the temp file (and its journal)
    /// stay for a resume.
    static func writeLocalAtomically<R>(local: String, resumable: Bool, _ body: (Int32, String) throws -> R,
                                        finish: (Int32) throws -> Void) throws -> R {
        // Not truncated when resumable: a resumable download decides whether to keep what is there.
        let temp = try LocalTemp(local: local, truncate: !resumable)
        defer { temp.discard() }   // (also keeps it alive while `body` uses its descriptor)
        let result: R
        do {
            result = try body(temp.fd, temp.temp)
        } catch let e as SSHError where resumable && e.isResumable {
            temp.keep()
            throw e
        }
        try finish(temp.fd)
        try temp.install()
        return result
    }

    /// The umask, read once: reading it means setting it, which must not race with other threads.
    public static let processUmask: mode_t = { let m = umask(0o022); umask(m); return m }()

    /// Mode (what a new file gets here: 0666 & ~umask, as cp/sftp/paramiko do) and mtime.
    static func finishLocal(_ fd: Int32, attrs: FileAttributes, preserveMtime: Bool, fsync: Bool = false, path: String = "") throws {
        // An existing file keeps its mode; a new one gets the umask's (never the remote's).
        let st = path.isEmpty ? nil : LocalPath.info(path)
        if let st, st.st_mode & S_IFMT == S_IFREG { fchmod(fd, st.st_mode & 0o7777) } else { fchmod(fd, 0o666 & ~processUmask) }
        if preserveMtime, let m = attrs.mtime {
            var times = [timespec(tv_sec: Int(attrs.atime ?? m), tv_nsec: 0), timespec(tv_sec: Int(m), tv_nsec: 0)]
            futimens(fd, &times)
        }
        // `fsync`: the bytes are on the local disk before the file takes its name.
        if fsync, Foundation.fsync(fd) != 0 { throw LocalError(errno, "cannot fsync", path: path) }
    }

    /// Reads `file` to its end, handing each block to `sink`; returns the bytes read.
    /// libssh2 keeps a whole request's worth of reads in flight, so with a known `size` it is
    /// asked for what is left (at least 32 KiB, to see the end), not a full block for a small file.
    @discardableResult
    public static func stream(_ file: SFTPFile, size: UInt64?, exact: Bool = false, progress: TransferProgress? = nil,
                              sink: (UnsafeRawBufferPointer) throws -> Void) throws -> UInt64 {
        let total = size ?? 0
        var done: UInt64 = 0
        let buf = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 16)
        defer { buf.deallocate() }
        try progress?(0, total)
        if exact, let size { file.knownSize = size }
        while true {
            let left = total > done ? total - done : 0
            if exact, size != nil {
                // The size comes from a listing made for this copy: read exactly that much, in
                // requests that end at the end of the file, so no request comes back short (libssh2
                // would ask again) and no end-of-file probe costs another round trip.
                if left == 0 { break }
                try Interrupt.checkpoint()
                let n = try file.read(into: buf, count: Int(min(UInt64(blockSize), left)))
                if n == 0 { break }   // it shrank: what there is
                try sink(UnsafeRawBufferPointer(start: buf, count: n))
                done += UInt64(n)
                try progress?(done, max(total, done))
                continue
            }
            let want = size == nil ? blockSize : Int(min(UInt64(blockSize), max(32768, left + 1)))
            try Interrupt.checkpoint()
            let n = try file.read(into: buf, count: want)
            if n == 0 { break }
            try sink(UnsafeRawBufferPointer(start: buf, count: n))
            done += UInt64(n)
            try progress?(done, max(total, done))
        }
        return done
    }

    /// Where upload journals live: `$XDG_CACHE_HOME/sftplua/resume` or `$HOME/.cache/sftplua/resume`.
    static func uploadJournalPath(_ sftp: SFTP, remote: String) -> String {
        let env = ProcessInfo.processInfo.environment
        let base = env["XDG_CACHE_HOME"].map { $0 + "/sftplua/resume" } ?? sftp.session.options.home + "/.cache/sftplua/resume"
        try? FileManager.default.createDirectory(atPath: base, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let o = sftp.session.options
        let d = try? SHA256Digest()
        "\(o.user)@\(o.host):\(o.port):\(remote)".utf8CString.withUnsafeBytes { d?.update(UnsafeRawBufferPointer(rebasing: $0.dropLast())) }
        return base + "/" + String((d?.finish() ?? "journal").prefix(32)) + ".json"
    }

    /// A split upload (ranges written at once over several connections) that a server refuses
    /// with a plain failure (not a lost connection): the server cannot take writes out of order
    /// (rclone's VFS, a Go server over a sequential backend). Again as one stream, and so from
    /// then on for this connection.
    static func uploadSplitOrNot(_ channels: Channels, _ job: TransferJob, progress: TransferProgress?) throws -> FileAttributes {
        let sftp = channels.main
        let split = channels.count > 1 && sftp.acceptsOutOfOrderWrites && (localSize(job.local) ?? 0) >= rangeThreshold
        do { return try uploadOnce(channels, job, progress: progress) } catch let e as SSHError where split && e.kind == .io {
            sftp.acceptsOutOfOrderWrites = false
            sftp.session.log("put \(Paths.shown(job.remote)): the server refused writes out of order (\(e.message)); again as one stream")
            return try uploadOnce(Channels(sftp), job, progress: progress)
        }
    }

    /// Uploads the local file `local` to `remote` atomically, over `channels` (the first is the
    /// caller's; a file of `rangeThreshold` or more is split across all of them). Returns the new
    /// remote attributes. A file of `resumeThreshold` or more keeps its remote temp file after a
    /// dropped connection, Timeout or Ctrl-C (with a journal under ~/.cache/sftplua/resume), and
    /// the next upload of the same unchanged file to the same place resumes there.
    @discardableResult
    public static func upload(_ channels: Channels, _ job: TransferJob, progress: TransferProgress? = nil) throws -> FileAttributes {
        do { return try uploadSplitOrNot(channels, job, progress: progress) } catch let refused as RenameRefused {
            channels.main.session.log("put \(Paths.shown(job.remote)): the directory lets us write the file but not replace it; writing it in place")
            var j = job
            j.inPlace = true
            do { return try uploadOnce(channels, j, progress: progress) } catch is RenameRefused { throw refused.error }
        }
    }

    /// A refused rename where the target stays: `upload` writes the file in place instead.
    struct RenameRefused: Error { let error: SSHError }

    /// One upload of a local file (`upload` tries it again as one stream, or in place): a small
    /// file or a pipe streams through a temp file, a large regular file goes in resumable ranges.
    static func uploadOnce(_ channels: Channels, _ job: TransferJob, progress: TransferProgress? = nil) throws -> FileAttributes {
        let sftp = channels.main
        let job = try resolved(sftp, job)
        let fd = LocalPath.open(job.local, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw LocalError(errno, "cannot read", path: job.local) }
        defer { Foundation.close(fd) }
        let source = try UploadSource(fd: fd, path: job.local)
        let mtime = job.preserveMtime ? source.times : nil
        guard source.isRegular, source.size >= resumeThreshold else {
            return try uploadStreamed(sftp, job, source, mtime: mtime, progress: progress)
        }
        return try uploadResumable(channels, job, source, mtime: mtime, progress: progress)
    }

    /// The local file an upload sends (open as `fd`), and what its stat said.
    private struct UploadSource: Sendable {
        let fd: Int32
        let path: String
        let size: UInt64
        let mode: Int32
        let isRegular: Bool
        /// Access and modification times (seconds), for `preserveMtime`.
        let times: (UInt64, UInt64)
        /// Modification time (seconds, nanoseconds): tells this version of the file from another.
        let identity: (UInt64, UInt64)

        /// Reads the stat of the open `fd`; a directory is an error.
        init(fd: Int32, path: String) throws {
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw LocalError(errno, "cannot read", path: path) }
            if st.st_mode & S_IFMT == S_IFDIR { throw LocalError(.os, "cannot upload \(path): is a directory", path: path, errno: EISDIR) }
            self.fd = fd
            self.path = path
            size = UInt64(max(0, st.st_size))
            mode = Int32(st.st_mode & 0o777)
            isRegular = st.st_mode & S_IFMT == S_IFREG
            times = (UInt64(st.st_atim.tv_sec), UInt64(st.st_mtim.tv_sec))
            identity = (UInt64(st.st_mtim.tv_sec), UInt64(st.st_mtim.tv_nsec))
        }

        /// The next bytes of the file (0 at its end), read again when a signal interrupts.
        func read(into buf: UnsafeMutableRawPointer, count: Int) throws -> Int {
            while true {
                let n = Foundation.read(fd, buf, count)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw LocalError(errno, "cannot read", path: path) }
                return n
            }
        }
    }

    /// A small file or one that is not regular (a pipe, a device): one stream, no journal.
    private static func uploadStreamed(_ sftp: SFTP, _ job: TransferJob, _ source: UploadSource, mtime: (UInt64, UInt64)?,
                                       progress: TransferProgress?) throws -> FileAttributes {
        var small = UploadPlan(mode: source.mode, mtime: mtime)
        small.retryInPlace = true
        return try upload(sftp, job, size: source.size, plan: small, progress: progress) { buf, count in
            try source.read(into: buf, count: count)
        }
    }

    /// A large regular file: its journal found (an interrupted upload of this same version is
    /// resumed) and its ranges sent into a temp name that carries the source's identity, so
    /// that another file's upload to the same target never writes into what this one resumes.
    private static func uploadResumable(_ channels: Channels, _ job: TransferJob, _ source: UploadSource,
                                        mtime: (UInt64, UInt64)?, progress: TransferProgress?) throws -> FileAttributes {
        let sftp = channels.main
        let (remote, size, identity) = (job.remote, source.size, source.identity)
        let jpath = uploadJournalPath(sftp, remote: remote)
        var resume: ResumeJournal?
        if let j = ResumeJournal.load(jpath), j.size == size, j.mtime == identity.0, j.mtimeNanos == identity.1 { resume = j }
        let key = shortHash("\(size):\(identity.0):\(identity.1)").prefix(10)
        var plan = UploadPlan(mode: source.mode, mtime: mtime, resume: resume != nil, keepOnDrop: true, tempKey: String(key),
                              minResumeSize: resume.map { $0.ranges.map { $0[2] }.max() ?? 0 } ?? 0)
        plan.retryInPlace = true
        return try uploadAtomically(sftp, job, plan) { first, temp, resuming in
            let journal = try uploadJournal(channels, path: jpath, resume: resuming ? resume : nil, source)
            try progress?(journal.done, size)
            try sendRanges(channels, first: first, temp: temp, source, journal, progress: progress)
            try progress?(size, size)
            return (size, {
                journal.remove()
                removeStaleTemps(sftp, remote: remote, keeping: temp)
            })
        }
    }

    /// The upload's journal: `resume` (the reopened temp file's), else a new one saved (any old
    /// one removed) with the file split into ranges, several only where the server takes writes
    /// out of order.
    private static func uploadJournal(_ channels: Channels, path jpath: String, resume: ResumeJournal?,
                                      _ source: UploadSource) throws -> JournalFile {
        if let resume { return JournalFile(path: jpath, journal: resume) }
        Foundation.unlink(jpath)
        let size = source.size
        let n = size >= rangeThreshold && channels.main.acceptsOutOfOrderWrites ? channels.count * rangesPerConnection : 1
        let journal = JournalFile(path: jpath, journal: ResumeJournal(size: size, mtime: source.identity.0, mtimeNanos: source.identity.1,
                                                                      ranges: ranges(size: size, n: n)))
        try journal.save()
        return journal
    }

    /// Sends the journal's unfinished ranges into `temp` (open on the caller's connection as
    /// `first`), over every channel where the server takes writes out of order, else over the
    /// caller's alone. A failure that cannot be resumed removes the journal.
    private static func sendRanges(_ channels: Channels, first: SFTPFile, temp: String, _ source: UploadSource,
                                   _ journal: JournalFile, progress: TransferProgress?) throws {
        let sftp = channels.main
        let size = source.size
        let report = CallerOnly(progress)
        do {
            try runRanges(sftp.acceptsOutOfOrderWrites ? channels : Channels(sftp), journal) { ch, _, from, to, landed in
                let file = ch === sftp ? first : try ch.open(temp, flags: .write)
                defer { if ch !== sftp { try? file.close() } }
                try sendRange(source, through: file, from: from, to: to, landed: landed) {
                    if ch === sftp { try report.value?(journal.done, size) }
                }
            }
        } catch let e as SSHError where e.isResumable {
            throw e
        } catch {
            journal.remove()
            throw error
        }
    }

    /// Sends bytes `from..<to` of the source through `file`, telling `landed` what the server
    /// has acknowledged so far, and the whole range once every write of it is acknowledged.
    private static func sendRange(_ source: UploadSource, through file: SFTPFile, from: UInt64, to: UInt64,
                                  landed: (UInt64) throws -> Void, report: () throws -> Void) throws {
        try file.seek(from)
        let buf = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 16)
        defer { buf.deallocate() }
        var off = from
        while off < to {
            let n = pread(source.fd, buf, Int(min(UInt64(blockSize), to - off)), off_t(off))
            if n < 0 { if errno == EINTR { continue }; throw LocalError(errno, "cannot read", path: source.path) }
            if n == 0 { throw LocalError(.os, "cannot read \(source.path): the file shrank during the upload", path: source.path) }
            try file.write(UnsafeRawBufferPointer(start: buf, count: n))
            off += UInt64(n)
            // The journal claims only what the server acknowledged (writes go out ahead of
            // their acknowledgements).
            try landed(max(from, file.acknowledgedThrough))
            try report()
        }
        // Every write of the range acknowledged (a failure surfaces here, on any connection),
        // then the range is complete.
        try file.flushWrites()
        try landed(to)
    }

    /// Temp files that interrupted uploads of other versions of the same file left beside
    /// `remote` (their names carry another source identity). Best effort.
    static func removeStaleTemps(_ sftp: SFTP, remote: String, keeping: String) {
        let slash = remote.lastIndex(of: "/")
        let dir = slash.map { String(remote[...$0]) } ?? ""
        let base = slash.map { String(remote[remote.index(after: $0)...]) } ?? remote
        guard let entries = try? sftp.list(dir.isEmpty ? "." : dir) else { return }
        let head = ".\(base).", tail = "sftplua.part"
        for e in entries where dir + e.name != keeping && e.name.hasPrefix(head) && e.name.hasSuffix(tail)
            && e.name.utf8.count >= head.utf8.count + tail.utf8.count {
            // Exactly ".BASE.sftplua.part" or ".BASE.<10 hex digits>.sftplua.part": never the temp
            // of another file whose name merely starts with BASE.
            let middle = e.name.dropFirst(head.count).dropLast(tail.count)
            let isKey = middle.count == 11 && middle.hasSuffix(".") && middle.dropLast().allSatisfy { $0.isHexDigit && !$0.isUppercase }
            if middle.isEmpty || isKey { try? sftp.unlink(dir + e.name) }
        }
    }

    /// Uploads what `source` yields (0 = end) to `remote` through a temp name.
    @discardableResult
    public static func upload(_ sftp: SFTP, _ job: TransferJob, size: UInt64?, plan: UploadPlan = UploadPlan(),
                              progress: TransferProgress? = nil,
                              source: (UnsafeMutableRawPointer, Int) throws -> Int) throws -> FileAttributes {
        try uploadAtomically(sftp, job, plan) { file, _, _ in
            let buf = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 16)
            defer { buf.deallocate() }
            var done: UInt64 = 0
            let total = size ?? 0
            try progress?(0, total)
            while true {
                try Interrupt.checkpoint()
                let n = try source(buf, blockSize)
                if n == 0 { break }
                try file.write(UnsafeRawBufferPointer(start: buf, count: n))
                done += UInt64(n)
                try progress?(done, max(total, done))
            }
            return (done, {})
        }
    }

    /// Copies the remote file `src` to `dst` on the same server, through a temp name beside
    /// `dst` and an atomic rename, keeping `src`'s permission bits. The server copies the bytes
    /// itself with `copy-data` where it offers it; otherwise they stream through the client
    /// (read-ahead and write-behind both pipelined).
    @discardableResult
    public static func remoteCopy(_ sftp: SFTP, from src: String, to dst: String) throws -> FileAttributes {
        // A file onto itself (the same path, through `..` or a symlink) is refused, as cp does:
        // where the copy must be written in place (a drop folder) it would truncate its source.
        // (One round trip for a new `dst`: REALPATH of a missing file fails, and src is not asked.)
        if let d = try realpathIfAny(sftp, dst), let s = try realpathIfAny(sftp, src), d == s {
            throw SSHError(.io, "cannot copy \(src) to \(dst): they are the same file", path: dst)
        }
        let source = try sftp.open(src, flags: .read)
        defer { try? source.close() }
        let attrs = try source.stat()
        if attrs.isDir { throw SSHError(.io, "cannot copy \(src): is a directory", path: src) }
        let size = attrs.size
        let job = TransferJob(.upload, remote: dst, local: src, preserveMtime: false, confirm: size != nil)
        let plan = UploadPlan(mode: Int32((attrs.mode ?? 0o644) & 0o7777))
        return try uploadAtomically(sftp, job, plan) { target, _, _ in
            if sftp.hasExtension("copy-data") {
                let (from, to) = (source.handle, target.handle)
                let r = try sftp.call(FXP.EXTENDED) { w in
                    w.string("copy-data"); w.string(from); w.u64(0); w.u64(0); w.string(to); w.u64(0)
                }
                try sftp.expectOK(r, "cannot copy \(src) to", path: dst)
                return (size ?? 0, {})
            }
            source.knownSize = attrs.kind == .file ? size : nil
            let done = try stream(source, size: size, exact: attrs.kind == .file && size != nil) { chunk in try target.write(chunk) }
            return (done, {})
        }
    }

    /// REALPATH of `path`, or nil where the server cannot give one (no such file, say). Ctrl-C,
    /// a timeout or a lost connection are errors, not a nil.
    static func realpathIfAny(_ sftp: SFTP, _ path: String) throws -> String? {
        do { return try sftp.realpath(path) } catch let e as SSHError where ![.interrupted, .timeout, .connection].contains(e.kind) {
            return nil
        }
    }

    /// Where an upload to `remote` really goes, and what is there now: a symlink is followed
    /// (through links, 40 deep at most) to the file it names, so the link stays a link; a
    /// directory is an error.
    static func uploadTarget(_ sftp: SFTP, _ remote: String) throws -> (String, FileAttributes?) {
        var path = remote
        for _ in 0..<40 {
            guard let a = try sftp.statIfExists(path, followLinks: false) else { return (path, nil) }
            if a.isDir { throw SSHError(.io, "cannot upload to \(remote): is a directory", path: remote) }
            if a.kind != .link { return (path, a) }
            let t = try sftp.readlink(path)
            path = t.hasPrefix("/") ? t : Paths.join(Paths.dirname(path), t)
        }
        throw SSHError(.io, "cannot upload to \(remote): too many levels of symbolic links", path: remote)
    }

    /// The job with its target resolved (`uploadTarget`) unless the caller listed it already.
    static func resolved(_ sftp: SFTP, _ job: TransferJob) throws -> TransferJob {
        if job.targetChecked && job.existing?.kind != .link { return job }
        var j = job
        (j.remote, j.existing) = try uploadTarget(sftp, job.remote)
        j.targetChecked = true
        if j.remote != job.remote { sftp.session.log("put \(Paths.shown(job.remote)): a symlink to \(Paths.shown(j.remote)), which gets the content") }
        return j
    }

    /// How an upload's temp file is made: the new file's mode and times, and whether an
    /// interrupted upload's temp (named with `tempKey`, at least `minResumeSize` long) is
    /// resumed and kept after a drop.
    public struct UploadPlan {
        public var mode: Int32 = 0o644
        public var mtime: (UInt64, UInt64)?
        public var resume = false
        public var keepOnDrop = false
        public var tempKey: String?
        public var minResumeSize: UInt64 = 0
        /// The caller can send the file again in place (it has the local file, not a one-shot
        /// stream): a refused rename over a file that stays becomes `RenameRefused`.
        var retryInPlace = false
        public init(mode: Int32 = 0o644, mtime: (UInt64, UInt64)? = nil, resume: Bool = false, keepOnDrop: Bool = false,
                    tempKey: String? = nil, minResumeSize: UInt64 = 0) {
            self.mode = mode; self.mtime = mtime; self.resume = resume; self.keepOnDrop = keepOnDrop
            self.tempKey = tempKey; self.minResumeSize = minResumeSize
        }
    }

    /// Creates (or, with `plan.resume`, reopens) the hidden temp file beside `job.remote`, lets
    /// `body` write it (it returns the bytes written and what to do once renamed), closes it
    /// (every write acknowledged), checks its size (`job.confirm`), sets the mtime, flushes it to
    /// disk (`job.fsync`), and renames it into place (atomically where the server offers
    /// posix-rename). On an error the temp file is removed and the target is untouched, except
    /// after a dropped connection, Timeout or Ctrl-C when the body keeps a journal (large files):
    /// then the temp file stays to be resumed.
    static func uploadAtomically(_ sftp: SFTP, _ job: TransferJob, _ plan: UploadPlan,
                                 _ body: (SFTPFile, String, Bool) throws -> (UInt64, () -> Void)) throws -> FileAttributes {
        // `resolved` checks the target (a directory there is an error) and marks it checked.
        let job = try resolved(sftp, job)
        // An existing file keeps its permission bits (and, below, its owner where allowed).
        let kept = job.existing?.kind == .file ? job.existing?.mode.map { Int32($0 & 0o7777) } : nil
        let mode = kept ?? plan.mode
        let temp = try uploadTempPath(job.remote, key: plan.tempKey)
        let written = try openUploadFile(sftp, job, plan, mode: mode, temp: temp)
        let pending = PendingUpload(sftp, written)
        defer { pending.cleanUp() }
        let done: UInt64
        let after: () -> Void
        do {
            (done, after) = try body(written.file, written.path, written.resuming)
        } catch let e as SSHError where e.isResumable && plan.keepOnDrop && !written.inPlace {
            pending.keep = true
            throw e
        }
        if job.fsync { try written.file.fsync() }
        try written.file.close()
        var attrs = try confirmedAttributes(sftp, job, written, sent: done, mode: mode)
        if written.inPlace {
            setTimesInPlace(sftp, job.remote, plan.mtime, &attrs)
            pending.renamed = true
            after()
            attrs.inplace = true
            return attrs
        }
        try carryOverAttributes(sftp, job, temp: temp, kept: kept, mtime: plan.mtime, &attrs)
        try renameIntoPlace(sftp, job, plan, pending)
        pending.renamed = true
        after()
        return attrs
    }

    /// The hidden temp name an upload to `remote` writes, beside it (an error when `remote`
    /// ends in "/": it names no file).
    private static func uploadTempPath(_ remote: String, key: String?) throws -> String {
        guard let temp = tempPath(beside: remote, key: key) else {
            throw SSHError(.argument, "remote path \(remote) names a directory, not a file", path: remote)
        }
        return temp
    }

    /// The open remote file an upload writes: the temp file, or (`inPlace`) the target itself;
    /// `resuming` when an interrupted upload's temp file was reopened to go on.
    private struct UploadFile {
        let file: SFTPFile
        let path: String
        var inPlace = false
        var resuming = false
    }

    /// Decides what the upload writes: the target itself when an earlier rename was refused
    /// (`job.inPlace`), else the temp file reopened to resume, else a fresh temp file (or, in a
    /// drop folder that refuses new names, the target in place).
    private static func openUploadFile(_ sftp: SFTP, _ job: TransferJob, _ plan: UploadPlan, mode: Int32,
                                       temp: String) throws -> UploadFile {
        if job.inPlace {
            // The rename was refused before (a sticky directory): the file itself, in place.
            return UploadFile(file: try sftp.open(job.remote, flags: [.write, .truncate]), path: job.remote, inPlace: true)
        }
        if let file = try reopenToResume(sftp, plan, temp: temp) {
            return UploadFile(file: file, path: temp, resuming: true)
        }
        do {
            return UploadFile(file: try createTempFile(sftp, temp: temp, mode: mode), path: temp)
        } catch let e as SSHError {
            return UploadFile(file: try openInDropFolder(sftp, job, temp: temp, refused: e), path: job.remote, inPlace: true)
        }
    }

    /// The temp file an interrupted upload left, opened to write on at its end, when the plan
    /// resumes and the server allows it; nil to start afresh.
    private static func reopenToResume(_ sftp: SFTP, _ plan: UploadPlan, temp: String) throws -> SFTPFile? {
        // Resuming writes into the temp file without truncating it, at its end: only where the
        // server keeps a file opened so and takes writes at an offset (not rclone's).
        guard plan.resume, sftp.acceptsOutOfOrderWrites, sftp.writeOpenKeepsFile != false,
              let t = try sftp.statIfExists(temp, followLinks: false), t.kind == .file, (t.size ?? 0) >= plan.minResumeSize
        else { return nil }
        return try? sftp.open(temp, flags: .write)
    }

    /// A fresh temp file: exclusive create, so that nothing planted under the temp name (a
    /// symlink above all) is written through. Something in the way is removed first when it is
    /// not a regular file, and a leftover regular file is truncated.
    private static func createTempFile(_ sftp: SFTP, temp: String, mode: Int32) throws -> SFTPFile {
        do {
            return try sftp.open(temp, flags: [.write, .create, .exclusive], mode: mode)
        } catch let first as SSHError {
            guard first.kind != .connection, first.kind != .timeout, first.kind != .interrupted,
                  let there = try sftp.statIfExists(temp, followLinks: false) else { throw first }
            if there.kind != .file { try sftp.unlink(temp) }
            return try sftp.open(temp, flags: [.write, .create, .truncate], mode: mode)
        }
    }

    /// After the temp file could not be made (`refused`, told about the target, not the temp
    /// name): in a drop folder (no new names allowed, but the file there may be written), unless
    /// `atomic = true`, the target opened to be written in place (as pysftp does); else the error.
    private static func openInDropFolder(_ sftp: SFTP, _ job: TransferJob, temp: String, refused: SSHError) throws -> SFTPFile {
        var e = refused
        let remote = job.remote
        e.path = remote
        e.message = e.message.replacingOccurrences(of: temp, with: remote)
        guard e.kind == .permissionDenied, job.atomic != true, job.existing?.kind == .file,
              let f = try? sftp.open(remote, flags: [.write, .truncate]) else { throw e }
        sftp.session.log("put \(Paths.shown(remote)): the directory refuses new files (no temp name); writing the file in place")
        return f
    }

    /// What becomes of an upload's file if it stops before the rename: closed, and the temp file
    /// removed unless it is `keep` (to resume, or the only copy left) or is the target itself.
    private final class PendingUpload {
        let sftp: SFTP
        let written: UploadFile
        var keep = false
        var renamed = false
        init(_ sftp: SFTP, _ written: UploadFile) { self.sftp = sftp; self.written = written }

        func cleanUp() {
            guard !renamed else { return }
            try? written.file.close()
            if !keep && !written.inPlace { try? sftp.unlink(written.path) }
        }
    }

    /// The written file's attributes, its size checked against the `sent` bytes: taken from the
    /// acknowledged writes of a batch (no round trip), else from one stat of the file.
    private static func confirmedAttributes(_ sftp: SFTP, _ job: TransferJob, _ written: UploadFile, sent: UInt64,
                                            mode: Int32) throws -> FileAttributes {
        if job.acksConfirm && !written.resuming {
            // Batches: every write was acknowledged by the server (file.write returns only then),
            // which confirms the bytes without a stat round trip per file.
            return FileAttributes(size: sent, mode: UInt32(mode) | 0o100000)
        }
        // One stat serves both the size check and the result (a rename keeps the attributes).
        let attrs = try sftp.stat(written.path)
        if job.confirm, let s = attrs.size, s != sent {
            throw SSHError(.io, "upload of \(job.remote) not confirmed: the server has \(s) bytes, \(sent) were sent", path: job.remote)
        }
        return attrs
    }

    /// A file written in place keeps its mode and owner (the same file); its times are set
    /// where the server allows, else that is logged.
    private static func setTimesInPlace(_ sftp: SFTP, _ remote: String, _ mtime: (UInt64, UInt64)?, _ attrs: inout FileAttributes) {
        guard let (atime, m) = mtime else { return }
        if (try? sftp.setstat(remote, FileAttributes(atime: atime, mtime: m))) != nil {
            attrs.atime = atime; attrs.mtime = m
        } else {
            sftp.session.log("put \(Paths.shown(remote)): written in place; the server does not let us set its times (not our file)")
        }
    }

    /// Gives the temp file what the replaced file had: the kept mode exactly (the server's
    /// umask applied at creation), the times, and the owner and group where the server lets us.
    private static func carryOverAttributes(_ sftp: SFTP, _ job: TransferJob, temp: String, kept: Int32?,
                                            mtime: (UInt64, UInt64)?, _ attrs: inout FileAttributes) throws {
        if kept != nil || mtime != nil {
            var set = FileAttributes(mode: kept.map { UInt32($0) })
            if let (atime, m) = mtime { set.atime = atime; set.mtime = m }
            try sftp.setstat(temp, set)
            if let k = kept { attrs.mode = (attrs.mode ?? 0o100000) & ~0o7777 | UInt32(k) }
            if let (atime, m) = mtime { attrs.atime = atime; attrs.mtime = m }
        }
        if let old = job.existing, old.kind == .file, old.uid != nil || old.gid != nil, old.uid != attrs.uid || old.gid != attrs.gid {
            // The owner and group too, where the server lets us (root, or a group we are in).
            if (try? sftp.setstat(temp, FileAttributes(uid: old.uid ?? attrs.uid, gid: old.gid ?? attrs.gid))) != nil {
                attrs.uid = old.uid ?? attrs.uid; attrs.gid = old.gid ?? attrs.gid
            }
        }
    }

    /// Renames the temp file over the target. Refused with the target still there: the error
    /// (the temp file goes), or `RenameRefused` when the caller can write the file in place
    /// instead. Any other failure keeps the temp file, which may be the only copy left.
    private static func renameIntoPlace(_ sftp: SFTP, _ job: TransferJob, _ plan: UploadPlan, _ pending: PendingUpload) throws {
        let (temp, remote) = (pending.written.path, job.remote)
        do {
            try sftp.rename(temp, remote, overwrite: true)
        } catch let e as SSHError where e.kind != .connection && e.kind != .timeout && e.kind != .interrupted
                    && (try? sftp.statIfExists(remote, followLinks: false)) ?? nil != nil {
            // The target is still there, untouched: the temp file goes. A directory that lets us
            // write the file but not replace it (a sticky one) gets the file written in place.
            if plan.retryInPlace, e.kind == .permissionDenied, job.atomic != true, job.existing?.kind == .file, !job.inPlace {
                throw RenameRefused(error: e)
            }
            throw e
        } catch {
            // The target may already be gone (an overwrite unlinks it first): the complete temp
            // file is then the only copy, so it stays.
            pending.keep = true
            throw error
        }
    }
}
