import Foundation
import Testing
import TestSupport

/// Hostile input (issue 10): random option tables, names no sshd can create, and secrets.
struct HostileInputTests {
    let server = TestServer.shared

    func run(_ body: String, args: [String] = [], env: [String: String] = [:], cwd: String? = nil) throws -> ProcessResult {
        try server.runScript(body, env: env, cwd: cwd, timeout: 300)
    }

    /// Random tables (wrong types, unknown keys, huge numbers, nesting) into every options
    /// parser and the recipe loader: always an ArgumentError naming a field of the table, or, for
    /// a table that happens to be valid, the call's ordinary outcome. Never a crash.
    @Test func fuzzedOptionsAndRecipesGiveArgumentErrors() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("fuzz")
        try FileManager.default.createDirectory(atPath: remote + "/d", withIntermediateDirectories: true)
        try "x".write(toFile: remote + "/d/f", atomically: true, encoding: .utf8)
        let r = try run("""
        math.randomseed(12345)
        local c <close> = sftp.connect\(server.connectLua)
        local R = "\(remote)"
        local values = {0, -1, 1, 2^53, -2^63, 1e308, 0/0, math.huge, 3.5, "", "x", "../..", ("A"):rep(5000), true, false,
                        {}, {1, 2}, {"*.log"}, {a = 1}, function() return true end, function() error("boom") end, c}
        local junk = {"bogus", "delet", "paralel", "", "1", "__index", "intervall", ("k"):rep(300)}
        local function rnd(t) return t[math.random(#t)] end
        local function table_for(valid)
          local t = {}
          for _ = 1, math.random(0, 4) do
            local k = math.random() < 0.7 and rnd(valid) or rnd(junk)
            t[k] = rnd(values)
          end
          if math.random() < 0.1 then t[math.random(1, 3)] = rnd(values) end
          return t
        end
        local function fields_of(t) local s = {} for k in pairs(t) do s[#s + 1] = tostring(k) end return s end
        local function names_a_field(msg, t)
          for k in pairs(t) do if type(k) == "string" and k ~= "" and msg:find(k, 1, true) then return true end end
          return msg:find("bad argument", 1, true) or msg:find("option", 1, true) or msg:find("recipe", 1, true)
        end
        local stats = {arg = 0, other = 0, ok = 0}
        local bad = {}
        local function try(label, t, f, ...)
          local ok, e = pcall(f, ...)
          if ok then stats.ok = stats.ok + 1 return end
          -- A callback's own error passes through unchanged (the contract).
          if type(e) == "string" and e:find(": boom$") then stats.other = stats.other + 1 return end
          if type(e) ~= "table" or not e.kind then bad[#bad + 1] = label .. ": not an error object: " .. tostring(e) return end
          if e.kind == "ArgumentError" then
            stats.arg = stats.arg + 1
            if not names_a_field(e.message, t) then bad[#bad + 1] = label .. ": " .. e.message .. " {" .. table.concat(fields_of(t), ",") .. "}" end
          else
            stats.other = stats.other + 1
          end
        end
        local mirror_keys = {"delete", "exclude", "include", "filter", "compare", "dry_run", "preserve_mtime", "parallel", "on_action"}
        local watch_keys = {"interval", "recursive", "exclude", "settle", "duration", "events", "max_backoff", "relist", "on_poll"}
        local connect_keys = {"host", "port", "username", "private_key", "password", "known_hosts", "host_key", "timeout", "ciphers", "compression", "log"}
        for i = 1, 300 do
          local t = table_for(mirror_keys); t.dry_run = true
          try("mirror_down", t, c.mirror_down, c, R .. "/d", "m", t)
          t = table_for(mirror_keys); t.dry_run = true
          try("mirror_up", t, c.mirror_up, c, ".", R .. "/u", t)
          t = table_for(watch_keys); t.duration = 0
          try("watch", t, c.watch, c, R .. "/d", t, function() end)
          t = table_for({"callback", "preserve_mtime", "parallel"})
          try("get", t, c.get, c, R .. "/d/f", "g", t)
          t = table_for(connect_keys); t.host = t.host and "127.0.0.1"; t.port = 1; t.timeout = 2; t.log = nil
          try("connect", t, sftp.connect, t)
          local rule = table_for({"down", "up", "to", table.unpack(mirror_keys)})
          local recipe = table_for({"connect", "mirror", "name", "defaults"})
          if math.random() < 0.7 then recipe.mirror = {rule} end
          try("recipe", recipe, sftp.check_recipe, recipe)
        end
        print(#bad)
        for i = 1, math.min(#bad, 10) do print(bad[i]) end
        print(stats.arg > 500, stats.ok + stats.other > 10)
        """, cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.first == "0", "\(lines.prefix(11).joined(separator: "\n"))")
        #expect(lines.last == "true\ttrue", "\(r.stdout)")
    }

    /// Every tree walk stops at the same depth with the same error (a loop of links a server
    /// follows, or a hostile tree, cannot run away).
    @Test func treesDeeperThanTheLimitStopEveryWalk() throws {
        let remote = try server.makeRemoteDir()
        var deep = remote + "/deep"
        for _ in 0...257 { deep += "/d" }
        try FileManager.default.createDirectory(atPath: deep, withIntermediateDirectories: true)
        let r = try run("""
        local c <close> = sftp.connect\(server.connectLua)
        local R = "\(remote)"
        local function msg(f, ...) local ok, e = pcall(f, ...); return ok and "ok" or (e.kind .. ": " .. e.message) end
        print(msg(c.walktree, c, R .. "/deep", function() end))
        print(msg(c.get_r, c, R .. "/deep", "out"))
        print(msg(c.put_r, c, R .. "/deep", R .. "/copy"))
        print(msg(c.mirror_down, c, R .. "/deep", "m"))
        """)
        let lines = r.stdout.split(separator: "\n").map(String.init)
        #expect(lines.count == 4, "\(r.stdout) \(r.stderr)")
        for (line, kind) in zip(lines, ["IOError", "IOError", "OSError", "IOError"]) {
            #expect(line.hasPrefix(kind + ": ") && line.contains("directories nested deeper than 256 levels under "), "\(line)")
        }
    }

    /// The path-safety rule, on a generated table of names (including ones no sshd can create:
    /// "/", NUL): a name is used only when joining it to a root gives a direct child of the root.
    @Test func pathSafetyOnGeneratedNames() throws {
        let r = try run("""
        local U = require("sftp.util")
        local parts = {"a", ".", "..", "/", "\\0", "b", " ", "\\\\", "~", "é"}
        local function normalize(p)
          local out = {}
          for seg in p:gmatch("[^/]+") do
            if seg == ".." then if #out == 0 then return nil end; table.remove(out)
            elseif seg ~= "." then out[#out + 1] = seg end
          end
          return "/" .. table.concat(out, "/")
        end
        local checked, wrong = 0, {}
        local function check(name)
          checked = checked + 1
          local unsafe = U.unsafe_name(name) and true or false
          local joined = normalize("/root/" .. name)
          local child = joined ~= nil and not name:find("\\0", 1, true) and joined:match("^/root/[^/]+$") ~= nil
                        and joined == "/root/" .. name
          if unsafe == child then wrong[#wrong + 1] = ("%q unsafe=%s"):format(name, tostring(unsafe)) end
        end
        check("")
        for _, a in ipairs(parts) do
          check(a)
          for _, b in ipairs(parts) do
            check(a .. b)
            for _, c in ipairs(parts) do check(a .. b .. c) end
          end
        end
        print(checked, #wrong)
        for i = 1, math.min(5, #wrong) do print(wrong[i]) end
        """)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.hasPrefix("1111\t0\n"), "\(r.stdout)")
    }

    /// A tree on the server with links pointing outside it: nothing is written outside the
    /// local target by get_r, mirror_down or the agent.
    @Test func linksOnTheServerNeverLeadOutside() throws {
        let remote = try server.makeRemoteDir()
        let outside = try makeTempDir("victim")
        let work = try makeTempDir("hostile")
        try FileManager.default.createDirectory(atPath: remote + "/t/sub", withIntermediateDirectories: true)
        try "ok".write(toFile: remote + "/t/ok.txt", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: remote + "/t/escape-dir", withDestinationPath: outside)
        try FileManager.default.createSymbolicLink(atPath: remote + "/t/sub/up", withDestinationPath: "../..")
        try FileManager.default.createSymbolicLink(atPath: remote + "/t/passwd", withDestinationPath: "/etc/passwd")
        let r = try run("""
        local c <close> = sftp.connect\(server.connectLua)
        c:get_r("\(remote)/t", "g")
        local m = c:mirror_down("\(remote)/t", "m")
        local a = sftp.syncagent{connection = c, local_root = "cache", remote_root = "\(remote)/t"}
        print(pcall(a.open, a, "escape-dir/../../x"))
        print(#m.warnings)
        """, cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("ArgumentError"))
        #expect(r.stdout.hasSuffix("3\n"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
        #expect(FileManager.default.fileExists(atPath: work + "/g/ok.txt"))
        #expect(!FileManager.default.fileExists(atPath: work + "/g/passwd") && !FileManager.default.fileExists(atPath: work + "/m/passwd"))
    }

    /// A symlink planted under the temp name is never written through, and names too long to
    /// carry the temp suffix still transfer (they get a hashed temp name).
    @Test func plantedTempLinksAndLongNames() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("planted")
        let victim = try makeTempDir("victim") + "/precious"
        try "precious".write(toFile: victim, atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: remote + "/.f.txt.sftplua.part", withDestinationPath: victim)
        try FileManager.default.createSymbolicLink(atPath: work + "/.g.txt.sftplua.part", withDestinationPath: victim)
        try "new data".write(toFile: work + "/f.txt", atomically: true, encoding: .utf8)
        try "remote data".write(toFile: remote + "/g.txt", atomically: true, encoding: .utf8)
        let long = String(repeating: "n", count: 250)
        let r = try run("""
        local c <close> = sftp.connect\(server.connectLua)
        c:put("f.txt", "\(remote)/f.txt")
        print(pcall(c.get, c, "\(remote)/g.txt", "g.txt"))
        local f = io.open("\(long)", "w"); f:write("long"); f:close()
        c:put("\(long)", "\(remote)/\(long)")
        c:get("\(remote)/\(long)", "back-\(String(repeating: "b", count: 245))")
        print(c:read("\(remote)/\(long)"))
        """, cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(try String(contentsOfFile: victim, encoding: .utf8) == "precious")
        #expect(try String(contentsOfFile: remote + "/f.txt", encoding: .utf8) == "new data")
        // The local planted link is removed, not followed.
        #expect(r.stdout.hasPrefix("true\n"))
        #expect(try String(contentsOfFile: work + "/g.txt", encoding: .utf8) == "remote data")
        #expect(r.stdout.hasSuffix("long\n"))
    }

    /// Passwords and passphrases never reach logs, -v output, error messages or tracebacks.
    @Test(.enabled(if: TestServer.shared.passwordUser != nil, "needs the password account that scripts/setup creates as root"))
    func secretsNeverReachAnyOutput() throws {
        let user = try #require(server.passwordUser)
        let work = try makeTempDir("secrets")
        let pass = server.password
        let phrase = "sekret-phrase"
        let wrong = "Wr0ng-Secret-\(UUID().uuidString.prefix(6))"
        let log = work + "/conn.log"
        let script = """
        local function try(o) local ok, e = pcall(sftp.connect, o); print(ok and "ok" or tostring(e)); return ok and e end
        local c = try{host = "127.0.0.1", port = \(server.port), username = "\(user)", password = "\(pass)", log = "\(log)"}
        try{host = "127.0.0.1", port = \(server.port), username = "\(user)", password = "\(wrong)", log = "\(log)"}
        try{host = "127.0.0.1", port = \(server.port), private_key = "\(server.keys)/ed25519_pass", private_key_pass = "\(phrase)", log = "\(log)"}
        try{host = "127.0.0.1", port = \(server.port), private_key = "\(server.keys)/ed25519_pass", private_key_pass = "\(wrong)", log = "\(log)"}
        try{host = "127.0.0.1", port = 1, username = "\(user)", password = "\(wrong)", timeout = 2}
        try{host = "127.0.0.1", port = \(server.port), password = "\(wrong)", bogus_option = "\(wrong)"}
        print(tostring(c), sftp.pretty(c and c.host_key))
        sftp.connect{host = "127.0.0.1", port = \(server.port), username = "\(user)", password = "\(wrong)"}
        """
        let r = try runProcess(sftpluaBinary, ["-v", "-e", script], env: ["HOME": server.home], cwd: work)
        #expect(r.status == 4, "\(r.stderr)")
        #expect(r.stdout.contains("AuthenticationError"))
        #expect(r.stdout.contains("CredentialError"))
        #expect(r.stderr.contains("stack traceback"))
        let logText = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
        #expect(logText.contains("authenticated"))
        for secret in [pass, phrase, wrong] {
            #expect(!r.stdout.contains(secret), "stdout has \(secret)")
            #expect(!r.stderr.contains(secret), "stderr has \(secret)")
            #expect(!logText.contains(secret), "log has \(secret)")
        }
    }
}
