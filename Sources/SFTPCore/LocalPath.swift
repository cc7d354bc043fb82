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
