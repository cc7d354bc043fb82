import ByteString
import Foundation

/// Mirroring, planned then carried out: both sides are scanned into compact trees
/// (`MirrorTree`), compared, and the plan (directories to make, files to copy, paths to delete)
/// is run by the executor. Nothing here knows Lua: the `filter` and checksum callbacks, and what
/// is reported per action, are closures.
public struct MirrorOptions {
    public enum Compare: String { case sizeMtime = "size+mtime", size, checksum }
    public var delete = false
    public var preserveMtime = true
    public var compare = Compare.sizeMtime
    public var exclude: GlobSet?
    public var include: GlobSet?
    /// Called for files and directories not excluded, with the path relative to the root:
    /// false leaves the entry out (a directory with everything under it) and protects it.
    public var filter: ((NameEntry, [UInt8]) throws -> Bool)?
    public init() {}
}

public enum MirrorOp: String, Sendable { case mkdir, copy, update, delete }

/// One step of a plan, as reported: the path is relative to the root, `/`-separated.
public struct MirrorAction {
    public let op: MirrorOp
    public let path: [UInt8]
    public let size: UInt64?
}

public struct MirrorPlan {
    public struct File: Sendable {
        public let source: Int32
        /// The target's node, or -1 when the target has nothing (or something protected) there.
        public let target: Int32
        public let update: Bool
    }
    public internal(set) var source = MirrorTree()
    public internal(set) var target = MirrorTree()
    /// Source directories to make on the target, parents first.
    public internal(set) var mkdirs: [Int32] = []
    public internal(set) var files: [File] = []
    /// Target paths to delete, contents before their directory.
    public internal(set) var deletes: [Int32] = []
    /// sftplua's temp files on the target, left by an interrupted run.
    public internal(set) var temps: [Int32] = []
    public internal(set) var warnings: [String] = []
    /// Files already the same on both sides.
    public internal(set) var skipped = 0

    /// Every action in order: directories, files, deletes.
    public var actionCount: Int { mkdirs.count + files.count + deletes.count }
    public func action(_ k: Int) -> MirrorAction {
        if k < mkdirs.count { return MirrorAction(op: .mkdir, path: source.path(mkdirs[k]), size: nil) }
        if k < mkdirs.count + files.count {
            let f = files[k - mkdirs.count]
            return MirrorAction(op: f.update ? .update : .copy, path: source.path(f.source), size: source.size(f.source))
        }
        let d = deletes[k - mkdirs.count - files.count]
        return MirrorAction(op: .delete, path: target.path(d), size: target.kind(d) == .file ? target.size(d) : nil)
    }
}

public enum Mirror {
    public enum Side: String { case source, target }

    /// The depth limit of every walk (`TreeWalk.maxDepth`).
    public static var maxDepth: Int { TreeWalk.maxDepth }

    /// Scans both sides and compares them. `checksums(paths)` gives each relative path's
    /// SHA-256 on the source and on the target (only with `compare = .checksum`).
    public static func plan(source: TreeLister, sourceRoot: String, target: TreeLister, targetRoot: String,
                            targetExists: Bool, options: MirrorOptions,
                            checksums: ([[UInt8]]) throws -> (source: [String?], target: [String?])) throws -> MirrorPlan {
        var plan = MirrorPlan()
        plan.source = try scan(source, root: sourceRoot, side: .source, options: options, warnings: &plan.warnings, against: nil)
        if targetExists {
            plan.target = try scan(target, root: targetRoot, side: .target, options: options, warnings: &plan.warnings,
                                   against: plan.source)
            plan.temps = (1..<Int32(plan.target.count + 1)).filter { plan.target.flags($0).contains(.temp) }
        }
        try compare(&plan, options: options, checksums: checksums)
        if options.delete { plan.deletes = deletions(plan) }
        return plan
    }

    // MARK: Scanning

    /// What the scan carries with each directory.
    private struct Dir {
        let node: Int32
        let rel: [UInt8]
        /// The same directory on the source (target scans only), or -1.
        let match: Int32
    }

    /// A name from a listing that must never be used to build a path.
    static func unsafe(_ name: [UInt8]) -> Bool { TreeWalk.unsafe(name) }

