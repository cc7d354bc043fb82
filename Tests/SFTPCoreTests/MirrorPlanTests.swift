import ByteString
@testable import SFTPCore
import Testing

/// The mirror's planning and the globs, as pure logic: trees given as listings, no server.
struct GlobTests {
    func match(_ pattern: String, _ path: String, dir: Bool = false) -> Bool {
        Glob(pattern, bytes: Array(pattern.utf8)).matches(Array(path.utf8), isDirectory: dir)
    }

    @Test func namesMatchAtAnyDepthPathsFromTheRoot() {
        #expect(match("*.log", "x.log"))
        #expect(match("*.log", "a/b/x.log"))
        #expect(!match("*.log", "x.log/y"))
        #expect(match("/top.txt", "top.txt"))
        #expect(!match("/top.txt", "a/top.txt"))
        #expect(match("a/*.txt", "a/b.txt"))
        #expect(!match("a/*.txt", "a/b/c.txt"))
    }

    @Test func doubleStarsClassesEscapesAndDirectoryOnly() {
        #expect(match("a/**/b", "a/b"))
        #expect(match("a/**/b", "a/x/y/b"))
        #expect(!match("a/**/b", "ab"))
        #expect(match("logs/**", "logs/x/y.txt"))
        #expect(match("[a-c]x", "bx"))
        #expect(!match("[a-c]x", "dx"))
        #expect(match("[!a]x", "bx"))
        #expect(!match("[^a]x", "ax"))
        #expect(match("\\*", "*"))
        #expect(!match("\\*", "a"))
        #expect(!match("a?b", "a/b"))
        #expect(match("a?b", "axb"))
        #expect(match("build/", "build", dir: true))
        #expect(!match("build/", "build", dir: false))
        #expect(match("[x", "[x"))
    }

    @Test func bytesThatAreNotUTF8() {
        let name: [UInt8] = [0x66, 0xE9, 0x2E, 0x6C, 0x6F, 0x67]   // "f\xE9.log"
        #expect(Glob("*.log", bytes: Array("*.log".utf8)).matches(name, isDirectory: false))
        #expect(Glob("f?.log", bytes: Array("f?.log".utf8)).matches(name, isDirectory: false))
    }

    @Test func backtrackingStaysBounded() {
        let path = String(repeating: "a/", count: 200) + "b"
        #expect(!match("**/**/**/**/**/**/c", path))
        #expect(match("**/**/**/**/**/**/b", path))
    }
}

/// A tree as listings: "d/" is a directory, "l@" a symlink, anything else a file with a size.
struct MemoryLister: TreeLister {
    var dirs: [String: [NameEntry]] = [:]

    init(root: String, _ spec: [String: UInt64]) {
        dirs[root] = []
        for (path, size) in spec.sorted(by: { $0.key < $1.key }) {
            var rel = path
            var mode: UInt32 = 0o100644
            if rel.hasSuffix("/") { rel.removeLast(); mode = 0o040755 } else if rel.hasSuffix("@") { rel.removeLast(); mode = 0o120777 }
            let parts = rel.split(separator: "/").map(String.init)
            var dir = root
            for p in parts.dropLast() { dir += "/" + p }
            let e = NameEntry(name: Array(parts.last!.utf8), longname: [],
                              attributes: FileAttributes(size: size, uid: 1, gid: 1, mode: mode, atime: 10, mtime: 100))
            dirs[dir, default: []].append(e)
            if mode == 0o040755 { dirs[dir + "/" + parts.last!, default: []] = dirs[dir + "/" + parts.last!] ?? [] }
        }
    }

    func list(_ paths: [String], each: (Int, [NameEntry]) throws -> Void, failed: (Int, Error) -> Void) throws {
        for (i, p) in paths.enumerated() {
            guard let entries = dirs[p] else { failed(i, SSHError(.fileNotFound, "no such directory \(p)", path: p)); continue }
            try each(i, entries.reversed())   // servers list in no particular order
        }
    }
}

struct MirrorPlanTests {
    func plan(_ source: [String: UInt64], _ target: [String: UInt64]?, _ configure: (inout MirrorOptions) -> Void = { _ in },
              sums: ([[UInt8]]) -> (source: [String?], target: [String?]) = { p in (p.map { _ in nil }, p.map { _ in nil }) }) throws -> MirrorPlan {
        var o = MirrorOptions()
        configure(&o)
        return try Mirror.plan(source: MemoryLister(root: "/s", source), sourceRoot: "/s",
                               target: MemoryLister(root: "/t", target ?? [:]), targetRoot: "/t",
                               targetExists: target != nil, options: o, checksums: sums)
    }

    func actions(_ p: MirrorPlan) -> [String] {
        (0..<p.actionCount).map { k in
            let a = p.action(k)
            return "\(a.op.rawValue) \(ByteString.string(a.path))"
        }
    }

    @Test func copiesUpdatesAndDeletesInDepthFirstByteOrder() throws {
        let p = try plan(["a/": 0, "a/c": 1, "a-b": 2, "z": 3, "same": 4],
                         ["a-b": 5, "same": 4, "old": 1, "olddir/": 0, "olddir/x": 1]) { $0.delete = true }
        #expect(actions(p) == ["mkdir a", "copy a/c", "update a-b", "copy z", "delete olddir/x", "delete olddir", "delete old"])
        #expect(p.skipped == 1)
        #expect(p.action(2).size == 2)
    }

