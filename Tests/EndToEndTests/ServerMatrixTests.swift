import Foundation
import Testing
import TestSupport

/// The same behaviour suite against every SFTP server the tests can start (issue 16): behind a
/// real sshd as its SFTP subsystem, OpenSSH's internal-sftp (the default server of the other
/// tests), OpenSSH's sftp-server program and Green End's gesftpserver (which reads SYMLINK's
/// arguments in the draft's order and answers FAILURE for a path under a file); and asyncssh's
/// own SSH+SFTP server (draft order for clients that are not OpenSSH; no exec).
struct ServerMatrixTests {
    static let servers: [(String, String?)] = [
        ("internal-sftp", nil),
        ("openssh-sftp-server", "/usr/lib/openssh/sftp-server"),
        ("gesftpserver", "/usr/libexec/gesftpserver"),
        // Without the extension that tells SYMLINK's order, the first guess is wrong: the link
        // is read back, the reversed one removed, and the order corrected.
        ("gesftpserver-unhinted", "/usr/libexec/gesftpserver"),
        ("asyncssh", "asyncssh-sftp-server.py"),
        ("paramiko", "paramiko-sftp-server.py"),
        ("proftpd", "daemon"),
        ("dropbear", "daemon"),
        ("rclone", "daemon"),
    ]

    /// A started server: how to log in, where to work, and how to stop it.
    struct Started {
        var server = TestServer.shared   // whose HOME (identity) the script runs with
        var connectLua: String
        var remote: String
        var home: String
        var stop: () -> Void = {}
    }

    static let isRoot = getuid() == 0
    static let hasPasswordAccount = TestServer.shared.passwordUser != nil

    func start(_ name: String, program: String?) throws -> Started {
        let shared = TestServer.shared
        let rootHome = String(cString: getpwuid(getuid())!.pointee.pw_dir)
        func onDisk(_ d: DaemonSFTPServer, login: String = "") throws -> Started {
            let remote = try makeTempDir("matrix-" + name)
            chmod(remote, 0o777)
            return Started(connectLua: "{host = \"127.0.0.1\", port = \(d.port), known_hosts = \"\(d.knownHosts)\"\(login)}",
                           remote: remote, home: rootHome, stop: d.stop)
        }
        switch name {
        case "proftpd":
            return try onDisk(try MatrixDaemons.proftpd(identityFrom: shared))
        case "dropbear":
            let user = try #require(shared.passwordUser)
            let started = try onDisk(try MatrixDaemons.dropbear(), login: ", username = \"\(user)\", password = \"\(shared.password)\"")
            return Started(connectLua: started.connectLua, remote: started.remote,
                           home: String(cString: getpwnam(user)!.pointee.pw_dir), stop: started.stop)
        case "rclone":
            return try onDisk(try MatrixDaemons.rclone(identityFrom: shared))
        default: break
        }
        if let program, program.hasSuffix(".py") {
            let scripted = try ScriptedSFTPServer(script: program, identityFrom: shared)
            return Started(connectLua: "{host = \"127.0.0.1\", port = \(scripted.port), known_hosts = \"\(scripted.knownHosts)\"}",
                           remote: try shared.makeRemoteDir(name), home: rootHome, stop: scripted.stop)
        }
        guard let program else { return Started(connectLua: shared.connectLua, remote: try shared.makeRemoteDir(name), home: rootHome) }
        try #require(FileManager.default.isExecutableFile(atPath: program), "\(program) is installed by scripts/setup")
        let sshd = try TestServer(sftpServer: program)
        return Started(server: sshd, connectLua: sshd.connectLua, remote: try sshd.makeRemoteDir(name), home: rootHome, stop: sshd.stop)
    }

    /// Where a server itself is wrong in a way no client can mend, or lacks something: the line
    /// it gives instead (docs/servers.md says why).
    static let differences: [String: [String: String]] = [
        "asyncssh": ["execute": "execute\tIOError"],
        "paramiko": ["execute": "execute\tIOError",
                     // paramiko's SFTPServer sets a size by opening the file with "w+": refused.
                     "truncate": "truncate\tIOError\thello", "append": "append\tok\thello!"],
        "proftpd": ["execute": "execute\tIOError"],
        // rclone's VFS has no symlinks, ignores chmod and truncate (both read back: IOError),
        // and empties a file opened for writing without truncation (checked first: IOError).
        "rclone": ["symlink": "symlink\tIOError\tIOError\tfalse\tfalse", "symlink exists": "symlink exists\tIOError",
                   "chmod": "chmod\tIOError\tfalse", "truncate": "truncate\tIOError\thello",
                   "append": "append\tIOError\thello"],
    ]

