import Foundation
import Testing
import TestSupport

/// c:mirror_down / c:mirror_up and declarative recipes (issue 7), end to end.
struct MirrorTests {
    let server = TestServer.shared

    /// Runs `body` with `c` connected, `R` a fresh remote dir and the cwd a fresh local dir.
    func lua(_ body: String, file: String = #function, args: [String] = [], dryRun: Bool = false) throws -> (out: [String], remote: String, local: String) {
        let remote = try server.makeRemoteDir(file)
        let local = try makeTempDir("mirror")
        let r = try server.runScript("""
        local c <close> = sftp.connect\(server.connectLua)
        local R = "\(remote)"
        local function kind(f, ...) local ok, e = pcall(f, ...); if ok then return "ok" end; return type(e) == "table" and e.kind or tostring(e) end
        local function spit(p, s) sftp.fs.makedirs(p:match("^(.*)/") or "."); local f = assert(io.open(p, "wb")); f:write(s); f:close() end
        local function slurp(p) local f = io.open(p, "rb"); if not f then return nil end local s = f:read("a"); f:close(); return s end
        local function ops(r) local t = {} for _, a in ipairs(r.actions) do t[#t + 1] = a.op .. ":" .. a.path end return table.concat(t, ",") end
        local function counts(r) return ("c%d u%d d%d s%d b%d"):format(r.copied, r.updated, r.deleted, r.skipped, r.bytes) end
        local function tree(root)
          local out = {}
          sftp.walktree(root, function(p) out[#out + 1] = p:sub(#root + 2) .. "=" .. slurp(p) end, function(p) out[#out + 1] = p:sub(#root + 2) .. "/" end)
          table.sort(out); return table.concat(out, ",")
        end
        \(body)
        """, cwd: local)
        #expect(r.status == 0, "\(r.stderr)")
        return (r.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init), remote, local)
    }

    @Test func downThenUpCopiesUpdatesAndIsIdempotent() throws {
        let (out, _, _) = try lua("""
        spit(R .. "/src/a.txt", "aaa"); spit(R .. "/src/sub dir/ü ñ.txt", "unicode"); spit(R .. "/src/empty.txt", "")
        c:makedirs(R .. "/src/empty dir"); c:makedirs(R .. "/src/deep/er/est"); spit(R .. "/src/deep/er/est/x", "x")
        local r = c:mirror_down(R .. "/src", "down")
        print(ops(r)); print(counts(r))
        print(tree("down"))
        print(counts(c:mirror_down(R .. "/src", "down")))
        -- mtimes are kept, so a second run plans nothing; change one file (same size, new mtime)
        spit(R .. "/src/a.txt", "bbb"); sftp.fs.utime(R .. "/src/a.txt", 1000, 1000)
        r = c:mirror_down(R .. "/src", "down"); print(ops(r), counts(r), slurp("down/a.txt"))
        print(sftp.fs.stat("down/a.txt").st_mtime)
        r = c:mirror_up("down", R .. "/up"); print(counts(r))
        print(tree(R .. "/up") == tree("down"))
        print(counts(c:mirror_up("down", R .. "/up")))
        spit("down/new.txt", "new"); spit("down/a.txt", "changed size")
        r = c:mirror_up("down", R .. "/up"); print(ops(r), counts(r))
        print(counts(c:mirror_up("down", R .. "/up")), counts(c:mirror_down(R .. "/up", "down")))
        """)
        #expect(out == [
            "mkdir:deep,mkdir:deep/er,mkdir:deep/er/est,mkdir:empty dir,mkdir:sub dir,copy:a.txt,copy:deep/er/est/x,copy:empty.txt,copy:sub dir/ü ñ.txt",
            "c4 u0 d0 s0 b11",
            "a.txt=aaa,deep/,deep/er/,deep/er/est/,deep/er/est/x=x,empty dir/,empty.txt=,sub dir/,sub dir/ü ñ.txt=unicode",
            "c0 u0 d0 s4 b0",
            "update:a.txt\tc0 u1 d0 s3 b3\tbbb",
            "1000",
            "c4 u0 d0 s0 b11",
            "true",
            "c0 u0 d0 s4 b0",
            "update:a.txt,copy:new.txt\tc1 u1 d0 s3 b15",
            "c0 u0 d0 s5 b0\tc0 u0 d0 s5 b0",
        ])
    }

    /// Same size, different content, same mtime: only compare = "checksum" sees it (down).
    @Test func checksumSeesWhatSizeAndMtimeMissDown() throws {
        let (out, _, _) = try lua("""
        spit(R .. "/s/f", "same size A"); c:mirror_down(R .. "/s", "d")
        spit("d/f", "same size B"); sftp.fs.utime("d/f", sftp.fs.stat(R .. "/s/f").st_mtime, sftp.fs.stat(R .. "/s/f").st_mtime)
        print(counts(c:mirror_down(R .. "/s", "d", {dry_run = true})), counts(c:mirror_down(R .. "/s", "d", {compare = "size", dry_run = true})))
        local r = c:mirror_down(R .. "/s", "d", {compare = "checksum"}); print(ops(r), slurp("d/f"))
        print(counts(c:mirror_down(R .. "/s", "d", {compare = "checksum"})))
        """)
        #expect(out == ["c0 u0 d0 s1 b0\tc0 u0 d0 s1 b0", "update:f\tsame size A", "c0 u0 d0 s1 b0"])
    }

    @Test func checksumSeesWhatSizeAndMtimeMissUp() throws {
        let (out, _, _) = try lua("""
        spit("u/g", "local bytes"); c:mirror_up("u", R .. "/u")
        spit(R .. "/u/g", "other bytes")
        print(counts(c:mirror_up("u", R .. "/u", {compare = "checksum"})), slurp(R .. "/u/g"))
        """)
        #expect(out == ["c0 u1 d0 s0 b11\tlocal bytes"])
    }

    /// Without preserved mtimes, a target newer than the source is current.
    @Test func withoutPreservedMtimesANewerTargetIsCurrent() throws {
        let (out, _, _) = try lua("""
        spit(R .. "/t/h", "hhh"); sftp.fs.utime(R .. "/t/h", 5000, 5000)
        print(counts(c:mirror_down(R .. "/t", "t", {preserve_mtime = false})), sftp.fs.stat("t/h").st_mtime > 5000)
        print(counts(c:mirror_down(R .. "/t", "t", {preserve_mtime = false})))
        """)
        #expect(out == ["c1 u0 d0 s0 b3\ttrue", "c0 u0 d0 s1 b0"])
    }

    @Test func badCompareOptionsAreArgumentErrorsThatSuggestTheKey() throws {
        let (out, _, _) = try lua("""
        spit(R .. "/s/f", "x")
        print(kind(c.mirror_down, c, R .. "/s", "d", {compare = "md5"}), kind(c.mirror_down, c, R .. "/s", "d", {comapre = "size"}))
        local ok, e = pcall(c.mirror_down, c, R .. "/s", "d", {comapre = "size"}); print(e.message)
        """)
        #expect(out == ["ArgumentError\tArgumentError", "unknown option 'comapre' to 'mirror_down' (did you mean 'compare'?)"])
    }

    @Test func deleteRemovesExtrasOnlyAfterCopiesAndSparesExcluded() throws {
        let (out, _, _) = try lua("""
        spit(R .. "/s/keep.txt", "k"); spit(R .. "/s/sub/k2.txt", "k2")
        spit("d/extra.txt", "x"); spit("d/old/deeper/o.txt", "o"); spit("d/notes.log", "log"); spit("d/gone/x.log", "log2")
        local r = c:mirror_down(R .. "/s", "d", {delete = true, exclude = {"*.log"}, dry_run = true})
        print(ops(r)); print(tree("d"))
        r = c:mirror_down(R .. "/s", "d", {delete = true, exclude = {"*.log"}})
        print(counts(r)); print(tree("d"))
        """)
        #expect(out == [
            "mkdir:sub,copy:keep.txt,copy:sub/k2.txt,delete:old/deeper/o.txt,delete:old/deeper,delete:old,delete:extra.txt",
            "extra.txt=x,gone/,gone/x.log=log2,notes.log=log,old/,old/deeper/,old/deeper/o.txt=o",
            "c2 u0 d4 s0 b3",
            "gone/,gone/x.log=log2,keep.txt=k,notes.log=log,sub/,sub/k2.txt=k2",
        ])
    }

    @Test func withoutDeleteNothingGoes() throws {
        let (out, _, _) = try lua("""
        spit(R .. "/s/keep.txt", "k"); spit(R .. "/s/sub/k2.txt", "k2"); c:mirror_down(R .. "/s", "d")
        spit("d/stay.txt", "s"); print(counts(c:mirror_down(R .. "/s", "d")), slurp("d/stay.txt"))
        """)
        #expect(out == ["c0 u0 d0 s2 b0\ts"])
    }

    @Test func mirrorUpDeletesExtrasOnTheServer() throws {
        let (out, _, _) = try lua("""
        spit("u/a", "a"); c:mirror_up("u", R .. "/u"); spit(R .. "/u/b", "b"); c:makedirs(R .. "/u/e/f")
        local r = c:mirror_up("u", R .. "/u", {delete = true}); print(ops(r)); print(tree(R .. "/u"))
        """)
        #expect(out == ["delete:e/f,delete:e,delete:b", "a=a"])
    }

    /// An empty source with delete empties the target; a missing source raises and deletes nothing.
    @Test func emptySourceEmptiesTheTargetAndAMissingOneDeletesNothing() throws {
        let (out, _, _) = try lua("""
        c:makedirs(R .. "/empty"); spit("e/x", "x")
        print(kind(c.mirror_down, c, R .. "/missing", "e", {delete = true}), slurp("e/x"))
        print(counts(c:mirror_down(R .. "/empty", "e", {delete = true})), slurp("e/x"))
        """)
        #expect(out == ["FileNotFound\tx", "c0 u0 d1 s0 b0\tnil"])
    }

    /// A source tree for the glob tests and `files(opts)`: the paths a dry-run mirror_down of it
    /// would act on.
    static let globTree = """
    for _, p in ipairs({"a.txt", "b.csv", "logs/x.log", "logs/keep.txt", "src/a/b/c.lua", "src/main.lua", "build/out.o", "doc/build/page.html", "cache/"}) do
      if p:sub(-1) == "/" then c:makedirs(R .. "/s/" .. p) else spit(R .. "/s/" .. p, p) end
    end
    local function files(opts) local r = c:mirror_down(R .. "/s", "x", opts); local t = {}
      for _, a in ipairs(r.actions) do t[#t + 1] = a.path end return table.concat(t, ",") end
    local dry = function(o) o.dry_run = true; return o end

    """

    @Test func excludeGlobsLeaveOutWhatTheyMatch() throws {
        let (out, _, _) = try lua(Self.globTree + """
        print(files(dry{exclude = {"*.log", "build/"}}))
        print(files(dry{exclude = {"/build"}}))
        print(files(dry{exclude = {"**/b/*.lua", "[ab].*"}}))
        """)
        #expect(out == [
            "cache,doc,logs,src,src/a,src/a/b,a.txt,b.csv,logs/keep.txt,src/a/b/c.lua,src/main.lua",
            "cache,doc,doc/build,logs,src,src/a,src/a/b,a.txt,b.csv,doc/build/page.html,logs/keep.txt,logs/x.log,src/a/b/c.lua,src/main.lua",
            "build,cache,doc,doc/build,logs,src,src/a,src/a/b,build/out.o,doc/build/page.html,logs/keep.txt,logs/x.log,src/main.lua",
        ])
    }

    @Test func includeGlobsTakeOnlyWhatTheyMatchAndExcludeStillApplies() throws {
        let (out, _, _) = try lua(Self.globTree + """
        print(files(dry{include = {"*.lua"}}))
        print(files(dry{include = {"src/**/*.lua"}, exclude = {"src/a/**"}}))
        """)
        #expect(out == ["src,src/a,src/a/b,src/a/b/c.lua,src/main.lua", "src,src/main.lua"])
    }

    /// filter sees every entry (with its type) and a directory it refuses is not entered.
    @Test func filterSeesEachEntryAndPrunesDirectories() throws {
        let (out, _, _) = try lua(Self.globTree + """
        local seen = {}
        print(files(dry{filter = function(e) seen[#seen + 1] = e.path .. ":" .. e.type; if e.type == "dir" then return e.path ~= "src" end; return e.st_size > 9 end}))
        table.sort(seen); print(table.concat(seen, ","))
        """)
        #expect(out == [
            "build,cache,doc,doc/build,logs,build/out.o,doc/build/page.html,logs/keep.txt,logs/x.log",
            "a.txt:file,b.csv:file,build/out.o:file,build:dir,cache:dir,doc/build/page.html:file,doc/build:dir,doc:dir,logs/keep.txt:file,logs/x.log:file,logs:dir,src:dir",
        ])
    }

    @Test func globMatchRules() throws {
        let (out, _, _) = try lua("""
        local g = sftp.glob.match
        print(g("*.txt", "a/b/c.txt"), g("/a/*.txt", "a/b/c.txt"), g("a/**/c.txt", "a/c.txt"), g("a/**/c.txt", "a/b/x/c.txt"),
              g("build/", "build", false), g("build/", "build", true), g("?.t[xy]t", "dir/a.txt"), g("[!a].txt", "a.txt"), g("a/**", "a/b/c"))
        """)
        #expect(out == ["true\tfalse\ttrue\ttrue\tfalse\ttrue\ttrue\tfalse\ttrue"])
    }

    @Test func badGlobAndFilterOptionsAreArgumentErrors() throws {
        let (out, _, _) = try lua(Self.globTree + """
        print(kind(c.mirror_down, c, R .. "/s", "x", {exclude = "*.log", dry_run = true}), kind(c.mirror_down, c, R .. "/s", "x", {exclude = {1}}),
              kind(c.mirror_down, c, R .. "/s", "x", {filter = "yes"}), kind(c.mirror_down, c, R .. "/s", "x", {parallel = 0}))
        """)
        #expect(out == ["ok\tArgumentError\tArgumentError\tArgumentError"])
    }

    /// An error raised by a filter passes through unchanged.
    @Test func filterErrorsPassThroughUnchanged() throws {
        let (out, _, _) = try lua(Self.globTree + """
        local marker = {}
        local ok, e = pcall(c.mirror_down, c, R .. "/s", "x", {filter = function() error(marker) end}); print(e == marker)
        """)
        #expect(out == ["true"])
    }

    @Test func onActionParallelAndManySmallFiles() throws {
        let (out, _, _) = try lua("""
        for d = 1, 50 do c:mkdir(R .. "/s" .. (d == 1 and "" or "")) ; break end
        c:makedirs(R .. "/s")
        for d = 1, 50 do
          sftp.fs.makedirs(("src/d%02d"):format(d))
          for f = 1, 100 do
            local fh = io.open(("src/d%02d/f%03d"):format(d, f), "wb"); fh:write(("%d/%d "):format(d, f):rep(f % 7)); fh:close()
          end
        end
        local seen = 0
        local r = c:mirror_up("src", R .. "/up", {parallel = 4, on_action = function(a) if a.op == "copy" then seen = seen + 1 end end})
        print(r.copied, seen, #r.actions)
        local r1 = c:mirror_down(R .. "/up", "one", {parallel = 1})
        local r4 = c:mirror_down(R .. "/up", "four", {parallel = 6})
        print(r1.copied, r4.copied, r1.bytes == r4.bytes, tree("one") == tree("four"), tree("one") == tree("src"))
        print(counts(c:mirror_down(R .. "/up", "four")), counts(c:mirror_up("src", R .. "/up")))
        """)
        #expect(out == ["5000\t5000\t5050", "5000\t5000\ttrue\ttrue\ttrue", "c0 u0 d0 s5000 b0\tc0 u0 d0 s5000 b0"])
    }

    /// With delete, nothing the mirror is told to leave alone goes: excluded links, what a skipped
    /// source link names, and a directory standing where the source has a file.
    @Test func deleteSparesExcludedLinksSkippedNamesAndConflicts() throws {
        let (out, _, _) = try lua("""
        spit(R .. "/s/keep.txt", "k"); c:symlink(R .. "/s/keep.txt", R .. "/s/lnk"); spit(R .. "/s/clash", "file in source")
        spit("d/lnk/inside.txt", "target dir named like the source link")
        spit("d/clash/deep.txt", "target dir where the source has a file")
        os.execute("ln -s /tmp d/node_modules")
        local r = c:mirror_down(R .. "/s", "d", {delete = true, exclude = {"node_modules"}})
        print(ops(r))
        print(slurp("d/lnk/inside.txt") ~= nil, slurp("d/clash/deep.txt") ~= nil, sftp.fs.lstat("d/node_modules").type)
        """)
        #expect(out == ["copy:keep.txt", "true\ttrue\tlink"])
    }

    /// Symlinks in the source are skipped and named; nothing is written outside the target,
    /// through a local symlink, or from an unsafe name.
    @Test func safety() throws {
        let outside = try makeTempDir("outside")
        let (out, _, _) = try lua("""
        spit(R .. "/s/ok.txt", "ok"); c:makedirs(R .. "/s/sub"); spit(R .. "/s/sub/inner.txt", "in")
        c:symlink("/etc", R .. "/s/etc-link"); c:symlink(R .. "/s/ok.txt", R .. "/s/file-link")
        sftp.fs.makedirs("t"); os.execute("ln -s \(outside) t/sub")
        local r = c:mirror_down(R .. "/s", "t")
        print(ops(r))
        table.sort(r.warnings); for _, w in ipairs(r.warnings) do print(w) end
        print(sftp.fs.lstat("t/sub").type, sftp.fs.lstat("t/etc-link"))
        spit("l/a", "a"); os.execute("ln -s /etc l/etc-link")
        r = c:mirror_up("l", R .. "/l"); print(ops(r), #r.warnings)
        """)
        #expect(out == [
            "copy:ok.txt",
            "source: symlink etc-link skipped (links are not followed)",
            "source: symlink file-link skipped (links are not followed)",
            "target: sub is a link where the source has a directory; left alone",
            "link\tnil",
            "copy:a\t1",
        ])
        #expect(try FileManager.default.contentsOfDirectory(atPath: outside).isEmpty)
    }
}

