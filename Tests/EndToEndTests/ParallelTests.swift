import Foundation
import Testing
import TestSupport

/// Several files (or ranges of one file) in flight over extra connections (issue 5).
struct ParallelTests {
    let server = TestServer.shared

    func run(_ body: String, cwd: String, timeout: Double = 120) throws -> [String] {
        let r = try server.runScript("""
        local c <close> = sftp.connect\(server.connectLua)
        local function kind(f, ...) local ok, e = pcall(f, ...); if ok then return "ok" end; return type(e) == "table" and e.kind or tostring(e) end
        \(body)
        """, cwd: cwd, timeout: timeout)
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.split(separator: "\n").map(String.init)
    }

    /// A listing of every file under `root`: relative path, size, mtime and a content digest.
    static let treeLua = """
    local function tree(root)
      local out = {}
      sftp.walktree(root, function(p)
        local f = assert(io.open(p, "rb")); local data = f:read("a"); f:close()
        local h = 0; for i = 1, #data, 7 do h = (h * 31 + data:byte(i)) % 4294967296 end
        local a = sftp.fs.stat(p)
        out[#out + 1] = p:sub(#root + 2) .. ":" .. a.st_size .. ":" .. a.st_mtime .. ":" .. h
      end)
      table.sort(out); return table.concat(out, "|"), #out
    end
    """

    @Test func manyFilesInFlightGiveTheSameTreeAsOneAtATime() throws {
        let local = try makeTempDir("par")
        let remote = try server.makeRemoteDir()
        defer { try? FileManager.default.removeItem(atPath: local) }
        for d in 0..<6 {
            try FileManager.default.createDirectory(atPath: "\(remote)/src/d\(d)/e", withIntermediateDirectories: true)
            for f in 0..<40 {
                let bytes = (0..<(f * 97 + d)).map { _ in UInt8.random(in: 0...255) }
                let path = "\(remote)/src/d\(d)/\(f % 2 == 0 ? "" : "e/")f \(f).bin"
                FileManager.default.createFile(atPath: path, contents: Data(bytes))
                try FileManager.default.setAttributes([.modificationDate: Date(timeIntervalSince1970: 1_600_000_000 + Double(f))], ofItemAtPath: path)
            }
        }
        let out = try run(Self.treeLua + "\n" + """
        local R = "\(remote)"
        c:get_r(R .. "/src", "one", {parallel = 1, preserve_mtime = true})
        c:get_r(R .. "/src", "many", {parallel = 5, preserve_mtime = true})
        local a, n = tree("one"); local b = tree("many"); local s = tree(R .. "/src")
        print(n, a == b, a == s)
        c:put_r("many", R .. "/up1", {parallel = 1, preserve_mtime = true})
        c:put_r("many", R .. "/up5", {parallel = 5, preserve_mtime = true})
        print(tree(R .. "/up1") == s, tree(R .. "/up5") == s)
        print(kind(c.get_r, c, R .. "/src", "x", {parallel = 0}), kind(c.put_r, c, "many", R .. "/x", {parallel = "4"}))
        """, cwd: local)
        #expect(out == ["240\ttrue\ttrue", "true\ttrue", "ArgumentError\tArgumentError"])
    }

    @Test func oneLargeFileSplitAcrossConnectionsArrivesWhole() throws {
        let local = try makeTempDir("range")
        let remote = try server.makeRemoteDir()
        defer { try? FileManager.default.removeItem(atPath: local); try? FileManager.default.removeItem(atPath: remote) }
        // 80 MiB (over the 64 MiB threshold) of varied bytes, a size that is not a multiple of the block.
        let size = (80 << 20) + 12345
        var bytes = [UInt8](repeating: 0, count: size)
        var x: UInt64 = 0x9E3779B97F4A7C15
        for i in 0..<size { x ^= x << 13; x ^= x >> 7; x ^= x << 17; bytes[i] = UInt8(truncatingIfNeeded: x) }
        let data = Data(bytes)
        FileManager.default.createFile(atPath: remote + "/big", contents: data)
        let out = try run("""
        local R = "\(remote)"
        local calls, last = 0, 0
        c:get(R .. "/big", "big", {parallel = 3, callback = function(d, t) calls = calls + 1; last = d end})
        print(calls > 1, last)
        local a = c:put("big", R .. "/up", {parallel = 3, preserve_mtime = true})
        print(a.st_size)
        print(kind(c.get, c, R .. "/big", "missing-dir/big", {parallel = 3}))
        print(kind(c.get, c, R .. "/big", "x", {parallel = 65}))
        """, cwd: local, timeout: 300)
        #expect(out == ["true\t\(size)", "\(size)", "FileNotFound", "ArgumentError"])
        #expect(FileManager.default.contents(atPath: local + "/big") == data)
        #expect(FileManager.default.contents(atPath: remote + "/up") == data)
        // No temp files left on either side.
        #expect(try FileManager.default.contentsOfDirectory(atPath: local) == ["big"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote).sorted() == ["big", "up"])
    }
}
