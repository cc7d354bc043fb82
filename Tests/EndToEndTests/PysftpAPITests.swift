import Foundation
import Testing
import TestSupport

/// Every method of the contract's Connection table (issue 4), with its error cases, end to end.
struct PysftpAPITests {
    let server = TestServer.shared

    /// Runs `body` with `c` connected and `R` a fresh remote dir; returns stdout lines.
    func lua(_ body: String, cwd: String? = nil, file: String = #function) throws -> (lines: [String], dir: String) {
        let dir = try server.makeRemoteDir(file)
        let r = try server.runScript("""
        local c <close> = sftp.connect\(server.connectLua)
        local R = "\(dir)"
        local function kind(f, ...) local ok, e = pcall(f, ...); if ok then return "ok" end; return type(e) == "table" and e.kind or tostring(e) end
        \(body)
        """, cwd: cwd)
        #expect(r.status == 0, "\(r.stderr)")
        return (r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init), dir)
    }

    @Test func existsFamilyNeverRaisesForMissingPaths() throws {
        let (out, _) = try lua("""
        c:mkdir(R .. "/d"); c:write(R .. "/f", "x"); c:symlink(R .. "/missing", R .. "/dangling")
        print(c:exists(R .. "/f"), c:exists(R .. "/nope"), c:exists(R .. "/dangling"), c:lexists(R .. "/dangling"))
        print(c:isdir(R .. "/d"), c:isdir(R .. "/f"), c:isfile(R .. "/f"), c:isfile(R .. "/d"), c:isfile(R .. "/nope/x"))
        print(kind(c.exists, c, 1))
        """)
        #expect(out == ["true\tfalse\tfalse\ttrue", "true\tfalse\ttrue\tfalse\tfalse", "ArgumentError"])
    }

    @Test func mkdirMakedirsRmdirWithModesAndErrors() throws {
        let (out, dir) = try lua("""
        c:mkdir(R .. "/m", 700)
        print(sftp.st_mode_to_int(c:stat(R .. "/m").st_mode))
        print(kind(c.mkdir, c, R .. "/m"), kind(c.mkdir, c, R .. "/no/such/parent"), kind(c.mkdir, c, R .. "/bad", 789))
        c:makedirs(R .. "/x/y/z", 755); c:makedirs(R .. "/x/y/z")
        print(c:isdir(R .. "/x/y/z"), sftp.st_mode_to_int(c:stat(R .. "/x/y").st_mode))
        c:write(R .. "/file", "x")
        print(kind(c.makedirs, c, R .. "/file"), kind(c.makedirs, c, R .. "/file/sub"))
        print(kind(c.rmdir, c, R .. "/x"), kind(c.rmdir, c, R .. "/none"))
        c:rmdir(R .. "/x/y/z"); print(c:exists(R .. "/x/y/z"))
        """)
        #expect(out == ["700", "FileExists\tFileNotFound\tArgumentError", "true\t755", "FileExists\tFileExists", "IOError\tFileNotFound", "false"])
        _ = dir
    }

    @Test func removeUnlinkRenameChmodChownTruncate() throws {
        let (out, _) = try lua("""
        c:write(R .. "/a", "hello world")
        c:rename(R .. "/a", R .. "/b"); print(c:exists(R .. "/a"), c:read(R .. "/b"))
        c:write(R .. "/c", "x")
        print(kind(c.rename, c, R .. "/b", R .. "/c"), kind(c.rename, c, R .. "/none", R .. "/d"))
        c:chmod(R .. "/b", 640); print(sftp.st_mode_to_int(c:stat(R .. "/b").st_mode))
        print(kind(c.chmod, c, R .. "/none", 644))
        local s = c:stat(R .. "/b"); c:chown(R .. "/b", s.st_uid, nil); c:chown(R .. "/b", nil, s.st_gid)
        print(c:stat(R .. "/b").st_uid == s.st_uid, kind(c.chown, c, R .. "/none", 0, 0))
        print(c:truncate(R .. "/b", 5), c:read(R .. "/b"), kind(c.truncate, c, R .. "/none", 1))
        c:remove(R .. "/b"); c:unlink(R .. "/c")
        print(c:exists(R .. "/b"), c:exists(R .. "/c"), kind(c.remove, c, R .. "/b"), kind(c.unlink, c, R))
        """)
        #expect(out == ["false\thello world", "FileExists\tFileNotFound", "640", "FileNotFound", "true\tFileNotFound",
                        "5\thello\tFileNotFound", "false\tfalse\tFileNotFound\tIOError"])
    }

    @Test func symlinkReadlinkNormalize() throws {
        let (out, dir) = try lua("""
        c:write(R .. "/t", "x")
        c:symlink(R .. "/t", R .. "/abs")
        c:symlink("t", R .. "/rel")
        print(c:readlink(R .. "/abs") == R .. "/t", c:readlink(R .. "/rel") == R .. "/t", c:lstat(R .. "/rel").type, c:stat(R .. "/rel").type)
        print(kind(c.symlink, c, R .. "/t", R .. "/abs"), kind(c.symlink, c, "t", R .. "/no/dir/l"), kind(c.readlink, c, R .. "/none"))
        print(c:normalize(R .. "/./t/../t") == R .. "/t", kind(c.normalize, c, R .. "/none/x"))
        """)
        #expect(out == ["true\ttrue\tlink\tfile", "FileExists\tFileNotFound\tFileNotFound", "true\tFileNotFound"])
        #expect(try FileManager.default.destinationOfSymbolicLink(atPath: dir + "/abs") == dir + "/t")
    }

    @Test func cwdChdirGetcwdCdAndRelativePaths() throws {
        let (out, _) = try lua("""
        print(c:getcwd())
        c:mkdir(R .. "/sub")
        c:chdir(R); print(c:getcwd() == R, c.pwd == R)
        c:write("sub/f", "rel"); print(c:read(R .. "/sub/f"), table.concat(c:listdir("sub"), ","))
        c:cwd("sub"); print(c:getcwd() == R .. "/sub", c:exists("f"))
        local a, b = c:cd(R, function() return c:getcwd() == R, c:read("sub/f") end)
        print(a, b, c:getcwd() == R .. "/sub")
        local ok, e = pcall(c.cd, c, "/", function() error({mine = true}) end)
        print(ok, e.mine, c:getcwd() == R .. "/sub")
        c:cd(nil, function() print("unchanged", c:getcwd() == R .. "/sub") end)
        print(kind(c.chdir, c, R .. "/none"), kind(c.chdir, c, R .. "/sub/f"), kind(c.cd, c, R, 42))
        """)
        #expect(out == ["nil", "true\ttrue", "rel\tf", "true\ttrue", "true\trel\ttrue", "false\ttrue\ttrue", "unchanged\ttrue",
                        "FileNotFound\tIOError\tArgumentError"])
    }

    /// The file the RemoteFile tests read: "a\0b\nline2\n12 3.5e1 rest" (23 bytes) at R/w.
    static let wFile = #"c:write(R .. "/w", "a\0b\nline2\n12 3.5e1 rest")"# + "\n"

    @Test func writeAndReadWholeFiles() throws {
        let (out, _) = try lua("""
        print(c:write(R .. "/w", "a\\0b\\nline2\\n12 3.5e1 rest"), #c:read(R .. "/w"))
        """)
        #expect(out == ["23\t23"])
    }

    @Test func remoteFileReadFormats() throws {
        let (out, _) = try lua(Self.wFile + """
        local f <close> = c:open(R .. "/w")
        print(#f:read(3), f:read("l"), f:read("n", "n"), f:read(1), f:read("a"), f:read("a"), f:read("l"), f:read(0))
        """)
        #expect(out == ["3\t\tnil\tl\tine2", "12 3.5e1 rest\t\tnil\tnil"])
    }

    @Test func remoteFileSeekAndStat() throws {
        let (out, _) = try lua(Self.wFile + """
        local f <close> = c:open(R .. "/w")
        print(f:seek("set", 4), f:read("L"), f:seek("cur"), f:seek("end"), f:stat().st_size)
        """)
        #expect(out == ["4\tline2", "\t10\t23\t23"])
    }

    @Test func remoteFileReadsNumbersAsLuaDoes() throws {
        let (out, _) = try lua("""
        c:write(R .. "/nums", "  12 3.5e1\\n0x10 x"); local nf = c:open(R .. "/nums"); print(nf:read("n", "n", "n", "n"))
        """)
        #expect(out == ["12\t35.0\t16\tnil"])
    }

    @Test func remoteFileLinesIteratesEveryLine() throws {
        let (out, _) = try lua(Self.wFile + """
        local n = 0; for l in c:open(R .. "/w"):lines() do n = n + 1 end; print(n)
        """)
        #expect(out == ["3"])
    }

    @Test func remoteFileWriteAndAppendModes() throws {
        let (out, _) = try lua("""
        local g = c:open(R .. "/new", "w"); g:write("x", 2, "y"); g:close(); print(c:read(R .. "/new"), kind(g.read, g))
        local a = c:open(R .. "/new", "a"); a:write("z"); a:close(); print(c:read(R .. "/new"))
        """)
        #expect(out == ["x2y\tIOError", "x2yz"])
    }

    @Test func openReadAndWriteErrors() throws {
        let (out, _) = try lua("""
        c:write(R .. "/new", "x")
        print(kind(c.open, c, R .. "/none"), kind(c.open, c, R .. "/new", "q"), kind(c.open, c, R .. "/new", "wx"))
        print(kind(c.read, c, R .. "/none"), kind(c.write, c, R .. "/no/dir/f", "x"), kind(c.write, c, R .. "/x", 42))
        """)
        #expect(out == ["FileNotFound\tArgumentError\tFileExists", "FileNotFound\tFileNotFound\tArgumentError"])
    }

    @Test func getfoPutfoWithCallbacks() throws {
        let local = try makeTempDir("fo")
        try String(repeating: "abc", count: 2_000_000).write(toFile: local + "/src", atomically: true, encoding: .utf8)
        let (out, _) = try lua("""
        local calls = 0
        local a = c:putfo(io.open("src", "rb"), R .. "/up", {file_size = 6000000, callback = function() calls = calls + 1 end})
        print(a.st_size, calls > 1)
        local out = io.open("back", "wb")
        local last
        print(c:getfo(R .. "/up", out, {callback = function(d, t) last = d .. "/" .. t end}), last); out:close()
        print(io.open("back", "rb"):read("a") == io.open("src", "rb"):read("a"))
        print(kind(c.getfo, c, R .. "/none", io.open("x", "wb")), kind(c.putfo, c, io.open("src"), R .. "/n", {bogus = 1}), kind(c.putfo, c, 42, R .. "/n"))
        """, cwd: local)
        #expect(out == ["6000000\ttrue", "6000000\t6000000/6000000", "true", "FileNotFound\tArgumentError\tArgumentError"])
    }

    /// stdout lines, the exit status, stderr lines, each stream whole and in its own order
    /// whatever the interleaving; a last line without "\\n" stays as it is.
    @Test func executeReturnsOutputLines() throws {
        let (out, _) = try lua("""
        local lines, status, errs = c:execute("printf 'a\\\\nb\\\\n'; echo err >&2; printf 'c'; printf 'e2' >&2; exit 4")
        print(#lines, lines[1] == "a\\n", lines[2] == "b\\n", lines[3] == "c", status, #errs, errs[1] == "err\\n", errs[2] == "e2")
        print(#c:execute("true"), select(2, c:execute("true")), #select(3, c:execute("true")))
        -- A lot on both streams at once: nothing stalls, nothing mixes.
        local o, st, e = c:execute("for i in $(seq 1 20000); do echo out$i; echo err$i >&2; done")
        print(#o, #e, o[20000], e[20000], st)
        -- The command is bytes: one that is not UTF-8 reaches the shell as it is.
        print(c:execute("printf %s '\\255' | od -An -tx1")[1])
        """)
        #expect(out == ["3\ttrue\ttrue\ttrue\t4\t2\ttrue\ttrue", "0\t0\t0", "20000\t20000\tout20000", "\terr20000", "\t0", " ff", ""])
    }

    @Test func walktreeAndWTCallbacks() throws {
        let (out, _) = try lua("""
        c:makedirs(R .. "/t/a/b"); c:write(R .. "/t/f1", "1"); c:write(R .. "/t/a/f2", "2"); c:write(R .. "/t/a/b/f3", "3")
        c:symlink(R .. "/t/f1", R .. "/t/lf"); c:symlink("/nonexistent", R .. "/t/broken")
        local w = sftp.WTCallbacks()
        c:walktree(R .. "/t", w.file_cb, w.dir_cb, w.unk_cb)
        local function rel(list) local o = {} for i, p in ipairs(list) do o[i] = p:sub(#R + 4) end return table.concat(o, ",") end
        print(rel(w.flist)); print(rel(w.dlist)); print(rel(w.ulist))
        local w2 = sftp.WTCallbacks(); c:walktree(R .. "/t", w2.file_cb, w2.dir_cb, w2.unk_cb, false)
        print(rel(w2.flist), rel(w2.dlist))
        local order = {}
        c:walktree(R .. "/t", function(p) order[#order + 1] = "f:" .. p:sub(#R + 4) end, function(p) order[#order + 1] = "d:" .. p:sub(#R + 4) end)
        print(table.concat(order, ","))
        print(kind(c.walktree, c, R .. "/none"), kind(c.walktree, c, R, 1))
        local ok, e = pcall(c.walktree, c, R .. "/t", function() error("stop", 0) end); print(e)
        """)
        #expect(out == ["a/b/f3,a/f2,f1,lf", "a,a/b", "broken", "f1,lf\ta", "d:a,d:a/b,f:a/b/f3,f:a/f2,f:f1,f:lf",
                        "FileNotFound\tArgumentError", "stop"])
    }

    @Test func recursiveAndOneLevelTransfersCopyContents() throws {
        let local = try makeTempDir("r")
        let (out, dir) = try lua("""
        c:makedirs(R .. "/src/sub dir/ünï"); c:makedirs(R .. "/src/empty")
        c:write(R .. "/src/top.txt", "top"); c:write(R .. "/src/sub dir/a b.txt", "ab"); c:write(R .. "/src/sub dir/ünï/ü.txt", "u")
        c:symlink(R .. "/src/top.txt", R .. "/src/inside-link")
        c:symlink("/etc/passwd", R .. "/src/outside-link")
        c:get_r(R .. "/src", "down/r", {preserve_mtime = true})
        c:get_d(R .. "/src", "down/d")
        local w = {}; sftp.walktree("down", function(p) w[#w + 1] = p end, function(p) w[#w + 1] = p .. "/" end)
        print(table.concat(w, "|"))
        c:put_r("down/r", R .. "/up/r")
        c:put_d("down/r", R .. "/up/d")
        local u = sftp.WTCallbacks(); c:walktree(R .. "/up", u.file_cb, u.dir_cb)
        for i, p in ipairs(u.flist) do u.flist[i] = p:sub(#R + 2) end
        print(table.concat(u.flist, "|"))
        print(kind(c.get_r, c, R .. "/none", "x"), kind(c.put_r, c, "none", R .. "/x"), kind(c.get_r, c, R .. "/src", "y", {bogus = true}))
        """, cwd: local)
        #expect(out[0] == "down/d/|down/d/inside-link|down/d/top.txt|down/r/|down/r/empty/|down/r/inside-link|down/r/sub dir/|down/r/sub dir/a b.txt|down/r/sub dir/ünï/|down/r/sub dir/ünï/ü.txt|down/r/top.txt")
        #expect(out[1] == "up/d/inside-link|up/d/top.txt|up/r/inside-link|up/r/sub dir/a b.txt|up/r/sub dir/ünï/ü.txt|up/r/top.txt")
        #expect(out[2] == "FileNotFound\tFileNotFound\tArgumentError")
        #expect(FileManager.default.fileExists(atPath: dir + "/up/r/empty"))
        #expect(!FileManager.default.fileExists(atPath: local + "/down/r/outside-link"))
    }

    /// A symlinked local directory inside the target is never written through.
    @Test func getRNeverWritesThroughALocalSymlink() throws {
        let local = try makeTempDir("sl")
        let outside = try makeTempDir("outside")
        try FileManager.default.createDirectory(atPath: local + "/t", withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: local + "/t/sub", withDestinationPath: outside)
        let (_, _) = try lua("""
        c:makedirs(R .. "/s/sub"); c:write(R .. "/s/sub/evil", "x")
        c:get_r(R .. "/s", "t")
        """, cwd: local)
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
    }

    @Test func connectionFields() throws {
        let (out, _) = try lua("""
        local ac = c.active_ciphers; print(#ac, ac[1])
        local so = c.security_options; print(#so.ciphers > 0, #so.digests > 0, #so.kex > 0, #so.key_types > 0)
        print(c.logfile, c.timeout)
        """)
        #expect(out == ["2\taes128-ctr", "true\ttrue\ttrue\ttrue", "false\tnil"])
    }

    @Test func stModeToInt() throws {
        let (out, _) = try lua("print(sftp.st_mode_to_int(33188), sftp.st_mode_to_int(16877), sftp.st_mode_to_int(33152))")
        #expect(out == ["644\t755\t600"])
    }

    @Test func reparent() throws {
        let (out, _) = try lua(#"print(sftp.reparent("/new", "/a/b"), sftp.reparent("new", "a/b"))"#)
        #expect(out == ["/new/./a/b\tnew/a/b"])
    }

    @Test func pathAdvanceAndRetreatWithSeparators() throws {
        let (out, _) = try lua("""
        local t = {}; for p in sftp.path_advance("/a/b/c") do t[#t + 1] = p end; print(table.concat(t, " "))
        t = {}; for p in sftp.path_retreat("a/b/c") do t[#t + 1] = p end; print(table.concat(t, " "))
        t = {}; for p in sftp.path_advance("a\\\\b", "\\\\") do t[#t + 1] = p end; print(table.concat(t, " "))
        """)
        #expect(out == ["/a /a/b /a/b/c", "a/b/c a/b a", "a a\\b"])
    }

    @Test func localCdRunsAFunctionInADirectory() throws {
        let (out, _) = try lua(#"local here = sftp.cd("/tmp", function() return io.popen("pwd"):read("l") end); print(here)"#)
        #expect(out == ["/tmp"])
    }

    @Test func localWalktreeOfAnEmptyDirectory() throws {
        let (out, _) = try lua("local wl = sftp.WTCallbacks(); sftp.walktree(R, wl.file_cb, wl.dir_cb, wl.unk_cb); print(#wl.flist, #wl.dlist)")
        #expect(out == ["0\t0"])
    }
}

extension PysftpAPITests {
    /// One-character and non-ASCII local names (NSString's path methods trap on these).
    @Test func shortLocalNamesAndReadOnlyWrites() throws {
        let local = try makeTempDir("short")
        let (out, _) = try lua("""
        c:write(R .. "/r", "data"); c:symlink("r", R .. "/l")
        c:get(R .. "/r", "x"); c:get(R .. "/r", "é"); c:chdir(R); c:get("r")
        print(io.open("x"):read("a"), io.open("é"):read("a"), io.open("r"):read("a"), c:readlink("l") == R .. "/r")
        c:put("x", "y"); print(c:read("y"))
        local f = c:open("r"); print(kind(f.write, f, "no"))
        """, cwd: local)
        #expect(out == ["data\tdata\tdata\ttrue", "data", "IOError"])
    }

    /// PermissionDenied needs an unprivileged login: the password account scripts/setup creates.
    @Test(.enabled(if: TestServer.shared.passwordUser != nil, "needs the password account that scripts/setup creates as root"))
    func permissionDeniedForAnUnprivilegedUser() throws {
        let user = try #require(server.passwordUser)
        let dir = try server.makeRemoteDir()
        chmod(dir, 0o755)
        try "secret".write(toFile: dir + "/locked", atomically: true, encoding: .utf8)
        chmod(dir + "/locked", 0o600)
        let local = try makeTempDir("perm")
        try "x".write(toFile: local + "/f", atomically: true, encoding: .utf8)
        let r = try server.runScript("""
        local c <close> = sftp.connect{host = '127.0.0.1', port = \(server.port), username = '\(user)', password = '\(server.password)'}
        local function kind(f, ...) local ok, e = pcall(f, ...); return ok and "ok" or e.kind end
        print(kind(c.get, c, "\(dir)/locked", "out"), io.open("out") == nil)
        print(kind(c.put, c, "f", "\(dir)/new"), kind(c.mkdir, c, "\(dir)/d"), kind(c.remove, c, "\(dir)/locked"))
        print(kind(c.read, c, "\(dir)/locked"), kind(c.chmod, c, "\(dir)/locked", 777), kind(c.listdir, c, "/root"))
        """, cwd: local)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "PermissionDenied\ttrue\nPermissionDenied\tPermissionDenied\tPermissionDenied\nPermissionDenied\tPermissionDenied\tPermissionDenied\n")
    }
}