/// Declarative recipes and `sftplua run --dry-run`.
struct RecipeTests {
    let server = TestServer.shared

    func run(_ recipe: String, args: [String] = [], env: [String: String] = [:], cwd: String) throws -> ProcessResult {
        let path = cwd + "/recipe.lua"
        try recipe.write(toFile: path, atomically: true, encoding: .utf8)
        var e = ["HOME": server.home, "PORT": String(server.port)]
        for (k, v) in env { e[k] = v }
        return try runProcess(sftpluaBinary, ["run"] + args + [path], env: e, cwd: cwd)
    }

    @Test func recipeRunsRuleByRuleAndDryRunChangesNothing() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("recipe")
        try FileManager.default.createDirectory(atPath: work + "/site/sub", withIntermediateDirectories: true)
        try "hello".write(toFile: work + "/site/index.html", atomically: true, encoding: .utf8)
        try "x".write(toFile: work + "/site/sub/x.tmp", atomically: true, encoding: .utf8)
        let recipe = """
        return {
          connect = {host = "${HOST:-127.0.0.1}", port = "${PORT}", known_hosts = "\(server.knownHosts)"},
          defaults = {exclude = {"*.tmp"}},
          mirror = {
            {up = "site", to = "${REMOTE}/www/deep", delete = true},
            {down = "${REMOTE}/www", to = "back"},
          },
        }
        """
        let dry = try run(recipe, args: ["--dry-run"], env: ["REMOTE": remote], cwd: work)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("mirror_up site -> \(remote)/www/deep: plan (dry run), 2 action(s)"))
        #expect(dry.stdout.contains("  copy   index.html (5 bytes)"))
        #expect(dry.stdout.contains("  mkdir  sub"))
        #expect(!dry.stdout.contains("x.tmp"))
        #expect(!FileManager.default.fileExists(atPath: remote + "/www"))
        #expect(!FileManager.default.fileExists(atPath: work + "/back"))
        let real = try run(recipe, env: ["REMOTE": remote], cwd: work)
        #expect(real.status == 0, "\(real.stderr)")
        #expect(real.stdout.contains("rule #1 (up site -> ${REMOTE}/www/deep): 1 copied, 0 updated, 0 deleted, 0 unchanged, 5 bytes"))
        #expect(real.stdout.contains("rule #2 (down ${REMOTE}/www -> back): 1 copied"))
        #expect(FileManager.default.contents(atPath: work + "/back/deep/index.html") == Data("hello".utf8))
        // The rule's delete: a file only on the server goes (and is counted) on the next run.
        try "extra".write(toFile: remote + "/www/deep/extra.txt", atomically: true, encoding: .utf8)
        let again = try run(recipe, env: ["REMOTE": remote], cwd: work)
        #expect(again.stdout.contains("rule #1 (up site -> ${REMOTE}/www/deep): 0 copied, 0 updated, 1 deleted, 1 unchanged"), "\(again.stdout)")
        #expect(!FileManager.default.fileExists(atPath: remote + "/www/deep/extra.txt"))
        let third = try run(recipe, env: ["REMOTE": remote], cwd: work)
        #expect(third.stdout.contains("rule #1 (up site -> ${REMOTE}/www/deep): 0 copied, 0 updated, 0 deleted, 1 unchanged"), "\(third.stdout)")
        // A variable that is not set is named.
        let unset = try run(recipe, cwd: work)
        #expect(unset.status == 1)
        #expect(unset.stderr.contains("environment variable REMOTE is not set"))
    }

    /// Under --json a recipe's stdout is JSON lines only: its rules' summaries and warnings are
    /// events (the text lines used to be mixed in), a dry run's missing source too. A checksum
    /// rule's own hashing on the server is not shown as a command the recipe would run.
    @Test func recipeUnderJSONWritesOnlyJSONAndChecksumDryRunsRunNothingShown() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("recipejson")
        try FileManager.default.createDirectory(atPath: work + "/site", withIntermediateDirectories: true)
        try "hello".write(toFile: work + "/site/index.html", atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: work + "/site/link", withDestinationPath: "/nonexistent")
        let recipe = """
        return {
          connect = {host = "127.0.0.1", port = "${PORT}", known_hosts = "\(server.knownHosts)"},
          mirror = {
            {up = "site", to = "\(remote)/www", compare = "checksum"},
            {down = "\(remote)/not-yet", to = "back"},
          },
        }
        """
        for args in [["--json"], ["--json", "--dry-run"]] {
            let r = try run(recipe, args: args, cwd: work)
            let lines = r.stdout.split(separator: "\n")
            #expect(!lines.isEmpty && lines.allSatisfy { $0.hasPrefix("{") && $0.hasSuffix("}") }, "\(args): \(r.stdout)")
            #expect(r.stdout.contains(#""event":"warning""#), "\(args): \(r.stdout)")
        }
        // The first real run left index.html there: a checksum dry run hashes it on the server
        // to compare, and shows no `execute` of its own.
        let dry = try run(recipe, args: ["--dry-run"], cwd: work)
        #expect(!dry.stdout.contains("would execute"), "\(dry.stdout)")
        #expect(dry.stdout.contains("plan (dry run), 0 action(s)"), "\(dry.stdout)")
    }

    /// sftp.run_recipe with a connection needs no `connect` table, and its options are checked.
    @Test func runRecipeWithAConnectionAndItsOptions() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("runrecipe")
        try FileManager.default.createDirectory(atPath: work + "/src", withIntermediateDirectories: true)
        try "a".write(toFile: work + "/src/a", atomically: true, encoding: .utf8)
        let r = try run("""
        local c <close> = sftp.connect{host = "127.0.0.1", port = tonumber(os.getenv("PORT")), known_hosts = "\(server.knownHosts)"}
        local rules = {mirror = {{up = "src", to = "\(remote)/out"}}}
        print(sftp.run_recipe(rules, {connection = c, quiet = true})[1].copied)
        local ok, e = pcall(sftp.run_recipe, rules, {connection = c, bse = "/x"})
        print(e.kind, e.message)
        """, cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "1\nArgumentError\tunknown option 'bse' to 'run_recipe' (did you mean 'base'?)\n", "\(r.stdout)")
    }

    /// An error inside a callback names the callback's line, not the line of the call.
    @Test func callbackErrorsNameTheCallbacksLine() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("cbline")
        try "x".write(toFile: remote + "/f", atomically: true, encoding: .utf8)
        let r = try run("""
        local c <close> = sftp.connect{host = "127.0.0.1", port = tonumber(os.getenv("PORT")), known_hosts = "\(server.knownHosts)"}
        c:mirror_down("\(remote)", "out", {
          filter = function(e)
            local t = nil
            return t.field
          end})
        """, cwd: work)
        #expect(r.status == 1)
        let first = r.stderr.split(separator: "\n").first.map(String.init) ?? ""
        #expect(first == work + "/recipe.lua:5: attempt to index a nil value (local 't')", "\(r.stderr)")
    }

    /// A dry run fails where the real run would: a source that nothing earlier creates.
    @Test func dryRunOfAMissingSourceFailsAsTheRealRun() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("drymissing")
        let recipe = """
        return {
          connect = {host = "127.0.0.1", port = "${PORT}", known_hosts = "\(server.knownHosts)"},
          mirror = {{up = "no-such-dir", to = "\(remote)/x"}},
        }
        """
        let dry = try run(recipe, args: ["--dry-run"], cwd: work)
        let real = try run(recipe, cwd: work)
        #expect(dry.status == 1 && real.status == 1, "\(dry.stderr) / \(real.stderr)")
        #expect(dry.stderr.contains("FileNotFound") && real.stderr.contains("FileNotFound"), "\(dry.stderr)")
        let down = """
        return {
          connect = {host = "127.0.0.1", port = "${PORT}", known_hosts = "\(server.knownHosts)"},
          mirror = {{down = "\(remote)/missing", to = "here"}},
        }
        """
        let dryDown = try run(down, args: ["--dry-run"], cwd: work)
        #expect(dryDown.status == 1 && dryDown.stderr.contains("FileNotFound"), "\(dryDown.stdout) \(dryDown.stderr)")
    }

    @Test func imperativeScriptUnderDryRunChangesNothing() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("dry")
        try "data".write(toFile: work + "/f.txt", atomically: true, encoding: .utf8)
        let r = try run("""
        local c <close> = sftp.connect{host = "127.0.0.1", port = tonumber(os.getenv("PORT")), known_hosts = "\(server.knownHosts)"}
        c:put("f.txt", "\(remote)/f.txt"); c:mkdir("\(remote)/d"); c:remove("\(remote)/nothing")
        local r = c:mirror_up(".", "\(remote)/m", {delete = true})
        print("planned", r.copied, r.dry_run, sftp.dry_run)
        """, args: ["--dry-run"], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("dry run: would put f.txt \(remote)/f.txt"))
        #expect(r.stdout.contains("dry run: would mkdir \(remote)/d"))
        #expect(r.stdout.contains("planned\t2\ttrue\ttrue"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: remote).isEmpty)
    }

    /// A dry run refuses c:open for writing (nothing could stand in for the file): an IOError
    /// that says it is the dry run and what to use instead; reading still works.
    @Test func dryRunRefusesOpenForWritingAndSaysWhy() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("dryopen")
        try "one".write(toFile: remote + "/r.txt", atomically: true, encoding: .utf8)
        let script = """
        local c <close> = sftp.connect{host = "127.0.0.1", port = tonumber(os.getenv("PORT")), known_hosts = "\(server.knownHosts)"}
        local ok, e = pcall(c.open, c, "\(remote)/new.txt", "w")
        io.stderr:write(tostring(ok), "|", e.kind, "|", e.message, "|", tostring(e.path), "\\n")
        local f <close> = c:open("\(remote)/r.txt"); io.stderr:write(f:read("a"), "\\n")
        -- Bad arguments are ArgumentErrors, as without --dry-run.
        ok, e = pcall(c.open, c, nil, "w"); io.stderr:write(e.kind, "|", e.message, "\\n")
        ok, e = pcall(function() local f = c:open("\(remote)/new.txt", 42) end); io.stderr:write(e.kind, "|", e.message, "\\n")
        """
        let r = try run(script, args: ["--dry-run"], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "dry run: would open \(remote)/new.txt w\n")
        let msg = "dry run: c:open(\"\(remote)/new.txt\", \"w\") is refused: a dry run writes nothing, so no file can be opened for writing; use c:write or c:put (a dry run reports them), or check sftp.dry_run or pcall the open"
        #expect(r.stderr == "false|IOError|\(msg)|\(remote)/new.txt\none\n"
                + "ArgumentError|bad argument #2 to 'open' (string expected, got no value)\n"
                + "ArgumentError|bad argument #2 to 'open' (string expected, got number)\n")
        let json = try run(script, args: ["--dry-run", "--json"], cwd: work)
        #expect(json.stdout == #"{"args":["\#(remote)/new.txt","w"],"call":"open","event":"plan"}"# + "\n")
        #expect(!FileManager.default.fileExists(atPath: remote + "/new.txt"))
    }

    /// An error raised by a recipe's callback passes through sftp.run_recipe unchanged.
    @Test func callbackErrorsPassThroughRecipes() throws {
        let remote = try server.makeRemoteDir()
        let work = try makeTempDir("recipecb")
        try "x".write(toFile: remote + "/f", atomically: true, encoding: .utf8)
        let r = try server.runScript("""
        local c <close> = sftp.connect\(server.connectLua)
        local marker = {}
        local function rule(to, cb) return {connect = {host = "unused"}, mirror = {{down = "\(remote)", to = to, on_action = cb}}} end
        local ok, e = pcall(sftp.run_recipe, rule("d1", function() error(marker) end), {connection = c, quiet = true})
        print(ok, e == marker)
        ok, e = pcall(sftp.run_recipe, rule("d2", function() error("plain string", 0) end), {connection = c, quiet = true})
        print(ok, e)
        """, cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout == "false\ttrue\nfalse\tplain string\n")
    }

    /// Bad recipes: an ArgumentError naming the field (and the rule), never a crash.
    @Test func badRecipesNameTheField() throws {
        let work = try makeTempDir("bad")
        let cases: [(String, String)] = [
            ("return {connect = {host = 'x'}, mirror = {{down = '/a', to = 'b', delet = true}}}", "rule #1 (down /a -> b): unknown key 'delet' in the rule (did you mean 'delete'?)"),
            ("return {conect = {host = 'x'}, mirror = {}}", "unknown key 'conect' in the recipe (did you mean 'connect'?)"),
            ("return {connect = {host = 'x'}, mirror = {{down = '/a', up = 'b', to = 'c'}}}", "give exactly one of 'down'"),
            ("return {connect = {host = 'x'}, mirror = {{down = '/a'}}}", "'to' (the target dir) is missing"),
            ("return {connect = {host = 'x'}, mirror = {{down = 5, to = 'b'}}}", "'down' must be a non-empty string"),
            ("return {connect = 'x', mirror = {}}", "'connect' must be a table"),
            ("return {connect = {host = 'x'}, mirror = {{down = '/a', to = 'b'}, 'oops'}}", "rule #2: table expected, got string"),
            ("return {connect = {host = 'x', prot = 22}, mirror = {}}", "unknown option 'prot' to 'connect' (did you mean 'port'?)"),
            ("return {connect = {host = 'x'}, mirror = {{down = '/a', to = 'b', parallel = 1e300}}}", "bad option 'parallel'"),
            ("return {connect = {host = 'x'}, defaults = {compare = 'sha1'}, mirror = {{down = '/a', to = 'b'}}}", "bad option 'compare'"),
        ]
        for (recipe, message) in cases {
            let r = try run(recipe, cwd: work)
            #expect(r.status == 1 || r.status == 3, "\(recipe): \(r.stderr)")
            #expect(r.stderr.contains("ArgumentError"), "\(recipe): \(r.stderr)")
            #expect(r.stderr.contains(message), "\(recipe): \(r.stderr)")
        }
    }
}

