-- sftp.connection: Connection methods and module functions written in Lua on top of the Swift
-- primitives, and the wrapper every transfer call runs in (retries, bwlimit, summary).
local sftp = require("sftp")
local K = sftp.kinds   -- error kinds: a misspelt one is an error, not a new kind
local U = require("sftp.util")
local dryrun = require("sftp.dryrun")
local core = require("sftp.core")
local M = core.connection_methods
local fs = sftp.fs
local check, check_opts, argerror, join = U.check, U.check_opts, U.argerror, U.join
local local_makedirs, within, check_parallel, json_value = U.makedirs, U.within, U.check_parallel, U.json_value
-- What the other modules use: transfer_call (below), and no_summary (recipes print their own).
local module = {no_summary = false}

--- c:cd(path, fn): run fn with the remote cwd at path, restore it after (also on error).
function M.cd(c, path, fn)
  U.check_self(c, "cd")
  check(path, 1, "cd", "string", true)
  -- Without a function it changes the working directory, as pysftp's cd outside a with block.
  if fn == nil then
    if path ~= nil then c:chdir(path) end
    return
  end
  check(fn, 2, "cd", "function")
  local old = c:getcwd()
  if path ~= nil then c:chdir(path) end
  local res = table.pack(pcall(fn))
  c:chdir(old)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

-- The walk shared by c:walktree and sftp.walktree (`conn` nil: local). The tree is listed first
-- by the one tree walk (core.walk: a level at a time, remote levels pipelined), keeping only
-- names and types; then the callbacks run depth first over sorted listings. Symlinks to files
-- go to fcb, to directories to dcb (not descended, so links cannot loop); anything else to ucb.
-- `target_type(path)` follows a link.
local function walk_tree(conn, fname, target_type, path, fcb, dcb, ucb, recurse)
  check(path, 1, fname, "string")
  check(fcb, 2, fname, "function", true)
  check(dcb, 3, fname, "function", true)
  check(ucb, 4, fname, "function", true)
  if recurse == nil then recurse = true end
  local listed = {}   -- directory path -> {names, types}
  core.walk(conn, {path = path}, "walktree", function(level)
    local nextlevel = {}
    for _, d in ipairs(level) do
      if d.error then error(d.error, 0) end
      local names, types = {}, {}
      for i, e in ipairs(d.entries) do
        names[i], types[i] = e.filename, e.type
        if recurse and e.type == "dir" then nextlevel[#nextlevel + 1] = {path = join(d.path, e.filename)} end
      end
      listed[d.path] = {names, types}
    end
    return nextlevel
  end)
  local function visit(dir)
    local names, types = listed[dir][1], listed[dir][2]
    listed[dir] = nil
    for i, name in ipairs(names) do
      local p, t = join(dir, name), types[i]
      if t == "link" then
        t = target_type(p) or "other"
        if t == "dir" then if dcb then dcb(p) end; t = nil end
      end
      if t == "dir" then
        if dcb then dcb(p) end
        if recurse then visit(p) end
      elseif t == "file" then
        if fcb then fcb(p) end
      elseif t ~= nil then
        if ucb then ucb(p) end
      end
    end
  end
  visit(path)
end

--- c:walktree(path, fcb, dcb, ucb, recurse=true)
function M.walktree(c, path, fcb, dcb, ucb, recurse)
  U.check_self(c, "walktree")
  walk_tree(c, "walktree", function(p) local ok, a = pcall(c.stat, c, p); return ok and a.type or nil end,
            path, fcb, dcb, ucb, recurse)
end

-- Runs file jobs through the batch engine (several in flight); the first failure is raised
-- once the jobs in flight have finished. `each(job, attrs)` runs as each one completes.
-- Counters of the outermost transfer call, for its summary line (see transfer_call).
local current_stats

-- A tree copy's dry run counts what its plan would copy (dryrun.show_plan's totals), marked.
local function count_planned(t)
  if current_stats then
    current_stats.copied = current_stats.copied + t.copied
    current_stats.bytes = current_stats.bytes + t.bytes
    current_stats.dry_run = true
  end
