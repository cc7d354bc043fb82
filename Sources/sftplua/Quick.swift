import ArgumentParser
import SFTPLua

/// Quick commands without writing Lua, scp- and rclone-shaped: `ls`, `get`, `put`, `rm`, `mkdir`,
/// `copy`, `mirror`. Each runs one Lua program (`quickProgram`, below) on the same engine as
/// recipes, with the command's words as data in `arg` (never spliced into code). A remote place
/// is `[user@]host:path` (host may be an ssh_config alias); anything else is local.
enum Quick {
    static func run(_ op: String, _ words: [String], _ global: GlobalOptions, dryRun: Bool = false) throws {
        let runner = try Runner()
        runner.quickCommand = op
        runner.enableInterrupts()
        global.apply(to: runner)
        if dryRun { runner.setDryRun(true) }
        runner.setArgs(script: "sftplua " + op, args: [op] + words)
        let status = runner.runString(quickProgram, name: "=sftplua " + op)
        if status != .ok { throw ExitCode(status.rawValue) }
    }

    static let examples = """
    EXAMPLES:
      sftplua ls backup:/var/www                 list like ls -l (backup: an ssh_config alias)
      sftplua get etl@files.example.com:in/a.csv .
      sftplua get files:reports ./reports        a directory is copied whole (as scp -r)
      sftplua put a.csv b.csv files:incoming/    several files into a directory
      sftplua rm files:incoming/old.csv
      sftplua mkdir files:incoming/2026
      sftplua copy ./site files:/var/www/site    either side remote
      sftplua mirror ./site files:/var/www --delete --exclude '*.tmp' --dry-run
    """

    /// The program behind every quick command: arg[1] is the command, then its words.
    static let quickProgram = #"""
    local K = sftp.kinds
    local op = arg[1]
    local words = {}
    for i = 2, #arg do words[#words + 1] = arg[i] end
    -- "[user@]host:path" -> {user=, host=, path=}; a local path (no colon before any slash) -> nil
    local function remote_of(s)
      local spec, path = s:match("^([^/:]+):(.*)$")
      if not spec then return nil end
      local user, host = spec:match("^(.*)@(.+)$")
      return {user = user, host = host or spec, path = path ~= "" and path or "."}
    end
    local conns = {}
    local function conn(r)
      local key = (r.user or "") .. "@" .. r.host
      if not conns[key] then conns[key] = sftp.connect{host = r.host, username = r.user} end
      return conns[key]
    end
    local function need(n, usage)
      if #words < n then sftp.error(K.ArgumentError, "usage: sftplua " .. usage) end
    end
    local function base(p) return (p:gsub("/+$", "")):match("([^/]*)$") end
    local function isdir_local(p) local a = sftp.fs.stat(p); return a and a.type == "dir" end

