import Foundation
import LuaHost
import SFTPCore

/// `c:_transfer(jobs, parallel, done)`: the batch engine behind get_r/put_r and mirroring.
/// `jobs` is an array of `{op = "get"|"put", remote=, local=, preserve_mtime=, confirm=,
/// checked=, size=, mtime=, atime=, fsync=, dst_mode=, dst_uid=, dst_gid=}` (size/mtime: the
/// source's listed attributes, which spare a stat; checked: the target's directory was listed,
/// and dst_*: what it holds at the target, nothing when absent). `done(i, attrs, err)` is called
/// on this thread as each job ends; an error it raises stops the batch (jobs in flight finish).
enum Batch {
    static let jobKeys = ["op", "remote", "local", "preserve_mtime", "confirm", "checked", "size", "mtime", "atime", "fsync",
                          "dst_mode", "dst_uid", "dst_gid"]

    static func define(_ c: LuaClass<Connection>) {
        c.method("_reconnect") { conn, _ in try conn.reconnect(); return 0 }
        c.method("sha256") { conn, l in
            // c:sha256(path): the SHA-256 of a remote file (hex), computed by reading it.
            l.push(try SHA256Digest.remote(try conn.channel(), try conn.remote(try l.checkString(2))))
            return 1
        }
        defineTreeSteps(c)
        defineTransfer(c)
    }

    /// c:_listdirs and c:_mkdirs: a level of a tree listed or made at once (pipelined).
    static func defineTreeSteps(_ c: LuaClass<Connection>) {
        c.method("_listdirs") { conn, l in
            // c:_listdirs({dir, ...}) -> {listing | false, ...}, {[i] = error}: every directory
            // listed at once (pipelined over the connection, the tree walk's lister); each
            // listing is sorted by name, as listdir_attr's. A directory that cannot be listed
            // gets false and its error.
            let paths = try directories(conn, l, 2, function: "_listdirs")
            var found = [[NameEntry]](repeating: [], count: paths.count)
            var failures: [Int: Error] = [:]
            try RemoteLister(try conn.channel()).list(paths, each: { i, part in found[i] += part },
                                                      failed: { i, e in failures[i] = e })
            l.newTable(narr: Int32(clamping: paths.count))
            l.newTable()
            for i in 0..<paths.count {
                if let e = failures[i] {
                    l.push(false)
                    l.setIndex(-3, i + 1)
                    ErrorObject.pusher(l, e)
                    l.setIndex(-2, i + 1)
                } else {
                    AttributeTable.pushListing(l, found[i])
                    found[i] = []
                    l.setIndex(-3, i + 1)
                }
            }
            return 2
        }
        c.method("_mkdirs") { conn, l in
            // c:_mkdirs({dir, ...}, mode): creates every directory at once (pipelined; give one
            // level of a tree at a time: parents first). Raises the first failure, after all
            // replies are in.
            let paths = try directories(conn, l, 2, function: "_mkdirs")
            let mode = UInt32(try pysftpMode(l, 3))
            try conn.channel().mkdirMany(paths, mode: Int32(mode))
            return 0
        }
    }

    /// The array of remote directories at `i`, resolved against the cwd.
    static func directories(_ conn: Connection, _ l: Lua, _ i: Int32, function: String) throws -> [String] {
        guard l.isTable(i) else { throw l.typeError(i, expected: "table") }
        var paths: [String] = []
        for k in 0..<l.rawLength(i) {
            l.getIndex(i, k + 1)
            defer { l.pop() }
            guard let s = l.string(-1) else { throw LuaArgumentError("bad directory #\(k + 1) to '\(function)' (string expected)") }
            paths.append(try conn.remote(s))
        }
        return paths
    }

