import Foundation
import LuaHost
import SFTPLua
import Testing
import TestSupport

/// The bindings in-process, against the real test sshd.
struct BindingTests {
    let server = TestServer.shared

    func runner() throws -> Runner {
        setenv("HOME", server.home, 1)
        return try Runner(stderr: { _ in })
    }

    @Test func errorObjectsHaveKindMessagePathCodeAndTostring() throws {
        let r = try runner()
        let out = try r.state.eval("""
        local c = sftp.connect\(server.connectLua)
        local ok, e = pcall(c.stat, c, "/no/such/file")
        return ok, e.kind, e.message, e.path, e.code, tostring(e), getmetatable(e).__name
        """)
        #expect(out == ["false", "FileNotFound", "stat /no/such/file: no such file", "/no/such/file", "2",
                        "FileNotFound: stat /no/such/file: no such file", "sftp.Error"])
    }

    @Test func callbackErrorsPassThroughUnchanged() throws {
        let r = try runner()
        let dir = try server.makeRemoteDir()
        let local = try makeTempDir("callback")
        try "abc".write(toFile: dir + "/f", atomically: true, encoding: .utf8)
        let out = try r.state.eval("""
        local c = sftp.connect\(server.connectLua)
        local mine = {}
        local ok, e = pcall(c.get, c, "\(dir)/f", "\(local)/a", {callback = function() error(mine) end})
        local ok2, e2 = pcall(c.get, c, "\(dir)/f", "\(local)/b", {callback = function() error("plain", 0) end})
        return e == mine, e2
        """)
        #expect(out == ["true", "plain"])
    }

    @Test func closeIsIdempotentAndAClosedConnectionRaisesConnectionError() throws {
        let r = try runner()
        let out = try r.state.eval("""
        local c = sftp.connect\(server.connectLua)
        c:close(); c:close()
        local ok, e = pcall(c.listdir, c, "/")
        return c.closed, ok, e.kind
        """)
        #expect(out == ["true", "false", "ConnectionError"])
    }

    /// Connections (and a remote file opened on every other one) left to the collector are
    /// closed by __gc: no libssh2 session, channel or file stays alive and the process has
    /// exactly the descriptors it had before. Counted in a process of its own (sftplua -e):
    /// tests in this process run in parallel and open connections and descriptors of their own.
    @Test func collectedConnectionsLeaveNoSessionChannelFileOrDescriptor() throws {
        let dir = try server.makeRemoteDir()
        try "abc".write(toFile: dir + "/f", atomically: true, encoding: .utf8)
        let r = try runProcess(sftpluaBinary, ["-e", """
        local opts = \(server.connectLua)
        local function fds() return #sftp.fs.ls("/proc/self/fd") end
        local function live() local l = sftp._live(); return ("%d %d %d"):format(l.sessions, l.channels, l.files) end
        sftp.connect(opts):close()   -- what the first connection sets up once (not per connection)
        collectgarbage(); collectgarbage()
        local before, liveBefore = fds(), live()
        for i = 1, 20 do
          local c = sftp.connect(opts)
          if i % 2 == 0 then c:open("\(dir)/f") end
        end
        local held = live()
        collectgarbage(); collectgarbage()
        print(liveBefore, held, live(), fds() - before)
        """], env: ["HOME": server.home])
        #expect(r.status == 0, "\(r.stderr)")
        // Before: nothing alive; 20 sessions, 20 SFTP channels and 10 files held; after: nothing,
        // and no descriptor more or less than before the connects.
        #expect(r.stdout == "0 0 0\t20 20 10\t0 0 0\t0\n", "\(r.stdout)")
    }

    @Test func requireReturnsTheGlobal() throws {
        let r = try runner()
        #expect(try r.state.eval("return require('sftp') == sftp, type(sftp.connect)") == ["true", "function"])
    }

    /// The binary carries lua/ as built; SFTPLUA_LUA_DIR loads it from a directory instead.
    @Test func luaLoadsFromSFTPLUA_LUA_DIRForDevelopment() throws {
        let dir = try makeTempDir("luadir")
        for name in try FileManager.default.contentsOfDirectory(atPath: repoRoot.path + "/lua") where name.hasSuffix(".lua") {
            try FileManager.default.copyItem(atPath: repoRoot.path + "/lua/" + name, toPath: dir + "/" + name)
        }
        try "local sftp = require(\"sftp\")\nsftp.dev_marker = 42\n".write(toFile: dir + "/zz-dev.lua", atomically: true, encoding: .utf8)
        let dev = try runProcess(sftpluaBinary, ["-e", "print(sftp.dev_marker, sftp.is_temp_name('.a.sftplua.part'))"],
                                 env: ["SFTPLUA_LUA_DIR": dir])
        #expect(dev.stdout == "42\ttrue\n", "\(dev.stderr)")
        let built = try runProcess(sftpluaBinary, ["-e", "print(sftp.dev_marker, type(sftp.help), #require(\"sftp.core\").reference > 1000)"])
        #expect(built.stdout == "nil\tfunction\ttrue\n", "\(built.stderr)")
        let missing = try runProcess(sftpluaBinary, ["-e", "print(1)"], env: ["SFTPLUA_LUA_DIR": dir + "/nope"])
        #expect(missing.status != 0)
        #expect(missing.stderr.contains("SFTPLUA_LUA_DIR: cannot list \(dir)/nope"), "\(missing.stderr)")
        // A directory without the library is an error naming what it lacks, not a run without it.
        let empty = try makeTempDir("luadir-empty")
        let bare = try runProcess(sftpluaBinary, ["-e", "print(1)"], env: ["SFTPLUA_LUA_DIR": empty])
        #expect(bare.status != 0 && bare.stdout.isEmpty && bare.stderr.contains("lacks connection.lua"), "\(bare.stderr)")
        // A chunk is bytes, as Lua reads it: a comment that is not UTF-8 loads.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/zz-dev.lua"))
        handle.seekToEndOfFile()
        handle.write(Data([0x2d, 0x2d, 0x20, 0xff, 0x0a]))
        try handle.close()
        let bytes = try runProcess(sftpluaBinary, ["-e", "print(sftp.dev_marker)"], env: ["SFTPLUA_LUA_DIR": dir])
        #expect(bytes.stdout == "42\n", "\(bytes.stderr)")
    }
}