    if op == "ls" then
      need(1, "ls [user@]host:path ...")
      for _, w in ipairs(words) do
        local r = remote_of(w) or sftp.error(K.ArgumentError, "ls: " .. w .. " is not [user@]host:path")
        local c = conn(r)
        if #words > 1 then print(w .. ":") end
        if c:isdir(r.path) then
          for _, e in ipairs(c:listdir_attr(r.path)) do print(e.longname ~= "" and e.longname or e.filename) end
        else
          local a = c:stat(r.path)
          print(("%s %d %s"):format(a.type, a.st_size or 0, r.path))
        end
      end
    elseif op == "get" then
      need(1, "get [user@]host:path [LOCAL]")
      local r = remote_of(words[1]) or sftp.error(K.ArgumentError, "get: " .. words[1] .. " is not [user@]host:path")
      local dst = words[2] or "."
      local c = conn(r)
      if c:isdir(r.path) then
        local target = isdir_local(dst) and (dst .. "/" .. base(r.path)) or dst
        c:get_r(r.path, target, {preserve_mtime = true})
      else
        c:get(r.path, isdir_local(dst) and (dst .. "/" .. base(r.path)) or dst, {preserve_mtime = true})
      end
    elseif op == "put" then
      need(2, "put LOCAL... [user@]host:path")
      local r = remote_of(words[#words]) or sftp.error(K.ArgumentError, "put: the last word must be [user@]host:path")
      local c = conn(r)
      local into = #words > 2 or r.path:sub(-1) == "/" or c:isdir(r.path)
      for i = 1, #words - 1 do
        local src = words[i]
        local dst = into and ((r.path:gsub("/+$", "")) .. "/" .. base(src)) or r.path
        if isdir_local(src) then c:put_r(src, dst, {preserve_mtime = true}) else c:put(src, dst, {preserve_mtime = true}) end
      end
    elseif op == "rm" or op == "mkdir" then
      need(1, op .. " [user@]host:path ...")
      for _, w in ipairs(words) do
        local r = remote_of(w) or sftp.error(K.ArgumentError, op .. ": " .. w .. " is not [user@]host:path")
        if op == "rm" then conn(r):remove(r.path) else conn(r):makedirs(r.path) end
      end
    elseif op == "copy" or op == "mirror" then
      need(2, op .. " SRC DST")
      local src, dst = words[1], words[2]
      local rs, rd = remote_of(src), remote_of(dst)
      if (rs == nil) == (rd == nil) then sftp.error(K.ArgumentError, op .. ": one of SRC and DST must be [user@]host:path, the other local") end
      local opts = {}
      local i = 3
      while i <= #words do
        local w = words[i]
        if w == "--delete" then opts.delete = true
        elseif w == "--checksum" then opts.compare = "checksum"
        elseif w == "--exclude" or w == "--include" then
          i = i + 1
          local key = w:sub(3)
          opts[key] = opts[key] or {}
          table.insert(opts[key], words[i] or sftp.error(K.ArgumentError, op .. ": " .. w .. " needs a glob"))
        elseif w == "--parallel" then
          i = i + 1
          opts.parallel = math.tointeger(tonumber(words[i] or "")) or sftp.error(K.ArgumentError, op .. ": --parallel needs a number")
        else sftp.error(K.ArgumentError, op .. ": unknown option " .. w .. " (--delete, --exclude GLOB, --include GLOB, --checksum, --parallel N, --dry-run)") end
        i = i + 1
      end
      if op == "copy" then
        if next(opts) ~= nil and not opts.parallel then sftp.error(K.ArgumentError, "copy takes only --parallel; use mirror for --delete, --exclude, --include, --checksum") end
        if rs then
          local c = conn(rs)
          if c:isdir(rs.path) then c:get_r(rs.path, dst, {preserve_mtime = true, parallel = opts.parallel})
          else c:get(rs.path, dst, {preserve_mtime = true}) end
        else
          local c = conn(rd)
          if isdir_local(src) then c:put_r(src, rd.path, {preserve_mtime = true, parallel = opts.parallel})
          else c:put(src, rd.path, {preserve_mtime = true}) end
        end
      else
        local r
        require("sftp.connection").no_summary = true   -- this command prints its own summary line
        if rs then r = conn(rs):mirror_down(rs.path, dst, opts) else r = conn(rd):mirror_up(src, rd.path, opts) end
        if not sftp.quiet then
          print(("%s: %d copied, %d updated, %d deleted, %d unchanged, %d bytes%s"):format(op, r.copied, r.updated, r.deleted,
            r.skipped, r.bytes, r.dry_run and " (dry run: nothing changed)" or ""))
          for _, w in ipairs(r.warnings) do print("warning: " .. w) end
        end
      end
    end
    for _, c in pairs(conns) do c:close() end
    """#
}

/// One subcommand per quick command; their words go to the program as they are.
protocol QuickCommand: ParsableCommand {
    static var op: String { get }
    var global: GlobalOptions { get }
    var words: [String] { get }
    var dryRunFlag: Bool { get }
}
extension QuickCommand {
    func run() throws { try Quick.run(Self.op, words, global, dryRun: dryRunFlag) }
    var dryRunFlag: Bool { false }
}

struct LsCommand: QuickCommand {
    static let op = "ls"
    static let configuration = CommandConfiguration(commandName: "ls", abstract: "List remote directories like ls -l.", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "[user@]host:path ...") var words: [String] = []
}
struct GetCommand: QuickCommand {
    static let op = "get"
    static let configuration = CommandConfiguration(commandName: "get", abstract: "Download a file or a directory (whole, as scp -r).", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "[user@]host:path [LOCAL]") var words: [String] = []
}
struct PutCommand: QuickCommand {
    static let op = "put"
    static let configuration = CommandConfiguration(commandName: "put", abstract: "Upload files or directories.", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "LOCAL... [user@]host:path") var words: [String] = []
}
struct RmCommand: QuickCommand {
    static let op = "rm"
    static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove remote files.", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "[user@]host:path ...") var words: [String] = []
}
struct MkdirCommand: QuickCommand {
    static let op = "mkdir"
    static let configuration = CommandConfiguration(commandName: "mkdir", abstract: "Make remote directories (and their parents).", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(help: "[user@]host:path ...") var words: [String] = []
}
struct CopyCommand: QuickCommand {
    static let op = "copy"
    static let configuration = CommandConfiguration(commandName: "copy", abstract: "Copy SRC to DST, one of them [user@]host:path (directories whole).", discussion: Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Argument(parsing: .allUnrecognized, help: "SRC DST [--parallel N]") var words: [String] = []
}
struct MirrorCommand: QuickCommand {
    static let op = "mirror"
    static let configuration = CommandConfiguration(commandName: "mirror", abstract: "Make DST a mirror of SRC (one of them [user@]host:path).",
        discussion: "Options: --delete, --exclude GLOB (repeatable), --include GLOB (repeatable), --checksum, --parallel N, -n/--dry-run.\n\n" + Quick.examples)
    @OptionGroup var global: GlobalOptions
    @Flag(name: [.customShort("n"), .long], help: "Print the plan and change nothing.") var dryRun = false
    @Argument(parsing: .allUnrecognized, help: "SRC DST [options]") var words: [String] = []
    var dryRunFlag: Bool { dryRun }
}
