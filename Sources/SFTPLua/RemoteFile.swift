import Foundation
import LuaHost
import SFTPCore

/// `c:open(remote, mode)`: a remote file with io-style methods. Reads are buffered here;
/// writes go straight to the server (libssh2 pipelines them).
final class RemoteFile {
    let file: SFTPFile
    let mode: String
    var buffer: [UInt8] = []
    var bufferStart = 0          // index in buffer of the next unread byte
    var position: UInt64 = 0     // file offset of the next byte the user reads/writes
    var closed = false
    let chunk: Int

    init(file: SFTPFile, mode: String, chunk: Int, start: UInt64) {
        self.file = file
        self.mode = mode
        self.chunk = chunk
        self.position = start
    }

    func check() throws {
        if closed { throw SSHError(.io, "attempt to use a closed file", path: file.path) }
    }

    /// Ensures at least `n` buffered bytes when the file has them; false at EOF with nothing buffered.
    func fill(_ n: Int) throws {
        while buffer.count - bufferStart < n {
            if bufferStart > 0 { buffer.removeFirst(bufferStart); bufferStart = 0 }
            let want = max(chunk, n - buffer.count)
            var tmp = [UInt8](repeating: 0, count: want)
            let got = try tmp.withUnsafeMutableBytes { try file.read(into: $0.baseAddress!, count: want) }
            if got == 0 { return }
            buffer += tmp[0..<got]
        }
    }

    func take(_ n: Int) -> [UInt8] {
        let n = min(n, buffer.count - bufferStart)
        let out = Array(buffer[bufferStart..<bufferStart + n])
        bufferStart += n
        position += UInt64(n)
        return out
    }

    func line(keepNewline: Bool) throws -> [UInt8]? {
        var scanned = 0
        while true {
            if let i = buffer[(bufferStart + scanned)...].firstIndex(of: 0x0A) {
                var out = take(i - bufferStart + 1)
                if !keepNewline { out.removeLast() }
                return out
            }
            scanned = buffer.count - bufferStart
            let before = buffer.count - bufferStart
            try fill(before + chunk)
            if buffer.count - bufferStart == before {
                if before == 0 { return nil }
                return take(before)
            }
        }
    }

    func seekTo(_ pos: UInt64) throws {
        buffer = []; bufferStart = 0
        position = pos
        try file.seek(pos)
    }

    func close() throws {
        guard !closed else { return }
        closed = true
        buffer = []
        try file.close()
    }
}

extension ConnectionBinding {
    static let fileClass: LuaClass<RemoteFile> = {
        let f = LuaClass<RemoteFile>(name: "sftp.RemoteFile")
        f.method("read") { rf, l in try read(rf, l, first: 2) }
        f.method("write") { rf, l in
            try rf.check()
            if rf.mode == "r" { throw SSHError(.io, "cannot write \(rf.file.path): the file is open for reading only", path: rf.file.path) }
            if !rf.buffer.isEmpty { try rf.seekTo(rf.position) } // drop read-ahead before writing
            for i in 2...max(2, l.top) where l.top >= 2 {
                guard l.isString(i) || l.isNumber(i) else { throw l.typeError(i, expected: "string") }
                let bytes = l.isString(i) ? l.bytes(i)! : Array(l.describe(i).utf8)
                try bytes.withUnsafeBytes { try rf.file.write($0) }
                rf.position += UInt64(bytes.count)
            }
            l.pushValue(1)
            return 1
        }
        f.method("seek") { rf, l in
            try rf.check()
            let whence = try l.optString(2) ?? "cur"
            let off = try l.optInteger(3) ?? 0
            let base: Int64
            switch whence {
            case "set": base = 0
            case "cur": base = Int64(rf.position)
            case "end": base = Int64(try rf.file.stat().size ?? 0)
            default: throw l.argError(2, "invalid option '\(whence)' ('set', 'cur' or 'end' expected)")
            }
            let target = base + off
            guard target >= 0 else { throw l.argError(3, "seek before the start of the file") }
            if whence != "cur" || off != 0 { try rf.seekTo(UInt64(target)) }
            l.push(target)
            return 1
        }
        f.method("stat") { rf, l in
            try rf.check()
            AttributeTable.push(l, try rf.file.stat())
            return 1
        }
        f.method("flush") { rf, l in
            // Writes go to the server as they are made (each acknowledged): nothing is held back.
            try rf.check()
            l.pushValue(1)
            return 1
        }
        f.method("close") { rf, _ in try rf.close(); return 0 }
        f.meta("__close") { rf, _ in try? rf.close(); return 0 }
        f.meta("__tostring") { rf, l in l.push("sftp.RemoteFile(\(rf.file.path)\(rf.closed ? ", closed" : ""))"); return 1 }
        return f
    }()

