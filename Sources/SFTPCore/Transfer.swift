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
    nonisolated(unsafe) public static var blockSize: Int = {
        if let v = ProcessInfo.processInfo.environment["SFTPLUA_BLOCK_SIZE"], let n = Int(v), (65536...(64 << 20)).contains(n) { return n }
        return 1 << 20   // measured here: 1 MiB beat 256 KiB, 512 KiB, 2, 4, 8 and 16 MiB (docs/performance.md)
    }()

    static func tempName(for name: String) -> String {
        ".\(name).sftplua-\(String(UInt32.random(in: 0...UInt32.max), radix: 36)).part"
    }

    /// Downloads `remote` into `local` atomically. Returns the remote attributes.
    @discardableResult
    public static func download(_ sftp: SFTP, remote: String, local: String, preserveMtime: Bool = false,
                                known: FileAttributes? = nil, progress: TransferProgress? = nil) throws -> FileAttributes {
        let attrs = try known ?? sftp.stat(remote)
        if attrs.isDir { throw SSHError(.io, "cannot download \(remote): is a directory", path: remote) }
        let file = try sftp.open(remote, flags: LIBSSH2_FXF_READ)
        defer { try? file.close() }
        return try writeLocalAtomically(local: local) { fd in
            try stream(file, size: attrs.size, progress: progress) { chunk in
                var off = 0
                while off < chunk.count {
                    let w = Foundation.write(fd, chunk.baseAddress!.advanced(by: off), chunk.count - off)
                    if w < 0 {
                        if errno == EINTR { continue }
                        throw SSHError.local(errno, "cannot write", path: local)
                    }
                    off += w
                }
            }
            return attrs
        } finish: { fd in
            try finishLocal(fd, attrs: attrs, preserveMtime: preserveMtime)
        }
    }

    /// Writes a new local file through a hidden temp file beside `local`: `body` fills the temp
    /// file's descriptor, `finish` sets its metadata, then it is renamed over `local`. On any
    /// error the temp file is removed and `local` is untouched.
    static func writeLocalAtomically<R>(local: String, _ body: (Int32) throws -> R,
                                        finish: (Int32) throws -> Void) throws -> R {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: local, isDirectory: &isDir), isDir.boolValue {
            throw SSHError(.os, "cannot write \(local): is a directory", path: local, code: Int(EISDIR))
        }
        let dir = Paths.dirname(local)
        let temp = (dir.isEmpty ? "" : dir + "/") + tempName(for: Paths.basename(local))
        let fd = Foundation.open(temp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw SSHError.local(errno, "cannot write", path: local) }
        var closed = false
        var done = false
        defer {
            if !closed { Foundation.close(fd) }
            if !done { Foundation.unlink(temp) }
        }
        let result = try body(fd)
        try finish(fd)
        closed = true
        if Foundation.close(fd) != 0 { throw SSHError.local(errno, "cannot write", path: local) }
        if Foundation.rename(temp, local) != 0 { throw SSHError.local(errno, "cannot write", path: local) }
        done = true
        return result
    }

    /// Mode (what a new file gets here: 0666 & ~umask, as cp/sftp/paramiko do) and mtime.
    static func finishLocal(_ fd: Int32, attrs: FileAttributes, preserveMtime: Bool) throws {
        let mask = umask(0); umask(mask)
        fchmod(fd, 0o666 & ~mask)
        if preserveMtime, let m = attrs.mtime {
            var times = [timespec(tv_sec: Int(attrs.atime ?? m), tv_nsec: 0), timespec(tv_sec: Int(m), tv_nsec: 0)]
            futimens(fd, &times)
        }
    }

    /// Reads `file` to its end, handing each block to `sink`; returns the bytes read.
    /// libssh2 keeps a whole request's worth of reads in flight, so with a known `size` it is
    /// asked for what is left (at least 32 KiB, to see the end), not a full block for a small file.
    @discardableResult
    public static func stream(_ file: SFTPFile, size: UInt64?, progress: TransferProgress? = nil,
                              sink: (UnsafeRawBufferPointer) throws -> Void) throws -> UInt64 {
        let total = size ?? 0
        var done: UInt64 = 0
        let buf = UnsafeMutableRawPointer.allocate(byteCount: blockSize, alignment: 16)
        defer { buf.deallocate() }
        try progress?(0, total)
        while true {
            let left = total > done ? total - done : 0
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

    /// Uploads the local file `local` to `remote` atomically. Returns the new remote attributes.
    @discardableResult
    public static func upload(_ sftp: SFTP, local: String, remote: String, preserveMtime: Bool = false,
                              confirm: Bool = true, targetChecked: Bool = false,
                              progress: TransferProgress? = nil) throws -> FileAttributes {
        let fd = Foundation.open(local, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SSHError.local(errno, "cannot read", path: local) }
        defer { Foundation.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SSHError.local(errno, "cannot read", path: local) }
        if st.st_mode & S_IFMT == S_IFDIR { throw SSHError(.os, "cannot upload \(local): is a directory", path: local, code: Int(EISDIR)) }
        return try upload(sftp, remote: remote, size: UInt64(st.st_size), mode: Int32(st.st_mode & 0o777),
                          mtime: preserveMtime ? (UInt64(st.st_atim.tv_sec), UInt64(st.st_mtim.tv_sec)) : nil,
                          confirm: confirm, targetChecked: targetChecked, progress: progress) { buf, count in
            while true {
                let n = Foundation.read(fd, buf, count)
                if n < 0 && errno == EINTR { continue }
                if n < 0 { throw SSHError.local(errno, "cannot read", path: local) }
                return n
            }
        }
    }

    /// Uploads what `source` yields (0 = end) to `remote` through a temp name.
    @discardableResult
    public static func upload(_ sftp: SFTP, remote: String, size: UInt64?, mode: Int32 = 0o644,
                              mtime: (UInt64, UInt64)? = nil, confirm: Bool = true, targetChecked: Bool = false,
                              progress: TransferProgress? = nil,
                              source: (UnsafeMutableRawPointer, Int) throws -> Int) throws -> FileAttributes {
        try uploadAtomically(sftp, remote: remote, mode: mode, mtime: mtime, confirm: confirm,
                             targetChecked: targetChecked) { file, _ in
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
            return done
        }
    }

    /// Creates a hidden temp file beside `remote`, lets `body` write it (it returns the bytes
    /// written), closes it, checks its size (`confirm`), sets the mtime, and renames it into
    /// place. On any error the temp file is removed and `remote` is untouched.
    static func uploadAtomically(_ sftp: SFTP, remote: String, mode: Int32, mtime: (UInt64, UInt64)?,
                                 confirm: Bool, targetChecked: Bool,
                                 _ body: (SFTPFile, String) throws -> UInt64) throws -> FileAttributes {
        let slash = remote.lastIndex(of: "/")
        let dir = slash.map { String(remote[...$0]) } ?? ""
        let base = slash.map { String(remote[remote.index(after: $0)...]) } ?? remote
        if base.isEmpty { throw SSHError(.argument, "remote path \(remote) names a directory, not a file", path: remote) }
        if !targetChecked, let existing = try sftp.statIfExists(remote), existing.isDir {
            throw SSHError(.io, "cannot upload to \(remote): is a directory", path: remote)
        }
        let temp = dir + tempName(for: base)
        let file: SFTPFile
        do {
            file = try sftp.open(temp, flags: LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_TRUNC, mode: mode)
        } catch var e as SSHError {
            e.path = remote
            e.message = e.message.replacingOccurrences(of: temp, with: remote)
            throw e
        }
        var renamed = false
        defer {
            if !renamed {
                try? file.close()
                try? sftp.unlink(temp)
            }
        }
        let done = try body(file, temp)
        try file.close()
        // One stat serves both the size check and the result (a rename keeps the attributes).
        var attrs = try sftp.stat(temp)
        if confirm, let s = attrs.size, s != done {
            throw SSHError(.io, "upload of \(remote) not confirmed: the server has \(s) bytes, \(done) were sent", path: remote)
        }
        if let (atime, m) = mtime {
            try sftp.setstat(temp, FileAttributes(atime: atime, mtime: m))
            attrs.atime = atime
            attrs.mtime = m
        }
        try sftp.rename(temp, remote, overwrite: true)
        renamed = true
        return attrs
    }
}
