import ByteString
import LuaHost
import SFTPCore

/// A compiled list of globs, as Lua holds it (`core.compile_globs`).
final class GlobBox {
    let set: GlobSet
    init(_ set: GlobSet) { self.set = set }
    static let cls = LuaClass<GlobBox>(name: "sftp.Globs")
}

/// The mirror's Lua side: globs (`sftp.glob.match`; `core.compile_globs`, `core.glob_any`),
/// `sftp.is_temp_name`, and `c:_mirror(spec)`, which scans, plans and acts in Swift (SFTPCore's
/// `Mirror`) and calls Lua only for `filter`, checksums, the target root and each action.
enum MirrorBinding {
    static func install(_ l: Lua, module m: Int32, core: Int32) {
        GlobBox.cls.register(in: l)
        l.setFunction(core, "compile_globs") { l in
            // core.compile_globs(list | string | nil, key, fname) -> globs | nil
            let key = try l.checkString(2), fname = try l.checkString(3)
            if l.isNoneOrNil(1) { l.pushNil(); return 1 }
            GlobBox.cls.push(GlobBox(try globs(l, 1, key: key, function: fname)), in: l)
            return 1
        }
        l.setFunction(core, "glob_any") { l in
            // core.glob_any(globs | nil, path, is_dir) -> boolean
            guard !l.isNoneOrNil(1) else { l.push(false); return 1 }
            let g = try GlobBox.cls.check(l, 1, method: "glob_any")
            l.push(g.set.matches(ByteString.bytes(try l.checkString(2)), isDirectory: l.boolean(3)))
            return 1
        }
        l.newTable()
        l.setFunction(-1, "match") { l in
            // sftp.glob.match(pattern, path [, is_dir]): does a .gitignore-style pattern match the path?
            let pattern = try l.checkString(1), path = try l.checkString(2)
            guard !pattern.isEmpty else { throw l.argError(1, "non-empty glob pattern expected") }
            let g = Glob(pattern, bytes: ByteString.bytes(pattern))
            l.push(g.matches(ByteString.bytes(path), isDirectory: l.boolean(3)))
            return 1
        }
        l.setField(m, "glob")
        l.setFunction(m, "is_temp_name") { l in
            // sftp.is_temp_name(name): one of sftplua's temp files (".NAME.sftplua.part", or the
            // resume journal beside it)?
            l.push(Transfer.isTempName(ByteString.bytes(try l.checkString(1))))
            return 1
        }
    }

    /// An array of non-empty glob strings (or one string) at `i`, compiled.
    static func globs(_ l: Lua, _ i: Int32, key: String, function: String) throws -> GlobSet {
        if l.isString(i), let s = l.string(i) {
            guard !s.isEmpty else { throw bad(key, function, "array of non-empty glob strings") }
            return GlobSet([Glob(s, bytes: ByteString.bytes(s))])
        }
        guard l.isTable(i) else {
            throw LuaArgumentError("bad option '\(key)' to '\(function)' (array of glob strings expected, got \(l.typeName(i)))", argument: key)
        }
        var ok = true, count = 0, top: Int64 = 0
        l.forEach(i) {
            count += 1
            if l.typeName(-2) != "number" || l.integer(-2) == nil || !l.isString(-1) || l.string(-1) == "" { ok = false }
            top = max(top, l.integer(-2) ?? 0)
        }
        // An array without holes: a nil in the middle would hide every pattern after it.
        guard ok, top == count else { throw bad(key, function, "array of non-empty glob strings") }
        var out: [Glob] = []
        for k in 0..<l.rawLength(i) {
            l.getIndex(i, k + 1)
            if let s = l.string(-1) { out.append(Glob(s, bytes: ByteString.bytes(s))) }
            l.pop()
        }
        return GlobSet(out)
    }

    static func bad(_ key: String, _ function: String, _ what: String) -> LuaArgumentError {
        LuaArgumentError("bad option '\(key)' to '\(function)' (\(what) expected)", argument: key)
    }

    static let specKeys = ["direction", "source", "target", "target_exists", "delete", "compare", "preserve_mtime",
                           "exclude", "include", "filter", "parallel", "dry_run", "make_root", "sums", "done", "label"]