    /// c:_transfer(jobs, parallel, done [, label]): the batch engine (see above): the jobs read
    /// (`readJobs`), then run with their progress.
    static func defineTransfer(_ c: LuaClass<Connection>) {
        c.method("_transfer") { conn, l in
            guard l.isTable(2) else { throw l.typeError(2, expected: "table") }
            let parallel = Int(try l.optInteger(3) ?? 1)
            let done = try l.checkFunction(4)
            let label = try l.optString(5)   // the progress block's title (the call, from and to)
            let jobs = try readJobs(conn, l, 2)
            let pool = TransferPool(main: try conn.channel(), options: conn.session.options, parallel: parallel)
            var total: UInt64 = 0
            if Diagnostics.progressEnabled || Diagnostics.statsEvery != nil {
                for j in jobs { total += j.direction == .download ? (j.sourceAttributes?.size ?? 0) : (Transfer.localSize(j.local) ?? 0) }
            }
            let bar = ProgressBar(label: label ?? (jobs.first?.direction == .upload ? "put" : "get"), totalBytes: total, totalFiles: jobs.count)
            var bytes: UInt64 = 0
            var files = 0
            defer { bar.finish(bytes: bytes, files: files) }
            let planned = jobs
            try pool.run(JobList(planned), started: { [bar] i in
                bar.started(i, planned[i].direction == .download ? planned[i].remote : planned[i].local)
            }) { i, result in
                bar.ended(i)
                if case .failure = result { bar.errors += 1; bar.update(bytes: bytes, files: files) }
                if case .success(let a) = result {
                    files += 1
                    bytes += a.size ?? 0
                    bar.update(bytes: bytes, files: files)
                    let job = jobs[i], down = job.direction == .download
                    conn.note("\(down ? "get" : "put") \(Paths.shown(down ? job.remote : job.local)) -> \(Paths.shown(down ? job.local : job.remote))")
                }
                try l.call(done) {
                    l.push(i + 1)
                    switch result {
                    case .success(let attrs):
                        AttributeTable.push(l, attrs)
                        return 2
                    case .failure(let error):
                        l.pushNil()
                        ErrorObject.pusher(l, error)
                        return 3
                    }
                }
            }
            return 0
        }
    }

    /// The jobs table at `t`, each job checked (see the top of this file).
    static func readJobs(_ conn: Connection, _ l: Lua, _ t: Int32) throws -> [TransferJob] {
        var jobs: [TransferJob] = []
        let n = l.rawLength(t)
        jobs.reserveCapacity(n)
        for i in 1...max(n, 1) where i <= n {
            l.getIndex(t, i)
            defer { l.pop() }
            let o = try LuaOptions(l, -1, allowed: jobKeys, function: "_transfer")
            guard let remote = try o.string("remote"), let local = try o.string("local") else {
                throw LuaArgumentError("bad job #\(i) to '_transfer' (remote and local expected)")
            }
            var known: FileAttributes?
            if let size = try o.integer("size") {
                known = FileAttributes(size: UInt64(max(0, size)), mode: 0o100644,
                                       atime: try o.integer("atime").map { UInt64(max(0, $0)) },
                                       mtime: try o.integer("mtime").map { UInt64(max(0, $0)) })
            }
            let op = try o.string("op")
            guard op == "get" || op == "put" else { throw LuaArgumentError("bad job #\(i) to '_transfer' (op must be get or put)") }
            jobs.append(TransferJob(op == "get" ? .download : .upload, remote: try conn.remote(remote), local: local,
                                    preserveMtime: try o.bool("preserve_mtime") ?? true,
                                    confirm: try o.bool("confirm") ?? true,
                                    targetChecked: try o.bool("checked") ?? false, sourceAttributes: known))
            jobs[jobs.count - 1].fsync = try o.bool("fsync") ?? false
            jobs[jobs.count - 1].acksConfirm = true
            // What the caller listed at an upload's target (st_mode with its type bits).
            if let m = try o.integer("dst_mode") {
                jobs[jobs.count - 1].existing = FileAttributes(uid: try o.integer("dst_uid").map { UInt32(truncatingIfNeeded: $0) },
                                                               gid: try o.integer("dst_gid").map { UInt32(truncatingIfNeeded: $0) },
                                                               mode: UInt32(truncatingIfNeeded: m))
            }
        }
        return jobs
    }
}
