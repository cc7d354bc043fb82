import Foundation
import Testing
import TestSupport

/// Real faults between sftplua and a real sshd (issue 10): a relay cuts connections after N
/// bytes or stalls them. After every cut the call raises ConnectionError (Timeout for a stall
/// with `timeout`), nothing under a final name is partial on either side, and a second run
/// completes the job with both sides identical.
struct FaultTests {
    let server = TestServer.shared

    /// Runs `body` with `connect()` opening a connection through `relay` and `R` a remote dir.
    func lua(_ body: String, relay: FaultRelay, remote: String, cwd: String, timeout: Double = 180) throws -> [String] {
        let kh = try relay.knownHosts(copying: server)
        let r = try server.runScript("""
        local R = "\(remote)"
        local function connect(extra)
          local o = {host = "127.0.0.1", port = \(relay.port), known_hosts = "\(kh)", host_key = "strict"}
          for k, v in pairs(extra or {}) do o[k] = v end
          return sftp.connect(o)
        end
        local function kind(f, ...) local ok, e = pcall(f, ...); if ok then return "ok" end; return type(e) == "table" and e.kind or tostring(e) end
        local function slurp(p) local f = io.open(p, "rb"); if not f then return nil end local s = f:read("a"); f:close(); return s end
        local function digest(root)
          local out = {}
          sftp.walktree(root, function(p) if not sftp.is_temp_name(p:match("[^/]*$")) then out[#out + 1] = p:sub(#root + 2) .. "=" .. sftp.fs.sha256(p) end end)
          table.sort(out); return table.concat(out, ","), #out
        end
        \(body)
        """, cwd: cwd, timeout: timeout)
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
    }

    static func pattern(_ size: Int, seed: UInt64) -> Data {
        var bytes = [UInt8](repeating: 0, count: size)
        var x = seed | 1
        for i in 0..<size { x ^= x << 13; x ^= x >> 7; x ^= x << 17; bytes[i] = UInt8(truncatingIfNeeded: x) }
        return Data(bytes)
    }

    /// Files in `dir` that are not sftplua temp files.
    static func visible(_ dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter { !($0.hasPrefix(".") && $0.contains(".sftplua.part")) }.sorted()
    }

