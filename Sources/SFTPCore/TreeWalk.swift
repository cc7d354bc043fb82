import ByteString

/// The one tree walk, behind every walk of sftplua: mirrors (`Mirror.scan`), `walktree`,
/// get_r/put_r planning, the SyncAgent's cache and `watch` (through `core.walk`, `require("sftp.core")`).
///
/// A tree is walked a level at a time: every directory of a level is listed at once (pipelined
/// on a remote side), so a tree costs a round trip per level, not per directory. The walk stops
/// at one depth (`maxDepth`) with one error, checks for Ctrl-C between levels, and never hands
/// out a name that cannot be joined to a path safely.
public enum TreeWalk {
    /// Directories nested deeper than this under the root are an error (a loop of links a
    /// server follows, or a hostile listing).
    public static let maxDepth = 256

    /// A directory of the walk: its path as listed, how deep it is under the root (0 for the
    /// root) and what the caller carries along with it.
    public struct Directory<Info> {
        public let path: String
        public let depth: Int
        public let info: Info
        public init(path: String, depth: Int, info: Info) {
            self.path = path
            self.depth = depth
            self.info = info
        }
    }

    /// The error of every walk that would go deeper than `maxDepth`: `kind` is the side's
    /// (`TreeLister.failureKind`), `function` the name the user called.
    public static func tooDeep(_ function: String, root: String, at path: String, kind: ErrorKind) -> KindedError {
        let message = "\(function): directories nested deeper than \(maxDepth) levels under \(root)"
        return kind == .os ? LocalError(kind, message, path: path) : SSHError(kind, message, path: path)
    }

    /// A name from a listing that must never be used to build a path: empty, ".", "..", or
    /// holding "/" or NUL.
    public static func unsafe(_ name: [UInt8]) -> Bool {
        name.isEmpty || name == [0x2E] || name == [0x2E, 0x2E] || name.contains(UInt8(ascii: "/")) || name.contains(0)
    }

    /// `dir/name` (`Paths.join`; a listed name is never absolute).
    public static func join(_ dir: String, _ name: [UInt8]) -> String {
        Paths.join(dir, ByteString.string(name))
    }

    /// The walk's skeleton, for callers that list (or know) a level's directories themselves
    /// (`core.walk`): `visit(level, descend)` gets every directory of a level and calls
    /// `descend(path, info)` for each subdirectory to walk next. The walk ends when a level
    /// adds none; a subdirectory deeper than `maxDepth` is the `tooDeep` error.
    public static func levels<Info>(root: String, info: Info, function: String, kind: ErrorKind,
                                    visit: ([Directory<Info>], _ descend: (String, Info) throws -> Void) throws -> Void) throws {
        var level = [Directory(path: root, depth: 0, info: info)]
        var depth = 0
        while !level.isEmpty {
            try Interrupt.checkpoint()
            var next: [Directory<Info>] = []
            try visit(level) { path, info in
                guard depth < maxDepth else { throw tooDeep(function, root: root, at: path, kind: kind) }
                next.append(Directory(path: path, depth: depth + 1, info: info))
            }
            level = next
            depth += 1
        }
    }

    /// Walks the tree under `root` on `lister`'s side. `each(dir, entries, descend)` gets each
    /// directory's entries (possibly in several parts; unsafe names left out and reported to
    /// `unsafe`) and calls `descend(entry, info)` for each subdirectory to walk. `kind`: the
    /// depth error's, when not the side's. The failure of
    /// a directory that cannot be listed ends the walk.
    public static func walk<Info>(_ lister: TreeLister, root: String, info: Info, function: String,
                                  kind: ErrorKind? = nil,
                                  unsafe report: (Directory<Info>, [UInt8]) -> Void = { _, _ in },
                                  each: (Directory<Info>, [NameEntry], _ descend: (NameEntry, Info) throws -> Void) throws -> Void) throws {
        // (withoutActuallyEscaping: the closures are only called during the walk.)
        try levels(root: root, info: info, function: function, kind: kind ?? lister.failureKind) { level, descendPath in
            try withoutActuallyEscaping(descendPath) { descendPath in
                try withoutActuallyEscaping(each) { each in
                    try lister.list(level.map(\.path)) { i, entries in
                        let dir = level[i]
                        var safe = entries
                        if entries.contains(where: { unsafe($0.name) }) {
                            safe = entries.filter { e in
                                if unsafe(e.name) { report(dir, e.name); return false }
                                return true
                            }
                        }
                        try each(dir, safe) { e, info in try descendPath(join(dir.path, e.name), info) }
                    }
                }
            }
        }
    }
}
