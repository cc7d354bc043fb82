-- sftp.quick: the quick commands (`sftplua ls|get|put|rm|mkdir|copy|mirror WORDS`), scp- and
-- rclone-shaped, on the same engine as recipes. Sources/sftplua/Quick.swift runs
-- `require("sftp.quick").run(op, words)` with the command's words as data (never spliced into
-- code). A remote place is `[user@]host:path` (host may be an ssh_config alias); anything else
-- is local. Errors are raised; the runner prints them as `sftplua OP: message`.
local sftp = require("sftp")
local K = sftp.kinds
local U = require("sftp.util")
local connection = require("sftp.connection")

-- "[user@]host:path" -> {user=, host=, path=}; a local path (no colon before any slash) -> nil
local function remote_of(s)
  local spec, path = s:match("^([^/:]+):(.*)$")
  if not spec then return nil end
  local user, host = spec:match("^(.*)@(.+)$")
  return {user = user, host = host or spec, path = path ~= "" and path or "."}
end

local function base(p) return (p:gsub("/+$", "")):match("([^/]*)$") end
local function isdir_local(p) local a = sftp.fs.stat(p); return a and a.type == "dir" end

-- One command's state: its words and its connections (one per [user@]host, closed at the end).
local Run = {}
Run.__index = Run

function Run:conn(r)
  local key = (r.user or "") .. "@" .. r.host
  if not self.conns[key] then self.conns[key] = sftp.connect{host = r.host, username = r.user} end
  return self.conns[key]
end

function Run:need(n, usage)
  if #self.words < n then sftp.error(K.ArgumentError, "usage: sftplua " .. usage) end
end

function Run:remote(w, what)
  return remote_of(w) or sftp.error(K.ArgumentError, what or (self.op .. ": " .. w .. " is not [user@]host:path"))
end

local commands = {}

function commands.ls(run)
  run:need(1, "ls [user@]host:path ...")
  for _, w in ipairs(run.words) do
    local r = run:remote(w)
    local c = run:conn(r)
    if #run.words > 1 then print(w .. ":") end
    if c:isdir(r.path) then
      for _, e in ipairs(c:listdir_attr(r.path)) do print(e.longname ~= "" and e.longname or e.filename) end
    else
      local a = c:stat(r.path)
      print(("%s %d %s"):format(a.type, a.st_size or 0, r.path))
    end
  end
end

function commands.get(run)
  run:need(1, "get [user@]host:path [LOCAL]")
  local r = run:remote(run.words[1])
  local dst = run.words[2] or "."
  local c = run:conn(r)
  local target = isdir_local(dst) and U.join(dst, base(r.path)) or dst
  if c:isdir(r.path) then c:get_r(r.path, target, {preserve_mtime = true})
  else c:get(r.path, target, {preserve_mtime = true}) end
end

function commands.put(run)
  run:need(2, "put LOCAL... [user@]host:path")
  local words = run.words
  local r = run:remote(words[#words], "put: the last word must be [user@]host:path")
  local c = run:conn(r)
  local into = #words > 2 or r.path:sub(-1) == "/" or c:isdir(r.path)
  -- Into a directory that is not there yet (several sources, or a trailing '/'): made first, as
  -- rclone's copy makes its target.
  if into and not c:isdir(r.path) then c:makedirs(r.path) end
  for i = 1, #words - 1 do
    local src = words[i]
    local dst = into and U.join(r.path, base(src)) or r.path
    if isdir_local(src) then c:put_r(src, dst, {preserve_mtime = true}) else c:put(src, dst, {preserve_mtime = true}) end
  end
end

function commands.rm(run)
  run:need(1, run.op .. " [user@]host:path ...")
  for _, w in ipairs(run.words) do
    local r = run:remote(w)
    if run.op == "rm" then run:conn(r):remove(r.path) else run:conn(r):makedirs(r.path) end
  end
end
commands.mkdir = commands.rm

-- copy's and mirror's words after SRC and DST: the options (rclone's names).
local function transfer_options(run)
  local words, op, opts, i = run.words, run.op, {}, 3
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
  return opts
end

-- SRC and DST of copy and mirror: exactly one of them remote.
local function ends(run)
  run:need(2, run.op .. " SRC DST")
  local src, dst = run.words[1], run.words[2]
  local rs, rd = remote_of(src), remote_of(dst)
  if (rs == nil) == (rd == nil) then
    sftp.error(K.ArgumentError, run.op .. ": one of SRC and DST must be [user@]host:path, the other local")
  end
  return src, dst, rs, rd
end

function commands.copy(run)
  local src, dst, rs, rd = ends(run)
  local opts = transfer_options(run)
  if next(opts) ~= nil and not opts.parallel then
    sftp.error(K.ArgumentError, "copy takes only --parallel; use mirror for --delete, --exclude, --include, --checksum")
  end
  if rs then
    local c = run:conn(rs)
    if c:isdir(rs.path) then c:get_r(rs.path, dst, {preserve_mtime = true, parallel = opts.parallel})
    else c:get(rs.path, dst, {preserve_mtime = true}) end
  else
    local c = run:conn(rd)
    if isdir_local(src) then c:put_r(src, rd.path, {preserve_mtime = true, parallel = opts.parallel})
    else c:put(src, rd.path, {preserve_mtime = true}) end
  end
end

function commands.mirror(run)
  local src, dst, rs, rd = ends(run)
  local opts = transfer_options(run)
  connection.no_summary = true   -- this command prints its own summary line
  local r
  if rs then r = run:conn(rs):mirror_down(rs.path, dst, opts) else r = run:conn(rd):mirror_up(src, rd.path, opts) end
  -- A dry run's plan showed its warnings already (dryrun.show_mirror); in JSON the summary and
  -- warning events are out already (the call's summary), so stdout stays JSON lines.
  local warnings = r.dry_run and {} or r.warnings
  if not sftp.json and not sftp.quiet then
    print(("%s: %d copied, %d updated, %d deleted, %d unchanged, %d bytes%s"):format(run.op, r.copied, r.updated, r.deleted,
      r.skipped, r.bytes, r.dry_run and " (dry run: nothing changed)" or ""))
    for _, w in ipairs(warnings) do print("warning: " .. w) end
  end
end

--- run(op, words): one quick command; its connections are closed however it ends.
local function run(op, words)
  local command = commands[op] or sftp.error(K.ArgumentError, "unknown command " .. tostring(op))
  local state = setmetatable({op = op, words = words, conns = {}}, Run)
  local ok, err = pcall(command, state)
  for _, c in pairs(state.conns) do c:close() end
  if not ok then error(err, 0) end
end

return {run = run}
