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
        try "abc".write(toFile: dir + "/f", atomically: true, encoding: .utf8)
        let out = try r.state.eval("""
        local c = sftp.connect\(server.connectLua)
        local mine = {}
        local ok, e = pcall(c.get, c, "\(dir)/f", os.tmpname(), {callback = function() error(mine) end})
        local ok2, e2 = pcall(c.get, c, "\(dir)/f", os.tmpname(), {callback = function() error("plain", 0) end})
        return e == mine, e2
        """)
        #expect(out == ["true", "plain"])
    }

    @Test func collectedConnectionsAreClosedAndCloseIsIdempotent() throws {
        let r = try runner()
        let out = try r.state.eval("""
        local c = sftp.connect\(server.connectLua)
        c:close(); c:close()
        local ok, e = pcall(c.listdir, c, "/")
        for i = 1, 20 do sftp.connect\(server.connectLua) end
        collectgarbage(); collectgarbage()
        return c.closed, e.kind
        """)
        #expect(out == ["true", "ConnectionError"])
        // The 20 unreferenced connections were closed by __gc: their sockets are gone.
        let fds = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").count
        #expect(fds < 60)
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
        let built = try runProcess(sftpluaBinary, ["-e", "print(sftp.dev_marker, type(sftp.help), #sftp._reference > 1000)"])
        #expect(built.stdout == "nil\tfunction\ttrue\n", "\(built.stderr)")
        let missing = try runProcess(sftpluaBinary, ["-e", "print(1)"], env: ["SFTPLUA_LUA_DIR": dir + "/nope"])
        #expect(missing.status != 0)
    }
}
