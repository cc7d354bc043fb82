import Foundation
import Testing
import TestSupport

/// c:watch (issue 8). Changes are made from the watch's own `on_poll` hook at chosen polls, so
/// every test is deterministic: no sleeps racing the poller.
struct WatchTests {
    let server = TestServer.shared

    func lua(_ body: String, server s: TestServer? = nil, file: String = #function) throws -> (out: [String], status: Int32, err: String) {
        let s = s ?? server
        let remote = try s.makeRemoteDir(file)
        let r = try s.runScript("""
        local c <close> = sftp.connect\(s.connectLua)
        local R = "\(remote)"
        local function kind(f, ...) local ok, e = pcall(f, ...); if ok then return "ok" end; return type(e) == "table" and e.kind or tostring(e) end
        local function show(ev) print(ev.type, ev.path, ev.attr and ev.attr.type or "-", ev.attr and ev.attr.st_size or "-") end
        -- steps[n] runs after poll n
        local function at(steps) return function(st) local f = steps[st.polls]; if f then f(st) end end end
        \(body)
        """, timeout: 120)
        return (r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init), r.status, r.stderr)
    }

    @Test func reportsEachKindOfChangeRecursivelyWithExcludes() throws {
        let (out, status, err) = try lua("""
        c:write(R .. "/old.txt", "old"); c:makedirs(R .. "/sub")
        local n = c:watch(R, {interval = 0.05, exclude = {"*.log", "tmp/"}, duration = 10, on_poll = at{
          [1] = function() c:write(R .. "/new.txt", "hello"); c:write(R .. "/x.log", "ignored") end,
          [2] = function() c:write(R .. "/sub/deep.txt", "deep"); c:makedirs(R .. "/tmp/t"); c:write(R .. "/tmp/t/f", "no") end,
          [3] = function() c:write(R .. "/new.txt", "hello world") end,
          [4] = function() c:remove(R .. "/old.txt"); c:mkdir(R .. "/d2") end,
          [5] = function() c:remove(R .. "/sub/deep.txt"); c:rmdir(R .. "/sub") end,
          [7] = function() c:write(R .. "/stop-now", "") end,
        }}, function(ev) show(ev); if ev.path == "stop-now" then return false end end)
        print("events", n)
        """)
        #expect(status == 0, "\(err)")
        #expect(out == [
            "created\tnew.txt\tfile\t5",
            "created\tsub/deep.txt\tfile\t4",
            "modified\tnew.txt\tfile\t11",
            "created\td2\tdir\t4096",
            "deleted\told.txt\t-\t-",
            "deleted\tsub\t-\t-",
            "deleted\tsub/deep.txt\t-\t-",
            "created\tstop-now\tfile\t0",
            "events\t8",
        ])
    }

    @Test func durationEndsAWatchWithNoEvents() throws {
        let (out, status, err) = try lua("""
        c:makedirs(R .. "/sub")
        local t0 = sftp.now()
        print(c:watch(R, {interval = 0.05, duration = 0.3}, function() end), sftp.now() - t0 >= 0.3)
        """)
        #expect(status == 0, "\(err)")
        #expect(out == ["0\ttrue"])
    }

    @Test func eventsEndsAWatchAfterThatManyEvents() throws {
        let (out, status, err) = try lua("""
        print(c:watch(R, {interval = 0.05, events = 2, on_poll = at{[1] = function() for i = 1, 5 do c:write(R .. "/f" .. i, "x") end end}}, show))
        """)
        #expect(status == 0, "\(err)")
        #expect(out == ["created\tf1\tfile\t1", "created\tf2\tfile\t1", "2"])
    }

    /// recursive = false: a change in a subdirectory is not reported; returning false ends the watch.
    @Test func nonRecursiveWatchSeesOnlyTheTopDirectory() throws {
        let (out, status, err) = try lua("""
        c:makedirs(R .. "/sub")
        print(c:watch(R, {interval = 0.05, recursive = false, duration = 1, on_poll = at{
          [1] = function() c:write(R .. "/sub/inner", "x") end,
          [3] = function() c:write(R .. "/top", "x") end}}, function(ev) show(ev); return false end))
        """)
        #expect(status == 0, "\(err)")
        #expect(out == ["created\ttop\tfile\t1", "1"])
    }

    @Test func badWatchArgumentsAreArgumentErrors() throws {
        let (out, status, err) = try lua("""
        print(kind(c.watch, c, R, {interval = -1}, show), kind(c.watch, c, R, {intervall = 1}, show), kind(c.watch, c, R, {}),
              kind(c.watch, c, R .. "/missing", {}, show), kind(c.watch, c, R, {events = 1.5}, show))
        """)
        #expect(status == 0, "\(err)")
        #expect(out == ["ArgumentError\tArgumentError\tArgumentError\tFileNotFound\tArgumentError"])
    }

    @Test func watchCallbackErrorsPassThroughUnchanged() throws {
        let (out, status, err) = try lua("""
        local marker = {}
        local ok, e = pcall(c.watch, c, R, {interval = 0.05, on_poll = at{[1] = function() c:write(R .. "/boom", "") end}}, function() error(marker) end)
        print(e == marker)
        """)
        #expect(status == 0, "\(err)")
        #expect(out == ["true"])
    }

    /// With settle, a file still growing is reported once, when it held still long enough.
    @Test func settleWaitsForAFileToStopChanging() throws {
        let (out, status, err) = try lua("""
        local f
        local n = c:watch(R, {interval = 0.1, settle = 0.35, duration = 10, on_poll = at{
          [1] = function() f = c:open(R .. "/growing.bin", "w"); f:write(string.rep("a", 1000)); f:flush() end,
          [2] = function() f:write(string.rep("b", 1000)); f:flush() end,
          [3] = function() f:write(string.rep("c", 1000)); f:close() end,
          [12] = function() c:write(R .. "/end", "") end,
        }}, function(ev) show(ev); if ev.path == "end" then return false end end)
        print(n)
        """)
        #expect(status == 0, "\(err)")
        #expect(out == ["created\tgrowing.bin\tfile\t3000", "created\tend\tfile\t0", "2"])
    }

    /// relist = "changed": directories whose mtime did not move are not listed again.
    @Test func relistChangedListsOnlyChangedDirectories() throws {
        let (out, status, err) = try lua("""
        for d = 1, 5 do c:makedirs(R .. "/d" .. d); c:write(R .. "/d" .. d .. "/f", "x") end
        sftp.sleep(2.1)   -- listings made 2 s after the mtimes can be trusted (1 s of clock skew allowed)
        local last
        local n = c:watch(R, {interval = 0.4, relist = "changed", duration = 30, on_poll = function(st)
          last = {polls = st.polls, listed = st.listed, stated = st.stated}
          if st.polls == 1 then c:write(R .. "/d3/new", "abc") end
          if st.polls == 2 then c:remove(R .. "/d2/f") end
          if st.polls == 9 then c:write(R .. "/stop", "") end
        end}, function(ev) show(ev); if ev.path == "stop" then return false end end)
        -- "always" would list 6 dirs per poll (60 by poll 9); a changed dir is listed again only
        -- until its mtime is 2 s old
        print(n, last.polls, last.listed < 30, last.stated >= 6 * last.polls)
        """)
        #expect(status == 0, "\(err)")
        #expect(out == ["created\td3/new\tfile\t3", "deleted\td2/f\t-\t-", "created\tstop\tfile\t0", "3\t9\ttrue\ttrue"])
    }

    /// The server is stopped mid-watch, files change while it is down, and it comes back: the
    /// watch reconnects and reports each change exactly once.
    @Test func reconnectsAfterTheServerRestarts() throws {
        let own = try TestServer()
        let restartedPidFile = own.dir + "/server/sshd.pid"
        defer {
            // The restarted sshd first: its pid file is in the dir that stop() removes.
            if let s = try? String(contentsOfFile: restartedPidFile, encoding: .utf8), let p = Int32(s.trimmingCharacters(in: .whitespacesAndNewlines)) { kill(p, SIGTERM) }
            own.stop()
        }
        let sshd = FileManager.default.isExecutableFile(atPath: "/usr/sbin/sshd") ? "/usr/sbin/sshd" : "sshd"
        let (out, status, err) = try lua("""
        c:write(R .. "/before.txt", "b")
        local n = c:watch(R, {interval = 0.1, max_backoff = 0.5, duration = 60, on_poll = function(st)
          if st.polls == 1 then
            os.execute("pkill -KILL -P \(own.pid); kill -KILL \(own.pid)")
            -- while the server is down: one file appears, one changes, one goes
            local f = io.open(R .. "/while-down.txt", "w"); f:write("new"); f:close()
            f = io.open(R .. "/before.txt", "w"); f:write("changed"); f:close()
            os.execute("(sleep 1.5; exec \(sshd) -D -e -f \(own.dir)/server/sshd_config </dev/null >/dev/null 2>&1) &")
          end
          if st.reconnects > 0 and not stopped then stopped = true; c:write(R .. "/after.txt", "a") end
        end}, function(ev) show(ev); if ev.path == "after.txt" then return false end end)
        print(n)
        """, server: own)
        #expect(status == 0, "\(err)")
        #expect(out == ["modified\tbefore.txt\tfile\t7", "created\twhile-down.txt\tfile\t3", "created\tafter.txt\tfile\t1", "3"])
    }

    /// Ctrl-C (SIGINT) ends the watch cleanly: it returns its count and the script goes on.
    @Test func ctrlCEndsTheWatchCleanly() throws {
        let (out, status, err) = try lua("""
        local pid = io.open("/proc/self/stat"):read("n")
        local n = c:watch(R, {interval = 0.05, duration = 60, on_poll = at{
          [1] = function() c:write(R .. "/one", "1") end,
          -- in the background: system() ignores SIGINT while its child runs
          [3] = function() os.execute("(sleep 0.3; kill -INT " .. pid .. ") &") end,
        }}, show)
        print("returned", n)
        """)
        #expect(status == 0, "\(err)")
        #expect(out == ["created\tone\tfile\t1", "returned\t1"])
    }

    /// Ctrl-C ends `sftp.sleep` at once (one nanosleep, cut short by the signal on the Lua
    /// thread), with an `Interrupted` error; the next sleep sleeps its whole time.
    @Test func ctrlCEndsASleepAtOnce() throws {
        let (out, status, err) = try lua("""
        local pid = io.open("/proc/self/stat"):read("n")
        os.execute("(sleep 0.3; kill -INT " .. pid .. ") &")
        local t = sftp.now()
        local ok, e = pcall(sftp.sleep, 60)
        print(ok, e.kind, sftp.now() - t < 10)
        t = sftp.now()
        sftp.sleep(0.2)
        print(sftp.now() - t >= 0.19)
        """)
        #expect(status == 0, "\(err)")
        #expect(out == ["false\tInterrupted\ttrue", "true"])
    }
}

