import Foundation
import Testing
import TestSupport

/// A REPL on a real pseudo-terminal, driven through tmux (its own server socket per test).
final class TmuxSession {
    let socket: String
    let name = "t"

    init(command: String, env: [String: String], width: Int = 150) throws {
        socket = "sftplua-\(getpid())-\(UUID().uuidString.prefix(8))"
        let envs = env.map { "\($0.key)=\(shellQuote($0.value))" }.joined(separator: " ")
        let r = try runProcess("/usr/bin/tmux", ["-L", socket, "-f", "/dev/null", "new-session", "-d", "-s", name, "-x", String(width), "-y", "50",
                                                  "env \(envs) \(command); echo EXITED $?; sleep 60"], timeout: 20)
        guard r.status == 0 else { throw TestError("tmux: \(r.stderr)") }
    }

    deinit { _ = try? runProcess("/usr/bin/tmux", ["-L", socket, "kill-server"], timeout: 10) }

    /// Types text literally.
    func type(_ text: String) throws { _ = try runProcess("/usr/bin/tmux", ["-L", socket, "send-keys", "-t", name, "-l", text], timeout: 10) }
    /// Sends keys by name (Enter, Tab, C-c, C-d, Up).
    func keys(_ k: String...) throws { _ = try runProcess("/usr/bin/tmux", ["-L", socket, "send-keys", "-t", name] + k, timeout: 10) }

    func screen() throws -> String {
        try runProcess("/usr/bin/tmux", ["-L", socket, "capture-pane", "-p", "-t", name], timeout: 10).stdout
    }

    /// Waits (bounded) until the screen contains `text`; returns the screen.
    @discardableResult
    func wait(for text: String, timeout: Double = 20) throws -> String {
        let end = Date().addingTimeInterval(timeout)
        var last = ""
        while Date() < end {
            last = try screen()
            if last.contains(text) { return last }
            usleep(100_000)
        }
        throw TestError("screen never showed \(text.debugDescription):\n\(last)")
    }
}

func shellQuote(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }

/// A fresh HOME that knows the test server (its own history, ssh config).
func freshHome(_ server: TestServer) throws -> String {
    let home = try makeTempDir("home")
    try FileManager.default.createDirectory(atPath: home + "/.ssh", withIntermediateDirectories: true)
    for f in ["id_ed25519", "id_ed25519.pub", "known_hosts"] {
        try FileManager.default.copyItem(atPath: server.home + "/.ssh/" + f, toPath: home + "/.ssh/" + f)
    }
    return home
}

@Suite(.serialized) struct ReplTerminalTests {
    let server = TestServer.shared

    @Test func editingContinuationPrintingCompletionInterruptAndHistory() throws {
        let home = try freshHome(server)
        let cmd = "\(shellQuote(sftpluaBinary)) repl --connect root@127.0.0.1:\(server.port)"
        do {
            let t = try TmuxSession(command: cmd, env: ["HOME": home])
            try t.wait(for: "Ctrl-D to exit")
            try t.type("1+1"); try t.keys("Enter")
            try t.wait(for: "\n2\n")
            // A table is pretty-printed.
            try t.type("({b = 2, a = {1, 2}})"); try t.keys("Enter")
            try t.wait(for: "{ a = { 1, 2 }, b = 2 }")
            // An unfinished chunk continues on the next line.
            try t.type("for i = 1, 3 do"); try t.keys("Enter")
            try t.wait(for: "do\n>>")
            try t.type("print(i * 11)"); try t.keys("Enter")
            try t.type("end"); try t.keys("Enter")
            try t.wait(for: "11\n22\n33\n")
            // Completion of Connection methods, module fields and globals.
            try t.type("c:listd"); try t.keys("Tab")
            try t.wait(for: "> c:listdir")
            try t.keys("Tab")
            try t.wait(for: "c:listdir_attr")
            try t.keys("C-u")
            try t.type("sftp.fs.getc"); try t.keys("Tab")
            try t.wait(for: "> sftp.fs.getcwd")
            try t.keys("C-u")
            try t.type("print(c.usern"); try t.keys("Tab"); try t.type(")"); try t.keys("Enter")
            try t.wait(for: "\nroot\n")
            // Errors print and the session goes on.
            try t.type("c:stat('/nope/x')"); try t.keys("Enter")
            try t.wait(for: "FileNotFound")
            // Ctrl-C interrupts a running statement, not the REPL.
            try t.type("while true do end"); try t.keys("Enter")
            usleep(300_000)
            try t.keys("C-c")
            try t.wait(for: "Interrupted")
            // ... and drops a half-typed line at the prompt.
            try t.type("this is not lua"); try t.keys("C-c")
            try t.type("print('still ' .. 'here')"); try t.keys("Enter")
            let s = try t.wait(for: "\nstill here\n")
            #expect(!s.contains("syntax error"))
            try t.type("marker_for_history = 42"); try t.keys("Enter")
            try t.keys("C-d")
            try t.wait(for: "EXITED 0")
        }
        // History persisted in $HOME/.sftplua_history and is there in a new session.
        let hist = try String(contentsOfFile: home + "/.sftplua_history", encoding: .utf8)
        #expect(hist.contains("marker_for_history"))
        let t2 = try TmuxSession(command: "\(shellQuote(sftpluaBinary)) repl", env: ["HOME": home])
        try t2.wait(for: "Ctrl-D to exit")
        try t2.keys("Up")
        try t2.wait(for: "> marker_for_history = 42")
    }

