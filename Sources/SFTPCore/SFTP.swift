import CLibssh2
import Foundation

/// File attributes as the server reports them.
public struct FileAttributes: Equatable {
    public var size: UInt64?
    public var uid: UInt32?
    public var gid: UInt32?
    /// Full st_mode (type bits + permissions).
    public var mode: UInt32?
    public var atime: UInt64?
    public var mtime: UInt64?

    public init(size: UInt64? = nil, uid: UInt32? = nil, gid: UInt32? = nil, mode: UInt32? = nil, atime: UInt64? = nil, mtime: UInt64? = nil) {
        self.size = size; self.uid = uid; self.gid = gid; self.mode = mode; self.atime = atime; self.mtime = mtime
    }

    init(_ a: LIBSSH2_SFTP_ATTRIBUTES) {
        let f = a.flags
        if f & UInt(LIBSSH2_SFTP_ATTR_SIZE) != 0 { size = a.filesize }
        if f & UInt(LIBSSH2_SFTP_ATTR_UIDGID) != 0 { uid = UInt32(truncatingIfNeeded: a.uid); gid = UInt32(truncatingIfNeeded: a.gid) }
        if f & UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS) != 0 { mode = UInt32(truncatingIfNeeded: a.permissions) }
        if f & UInt(LIBSSH2_SFTP_ATTR_ACMODTIME) != 0 { atime = UInt64(a.atime); mtime = UInt64(a.mtime) }
    }

    public enum Kind: String { case file, dir, link, other }
    public var kind: Kind {
        guard let m = mode else { return .other }
        switch m & 0o170000 {
        case 0o100000: return .file
        case 0o040000: return .dir
        case 0o120000: return .link
        default: return .other
        }
    }
    public var isDir: Bool { kind == .dir }
}

/// One entry of a directory listing.
public struct DirEntry: Equatable {
    public var name: String
    public var longname: String
    public var attributes: FileAttributes
}

/// The SFTP subsystem over a Session; retains the session. Frees its channel on close/deinit.
public final class SFTP {
    public let session: Session
    public private(set) var raw: OpaquePointer?

    public init(session: Session) throws {
        self.session = session
        let s = try session.handle()
        guard let p = libssh2_sftp_init(s) else {
            throw session.error(libssh2_session_last_errno(s), "starting the SFTP subsystem")
        }
        raw = p
        LiveHandles.channels.add(1)
    }

    deinit { close() }

    /// A new connection (Session) with its SFTP channel; the session is closed if the channel
    /// cannot be started. `closeWithSession()` ends both.
    public static func connect(_ options: ConnectOptions) throws -> SFTP {
        let s = try Session(options)
        do { return try SFTP(session: s) } catch { s.close(); throw error }
    }

    /// Closes the channel, then its session.
    public func closeWithSession() {
        close()
        session.close()
    }

    /// Files opened on this channel and not closed yet (weakly held): closed with the channel,
    /// since libssh2_sftp_shutdown does not free their handles.
    private var openFiles: [ObjectIdentifier: WeakFile] = [:]
    final class WeakFile { weak var file: SFTPFile?; init(_ f: SFTPFile) { file = f } }
    func opened(_ f: SFTPFile) { openFiles[ObjectIdentifier(f)] = WeakFile(f) }
    func closed(_ f: SFTPFile) { openFiles[ObjectIdentifier(f)] = nil }

    public func close() {
        for w in openFiles.values { w.file?.release() }
        openFiles.removeAll()
        if let p = raw {
            raw = nil
            LiveHandles.channels.add(-1)
            if session.isOpen { libssh2_sftp_shutdown(p) }
        }
    }

    func handle() throws -> OpaquePointer {
        guard let p = raw, session.isOpen else { throw SSHError(.connection, "the connection is closed") }
        return p
    }

    /// Maps a failed libssh2 call to an SSHError; SFTP status codes give the kind.
    public func fail(_ rc: Int32, _ what: String, path: String?) -> SSHError {
        if rc == LIBSSH2_ERROR_SFTP_PROTOCOL, let p = raw {
            let status = libssh2_sftp_last_error(p)
            let kind = SFTPStatus.kind(status)
            let subject = path.map { "\(what) \($0)" } ?? what
            return SSHError(kind, "\(subject): \(SFTPStatus.text(status))", path: path, code: Int(status))
        }
        return session.error(rc, path.map { "\(what) \($0)" } ?? what, path: path)
    }