    /// io-style read: formats from `first` (none = "l"); results stop at the first nil.
    static func read(_ rf: RemoteFile, _ l: Lua, first: Int32) throws -> Int32 {
        try rf.check()
        let last = l.top
        var formats: [Int32] = Array(first...max(first, last))
        if last < first { formats = [] }
        if formats.isEmpty { l.push("l"); formats = [l.top] }
        var pushed: Int32 = 0
        for i in formats {
            if let n = l.integer(i) {
                guard n >= 0 else { throw l.argError(i, "negative count") }
                try rf.fill(Int(n))
                if n == 0 {
                    if rf.buffer.count - rf.bufferStart == 0 { try rf.fill(1) }
                    if rf.buffer.count - rf.bufferStart == 0 { l.pushNil(); return pushed + 1 }
                    l.push(""); pushed += 1; continue
                }
                let bytes = rf.take(Int(n))
                if bytes.isEmpty { l.pushNil(); return pushed + 1 }
                l.push(bytes: bytes); pushed += 1
                continue
            }
            guard var f = l.string(i) else { throw l.typeError(i, expected: "string") }
            if f.hasPrefix("*") { f.removeFirst() }
            switch f.first {
            case "a":
                var all: [UInt8] = []
                while true {
                    try rf.fill(rf.chunk)
                    let b = rf.take(rf.buffer.count - rf.bufferStart)
                    if b.isEmpty { break }
                    all += b
                }
                l.push(bytes: all); pushed += 1
            case "l", "L":
                guard let line = try rf.line(keepNewline: f.first == "L") else { l.pushNil(); return pushed + 1 }
                l.push(bytes: line); pushed += 1
            case "n":
                // Skip whitespace, take a numeral, convert like tonumber.
                var text: [UInt8] = []
                while true {
                    try rf.fill(1)
                    guard rf.bufferStart < rf.buffer.count else { break }
                    let b = rf.buffer[rf.bufferStart]
                    if text.isEmpty && (b == 0x20 || (0x09...0x0D).contains(b)) { _ = rf.take(1); continue }
                    let ok = (0x30...0x39).contains(b) || b == 0x2E || b == 0x2B || b == 0x2D || b == 0x65 || b == 0x45 || b == 0x78 || b == 0x58 || (0x61...0x66).contains(b) || (0x41...0x46).contains(b)
                    if !ok || text.count > 200 { break }
                    text += rf.take(1)
                }
                // Lua's own conversion (integers, floats, hex), as io.read("n") does.
                if text.isEmpty || !l.pushNumeral(String(decoding: text, as: UTF8.self)) {
                    l.pushNil(); return pushed + 1
                }
                pushed += 1
            default:
                throw l.argError(i, "invalid format '\(f)'")
            }
        }
        return pushed
    }

    /// c:open, c:getfo, c:putfo: the calls that hand Lua a file or take one.
    static func defineFileObjects(_ c: LuaClass<Connection>) {
        defineOpen(c)
        defineGetfo(c)
        definePutfo(c)
    }

    /// The open flags of a Python/C mode ("r", "w+", "ab", "x", ...), nil for a bad one; `m` is
    /// the mode without "b".
    static func openFlags(_ m: String) -> OpenFlags? {
        var flags: OpenFlags
        switch m.replacingOccurrences(of: "x", with: "") {
        case "r": flags = .read
        case "r+": flags = [.read, .write]
        case "w": flags = [.write, .create, .truncate]
        case "" where m.contains("x"): flags = [.write, .create, .truncate]
        case "w+": flags = [.read, .write, .create, .truncate]
        case "a": flags = [.write, .create, .append]
        case "a+": flags = [.read, .write, .create, .append]
        default: return nil
        }
        if m.contains("x") { flags.formUnion([.exclusive, .create]) }
        return flags
    }