extension ExampleTests {
    @Test func mirrorExample() throws {
        let dir = try server.makeRemoteDir()
        let work = try makeTempDir("mirrorex")
        // Its header's dry run, on a fresh server: plans only, nothing made (it used to fail
        // listing the inbox the dry run had not made).
        let dry = try runProcess(sftpluaBinary, ["run", "--dry-run", repoRoot.path + "/examples/mirror.lua", dir],
                                 env: ["HOME": server.home, "SFTPLUA_HOST": "127.0.0.1", "SFTPLUA_PORT": String(server.port)], cwd: work)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("does not exist yet"), "\(dry.stdout)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir).isEmpty)
        let r = try runProcess(sftpluaBinary, ["run", repoRoot.path + "/examples/mirror.lua", dir],
                               env: ["HOME": server.home, "SFTPLUA_HOST": "127.0.0.1", "SFTPLUA_PORT": String(server.port)], cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("publish: 3 copied, 0 updated, 0 deleted, 0 unchanged"))
        #expect(r.stdout.contains("inbox: 1 copied"))
        #expect(r.stdout.contains("publish again: 0 copied, 0 updated, 0 deleted, 3 unchanged, 0 bytes"))
        #expect(FileManager.default.fileExists(atPath: dir + "/public/blog/first-post.html"))
        #expect(FileManager.default.fileExists(atPath: work + "/inbox/orders.csv"))
        #expect(!FileManager.default.fileExists(atPath: work + "/inbox/partial.csv"))
    }

    @Test func siteRecipeExample() throws {
        let dir = try server.makeRemoteDir()
        let work = try makeTempDir("siteex")
        let env = ["HOME": server.home, "SFTPLUA_HOST": "127.0.0.1", "SFTPLUA_PORT": String(server.port)]
        let path = repoRoot.path + "/examples/site.recipe.lua"
        let dry = try runProcess(sftpluaBinary, ["run", "--dry-run", path, dir], env: env, cwd: work)
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("copy   index.html"))
        #expect(!FileManager.default.fileExists(atPath: dir + "/www"))
        let r = try runProcess(sftpluaBinary, ["run", path, dir], env: env, cwd: work)
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stdout.contains("3 copied"))
        #expect(FileManager.default.contents(atPath: work + "/site-backup/css/style.css") ==
                FileManager.default.contents(atPath: repoRoot.path + "/examples/site/css/style.css"))
        let again = try runProcess(sftpluaBinary, ["run", path], env: env.merging(["SITE_REMOTE": dir]) { $1 }, cwd: work)
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("rule #1") && again.stdout.contains("0 copied, 0 updated, 0 deleted, 3 unchanged"))
    }
}
