-- sftp.dryrun: what `sftplua run --dry-run` (sftp.dry_run) does, in one place. A dry run
-- changes nothing, on the server or here, and says what would be done instead:
--   * calls that would change something print "dry run: would CALL ARGS" and do nothing
--     (`install`, run by the runner before the script);
--   * get_d/get_r/put_d/put_r and the batch engine plan as usual and print their plan
--     (`show_plan`, `show_jobs`); mirrors plan in Swift (c:_mirror's `dry_run`: counts, no
--     action) and print theirs (`show_mirror`);
--   * a source that an earlier rule of the same run would have created is planned as empty,
--     with a warning (`remember_target`, `missing_source`, `empty_mirror`); any other missing
--     source fails the dry run as it would fail the real one;
--   * the SyncAgent does not save its cache (syncagent.lua).
-- With --json every line is a `plan` event instead.
local sftp = require("sftp")
local K = sftp.kinds   -- error kinds: a misspelt one is an error, not a new kind
local U = require("sftp.util")
local core = require("sftp.core")
local M = core.connection_methods
local shown = U.shown

local dryrun = {}

-- The calls whose argument #i is a pysftp mode (the octal digits: 640 is rw-r-----); it shows
-- as its octal digits with a leading 0 ("0640"), and in JSON also as the event's `mode`.
local MODE_ARG = {chmod = 2, mkdir = 2, makedirs = 2, ["fs.mkdir"] = 2}

local function octal(v)
  if math.type(v) == "integer" and v >= 0 then return ("%04d"):format(v) end
end