    /// c:open(path, mode="r", bufsize=-1): a RemoteFile.
    static func defineOpen(_ c: LuaClass<Connection>) {
        c.method("open") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let mode = try l.optString(3) ?? "r"
            let bufsize = try l.optInteger(4) ?? -1
            let m = mode.replacingOccurrences(of: "b", with: "")
            guard let flags = openFlags(m) else { throw l.argError(3, "invalid mode '\(mode)'") }
            let sftp = try conn.channel()
            if m.contains("x"), try sftp.statIfExists(path, followLinks: false) != nil {
                throw SSHError(.fileExists, "cannot create \(path): it exists", path: path)
            }
            if flags.contains(.write), !flags.contains(.truncate), let a = try sftp.statIfExists(path), (a.size ?? 0) > 0 {
                // Writing into an existing file: only where the server keeps its content.
                try sftp.checkWriteOpenKeepsFile(beside: path)
            }
            var f: SFTPFile
            do { f = try sftp.open(path, flags: flags) } catch let e as SSHError where e.kind == .permissionDenied && flags.contains(.append) {
                // Servers that refuse the APPEND flag (ProFTPD's APPE rule) may allow a write at
                // the end: this file writes at its end anyway.
                var plain = flags
                plain.remove(.append)
                guard let g = try? sftp.open(path, flags: plain) else { throw e }
                f = g
            }
            var start: UInt64 = 0
            if m.hasPrefix("a") { start = try f.stat().size ?? 0; try f.seek(start) }
            let chunk = bufsize > 0 ? Int(min(bufsize, 64 << 20)) : 256 << 10
            fileClass.push(RemoteFile(file: f, mode: m, chunk: chunk, start: start), in: l)
            return 1
        }
    }

    /// c:getfo(remote, file [, {callback=}]): the remote file's bytes to `file:write`.
    static func defineGetfo(_ c: LuaClass<Connection>) {
        c.method("getfo") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            let fileIdx: Int32 = 3
            guard !l.isNoneOrNil(fileIdx) else { throw l.typeError(fileIdx, expected: "file") }
            let o = try LuaOptions(l, 4, allowed: ["callback"], function: "getfo")
            let cb = progress(l, try o.function("callback"))
            let sftp = try conn.channel()
            let total = try sftp.stat(path).size
            let f = try sftp.open(path, flags: .read)
            defer { try? f.close() }
            l.getFieldProtected(fileIdx, "write")
            guard l.isFunction(-1) else { throw l.argError(fileIdx, "file with a write method expected, got \(l.typeName(fileIdx))") }
            let writeFn = l.absIndex(-1)
            let done = try Transfer.stream(f, size: total, progress: cb) { chunk in
                try l.call(writeFn, nresults: 2) { l.pushValue(fileIdx); l.push(bytes: chunk); return 2 }
                let failed = l.isNoneOrNil(-2)
                let msg = l.isString(-1) ? l.string(-1)! : "write failed"
                l.pop(2)
                if failed { throw LocalError(.os, "cannot write to the local file: \(msg)") }
            }
            l.push(done)
            return 1
        }
    }

    /// c:putfo(file, remote [, {file_size=, callback=, confirm=}]): `file:read` to a remote file.
    static func definePutfo(_ c: LuaClass<Connection>) {
        c.method("putfo") { conn, l in
            let fileIdx: Int32 = 2
            guard !l.isNoneOrNil(fileIdx) else { throw l.typeError(fileIdx, expected: "file") }
            guard let given = try l.optString(3) else {
                throw l.argError(3, "remote path expected (a file object has no name)")
            }
            let path = try conn.remote(given)
            let o = try LuaOptions(l, 4, allowed: ["file_size", "callback", "confirm"], function: "putfo")
            let size = try o.integer("file_size") ?? 0
            let cb = progress(l, try o.function("callback"))
            l.getFieldProtected(fileIdx, "read")
            guard l.isFunction(-1) else { throw l.argError(fileIdx, "file with a read method expected, got \(l.typeName(fileIdx))") }
            let readFn = l.absIndex(-1)
            let job = TransferJob(.upload, remote: path, local: "", confirm: try o.bool("confirm") ?? true)
            let attrs = try Transfer.upload(try conn.channel(), job, size: size > 0 ? UInt64(size) : nil, progress: cb) { buf, cap in
                try l.call(readFn, nresults: 1) { l.pushValue(fileIdx); l.push(cap); return 2 }
                defer { l.pop() }
                guard let n = l.withBytes(-1, { b -> Int in
                    if b.count > 0 { buf.copyMemory(from: b.baseAddress!, byteCount: b.count) }
                    return b.count
                }) else { return 0 }
                return n
            }
            AttributeTable.push(l, attrs)
            return 1
        }
    }
}