    /// Tab inside a string argument of a Connection method completes remote names.
    @Test func tabCompletesRemotePathsInStringArguments() throws {
        let home = try freshHome(server)
        let remote = try server.makeRemoteDir()
        try FileManager.default.createDirectory(atPath: remote + "/subdir-one", withIntermediateDirectories: true)
        try "x".write(toFile: remote + "/subdir-one/report-2026.csv", atomically: true, encoding: .utf8)
        try "x".write(toFile: remote + "/other.txt", atomically: true, encoding: .utf8)
        let t = try TmuxSession(command: "\(shellQuote(sftpluaBinary)) repl --connect root@127.0.0.1:\(server.port)", env: ["HOME": home])
        try t.wait(for: "Ctrl-D to exit")
        try t.type("c:stat(\"\(remote)/subd"); try t.keys("Tab")
        try t.wait(for: "c:stat(\"\(remote)/subdir-one/")
        // A name with word-breaking characters ("-") completes whole.
        try t.type("report-2"); try t.keys("Tab")
        try t.wait(for: "\(remote)/subdir-one/report-2026.csv")
        // No space inside the string: the closing quote follows the name.
        try t.type("\")"); try t.keys("Enter")
        try t.wait(for: "report-2026.csv\")")
        try t.wait(for: "st_size = 1,")
        try t.keys("C-u")
        try t.keys("C-d")
        try t.wait(for: "EXITED 0")
    }
}

struct SSHConfigTests {
    let server = TestServer.shared

    @Test func aliasesResolveThroughSshG() throws {
        let home = try freshHome(server)
        // The identity lives under a non-default name, so only IdentityFile can find it.
        try FileManager.default.moveItem(atPath: home + "/.ssh/id_ed25519", toPath: home + "/.ssh/work_key")
        try FileManager.default.createDirectory(atPath: home + "/.ssh/conf.d", withIntermediateDirectories: true)
        try """
        Include conf.d/*.conf
        Host *.lan
          User nobody-here
        """.write(toFile: home + "/.ssh/config", atomically: true, encoding: .utf8)
        try """
        Host testbox
          HostName 127.0.0.1
          Port \(server.port)
          User root
          IdentityFile ~/.ssh/work_key
        Host wrongport
          HostName 127.0.0.1
          Port 1
          IdentityFile ~/.ssh/work_key
        """.write(toFile: home + "/.ssh/conf.d/test.conf", atomically: true, encoding: .utf8)
        let script = """
        local c = sftp.connect{host = "testbox"}
        print(c.host, c.port, c.username, c.auth_method:match("work_key") ~= nil)
        c:close()
        -- explicit options beat the config
        local c2 = sftp.connect("wrongport", {port = \(server.port), username = "root"})
        print(c2.port, c2.username)
        local ok, e = pcall(sftp.connect, {host = "wrongport", timeout = 5}); print(e.kind)
        """
        let r = try runProcess(sftpluaBinary, ["-v", "-e", script], env: ["HOME": home])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "127.0.0.1\t\(server.port)\troot\ttrue\n\(server.port)\troot\nConnectionError\n")
        #expect(r.stderr.contains("testbox: from ~/.ssh/config: HostName 127.0.0.1, Port \(server.port), IdentityFile \(home)/.ssh/work_key"))
        // --connect takes the alias too.
        let repl = try runProcess(sftpluaBinary, ["repl", "--connect", "testbox"], env: ["HOME": home], stdin: "print(c.port)\n")
        #expect(repl.status == 0, "\(repl.stderr)")
        #expect(repl.stdout.contains("\(server.port)"))
    }
}

