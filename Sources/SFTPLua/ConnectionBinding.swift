import Foundation
import LuaHost
import SFTPCore

/// `sftp.Connection`: the pysftp Connection, Lua-shaped.
enum ConnectionBinding {
    static let cls: LuaClass<Connection> = {
        let c = LuaClass<Connection>(name: "sftp.Connection")
        defineInfo(c)
        defineListing(c)
        defineTransfers(c)
        defineFileOps(c)
        defineFileObjects(c)
        Batch.define(c)
        MirrorBinding.define(c)
        return c
    }()

    /// A `callback(done, total)` option as a Progress.
    static func progress(_ l: Lua, _ fn: Int32?, bar: ProgressBar? = nil) -> TransferProgress? {
        guard fn != nil || bar?.enabled == true || bar?.statsEvery != nil else { return nil }
        return { done, total in
            bar?.update(bytes: done)
            if let fn {
                try l.call(fn) {
                    l.push(UInt64(done)); l.push(UInt64(total)); return 2
                }
            }
        }
    }

    /// Streams for one large file (`parallel` option; `SFTPLUA_STREAMS` sets the default).
    /// `parallel` for one file: connections for a file of `size` bytes (nil: the default for it).
    static func parallel(_ o: LuaOptions, size: UInt64) throws -> Int {
        guard let n = try o.integer("parallel") else { return Transfer.defaultStreams(size: size) }
        guard (1...64).contains(n) else {
            throw LuaArgumentError("bad option 'parallel' to '\(o.function)' (integer from 1 to 64 expected)", argument: "parallel")
        }
        return Int(n)
    }

    static func defineInfo(_ c: LuaClass<Connection>) {
        c.method("close") { conn, _ in conn.close(); return 0 }
        c.meta("__close") { conn, _ in conn.close(); return 0 }
        c.meta("__tostring") { conn, l in
            l.push("sftp.Connection(\(conn.label)\(conn.closed ? ", closed" : ""))")
            return 1
        }
        c.getter("closed") { conn, l in l.push(conn.closed) }
        c.getter("host") { conn, l in l.push(conn.session.options.host) }
        c.getter("port") { conn, l in l.push(conn.session.options.port) }
        c.getter("username") { conn, l in l.push(conn.session.options.user) }
        c.getter("auth_method") { conn, l in l.push(conn.session.authMethod) }
        c.getter("host_key") { conn, l in
            l.newTable(nrec: 2)
            l.set(-1, "type", conn.session.hostKeyType)
            l.set(-1, "fingerprint", conn.session.hostKeyFingerprint)
        }
        c.getter("logfile") { conn, l in
            if let p = conn.logfile { l.push(p) } else { l.push(false) }
        }
        c.getter("timeout") { conn, l in
            if let t = conn.session.timeout { l.push(t) } else { l.pushNil() }
        }
        c.setter("timeout") { conn, l in
            if l.isNoneOrNil(3) { conn.session.timeout = nil; return }
            guard let t = l.number(3), t > 0, t.isFinite else {
                throw LuaArgumentError("bad value for 'timeout' (positive number of seconds or nil expected, got \(l.typeName(3)))", argument: "timeout")
            }
            conn.session.timeout = t
        }
    }

