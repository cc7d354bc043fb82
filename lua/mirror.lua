-- Mirroring: c:mirror_down / c:mirror_up. Plan first (from both listings), then act:
-- directories, then files (several in flight), then deletes, and only after every copy succeeded.
local sftp = require("sftp")
local K = sftp.kinds   -- error kinds: a misspelt one is an error, not a new kind
local U = require("sftp.util")
local transfer_call = require("sftp.connection").transfer_call
local core = require("sftp.core")
local M = core.connection_methods
local fs = sftp.fs
local dryrun = require("sftp.dryrun")   -- what a dry run prints, and sources it plans as empty

-- Globs (SFTPCore's Glob: .gitignore-style, on bytes) -------------------------------------------

local compile_globs = core.compile_globs

-- Options ---------------------------------------------------------------------------------------

-- The keys, and the type of those the checker can check by type alone (core.check_opts).
local mirror_keys = {delete = "boolean", exclude = true, include = true, filter = "function", compare = true,
                     dry_run = "boolean", preserve_mtime = "boolean", parallel = true, on_action = "function"}

local function mirror_opts(opts, fname)
  opts = U.check_opts(opts, fname, 3, mirror_keys)
  local o = {delete = opts.delete, dry_run = opts.dry_run, preserve_mtime = opts.preserve_mtime,
             filter = opts.filter, on_action = opts.on_action}
  if o.preserve_mtime == nil then o.preserve_mtime = true end
  o.compare = opts.compare or "size+mtime"
  if o.compare ~= "size+mtime" and o.compare ~= "size" and o.compare ~= "checksum" then
    sftp.error(K.ArgumentError, ("bad option 'compare' to '%s' (\"size+mtime\", \"size\" or \"checksum\" expected, got %s)")
      :format(fname, type(o.compare) == "string" and ("'" .. o.compare .. "'") or type(o.compare)))
  end
  o.exclude = compile_globs(opts.exclude, "exclude", fname)
  o.include = compile_globs(opts.include, "include", fname)
  o.parallel = U.check_parallel(opts.parallel, fname)
  if sftp.dry_run then o.dry_run = true end
  return o
end


-- Checksums -------------------------------------------------------------------------------------

local function shquote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

-- SHA-256 of many remote files: one `sha256sum` run on the server per batch when it has one,
-- else each file is read and hashed here.
local function remote_sums(c, paths)
  local sums = {}
  local batch, size = {}, 0
  local function flush()
    if #batch == 0 then return end
    local quoted = {}
    for i, p in ipairs(batch) do quoted[i] = shquote(p) end
    -- (Read only: a dry run runs it too, not "would execute", so its plan shows what the recipe does.)
    local ok, lines, status = pcall(dryrun.real.execute or c.execute, c, "sha256sum -- " .. table.concat(quoted, " ") .. " 2>/dev/null")
    if ok and status == 0 then
      for _, line in ipairs(lines) do
        local h, p = line:match("^(%x+)  (.-)\n?$")
        if h and #h == 64 then sums[p] = h end
      end
    end
    batch, size = {}, 0
  end
  for _, p in ipairs(paths) do
    if not p:find("[\n\\]") then
      batch[#batch + 1] = p; size = size + #p + 3
      if size > 3000 then flush() end   -- commands stay within a few KiB: servers limit them
    end
  end
  flush()
  for _, p in ipairs(paths) do if not sums[p] then sums[p] = c:sha256(p) end end
  return sums
end

-- SHA-256 of each relative path on both sides: (remote sums, local sums), keyed by path.
local function both_sums(c, rroot, lroot, rels)
  local paths, back = {}, {}
  for i, rel in ipairs(rels) do paths[i] = U.join(rroot, rel); back[paths[i]] = rel end
  local remote, here = {}, {}
  for p, h in pairs(remote_sums(c, paths)) do remote[back[p]] = h end
  for _, rel in ipairs(rels) do here[rel] = fs.sha256(U.join(lroot, rel)) end
  return remote, here
end

-- The mirror ------------------------------------------------------------------------------------

--- Shared by both directions: SFTPCore's Mirror scans both sides (every directory of a level at
--- once), plans, and acts (directories a level at a time, files through the executor, then
--- deletes). `side` has: direction, src_root, dst_root, dst_exists(), dst_makedirs(), sums(rels).
local function mirror(c, o, side, label)
  local result = c:_mirror{
    direction = side.direction, source = side.src_root, target = side.dst_root,
    target_exists = side.dst_exists(), delete = o.delete, compare = o.compare,
    preserve_mtime = o.preserve_mtime, exclude = o.exclude, include = o.include, filter = o.filter,
    parallel = o.parallel, dry_run = o.dry_run, make_root = side.dst_makedirs, sums = side.sums, label = label,
    done = function(op, path, size)
      U.note(("%s: %s %s"):format(label, op, U.shown(path)))   -- as plans show names
      U.emit({event = "action", call = label, op = op, path = path, size = size})
      if o.on_action then o.on_action({op = op, path = path, size = size}) end
    end,
  }
  if o.dry_run then dryrun.show_mirror(label, result, side.direction == "down" and "local" or "remote", side.dst_root) end
  return result
end

-- Under `sftplua run --dry-run`, a source that an earlier mirror of the same run would have
-- created is planned as empty (sftp.dryrun).
local missing_in_dry_run, empty_plan = dryrun.missing_source, dryrun.empty_mirror

local function remote_root_dir(c, path, fname)
  U.check(path, 1, fname, "string")
  local ok0, root = pcall(c.normalize, c, path)
  if not ok0 then
    if missing_in_dry_run(root, "remote", path) then return nil end
    error(root, 0)
  end
  local ok, a = pcall(c.stat, c, root)
  if not ok then
    if missing_in_dry_run(a, "remote", root) then return nil end
    error(a, 0)
  end
  if a.type ~= "dir" then sftp.error(K.IOError, fname .. ": " .. path .. " is not a directory", path) end
  return root
end

--- c:mirror_down(remote_dir, local_dir [, opts]) -> summary
function M.mirror_down(c, rdir, ldir, opts)
  U.check(rdir, 1, "mirror_down", "string"); U.check(ldir, 2, "mirror_down", "string")
  local o = mirror_opts(opts, "mirror_down")
  local root = remote_root_dir(c, rdir, "mirror_down")
  if not root then return empty_plan(("mirror_down %s -> %s"):format(rdir, ldir), rdir) end
  local la = fs.stat(ldir)
  if la and la.type ~= "dir" then sftp.error(K.FileExists, "mirror_down: " .. ldir .. " exists and is not a directory", ldir) end
  local side = {
    src_root = root, dst_root = ldir,
    direction = "down",
    dst_exists = function() return fs.stat(ldir) ~= nil end,
    dst_makedirs = function() U.makedirs(ldir) end,
    sums = function(rels)
      local remote, here = both_sums(c, root, ldir, rels)
      return remote, here
    end,
  }
  return mirror(c, o, side, ("mirror_down %s -> %s"):format(rdir, ldir))
end

--- c:mirror_up(local_dir, remote_dir [, opts]) -> summary
function M.mirror_up(c, ldir, rdir, opts)
  U.check(ldir, 1, "mirror_up", "string"); U.check(rdir, 2, "mirror_up", "string")
  local o = mirror_opts(opts, "mirror_up")
  local la = fs.stat(ldir)
  if not la and missing_in_dry_run(nil, "local", ldir) then return empty_plan(("mirror_up %s -> %s"):format(ldir, rdir), ldir) end
  if not la then sftp.error(K.FileNotFound, "mirror_up: no such directory " .. ldir, ldir) end
  if la.type ~= "dir" then sftp.error(K.OSError, "mirror_up: " .. ldir .. " is not a directory", ldir) end
  -- The target may not exist yet (nor its parents): then it is used as given.
  local nok, root = pcall(c.normalize, c, rdir)
  if not nok then
    if type(root) ~= "table" or root.kind ~= K.FileNotFound then error(root, 0) end
    root = rdir
  end
  local side = {
    src_root = ldir, dst_root = root,
    direction = "up",
    dst_exists = function()
      local ok, a = pcall(c.stat, c, root)
      if not ok then
        if type(a) == "table" and a.kind == K.FileNotFound then return false end
        error(a, 0)
      end
      if a.type ~= "dir" then sftp.error(K.FileExists, "mirror_up: " .. rdir .. " exists and is not a directory", rdir) end
      return true
    end,
    dst_makedirs = function() c:makedirs(root) end,
    sums = function(rels)
      local remote, here = both_sums(c, root, ldir, rels)
      return here, remote
    end,
  }
  return mirror(c, o, side, ("mirror_up %s -> %s"):format(ldir, rdir))
end

-- retries and bwlimit, as for every transfer call (connection.lua).
for _, name in ipairs({"mirror_down", "mirror_up"}) do
  local orig = M[name]
  M[name] = function(c, a, b, opts)
    U.check_self(c, name)
    -- (Not a tail call: an argument error names the call as the user made it, from this frame.)
    local r = table.pack(transfer_call(c, name, opts, function(o) return orig(c, a, b, o) end))
    return table.unpack(r, 1, r.n)
  end
end

-- For recipes: the option keys and their checker.
return {keys = mirror_keys, opts = mirror_opts}