    /// Walks one side (`TreeWalk`) into a tree. On the target, `against` is the source: what the
    /// source protects is protected here too.
    static func scan(_ lister: TreeLister, root: String, side: Side, options: MirrorOptions, warnings: inout [String],
                     against source: MirrorTree?) throws -> MirrorTree {
        var tree = MirrorTree()
        var found: [(depth: Int, message: String)] = []
        let top = Dir(node: MirrorTree.root, rel: [], match: source == nil ? -1 : MirrorTree.root)
        // A mirror's depth error is an IOError on either side (as it always was).
        try TreeWalk.walk(lister, root: root, info: top, function: "mirror", kind: .io, unsafe: { d, name in
            found.append((d.depth, "\(side.rawValue): unsafe name \(luaQuoted(name)) in \(d.path) skipped"))
            tree.keepAncestors(of: d.info.node)
        }) { dir, entries, descend in
            let d = dir.info
            for e in entries {
                let name = e.name
                let rel = d.rel.isEmpty ? name : d.rel + [UInt8(ascii: "/")] + name
                if Transfer.isTempName(name) {
                    if side == .target { tree.add(e, parent: d.node, flags: [.temp, .protected]) }
                    tree.keepAncestors(of: d.node)
                    continue
                }
                let kind = e.attributes.kind
                if try protects(e, rel, kind: kind, in: d, source: source, options: options) {
                    // Excluded or filtered (links and special files too): never deleted, not
                    // descended. Kept as a node on both sides: the source's protect the
                    // target's, and the target's still tell what is physically there.
                    tree.add(e, parent: d.node, flags: .protected)
                    if side == .target { tree.keepAncestors(of: d.node) }
                    continue
                }
                switch kind {
                case .link where side == .source:
                    found.append((dir.depth, "source: symlink \(ByteString.string(rel)) skipped (links are not followed)"))
                    tree.add(e, parent: d.node, flags: .protected)   // what the target has there is left alone
                case .other where side == .source:
                    found.append((dir.depth, "source: other \(ByteString.string(rel)) skipped"))
                    tree.add(e, parent: d.node, flags: .protected)
                case .dir:
                    let node = tree.add(e, parent: d.node)
                    let match = source.flatMap { $0.child(of: d.match, named: name[...]) } ?? -1
                    try descend(e, Dir(node: node, rel: rel, match: match))
                default:
                    tree.add(e, parent: d.node)
                }
            }
        }
        // Warnings a level at a time, each level's in path order, whatever order the replies came in.
        warnings.append(contentsOf: found.sorted { ($0.depth, $0.message) < ($1.depth, $1.message) }.map(\.message))
        tree.finish()
        return tree
    }

    /// Is an entry left out of the mirror (and so protected)? What the source protects, what is
    /// excluded, what `filter` rejects, and files `include` does not name.
    private static func protects(_ e: NameEntry, _ rel: [UInt8], kind: FileAttributes.Kind, in d: Dir, source: MirrorTree?,
                                 options: MirrorOptions) throws -> Bool {
        let isDir = kind == .dir
        if let source, let s = source.child(of: d.match, named: e.name[...]), source.flags(s).contains(.protected) { return true }
        if options.exclude?.matches(rel, isDirectory: isDir) == true { return true }
        if let filter = options.filter, kind == .file || isDir, try !filter(e, rel) { return true }
        if !isDir, let inc = options.include, !inc.matches(rel, isDirectory: false) { return true }
        return false
    }

    /// `string.format("%q", s)` of Lua, on bytes (warnings name odd entries as Lua would).
    static func luaQuoted(_ s: [UInt8]) -> String {
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for (i, b) in s.enumerated() {
            let nextIsDigit = i + 1 < s.count && (0x30...0x39).contains(s[i + 1])
            switch b {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), b]
            case 0x0A: out += [UInt8(ascii: "\\"), 0x0A]
            case 0x0D: out += Array("\\r".utf8)
            case 0: out += Array((nextIsDigit ? "\\000" : "\\0").utf8)
            case 0..<0x20, 0x7F: out += Array((nextIsDigit ? String(format: "\\%03d", Int(b)) : "\\\(b)").utf8)
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
        return ByteString.string(out)
    }

    // MARK: Comparing

    /// What comparing collects on its way over both trees.
    private struct Comparison {
        var mkdirs: [Int32] = [], files: [MirrorPlan.File] = [], warnings: [String] = []
        /// Target directories where the source has a file.
        var conflicts: [Int32] = []
        /// Indices into files: same size, the checksums decide.
        var candidates: [Int] = []
        var skipped = 0
    }

