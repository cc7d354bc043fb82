import ByteString
import SFTPCore
import Testing

/// The one tree walk (`TreeWalk`), as pure logic over an in-memory lister.
struct TreeWalkTests {
    /// Walks every directory, recording (depth, path) per listed directory.
    func visited(_ lister: MemoryLister, root: String = "/s") throws -> [String] {
        var out: [String] = []
        try TreeWalk.walk(lister, root: root, info: (), function: "test") { dir, entries, descend in
            out.append("\(dir.depth) \(dir.path) \(entries.count)")
            for e in entries where e.attributes.kind == .dir { try descend(e, ()) }
        }
        return out
    }

    @Test func aTreeIsWalkedALevelAtATime() throws {
        let lister = MemoryLister(root: "/s", ["a/": 0, "a/x": 1, "a/b/": 0, "a/b/y": 2, "c/": 0, "z": 3])
        let seen = try visited(lister)
        #expect(seen.first == "0 /s 3")
        #expect(Set(seen.dropFirst().prefix(2)) == ["1 /s/a 2", "1 /s/c 0"])
        #expect(seen.last == "2 /s/a/b 1")
        #expect(seen.count == 4)
    }

    @Test func unsafeNamesAreReportedAndNeverHandedOut() throws {
        var lister = MemoryLister(root: "/s", ["ok": 1])
        for bad in ["..", ".", "", "a/b", "n\u{0}ul"] {
            lister.dirs["/s"]!.append(NameEntry(name: Array(bad.utf8), longname: [], attributes: FileAttributes(size: 1, mode: 0o040755)))
        }
        var reported: [String] = [], names: [String] = []
        try TreeWalk.walk(lister, root: "/s", info: (), function: "test", unsafe: { _, n in reported.append(ByteString.string(n)) }) { _, entries, descend in
            for e in entries { names.append(ByteString.string(e.name)) }
        }
        #expect(names == ["ok"])
        #expect(reported.sorted() == ["", ".", "..", "a/b", "n\u{0}ul"])
    }

    @Test func goingDeeperThanTheLimitIsTheOneError() throws {
        var spec: [String: UInt64] = [:]
        var path = ""
        for _ in 0...TreeWalk.maxDepth { path += "d/"; spec[path] = 0 }
        do {
            _ = try visited(MemoryLister(root: "/s", spec))
            Issue.record("no error")
        } catch let e as SSHError {
            #expect(e.kind == .io)
            #expect(e.message == "test: directories nested deeper than 256 levels under /s")
        }
        // One level less is walked to the end.
        spec.removeValue(forKey: path)
        #expect(try visited(MemoryLister(root: "/s", spec)).count == TreeWalk.maxDepth + 1)
    }

    @Test func aDirectoryThatCannotBeListedEndsTheWalk() throws {
        var lister = MemoryLister(root: "/s", ["a/": 0])
        lister.dirs["/s/a"] = nil
        #expect(throws: SSHError.self) { try visited(lister) }
    }

    @Test func levelsCarryWhatTheCallerGives() throws {
        var seen: [String] = []
        try TreeWalk.levels(root: "r", info: "root", function: "t", kind: .os) { level, descend in
            for d in level {
                seen.append("\(d.depth):\(d.path):\(d.info)")
                if d.depth < 2 { try descend(d.path + "/k", d.info + "+") }
            }
        }
        #expect(seen == ["0:r:root", "1:r/k:root+", "2:r/k/k:root++"])
    }
}