    /// The servers that log in through the shared test identity: they run everywhere.
    static let ownLogin = servers.map(\.0).filter { !systemLogin.contains($0) }
    /// ProFTPD and Dropbear log in through the system's accounts: they need root (and Dropbear
    /// the password account scripts/setup makes). Each has a test of its own that shows as
    /// skipped where it cannot run.
    static let systemLogin: Set<String> = ["proftpd", "dropbear"]

    @Test(arguments: ownLogin)
    func sameSemanticsOnEveryServer(_ name: String) throws {
        try checkSemantics(name)
    }

    @Test(.enabled(if: ServerMatrixTests.isRoot, "proftpd needs root (scripts/setup as root)"))
    func sameSemanticsOnProFTPD() throws {
        try checkSemantics("proftpd")
    }

    @Test(.enabled(if: ServerMatrixTests.isRoot && ServerMatrixTests.hasPasswordAccount,
                   "dropbear needs root and the password account (scripts/setup as root)"))
    func sameSemanticsOnDropbear() throws {
        try checkSemantics("dropbear")
    }

    /// Runs the behaviour script against server `name` and checks its lines (with the
    /// server's known `differences`) and that nothing stray is left.
    func checkSemantics(_ name: String) throws {
        let program = Self.servers.first { $0.0 == name }!.1
        let started = try start(name, program: program)
        defer { started.stop() }
        let remote = started.remote
        let local = try makeTempDir("matrix")
        // 64 MiB each way per server: nothing of it stays behind.
        defer { try? FileManager.default.removeItem(atPath: local); try? FileManager.default.removeItem(atPath: remote) }
        try FileManager.default.createDirectory(atPath: local + "/tree/sub", withIntermediateDirectories: true)
        try "one".write(toFile: local + "/tree/a", atomically: true, encoding: .utf8)
        try "two".write(toFile: local + "/tree/sub/b", atomically: true, encoding: .utf8)
        try "payload".write(toFile: local + "/f", atomically: true, encoding: .utf8)
        let r = try started.server.runScript(Self.script(connectLua: started.connectLua, remote: remote),
            env: name.hasSuffix("unhinted") ? ["SFTPLUA_IGNORE_EXTENSIONS": "symlink-order@rjk.greenend.org.uk"] : [:], cwd: local)
        #expect(r.status == 0, "\(name): \(r.stderr)")
        #expect(r.stdout == Self.expected(name).joined(separator: "\n") + "\n", "\(name): \(r.stdout.debugDescription)")
        // Nothing stray: no link where a reversed SYMLINK would have put one, no temp files.
        let names = try FileManager.default.subpathsOfDirectory(atPath: remote)
        #expect(!names.contains { $0.contains("sftplua.part") }, "\(name): \(names)")
        // A SYMLINK read the other way round would have left a link named "later" or "t" in the
        // server's working directory (the login's home).
        var st = stat()
        for stray in ["later", "t"] {
            let p = started.home + "/" + stray
            if lstat(p, &st) == 0 { #expect(st.st_mode & S_IFMT != S_IFLNK, "\(name): stray link \(p)") }
        }
    }

    /// The lines every server should give, with `name`'s `differences` put in.
    static func expected(_ name: String) -> [String] {
        var want = [
            "symlink\ttrue\ttrue\tx",
            "symlink exists\tFileExists",
            "probe\tfalse\tfalse\tfalse\tfalse",
            "makedirs over file\tFileExists",
            "mkdir existing\tok\tFileExists",
            "rename\tFileExists\tkeep",
            "rename overwrite\tx\tfalse",
            "chmod\tok\ttrue",
            "truncate\tok\the",
            "append\tok\the!",
            "put keeps mode\ttrue\tpayload",
            "trees\tone\ttwo",
            "mirror\t2\t0",
            "copy\t7\tpayload",
            "big\t67108864\ttrue",
            "execute\tok\n\t0",
        ]
        for (k, line) in want.enumerated() {
            let step = String(line.prefix { $0 != "\t" })
            if let other = differences[name]?[step] { want[k] = other }
        }
        return want
    }

    /// The behaviour script: one line per step.
    static func script(connectLua: String, remote: String) -> String {
        """
        local c <close> = sftp.connect\(connectLua)
        local R = "\(remote)"
        local function kind(f, ...) local ok, e = pcall(f, ...); return ok and "ok" or e.kind end
        c:write(R .. "/t", "x")
        -- symlinks: to a file, to nothing yet, relative; each stays exactly as asked
        local s1, s2 = kind(c.symlink, c, "t", R .. "/l1"), kind(c.symlink, c, "later", R .. "/l2")
        if s1 == "ok" and s2 == "ok" then
          print("symlink", c:readlink(R .. "/l1") == R .. "/t", c:readlink(R .. "/l2") == R .. "/later", c:read(R .. "/l1"))
        else
          print("symlink", s1, s2, c:lexists(R .. "/l1"), c:lexists(R .. "/l2"))
        end
        print("symlink exists", kind(c.symlink, c, "t", R .. "/l1"))
        -- paths that cannot exist
        print("probe", c:exists(R .. "/t/x"), c:isdir(R .. "/t/x"), c:isfile(R .. "/t/x"), c:lexists(R .. "/t/x"))
        print("makedirs over file", kind(c.makedirs, c, R .. "/t/x/y"))
        print("mkdir existing", kind(c.mkdir, c, R .. "/sub0") , kind(c.mkdir, c, R .. "/sub0"))
        -- rename never overwrites unless asked
        c:write(R .. "/r2", "keep")
        print("rename", kind(c.rename, c, R .. "/t", R .. "/r2"), c:read(R .. "/r2"))
        c:rename(R .. "/t", R .. "/r2", {overwrite = true})
        print("rename overwrite", c:read(R .. "/r2"), c:exists(R .. "/t"))
        -- chmod, truncate, append
        print("chmod", kind(c.chmod, c, R .. "/r2", 640), c:stat(R .. "/r2").st_mode & 0xfff == tonumber("640", 8))
        c:write(R .. "/w", "hello"); print("truncate", kind(c.truncate, c, R .. "/w", 2), (c:read(R .. "/w"):gsub("%z", "0")))
        print("append", kind(function() local f = c:open(R .. "/w", "a"); f:write("!"); f:close() end), (c:read(R .. "/w"):gsub("%z", "0")))
        -- put onto an existing file keeps its mode; transfers and trees
        local chmodded = pcall(c.chmod, c, R .. "/w", 600)
        print("put keeps mode", c:put("f", R .. "/w").st_mode & 0xfff == tonumber(chmodded and "600" or "644", 8), c:read(R .. "/w"))
        c:put_r("tree", R .. "/tree"); c:get_r(R .. "/tree", "back")
        print("trees", io.open("back/a"):read("a"), io.open("back/sub/b"):read("a"))
        local m1 = c:mirror_up("tree", R .. "/mirror"); local m2 = c:mirror_up("tree", R .. "/mirror")
        print("mirror", m1.copied, #m2.actions)
        print("copy", c:copy(R .. "/w", R .. "/w2").st_size, c:read(R .. "/w2"))
        -- 64 MiB each way: split over several connections where the server takes writes out of
        -- order, one stream where it does not
        local bf = io.open("big", "wb"); bf:write(string.rep("0123456789abcdef", 4 * 1024 * 1024)); bf:close()
        c:put("big", R .. "/big"); c:get(R .. "/big", "big2")
        print("big", c:stat(R .. "/big").st_size, sftp.fs.sha256("big") == sftp.fs.sha256("big2"))
        local okx, lines, status = pcall(c.execute, c, "echo ok")
        if okx then print("execute", lines[1], status) else print("execute", lines.kind) end
        """
    }

    /// A server that cannot take a file's writes out of order, and does not say so in its
    /// banner: the split upload fails (rclone waits ~30 s, then "Illegal seek"), and the file goes
    /// again as one stream. (The banner check is skipped to make rclone such a server.)
    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/rclone"), "rclone is installed by scripts/setup"))
    func aRefusedSplitUploadGoesAgainAsOneStream() throws {
        let shared = TestServer.shared
        let d = try MatrixDaemons.rclone(identityFrom: shared)
        defer { d.stop() }
        let remote = try makeTempDir("split-remote")
        let work = try makeTempDir("split")
        defer { try? FileManager.default.removeItem(atPath: work); try? FileManager.default.removeItem(atPath: remote) }
        let script = work + "/s.lua"
        try """
        local c <close> = sftp.connect{host = "127.0.0.1", port = \(d.port), known_hosts = "\(d.knownHosts)"}
        local f = io.open("big", "wb"); f:write(string.rep("0123456789abcdef", 4 * 1024 * 1024)); f:close()
        local a = c:put("big", "\(remote)/big")
        print(a.st_size, sftp.fs.sha256("big") == sftp.fs.sha256("\(remote)/big"))
        """.write(toFile: script, atomically: true, encoding: .utf8)
        let r = try runProcess(sftpluaBinary, ["-v", "run", script], env: ["HOME": shared.home, "SFTPLUA_ASSUME_OUT_OF_ORDER": "1"],
                               cwd: work, timeout: 240)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "67108864\ttrue\n", "\(r.stdout)")
        #expect(r.stderr.contains("refused writes out of order"), "\(r.stderr)")
        let names = try FileManager.default.contentsOfDirectory(atPath: remote)
        #expect(names == ["big"], "\(names)")
    }
}
