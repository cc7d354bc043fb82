import Foundation
import Testing
import TestSupport

/// What a pysftp user porting scripts meets (issue 15): pysftp's helpers give exactly pysftp's
/// answers, `""` means "the basename" as in pysftp, and every Include form of ssh_config works.
struct PortingTests {
    let server = TestServer.shared

    /// Expected values are what pysftp 0.2.9's path_advance/path_retreat yield (its code run
    /// under CPython's posixpath).
    @Test func pathAdvanceAndRetreatMatchPysftp() throws {
        let cases: [(String, String, String)] = [
            ("a/b/c", "a,a/b,a/b/c", "a/b/c,a/b,a"),
            ("a/", "a,a/", "a/,a"),
            ("/", "/", ""),
            ("a//b", "a,a/,a/b", "a/b,a/,a"),
            ("/a/b", "/a,/a/b", "/a/b,/a"),
            ("//a", "/,/a", "/a"),
            ("a", "a", "a"),
        ]
        var script = ""
        for (path, _, _) in cases {
            script += """
            do
              local a, r = {}, {}
              for p in sftp.path_advance("\(path)") do a[#a + 1] = p end
              for p in sftp.path_retreat("\(path)") do r[#r + 1] = p end
              print(table.concat(a, ",") .. "|" .. table.concat(r, ","))
            end

            """
        }
        let r = try runProcess(sftpluaBinary, ["-e", script], env: ["HOME": server.home])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
                == cases.map { "\($0.1)|\($0.2)" })
    }

    // Names are bytes at both ends: names that are not UTF-8 (and ones that look like the
    // escape sftplua uses inside) travel exactly through every call, listings, trees, mirrors,
    // the SyncAgent's journal and local names, and listings sort by bytes. One test each.

    /// Runs `body` with `c` connected, `d` a remote dir holding "a\xff" ("one"), "a\xfe" ("two")
    /// and "\xef\x9c\x80x" ("pua"), and `hex(s)`; the cwd is `local`.
    func bytesScript(_ body: String, local: String) throws -> [String] {
        let remote = try server.makeRemoteDir()
        let r = try server.runScript(#"""
        local c <close> = sftp.connect\#(server.connectLua)
        local d = "\#(remote)/b"
        c:makedirs(d)
        c:write(d .. "/a\xff", "one"); c:write(d .. "/a\xfe", "two"); c:write(d .. "/\xef\x9c\x80x", "pua")
        local function hex(s) return (s:gsub(".", function(ch) return ("%02x"):format(ch:byte()) end)) end
        \#(body)
        """#, cwd: local)
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.split(separator: "\n").map(String.init)
    }

    @Test func namesAreBytesInListingsSortedByBytes() throws {
        let out = try bytesScript(#"""
        local names = {}
        for _, n in ipairs(c:listdir(d)) do names[#names + 1] = hex(n) end
        print(table.concat(names, ","))
        print(c:read(d .. "/a\xff"), c:read(d .. "/a\xfe"), c:stat(d .. "/a\xff").st_size, c:listdir_attr(d)[1].filename == "a\xfe")
        """#, local: try makeTempDir("bytes"))
        #expect(out == ["61fe,61ff,ef9c8078", "one\ttwo\t3\ttrue"])
    }

    @Test func namesAreBytesInGetAndLocalNames() throws {
        let out = try bytesScript(#"c:get(d .. "/a\xff", "g\xff"); print(io.open("g\xff"):read("a"))"#, local: try makeTempDir("bytes"))
        #expect(out == ["one"])
    }

    @Test func namesAreBytesInTreesAndMirrors() throws {
        let local = try makeTempDir("bytes")
        let out = try bytesScript(#"""
        c:get_r(d, "tree")
        local here = {}
        for _, e in ipairs(sftp.fs.ls("tree")) do here[#here + 1] = hex(e.filename) .. "=" .. io.open("tree/" .. e.filename):read("a") end
        print(table.concat(here, ","))
        print(c:mirror_down(d, "m").copied, #c:mirror_down(d, "m").actions, c:mirror_up("tree", d .. "/up").copied)
        """#, local: local)
        #expect(out == ["61fe=two,61ff=one,ef9c8078=pua", "3\t0\t3"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: local + "/tree").count == 3)
    }

    @Test func namesAreBytesInTheSyncAgentAndItsJournal() throws {
        let out = try bytesScript(#"""
        local a = sftp.syncagent{connection = c, local_root = "agent", remote_root = d}
        print(a:open("a\xff"):read("a"))
        local f = io.open("agent/new\xfe", "w"); f:write("queued"); f:close()
        a.upload_queue:add("new\xfe"); print(a:push().uploaded, c:read(d .. "/new\xfe"))
        """#, local: try makeTempDir("bytes"))
        #expect(out == ["one", "1\tqueued"])
    }

    @Test func namesAreBytesInRemove() throws {
        let out = try bytesScript(#"c:remove(d .. "/a\xff"); print(c:exists(d .. "/a\xff"), c:exists(d .. "/a\xfe"))"#, local: try makeTempDir("bytes"))
        #expect(out == ["false\ttrue"])
    }

    /// OpenSSH habits: accept-new prints ssh's "Permanently added" line (not with -q); a target
    /// ending in "/" is a directory to put the file in; cd without a function changes the cwd.
    @Test func openSSHHabits() throws {
        let remote = try server.makeRemoteDir()
        let local = try makeTempDir("habits")
        try FileManager.default.createDirectory(atPath: local + "/in", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: remote + "/up", withIntermediateDirectories: true)
        try "r".write(toFile: remote + "/r.txt", atomically: true, encoding: .utf8)
        try "l".write(toFile: local + "/l.txt", atomically: true, encoding: .utf8)
        let kh = local + "/known_hosts_new"
        let script = """
        local c <close> = sftp.connect{host = "127.0.0.1", port = \(server.port), known_hosts = "\(kh)"}
        c:get("\(remote)/r.txt", "in/")
        c:put("l.txt", "\(remote)/up/")
        c:cd("\(remote)")
        print(io.open("in/r.txt"):read("a"), c:read("up/l.txt"), c:getcwd() == "\(remote)")
        """
        let r = try runProcess(sftpluaBinary, ["-e", script], env: ["HOME": server.home], cwd: local)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "r\tl\ttrue\n")
        #expect(r.stderr.contains("Warning: Permanently added '[127.0.0.1]:\(server.port)' (ED25519) to the list of known hosts."), "\(r.stderr)")
        try FileManager.default.removeItem(atPath: kh)
        let quiet = try runProcess(sftpluaBinary, ["-q", "-e", "sftp.connect{host = '127.0.0.1', port = \(server.port), known_hosts = '\(kh)'}:close()"],
                                   env: ["HOME": server.home], cwd: local)
        #expect(quiet.status == 0 && quiet.stderr.isEmpty, "\(quiet.stderr)")
    }

    /// An unknown method or field is an ArgumentError that says what was meant (issue 17), not a
    /// nil that fails later as "attempt to call a nil value".
    @Test func unknownMethodsSayWhatWasMeant() throws {
        let r = try server.runScript("""
        local c <close> = sftp.connect\(server.connectLua)
        local ok, e = pcall(function() return c:lisdir_attr(".") end)
        print(e.kind, e.message)
        ok, e = pcall(function() return c.pwdd end)
        print(e.kind, e.message)
        """)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "ArgumentError\tsftp.Connection has no method or field 'lisdir_attr' (did you mean 'listdir_attr'?)\nArgumentError\tsftp.Connection has no method or field 'pwdd' (did you mean 'pwd'?)\n")
    }

    /// An unknown recipe key lists the valid ones; tracebacks leave sftplua's own frames out
    /// unless -v (issue 17, point 6).
    @Test func recipeErrorsPointAtTheUser() throws {
        let dir = try makeTempDir("recipeerr")
        try "return {connect = {host = \"127.0.0.1\"}, mirorr = {}}\n".write(toFile: dir + "/r.lua", atomically: true, encoding: .utf8)
        let r = try runProcess(sftpluaBinary, ["run", dir + "/r.lua"], env: ["HOME": server.home])
        #expect(r.status == 1)
        #expect(r.stderr.contains("unknown key 'mirorr' in the recipe (did you mean 'mirror'?); valid keys: connect, defaults, mirror, name"))
        #expect(!r.stderr.contains("[sftplua "))
        let v = try runProcess(sftpluaBinary, ["-v", "run", dir + "/r.lua"], env: ["HOME": server.home])
        #expect(v.stderr.contains("[sftplua recipe.lua]"))
    }

    /// Relative local paths in a declarative recipe are the recipe file's directory's, wherever
    /// it is run from (issue 17, point 6).
    @Test func recipePathsAreRelativeToTheRecipe() throws {
        let remote = try server.makeRemoteDir()
        let dir = try makeTempDir("recipedir")
        let elsewhere = try makeTempDir("elsewhere")
        try FileManager.default.createDirectory(atPath: dir + "/site", withIntermediateDirectories: true)
        try "hi".write(toFile: dir + "/site/index.html", atomically: true, encoding: .utf8)
        try "hello".write(toFile: remote + "/r.txt", atomically: true, encoding: .utf8)
        try """
        return {connect = {host = "127.0.0.1", port = \(server.port), known_hosts = "\(server.knownHosts)"},
                mirror = {{up = "site", to = "\(remote)/www"}, {down = "\(remote)", to = "back"}}}
        """.write(toFile: dir + "/r.recipe.lua", atomically: true, encoding: .utf8)
        let r = try runProcess(sftpluaBinary, ["run", dir + "/r.recipe.lua"], env: ["HOME": server.home], cwd: elsewhere)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(FileManager.default.contents(atPath: remote + "/www/index.html") == Data("hi".utf8))
        #expect(FileManager.default.contents(atPath: dir + "/back/r.txt") == Data("hello".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: elsewhere).isEmpty)
    }

    @Test func emptyTargetMeansTheBasename() throws {
        let remote = try server.makeRemoteDir()
        let local = try makeTempDir("basename")
        try "down".write(toFile: remote + "/r.txt", atomically: true, encoding: .utf8)
        try "up".write(toFile: local + "/l.txt", atomically: true, encoding: .utf8)
        let r = try server.runScript("""
        local c <close> = sftp.connect\(server.connectLua)
        c:get("\(remote)/r.txt", "")
        c:chdir("\(remote)")
        c:put("l.txt", "")
        print(io.open("r.txt"):read("a"), c:read("l.txt"))
        """, cwd: local)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "down\tup\n")
    }

    /// A missing or mistyped key of sftp.syncagent is named, as sftp.connect's are; nothing is
    /// created for a call that fails.
    @Test func syncagentNamesTheKey() throws {
        let work = try makeTempDir("agentargs")
        let cases: [(String, String)] = [
            (#"{host = "h", remote_root = "/r"}"#, "bad option 'local_root' to 'syncagent' (string expected, got no value)"),
            (#"{host = "h", local_root = 5}"#, "bad option 'local_root' to 'syncagent' (string expected, got number)"),
            (#"{local_root = "x", remote_root = "/r"}"#, "bad option 'host' to 'syncagent' (string expected, got no value; or give 'connection')"),
            (#"{host = 7, local_root = "x"}"#, "bad option 'host' to 'syncagent' (string expected, got number)"),
            (#"{host = "h", local_root = "x", remote_root = 5}"#, "bad option 'remote_root' to 'syncagent' (string expected, got number)"),
            (#"{host = "h", local_root = "x", hostport = "abc"}"#, "bad option 'hostport' to 'syncagent' (port number expected)"),
            (#"{connection = 5, local_root = "x"}"#, "bad option 'connection' to 'syncagent' (Connection expected, got number)"),
        ]
        let script = cases.map { "do local ok, e = pcall(sftp.syncagent, \($0.0)); print(e.kind .. \": \" .. e.message) end" }.joined(separator: "\n")
        let r = try runProcess(sftpluaBinary, ["-e", script], env: ["HOME": server.home], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == cases.map { "ArgumentError: \($0.1)\n" }.joined())
        #expect(try FileManager.default.contentsOfDirectory(atPath: work).isEmpty)
    }

    /// put onto an existing file keeps what users set up: its mode and owner; a symlink stays a
    /// link and the file it names gets the content; get keeps an existing local file's mode.
    @Test func putAndGetKeepWhoFilesAre() throws {
        let remote = try server.makeRemoteDir()
        let local = try makeTempDir("identity")
        let other: uid_t = server.passwordUser.flatMap { getpwnam($0)?.pointee.pw_uid } ?? 65534
        try "old".write(toFile: remote + "/keep", atomically: true, encoding: .utf8)
        chmod(remote + "/keep", 0o640)
        chown(remote + "/keep", other, other)
        try "real".write(toFile: remote + "/real", atomically: true, encoding: .utf8)
        chmod(remote + "/real", 0o600)
        try FileManager.default.createSymbolicLink(atPath: remote + "/link", withDestinationPath: "real")
        try FileManager.default.createSymbolicLink(atPath: remote + "/dangling", withDestinationPath: "made")
        try FileManager.default.createDirectory(atPath: remote + "/tree", withIntermediateDirectories: true)
        try "t".write(toFile: remote + "/tree/f", atomically: true, encoding: .utf8)
        chmod(remote + "/tree/f", 0o604)
        chown(remote + "/tree/f", other, other)
        try FileManager.default.createSymbolicLink(atPath: remote + "/tree/l", withDestinationPath: "/etc/hostname")
        try "new content".write(toFile: local + "/src", atomically: true, encoding: .utf8)
        chmod(local + "/src", 0o644)
        try FileManager.default.createDirectory(atPath: local + "/up", withIntermediateDirectories: true)
        try "new f".write(toFile: local + "/up/f", atomically: true, encoding: .utf8)
        try "new l".write(toFile: local + "/up/l", atomically: true, encoding: .utf8)
        try "mine".write(toFile: local + "/mine", atomically: true, encoding: .utf8)
        chmod(local + "/mine", 0o600)
        let r = try server.runScript("""
        local c <close> = sftp.connect\(server.connectLua)
        local a = c:put("src", "\(remote)/keep")
        print(a.st_mode & 0xfff, a.st_uid)
        c:put("src", "\(remote)/link")
        c:put("src", "\(remote)/dangling")
        c:put_r("up", "\(remote)/tree")
        c:get("\(remote)/keep", "mine")
        c:get("\(remote)/keep", "fresh")
        """, cwd: local)
        #expect(r.status == 0, "\(r.stderr)")
        func mode(_ p: String) -> mode_t { var st = stat(); lstat(p, &st); return st.st_mode }
        func owner(_ p: String) -> uid_t { var st = stat(); lstat(p, &st); return st.st_uid }
        #expect(r.stdout == "\(0o640)\t\(other)\n")
        #expect(try String(contentsOfFile: remote + "/keep", encoding: .utf8) == "new content")
        #expect(mode(remote + "/keep") & 0o7777 == 0o640 && owner(remote + "/keep") == other)
        #expect(mode(remote + "/link") & S_IFMT == S_IFLNK)
        #expect(try String(contentsOfFile: remote + "/real", encoding: .utf8) == "new content")
        #expect(mode(remote + "/real") & 0o7777 == 0o600)
        #expect(mode(remote + "/dangling") & S_IFMT == S_IFLNK)
        #expect(try String(contentsOfFile: remote + "/made", encoding: .utf8) == "new content")
        // A tree copy keeps a file's mode and owner, and replaces a link (never writing through it).
        #expect(mode(remote + "/tree/f") & 0o7777 == 0o604 && owner(remote + "/tree/f") == other)
        #expect(try String(contentsOfFile: remote + "/tree/f", encoding: .utf8) == "new f")
        #expect(mode(remote + "/tree/l") & S_IFMT == S_IFREG)
        #expect(try String(contentsOfFile: remote + "/tree/l", encoding: .utf8) == "new l")
        // get: an existing local file keeps its mode, a new one gets the umask's.
        let mask = umask(0o022); umask(mask)
        #expect(mode(local + "/mine") & 0o7777 == 0o600)
        #expect(mode(local + "/fresh") & 0o7777 == 0o666 & ~mask)
        let temps = try FileManager.default.subpathsOfDirectory(atPath: remote).filter { $0.contains("sftplua.part") }
        #expect(temps.isEmpty)
    }

    /// A drop folder: the user may write the file there but not create names. put writes in
    /// place (and says so); with atomic = true the refusal stands and nothing changes.
    @Test(.enabled(if: TestServer.shared.passwordUser != nil, "needs the password account that scripts/setup creates as root"))
    func dropFoldersAreWrittenInPlace() throws {
        let user = try #require(server.passwordUser)
        let dir = try server.makeRemoteDir()
        chmod(dir, 0o755)
        try "old drop".write(toFile: dir + "/drop", atomically: true, encoding: .utf8)
        chmod(dir + "/drop", 0o666)
        let local = try makeTempDir("drop")
        try "new drop".write(toFile: local + "/f", atomically: true, encoding: .utf8)
        let r = try runProcess(sftpluaBinary, ["-v", "-e", """
        local c <close> = sftp.connect{host = '127.0.0.1', port = \(server.port), username = '\(user)', password = '\(server.password)', known_hosts = '\(server.knownHosts)'}
        local ok, e = pcall(c.put, c, "f", "\(dir)/drop", {atomic = true})
        print(ok, e.kind, c:read("\(dir)/drop"))
        local a = c:put("f", "\(dir)/drop")
        print(a.inplace, a.st_size, c:read("\(dir)/drop"))
        ok, e = pcall(c.put, c, "f", "\(dir)/new")
        print(ok, e.kind)
        """], env: ["HOME": server.home], cwd: local)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "false\tPermissionDenied\told drop\ntrue\t8\tnew drop\nfalse\tPermissionDenied\n")
        #expect(r.stderr.contains("in place"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir) == ["drop"])
        // A sticky world-writable directory (like /tmp): the temp name can be made but not
        // renamed over another user's file: written in place, no temp left; atomic refuses.
        let sticky = try server.makeRemoteDir()
        chmod(sticky, 0o1777)
        try "x".write(toFile: sticky + "/f", atomically: true, encoding: .utf8)
        chmod(sticky + "/f", 0o666)
        let r3 = try runProcess(sftpluaBinary, ["-e", """
        local c <close> = sftp.connect{host = '127.0.0.1', port = \(server.port), username = '\(user)', password = '\(server.password)', known_hosts = '\(server.knownHosts)'}
        local ok, e = pcall(c.put, c, "f", "\(sticky)/f", {atomic = true})
        print(ok, e.kind, c:read("\(sticky)/f"))
        -- A one-shot stream cannot be sent again in place: the refusal stands, as a contract kind.
        ok, e = pcall(c.write, c, "\(sticky)/f", "streamed")
        print(ok, e.kind, c:read("\(sticky)/f"))
        local a = c:put("f", "\(sticky)/f")
        print(a.inplace, c:read("\(sticky)/f"))
        """], env: ["HOME": server.home], cwd: local)
        #expect(r3.status == 0, "\(r3.stderr)")
        #expect(r3.stdout == "false\tPermissionDenied\tx\nfalse\tPermissionDenied\tx\ntrue\tnew drop\n")
        #expect(try FileManager.default.contentsOfDirectory(atPath: sticky) == ["f"])
        // The same account in a directory of its own: put keeps the mode it had set (0600).
        let own = try server.makeRemoteDir()
        let uid = try #require(getpwnam(user)).pointee.pw_uid
        chown(own, uid, uid)
        try "mine".write(toFile: own + "/p", atomically: true, encoding: .utf8)
        chown(own + "/p", uid, uid)
        chmod(own + "/p", 0o600)
        let r2 = try runProcess(sftpluaBinary, ["-e", """
        local c <close> = sftp.connect{host = '127.0.0.1', port = \(server.port), username = '\(user)', password = '\(server.password)', known_hosts = '\(server.knownHosts)'}
        local a = c:put("f", "\(own)/p")
        print(a.st_mode & 0xfff, a.inplace, c:read("\(own)/p"))
        """], env: ["HOME": server.home], cwd: local)
        #expect(r2.status == 0, "\(r2.stderr)")
        #expect(r2.stdout == "\(0o600)\tnil\tnew drop\n")
        var st = stat()
        #expect(lstat(own + "/p", &st) == 0 && st.st_mode & 0o7777 == 0o600 && st.st_uid == uid)
    }

    /// Include in ~/.ssh/config: quoted (with spaces), unquoted, `~`, relative, and several
    /// patterns on one line, each leading to a host the test server answers.
    @Test func everyIncludeFormIsFollowed() throws {
        let home = try freshHome(server)
        try FileManager.default.moveItem(atPath: home + "/.ssh/id_ed25519", toPath: home + "/.ssh/work_key")
        let spaced = home + "/with space/conf.d"
        for d in [spaced, home + "/.ssh/rel", home + "/tilde", home + "/.ssh/multi"] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
        func host(_ name: String) -> String {
            "Host \(name)\n  HostName 127.0.0.1\n  Port \(server.port)\n  User root\n  IdentityFile ~/.ssh/work_key\n"
        }
        try host("quoted").write(toFile: spaced + "/q.conf", atomically: true, encoding: .utf8)
        try host("relative").write(toFile: home + "/.ssh/rel/r.conf", atomically: true, encoding: .utf8)
        try host("tilde").write(toFile: home + "/tilde/t.conf", atomically: true, encoding: .utf8)
        try host("first").write(toFile: home + "/.ssh/multi/a.conf", atomically: true, encoding: .utf8)
        try host("second").write(toFile: home + "/.ssh/multi/b.inc", atomically: true, encoding: .utf8)
        try """
        Include "\(spaced)/*.conf"
        Include rel/*.conf
        include ~/tilde/t.conf
        Include=multi/*.conf "multi/*.inc"   # two patterns and a comment
        """.write(toFile: home + "/.ssh/config", atomically: true, encoding: .utf8)
        let script = """
        for _, h in ipairs({"quoted", "relative", "tilde", "first", "second"}) do
          local c = sftp.connect{host = h, timeout = 10}
          print(h, c.port, c.auth_method:match("work_key") ~= nil)
          c:close()
        end
        """
        let r = try runProcess(sftpluaBinary, ["-e", script], env: ["HOME": home])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == ["quoted", "relative", "tilde", "first", "second"].map { "\($0)\t\(server.port)\ttrue\n" }.joined())
    }
}
