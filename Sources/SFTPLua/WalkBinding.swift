import LuaHost
import SFTPCore

/// `core.walk(c | nil, root, fname, visit)` (`require("sftp.core")`): SFTPCore's one tree walk (`TreeWalk`) for the
/// walks written in Lua (`walktree`, get_r/put_r planning, the SyncAgent's cache, `watch`).
///
/// `root` is a record `{path = dir, ...}`; with a Connection the tree is remote, with nil local.
/// The walk goes a level at a time: every record of a level without `entries` is listed (a
/// remote level at once, pipelined), then `visit(level)` gets the level's records, each with
/// `depth` and either `entries` (sorted by name, as `listdir_attr`'s; unsafe names left out)
/// or `error` (the listing's error object), and returns the next level's records (each with a
/// `path`; a record that brings its own `entries` is not listed), or nil. A level deeper than
/// the limit is the one depth error of every walk, named after `fname`.
enum WalkBinding {
    static func install(_ l: Lua, core: Int32) {
        l.setFunction(core, "unsafe_name") { l in
            // core.unsafe_name(name): a listed name that must never be joined to a path.
            guard let name = l.bytes(1) else { throw l.typeError(1, expected: "string") }
            l.push(TreeWalk.unsafe(name))
            return 1
        }
        l.setFunction(core, "walk") { l in
            let conn = l.isNoneOrNil(1) ? nil : try ConnectionBinding.cls.check(l, 1, method: "walk")
            guard l.isTable(2) else { throw l.typeError(2, expected: "table") }
            let fname = try l.checkString(3)
            _ = try l.checkFunction(4)
            l.getField(2, "path")
            guard let root = l.string(-1) else { throw l.argError(2, "record with a path expected") }
            l.pop()
            let lister: TreeLister = try conn.map { RemoteLister(try $0.channel()) } ?? LocalLister()
            // The level being walked is the table at the top of the stack.
            l.newTable(narr: 1)
            l.pushValue(2)
            l.setIndex(-2, 1)
            try TreeWalk.levels(root: root, info: 1, function: fname, kind: lister.failureKind) { level, descend in
                let records = l.absIndex(-1)
                try list(l, conn, lister, records: records, level)
                try l.call(4, nresults: 1) { l.pushValue(records); return 1 }
                let next = l.absIndex(-1)
                if !l.isNoneOrNil(next) {
                    guard l.isTable(next) else { throw LuaArgumentError("'\(fname)': the walk's visit must return a table of records") }
                    for k in 0..<l.rawLength(next) {
                        l.getIndex(next, k + 1)
                        defer { l.pop() }
                        guard l.isTable(-1) else { throw LuaArgumentError("'\(fname)': record #\(k + 1) of the walk is not a table") }
                        l.getField(-1, "path")
                        defer { l.pop() }
                        guard let path = l.string(-1) else { throw LuaArgumentError("'\(fname)': record #\(k + 1) of the walk has no path") }
                        try descend(path, k + 1)
                    }
                } else {
                    l.pop()
                    l.newTable()
                }
                l.remove(records)   // the next level is now at the top
            }
            l.pop()
            return 0
        }
    }

    /// Lists the level's records that have no `entries` yet and sets `depth` and `entries` (or
    /// `error`) on each.
    static func list(_ l: Lua, _ conn: Connection?, _ lister: TreeLister, records: Int32,
                     _ level: [TreeWalk.Directory<Int>]) throws {
        var wanted: [Int] = []   // positions in `level` to list
        var paths: [String] = []
        for (i, d) in level.enumerated() {
            l.getIndex(records, d.info)
            l.set(-1, "depth", Int64(d.depth))
            l.getField(-1, "entries")
            if l.isNoneOrNil(-1) {
                wanted.append(i)
                paths.append(try conn.map { try $0.remote(d.path) } ?? d.path)
            }
            l.pop(2)
        }
        guard !wanted.isEmpty else { return }
        var found = [[NameEntry]](repeating: [], count: wanted.count)
        var failures: [Int: Error] = [:]
        try lister.list(paths, each: { i, part in found[i] += part.lazy.filter { !TreeWalk.unsafe($0.name) } },
                        failed: { i, e in failures[i] = e })
        for (k, i) in wanted.enumerated() {
            l.getIndex(records, level[i].info)
            if let e = failures[k] {
                ErrorObject.pusher(l, e)
                l.setField(-2, "error")
            } else {
                AttributeTable.pushListing(l, found[k])
                found[k] = []
                l.setField(-2, "entries")
            }
            l.pop()
        }
    }
}
