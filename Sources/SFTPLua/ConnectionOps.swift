import Foundation
import LuaHost
import SFTPCore

/// pysftp modes are the decimal digits of the octal mode: 755 means 0o755.
func pysftpMode(_ l: Lua, _ i: Int32, default def: Int32 = 0o777) throws -> Int32 {
    guard let v = try l.optInteger(i) else { return def }
    guard v >= 0, let m = Int32(String(v), radix: 8), m <= 0o7777 else {
        throw l.argError(i, "mode expected as octal digits like 755, got \(v)")
    }
    return m
}

extension ConnectionBinding {
    static func defineFileOps(_ c: LuaClass<Connection>) {
        func probe(_ name: String, follow: Bool, _ test: @escaping (FileAttributes) -> Bool) {
            c.method(name) { conn, l in
                let path = try conn.remote(try l.checkString(2))
                // Any refusal from the server means "no" (as pysftp's): some servers answer a
                // bare FAILURE for a path under a file. Only a lost connection raises.
                l.push(try conn.channel().statIfPresent(path, followLinks: follow).map(test) ?? false)
                return 1
            }
        }
        probe("exists", follow: true) { _ in true }
        probe("lexists", follow: false) { _ in true }
        probe("isdir", follow: true) { $0.isDir }
        probe("isfile", follow: true) { $0.kind == .file }

        defineDirectories(c)
        defineNames(c)
        defineAttributes(c)
        defineServerInfo(c)
        definePaths(c)
        defineCommandsAndContent(c)
    }