    /// Fills in the plan's directories to make, files to copy or update, warnings and skipped
    /// count from the two scanned trees.
    static func compare(_ plan: inout MirrorPlan, options: MirrorOptions,
                        checksums: ([[UInt8]]) throws -> (source: [String?], target: [String?])) throws {
        let src = plan.source
        var c = Comparison()
        pair(src, MirrorTree.root, plan.target, plan.target.count > 0 ? MirrorTree.root : -1, options: options, into: &c)
        if !c.candidates.isEmpty { try dropSameChecksums(&c, src, checksums: checksums) }
        if let include = options.include { c.mkdirs = includedDirectories(c.mkdirs, holding: c.files, src, include: include) }
        for t in c.conflicts { plan.target.mark(t, .conflict) }
        plan.mkdirs = c.mkdirs
        plan.files = c.files
        plan.warnings += c.warnings
        plan.skipped = c.skipped
    }

    /// Each source entry under `sDir` against the target's under `tDir` (-1: none), depth first
    /// over sorted children, a directory then its contents: what to make, what to leave alone.
    private static func pair(_ src: MirrorTree, _ sDir: Int32, _ dst: MirrorTree, _ tDir: Int32, options: MirrorOptions,
                             into c: inout Comparison) {
        for s in src.children(of: sDir) where !src.flags(s).contains(.protected) {
            var t = tDir >= 0 ? dst.child(of: tDir, named: src.name(s)) ?? -1 : -1
            // What is there, filtered or not: a file never becomes a directory, nor the reverse.
            let tKind = t >= 0 ? dst.kind(t) : nil
            // A target entry the filter left out is not part of the mirror: as if absent (its
            // contents were not listed), except for what it physically is.
            let tProtected = t >= 0 && dst.flags(t).contains(.protected)
            if tProtected { t = -1 }
            if src.kind(s) == .dir {
                if let tKind, tKind != .dir {
                    c.warnings.append("target: \(ByteString.string(src.path(s))) is a \(tKind.rawValue) where the source has a directory; left alone")
                    continue
                }
                if tKind == nil { c.mkdirs.append(s) }
                pair(src, s, dst, t, options: options, into: &c)
            } else if tKind == .dir {
                c.warnings.append("target: \(ByteString.string(src.path(s))) is a directory where the source has a file; left alone")
                if t >= 0 { c.conflicts.append(t) }
            } else {
                pairFile(src, s, dst, t, tKind: tKind, options: options, into: &c)
            }
        }
    }

    /// A source file against what the target has at its name (`t` -1: nothing, or something
    /// protected): copied, updated, left to the checksums, or skipped as the same.
    private static func pairFile(_ src: MirrorTree, _ s: Int32, _ dst: MirrorTree, _ t: Int32, tKind: FileAttributes.Kind?,
                                 options: MirrorOptions, into c: inout Comparison) {
        if t < 0 {
            c.files.append(.init(source: s, target: -1, update: false))
        } else if tKind != .file || src.size(s) != dst.size(t) {
            c.files.append(.init(source: s, target: t, update: true))
        } else if options.compare == .checksum {
            c.candidates.append(c.files.count)
            c.files.append(.init(source: s, target: t, update: true))
        } else if same(options, src, s, dst, t) {
            c.skipped += 1
        } else {
            c.files.append(.init(source: s, target: t, update: true))
        }
    }

    /// Which same-size candidates have the same checksum on both sides: those are skipped, not
    /// copied.
    private static func dropSameChecksums(_ c: inout Comparison, _ src: MirrorTree,
                                          checksums: ([[UInt8]]) throws -> (source: [String?], target: [String?])) throws {
        let sums = try checksums(c.candidates.map { src.path(c.files[$0].source) })
        var unchanged = [Bool](repeating: false, count: c.files.count)
        for (k, i) in c.candidates.enumerated() where k < sums.source.count && k < sums.target.count {
            if sums.source[k] == sums.target[k] { unchanged[i] = true; c.skipped += 1 }
        }
        let files = c.files
        c.files = files.indices.filter { !unchanged[$0] }.map { files[$0] }
    }