    func lastErrno() -> Int32 {
        guard let s = session.raw else { return LIBSSH2_ERROR_SOCKET_DISCONNECT }
        return libssh2_session_last_errno(s)
    }

    // MARK: attributes

    public func stat(_ path: String, followLinks: Bool = true) throws -> FileAttributes {
        let p = try handle()
        var a = LIBSSH2_SFTP_ATTRIBUTES()
        let rc = libssh2_sftp_stat_ex(p, path, UInt32(path.utf8.count), followLinks ? LIBSSH2_SFTP_STAT : LIBSSH2_SFTP_LSTAT, &a)
        if rc != 0 { throw fail(rc, followLinks ? "stat" : "lstat", path: path) }
        return FileAttributes(a)
    }

    /// stat that answers nil for a missing path instead of raising.
    public func statIfExists(_ path: String, followLinks: Bool = true) throws -> FileAttributes? {
        do { return try stat(path, followLinks: followLinks) } catch let e as SSHError where e.kind == .fileNotFound { return nil }
    }

    public func setstat(_ path: String, _ attrs: FileAttributes) throws {
        let p = try handle()
        var a = LIBSSH2_SFTP_ATTRIBUTES()
        if let m = attrs.mode { a.flags |= UInt(LIBSSH2_SFTP_ATTR_PERMISSIONS); a.permissions = UInt(m) }
        if attrs.uid != nil || attrs.gid != nil {
            a.flags |= UInt(LIBSSH2_SFTP_ATTR_UIDGID)
            a.uid = UInt(attrs.uid ?? 0); a.gid = UInt(attrs.gid ?? 0)
        }
        if let s = attrs.size { a.flags |= UInt(LIBSSH2_SFTP_ATTR_SIZE); a.filesize = s }
        if let m = attrs.mtime { a.flags |= UInt(LIBSSH2_SFTP_ATTR_ACMODTIME); a.mtime = UInt(m); a.atime = UInt(attrs.atime ?? m) }
        let rc = libssh2_sftp_stat_ex(p, path, UInt32(path.utf8.count), LIBSSH2_SFTP_SETSTAT, &a)
        if rc != 0 { throw fail(rc, "setstat", path: path) }
    }

    // MARK: directories

    public func list(_ path: String) throws -> [DirEntry] {
        let p = try handle()
        guard let h = libssh2_sftp_open_ex(p, path, UInt32(path.utf8.count), 0, 0, LIBSSH2_SFTP_OPENDIR) else {
            throw fail(lastErrno(), "cannot list", path: path)
        }
        defer { libssh2_sftp_close_handle(h) }
        var out: [DirEntry] = []
        let nameBuf = UnsafeMutablePointer<CChar>.allocate(capacity: 4096)
        let longBuf = UnsafeMutablePointer<CChar>.allocate(capacity: 4096)
        defer { nameBuf.deallocate(); longBuf.deallocate() }
        var guardCount = 0
        while guardCount < 50_000_000 {
            guardCount += 1
            var a = LIBSSH2_SFTP_ATTRIBUTES()
            let n = libssh2_sftp_readdir_ex(h, nameBuf, 4096, longBuf, 4096, &a)
            if n == 0 { break }
            if n < 0 { throw fail(Int32(n), "cannot list", path: path) }
            let name = String(decoding: UnsafeRawBufferPointer(start: nameBuf, count: Int(n)), as: UTF8.self)
            if name == "." || name == ".." { continue }
            out.append(DirEntry(name: name, longname: String(cString: longBuf), attributes: FileAttributes(a)))
        }
        return out
    }

    public func mkdir(_ path: String, mode: Int32 = 0o777) throws {
        let p = try handle()
        let rc = libssh2_sftp_mkdir_ex(p, path, UInt32(path.utf8.count), Int(mode))
        if rc != 0 {
            var e = fail(rc, "cannot create directory", path: path)
            // Servers answer a bare failure when it exists: check.
            if e.kind == .io, (try? statIfExists(path, followLinks: false)) ?? nil != nil {
                e.kind = .fileExists
                e.message = "cannot create directory \(path): it exists"
            }
            throw e
        }
    }

    public func rmdir(_ path: String) throws {
        let p = try handle()
        let rc = libssh2_sftp_rmdir_ex(p, path, UInt32(path.utf8.count))
        if rc != 0 { throw fail(rc, "cannot remove directory", path: path) }
    }