struct OutputTests {
    let server = TestServer.shared

    @Test(.enabled(if: TestServer.shared.passwordUser != nil, "needs the password account that scripts/setup creates as root"))
    func verboseLogsActionsAndNeverSecrets() throws {
        let user = try #require(server.passwordUser)
        let work = try makeTempDir("verbose")
        try "abc".write(toFile: work + "/f.txt", atomically: true, encoding: .utf8)
        let remote = try server.makeRemoteDir()
        _ = chmod(remote, 0o777)
        let script = """
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port), username = "\(user)", password = "\(server.password)"}
        c:put("f.txt", "\(remote)/f.txt"); c:get("\(remote)/f.txt", "g.txt")
        c:mirror_down("\(remote)", "m")
        local ok, e = pcall(sftp.connect, {host = "127.0.0.1", port = \(server.port), username = "\(user)", password = "wrong-\(server.password)"})
        print(e.kind)
        error(e)
        """
        let r = try runProcess(sftpluaBinary, ["--verbose", "-e", script], env: ["HOME": server.home], cwd: work)
        #expect(r.status == 4)
        #expect(r.stderr.contains("sftplua: connected to 127.0.0.1 port \(server.port)"))
        #expect(r.stderr.contains("authenticated as \(user) with password"))
        #expect(r.stderr.contains("sftplua: put f.txt -> \(remote)/f.txt"))
        #expect(r.stderr.contains("sftplua: get \(remote)/f.txt -> g.txt"))
        #expect(r.stderr.contains("copy f.txt"))
        #expect(!r.stderr.contains(server.password) && !r.stdout.contains(server.password))
        // Without -v: only the error.
        let q = try runProcess(sftpluaBinary, ["-e", script], env: ["HOME": server.home], cwd: work)
        #expect(!q.stderr.contains("sftplua: connected"))
        #expect(!q.stderr.contains(server.password))
    }

    /// -v lines written by the Lua side stay one line each: a name with a newline is shown as
    /// plans show it (quoted, escaped), and any other control byte in a note is escaped.
    @Test func verboseMirrorLinesNeverSplit() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("vnames")
        FileManager.default.createFile(atPath: remote + "/evil\nsftplua: forged", contents: Data("x".utf8))
        let r = try runProcess(sftpluaBinary, ["-v", "-e", """
        local c = sftp.connect\(server.connectLua)
        c:mirror_down("\(remote)", "m")
        """], env: ["HOME": server.home], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        let lines = r.stderr.split(separator: "\n")
        #expect(lines.allSatisfy { $0.hasPrefix("sftplua: ") }, "\(r.stderr)")
        #expect(r.stderr.contains("copy \"evil\\nsftplua: forged\""), "\(r.stderr)")
        #expect(!lines.contains { $0.hasPrefix("sftplua: forged") })
    }

