import Foundation
import LuaHost
import SFTPCore

/// Attribute tables, filled from one table of rows (as lfs does).
enum AttributeTable {
    static let rows: [(String, @Sendable (FileAttributes) -> Int64?)] = [
        ("st_size", { $0.size.map { Int64(truncatingIfNeeded: $0) } }),
        ("st_uid", { $0.uid.map(Int64.init) }),
        ("st_gid", { $0.gid.map(Int64.init) }),
        ("st_mode", { $0.mode.map(Int64.init) }),
        ("st_atime", { $0.atime.map { Int64(truncatingIfNeeded: $0) } }),
        ("st_mtime", { $0.mtime.map { Int64(truncatingIfNeeded: $0) } }),
    ]

    /// A directory's listing as `listdir_attr` gives it: an array of entries sorted by name bytes.
    static func pushListing(_ lua: Lua, _ entries: [NameEntry]) {
        let sorted = entries.sorted { $0.name.lexicographicallyPrecedes($1.name) }
        lua.newTable(narr: Int32(clamping: sorted.count))
        for (k, e) in sorted.enumerated() {
            push(lua, e)
            lua.setIndex(-2, k + 1)
        }
    }

    /// An entry of a listing: the name and `ls -l` text as the server's bytes.
    static func push(_ lua: Lua, _ e: NameEntry) {
        push(lua, e.attributes)
        let t = lua.absIndex(-1)
        lua.push(bytes: e.name)
        lua.setField(t, "filename")
        lua.push(bytes: e.longname)
        lua.setField(t, "longname")
    }

    static func push(_ lua: Lua, _ a: FileAttributes, filename: String? = nil, longname: String? = nil) {
        lua.newTable(nrec: 9)
        let t = lua.absIndex(-1)
        for (name, get) in rows { if let v = get(a) { lua.set(t, name, v) } }
        lua.set(t, "type", a.kind.rawValue)
        if a.inplace { lua.set(t, "inplace", true) }
        if let filename { lua.set(t, "filename", filename) }
        if let longname { lua.set(t, "longname", longname) }
    }
}