    @Test func excludedFilteredAndLinksAreNeverTouched() throws {
        let p = try plan(["keep/": 0, "keep/a.log": 1, "l@": 0, "f": 1],
                         ["keep/": 0, "keep/b.log": 1, "l": 9, "extra": 1]) {
            $0.delete = true
            $0.exclude = GlobSet([Glob("*.log", bytes: Array("*.log".utf8))])
        }
        // keep/ holds an excluded file: not deleted; "l" is a link on the source: left alone.
        #expect(actions(p) == ["copy f", "delete extra"])
        #expect(p.warnings == ["source: symlink l skipped (links are not followed)"])
    }

    @Test func filterPrunesDirectoriesAndProtectsTheTarget() throws {
        var seen: [String] = []
        let p = try plan(["skip/": 0, "skip/x": 1, "y": 1], ["skip/": 0, "skip/old": 1]) {
            $0.delete = true
            $0.filter = { e, rel in
                seen.append(ByteString.string(rel))
                return e.attributes.kind != .dir
            }
        }
        #expect(actions(p) == ["copy y"])
        #expect(!seen.contains("skip/x"))
    }

    @Test func conflictsAreLeftAloneWithTheirContents() throws {
        let p = try plan(["c": 1, "e/": 0, "e/f": 1], ["c/": 0, "c/inner": 1, "e": 5]) { $0.delete = true }
        #expect(actions(p).isEmpty)
        #expect(p.warnings == ["target: c is a directory where the source has a file; left alone",
                               "target: e is a file where the source has a directory; left alone"])
    }

    /// A target entry the filter leaves out still is what it is: a file where the source has a
    /// directory is a conflict (left alone), never a mkdir that would fail.
    @Test func filteredTargetEntriesStillConflict() throws {
        let p = try plan(["confd/": 0, "confd/a.conf": 1, "x.log": 1], ["confd": 5, "x.log": 1]) {
            $0.filter = { e, rel in e.attributes.kind == .dir || ByteString.string(rel).hasSuffix(".log") }
        }
        #expect(actions(p).isEmpty || !actions(p).contains("mkdir confd"), "\(actions(p))")
        #expect(p.warnings == ["target: confd is a file where the source has a directory; left alone"])
    }

    @Test func includeMakesOnlyDirectoriesThatHoldSomething() throws {
        let p = try plan(["x/": 0, "x/y.bin": 1, "z/": 0, "z/w.txt": 1, "top.bin": 1], nil) {
            $0.include = GlobSet([Glob("*.txt", bytes: Array("*.txt".utf8))])
        }
        #expect(actions(p) == ["mkdir z", "copy z/w.txt"])
    }

    @Test func aDirectoryIncludedForItselfBringsItsParents() throws {
        let p = try plan(["a/": 0, "a/keep/": 0, "b/": 0], nil) {
            $0.include = GlobSet([Glob("keep/", bytes: Array("keep/".utf8))])
        }
        #expect(actions(p) == ["mkdir a", "mkdir a/keep"])
    }

    @Test func tempFilesAreNeitherCopiedNorDeletedButCleanedUp() throws {
        let p = try plan([".a.sftplua.part": 1, "a": 1], [".a.sftplua.part": 1, ".sftplua-0123456789abcdef.part.json": 1]) {
            $0.delete = true
        }
        #expect(actions(p) == ["copy a"])
        #expect(p.temps.count == 2)
    }

    @Test func compareModes() throws {
        var p = try plan(["f": 4], ["f": 4]) { $0.compare = .size }
        #expect(p.skipped == 1)
        // Same size, different checksums: an update; the same checksums: skipped.
        p = try plan(["f": 4, "g": 4], ["f": 4, "g": 4], { $0.compare = .checksum }) { paths in
            (paths.map { _ in "x" }, paths.map { ByteString.string($0) == "f" ? "x" : "y" })
        }
        #expect(actions(p) == ["update g"])
        #expect(p.skipped == 1)
    }

    @Test func unsafeNamesAreSkippedWithAWarning() throws {
        var lister = MemoryLister(root: "/s", ["ok": 1])
        lister.dirs["/s"]!.append(NameEntry(name: Array("../evil".utf8), longname: [], attributes: FileAttributes(size: 1, mode: 0o100644)))
        let p = try Mirror.plan(source: lister, sourceRoot: "/s", target: MemoryLister(root: "/t", [:]), targetRoot: "/t",
                                targetExists: false, options: MirrorOptions()) { _ in ([], []) }
        #expect(actions(p) == ["copy ok"])
        #expect(p.warnings == ["source: unsafe name \"../evil\" in /s skipped"])
    }

    @Test func treesDeeperThanTheLimitAreAnError() throws {
        var spec: [String: UInt64] = [:]
        var path = ""
        for _ in 0...Mirror.maxDepth { path += "d/"; spec[path] = 0 }
        #expect(throws: SSHError.self) { try plan(spec, nil) }
        spec = ["d/": 0, "d/d/": 0]
        #expect(try actions(plan(spec, nil)) == ["mkdir d", "mkdir d/d"])
    }

    @Test func jobsAreMadeFromThePlan() throws {
        let p = try plan(["a/": 0, "a/b": 7], ["a/": 0, "a/b": 3]) { _ in }
        let down = Mirror.downloads(p, remoteRoot: "/r", localRoot: "l", preserveMtime: true)
        #expect(down.count == 1)
        #expect(down[0].remote == "/r/a/b" && down[0].local == "l/a/b" && down[0].sourceAttributes?.size == 7)
        let up = Mirror.uploads(p, localRoot: "l/", remoteRoot: "/r", preserveMtime: false)
        #expect(up[0].local == "l/a/b" && up[0].remote == "/r/a/b" && up[0].targetChecked && up[0].existing?.mode == 0o100644)
    }
}