    /// mkdir, makedirs, rmdir, remove/unlink.
    static func defineDirectories(_ c: LuaClass<Connection>) {
        c.method("mkdir") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let mode = try pysftpMode(l, 3)
            let sftp = try conn.channel()
            // Some servers answer OK to MKDIR of an existing directory: look first.
            if try sftp.statIfPresent(path, followLinks: false) != nil { throw SSHError(.fileExists, "cannot create directory \(path): it exists", path: path) }
            try sftp.mkdir(path, mode: mode)
            return 0
        }
        c.method("makedirs") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let mode = try pysftpMode(l, 3)
            let sftp = try conn.channel()
            // A bare FAILURE (some servers' answer for a path under a file) means: walk the
            // prefixes, which finds the file in the way.
            if let a = try sftp.statIfPresent(path) {
                if a.isDir { return 0 }
                throw SSHError(.fileExists, "cannot create directory \(path): a file is in the way", path: path)
            }
            var prefix = path.hasPrefix("/") ? "" : nil as String?
            for part in path.split(separator: "/") {
                let p = prefix.map { $0 + "/" + part } ?? String(part)
                prefix = p
                if let a = try sftp.statIfExists(p) {
                    if !a.isDir { throw SSHError(.fileExists, "cannot create directory \(path): \(p) is a file", path: p) }
                    continue
                }
                do { try sftp.mkdir(p, mode: mode) } catch let e as SSHError where e.kind == .fileExists {}
            }
            return 0
        }
        c.method("rmdir") { conn, l in
            try conn.channel().rmdir(try conn.remote(try l.checkString(2))); return 0
        }
        let remove: LuaClass<Connection>.Method = { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let sftp = try conn.channel()
            do { try sftp.unlink(path) } catch var e as SSHError where e.kind == .io {
                if let a = try sftp.statIfExists(path, followLinks: false), a.isDir { e.message = "cannot remove \(path): is a directory (use rmdir)" }
                throw e
            }
            return 0
        }
        c.method("remove", remove)
        c.method("unlink", remove)
    }

    /// rename, symlink, link, copy: a file under another name, links to it, a copy of it.
    private static func defineNames(_ c: LuaClass<Connection>) {
        c.method("rename") { conn, l in
            let src = try conn.remote(try l.checkString(2))
            let dst = try conn.remote(try l.checkString(3))
            let o = try LuaOptions(l, 4, allowed: ["overwrite"], function: "rename")
            try conn.channel().rename(src, dst, overwrite: try o.bool("overwrite") ?? false, checked: true)
            return 0
        }
        c.method("symlink") { conn, l in
            let target = try l.checkString(2)
            let link = try conn.remote(try l.checkString(3))
            try conn.channel().symlink(target: target, linkpath: link)
            return 0
        }
        c.method("link") { conn, l in
            // c:link(target, linkpath): a hard link (hardlink@openssh.com).
            let target = try conn.remote(try l.checkString(2))
            let link = try conn.remote(try l.checkString(3))
            try conn.channel().hardlink(target: target, linkpath: link)
            return 0
        }
        c.method("copy") { conn, l in
            // c:copy(src, dst): server-side (copy-data) where offered, else streamed; atomic.
            let src = try conn.remote(try l.checkString(2))
            let dst = try conn.remote(try l.checkString(3))
            _ = try LuaOptions(l, 4, allowed: [], function: "copy")   // it takes none: never ignored
            AttributeTable.push(l, try Transfer.remoteCopy(try conn.channel(), from: src, to: dst))
            conn.note("copy \(Paths.shown(src)) -> \(Paths.shown(dst))")
            return 1
        }
    }

    /// chmod, chown: a file's mode and owner (the mode read back: some servers ignore chmod).
    private static func defineAttributes(_ c: LuaClass<Connection>) {
        c.method("chmod") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let mode = UInt32(try pysftpMode(l, 3))
            let sftp = try conn.channel()
            try sftp.setstat(path, FileAttributes(mode: mode))
            // Some servers answer OK and change nothing: read it back.
            if let now = try sftp.statIfExists(path)?.mode, now & 0o7777 != mode & 0o7777, now & 0o170000 != 0o120000 {
                throw SSHError(.io, "chmod \(path): the server answered OK but left the mode at \(String(now & 0o7777, radix: 8)) (it ignores chmod)", path: path)
            }
            return 0
        }
        c.method("chown") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let uid = try l.optInteger(3), gid = try l.optInteger(4)
            let sftp = try conn.channel()
            let cur = try sftp.stat(path)
            if uid == nil && gid == nil { return 0 }
            try sftp.setstat(path, FileAttributes(uid: uid.map { UInt32(truncatingIfNeeded: $0) } ?? cur.uid ?? 0,
                                                  gid: gid.map { UInt32(truncatingIfNeeded: $0) } ?? cur.gid ?? 0))
            return 0
        }
    }

    /// statvfs, extensions: what the server says about its file system and about itself.
    private static func defineServerInfo(_ c: LuaClass<Connection>) {
        c.method("statvfs") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let fields = try conn.channel().statvfs(path)
            l.newTable(nrec: Int32(fields.count))
            for (k, v) in fields { l.set(-1, k, Int64(truncatingIfNeeded: v)) }
            return 1
        }
        c.getter("extensions") { conn, l in
            let ext = try conn.channel().extensions
            l.newTable(nrec: Int32(ext.count))
            for (k, v) in ext { l.set(-1, k, v) }
        }
    }

    /// readlink, normalize, truncate, the working directory (chdir/cwd/getcwd/pwd), ciphers.
    static func definePaths(_ c: LuaClass<Connection>) {
        c.method("readlink") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let sftp = try conn.channel()
            var target = try sftp.readlink(path)
            if !target.hasPrefix("/") {
                // Relative targets are relative to the link's directory: answer an absolute path.
                let dir = Paths.dirname(path)
                target = Paths.normalize(Paths.join(try sftp.realpath(dir.isEmpty ? "." : dir), target))
            }
            l.push(target)
            return 1
        }
        c.method("normalize") { conn, l in
            l.push(try conn.channel().realpath(try conn.remote(try l.checkString(2))))
            return 1
        }
        c.method("truncate") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let size = try l.checkInteger(3)
            guard size >= 0 else { throw l.argError(3, "size must not be negative") }
            let sftp = try conn.channel()
            if size > 0 && sftp.sizeChangeEmptiesFile {
                throw SSHError(.io, "truncate \(path): refused, to keep the file intact: this server (\(sftp.session.serverBanner)) empties a file when it sets its size (paramiko's SFTPServer opens it with \"w+\")", path: path)
            }
            try sftp.setstat(path, FileAttributes(size: UInt64(size)))
            let now = try sftp.stat(path).size ?? UInt64(size)
            // Some servers answer OK and change nothing: the size read back says.
            if now != UInt64(size) {
                throw SSHError(.io, "truncate \(path): the server answered OK but the size is \(now), not \(size) (it ignores truncate)", path: path)
            }
            l.push(Int64(truncatingIfNeeded: now))
            return 1
        }
        let chdir: LuaClass<Connection>.Method = { conn, l in
            guard let p = try l.optString(2) else { conn.cwd = nil; return 0 }
            let sftp = try conn.channel()
            let path = try sftp.realpath(try conn.remote(p))
            let a = try sftp.stat(path)
            guard a.isDir else { throw SSHError(.io, "cannot change directory to \(path): not a directory", path: path) }
            conn.cwd = path
            return 0
        }
        c.method("chdir", chdir)
        c.method("cwd", chdir)
        c.method("getcwd") { conn, l in l.push(conn.cwd); return 1 }
        c.getter("pwd") { conn, l in l.push(try conn.channel().realpath(try conn.remote("."))) }
        c.getter("active_ciphers") { conn, l in
            l.push(strings: conn.session.activeCiphers)
        }
        c.getter("security_options") { _, l in
            l.newTable()
            for (k, v) in Session.securityOptions { l.push(strings: v); l.setField(-2, k) }
        }
    }

    /// execute, read, write.
    static func defineCommandsAndContent(_ c: LuaClass<Connection>) {
        c.method("execute") { conn, l in
            let cmd = try l.checkString(2)
            if cmd.utf8.contains(0) { throw SSHError(.argument, "bad command (it contains a NUL byte)") }
            if conn.closed { throw SSHError(.connection, "the connection is closed") }
            let (out, err, status) = try conn.session.exec(cmd)
            conn.note("execute (exit \(status))")
            // stdout lines, the exit status, stderr lines. Lines keep their "\n" (pysftp returns
            // them as readlines() does); a last line without one stays as it is.
            func pushLines(_ bytes: [UInt8]) {
                l.newTable()
                var start = 0, n = 0
                for i in 0..<bytes.count where bytes[i] == 0x0A {
                    n += 1; l.push(bytes: Array(bytes[start...i])); l.setIndex(-2, n); start = i + 1
                }
                if start < bytes.count { n += 1; l.push(bytes: Array(bytes[start...])); l.setIndex(-2, n) }
            }
            pushLines(out)
            l.push(Int64(status))
            pushLines(err)
            return 3
        }
        c.method("read") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let f = try conn.channel().open(path, flags: .read)
            defer { try? f.close() }
            var data: [UInt8] = []
            try Transfer.stream(f, size: try f.stat().size) { data.append(contentsOf: $0) }
            l.push(bytes: data)
            return 1
        }
        c.method("write") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            guard l.isString(3) else { throw l.typeError(3, expected: "string") }
            let count = l.rawLength(3)
            var off = 0
            _ = try l.withBytes(3) { bytes in
                try Transfer.upload(try conn.channel(), TransferJob(.upload, remote: path, local: "", confirm: true), size: UInt64(count)) { buf, cap in
                    let n = min(cap, bytes.count - off)
                    if n > 0 { buf.copyMemory(from: bytes.baseAddress!.advanced(by: off), byteCount: n) }
                    off += n
                    return n
                }
            }
            l.push(count)
            return 1
        }
    }
}