    /// With `include`, which directories are made: only those that will hold something, or
    /// that match themselves (and then their parents too).
    private static func includedDirectories(_ mkdirs: [Int32], holding files: [MirrorPlan.File], _ src: MirrorTree,
                                            include: GlobSet) -> [Int32] {
        var needed = [Bool](repeating: false, count: src.count + 1)
        for f in files {
            var p = src.nodes[Int(f.source)].parent
            while p > 0, !needed[Int(p)] { needed[Int(p)] = true; p = src.nodes[Int(p)].parent }
        }
        for d in mkdirs where !needed[Int(d)] && include.matches(src.path(d), isDirectory: true) {
            // A directory kept for itself needs its parents too.
            var p = Int32(d)
            while p > 0, !needed[Int(p)] { needed[Int(p)] = true; p = src.nodes[Int(p)].parent }
        }
        return mkdirs.filter { needed[Int($0)] }
    }

    static func same(_ o: MirrorOptions, _ src: MirrorTree, _ s: Int32, _ dst: MirrorTree, _ t: Int32) -> Bool {
        if src.size(s) != dst.size(t) { return false }
        switch o.compare {
        case .size: return true
        case .checksum: return false
        case .sizeMtime:
            if o.preserveMtime { return src.mtime(s) == dst.mtime(t) }
            // Without preserved mtimes, a target at least as new as the source is taken as current.
            return (dst.mtime(t) ?? 0) >= (src.mtime(s) ?? 0)
        }
    }

    /// What the target has and the source does not, contents before their directory; never
    /// what holds something protected, nor anything under a directory the source has as a file.
    static func deletions(_ plan: MirrorPlan) -> [Int32] {
        let src = plan.source, dst = plan.target
        var out: [Int32] = []
        func visit(_ tDir: Int32, _ sDir: Int32, _ underConflict: Bool) {
            for t in dst.children(of: tDir) where !dst.flags(t).contains(.protected) {
                let s = sDir >= 0 ? src.child(of: sDir, named: dst.name(t)) : nil
                let conflict = underConflict || dst.flags(t).contains(.conflict)
                if s == nil && !dst.flags(t).contains(.keep) && !conflict { out.append(t) }
                if dst.kind(t) == .dir {
                    visit(t, s.flatMap { src.kind($0) == .dir ? $0 : nil } ?? -1, conflict)
                }
            }
        }
        visit(MirrorTree.root, MirrorTree.root, false)
        return out.reversed()
    }
}

// MARK: Acting

/// What a mirror does on its target's side: make one level of directories (parents exist),
/// delete a path. `Mirror.local` and `Mirror.remote` give the two.
public struct MirrorTargetOps {
    public var mkdirs: ([String]) throws -> Void
    public var delete: (String, MirrorTree.Kind) throws -> Void
    public init(mkdirs: @escaping ([String]) throws -> Void, delete: @escaping (String, MirrorTree.Kind) throws -> Void) {
        self.mkdirs = mkdirs
        self.delete = delete
    }
}

extension Mirror {
    /// `root/rel` (the root as given when `rel` is empty).
    public static func absolute(_ root: String, _ rel: [UInt8]) -> String {
        rel.isEmpty ? root : TreeWalk.join(root, rel)
    }

    /// A local target (`mirror_down`); `label` names the call in errors.
    public static func local(label: String) -> MirrorTargetOps {
        MirrorTargetOps(mkdirs: { paths in
            for p in paths {
                if let st = LocalPath.info(p) {
                    if st.st_mode & S_IFMT != S_IFDIR { throw LocalError(.fileExists, "\(label): \(p) appeared and is not a directory", path: p) }
                } else if LocalPath.mkdir(p, 0o777) != 0 {
                    throw LocalError(errno, "cannot create directory", path: p)
                }
            }
        }, delete: { p, _ in
            if LocalPath.remove(p) != 0 {
                let e = errno
                throw LocalError(.os, "\(label): cannot delete \(p): \(String(cString: strerror(e)))", path: p, errno: e)
            }
        })
    }

    /// A remote target (`mirror_up`): a level of directories is made at once (pipelined).
    public static func remote(_ sftp: SFTP) -> MirrorTargetOps {
        MirrorTargetOps(mkdirs: { try sftp.mkdirMany($0, mode: 0o777) }, delete: { p, kind in
            if kind == .dir { try sftp.rmdir(p) } else { try sftp.unlink(p) }
        })
    }

