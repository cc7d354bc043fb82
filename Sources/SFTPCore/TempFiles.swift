import Foundation

// sftplua's temp files, in one place: the hidden name beside a target that every download and
// upload writes first (then renames), how a listing tells one apart, and the local temp file a
// download writes. (The resume journal beside a temp file is in Resume.swift.)

extension Transfer {
    /// The hidden temp name beside a target: fixed per target, so that a later transfer of the
    /// same file finds (and resumes or replaces) what an interrupted one left.
    /// `key` tells apart the temp files of different sources (resumable uploads). A name too long
    /// for the file system (255 bytes with the journal suffix) gets a hashed temp name instead.
    public static func tempName(for name: String, key: String? = nil) -> String {
        let t = ".\(name)\(key.map { "." + $0 } ?? "").sftplua.part"
        if t.utf8.count + 5 <= 255 { return t }
        return ".sftplua-\(shortHash(name + (key ?? ""))).part"
    }

    /// Is `name` one of the temp names above, or the resume journal beside one? Mirrors and
    /// listings of trees leave them out (`sftp.is_temp_name` in Lua).
    public static func isTempName<C: Collection>(_ name: C) -> Bool where C.Element == UInt8 {
        guard name.first == UInt8(ascii: ".") else { return false }
        func ends(_ s: String) -> Bool { name.count >= s.utf8.count && name.suffix(s.utf8.count).elementsEqual(s.utf8) }
        if ends(".sftplua.part") || ends(".sftplua.part.json") { return true }
        return name.starts(with: ".sftplua-".utf8) && (ends(".part") || ends(".part.json"))
    }

    /// The first 16 hex digits of the SHA-256 of `s`.
    static func shortHash(_ s: String) -> String {
        guard let d = try? SHA256Digest() else { return String(UInt64(bitPattern: Int64(s.hashValue)), radix: 16) }
        let bytes = Array(s.utf8)
        bytes.withUnsafeBytes { d.update($0) }
        return String(d.finish().prefix(16))
    }

    /// The temp file beside `target` (`dir/.NAME.sftplua.part`, the directory part as given),
    /// or nil when `target` ends in "/" and so names no file.
    public static func tempPath(beside target: String, key: String? = nil) -> String? {
        let slash = target.lastIndex(of: "/")
        let dir = slash.map { String(target[...$0]) } ?? ""
        let base = slash.map { String(target[target.index(after: $0)...]) } ?? target
        return base.isEmpty ? nil : dir + tempName(for: base, key: key)
    }
}

/// A download's hidden temp file beside the target: created without following links, locked
/// against a second writer, renamed over the target when complete (`install`), removed with
/// its journal otherwise (`discard`, or when it goes), or kept for a resume (`keep`).
final class LocalTemp {
    let local: String
    let temp: String
    private(set) var fd: Int32 = -1

    /// Opens (creating) the temp file; `truncate`: empty it (a resumable download decides itself).
    init(local: String, truncate: Bool = true) throws {
        self.local = local
        if LocalPath.isDirectory(local) {
            throw LocalError(.os, "cannot write \(local): is a directory", path: local, errno: EISDIR)
        }
        guard let temp = Transfer.tempPath(beside: local) else {
            throw LocalError(.os, "cannot write \(local): it names a directory, not a file", path: local, errno: EISDIR)
        }
        self.temp = temp
        fd = LocalPath.open(temp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0o600)
        if fd < 0 && errno == ELOOP {
            // A symlink planted under the temp name is removed, never followed.
            LocalPath.unlink(temp)
            fd = LocalPath.open(temp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        }
        guard fd >= 0 else { throw LocalError(errno, "cannot write", path: local) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0 {
            Foundation.close(fd); fd = -1
            throw LocalError(.os, "cannot write \(local): another transfer is writing it (\(temp) is locked)", path: local, errno: EWOULDBLOCK)
        }
        if truncate && ftruncate(fd, 0) != 0 {
            let e = errno
            discard()
            throw LocalError(e, "cannot write", path: local)
        }
    }

    deinit { discard() }

    func write(_ d: ArraySlice<UInt8>, at off: UInt64) throws {
        try d.withUnsafeBytes { b in
            var w = 0
            while w < b.count {
                let r = pwrite(fd, b.baseAddress!.advanced(by: w), b.count - w, off_t(off) + off_t(w))
                if r < 0 { if errno == EINTR { continue }; throw LocalError(errno, "cannot write", path: local) }
                w += r
            }
        }
    }

    /// Cuts the file to `size`, sets mode and times, and renames it over the target.
    func commit(size: UInt64, attrs: FileAttributes, preserveMtime: Bool, fsync: Bool) throws {
        if ftruncate(fd, off_t(size)) != 0 { throw LocalError(errno, "cannot write", path: local) }
        try Transfer.finishLocal(fd, attrs: attrs, preserveMtime: preserveMtime, fsync: fsync, path: local)
        try install()
    }

    /// Closes the file and renames it over the target; on a failure it is removed.
    func install() throws {
        let rc = Foundation.close(fd)
        fd = -1
        if rc != 0 { let e = errno; removeFiles(); throw LocalError(e, "cannot write", path: local) }
        if LocalPath.rename(temp, local) != 0 { let e = errno; removeFiles(); throw LocalError(e, "cannot write", path: local) }
    }

    /// Closes the file and leaves it (and its journal) for a resume.
    func keep() {
        guard fd >= 0 else { return }
        Foundation.close(fd)
        fd = -1
    }

    /// Closes and removes the file and its journal (nothing once installed or kept).
    func discard() {
        guard fd >= 0 else { return }
        Foundation.close(fd)
        fd = -1
        removeFiles()
    }

    private func removeFiles() {
        LocalPath.unlink(temp)
        LocalPath.unlink(temp + ".json")
    }
}