    public func unlink(_ path: String) throws {
        let p = try handle()
        let rc = libssh2_sftp_unlink_ex(p, path, UInt32(path.utf8.count))
        if rc != 0 { throw fail(rc, "cannot remove", path: path) }
    }

    /// Renames; with `overwrite`, an existing destination file is replaced (OpenSSH's SFTP v3
    /// rename refuses to: then the destination is removed and the rename retried).
    public func rename(_ src: String, _ dst: String, overwrite: Bool = false) throws {
        let p = try handle()
        let flags = Int(LIBSSH2_SFTP_RENAME_OVERWRITE | LIBSSH2_SFTP_RENAME_ATOMIC | LIBSSH2_SFTP_RENAME_NATIVE)
        var rc = libssh2_sftp_rename_ex(p, src, UInt32(src.utf8.count), dst, UInt32(dst.utf8.count), flags)
        if rc != 0 && overwrite, let existing = try statIfExists(dst, followLinks: false), !existing.isDir {
            try unlink(dst)
            rc = libssh2_sftp_rename_ex(p, src, UInt32(src.utf8.count), dst, UInt32(dst.utf8.count), flags)
        }
        if rc != 0 {
            var e = fail(rc, "cannot rename \(src) to", path: dst)
            if e.kind == .io, (try? statIfExists(dst, followLinks: false)) ?? nil != nil {
                e.kind = .fileExists
                e.message = "cannot rename \(src) to \(dst): it exists"
            }
            if e.kind == .fileNotFound, (try? statIfExists(src, followLinks: false)) ?? nil == nil { e.path = src }
            throw e
        }
    }

    private func symlinkCall(_ path: String, _ target: UnsafeMutablePointer<CChar>, _ len: UInt32, _ type: Int32) throws -> Int32 {
        let p = try handle()
        return libssh2_sftp_symlink_ex(p, path, UInt32(path.utf8.count), target, len, type)
    }

    /// Creates `linkpath` pointing at `target`.
    public func symlink(target: String, linkpath: String) throws {
        if try statIfExists(linkpath, followLinks: false) != nil {
            throw SSHError(.fileExists, "cannot create symlink \(linkpath): it exists", path: linkpath)
        }
        // OpenSSH's server reads (target, linkpath), the reverse of the draft; libssh2 sends its arguments in the order given.
        var t = Array(linkpath.utf8CString)
        let rc = try t.withUnsafeMutableBufferPointer { buf in
            try symlinkCall(target, buf.baseAddress!, UInt32(linkpath.utf8.count), LIBSSH2_SFTP_SYMLINK)
        }
        if rc == LIBSSH2_ERROR_SFTP_PROTOCOL {
            // Debian's libssh2 1.10 (security update) reads the request id as the status of a
            // SYMLINK reply (fixed upstream in libssh2 #1731): ask the server what happened.
            if let a = try statIfExists(linkpath, followLinks: false), a.kind == .link,
               (try? readlink(linkpath)) == target {
                return
            }
            throw try pathFailure("cannot create symlink", path: linkpath, parentOf: true)
        }
        if rc != 0 { throw fail(rc, "cannot create symlink", path: linkpath) }
    }

