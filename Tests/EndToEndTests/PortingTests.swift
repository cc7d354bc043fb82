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