    static func defineListing(_ c: LuaClass<Connection>) {
        c.method("listdir") { conn, l in
            // Names as the server sent them, sorted by bytes; no text decoding, no ls -l lines.
            try pushListing(conn, l, longnames: false) { l, e in l.push(bytes: e.name) }
            return 1
        }
        c.method("listdir_attr") { conn, l in
            try pushListing(conn, l, longnames: true) { l, e in AttributeTable.push(l, e) }
            return 1
        }
        c.method("listdir_iter") { conn, l in
            // for e in c:listdir_iter(path) do ... end: entries as listdir_attr's, in the server's
            // order, read as the loop asks (a directory of any size in bounded memory). The
            // iterator is also the loop's to-be-closed value: leaving the loop closes the handle.
            let path = try conn.remote(try l.optString(2) ?? ".")
            let reader = DirectoryIterator(try DirectoryReader(try conn.channel(), path: path))
            dirClass.push(reader, in: l)
            l.pushNil(); l.pushNil()
            l.pushValue(-3)
            return 4
        }
        c.method("stat") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            AttributeTable.push(l, try conn.channel().stat(path))
            return 1
        }
        c.method("lstat") { conn, l in
            let path = try conn.remote(try l.checkString(2))
            AttributeTable.push(l, try conn.channel().stat(path, followLinks: false))
            return 1
        }
    }

    static func defineTransfers(_ c: LuaClass<Connection>) {
        c.method("get") { conn, l in
            let remote = try conn.remote(try l.checkString(2))
            let given = try l.optString(3)
            let o = try LuaOptions(l, 4, allowed: ["callback", "preserve_mtime", "parallel", "fsync"], function: "get")
            // No local path, or "" (pysftp's `if not localpath`): the remote basename; a path
            // ending in "/" is a directory to put it in (as cp and sftp do).
            var local = given.flatMap { $0.isEmpty ? nil : $0 } ?? Paths.basename(remote)
            if local.hasSuffix("/") { local += Paths.basename(remote) }
            _ = try parallel(o, size: 0)   // a bad value is an ArgumentError before any request
            let sftp = try conn.channel()
            let attrs = try sftp.stat(remote)
            let streams = try parallel(o, size: attrs.size ?? 0)
            let extra = streams > 1 && (attrs.size ?? 0) >= Transfer.rangeThreshold
                ? ExtraChannels(options: conn.session.options, count: streams - 1) : nil
            defer { extra?.close() }
            let bar = ProgressBar(label: "get " + Paths.basename(remote), totalBytes: attrs.size ?? 0)
            bar.started(0, remote)
            let job = TransferJob(.download, remote: remote, local: local, preserveMtime: try o.bool("preserve_mtime") ?? false,
                                  sourceAttributes: attrs, fsync: try o.bool("fsync") ?? false)
            _ = try Executor.one(sftp, job, extra: extra, progress: progress(l, try o.function("callback"), bar: bar))
            bar.finish(bytes: attrs.size ?? 0)
            conn.note("get \(Paths.shown(remote)) -> \(Paths.shown(local))")
            return 0
        }
        c.method("put") { conn, l in
            let local = try l.checkString(2)
            let given = try l.optString(3)
            let o = try LuaOptions(l, 4, allowed: ["callback", "confirm", "preserve_mtime", "parallel", "fsync", "atomic"], function: "put")
            var target = given.flatMap { $0.isEmpty ? nil : $0 } ?? Paths.basename(local)
            if target.hasSuffix("/") { target += Paths.basename(local) }   // into that directory
            let remote = try conn.remote(target)
            let size = Transfer.localSize(local) ?? 0
            let streams = try parallel(o, size: size)
            let big = size >= Transfer.rangeThreshold
            // One stream where the server cannot take a file's writes out of order.
            let split = try streams > 1 && big && conn.channel().acceptsOutOfOrderWrites
            let extra = split ? ExtraChannels(options: conn.session.options, count: streams - 1) : nil
            defer { extra?.close() }
            let bar = ProgressBar(label: "put " + Paths.basename(local), totalBytes: Transfer.localSize(local) ?? 0)
            bar.started(0, local)
            var job = TransferJob(.upload, remote: remote, local: local, preserveMtime: try o.bool("preserve_mtime") ?? false,
                                  confirm: try o.bool("confirm") ?? true, targetChecked: false, fsync: try o.bool("fsync") ?? false)
            job.atomic = try o.bool("atomic")
            var attrs = try Executor.one(try conn.channel(), job, extra: extra,
                                         progress: progress(l, try o.function("callback"), bar: bar))
            bar.finish(bytes: attrs.size ?? 0)
            conn.note("put \(Paths.shown(local)) -> \(Paths.shown(remote))")
            // The new file's attributes as the server has them (pysftp's put returns its stat).
            if job.confirm, var full = try? conn.channel().stat(remote) {
                full.inplace = attrs.inplace
                attrs = full
            }
            AttributeTable.push(l, attrs)
            return 1
        }
    }

    /// Pushes an array of a directory's entries sorted by name bytes. Each entry becomes its Lua
    /// value as its reply arrives, and only the names are kept here to sort the array in place
    /// at the end: a listing of 100,000 entries is never held twice.
    static func pushListing(_ conn: Connection, _ l: Lua, longnames: Bool, _ push: @escaping (Lua, NameEntry) -> Void) throws {
        let path = try conn.remote(try l.optString(2) ?? ".")
        let sftp = try conn.channel()
        l.newTable()
        let t = l.absIndex(-1)
        var names = NameArena()
        var result: Result<[NameEntry], SSHError>?
        // Replies are queued by the completion and become Lua values here, between waits (Lua
        // never runs inside a network completion: an allocation may run a finalizer).
        var queue: [[NameEntry]] = []
        sftp.listAsync(path, longnames: longnames, each: { queue.append($0) }) { result = $0 }
        var rounds = 0
        while result == nil || !queue.isEmpty, rounds < 100_000_000 {
            rounds += 1
            if queue.isEmpty { try sftp.wait { result != nil || !queue.isEmpty }; continue }
            let batches = queue
            queue.removeAll()
            for batch in batches {
                for e in batch {
                    names.append(e.name)
                    push(l, e)
                    l.setIndex(t, names.count)
                }
            }
        }
        if case .failure(let e) = result! { throw e }
        // Apply the permutation cycle by cycle (position k takes the entry at order[k]).
        let order = names.sortedOrder()
        var placed = [Bool](repeating: false, count: order.count)
        for start in 0..<order.count where !placed[start] && Int(order[start]) != start {
            l.getIndex(t, start + 1)
            var k = start
            while true {
                placed[k] = true
                let from = Int(order[k])
                if from == start { l.setIndex(t, k + 1); break }
                l.getIndex(t, from + 1)
                l.setIndex(t, k + 1)
                k = from
            }
        }
    }

    static let dirClass: LuaClass<DirectoryIterator> = {
        let d = LuaClass<DirectoryIterator>(name: "sftp.DirectoryIterator")
        d.meta("__call") { it, l in
            guard let e = try it.reader?.read() else { it.reader = nil; l.pushNil(); return 1 }
            AttributeTable.push(l, e)
            return 1
        }
        d.method("close") { it, _ in it.reader?.close(); it.reader = nil; return 0 }
        d.meta("__close") { it, _ in it.reader?.close(); it.reader = nil; return 0 }
        d.meta("__tostring") { it, l in
            l.push("sftp.DirectoryIterator(\(it.path)\(it.reader == nil ? ", closed" : ""))")
            return 1
        }
        return d
    }()
}

/// The Lua side of a `DirectoryReader` (`c:listdir_iter`); nil once ended or closed.
final class DirectoryIterator {
    var reader: DirectoryReader?
    let path: String
    init(_ reader: DirectoryReader) { self.reader = reader; path = reader.path }
}