    /// `c:_mirror{direction = "down"|"up", source =, target =, target_exists =, delete =,
    /// compare =, preserve_mtime =, exclude = globs, include = globs, filter = fn, parallel =,
    /// dry_run =, make_root = fn(), sums = fn(paths) -> source_sums, target_sums,
    /// done = fn(op, path, size)}` -> the contract's summary table. Options are checked by the
    /// caller (mirror.lua); roots are absolute or relative to the working directory (remote) or
    /// the process's (local).
    /// What a mirror did (or, in a dry run, would do).
    struct Summary {
        var copied = 0, updated = 0, deleted = 0, skipped = 0
        var bytes: UInt64 = 0
        var actions: MirrorActionList
        var warnings: [String]
    }

    static func define(_ c: LuaClass<Connection>) {
        c.method("_mirror") { conn, l in
            let o = try LuaOptions(l, 2, allowed: specKeys, function: "_mirror")
            let summary = try mirror(conn, l, o)
            l.newTable(nrec: 8)
            let r = l.absIndex(-1)
            l.set(r, "copied", Int64(summary.copied)); l.set(r, "updated", Int64(summary.updated))
            l.set(r, "deleted", Int64(summary.deleted)); l.set(r, "skipped", Int64(summary.skipped))
            l.set(r, "bytes", Int64(clamping: summary.bytes))
            l.newTable(narr: Int32(clamping: summary.actions.count))
            for k in 0..<summary.actions.count {
                let a = summary.actions[k]
                l.newTable(nrec: a.size == nil ? 2 : 3)
                l.set(-1, "op", a.op.rawValue)
                l.push(bytes: a.path); l.setField(-2, "path")
                if let s = a.size { l.set(-1, "size", Int64(clamping: s)) }
                l.setIndex(-2, k + 1)
            }
            l.setField(r, "actions")
            l.push(strings: summary.warnings)
            l.setField(r, "warnings")
            return 1
        }
    }

    /// The options of a spec, with `filter` calling the Lua function.
    static func options(_ l: Lua, _ o: LuaOptions) throws -> MirrorOptions {
        var options = MirrorOptions()
        options.delete = try o.bool("delete") ?? false
        options.preserveMtime = try o.bool("preserve_mtime") ?? true
        options.compare = MirrorOptions.Compare(rawValue: try o.string("compare") ?? "size+mtime") ?? .sizeMtime
        for key in ["exclude", "include"] {
            guard let t = o.index else { break }
            l.getField(t, key)
            defer { l.pop() }
            if !l.isNoneOrNil(-1) {
                let set = try GlobBox.cls.check(l, -1, method: "_mirror").set
                if key == "exclude" { options.exclude = set } else { options.include = set }
            }
        }
        if let filter = try o.function("filter") {
            options.filter = { e, rel in
                try l.call(filter, nresults: 1) {
                    AttributeTable.push(l, e.attributes)
                    l.push(bytes: e.name); l.setField(-2, "filename")
                    if !e.longname.isEmpty { l.push(bytes: e.longname); l.setField(-2, "longname") }
                    l.push(bytes: rel); l.setField(-2, "path")
                    return 1
                }
                defer { l.pop() }
                return l.boolean(-1)
            }
        }
        return options
    }

    /// `sums(paths)` of the spec: each path's SHA-256 on the source and on the target.
    static func checksums(_ l: Lua, _ fn: Int32?) -> ([[UInt8]]) throws -> (source: [String?], target: [String?]) {
        { paths in
            guard let fn else { return ([], []) }
            try l.call(fn, nresults: 2) {
                l.newTable(narr: Int32(clamping: paths.count))
                for (i, p) in paths.enumerated() { l.push(bytes: p); l.setIndex(-2, i + 1) }
                return 1
            }
            defer { l.pop(2) }
            func read(_ t: Int32) -> [String?] {
                paths.map { p -> String? in
                    guard l.isTable(t) else { return nil }
                    l.getField(t, ByteString.string(p))
                    defer { l.pop() }
                    return l.string(-1)
                }
            }
            return (read(l.absIndex(-2)), read(l.absIndex(-1)))
        }
    }

    /// Scans, plans and (unless a dry run) acts. The plan lives only in here: what is returned
    /// is compact.
    static func mirror(_ conn: Connection, _ l: Lua, _ o: LuaOptions) throws -> Summary {
        let down = try o.string("direction") == "down"
        guard let sourceArg = try o.string("source"), let targetArg = try o.string("target") else {
            throw LuaArgumentError("bad argument #1 to '_mirror' (source and target expected)")
        }
        let sftp = try conn.channel()
        let sourceRoot = down ? try conn.remote(sourceArg) : sourceArg
        let targetRoot = down ? targetArg : try conn.remote(targetArg)
        let options = try options(l, o)
        let remote = RemoteLister(sftp), local = LocalLister()
        let plan = try Mirror.plan(source: down ? remote : local, sourceRoot: sourceRoot,
                                   target: down ? local : remote, targetRoot: targetRoot,
                                   targetExists: try o.bool("target_exists") ?? true, options: options,
                                   checksums: checksums(l, try o.function("sums")))
        var s = Summary(skipped: plan.skipped, actions: MirrorActionList(plan), warnings: plan.warnings)
        if try o.bool("dry_run") == true {
            tally(plan, into: &s)
            return s
        }
        try carryOut(plan, Roots(down: down, source: sourceRoot, target: targetRoot), conn, sftp, l, o,
                     preserveMtime: options.preserveMtime, into: &s)
        return s
    }

