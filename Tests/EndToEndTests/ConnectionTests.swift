import Foundation
import Testing
import TestSupport

/// Connection methods and authentication through `sftplua run`, against the real sshd.
struct ConnectionTests {
    let server = TestServer.shared

    func run(_ body: String, env: [String: String] = [:]) throws -> ProcessResult {
        let r = try server.runScript("local c <close> = sftp.connect\(server.connectLua)\n" + body, env: env)
        if r.status != 0 { Issue.record("script failed: \(r.stderr)") }
        return r
    }

    @Test func listdirListdirAttrStat() throws {
        let dir = try server.makeRemoteDir()
        for n in ["b.txt", "a b.txt", "ünï.txt"] { try "x\(n)".write(toFile: dir + "/" + n, atomically: true, encoding: .utf8) }
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        let r = try run("""
        print(table.concat(c:listdir("\(dir)"), "|"))
        for _, a in ipairs(c:listdir_attr("\(dir)")) do print(a.filename, a.type, a.st_size, type(a.longname), a.st_mode ~= nil, a.st_mtime > 0) end
        local s = c:stat("\(dir)/b.txt")
        print(s.st_size, s.type, s.st_mode & 0xfff, s.st_uid ~= nil, s.st_gid ~= nil, s.st_atime ~= nil)
        print(c:stat("\(dir)").type)
        local ok, e = pcall(c.listdir, c, "\(dir)/missing")
        print(e.kind, e.path == "\(dir)/missing")
        """)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines[0] == "a b.txt|b.txt|sub|ünï.txt")
        #expect(lines[1] == "a b.txt\tfile\t8\tstring\ttrue\ttrue")
        #expect(lines[3].hasPrefix("sub\tdir\t"))
        #expect(lines[4] == "ünï.txt\tfile\t10\tstring\ttrue\ttrue")
        #expect(lines[5] == "6\tfile\t420\ttrue\ttrue\ttrue")
        #expect(lines[6] == "dir")
        #expect(lines[7] == "FileNotFound\ttrue")
    }

    /// Closing is final: nothing reopens a closed connection, not even the retry machinery.
    @Test func closedIsFinal() throws {
        let r = try run("""
        local c2 = sftp.connect\(server.connectLua)
        c2:close()
        local ok, e = pcall(c2._reconnect, c2)
        print(ok, e.kind)
        ok, e = pcall(c2.listdir, c2, "/")
        print(ok, e.kind, e.message)
        ok, e = pcall(c2.get_r, c2, "/nonexistent", "x", {retries = 2})
        print(ok, e.kind)
        """)
        #expect(r.stdout == "false\tConnectionError\nfalse\tConnectionError\tthe connection is closed\nfalse\tConnectionError\n", "\(r.stderr)")
    }

    @Test func listdirIterStreamsEveryEntryAndClosesOnBreak() throws {
        let dir = try server.makeRemoteDir()
        for i in 0..<700 { try "\(i)".write(toFile: dir + "/f\(i)", atomically: false, encoding: .utf8) }
        try FileManager.default.createDirectory(atPath: dir + "/sub", withIntermediateDirectories: true)
        let r = try run("""
        local names, bytes = {}, 0
        for e in c:listdir_iter("\(dir)") do
          names[#names + 1] = e.filename
          if e.type == "file" then bytes = bytes + e.st_size end
          assert(type(e.longname) == "string" and e.st_mtime)
        end
        table.sort(names)
        local all = c:listdir("\(dir)")
        print(#names, bytes, table.concat(names, ",") == table.concat(all, ","))
        local f, s, ctl, closing = c:listdir_iter("\(dir)")
        for e in f, s, ctl, closing do break end   -- leaving the loop closes the handle
        assert(tostring(closing):match("closed"), tostring(closing))
        local it = c:listdir_iter("\(dir)")
        print(it() ~= nil, tostring(it):match("closed") == nil)
        it:close()
        print(it(), tostring(it):match("closed"))
        local ok, e = pcall(c.listdir_iter, c, "\(dir)/missing")
        print(e.kind, #c:listdir("\(dir)"))
        """)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        let bytes = (0..<700).reduce(0) { $0 + "\($1)".utf8.count }
        #expect(lines == ["701\t\(bytes)\ttrue", "true\ttrue", "nil\tclosed", "FileNotFound\t701"])
    }

    @Test func getAndPutWithCallbacksMtimeAndErrors() throws {
        let dir = try server.makeRemoteDir()
        let local = try makeTempDir("gp")
        let data = String(repeating: "0123456789", count: 300_000)
        try data.write(toFile: local + "/up.bin", atomically: true, encoding: .utf8)
        let r = try server.runScript("""
        local c <close> = sftp.connect\(server.connectLua)
        local calls, last = 0, nil
        local a = c:put("up.bin", "\(dir)/up.bin", {callback = function(d, t) calls = calls + 1; last = d .. "/" .. t end, preserve_mtime = true})
        print(a.st_size, calls > 1, last, a.st_mtime == sftp.fs.stat("up.bin").st_mtime, a.type)
        c:get("\(dir)/up.bin", "down.bin", {preserve_mtime = true})
        c:put("up.bin", "\(dir)/other.bin")
        c:get("\(dir)/other.bin")  -- basename in the local cwd
        print(io.open("down.bin"):read("a") == io.open("up.bin"):read("a"), io.open("other.bin", "r") ~= nil)
        local function kind(f, ...) local ok, e = pcall(f, ...); return e.kind end
        print(kind(c.get, c, "\(dir)/missing", "x"), io.open("x") == nil)
        print(kind(c.put, c, "missing-local", "\(dir)/y"))
        print(kind(c.put, c, "up.bin", "/proc/forbidden/y"))
        print(kind(c.get, c, "\(dir)/up.bin", "/nonexistent-dir/x"))
        """, cwd: local)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines[0] == "3000000\ttrue\t3000000/3000000\ttrue\tfile")
        #expect(lines[1] == "true\ttrue")
        #expect(lines[2] == "FileNotFound\ttrue")
        #expect(lines[3] == "FileNotFound")
        #expect(["FileNotFound", "PermissionDenied"].contains(lines[4]))
        #expect(lines[5] == "FileNotFound")
        // preserve_mtime: both copies carry the source's mtime.
        let src = try FileManager.default.attributesOfItem(atPath: local + "/up.bin")[.modificationDate] as! Date
        let remote = try FileManager.default.attributesOfItem(atPath: dir + "/up.bin")[.modificationDate] as! Date
        let down = try FileManager.default.attributesOfItem(atPath: local + "/down.bin")[.modificationDate] as! Date
        #expect(Int(src.timeIntervalSince1970) == Int(remote.timeIntervalSince1970))
        #expect(Int(remote.timeIntervalSince1970) == Int(down.timeIntervalSince1970))
        // Nothing but the final files on the server.
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).sorted() == ["other.bin", "up.bin"])
    }

    /// A download that fails part way leaves the existing local file untouched.
    @Test func failedDownloadKeepsTheGoodLocalFile() throws {
        let dir = try server.makeRemoteDir()
        let local = try makeTempDir("keep")
        try String(repeating: "x", count: 3_000_000).write(toFile: dir + "/big", atomically: true, encoding: .utf8)
        try "precious".write(toFile: local + "/big", atomically: true, encoding: .utf8)
        let r = try server.runScript("""
        local c <close> = sftp.connect\(server.connectLua)
        local ok, e = pcall(c.get, c, "\(dir)/big", "big", {callback = function(d) if d > 0 then error("stop here", 0) end end})
        print(ok, e)
        """, cwd: local)
        #expect(r.stdout == "false\tstop here\n")
        #expect(try String(contentsOfFile: local + "/big", encoding: .utf8) == "precious")
        #expect(try FileManager.default.contentsOfDirectory(atPath: local) == ["big"])
    }

    @Test func closeIsIdempotentAndClosedUseIsAConnectionError() throws {
        let r = try run("""
        c:close(); c:close()
        local ok, e = pcall(c.listdir, c, "/")
        print(e.kind, c.closed, tostring(c):match("closed") ~= nil)
        do local d <close> = sftp.connect\(server.connectLua); keep = d end
        print(keep.closed)
        """)
        #expect(r.stdout == "ConnectionError\ttrue\ttrue\ntrue\n")
    }

    @Test func authenticationMethods() throws {
        let k = server.keys
        let base = "host = '127.0.0.1', port = \(server.port)"
        let r = try server.runScript("""
        local function try(opts)
          local ok, c = pcall(sftp.connect, opts)
          if ok then local m = c.auth_method:match("^%S+"); c:close(); return m end
          return c.kind .. ": " .. c.message
        end
        print(try{\(base)})
        print(try{\(base), private_key = "\(k)/ecdsa"})
        print(try{\(base), private_key = "\(k)/ed25519_pass", private_key_pass = "sekret-phrase"})
        print((try{\(base), private_key = "\(k)/ed25519_pass"}):match("^%a+"))
        print((try{\(base), private_key = "\(k)/ed25519_pass", private_key_pass = "bad"}):match("^%a+"))
        print((try{\(base), private_key = "\(k)/nope"}):match("^%a+"))
        print((try{\(base), private_key = "\(k)/unauthorized"}):match("^%a+"))
        print(try{\(base), private_key = "~/.ssh/id_ed25519"})
        """)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n").map(String.init) == [
            "publickey", "publickey", "publickey", "CredentialError", "CredentialError", "CredentialError",
            "AuthenticationError", "publickey",
        ])
    }

    @Test func rsaKeysExplainTheRsaSha2Limit() throws {
        let r = try server.runScript("""
        local ok, e = pcall(sftp.connect, {host = '127.0.0.1', port = \(server.port), private_key = '\(server.keys)/rsa'})
        if ok then print("logged in") else print(e.kind, e.message:find("rsa-sha2", 1, true) ~= nil, e.message:find("ed25519", 1, true) ~= nil) end
        """)
        #expect(r.stdout == "AuthenticationError\ttrue\ttrue\n" || r.stdout == "logged in\n")
    }

    /// With ssh-rsa enabled on the server, libssh2's RSA signatures are accepted.
    @Test func rsaKeyWorksWhereTheServerAllowsSshRsa() throws {
        let s = try TestServer(extraConfig: "PubkeyAcceptedAlgorithms +ssh-rsa\nHostKeyAlgorithms +ssh-rsa")
        defer { s.stop() }
        let r = try s.runScript("""
        local c = sftp.connect{host = '127.0.0.1', port = \(s.port), private_key = '\(s.keys)/rsa'}
        print(c.auth_method:match("rsa") ~= nil)
        """)
        #expect(r.stdout == "true\n", "\(r.stderr)")
    }

    @Test(.enabled(if: TestServer.shared.passwordUser != nil, "needs the password account that scripts/setup creates as root"))
    func passwordAuthentication() throws {
        let user = try #require(server.passwordUser)
        let r = try server.runScript("""
        local c = sftp.connect{host = '127.0.0.1', port = \(server.port), username = '\(user)', password = '\(server.password)'}
        print(c.auth_method, c.username)
        local ok, e = pcall(sftp.connect, {host = '127.0.0.1', port = \(server.port), username = '\(user)', password = 'wrong-one'})
        print(e.kind, e.message:find('wrong-one', 1, true) == nil)
        """)
        #expect(r.stdout == "password\t\(user)\nAuthenticationError\ttrue\n", "\(r.stderr)")
    }

    @Test func sshAgentAuthentication() throws {
        let dir = try makeTempDir("agent")
        let sock = dir + "/agent.sock"
        let agent = try runProcess("/usr/bin/ssh-agent", ["-a", sock])
        #expect(agent.status == 0)
        let pid = agent.stdout.components(separatedBy: "SSH_AGENT_PID=").last?.prefix(while: { $0.isNumber }) ?? ""
        defer { if let p = Int32(pid) { kill(p, SIGTERM) } }
        let add = try runProcess("/usr/bin/ssh-add", [server.keys + "/ecdsa"], env: ["SSH_AUTH_SOCK": sock])
        #expect(add.status == 0, "\(add.stderr)")
        let emptyHome = try makeTempDir("agenthome")
        let r = try server.runScript("""
        local c = sftp.connect{host = '127.0.0.1', port = \(server.port), known_hosts = '\(server.knownHosts)'}
        print(c.auth_method:match("ssh%-agent") ~= nil)
        """, env: ["SSH_AUTH_SOCK": sock, "HOME": emptyHome])
        #expect(r.stdout == "true\n", "\(r.stderr)")
    }

    @Test func acceptNewRecordsTheHostInKnownHostsUnderHome() throws {
        let home = try makeTempDir("home")
        try FileManager.default.createDirectory(atPath: home + "/.ssh", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: server.home + "/.ssh/id_ed25519", toPath: home + "/.ssh/id_ed25519")
        let r = try server.runScript("""
        local c = sftp.connect{host = '127.0.0.1', port = \(server.port)}
        print(c.host_key.type, c.host_key.fingerprint:match("^SHA256:") ~= nil)
        """, env: ["HOME": home])
        #expect(r.stdout == "ssh-ed25519\ttrue\n", "\(r.stderr)")
        let kh = try String(contentsOfFile: home + "/.ssh/known_hosts", encoding: .utf8)
        #expect(kh.hasPrefix("[127.0.0.1]:\(server.port) ssh-ed25519 "))
    }

    @Test func connectionLogHasNoSecrets() throws {
        let log = try makeTempDir("log") + "/c.log"
        let r = try server.runScript("""
        local c = sftp.connect{host = '127.0.0.1', port = \(server.port), private_key = '\(server.keys)/ed25519_pass', private_key_pass = 'sekret-phrase', log = '\(log)'}
        print(c.logfile)
        c:listdir("/")
        local t = sftp.connect{host = '127.0.0.1', port = \(server.port), log = true}
        print(t.logfile ~= false and io.open(t.logfile) ~= nil)
        """)
        #expect(r.stdout == "\(log)\ntrue\n", "\(r.stderr)")
        let text = try String(contentsOfFile: log, encoding: .utf8)
        #expect(text.contains("authenticated"))
        #expect(!text.contains("sekret-phrase"))
    }

    @Test func timeoutFieldReadsAndWrites() throws {
        let r = try run("""
        print(c.timeout)
        c.timeout = 2.5
        print(c.timeout)
        c.timeout = nil
        print(c.timeout, (pcall(function() c.timeout = "x" end)))
        local ok, e = pcall(function() c.timout = 1 end)
        print(e.kind, e.message:find("did you mean 'timeout'", 1, true) ~= nil)
        """)
        #expect(r.stdout == "nil\n2.5\nnil\tfalse\nArgumentError\ttrue\n")
    }
}
