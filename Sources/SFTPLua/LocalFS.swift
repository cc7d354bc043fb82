import ByteString
import Foundation
import LuaHost
import SFTPCore

/// Local file-system helpers the Lua side of the library needs (Lua's io has no directories).
/// Exposed as `sftp.fs`: `ls(path)`, `lstat(path)`, `stat(path)`, `mkdir(path [, mode])`,
/// `chdir(path)`, `getcwd()`, `realpath(path)`, `utime(path, atime, mtime)`. Names are bytes:
/// every path goes to the kernel and every name comes back exactly (`ByteString`), and listings
/// sort by bytes.
enum LocalFS {
    static func pushStat(_ l: Lua, _ st: stat) { AttributeTable.push(l, LocalPath.attributes(st)) }

    /// A local path from Lua: a NUL byte would make the kernel see another (shorter) path.
    static func checkPath(_ l: Lua, _ i: Int32) throws -> String {
        let p = try l.checkString(i)
        if p.utf8.contains(0) { throw LocalError(.argument, "bad path (it contains a NUL byte)", path: p) }
        return p
    }

    static func install(_ l: Lua, module m: Int32) {
        l.newTable()
        let t = l.absIndex(-1)
        defineReading(l, t)
        defineDirectories(l, t)
        defineTimes(l, t)
        l.setField(m, "fs")
    }

    /// sha256, ls, stat, lstat: what is at a path, read only.
    private static func defineReading(_ l: Lua, _ t: Int32) {
        l.setFunction(t, "sha256") { l in
            l.push(try SHA256Digest.file(try checkPath(l, 1)))
            return 1
        }
        l.setFunction(t, "ls") { l in
            // Sorted by bytes; a name that vanished since readdir is left out (the array has no
            // holes, which would end ipairs early and hide every later name).
            let entries = try LocalPath.entries(try checkPath(l, 1)).sorted { $0.name.lexicographicallyPrecedes($1.name) }
            l.newTable(narr: Int32(clamping: entries.count))
            for (k, e) in entries.enumerated() {
                AttributeTable.push(l, e.attributes)
                l.push(bytes: e.name)
                l.setField(-2, "filename")
                l.setIndex(-2, k + 1)
            }
            return 1
        }
        for (name, follow) in [("stat", true), ("lstat", false)] {
            l.setFunction(t, name) { l in
                let path = try checkPath(l, 1)
                guard let st = LocalPath.info(path, follow: follow) else {
                    if errno == ENOENT || errno == ENOTDIR { l.pushNil(); return 1 }
                    throw LocalError(errno, "cannot stat", path: path)
                }
                pushStat(l, st)
                return 1
            }
        }
    }

    /// mkdir, chdir, getcwd, realpath: making a directory, the process's working directory,
    /// resolving a path.
    private static func defineDirectories(_ l: Lua, _ t: Int32) {
        l.setFunction(t, "mkdir") { l in
            let path = try checkPath(l, 1)
            let mode = try pysftpMode(l, 2)
            if ByteString.withCString(path, { mkdir($0, mode_t(mode)) }) != 0 { throw LocalError(errno, "cannot create directory", path: path) }
            return 0
        }
        l.setFunction(t, "chdir") { l in
            let path = try checkPath(l, 1)
            if ByteString.withCString(path, { chdir($0) }) != 0 { throw LocalError(errno, "cannot change directory to", path: path) }
            return 0
        }
        l.setFunction(t, "getcwd") { l in
            var buf = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            guard getcwd(&buf, buf.count) != nil else { throw LocalError(errno, "cannot read the working directory", path: ".") }
            l.push(bytes: buf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) })
            return 1
        }
        l.setFunction(t, "realpath") { l in
            let path = try checkPath(l, 1)
            guard let r = ByteString.withCString(path, { realpath($0, nil) }) else { throw LocalError(errno, "cannot resolve", path: path) }
            defer { free(r) }
            l.push(bytes: Array(UnsafeBufferPointer(start: r, count: strlen(r))).map { UInt8(bitPattern: $0) })
            return 1
        }
    }

    /// utime: a file's access and modification times.
    private static func defineTimes(_ l: Lua, _ t: Int32) {
        l.setFunction(t, "utime") { l in
            let path = try checkPath(l, 1)
            let at = try l.checkInteger(2), mt = try l.checkInteger(3)
            var times = [timespec(tv_sec: Int(at), tv_nsec: 0), timespec(tv_sec: Int(mt), tv_nsec: 0)]
            if ByteString.withCString(path, { utimensat(AT_FDCWD, $0, &times, 0) }) != 0 { throw LocalError(errno, "cannot set times of", path: path) }
            return 0
        }
    }
}