    @Test func getAndPutCutAtSeveralPointsThenResume() throws {
        let relay = try FaultRelay(to: server.port)
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("cutget")
        let size = 24 << 20
        let data = Self.pattern(size, seed: 7)
        FileManager.default.createFile(atPath: remote + "/big.bin", contents: data)
        for cut in [3_000, 300_000, 5_000_000, 16_000_000] {
            try "old local".write(toFile: work + "/big.bin", atomically: true, encoding: .utf8)
            try "old remote".write(toFile: remote + "/up.bin", atomically: true, encoding: .utf8)
            relay.cutAfter = cut
            let out = try lua("""
            local ok, c = pcall(connect)
            if not ok then print(c.kind, "connect") return end
            print(kind(c.get, c, R .. "/big.bin", "big.bin", {parallel = 1, retries = 0}))
            local ok2, c2 = pcall(connect)
            if not ok2 then print(c2.kind, "connect") return end
            local f = io.open("src.bin", "wb"); f:write(slurp(R .. "/big.bin")); f:close()
            print(kind(c2.put, c2, "src.bin", R .. "/up.bin", {parallel = 1, retries = 0}))
            """, relay: relay, remote: remote, cwd: work)
            #expect(out.first?.hasPrefix("ConnectionError") == true, "cut at \(cut): \(out)")
            // Final names hold the old content (never a partial file).
            #expect(FileManager.default.contents(atPath: work + "/big.bin") == Data("old local".utf8), "cut at \(cut)")
            #expect(FileManager.default.contents(atPath: remote + "/up.bin") == Data("old remote".utf8), "cut at \(cut)")
        }
        // A run without faults completes both, resuming what the cuts left.
        relay.cutAfter = nil
        let before = relay.bytesPerConnection().count
        let out = try lua("""
        local c = connect()
        c:get(R .. "/big.bin", "big.bin", {parallel = 1})
        c:put("src.bin", R .. "/up.bin", {parallel = 1})
        print(sftp.fs.sha256("big.bin") == sftp.fs.sha256(R .. "/big.bin"), sftp.fs.sha256(R .. "/up.bin") == sftp.fs.sha256("src.bin"))
        """, relay: relay, remote: remote, cwd: work)
        #expect(out == ["true\ttrue"])
        // Resumed: the last run moved well under the two files' 48 MiB.
        let moved = relay.bytesPerConnection().dropFirst(before).reduce(0, +)
        #expect(moved < 2 * size - 8_000_000, "moved \(moved) bytes")
        #expect(Self.visible(work).contains("big.bin"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: work).filter { $0.contains(".sftplua.part") }.isEmpty)
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote).filter { $0.contains(".sftplua.part") }.isEmpty)
    }

    /// A 16 MiB put (and get) cut after about 10 MiB: the rerun sends only what is missing. The
    /// journal claims only bytes the server acknowledged, so what it skips is really there.
    @Test func cutAt10MiBResumesTheRestOnly() throws {
        let relay = try FaultRelay(to: server.port)
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("cut16")
        let size = 16 << 20
        let data = Self.pattern(size, seed: 16)
        FileManager.default.createFile(atPath: work + "/src.bin", contents: data)
        FileManager.default.createFile(atPath: remote + "/down.bin", contents: data)
        for (op, call) in [("put", #"c:put("src.bin", R .. "/up.bin", {parallel = 1, retries = 0})"#),
                           ("get", #"c:get(R .. "/down.bin", "down.bin", {parallel = 1, retries = 0})"#)] {
            relay.cutAfter = 10 << 20
            let cut = try lua("local c = connect(); print(kind(function() \(call) end))", relay: relay, remote: remote, cwd: work)
            #expect(cut == ["ConnectionError"], "\(op)")
            relay.cutAfter = nil
            let before = relay.bytesPerConnection().count
            let again = try lua("local c = connect(); \(call); print('done')", relay: relay, remote: remote, cwd: work)
            #expect(again == ["done"], "\(op)")
            let moved = relay.bytesPerConnection().dropFirst(before).reduce(0, +)
            // What was in flight at the cut (unacknowledged writes, read-ahead: a few MiB) is
            // sent again; what landed is not.
            #expect(moved < size - (2 << 20), "\(op): the rerun moved \(moved) bytes of \(size)")
        }
        #expect(FileManager.default.contents(atPath: remote + "/up.bin") == data)
        #expect(FileManager.default.contents(atPath: work + "/down.bin") == data)
    }

    /// retries: a connection dropped in the middle of a get, a get_r and a mirror is retried on
    /// a new connection, and the call succeeds; -v says so. retries = 0 lets the error through.
    /// bwlimit is checked and shown under -v (no timing is asserted).
    @Test func transientFailuresAreRetried() throws {
        let relay = try FaultRelay(to: server.port)
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("retry")
        let size = 6 << 20
        FileManager.default.createFile(atPath: remote + "/big.bin", contents: Self.pattern(size, seed: 5))
        try FileManager.default.createDirectory(atPath: remote + "/tree/d", withIntermediateDirectories: true)
        for f in 0..<20 { FileManager.default.createFile(atPath: remote + "/tree/d/f\(f)", contents: Self.pattern(100_000, seed: UInt64(f))) }
        let kh = try relay.knownHosts(copying: server)
        for (call, check) in [
            (#"c:get(R .. "/big.bin", "big.bin", {parallel = 1, retries = 3})"#, #"print(sftp.fs.sha256("big.bin") == sftp.fs.sha256(R .. "/big.bin"))"#),
            (#"c:get_r(R .. "/tree", "tree", {retries = 3})"#, #"print(#sftp.fs.ls("tree/d") == 20)"#),
            (#"c:mirror_down(R .. "/tree", "mirror", {retries = 3})"#, #"print(#c:mirror_down(R .. "/tree", "mirror").actions == 0)"#),
        ] {
            relay.bytesPerSecond = 1 << 20    // slow enough to be cut in the middle
            let cutter = DispatchWorkItem { relay.cutAll() }
            DispatchQueue.global().asyncAfter(deadline: .now() + 1.0, execute: cutter)
            let r = try runProcess(sftpluaBinary, ["-v", "-e", """
            local R = "\(remote)"
            local c = sftp.connect{host = "127.0.0.1", port = \(relay.port), known_hosts = "\(kh)", host_key = "strict"}
            \(call)
            \(check)
            """], env: ["HOME": server.home], cwd: work)
            cutter.cancel()
            relay.bytesPerSecond = nil
            #expect(r.status == 0, "\(call): \(r.stderr)")
            #expect(r.stdout.hasSuffix("true\n"), "\(call): \(r.stdout)")
            #expect(r.stderr.contains("retry 1 of 3"), "\(call): \(r.stderr)")
        }
        // retries = 0: the drop is the caller's; bwlimit is named under -v; bad values are ArgumentErrors.
        relay.bytesPerSecond = 1 << 20
        let cutter = DispatchWorkItem { relay.cutAll() }
        DispatchQueue.global().asyncAfter(deadline: .now() + 1.0, execute: cutter)
        let none = try runProcess(sftpluaBinary, ["-v", "-e", """
        local c = sftp.connect{host = "127.0.0.1", port = \(relay.port), known_hosts = "\(kh)", host_key = "strict"}
        local ok, e = pcall(c.get, c, "\(remote)/big.bin", "again.bin", {retries = 0, bwlimit = "4M"})
        print(ok, e.kind)
        print(select(2, pcall(c.get_r, c, "\(remote)/tree", "t2", {bwlimit = "fast"})).kind, select(2, pcall(c.put, c, "x", "y", {retries = 1.5})).kind)
        """], env: ["HOME": server.home], cwd: work)
        cutter.cancel()
        relay.bytesPerSecond = nil
        #expect(none.stdout == "false\tConnectionError\nArgumentError\tArgumentError\n", "\(none.stderr)")
        #expect(none.stderr.contains("bandwidth limit 4194304 bytes/s"))
    }

    /// A server that accepts a second connection and never answers it: a split file and a tree
    /// with `parallel` go on over the first connection within a few seconds, with no `timeout`
    /// set, and the silent connections are closed.
    @Test func silentSecondConnectionsDoNotHoldTransfersUp() throws {
        let relay = try FaultRelay(to: server.port)
        defer { relay.stop() }
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("silent")
        let size = (64 << 20) + 4096
        FileManager.default.createFile(atPath: remote + "/big.bin", contents: Self.pattern(size, seed: 9))
        try FileManager.default.createDirectory(atPath: remote + "/tree", withIntermediateDirectories: true)
        for f in 0..<10 { FileManager.default.createFile(atPath: remote + "/tree/f\(f)", contents: Self.pattern(1000, seed: UInt64(f))) }
        relay.silentAfter = 1
        let out = try lua("""
        local c = connect()
        local t0 = sftp.now()
        c:get(R .. "/big.bin", "big.bin", {parallel = 3})
        c:get_r(R .. "/tree", "tree", {parallel = 3})
        print(sftp.fs.sha256("big.bin") == sftp.fs.sha256(R .. "/big.bin"), #sftp.fs.ls("tree"), sftp.now() - t0 < 60)
        """, relay: relay, remote: remote, cwd: work, timeout: 120)
        #expect(out == ["true\t10\ttrue"])
        #expect(relay.accepted >= 2)
    }

    @Test func ranged2StreamTransfersResumeToo() throws {
        let relay = try FaultRelay(to: server.port)
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("cutrange")
        let size = 70 << 20   // over the 64 MiB threshold: split over 2 connections
        FileManager.default.createFile(atPath: remote + "/huge.bin", contents: Self.pattern(size, seed: 11))
        relay.cutAfter = 20_000_000
        let out1 = try lua("""
        local c = connect()
        print(kind(c.get, c, R .. "/huge.bin", "huge.bin", {parallel = 2, retries = 0}))
        """, relay: relay, remote: remote, cwd: work)
        #expect(out1 == ["ConnectionError"])
        #expect(!FileManager.default.fileExists(atPath: work + "/huge.bin"))
        relay.cutAfter = nil
        let before = relay.bytesPerConnection().count
        let out2 = try lua("""
        local c = connect()
        c:get(R .. "/huge.bin", "huge.bin", {parallel = 2})
        print(sftp.fs.sha256("huge.bin") == sftp.fs.sha256(R .. "/huge.bin"))
        """, relay: relay, remote: remote, cwd: work)
        #expect(out2 == ["true"])
        #expect(relay.bytesPerConnection().dropFirst(before).reduce(0, +) < size - 10_000_000)
    }

    @Test func recursiveMirrorAndPushCutThenRetried() throws {
        let relay = try FaultRelay(to: server.port)
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("cuttree")
        for d in 0..<4 {
            try FileManager.default.createDirectory(atPath: "\(remote)/src/d\(d)", withIntermediateDirectories: true)
            try FileManager.default.createDirectory(atPath: "\(work)/lsrc/d\(d)", withIntermediateDirectories: true)
            for f in 0..<25 {
                FileManager.default.createFile(atPath: "\(remote)/src/d\(d)/f\(f)", contents: Self.pattern(20_000 + f * 1000, seed: UInt64(d * 100 + f)))
                FileManager.default.createFile(atPath: "\(work)/lsrc/d\(d)/f\(f)", contents: Self.pattern(20_000 + f * 1000, seed: UInt64(500 + d * 100 + f)))
            }
        }
        let ops: [(String, String)] = [
            ("get_r", #"c:get_r(R .. "/src", "g", {parallel = 2, retries = 0})"#),
            ("put_r", #"c:put_r("lsrc", R .. "/p", {parallel = 2, retries = 0})"#),
            ("mirror_down", #"c:mirror_down(R .. "/src", "md", {parallel = 2, delete = true, retries = 0})"#),
            ("mirror_up", #"c:mirror_up("lsrc", R .. "/mu", {parallel = 2, delete = true, retries = 0})"#),
            ("push", #"os.execute("[ -d asrc ] || cp -r lsrc asrc"); local a = sftp.syncagent{connection = c, local_root = "asrc", remote_root = R .. "/push"}; if #a.upload_queue == 0 and not sftp.fs.stat("asrc/.sftplua-queue") then for d = 0, 3 do for f = 0, 24 do a.upload_queue:add(("d%d/f%d"):format(d, f)) end end end; a:push({retries = 0})"#),
        ]
        for (name, call) in ops {
            for cut in [150_000, 600_000] {
                relay.cutAfter = cut
                let out = try lua("""
                local c = connect()
                local ok, e = pcall(function() \(call) end)
                print(ok and "ok" or e.kind)
                """, relay: relay, remote: remote, cwd: work)
                #expect(out == ["ConnectionError"], "\(name) cut at \(cut): \(out)")
            }
            relay.cutAfter = nil
            // Every file under a final name is whole, before the retry.
            let check = try lua("""
            local bad = 0
            local function whole(root, ref)
              sftp.walktree(root, function(p)
                local rel = p:sub(#root + 2)
                if not sftp.is_temp_name(rel:match("[^/]*$")) and slurp(p) ~= slurp(ref .. "/" .. rel) then bad = bad + 1 end
              end)
            end
            for _, pair in ipairs({{"g", R .. "/src"}, {"md", R .. "/src"}, {R .. "/p", "lsrc"}, {R .. "/mu", "lsrc"}, {R .. "/push", "lsrc"}}) do
              if sftp.fs.stat(pair[1]) then whole(pair[1], pair[2]) end
            end
            print(bad)
            """, relay: relay, remote: remote, cwd: work)
            #expect(check == ["0"], "\(name)")
            let retry = try lua("""
            local c = connect()
            \(call)
            local src, n = digest(\(name == "get_r" || name == "mirror_down" ? "R .. \"/src\"" : "\"lsrc\""))
            local dst = digest(\(["get_r": "\"g\"", "mirror_down": "\"md\"", "put_r": "R .. \"/p\"", "mirror_up": "R .. \"/mu\"", "push": "R .. \"/push\""][name]!))
            print(n, src == dst)
            """, relay: relay, remote: remote, cwd: work)
            #expect(retry == ["100\ttrue"], "\(name) retry: \(retry)")
        }
        // A second mirror right after plans nothing.
        let again = try lua("""
        local c = connect()
        local a, b = c:mirror_down(R .. "/src", "md"), c:mirror_up("lsrc", R .. "/mu")
        print(#a.actions, #b.actions)
        """, relay: relay, remote: remote, cwd: work)
        #expect(again == ["0\t0"])
    }

    @Test func stalledLinkWithTimeoutRaisesTimeout() throws {
        let relay = try FaultRelay(to: server.port)
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("stall")
        FileManager.default.createFile(atPath: remote + "/f.bin", contents: Self.pattern(4 << 20, seed: 3))
        let kh = try relay.knownHosts(copying: server)
        let script = """
        local c = sftp.connect{host = "127.0.0.1", port = \(relay.port), known_hosts = "\(kh)", timeout = 2}
        local f = io.open("go", "w"); f:close()
        local t0 = sftp.now()
        local ok, e = pcall(c.get, c, "\(remote)/f.bin", "f.bin", {retries = 0})
        print(e.kind, sftp.now() - t0 < 30)
        """
        // Stall the link once the script is connected (it creates "go").
        let staller = Thread {
            for _ in 0..<600 {
                if FileManager.default.fileExists(atPath: work + "/go") { relay.stalled = true; return }
                usleep(10_000)
            }
        }
        relay.bytesPerSecond = 200_000   // slow enough that the stall lands mid-transfer
        staller.start()
        let r = try server.runScript(script, cwd: work)
        relay.stalled = false
        #expect(r.stdout == "Timeout\ttrue\n", "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: work + "/f.bin"))
    }

    /// Ctrl-C during a rate-limited tree copy stops it where it is: the files in flight are
    /// abandoned (no temp file stays, no half file under a final name), the rest never start.
    /// Before, the files in flight were finished at the rate (all 8 landed, then Interrupted).
    @Test func ctrlCStopsARateLimitedTreeCopy() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("ratestop")
        try FileManager.default.createDirectory(atPath: remote + "/tree", withIntermediateDirectories: true)
        for f in 0..<8 { FileManager.default.createFile(atPath: remote + "/tree/f\(f)", contents: Self.pattern(250_000, seed: UInt64(f))) }
        FileManager.default.createFile(atPath: work + "/up.bin", contents: Self.pattern(2 << 20, seed: 11))
        try FileManager.default.createDirectory(atPath: work + "/src", withIntermediateDirectories: true)
        for f in 0..<6 { FileManager.default.createFile(atPath: work + "/src/s\(f)", contents: Self.pattern(250_000, seed: UInt64(20 + f))) }
        let r = try server.runScript("""
        local pid = io.open("/proc/self/stat"):read("n")
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port)}
        local function ctrl_c_in(s) os.execute(("(sleep %s; kill -INT %d) &"):format(s, pid)) end
        local function names(dir)
          local whole, temp, partial = 0, 0, 0
          for _, a in ipairs(sftp.fs.ls(dir)) do
            if sftp.is_temp_name(a.filename) then temp = temp + 1
            elseif a.st_size == 250000 then whole = whole + 1 else partial = partial + 1 end
          end
          return whole, temp, partial
        end
        ctrl_c_in(1)
        local ok, e = pcall(c.get_r, c, "\(remote)/tree", "tree", {bwlimit = "200K", retries = 0})
        print(ok, e.kind)
        local whole, temp, partial = names("tree")
        print(whole < 8, temp, partial)
        -- A single upload: no final name appears (its temp file may stay for a resume).
        ctrl_c_in(0.5)
        ok, e = pcall(c.put, c, "up.bin", "\(remote)/up.bin", {bwlimit = "200K", retries = 0})
        print(ok, e.kind, c:exists("\(remote)/up.bin"))
        """, cwd: work)
        #expect(r.stdout == "false\tInterrupted\ntrue\t0\t0\nfalse\tInterrupted\tfalse\n", "\(r.stderr)")
        // Uncaught, the script ends at once (exit 130): the abandoned uploads' temp files are
        // still removed (their REMOVEs are waited for, not left queued), for a single put and a tree.
        for call in ["c:put(\"up.bin\", \"\(remote)/up2.bin\", {bwlimit = \"200K\", retries = 0})",
                     "c:mirror_up(\"src\", \"\(remote)/up3\", {bwlimit = \"200K\", retries = 0})"] {
            let cut = try server.runScript("""
            local pid = io.open("/proc/self/stat"):read("n")
            local c = sftp.connect{host = "127.0.0.1", port = \(server.port)}
            os.execute(("(sleep 1; kill -INT %d) &"):format(pid))
            \(call)
            """, cwd: work)
            #expect(cut.status == 130, "\(cut.stderr)")
            let left = try FileManager.default.contentsOfDirectory(atPath: remote).filter { $0.hasPrefix(".up2") }
                + ((try? FileManager.default.contentsOfDirectory(atPath: remote + "/up3")) ?? []).filter { $0.hasPrefix(".") }
            #expect(left.isEmpty, "\(call): \(left)")
        }
    }

    /// bwlimit holds on the wire, not only on average: one second into a 4 MiB get or put at
    /// 1M, about 1 MiB has moved (plus a quarter second in flight), not the whole file followed
    /// by a wait (before, a download's replies all arrived at once and an upload was held back,
    /// then sent in one burst). An upper bound on bytes moved, which a slow machine only lowers.
    @Test func bandwidthLimitHoldsOnTheWire() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("bwwire")
        FileManager.default.createFile(atPath: remote + "/down.bin", contents: Self.pattern(4 << 20, seed: 5))
        FileManager.default.createFile(atPath: work + "/up.bin", contents: Self.pattern(4 << 20, seed: 6))
        try FileManager.default.createDirectory(atPath: work + "/dl", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: remote + "/ul", withIntermediateDirectories: true)
        let r = try server.runScript("""
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port)}
        local function bytes_in(dir)   -- every file's size, hidden temp files included
          local n = 0
          for _, a in ipairs(sftp.fs.ls(dir)) do n = n + (a.st_size or 0) end
          return n
        end
        local function sample(dir, out) os.execute(("(sleep 1; du -sb --apparent-size %s > %s) &"):format(dir, out)) end
        sample("dl", "down.size")
        c:get("\(remote)/down.bin", "dl/down.bin", {bwlimit = "1M"})
        sample("\(remote)/ul", "up.size")
        c:put("up.bin", "\(remote)/ul/up.bin", {bwlimit = "1M"})
        local function at_one_second(f) local h = io.open(f); local n = h:read("n"); h:close(); return n end
        print(at_one_second("down.size") < 2 * 1048576, at_one_second("up.size") < 2 * 1048576, bytes_in("dl"), bytes_in("\(remote)/ul"))
        """, cwd: work)
        #expect(r.stdout == "true\ttrue\t4194304\t4194304\n", "\(r.stderr)")
    }

    /// The same with `parallel = 3`: every connection stops, not only the one on the Lua thread
    /// (which takes the Ctrl-C request; the others stop because it was taken since they
    /// started). Two files in flight per connection, so each of them has some.
    @Test func ctrlCStopsEveryConnectionOfAParallelCopy() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("ratestop-par")
        try FileManager.default.createDirectory(atPath: remote + "/tree", withIntermediateDirectories: true)
        for f in 0..<6 { FileManager.default.createFile(atPath: remote + "/tree/f\(f)", contents: Self.pattern(250_000, seed: UInt64(f))) }
        let r = try server.runScript("""
        local pid = io.open("/proc/self/stat"):read("n")
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port)}
        os.execute(("(sleep 1.5; kill -INT %d) &"):format(pid))
        local ok, e = pcall(c.get_r, c, "\(remote)/tree", "tree", {bwlimit = "200K", retries = 0, parallel = 3})
        print(ok, e.kind)
        local whole, temp, partial = 0, 0, 0
        for _, a in ipairs(sftp.fs.ls("tree")) do
          if sftp.is_temp_name(a.filename) then temp = temp + 1
          elseif a.st_size == 250000 then whole = whole + 1 else partial = partial + 1 end
        end
        print(whole < 6, temp, partial)
        """, env: ["SFTPLUA_FILES_IN_FLIGHT": "2"], cwd: work)
        #expect(r.stdout == "false\tInterrupted\ntrue\t0\t0\n", "\(r.stderr)")
    }

    @Test func watchSurvivesCutConnections() throws {
        let relay = try FaultRelay(to: server.port)
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("cutwatch")
        // The watch cuts its own link from on_poll (a file the test relay watches for).
        let cutter = Thread {
            var cuts = 0
            for _ in 0..<3000 where cuts < 2 {
                if FileManager.default.fileExists(atPath: work + "/cut\(cuts)") { relay.cutAll(); cuts += 1 }
                usleep(10_000)
            }
        }
        cutter.start()
        let out = try lua("""
        local c = connect()
        local n = c:watch(R, {interval = 0.1, max_backoff = 0.3, duration = 60, on_poll = function(st)
          if st.polls == 1 then io.open("cut0", "w"):close(); local f = io.open(R .. "/a", "w"); f:write("a"); f:close() end
          if st.reconnects == 1 and not second then second = true; io.open("cut1", "w"):close(); os.remove(R .. "/a"); local f = io.open(R .. "/b", "w"); f:write("bb"); f:close() end
          if st.reconnects >= 2 and not done then done = true; local f = io.open(R .. "/end", "w"); f:close() end
        end}, function(ev) print(ev.type, ev.path); if ev.path == "end" then return false end end)
        print(n)
        """, relay: relay, remote: remote, cwd: work)
        #expect(out == ["created\ta", "created\tb", "deleted\ta", "created\tend", "4"] || out == ["created\ta", "deleted\ta", "created\tb", "created\tend", "4"], "\(out)")
    }
}