    private func pathQuery(_ path: String, _ type: Int32, _ what: String) throws -> String {
        var buf = [CChar](repeating: 0, count: 8192)
        let n = try buf.withUnsafeMutableBufferPointer { b in try symlinkCall(path, b.baseAddress!, UInt32(b.count), type) }
        // A failure status misread as an empty name (libssh2 1.10) is a failure too.
        if n == LIBSSH2_ERROR_SFTP_PROTOCOL || n == 0 { throw try pathFailure(what, path: path, parentOf: false) }
        if n < 0 { throw fail(n, what, path: path) }
        return String(decoding: buf.prefix(Int(n)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The error for a failed SYMLINK/READLINK/REALPATH, whose status this libssh2 misreads:
    /// FileNotFound when the path (or, for creation, its directory) is missing, else IOError.
    func pathFailure(_ what: String, path: String, parentOf: Bool) throws -> SSHError {
        var probe = path
        if parentOf {
            let dir = Paths.dirname(path)
            probe = dir.isEmpty ? "." : dir
        }
        if try statIfExists(probe, followLinks: false) == nil {
            return SSHError(.fileNotFound, "\(what) \(path): no such file", path: path, code: Int(LIBSSH2_FX_NO_SUCH_FILE))
        }
        if parentOf, try statIfExists(path, followLinks: false) != nil {
            return SSHError(.fileExists, "\(what) \(path): it exists", path: path)
        }
        return SSHError(.io, "\(what) \(path): the server refused", path: path)
    }

    public func readlink(_ path: String) throws -> String { try pathQuery(path, LIBSSH2_SFTP_READLINK, "cannot read link") }
    public func realpath(_ path: String) throws -> String { try pathQuery(path, LIBSSH2_SFTP_REALPATH, "cannot resolve") }

    // MARK: files

    public func open(_ path: String, flags: Int32, mode: Int32 = 0o644) throws -> SFTPFile {
        let p = try handle()
        guard let h = libssh2_sftp_open_ex(p, path, UInt32(path.utf8.count), UInt(flags), Int(mode), LIBSSH2_SFTP_OPENFILE) else {
            let what = flags & LIBSSH2_FXF_WRITE != 0 ? "cannot open for writing" : "cannot open"
            var e = fail(lastErrno(), what, path: path)
            if e.kind == .io, flags & LIBSSH2_FXF_WRITE == 0, let a = try? statIfExists(path), a.isDir {
                e.message = "cannot open \(path): is a directory"
            }
            throw e
        }
        let f = SFTPFile(sftp: self, handle: h, path: path)
        opened(f)
        return f
    }
}

/// An open remote file; retains its SFTP. Closed by close() or deinit.
public final class SFTPFile {
    public let sftp: SFTP
    public let path: String
    private var raw: OpaquePointer?

    init(sftp: SFTP, handle: OpaquePointer, path: String) {
        self.sftp = sftp
        self.raw = handle
        self.path = path
        LiveHandles.files.add(1)
    }
    deinit { release() }

    /// Frees the handle without reporting (deinit, or the channel closing under it). libssh2
    /// frees the handle's memory in close_handle even when the server cannot be told.
    func release() {
        guard let h = raw else { return }
        raw = nil
        LiveHandles.files.add(-1)
        sftp.closed(self)
        if sftp.raw != nil, sftp.session.isOpen { libssh2_sftp_close_handle(h) }
    }

    public var isOpen: Bool { raw != nil }

    func handle() throws -> OpaquePointer {
        guard let h = raw else { throw SSHError(.io, "attempt to use a closed file", path: path) }
        guard sftp.session.isOpen else { throw SSHError(.connection, "the connection is closed", path: path) }
        return h
    }

    /// Reads up to `count` bytes into `buffer`; 0 at end of file.
    public func read(into buffer: UnsafeMutableRawPointer, count: Int) throws -> Int {
        let h = try handle()
        let n = libssh2_sftp_read(h, buffer.assumingMemoryBound(to: CChar.self), count)
        if n < 0 { throw sftp.fail(Int32(n), "cannot read", path: path) }
        return n
    }

    /// Writes all of `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        let h = try handle()
        var off = 0
        var spins = 0
        while off < bytes.count {
            let n = libssh2_sftp_write(h, bytes.baseAddress!.advanced(by: off).assumingMemoryBound(to: CChar.self), bytes.count - off)
            if n < 0 { throw sftp.fail(Int32(n), "cannot write", path: path) }
            if n == 0 { spins += 1; if spins > 1000 { throw SSHError(.io, "cannot write \(path): the server accepts no data", path: path) } }
            off += n
        }
    }

    public func stat() throws -> FileAttributes {
        let h = try handle()
        var a = LIBSSH2_SFTP_ATTRIBUTES()
        let rc = libssh2_sftp_fstat_ex(h, &a, 0)
        if rc != 0 { throw sftp.fail(rc, "cannot stat", path: path) }
        return FileAttributes(a)
    }

    public func seek(_ offset: UInt64) throws { libssh2_sftp_seek64(try handle(), offset) }
    public func tell() throws -> UInt64 { libssh2_sftp_tell64(try handle()) }

    /// Closes; reports a failed close (it may mean the data did not all reach the disk).
    public func close() throws {
        guard let h = raw else { return }
        raw = nil
        LiveHandles.files.add(-1)
        sftp.closed(self)
        guard sftp.raw != nil, sftp.session.isOpen else { return }
        let rc = libssh2_sftp_close_handle(h)
        if rc != 0 { throw sftp.fail(rc, "cannot close", path: path) }
    }
}