end

local function run_jobs(c, jobs, parallel, label, each)
  if #jobs == 0 then return end
  c:_transfer(jobs, parallel, function(i, attrs, err)
    if err then error(err, 0) end
    if current_stats then
      current_stats.copied = current_stats.copied + 1
      current_stats.bytes = current_stats.bytes + ((attrs and attrs.st_size) or jobs[i].size or 0)
    end
    if sftp.json then
      U.emit({event = "action", op = jobs[i].op, remote = jobs[i].remote, ["local"] = jobs[i]["local"],
                  size = attrs and attrs.st_size or jobs[i].size})
    end
    if each then each(jobs[i], attrs) end
  end, label)
end

-- Trees are walked a level at a time (the one tree walk, core.walk): every directory of a level
-- is listed at once, so a tree costs a few round trips per level, not per directory. Each call
-- plans first (what to create, what to copy), changing nothing, then acts; `sftplua run
-- --dry-run` prints the plan instead (sftp.dryrun).
local function plan_download(c, root, ldir, recursive, pm, fname)
  local plan = {mkdirs = {}, jobs = {}}
  local jobs = plan.jobs
  core.walk(c, {path = root, ld = ldir}, fname, function(level)
    local nextlevel, mk = {}, {}
    for _, d in ipairs(level) do
      if d.error then error(d.error, 0) end
      local rd, ld = d.path, d.ld
      for _, e in ipairs(d.entries) do
        local name = e.filename
        -- sftplua's own temp files (an upload in progress, an interrupted one) are not part of
        -- the tree, as for mirrors: copying one would also collide with the temp name of its file.
        if not sftp.is_temp_name(name) then
          local rp, lp = join(rd, name), join(ld, name)
          local t = e.type
          local known = e
          if t == "link" then
            -- Followed only when it resolves to a file inside the tree being copied.
            local ok, target = pcall(c.normalize, c, rp)
            local ok2, a = pcall(c.stat, c, rp)
            t = (ok and ok2 and within(root, target) and a.type == "file") and "file" or nil
            known = ok2 and a or nil
          end
          local la = fs.lstat(lp)
          if t == "file" then
            if not (la and la.type == "dir") then
              jobs[#jobs + 1] = {op = "get", remote = rp, ["local"] = lp, preserve_mtime = pm,
                                 size = known.st_size, mtime = known.st_mtime, atime = known.st_atime}
            end
          elseif t == "dir" and recursive then
            if not la or la.type == "dir" then   -- never descend through a local symlink
              if not la then mk[#mk + 1] = lp end
              nextlevel[#nextlevel + 1] = {path = rp, ld = lp}
            end
          end
        end
      end
    end
    plan.mkdirs[#plan.mkdirs + 1] = mk
    return nextlevel
  end)
  return plan
end

local function download_dir(c, rdir, ldir, opts, recursive, fname)
  opts = check_opts(opts, fname, 3, {preserve_mtime = true, parallel = true})
  check(rdir, 1, fname, "string"); check(ldir, 2, fname, "string")
  local parallel = check_parallel(opts.parallel, fname)
  local root = c:normalize(rdir)
  if not c:isdir(root) then
    if c:exists(root) then sftp.error(K.IOError, fname .. ": " .. rdir .. " is not a directory", rdir) end
    sftp.error(K.FileNotFound, fname .. ": no such directory " .. rdir, rdir)
  end
  local plan = plan_download(c, root, ldir, recursive, opts.preserve_mtime and true or false, fname)
  if sftp.dry_run then
    if not fs.stat(ldir) then plan.makedirs = ldir end   -- as local_makedirs below: with its parents
    return count_planned(dryrun.show_plan(plan))
  end
  local_makedirs(ldir)
  for _, level in ipairs(plan.mkdirs) do
    for _, d in ipairs(level) do if not fs.lstat(d) then fs.mkdir(d, 777) end end
  end
  run_jobs(c, plan.jobs, parallel, ("%s %s -> %s"):format(fname, rdir, ldir))
end

-- `missing`: the remote root does not exist yet (a dry run): everything would be new.
local function plan_upload(c, ldir, rroot, recursive, pm, confirm, fname, missing)
  local plan = {mkdirs = {}, jobs = {}}
  local jobs = plan.jobs
  local root = fs.realpath(ldir)
  -- `fresh`: a remote directory this call makes, known to be empty, not listed.
  core.walk(nil, {path = ldir, rd = rroot, fresh = missing}, fname, function(level)
    -- One listing per remote dir tells which names are directories (no stat per file); the
    -- level's listings go out together.
    local dirs, idx = {}, {}
    for i, d in ipairs(level) do
      if d.error then error(d.error, 0) end
      if not d.fresh then dirs[#dirs + 1] = d.rd; idx[i] = #dirs end
    end
    local listings, errs = c:_listdirs(dirs)
    local nextlevel, mk = {}, {}
    for i, d in ipairs(level) do
      local ld, rd = d.path, d.rd
      local there = {}
      if idx[i] then
        local listing = listings[idx[i]]
        if not listing then error(errs[idx[i]], 0) end
        for _, e in ipairs(listing) do there[e.filename] = e end
      end
      for _, e in ipairs(d.entries) do
        local lp, rp = join(ld, e.filename), join(rd, e.filename)
        local t = e.type
        if sftp.is_temp_name(e.filename) then t = nil end   -- sftplua's own temp files: not the tree's
        if t == "link" then
          local ok, target = pcall(fs.realpath, lp)
          local a = ok and within(root, target) and fs.stat(lp)
          t = (a and a.type == "file") and "file" or nil
        end
        local r = there[e.filename]
        if t == "file" then
          -- The listed target: a file there keeps its mode and owner. A link there is replaced,
          -- never written through (a tree copy writes nothing outside its target).
          local f = r and r.type == "file" and r or nil
          jobs[#jobs + 1] = {op = "put", remote = rp, ["local"] = lp, preserve_mtime = pm, confirm = confirm,
                             checked = r == nil or r.type == "file" or r.type == "link",
                             dst_mode = f and f.st_mode, dst_uid = f and f.st_uid, dst_gid = f and f.st_gid}
        elseif t == "dir" and recursive then
          if r == nil then mk[#mk + 1] = rp
          elseif r.type == "link" then
            -- Never through a link: it could lead anywhere on the server.
            sftp.error(K.FileExists, fname .. ": " .. rp .. " is a symlink where the tree has a directory (a tree copy never writes through links)", rp)
          elseif r.type ~= "dir" then
            sftp.error(K.FileExists, fname .. ": " .. rp .. " exists and is not a directory", rp)
          end
          nextlevel[#nextlevel + 1] = {path = lp, rd = rp, fresh = r == nil}
        end
      end
    end
    plan.mkdirs[#plan.mkdirs + 1] = mk
    return nextlevel
  end)
  return plan
end

local function upload_dir(c, ldir, rdir, opts, recursive, fname)
  opts = check_opts(opts, fname, 3, {preserve_mtime = true, confirm = true, parallel = true})
  check(ldir, 1, fname, "string"); check(rdir, 2, fname, "string")
  local parallel = check_parallel(opts.parallel, fname)
  local la = fs.stat(ldir)
  if not la then sftp.error(K.FileNotFound, fname .. ": no such directory " .. ldir, ldir) end
  if la.type ~= "dir" then sftp.error(K.OSError, fname .. ": " .. ldir .. " is not a directory", ldir) end
  local pm, confirm = opts.preserve_mtime and true or false, opts.confirm ~= false
  if sftp.dry_run then
    if not c:exists(rdir) then
      local plan = plan_upload(c, ldir, rdir, recursive, pm, confirm, fname, true)
      plan.makedirs = rdir   -- as c:makedirs below
      return count_planned(dryrun.show_plan(plan))
    end
    return count_planned(dryrun.show_plan(plan_upload(c, ldir, c:normalize(rdir), recursive, pm, confirm, fname)))
  end
  c:makedirs(rdir)
  local plan = plan_upload(c, ldir, c:normalize(rdir), recursive, pm, confirm, fname)
  for _, level in ipairs(plan.mkdirs) do
    if #level > 0 then c:_mkdirs(level, 777) end
  end
  run_jobs(c, plan.jobs, parallel, ("%s %s -> %s"):format(fname, ldir, rdir))
end

function M.get_d(c, rdir, ldir, opts) download_dir(c, rdir, ldir, opts, false, "get_d") end
function M.get_r(c, rdir, ldir, opts) download_dir(c, rdir, ldir, opts, true, "get_r") end
function M.put_d(c, ldir, rdir, opts) upload_dir(c, ldir, rdir, opts, false, "put_d") end
function M.put_r(c, ldir, rdir, opts) upload_dir(c, ldir, rdir, opts, true, "put_r") end

-- Module functions (pysftp's helpers) ----------------------------------------

--- sftp.cd(localpath, fn): run fn with the local cwd at localpath, restore it after.
function sftp.cd(localpath, fn)
  check(localpath, 1, "sftp.cd", "string", true)
  check(fn, 2, "sftp.cd", "function")
  local old = fs.getcwd()
  if localpath ~= nil then fs.chdir(localpath) end
  local res = table.pack(pcall(fn))
  fs.chdir(old)
  if not res[1] then error(res[2], 0) end
  return table.unpack(res, 2, res.n)
end

--- sftp.walktree(localpath, fcb, dcb, ucb, recurse=true): the local twin of c:walktree.
function sftp.walktree(localpath, fcb, dcb, ucb, recurse)
  walk_tree(nil, "sftp.walktree", function(p) local a = fs.stat(p); return a and a.type end,
            localpath, fcb, dcb, ucb, recurse)
end

local function split(path, sep)
  local parts, start = {}, 1
  while true do
    local i = path:find(sep, start, true)
    if not i then parts[#parts + 1] = path:sub(start); break end
    parts[#parts + 1] = path:sub(start, i - 1)
    start = i + #sep
  end
  return parts
end

-- Python's os.path.join on `sep`: a part starting with sep restarts the path.
local function pyjoin(parts, n, sep)
  local out = parts[1] or ""
  for i = 2, n do
    local b = parts[i]
    if b:sub(1, #sep) == sep then out = b
    elseif out == "" or out:sub(-#sep) == sep then out = out .. b
    else out = out .. sep .. b end
  end
  return out
end

--- for p in sftp.path_advance("a/b/c") do ... end  -> "a", "a/b", "a/b/c" (pysftp's, exactly:
--- "a/" gives "a", "a/"; "/" gives "/")
function sftp.path_advance(path, sep)
  check(path, 1, "sftp.path_advance", "string")
  check(sep, 2, "sftp.path_advance", "string", true)
  if sep == "" then argerror(2, "sftp.path_advance", "separator is empty") end
  sep = sep or "/"
  local parts = split(path, sep)
  if path ~= "" and path:sub(1, #sep) == sep then
    if parts[1] ~= "" then parts[1] = sep .. parts[1] else parts[2] = sep .. parts[2] end
  end
  local i, cur = 0, ""
  return function()
    while i < #parts do
      i = i + 1
      cur = pyjoin({cur, parts[i]}, 2, sep)
      if cur ~= "" then return cur end
    end
  end
end

--- for p in sftp.path_retreat("a/b/c") do ... end  -> "a/b/c", "a/b", "a" (pysftp's, exactly:
--- "a//b" gives "a/b", "a/", "a")
function sftp.path_retreat(path, sep)
  check(path, 1, "sftp.path_retreat", "string")
  check(sep, 2, "sftp.path_retreat", "string", true)
  if sep == "" then argerror(2, "sftp.path_retreat", "separator is empty") end
  sep = sep or "/"
  local pre = path ~= "" and path:sub(1, #sep) == sep and sep or ""
  local parts = split(path, sep)
  local n = #parts + 1
  return function()
    while n > 1 do
      n = n - 1
      local cur = pyjoin(parts, n, sep)
      if cur ~= "" then return pre .. cur end
    end
  end
end

--- sftp.reparent("/new", "/a/b") -> "/new/./a/b" (as pysftp: oldpath made relative, joined)
function sftp.reparent(newparent, oldpath)
  check(newparent, 1, "sftp.reparent", "string")
  check(oldpath, 2, "sftp.reparent", "string")
  if oldpath:sub(1, 1) == "/" or oldpath:sub(1, 1) == "\\" then oldpath = "." .. oldpath end
  return join(newparent, oldpath)
end

--- sftp.st_mode_to_int(33188) -> 644: the permission bits as decimal digits of their octal.
function sftp.st_mode_to_int(mode)
  check(mode, 1, "sftp.st_mode_to_int", "number")
  if math.tointeger(mode) == nil then argerror(1, "sftp.st_mode_to_int", "number has no integer representation") end
  local s = ("%o"):format(math.tointeger(mode) & 0xfff)
  return math.tointeger(tonumber(s:sub(-3)))
end

--- sftp.WTCallbacks(): collects walktree results in flist, dlist, ulist.
function sftp.WTCallbacks()
  local w = {flist = {}, dlist = {}, ulist = {}}
  w.file_cb = function(p) w.flist[#w.flist + 1] = p end
  w.dir_cb = function(p) w.dlist[#w.dlist + 1] = p end
  w.unk_cb = function(p) w.ulist[#w.ulist + 1] = p end
  return w
end

--- f:lines(...): iterator over reads with the given formats (default "l"), as io's lines.
function core.remotefile_methods.lines(f, ...)
  local formats = table.pack(...)
  if formats.n == 0 then formats = {"l", n = 1} end
  return function() return f:read(table.unpack(formats, 1, formats.n)) end
end

-- retries and bwlimit (the contract's last section) for every transfer call: get, put, get_d,
-- get_r, put_d, put_r, the mirrors and agent:push. A transient failure (ConnectionError,
-- Timeout) is retried `retries` times (3), 0.5 s, 1 s, 2 s ... (at most 8 s) apart, on a new
-- connection; each retry plans again, so a mirror or push continues with what is left and a
-- large file resumes from its journal. `bwlimit` caps the bytes per second of the whole call.
local TRANSIENT = {[K.ConnectionError] = true, [K.Timeout] = true}

-- The summary line of a tree copy, a mirror or a push (as lftp's mirror totals): on a terminal
-- (stderr) or with -v; not with -q, and not where the caller prints its own (recipes, quick mirror).
local SUMMARIZED = {get_r = true, get_d = true, put_r = true, put_d = true, mirror_down = true, mirror_up = true, push = true}
local function summary(fname, result, stats, seconds)
  if not SUMMARIZED[fname] then return end
  local dry = (type(result) == "table" and result.dry_run) or stats.dry_run or nil   -- a mirror's or a tree copy's
  local s = {copied = stats.copied, updated = 0, deleted = 0, unchanged = 0, bytes = stats.bytes}
  if type(result) == "table" and result.copied then
    s = {copied = result.copied, updated = result.updated, deleted = result.deleted, unchanged = result.skipped, bytes = result.bytes}
  elseif type(result) == "table" and result.uploaded then
    s.copied, s.bytes = result.uploaded, result.bytes
  end
  if sftp.json then
    U.emit({event = "summary", call = fname, copied = s.copied, updated = s.updated, deleted = s.deleted,
                unchanged = s.unchanged, bytes = s.bytes, seconds = seconds, dry_run = dry})
    -- A mirror's warnings as events (a dry run's plan has shown them already: dryrun.show_mirror).
    if type(result) == "table" and type(result.warnings) == "table" and not dry then
      for _, w in ipairs(result.warnings) do U.emit({event = "warning", call = fname, message = w}) end
    end
    return
  end
  if sftp.quiet or module.no_summary then return end
  if not (sftp.verbose or core.isatty(2)) then return end
  local rate = seconds > 0 and s.bytes / seconds or 0
  io.stderr:write(("sftplua: %s: %d copied, %d updated, %d deleted, %d unchanged, %d bytes in %.2f s (%.1f MiB/s)%s\n"):format(
    fname, s.copied, s.updated, s.deleted, s.unchanged, s.bytes, seconds, rate / 1048576, dry and " (dry run: nothing changed)" or ""))
end

local transfer_call_inner

local function transfer_call(c, fname, opts, body)
  -- The outermost call counts and summarises (a mirror runs a batch inside).
  if current_stats then return transfer_call_inner(c, fname, opts, body) end
  current_stats = {copied = 0, bytes = 0}
  local t0 = sftp.now()
  local res = table.pack(pcall(transfer_call_inner, c, fname, opts, body))
  local stats = current_stats
  current_stats = nil
  if not res[1] then error(res[2], 0) end
  summary(fname, res[2], stats, sftp.now() - t0)
  return table.unpack(res, 2, res.n)
end

function transfer_call_inner(c, fname, opts, body)
  local retries, bwlimit = 3, sftp.default_bwlimit   -- the CLI's --bwlimit, if any
  if type(opts) == "table" and (opts.retries ~= nil or opts.bwlimit ~= nil) then
    local n = math.type(opts.retries) and math.tointeger(opts.retries)   -- 2.0 is 2, as Lua's own integer checks
    if opts.retries ~= nil and (not n or n < 0 or n > 100) then
      sftp.error(K.ArgumentError, ("bad option 'retries' to '%s' (integer from 0 to 100 expected, got %s)"):format(fname, tostring(opts.retries)))
    end
    retries = n or retries
    if opts.bwlimit ~= nil then bwlimit = opts.bwlimit end
    local copy = {}
    for k, v in pairs(opts) do copy[k] = v end
    copy.retries, copy.bwlimit = nil, nil
    opts = copy
  end
  if bwlimit ~= nil then
    local ok, rate = pcall(core.bwlimit, bwlimit)
    if not ok then sftp.error(K.ArgumentError, (rate.message:gsub("^bad option 'bwlimit'", ("bad option 'bwlimit' to '%s'"):format(fname)))) end
    U.note(("%s: bandwidth limit %.0f bytes/s"):format(fname, rate))
  end
  local delay = 0.5
  for attempt = 0, retries do
    local res = table.pack(pcall(body, opts))
    if res[1] then
      if bwlimit ~= nil then core.bwlimit(nil) end
      return table.unpack(res, 2, res.n)
    end
    local err = res[2]
    -- The call's own checker does not know the keys this wrapper takes: a misspelt one gets its
    -- "did you mean" here.
    if attempt == 0 and type(err) == "table" and err.kind == K.ArgumentError and type(err.message) == "string" then
      local key = err.message:match("^unknown option '([^']*)' to '[^']*'$")
      local near = key and core.closest(key, {"retries", "bwlimit"})
      if near then err.message = err.message .. (" (did you mean '%s'?)"):format(near) end
    end
    if attempt == retries or type(err) ~= "table" or not TRANSIENT[err.kind] then
      if bwlimit ~= nil then core.bwlimit(nil) end
      error(err, 0)
    end
    U.note(("%s: %s: %s; retry %d of %d in %.1f s"):format(fname, err.kind, err.message, attempt + 1, retries, delay))
    local slept, serr = pcall(sftp.sleep, delay)
    if not slept then
      if bwlimit ~= nil then core.bwlimit(nil) end
      error(serr, 0)
    end
    delay = math.min(delay * 2, 8)
    if c then pcall(c._reconnect, c) end   -- a failed reconnect shows in the next attempt
  end
end

for _, name in ipairs({"get", "put", "get_d", "get_r", "put_d", "put_r"}) do
  local orig = M[name]
  -- (Not tail calls: an argument error names the call as the user made it, from this frame.)
  M[name] = function(c, a, b, opts, ...)
    U.check_self(c, name)
    local r
    if select("#", ...) > 0 then r = table.pack(orig(c, a, b, opts, ...))
    else r = table.pack(transfer_call(c, name, opts, function(o) return orig(c, a, b, o) end)) end
    return table.unpack(r, 1, r.n)
  end
end

module.transfer_call = transfer_call
module.transient = TRANSIENT   -- the failures a transfer call retries
return module