extension ExampleTests {
    @Test func watchExample() throws {
        let dir = try server.makeRemoteDir()
        let work = try makeTempDir("watchex")
        try FileManager.default.createDirectory(atPath: dir + "/inbox", withIntermediateDirectories: true)
        try "waiting".write(toFile: dir + "/inbox/early.txt", atomically: true, encoding: .utf8)
        // A file lands while the watcher runs.
        let dropper = Thread {
            Thread.sleep(forTimeInterval: 1.5)
            try? "order 42".write(toFile: dir + "/inbox/order-42.txt", atomically: true, encoding: .utf8)
        }
        dropper.start()
        let r = try runProcess(sftpluaBinary, ["run", repoRoot.path + "/examples/watch.lua", dir, work + "/in", "5"],
                               env: ["HOME": server.home, "SFTPLUA_HOST": "127.0.0.1", "SFTPLUA_PORT": String(server.port)], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("fetched early.txt (7 bytes)"))
        #expect(r.stdout.contains("fetched order-42.txt (8 bytes)"))
        #expect(FileManager.default.contents(atPath: work + "/in/order-42.txt") == Data("order 42".utf8))
        #expect(FileManager.default.fileExists(atPath: dir + "/processed/order-42.txt"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/inbox/order-42.txt"))
    }
}
