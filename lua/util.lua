-- sftp.util: what the library's modules share (argument and option checks, paths, names as
-- printed, --json lines, -v lines). Loaded with require("sftp.util"); not part of the public API.
local sftp = require("sftp")
local core = require("sftp.core")   -- the Swift side's internals (Sources/SFTPLua/Module.swift)
local K = sftp.kinds   -- error kinds: a misspelt one is an error, not a new kind
local fs = sftp.fs

-- "bad argument #n to 'fname' (msg)", written by the Swift side (core.argerror) as for the Swift
-- functions (luaL_argerror's rule). `n` counts from the first argument after self; `fname` is
-- a method's name, or "sftp.NAME" for a module function (sftp.cd), which has no self. A method
-- call not made with ':' (`pcall(c.walktree, c, 1)`, `c.walktree(c, 1)`) counts its self too,
-- and the call is named as the user's code made it.
local function position(n, fname)
  local plain = fname:match("^sftp%.(.+)$")
  if plain then return n, plain end
  return n + 1, fname
end

local function argerror(n, fname, msg)
  local p, name = position(n, fname)
  core.argerror(p, name, msg)
end

-- A Connection method written in Lua checks its self as the Swift ones do: `c.cd("/tmp")` is
-- "bad argument #1 to 'cd' (sftp.Connection expected, got string; call methods with ':')".
local check_self = core.check_self

-- An option that must be a Connection (`connection = c` of sftp.syncagent, sftp.run_recipe).
local function check_connection(v, fname)
  if v ~= nil and not pcall(check_self, v, fname) then
    sftp.error(K.ArgumentError, ("bad option 'connection' to '%s' (Connection expected, got %s)"):format(fname, type(v)))
  end
end

local function check(v, n, fname, want, optional)
  if v == nil and optional then return end
  if type(v) ~= want then argerror(n, fname, ("%s expected, got %s"):format(want, v == nil and "no value" or type(v))) end
end

-- The one path join (SFTPCore's Paths.join): one '/' between; "" + b is b; an absolute b is b.
local join = core.join

-- A name from a listing that must never be used to build a path (the one rule, the tree
-- walk's: empty, ".", "..", or holding "/" or NUL).
local unsafe_name = core.unsafe_name

-- Options are checked by the one checker the Swift bindings use (LuaOptions): unknown keys are
-- refused with the closest valid one suggested.
local function check_opts(opts, fname, n, allowed)
  local p, name = position(n, fname)
  return core.check_opts(opts, name, p, allowed)
end

-- Local directories, created with parents; refuses to go through a symlink or a file.
local function local_makedirs(path)
  local a = fs.lstat(path)
  if a then
    if a.type == "dir" then return end
    if a.type == "link" and (fs.stat(path) or {}).type == "dir" then return end
    sftp.error(K.FileExists, "cannot create directory " .. path .. ": a file is in the way", path)
  end
  local parent = path:match("^(.*)/[^/]+/*$")
  if parent and parent ~= "" then local_makedirs(parent) end
  local ok, err = pcall(fs.mkdir, path, 777)
  if not ok and not (type(err) == "table" and err.kind == K.FileExists) then error(err, 0) end
end

local function within(root, p)
  return p == root or p:sub(1, #root + 1) == (root == "/" and "/" or root .. "/")
end

-- --json: one object per line on stdout. Strings are the names' bytes: valid UTF-8 as it is,
-- each byte that is not part of valid UTF-8 as \u00XX, and control characters escaped.
local function json_string(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local b = s:byte(i)
    local len = b < 0x80 and 1 or (b >= 0xC2 and b <= 0xDF) and 2 or (b >= 0xE0 and b <= 0xEF) and 3 or (b >= 0xF0 and b <= 0xF4) and 4 or 0
    local ch = len > 0 and s:sub(i, i + len - 1) or nil
    if len > 1 and (#ch < len or not utf8.len(ch)) then ch, len = nil, 0 end
    if len == 1 then
      if b == 34 then out[#out + 1] = '\\"' elseif b == 92 then out[#out + 1] = "\\\\"
      elseif b < 32 or b == 127 then out[#out + 1] = ("\\u%04x"):format(b)
      else out[#out + 1] = ch end
      i = i + 1
    elseif len > 1 then out[#out + 1] = ch; i = i + len
    else out[#out + 1] = ("\\u%04x"):format(b); i = i + 1 end
  end
  return '"' .. table.concat(out) .. '"'
end

local function json_value(v)
  local t = type(v)
  if t == "string" then return json_string(v)
  elseif t == "number" then return math.type(v) == "integer" and tostring(v) or ("%.6g"):format(v)
  elseif t == "boolean" then return tostring(v)
  elseif t == "table" then
    if #v > 0 or next(v) == nil then
      local parts = {}
      for _, x in ipairs(v) do parts[#parts + 1] = json_value(x) end
      return "[" .. table.concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = json_string(k) .. ":" .. json_value(v[k]) end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "null"
end

--- emit(t): with --json, one JSON object on a line of stdout.
local function emit(t)
  if sftp.json then io.write(json_value(t), "\n"); io.flush() end
end

-- Files in flight for recursive transfers when the caller does not say (docs/performance.md).
sftp.default_parallel = 1

local function check_parallel(v, fname)
  if v == nil then return sftp.default_parallel end
  if math.type(v) ~= "integer" or v < 1 or v > 64 then
    sftp.error(K.ArgumentError, ("bad option 'parallel' to '%s' (integer from 1 to 64 expected)"):format(fname))
  end
  return v
end

-- A name as printed in plans and logs, the same rule as the Swift side's -v lines (SFTPCore's
-- Paths.shown): as it is, unless it holds a space, a quote, a backslash, a control byte or
-- bytes that are not UTF-8; then in double quotes with those escaped (\n, \r, \t, \", \\,
-- \xHH), so a name can never forge a line or blur where one name ends.
local shown = core.shown

--- Writes a `-v` line to stderr (the Lua side's actions; nothing when not verbose). Control
--- bytes in it (a name's newline) are escaped: one note is one line.
local function note(msg)
  if sftp.verbose then
    core.progress_hide()
    io.stderr:write("sftplua: ", core.one_line(msg), "\n")
    core.progress_show()
  end
end

fs.makedirs = local_makedirs

return {check = check, check_self = check_self, check_connection = check_connection, check_opts = check_opts, argerror = argerror, join = join, unsafe_name = unsafe_name,
        makedirs = local_makedirs, within = within, check_parallel = check_parallel, shown = shown,
        emit = emit, json_value = json_value, note = note}