    /// `-v` lines show a name with a newline, a tab or a byte that is not UTF-8 quoted and
    /// escaped (as plans do), so each stays one line: single transfers and tree copies. (stderr
    /// must be UTF-8 to be read here at all: a raw 0xff would make it unreadable.)
    @Test func verboseLinesEscapeControlBytesInNames() throws {
        let work = try makeTempDir("verbosenames")
        let remote = try server.makeRemoteDir()
        FileManager.default.createFile(atPath: remote + "/nl\nx.txt", contents: Data("one".utf8))
        FileManager.default.createFile(atPath: remote + "/tab\there", contents: Data("two".utf8))
        let bad = Array((remote + "/bad").utf8) + [0xff, 0]
        let fd = bad.withUnsafeBufferPointer { open(UnsafeRawPointer($0.baseAddress!).assumingMemoryBound(to: CChar.self), O_WRONLY | O_CREAT, 0o644) }
        try #require(fd >= 0)
        close(fd)
        let script = """
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port)}
        c:get("\(remote)/nl\\nx.txt", "one")
        c:put("one", "\(remote)/up\\nload")
        c:get_r("\(remote)", "tree")
        """
        let r = try runProcess(sftpluaBinary, ["-v", "-e", script], env: ["HOME": server.home], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(!r.stderr.isEmpty)
        let lines = r.stderr.split(separator: "\n").map(String.init)
        // Every line is a whole log line: no piece of a name starts one.
        for line in lines { #expect(line.hasPrefix("sftplua: "), "\(line.debugDescription) in \(r.stderr)") }
        #expect(lines.contains("sftplua: get \"\(remote)/nl\\nx.txt\" -> one"), "\(r.stderr)")
        #expect(lines.contains("sftplua: put one -> \"\(remote)/up\\nload\""), "\(r.stderr)")
        #expect(lines.contains("sftplua: get \"\(remote)/tab\\there\" -> \"tree/tab\\there\""), "\(r.stderr)")
        #expect(lines.contains("sftplua: get \"\(remote)/bad\\xff\" -> \"tree/bad\\xff\""), "\(r.stderr)")
    }

    @Test func progressOnlyWhereAsked() throws {
        let work = try makeTempDir("progress")
        let remote = try server.makeRemoteDir()
        FileManager.default.createFile(atPath: remote + "/data.bin", contents: Data(count: 3 << 20))
        try FileManager.default.createDirectory(atPath: remote + "/t", withIntermediateDirectories: true)
        for i in 0..<20 { FileManager.default.createFile(atPath: remote + "/t/\(i)", contents: Data(count: 1000)) }
        let script = """
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port)}
        c:get("\(remote)/data.bin", "d.bin"); c:get_r("\(remote)/t", "t")
        """
        let env = ["HOME": server.home, "SFTPLUA_PROGRESS_DELAY": "0"]
        let on = try runProcess(sftpluaBinary, ["--progress", "-e", script], env: env, cwd: work)
        #expect(on.status == 0, "\(on.stderr)")
        #expect(on.stderr.contains("get data.bin") && on.stderr.contains("3.0 MiB / 3.0 MiB, 100%"))
        #expect(on.stderr.contains("Files:        20 / 20, 100%   Checks: 0   Errors: 0"))
        // On a pipe, by default: nothing. --no-progress and --quiet: nothing.
        for flags in [[], ["--no-progress"], ["--quiet"]] {
            let off = try runProcess(sftpluaBinary, flags + ["-e", script], env: env, cwd: work)
            #expect(off.status == 0)
            #expect(off.stderr.isEmpty, "\(flags): \(off.stderr)")
        }
        // run takes the same options.
        try script.write(toFile: work + "/s.lua", atomically: true, encoding: .utf8)
        let run = try runProcess(sftpluaBinary, ["run", "--progress", work + "/s.lua"], env: env, cwd: work)
        #expect(run.stderr.contains("Files:        20 / 20"))
        // Checks count what a mirror found current: a second mirror copies the one new file and
        // checks the 20 it has.
        let mirror = try runProcess(sftpluaBinary, ["--progress", "-e", """
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port)}
        c:mirror_down("\(remote)/t", "m")
        c:write("\(remote)/t/new", "n")
        c:mirror_down("\(remote)/t", "m")
        """], env: env, cwd: work)
        #expect(mirror.status == 0, "\(mirror.stderr)")
        #expect(mirror.stderr.contains("Files:        20 / 20, 100%   Checks: 0   Errors: 0"), "\(mirror.stderr)")
        #expect(mirror.stderr.contains("Files:        1 / 1, 100%   Checks: 20   Errors: 0"), "\(mirror.stderr)")
    }

    /// Errors count the files that failed: one the login may not read fails the tree copy.
    @Test(.enabled(if: TestServer.shared.passwordUser != nil, "needs the password account that scripts/setup creates as root"))
    func progressBlockCountsFailedFiles() throws {
        let user = try #require(server.passwordUser)
        let work = try makeTempDir("progresserr")
        let remote = try server.makeRemoteDir()
        chmod(remote, 0o755)
        try FileManager.default.createDirectory(atPath: remote + "/t", withIntermediateDirectories: true)
        chmod(remote + "/t", 0o755)
        for i in 0..<5 { FileManager.default.createFile(atPath: remote + "/t/f\(i)", contents: Data(count: 1000)) }
        FileManager.default.createFile(atPath: remote + "/t/z-locked", contents: Data(count: 1000))
        chmod(remote + "/t/z-locked", 0o600)
        let r = try runProcess(sftpluaBinary, ["--progress", "-e", """
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port), username = "\(user)", password = "\(server.password)", known_hosts = "\(server.knownHosts)"}
        local ok, e = pcall(c.get_r, c, "\(remote)/t", "t", {parallel = 1})
        print(ok, e.kind)
        """], env: ["HOME": server.home, "SFTPLUA_PROGRESS_DELAY": "0"], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "false\tPermissionDenied\n")
        #expect(r.stderr.contains("Checks: 0   Errors: 1"), "\(r.stderr)")
        #expect(!r.stderr.contains("Errors: 0"), "\(r.stderr)")
    }

    /// The block on a 60-column terminal: every line fits, and what the script prints while it is
    /// shown (an on_action callback) lands on lines of its own, never inside the block.
    @Test func progressBlockFitsAndStepsAsideForOutput() throws {
        let work = try makeTempDir("block")
        let remote = try server.makeRemoteDir("a-directory-with-a-long-name-to-cut-to-the-width")
        for d in 0..<4 {
            try FileManager.default.createDirectory(atPath: remote + "/d\(d)", withIntermediateDirectories: true)
            for i in 0..<150 { FileManager.default.createFile(atPath: remote + "/d\(d)/file-\(i).dat", contents: Data(count: 2000)) }
        }
        let script = work + "/s.lua"
        try """
        local c <close> = sftp.connect{host = "127.0.0.1", port = \(server.port)}
        local n = 0
        local r = c:mirror_down("\(remote)", "\(work)/out", {on_action = function(a)
          n = n + 1
          if n % 100 == 0 then print("ACTION " .. n .. " " .. a.path) end
        end})
        print("DONE " .. r.copied)
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let t = try TmuxSession(command: "\(shellQuote(sftpluaBinary)) run \(shellQuote(script))",
                                env: ["HOME": server.home, "SFTPLUA_PROGRESS_DELAY": "0"], width: 60)
        let screen = try t.wait(for: "EXITED", timeout: 60)
        let lines = screen.split(separator: "\n").map(String.init)
        #expect(screen.contains("DONE 600"), "\(screen)")
        #expect(screen.contains("Files:        600 / 600, 100%"), "\(screen)")
        #expect(screen.contains("Transferred:  1.1 MiB / 1.1 MiB, 100%"), "\(screen)")
        // The label (longer than the terminal) is cut in the middle to fit.
        let label = try #require(lines.first { $0.hasPrefix("mirror_down ") }, "\(screen)")
        #expect(label.count <= 59 && label.contains("..."), "\(label)")
        // Six ACTION lines, each whole on a line of its own.
        let actions = lines.filter { $0.contains("ACTION") }
        #expect(actions.count == 6, "\(screen)")
        for a in actions { #expect(a.hasPrefix("ACTION ") && a.hasSuffix(".dat"), "\(a)") }
    }

    /// --stats prints status lines where no block is drawn; --bwlimit caps every call.
    @Test func statsLinesAndBandwidthLimitFromTheCommandLine() throws {
        let work = try makeTempDir("stats")
        let remote = try server.makeRemoteDir()
        FileManager.default.createFile(atPath: work + "/up.bin", contents: Data(count: 1_500_000))
        let script = """
        local c = sftp.connect{host = "127.0.0.1", port = \(server.port)}
        local t = sftp.now()
        c:put("up.bin", "\(remote)/up.bin")
        print(string.format("%.1f", sftp.now() - t))
        """
        let r = try runProcess(sftpluaBinary, ["-e", script, "--bwlimit", "500K", "--stats", "500ms"],
                               env: ["HOME": server.home], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        // 1.5 MB at 500 KiB/s: about 3 s, not the milliseconds of loopback.
        #expect((Double(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0) >= 2, "\(r.stdout)")
        #expect(r.stderr.contains("sftplua: put up.bin: "), "\(r.stderr)")
        let bad = try runProcess(sftpluaBinary, ["--stats", "often", "-e", "print(1)"], env: ["HOME": server.home], cwd: work)
        #expect(bad.status == 2 && bad.stderr.contains("--stats: 'often' is not a period"))
    }
}
