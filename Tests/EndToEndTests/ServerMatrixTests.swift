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
    ]

    @Test(arguments: servers.map(\.0))
    func sameSemanticsOnEveryServer(_ name: String) throws {
        let program = Self.servers.first { $0.0 == name }!.1
        let shared = TestServer.shared
        var sshd: TestServer?
        var scripted: ScriptedSFTPServer?
        if let program, program.hasSuffix(".py") {
            scripted = try ScriptedSFTPServer(script: program, identityFrom: shared)
        } else if let program {
            try #require(FileManager.default.isExecutableFile(atPath: program), "\(program) is installed by scripts/setup")
            sshd = try TestServer(sftpServer: program)
        }
        defer { sshd?.stop(); scripted?.stop() }
        let server = sshd ?? shared
        let connectLua = scripted.map { "{host = \"127.0.0.1\", port = \($0.port), known_hosts = \"\($0.knownHosts)\"}" } ?? server.connectLua
        let hasExec = scripted == nil
        let remote = try server.makeRemoteDir(name)
        let local = try makeTempDir("matrix")
        try FileManager.default.createDirectory(atPath: local + "/tree/sub", withIntermediateDirectories: true)
        try "one".write(toFile: local + "/tree/a", atomically: true, encoding: .utf8)
        try "two".write(toFile: local + "/tree/sub/b", atomically: true, encoding: .utf8)
        try "payload".write(toFile: local + "/f", atomically: true, encoding: .utf8)
        let r = try server.runScript("""
        local c <close> = sftp.connect\(connectLua)
        local R = "\(remote)"
        local function kind(f, ...) local ok, e = pcall(f, ...); return ok and "ok" or e.kind end
        c:write(R .. "/t", "x")
        -- symlinks: to a file, to nothing yet, relative; each stays exactly as asked
        c:symlink("t", R .. "/l1"); c:symlink("later", R .. "/l2")
        print("symlink", c:readlink(R .. "/l1") == R .. "/t", c:readlink(R .. "/l2") == R .. "/later", c:read(R .. "/l1"))
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
        c:chmod(R .. "/r2", 640); print("chmod", c:stat(R .. "/r2").st_mode & 0xfff == tonumber("640", 8))
        c:write(R .. "/w", "hello"); print("truncate", c:truncate(R .. "/w", 2), c:read(R .. "/w"))
        local f = c:open(R .. "/w", "a"); f:write("!"); f:close(); print("append", c:read(R .. "/w"))
        -- put onto an existing file keeps its mode; transfers and trees
        c:chmod(R .. "/w", 600)
        print("put keeps mode", c:put("f", R .. "/w").st_mode & 0xfff == tonumber("600", 8), c:read(R .. "/w"))
        c:put_r("tree", R .. "/tree"); c:get_r(R .. "/tree", "back")
        print("trees", io.open("back/a"):read("a"), io.open("back/sub/b"):read("a"))
        local m1 = c:mirror_up("tree", R .. "/mirror"); local m2 = c:mirror_up("tree", R .. "/mirror")
        print("mirror", m1.copied, #m2.actions)
        print("copy", c:copy(R .. "/w", R .. "/w2").st_size, c:read(R .. "/w2"))
        local okx, lines, status = pcall(c.execute, c, "echo ok")
        if okx then print("execute", lines[1], status) else print("execute", lines.kind) end
        """, env: name.hasSuffix("unhinted") ? ["SFTPLUA_IGNORE_EXTENSIONS": "symlink-order@rjk.greenend.org.uk"] : [:], cwd: local)
        #expect(r.status == 0, "\(name): \(r.stderr)")
        let want = [
            "symlink\ttrue\ttrue\tx",
            "symlink exists\tFileExists",
            "probe\tfalse\tfalse\tfalse\tfalse",
            "makedirs over file\tFileExists",
            "mkdir existing\tok\tFileExists",
            "rename\tFileExists\tkeep",
            "rename overwrite\tx\tfalse",
            "chmod\ttrue",
            "truncate\t2\the",
            "append\the!",
            "put keeps mode\ttrue\tpayload",
            "trees\tone\ttwo",
            "mirror\t2\t0",
            "copy\t7\tpayload",
            hasExec ? "execute\tok\n\t0" : "execute\tIOError",
        ]
        #expect(r.stdout == want.joined(separator: "\n") + "\n", "\(name)")
        // Nothing stray: no link where a reversed SYMLINK would have put one, no temp files.
        let names = try FileManager.default.subpathsOfDirectory(atPath: remote)
        #expect(!names.contains { $0.contains("sftplua.part") }, "\(name): \(names)")
        // A SYMLINK read the other way round would have left a link named "later" or "t" in the
        // server's working directory (the login's home).
        var st = stat()
        let home = String(cString: getpwuid(getuid())!.pointee.pw_dir)
        for stray in ["later", "t"] {
            let p = home + "/" + stray
            if lstat(p, &st) == 0 { #expect(st.st_mode & S_IFMT != S_IFLNK, "\(name): stray link \(p)") }
        }
    }
}
