import Foundation
import Testing
import TestSupport

/// The `sftplua` binary, end to end.
struct CLITests {
    let server = TestServer.shared

    func sftplua(_ args: [String], stdin: String? = nil, env: [String: String] = [:], cwd: String? = nil) throws -> ProcessResult {
        var e = ["HOME": server.home]
        for (k, v) in env { e[k] = v }
        return try runProcess(sftpluaBinary, args, env: e, cwd: cwd, stdin: stdin)
    }

    @Test func versionHelpAndHelpRun() throws {
        let v = try sftplua(["--version"])
        #expect(v.status == 0)
        #expect(v.stdout.hasPrefix("sftplua "))
        let h = try sftplua(["--help"])
        #expect(h.status == 0)
        #expect(h.stdout.contains("EXIT CODES"))
        #expect(h.stdout.contains("run"))
        let hr = try sftplua(["help", "run"])
        #expect(hr.status == 0)
        #expect(hr.stdout.contains("<file>"))
    }

    @Test func runPassesArgumentsLikeLua() throws {
        let r = try server.runScript("print(arg[0]:match('[^/]+$'), arg[1], arg[2], #arg, select('#', ...), ...)", args: ["one", "--two"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "script.lua\tone\t--two\t2\t2\tone\t--two\n")
    }

    /// sftplua's own flags are never dropped: before the command, after the script, short or
    /// long; `sftplua FILE.lua ARGS` runs a script as `lua` does; the script's own options go
    /// after `--`. A dry run with the flag after the script changes nothing.
    @Test func flagsWorkWhereverTheyArePut() throws {
        let dir = try makeTempDir("flags")
        let script = dir + "/s.lua"
        try """
        print(select("#", ...), table.concat({...}, " "), sftp.dry_run == true, sftp.verbose == true)
        if not sftp.dry_run then io.open("\(dir)/touched", "w"):close() end
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let cases: [([String], String)] = [
            (["run", script, "--dry-run"], "0\t\ttrue\tfalse"),
            (["run", script, "-n", "a"], "1\ta\ttrue\tfalse"),
            (["run", script, "-v", "a", "b"], "2\ta b\tfalse\ttrue"),
            (["-v", "run", script, "--dry-run"], "0\t\ttrue\ttrue"),
            (["--dry-run", "run", script], "0\t\ttrue\tfalse"),
            ([script, "x", "-n"], "1\tx\ttrue\tfalse"),
            (["run", script, "--", "--dry-run", "-v"], "2\t--dry-run -v\tfalse\tfalse"),
        ]
        for (args, want) in cases {
            try? FileManager.default.removeItem(atPath: dir + "/touched")
            let r = try sftplua(args)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            #expect(r.stdout == want + "\n", "\(args)")
        }
        // sftp.fs changes are said, not done, in a dry run.
        let fsScript = dir + "/fs.lua"
        try "sftp.fs.mkdir(\"\(dir)/made\")\n".write(toFile: fsScript, atomically: true, encoding: .utf8)
        let fsDry = try sftplua(["run", fsScript, "-n"])
        #expect(fsDry.stdout == "dry run: would fs.mkdir \(dir)/made\n")
        #expect(!FileManager.default.fileExists(atPath: dir + "/made"))
        // A dry run never touches anything, wherever its flag is.
        for args in [["run", script, "--dry-run"], [script, "-n"], ["-n", "run", script]] {
            try? FileManager.default.removeItem(atPath: dir + "/touched")
            _ = try sftplua(args)
            #expect(!FileManager.default.fileExists(atPath: dir + "/touched"), "\(args)")
        }
        // Usage errors name sftplua, never the internal default command.
        let bad = try sftplua(["--bogus"])
        #expect(bad.status == 2)
        #expect(!bad.stderr.contains("sftplua exec"))
    }

    /// Quick commands without Lua (issue 17, point 2), with an ssh_config alias as the host.
    @Test func quickCommands() throws {
        let home = try freshHome(server)
        try "Host box\n  HostName 127.0.0.1\n  Port \(server.port)\n  User \(server.user)\n".write(toFile: home + "/.ssh/config", atomically: true, encoding: .utf8)
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("quick")
        try FileManager.default.createDirectory(atPath: work + "/site/sub", withIntermediateDirectories: true)
        try "a".write(toFile: work + "/site/a", atomically: true, encoding: .utf8)
        try "b".write(toFile: work + "/site/sub/b", atomically: true, encoding: .utf8)
        func q(_ args: [String]) throws -> ProcessResult {
            let r = try runProcess(sftpluaBinary, args, env: ["HOME": home], cwd: work)
            #expect(r.status == 0, "\(args): \(r.stderr)")
            return r
        }
        _ = try q(["put", "site/a", "box:\(remote)//"])   // into the directory (as for "/": not the home)
        #expect(try q(["ls", "box:\(remote)"]).stdout.hasSuffix(" a\n"))
        _ = try q(["put", "site", "box:\(remote)/"])
        // Several files into a directory that is not there: made first (as rclone's copy).
        _ = try q(["put", "site/a", "site/sub/b", "box:\(remote)/many/deep"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote + "/many/deep").sorted() == ["a", "b"])
        try FileManager.default.removeItem(atPath: remote + "/many")
        _ = try q(["get", "box:\(remote)/site", "got"])
        #expect(FileManager.default.contents(atPath: work + "/got/sub/b") == Data("b".utf8))
        let dry = try q(["mirror", "site", "box:\(remote)/m", "--dry-run"])
        #expect(dry.stdout.contains("(dry run: nothing changed)"))
        #expect(!FileManager.default.fileExists(atPath: remote + "/m"))
        #expect(try q(["mirror", "site", "box:\(remote)/m", "--exclude", "sub/"]).stdout.contains("mirror: 1 copied"))
        #expect(!FileManager.default.fileExists(atPath: remote + "/m/sub"))
        _ = try q(["rm", "box:\(remote)/a"])
        _ = try q(["mkdir", "box:\(remote)/new/deep"])
        _ = try q(["copy", "box:\(remote)/m/a", "c.txt"])
        #expect(FileManager.default.contents(atPath: work + "/c.txt") == Data("a".utf8))
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote).sorted() == ["m", "new", "site"])
        let bad = try runProcess(sftpluaBinary, ["mirror", "site", "box:\(remote)/m", "--bogus"], env: ["HOME": home], cwd: work)
        #expect(bad.status != 0 && bad.stderr.contains("unknown option --bogus"))
        #expect(try q(["mirror", "--help"]).stdout.contains("EXAMPLES:"))
        // Tree copies, mirrors and push end with a summary line under -v (or on a terminal).
        let v = try q(["-v", "get", "box:\(remote)/site", "got2"])
        #expect(v.stderr.contains("sftplua: get_r: 2 copied, 0 updated, 0 deleted, 0 unchanged, 2 bytes in"), "\(v.stderr)")
        #expect(try q(["get", "box:\(remote)/site", "got3"]).stderr.isEmpty)
        // The quick mirror prints its own summary line: the mirror's is not printed too (its
        // no_summary flag was set on a table nothing read).
        let vm = try q(["-v", "mirror", "site", "box:\(remote)/m2"])
        #expect(vm.stdout.contains("mirror: 2 copied"), "\(vm.stdout)")
        #expect(!vm.stderr.contains("sftplua: mirror_up: "), "\(vm.stderr)")
        // With --json, stdout is JSON lines only: the summary is an event, not a text line too.
        let jm = try q(["--json", "mirror", "site", "box:\(remote)/m3"])
        let jl = jm.stdout.split(separator: "\n")
        #expect(!jl.isEmpty && jl.allSatisfy { $0.hasPrefix("{") && $0.hasSuffix("}") }, "\(jm.stdout)")
        #expect(jm.stdout.contains("\"event\":\"summary\""), "\(jm.stdout)")
        // Completions come from the same definitions as --help, every command included.
        for shell in ["bash", "zsh", "fish"] {
            let c = try q(["--generate-completion-script", shell])
            #expect(c.stdout.contains("mirror") && c.stdout.contains("repl") && c.stdout.contains("dry-run"), "\(shell)")
        }
    }

    /// Command-line words are bytes: a name that is not UTF-8 reaches the server, the local file
    /// system and the script's `arg` as it is (before, each such byte became U+FFFD).
    @Test func commandLineWordsKeepBytesThatAreNotUTF8() throws {
        let home = try freshHome(server)
        try "Host box\n  HostName 127.0.0.1\n  Port \(server.port)\n  User \(server.user)\n".write(toFile: home + "/.ssh/config", atomically: true, encoding: .utf8)
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("bytes-argv")
        let b = shellQuote(sftpluaBinary)
        let script = """
        set -e; cd \(shellQuote(work)); printf x > $'\\xff\\xfe.bin'
        \(b) put $'\\xff\\xfe.bin' box:\(shellQuote(remote))/
        test -f \(shellQuote(remote))/$'\\xff\\xfe.bin' && echo on-server
        \(b) get box:\(shellQuote(remote))/$'\\xff\\xfe.bin' got.bin && cat got.bin && echo
        echo 'print(#arg[1], arg[1]:byte(1, -1))' > $'s\\xff.lua'
        \(b) run $'s\\xff.lua' $'\\xff\\xfe'
        \(b) -e $'print(("\\xff"):byte())'
        """
        let r = try runProcess("/bin/bash", ["-c", script], env: ["HOME": home], timeout: 60)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "on-server\nx\n2\t255\t254\n255\n", "\(r.stdout)")
    }

    /// --json (issue 17, point 4): plans, actions and summaries as JSON lines, one object each,
    /// names as their bytes (invalid UTF-8 as \u00XX).
    @Test func jsonLines() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("json")
        try FileManager.default.createDirectory(atPath: remote + "/src", withIntermediateDirectories: true)
        try "ab".write(toFile: remote + "/src/a", atomically: true, encoding: .utf8)
        FileManager.default.createFile(atPath: remote + "/src/b\u{7f}", contents: Data("c".utf8))
        let script = work + "/j.lua"
        try """
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port), known_hosts = "\(server.knownHosts)"}
        c:mirror_down("\(remote)/src", "m")
        c:put("m/a", "\(remote)/up")
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let dry = try runProcess(sftpluaBinary, ["run", script, "-n", "--json"], env: ["HOME": server.home], cwd: work)
        #expect(dry.status == 0, "\(dry.stderr)")
        let lines = dry.stdout.split(separator: "\n").map(String.init)
        let label = "mirror_down \(remote)/src -> m"
        #expect(lines.count == 4)
        #expect(lines.first == #"{"call":"\#(label)","event":"plan","op":"copy","path":"a","size":2}"#)
        #expect(lines.dropFirst().first == #"{"call":"\#(label)","event":"plan","op":"copy","path":"b\u007f","size":1}"#)
        #expect(lines.last == #"{"args":["m/a","\#(remote)/up"],"call":"put","event":"plan"}"#)
        #expect(lines.count == 4 && lines[2].hasPrefix(#"{"bytes":3,"call":"mirror_down","copied":2,"deleted":0,"dry_run":true,"event":"summary""#))
        for line in lines { #expect((try? JSONSerialization.jsonObject(with: Data(line.utf8))) != nil, "\(line)") }
        let real = try runProcess(sftpluaBinary, ["--json", "run", script], env: ["HOME": server.home], cwd: work)
        #expect(real.status == 0, "\(real.stderr)")
        #expect(real.stdout.contains(#""event":"action","op":"copy","path":"a","size":2}"#))
        #expect(real.stdout.contains(#""event":"summary""#))
    }