    /// The downloads of a plan: each file of `remoteRoot` to the same path under `localRoot`,
    /// with the listed size and times (which spare a stat).
    public static func downloads(_ plan: MirrorPlan, remoteRoot: String, localRoot: String, preserveMtime: Bool) -> JobList {
        let files = plan.files, src = plan.source
        return JobList(count: files.count) { i in
            let s = files[i].source, rel = src.path(s)
            var known: FileAttributes?
            if let size = src.size(s) {
                known = FileAttributes(size: size, mode: 0o100644, atime: src.atime(s), mtime: src.mtime(s))
            }
            return TransferJob(.download, remote: absolute(remoteRoot, rel), local: absolute(localRoot, rel),
                               preserveMtime: preserveMtime, sourceAttributes: known, acksConfirm: true)
        }
    }

    /// The uploads of a plan. A file at the target keeps its mode and owner; a link there is
    /// replaced, never written through (nothing is written outside the target root).
    public static func uploads(_ plan: MirrorPlan, localRoot: String, remoteRoot: String, preserveMtime: Bool) -> JobList {
        let files = plan.files, src = plan.source, dst = plan.target
        return JobList(count: files.count) { i in
            let f = files[i], rel = src.path(f.source)
            let kind = f.target >= 0 ? dst.kind(f.target) : nil
            var job = TransferJob(.upload, remote: absolute(remoteRoot, rel), local: absolute(localRoot, rel),
                                  preserveMtime: preserveMtime, targetChecked: kind == nil || kind == .file || kind == .link,
                                  acksConfirm: true)
            if kind == .file, let mode = dst.mode(f.target) {
                let owner = dst.owner(f.target)
                job.existing = FileAttributes(uid: owner?.uid, gid: owner?.gid, mode: mode)
            }
            return job
        }
    }

    /// Carries out a plan: directories a level at a time (parents first), the files through the
    /// executor, then the deletes (only after every copy succeeded), then the temp files an
    /// interrupted run left. `done` is called for each action as it completes (with the written
    /// file's attributes for copies); the first failure stops the run.
    public static func run(_ plan: MirrorPlan, targetRoot: String, ops: MirrorTargetOps, jobs: JobList, pool: TransferPool,
                           started: (@Sendable (Int) -> Void)? = nil, ended: ((Int, Bool) -> Void)? = nil,
                           done: (MirrorAction, FileAttributes?) throws -> Void) throws {
        var levels: [[Int32]] = []
        for d in plan.mkdirs {
            let depth = plan.source.depth(d)
            while levels.count <= depth { levels.append([]) }
            levels[depth].append(d)
        }
        for level in levels where !level.isEmpty {
            try ops.mkdirs(level.map { absolute(targetRoot, plan.source.path($0)) })
            for d in level { try done(MirrorAction(op: .mkdir, path: plan.source.path(d), size: nil), nil) }
        }
        if jobs.count > 0 {
            try pool.run(jobs, started: started) { i, result in
                if case .failure = result { ended?(i, false) } else { ended?(i, true) }
                let attrs = try result.get()
                try done(plan.action(plan.mkdirs.count + i), attrs)
            }
        }
        for (k, d) in plan.deletes.enumerated() {
            try ops.delete(absolute(targetRoot, plan.target.path(d)), plan.target.kind(d))
            try done(plan.action(plan.mkdirs.count + plan.files.count + k), nil)
        }
        for t in plan.temps { try? ops.delete(absolute(targetRoot, plan.target.path(t)), .file) }
    }
}

/// A plan's actions, compact: the plan's trees can be freed before the actions become Lua
/// tables (a mirror of 100,000 files never holds both).
public struct MirrorActionList {
    static let ops: [MirrorOp] = [.mkdir, .copy, .update, .delete]
    var ops: [UInt8] = []
    var sizes: [Int64] = []   // -1: none
    var paths = NameArena()

    public init(_ plan: MirrorPlan) {
        ops.reserveCapacity(plan.actionCount)
        sizes.reserveCapacity(plan.actionCount)
        for k in 0..<plan.actionCount {
            let a = plan.action(k)
            ops.append(UInt8(Self.ops.firstIndex(of: a.op)!))
            sizes.append(a.size.map { Int64(clamping: $0) } ?? -1)
            paths.append(a.path)
        }
    }

    public var count: Int { ops.count }
    public subscript(k: Int) -> MirrorAction {
        MirrorAction(op: Self.ops[Int(ops[k])], path: Array(paths.name(k)), size: sizes[k] < 0 ? nil : UInt64(sizes[k]))
    }
}