    /// A mirror's direction and roots (the remote one resolved against the working directory).
    private struct Roots {
        let down: Bool
        let source: String, target: String
    }

    /// What a dry run would do, from the plan alone: files copied or updated, their bytes, deletes.
    private static func tally(_ plan: MirrorPlan, into s: inout Summary) {
        for f in plan.files {
            if f.update { s.updated += 1 } else { s.copied += 1 }
            s.bytes += plan.source.size(f.source) ?? 0
        }
        s.deleted = plan.deletes.count
    }

    /// Carries out a plan: the spec's `make_root`, then the executor (files through the pool),
    /// each action counted, shown on the bar, noted on the connection and reported to `done`.
    private static func carryOut(_ plan: MirrorPlan, _ roots: Roots, _ conn: Connection, _ sftp: SFTP, _ l: Lua,
                                 _ o: LuaOptions, preserveMtime: Bool, into s: inout Summary) throws {
        let down = roots.down
        if let makeRoot = try o.function("make_root") { try l.call(makeRoot) { 0 } }
        let done = try o.function("done")
        let jobs = down
            ? Mirror.downloads(plan, remoteRoot: roots.source, localRoot: roots.target, preserveMtime: preserveMtime)
            : Mirror.uploads(plan, localRoot: roots.source, remoteRoot: roots.target, preserveMtime: preserveMtime)
        let bar = progressBar(plan, label: try o.string("label") ?? (down ? "mirror_down" : "mirror_up"))
        var moved: UInt64 = 0, files = 0
        defer { bar.finish(bytes: moved, files: files) }
        let pool = TransferPool(main: sftp, options: conn.session.options, parallel: Int(try o.integer("parallel") ?? 1))
        let planned = plan.files, source = plan.source
        try Mirror.run(plan, targetRoot: roots.target, ops: down ? Mirror.local(label: "mirror_down") : Mirror.remote(sftp),
                       jobs: jobs, pool: pool, started: { [bar] i in
                           bar.started(i, ByteString.string(source.path(planned[i].source)))
                       }, ended: { [bar] i, ok in
                           bar.ended(i)
                           if !ok { bar.errors += 1 }
                       }) { action, attrs in
            switch action.op {
            case .copy, .update:
                moved += count(action, attrs, into: &s)
                files += 1
                bar.update(bytes: moved, files: files)
                conn.note("\(down ? "get" : "put") \(Paths.shown(Mirror.absolute(roots.source, action.path))) -> \(Paths.shown(Mirror.absolute(roots.target, action.path)))")
            case .delete: s.deleted += 1
            case .mkdir: break
            }
            guard let done else { return }
            try report(action, to: done, l)
        }
    }

    /// The bar of a run: the plan's files and their bytes; files already the same count as checks.
    private static func progressBar(_ plan: MirrorPlan, label: String) -> ProgressBar {
        let total = plan.files.reduce(UInt64(0)) { $0 + (plan.source.size($1.source) ?? 0) }
        let bar = ProgressBar(label: label, totalBytes: total, totalFiles: plan.files.count)
        bar.checks = plan.skipped
        return bar
    }

    /// A copy or update done, in the summary (with the planned size, else what the transfer
    /// says); gives the bytes that arrived, for the bar.
    private static func count(_ action: MirrorAction, _ attrs: FileAttributes?, into s: inout Summary) -> UInt64 {
        if action.op == .copy { s.copied += 1 } else { s.updated += 1 }
        let n = action.size ?? attrs?.size ?? 0
        s.bytes += n
        return attrs?.size ?? n
    }

    /// `done(op, path, size)` of the spec, for one action.
    private static func report(_ action: MirrorAction, to done: Int32, _ l: Lua) throws {
        try l.call(done) {
            l.push(action.op.rawValue)
            l.push(bytes: action.path)
            if let n = action.size { l.push(Int64(clamping: n)) } else { l.pushNil() }
            return 3
        }
    }
}