    /// A dry run shows every argument of a call it does not make, in the text line and in the
    /// JSON plan event alike: numbers as numbers (a mode also as its octal digits, as the text
    /// line prints it), a missing one as nil / null, an options table as its fields.
    @Test func dryRunPlansShowEveryArgument() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("dryargs")
        let script = work + "/a.lua"
        try """
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port), known_hosts = "\(server.knownHosts)"}
        local R = "\(remote)"
        c:chmod(R .. "/f", 640); c:truncate(R .. "/f", 3); c:chown(R .. "/f", nil, 100)
        c:mkdir(R .. "/d", 750); sftp.fs.utime("loc", 1700000000, 1700000001)
        c:put("loc", R .. "/p", {preserve_mtime = true})
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let text = try sftplua(["run", script, "-n"], cwd: work)
        #expect(text.status == 0, "\(text.stderr)")
        #expect(text.stdout.split(separator: "\n").map(String.init) == [
            "dry run: would chmod \(remote)/f 0640",
            "dry run: would truncate \(remote)/f 3",
            "dry run: would chown \(remote)/f nil 100",
            "dry run: would mkdir \(remote)/d 0750",
            "dry run: would fs.utime loc 1700000000 1700000001",
            "dry run: would put loc \(remote)/p {preserve_mtime=true}",
        ])
        let json = try sftplua(["run", script, "-n", "--json"], cwd: work)
        #expect(json.status == 0, "\(json.stderr)")
        #expect(json.stdout.split(separator: "\n").map(String.init) == [
            #"{"args":["\#(remote)/f",640],"call":"chmod","event":"plan","mode":"0640"}"#,
            #"{"args":["\#(remote)/f",3],"call":"truncate","event":"plan"}"#,
            #"{"args":["\#(remote)/f",null,100],"call":"chown","event":"plan"}"#,
            #"{"args":["\#(remote)/d",750],"call":"mkdir","event":"plan","mode":"0750"}"#,
            #"{"args":["loc",1700000000,1700000001],"call":"fs.utime","event":"plan"}"#,
            #"{"args":["loc","\#(remote)/p",{"preserve_mtime":true}],"call":"put","event":"plan"}"#,
        ])
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote).isEmpty)
    }

    /// In a dry run the calls it does not make return values of their usual types, so a script
    /// that reads them runs on (before, `c:copy(a, b).st_size` failed only in a dry run).
    @Test func dryRunCallsReturnTheirUsualTypes() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("dryret")
        let script = work + "/r.lua"
        try """
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port), known_hosts = "\(server.knownHosts)"}
        local R = "\(remote)"
        local lines, status, errs = c:execute("touch " .. R .. "/x")
        io.stderr:write(type(lines), " ", status, " ", type(errs), "\\n")
        io.stderr:write(type(c:copy(R .. "/a", R .. "/b")), " ", c:write(R .. "/w", "abc"), " ", c:truncate(R .. "/w", 2), " ",
                        type(c:putfo(io.open(arg[0]), R .. "/p")), "\\n")
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let r = try sftplua(["run", script, "-n"], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr == "table 0 table\ntable 3 2 table\n", "\(r.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote).isEmpty)
    }

    /// The REPL's help(), ls() and readable multi-line strings (issue 17, point 7).
    @Test func replHelpAndLs() throws {
        let remote = try server.makeRemoteDir()
        try "x".write(toFile: remote + "/visible.txt", atomically: true, encoding: .utf8)
        let r = try sftplua(["repl", "--connect", "\(server.user)@127.0.0.1:\(server.port)"],
                            stdin: "help(c.get)\nls(\"\(remote)\")\n\"two\\nlines\"\nhelp()\n")
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("`c:get(remote [, localpath"))
        #expect(r.stdout.contains("Downloads a file and returns nothing."))
        #expect(r.stdout.contains(" visible.txt\n"))
        #expect(r.stdout.contains("[[\ntwo\nlines]]"))
        #expect(r.stdout.contains("Connection methods (c:NAME(...))"))
    }

    @Test func dashEAndStdin() throws {
        let r = try sftplua(["-e", "x = 20", "-e", "print(x + 22, sftp ~= nil)"])
        #expect(r.stdout == "42\ttrue\n")
        let s = try sftplua([], stdin: "print(require('sftp') == sftp)\n")
        #expect(s.stdout == "true\n")
    }

    @Test func uncaughtErrorObjectPrintsFileLineAndTraceback() throws {
        let r = try server.runScript("""
        local c = sftp.connect\(server.connectLua)

        c:stat("/no/such/path")
        """)
        #expect(r.status == 1)
        #expect(r.stderr.hasPrefix("\(r.stderr.components(separatedBy: "script.lua:3:")[0])script.lua:3: FileNotFound: stat /no/such/path: no such file"))
        #expect(r.stderr.contains("stack traceback:"))
        let s = try server.runScript("local x = nil\nerror('boom')")
        #expect(s.status == 1)
        #expect(s.stderr.contains("script.lua:2: boom\n"))
        #expect(!s.stderr.contains("script.lua:2: script.lua:2:"))
    }

    @Test func syntaxErrorsMissingFilesAndUsageErrors() throws {
        let syn = try server.runScript("x = = 1\n")
        #expect(syn.status == 1)
        #expect(syn.stderr.contains("script.lua:1:"))
        let missing = try sftplua(["run", "/nonexistent/recipe.lua"])
        #expect(missing.status == 2)
        #expect(missing.stderr.contains("/nonexistent/recipe.lua"))
        let dir = try makeTempDir("unreadable")
        let dirRun = try sftplua(["run", dir])
        #expect(dirRun.status == 2)
        let bad = try sftplua(["--no-such-option"])
        #expect(bad.status == 2)
        #expect(bad.stderr.contains("--no-such-option"))
        for out in [syn, missing, bad] { #expect(!out.stderr.contains("Fatal error") && !out.stderr.contains("crashed")) }
    }

    @Test func exitCodesForConnectionAuthenticationAndHostKey() throws {
        let refused = try server.runScript("sftp.connect{host = '127.0.0.1', port = 1}")
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("ConnectionError: cannot connect to 127.0.0.1 port 1"))
        let wrongKey = try server.runScript("sftp.connect{host = '127.0.0.1', port = \(server.port), private_key = '\(server.keys)/unauthorized'}")
        #expect(wrongKey.status == 4)
        #expect(wrongKey.stderr.contains("AuthenticationError"))
        let kh = try makeTempDir("kh") + "/known_hosts"
        let strict = try server.runScript("sftp.connect{host = '127.0.0.1', port = \(server.port), known_hosts = '\(kh)', host_key = 'strict'}")
        #expect(strict.status == 5)
        #expect(strict.stderr.contains("HostKeyError"))
        // A known_hosts that cannot be written (a file where its directory should be): the
        // host is not trusted, exit 5, the errno's text in the message.
        let file = try makeTempDir("khfile") + "/file"
        FileManager.default.createFile(atPath: file, contents: Data())
        let unwritable = try server.runScript("local ok, e = pcall(sftp.connect, {host = '127.0.0.1', port = \(server.port), known_hosts = '\(file)/ssh/known_hosts'}); print(e.kind, e.code ~= nil); error(e)")
        #expect(unwritable.status == 5, "\(unwritable.stderr)")
        #expect(unwritable.stdout == "HostKeyError\ttrue\n")
        #expect(unwritable.stderr.contains("to record the host key: Not a directory"), "\(unwritable.stderr)")
        // Ctrl-C not caught: 130, as shells report SIGINT.
        let interrupted = try server.runScript("""
        os.execute("(sleep 0.3; kill -INT " .. io.open("/proc/self/stat"):read("n") .. ") &")
        sftp.sleep(30)
        """)
        #expect(interrupted.status == 130, "\(interrupted.stderr)")
        #expect(interrupted.stderr.contains("Interrupted: interrupted (Ctrl-C)"), "\(interrupted.stderr)")
    }

    /// Runs `body` with a connection `c` and `msg(f, ...)` (the message of the error `f` raises);
    /// the printed lines.
    func argumentErrors(_ body: String) throws -> [String] {
        let r = try server.runScript("""
        local c = sftp.connect\(server.connectLua)
        local function msg(f, ...) local ok, e = pcall(f, ...); return ok and "no error" or e.kind .. ": " .. e.message end
        \(body)
        """)
        #expect(r.status == 0, "\(r.stderr)")
        return r.stdout.split(separator: "\n").map(String.init)
    }

    /// As luaL_argerror: called through pcall (not as a method) self is argument 1; called
    /// with ':' it is not counted. Swift methods, Lua-written ones and the retry wrappers alike.
    @Test func argumentErrorsCountAsLuaDoes() throws {
        let lines = try argumentErrors("""
        print(msg(c.listdir, c, 42))
        print(msg(function() c:listdir(42) end))
        print(msg(c.walktree, c, 42))
        print(msg(function() c:walktree(42) end))
        print(msg(function() c:get(42) end))
        print(msg(c.get, c, 42))
        print(msg(function() c:put(42) end))
        print(msg(c.get_r, c, 42))
        print(msg(function() c:get_r(42) end))
        print(msg(sftp.walktree, 42))
        print(msg(function() sftp.walktree(42) end))
        print(msg(function() sftp.cd("/", 42) end))
        print(msg(c.get_r, c, "/a", "b", "x"))
        print(msg(function() c:get_r("/a", "b", "x") end))
        print(msg(function() sftp.syncagent(42) end))
        print(msg(function() sftp.reparent(1, "b") end))
        print(msg(function() sftp.st_mode_to_int("x") end))
        print(msg(function() sftp.path_advance("a", 5) end))
        print(msg(function() sftp.path_retreat("a", "") end))
        """)
        #expect(lines == [
            "ArgumentError: bad argument #2 to 'listdir' (string expected, got number)",
            "ArgumentError: bad argument #1 to 'listdir' (string expected, got number)",
            // The methods written in Lua count the same way.
            "ArgumentError: bad argument #2 to 'walktree' (string expected, got number)",
            "ArgumentError: bad argument #1 to 'walktree' (string expected, got number)",
            // Through the retry wrappers (get, put, get_r, ...): as the user called them.
            "ArgumentError: bad argument #1 to 'get' (string expected, got number)",
            "ArgumentError: bad argument #2 to 'get' (string expected, got number)",
            "ArgumentError: bad argument #1 to 'put' (string expected, got number)",
            "ArgumentError: bad argument #2 to 'get_r' (string expected, got number)",
            "ArgumentError: bad argument #1 to 'get_r' (string expected, got number)",
            // Module functions written in Lua have no self to count.
            "ArgumentError: bad argument #1 to 'walktree' (string expected, got number)",
            "ArgumentError: bad argument #1 to 'walktree' (string expected, got number)",
            "ArgumentError: bad argument #2 to 'cd' (function expected, got number)",
            // An options table that is not a table counts as the others do.
            "ArgumentError: bad argument #4 to 'get_r' (table expected, got string)",
            "ArgumentError: bad argument #3 to 'get_r' (table expected, got string)",
            "ArgumentError: bad argument #1 to 'syncagent' (table expected, got number)",
            "ArgumentError: bad argument #1 to 'reparent' (string expected, got number)",
            "ArgumentError: bad argument #1 to 'st_mode_to_int' (number expected, got string)",
            "ArgumentError: bad argument #2 to 'path_advance' (string expected, got number)",
            "ArgumentError: bad argument #2 to 'path_retreat' (separator is empty)",
        ])
    }

    /// Options: an unknown key names the closest valid one; a bad value names the option.
    @Test func optionErrorsNameTheOption() throws {
        let lines = try argumentErrors("""
        print(msg(c.get, c, "/x", "y", {prserve_mtime = true}))
        print(msg(sftp.connect, {host = "127.0.0.1", prot = 22}))
        print(msg(sftp.connect, {port = 22}))
        print(msg(sftp.connect, {host = "127.0.0.1", host_key = "acept-new"}))
        print(msg(sftp.connect, 42))
        print(msg(c.mirror_down, c, "/x", "y", {delete = "yes"}))
        print(msg(c.get, c, "/x", "y", {bwlimt = "1M"}))
        print(msg(c.put_r, c, "/x", "y", {retires = 1}))
        print(msg(c.copy, c, "/x", "/y", {bogus = 1}))
        """)
        #expect(lines == [
            "ArgumentError: unknown option 'prserve_mtime' to 'get' (did you mean 'preserve_mtime'?)",
            "ArgumentError: unknown option 'prot' to 'connect' (did you mean 'port'?)",
            "ArgumentError: bad option 'host' to 'connect' (a host name is required)",
            "ArgumentError: bad option 'host_key' to 'connect' ('accept-new', 'strict' or 'off' expected, got 'acept-new') (did you mean 'accept-new'?)",
            "ArgumentError: bad argument #1 to 'connect' (table expected, got number)",
            "ArgumentError: bad option 'delete' to 'mirror_down' (boolean expected, got string)",
            // The keys every transfer call takes (its wrapper's) are suggested too.
            "ArgumentError: unknown option 'bwlimt' to 'get' (did you mean 'bwlimit'?)",
            "ArgumentError: unknown option 'retires' to 'put_r' (did you mean 'retries'?)",
            // A call that takes no options says so rather than ignoring them.
            "ArgumentError: unknown option 'bogus' to 'copy'",
        ])
    }

    /// A method written in Lua checks its self as the Swift ones do (`c.cd("/tmp")` did nothing).
    @Test func luaWrittenMethodsCheckTheirSelf() throws {
        let lines = try argumentErrors("""
        print(msg(function() c.cd("/tmp") end))
        print(msg(function() c.get_r("/tmp", "x") end))
        print(msg(function() local t = {mirror_down = c.mirror_down}; t:mirror_down("/a", "b") end))
        print(c:getcwd() == nil)
        """)
        #expect(lines == [
            "ArgumentError: bad argument #1 to 'cd' (sftp.Connection expected, got string; call methods with ':')",
            "ArgumentError: bad argument #1 to 'get_r' (sftp.Connection expected, got string; call methods with ':')",
            "ArgumentError: calling 'mirror_down' on bad self (sftp.Connection expected, got table)",
            "true",
        ])
    }

    @Test func replPrintsValuesAndContinuesLines() throws {
        let r = try sftplua(["repl"], stdin: "1+1\nt = {b = 2, a = 'x'}\nt\nfor i = 1, 2 do\nprint(i)\nend\nerror('oops')\nprint('still here')\n")
        #expect(r.status == 0)
        #expect(r.stdout == "2\n{ a = \"x\", b = 2 }\n1\n2\nstill here\n")
        #expect(r.stderr.contains("oops"))
    }

    /// A value that is not UTF-8 prints as a literal that reads back as its bytes (\xHH), not as
    /// the private-use characters sftplua holds such bytes in.
    @Test func replShowsBytesThatAreNotUTF8AsEscapes() throws {
        let r = try sftplua(["repl"], stdin: "\"a\\255b\"\n#\"a\\xffb\"\n")
        #expect(r.stdout == "\"a\\xffb\"\n3\n", "\(r.stdout.debugDescription)")
    }

    /// Ctrl-C while the REPL waits for piped input ends the wait, not the input: the next line
    /// still runs, and end of input exits (before, it spun forever).
    @Test func replGoesOnAfterCtrlCWithPipedInput() throws {
        let script = "(echo 'x = 41'; sleep 2; echo 'print(x + 1)') | \(shellQuote(sftpluaBinary)) repl & pid=$!; sleep 1; "
            + "kill -INT $pid; wait $pid"
        let r = try runProcess("/bin/bash", ["-c", script], env: ["HOME": server.home], timeout: 30)
        #expect(r.stdout == "42\n", "\(r.stderr)")
    }
}
