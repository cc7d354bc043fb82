import ByteString
import Foundation

/// The local file system calls of transfers, on names held as `ByteString` Strings: the exact
/// bytes reach the kernel (a Swift String's own UTF-8 would change a name that is not UTF-8).
public enum LocalPath {
    /// A path with a NUL byte names nothing (the kernel would stop at the NUL, another file).
    static func refused(_ paths: String...) -> Bool {
        if paths.contains(where: { $0.utf8.contains(0) }) { errno = EINVAL; return true }
        return false
    }
    public static func open(_ path: String, _ flags: Int32, _ mode: mode_t = 0) -> Int32 {
        if refused(path) { return -1 }
        return ByteString.withCString(path) { Foundation.open($0, flags, mode) }
    }
    @discardableResult
    public static func unlink(_ path: String) -> Int32 {
        if refused(path) { return -1 }
        return ByteString.withCString(path) { Foundation.unlink($0) }
    }
    public static func rename(_ from: String, _ to: String) -> Int32 {
        if refused(from, to) { return -1 }
        return ByteString.withCString(from) { f in ByteString.withCString(to) { Foundation.rename(f, $0) } }
    }
    public static func mkdir(_ path: String, _ mode: mode_t) -> Int32 {
        if refused(path) { return -1 }
        return ByteString.withCString(path) { Foundation.mkdir($0, mode) }
    }
    /// remove(3): a file, or an empty directory.
    public static func remove(_ path: String) -> Int32 {
        if refused(path) { return -1 }
        return ByteString.withCString(path) { Foundation.remove($0) }
    }
    /// lstat(2) (or stat(2) with `follow`), nil when it fails (errno set).
    public static func info(_ path: String, follow: Bool = false) -> Glibc.stat? {
        if refused(path) { return nil }
        var st = Glibc.stat()
        let rc = ByteString.withCString(path) { fstatat(AT_FDCWD, $0, &st, follow ? 0 : AT_SYMLINK_NOFOLLOW) }
        return rc == 0 ? st : nil
    }
    public static func isDirectory(_ path: String) -> Bool {
        guard let st = info(path, follow: true) else { return false }
        return st.st_mode & S_IFMT == S_IFDIR
    }
}

extension LocalPath {
    /// The attributes of an lstat(2), as a listing carries them.
    public static func attributes(_ st: Glibc.stat) -> FileAttributes {
        FileAttributes(size: UInt64(max(0, st.st_size)), uid: st.st_uid, gid: st.st_gid, mode: st.st_mode,
                       atime: UInt64(max(0, st.st_atim.tv_sec)), mtime: UInt64(max(0, st.st_mtim.tv_sec)))
    }

    /// A local directory's entries (not "." or ".."), each with its lstat(2), in readdir order.
    /// A name that vanished between readdir and lstat is left out; any other lstat failure
    /// is an error.
    public static func entries(_ path: String) throws -> [NameEntry] {
        guard !refused(path), let d = ByteString.withCString(path, { opendir($0) }) else {
            throw LocalError(errno, "cannot list", path: path)
        }
        defer { closedir(d) }
        var names: [[UInt8]] = []
        var count = 0
        while let e = readdir(d), count < 50_000_000 {
            count += 1
            let name = withUnsafeBytes(of: e.pointee.d_name) { raw in Array(raw.prefix { $0 != 0 }) }
            if name != [0x2E] && name != [0x2E, 0x2E] { names.append(name) }
        }
        let dir = ByteString.bytes(path.hasSuffix("/") ? path : path + "/")
        var out: [NameEntry] = []
        out.reserveCapacity(names.count)
        for n in names {
            let p = ByteString.string(dir + n)
            guard let st = info(p) else {
                // Gone since readdir: left out. Any other failure (no search permission, I/O)
                // is an error: a mirror must never take an unreadable entry for an absent one.
                if errno == ENOENT { continue }
                throw LocalError(errno, "cannot stat", path: p)
            }
            out.append(NameEntry(name: n, longname: [], attributes: attributes(st)))
        }
        return out
    }
}