-- An argument in the text line: a name as plans print it, a table as {k=v,...} (sorted), a
-- function as "function", anything else as tostring does.
local function text_arg(a)
  local t = type(a)
  if t == "string" then return shown(a) end
  if t == "function" then return "function" end
  if t ~= "table" then return tostring(a) end
  local parts = {}
  if #a > 0 then
    for _, v in ipairs(a) do parts[#parts + 1] = text_arg(v) end
  else
    for k, v in pairs(a) do parts[#parts + 1] = tostring(k) .. "=" .. text_arg(v) end
    table.sort(parts)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- A JSON null in the args array (U.json_value writes a function as null; a Lua nil would end it).
local JSON_NULL = function() end

--- One "dry run: would WHAT ARG..." line (names as plans print them), or a JSON plan event.
--- Every argument shows, in both (trailing nils left out); a mode as MODE_ARG says.
function dryrun.would(what, ...)
  local args = table.pack(...)
  while args.n > 0 and args[args.n] == nil do args.n = args.n - 1 end
  local mode_at = MODE_ARG[what]
  local mode = mode_at and octal(args[mode_at])
  if sftp.json then
    local raw = {}
    for i = 1, args.n do
      local a = args[i]
      raw[i] = (a == nil or type(a) == "function" or type(a) == "userdata") and JSON_NULL or a
    end
    U.emit({event = "plan", call = what, args = raw, mode = mode})
    return
  end
  local parts = {}
  for i = 1, args.n do parts[i] = (i == mode_at and mode) or text_arg(args[i]) end
  io.write(("dry run: would %s %s\n"):format(what, table.concat(parts, " ")))
end

--- The file jobs of a plan (get: remote, local; put: local, remote). Returns what the real run
--- would count in its summary: {copied = jobs, bytes = their sizes, dry_run = true}.
function dryrun.show_jobs(jobs)
  local bytes = 0
  for _, j in ipairs(jobs) do
    local size = j.size
    if size == nil and j.op == "put" then size = (sftp.fs.stat(j["local"]) or {}).st_size end
    bytes = bytes + (size or 0)
    if sftp.json then U.emit({event = "plan", op = j.op, remote = j.remote, ["local"] = j["local"], size = size})
    elseif j.op == "get" then dryrun.would("get", j.remote, j["local"])
    else dryrun.would("put", j["local"], j.remote) end
  end
  return {copied = #jobs, bytes = bytes, dry_run = true}
end

--- A get_r/put_r plan: its target when it is missing (`plan.makedirs`: made with its parents,
--- as the real call does), the directories to make, level by level, then the files. Returns the
--- counts of its files, as show_jobs.
function dryrun.show_plan(plan)
  if plan.makedirs then
    if sftp.json then U.emit({event = "plan", op = "makedirs", path = plan.makedirs}) else dryrun.would("makedirs", plan.makedirs) end
  end
  for _, level in ipairs(plan.mkdirs) do
    for _, d in ipairs(level) do
      if sftp.json then U.emit({event = "plan", op = "mkdir", path = d}) else dryrun.would("mkdir", d) end
    end
  end
  return dryrun.show_jobs(plan.jobs)
end

-- Targets of the run's mirrors so far: ["local:" .. path] / ["remote:" .. path] = true.
local planned_roots = {}

local function fmt_action(a)
  return ("%-6s %s%s"):format(a.op, shown(a.path), a.size and (" (" .. a.size .. " bytes)") or "")
end

--- A mirror's plan (`result` of c:_mirror with dry_run): its label, actions and warnings. The
--- target is remembered, for `missing_source`.
function dryrun.show_mirror(label, result, side, target)
  result.dry_run = true
  dryrun.remember_target(side, target)
  if sftp.json then
    for _, a in ipairs(result.actions) do U.emit({event = "plan", call = label, op = a.op, path = a.path, size = a.size}) end
    for _, w in ipairs(result.warnings) do U.emit({event = "warning", call = label, message = w}) end
  elseif sftp.dry_run then
    io.write(("%s: plan (dry run), %d action(s)\n"):format(label, #result.actions))
    for _, a in ipairs(result.actions) do io.write("  ", fmt_action(a), "\n") end
    for _, w in ipairs(result.warnings) do io.write("  warning: ", w, "\n") end
  end
end

--- A directory a dry run's mirror would make (`side`: "local" or "remote").
function dryrun.remember_target(side, path)
  planned_roots[side .. ":" .. path] = true
end

-- Would an earlier rule of this run make `path` on `side`: the root itself, what is under it, or
-- a parent it would be made in?
local function planned(side, path)
  for root in pairs(planned_roots) do
    local s, r = root:match("^(%a+):(.*)$")
    if s == side and (path == r or path:sub(1, #r + 1) == r .. "/" or r:sub(1, #path + 1) == path .. "/") then return true end
  end
  return false
end

--- In a dry run, is `err` (nil: the path is simply missing) a source that an earlier rule of the
--- run would have created?
function dryrun.missing_source(err, side, path)
  if not sftp.dry_run then return false end
  if err ~= nil and not (type(err) == "table" and err.kind == K.FileNotFound) then return false end
  return planned(side, path)
end

--- The plan of a mirror whose source does not exist yet (see missing_source).
function dryrun.empty_mirror(label, src)
  local w = "source: " .. src .. " does not exist (yet)"
  if sftp.json then U.emit({event = "warning", call = label, message = w})
  else io.write(("%s: plan (dry run), 0 action(s)\n  warning: %s\n"):format(label, w)) end
  return {copied = 0, updated = 0, deleted = 0, skipped = 0, bytes = 0, actions = {}, dry_run = true, warnings = {w}}
end

-- Every Connection call that would change a server or the local disk (get_d/get_r/put_d/put_r
-- are not here: they plan first and print their plan; mirrors too).
local mutating = {"put", "putfo", "write", "mkdir", "makedirs", "rmdir", "remove", "unlink",
                  "rename", "chmod", "chown", "symlink", "link", "copy", "truncate", "execute", "get", "getfo"}

-- What a call returns in a dry run: values of the contract's types, so that a script that
-- reads them (`c:copy(a, b).st_size`, `#select(3, c:execute(cmd))`) runs as it would.
local function dry_result(name, a, b)
  if name == "execute" then return {}, 0, {} end
  if name == "put" or name == "putfo" or name == "copy" then return {} end
  if name == "write" then return type(b) == "string" and #b or 0 end
  if name == "truncate" then return math.tointeger(b) or b end
  if name == "getfo" then return 0 end
  return nil
end

--- The calls install replaced, as they were: what sftplua itself runs that changes nothing
--- (a mirror's `sha256sum` on the server for compare = "checksum") still runs in a dry run.
dryrun.real = {}

--- Makes every call that would change something say so instead (run before the script).
function dryrun.install()
  for _, name in ipairs(mutating) do
    if M[name] then
      dryrun.real[name] = M[name]
      M[name] = function(_, ...)
        dryrun.would(name, ...)
        return dry_result(name, ...)
      end
    end
  end
  -- Local changes a script makes through sftp.fs: said, not done.
  local fs = sftp.fs
  for _, name in ipairs({"mkdir", "makedirs", "utime"}) do
    if fs[name] then fs[name] = function(path, ...) dryrun.would("fs." .. name, tostring(path), ...) end end
  end
  -- The batch engine (get_r/put_r inside Lua, agent:push): list what would move, move nothing.
  local had_transfer = M._transfer ~= nil
  M._transfer = function(_, jobs) dryrun.show_jobs(jobs) end
  local open = had_transfer and M.open
  if open then
    M.open = function(c, path, mode, ...)
      -- Refused: nothing could stand in for a file open for writing, and reading instead would
      -- hide what the script would write. The message says why and what to use.
      local function quoted(v) v = shown(v); return v:sub(1, 1) == '"' and v or '"' .. v .. '"' end
      U.check_self(c, "open")
      U.check(path, 1, "open", "string")
      U.check(mode, 2, "open", "string", true)
      if mode and mode:find("[wax+]") then
        dryrun.would("open", path, mode)
        sftp.error(K.IOError, ("dry run: c:open(%s, %s) is refused: a dry run writes nothing, so no file can be opened for writing;"
          .. " use c:write or c:put (a dry run reports them), or check sftp.dry_run or pcall the open"):format(quoted(path), quoted(mode)), path)
      end
      return open(c, path, mode, ...)
    end
  end
end

return dryrun
