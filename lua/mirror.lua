-- Mirroring: c:mirror_down / c:mirror_up. Plan first (from both listings), then act:
-- directories, then files (several in flight), then deletes, and only after every copy succeeded.
local sftp = ...
local U = sftp._util
local M = sftp._connection_methods
local fs = sftp.fs

-- Globs ---------------------------------------------------------------------------------------

-- Matches glob `p` against string `s`: `*` and `?` stay within one path segment, `[...]` is a
-- class (`!` or `^` negates), `**/` is zero or more directories, `**` elsewhere anything, `\x`
-- a literal x. Backtracking is bounded by memoizing (pattern position, string position).
local function glob_match(p, s)
  local memo = {}
  local function m(pi, si)
    local key = pi * 65536 + si
    local known = memo[key]
    if known ~= nil then return known end
    local r
    if pi > #p then
      r = si > #s
    else
      local c = p:sub(pi, pi)
      if c == "*" then
        if p:sub(pi + 1, pi + 1) == "*" then
          local rest = pi + 2
          if p:sub(rest, rest) == "/" then
            r = m(rest + 1, si)
            for k = si, #s do
              if r then break end
              if s:sub(k, k) == "/" then r = m(rest + 1, k + 1) end
            end
          else
            r = false
            for k = si, #s + 1 do if m(rest, k) then r = true; break end end
          end
        else
          r = false
          for k = si, #s + 1 do
            if m(pi + 1, k) then r = true; break end
            if k <= #s and s:sub(k, k) == "/" then break end
          end
        end
      elseif si > #s then
        r = false
      elseif c == "?" then
        r = s:sub(si, si) ~= "/" and m(pi + 1, si + 1)
      elseif c == "[" then
        local close = p:find("]", pi + 2, true)
        if not close then
          r = s:sub(si, si) == "[" and m(pi + 1, si + 1)
        else
          local body = p:sub(pi + 1, close - 1)
          local neg = false
          if body:sub(1, 1) == "!" or body:sub(1, 1) == "^" then neg = true; body = body:sub(2) end
          local ch = s:sub(si, si)
          local hit = false
          local i = 1
          while i <= #body do
            local a = body:sub(i, i)
            if body:sub(i + 1, i + 1) == "-" and i + 2 <= #body then
              if ch >= a and ch <= body:sub(i + 2, i + 2) then hit = true end
              i = i + 3
            else
              if ch == a then hit = true end
              i = i + 1
            end
          end
          r = ch ~= "/" and (hit ~= neg) and m(close + 1, si + 1)
        end
      elseif c == "\\" and pi < #p then
        r = s:sub(si, si) == p:sub(pi + 1, pi + 1) and m(pi + 2, si + 1)
      else
        r = s:sub(si, si) == c and m(pi + 1, si + 1)
      end
    end
    memo[key] = r
    return r
  end
  return m(1, 1)
end

-- A list of .gitignore-style patterns, compiled: {pat=, dir_only=, text=}.
local function compile_globs(list, key, fname)
  if list == nil then return nil end
  if type(list) == "string" then list = {list} end
  if type(list) ~= "table" then
    sftp.error("ArgumentError", ("bad option '%s' to '%s' (array of glob strings expected, got %s)"):format(key, fname, type(list)))
  end
  local out = {}
  for k, pat in pairs(list) do
    if math.type(k) ~= "integer" or type(pat) ~= "string" or pat == "" then
      sftp.error("ArgumentError", ("bad option '%s' to '%s' (array of non-empty glob strings expected)"):format(key, fname))
    end
  end
  for _, text in ipairs(list) do
    local pat, dir_only = text, false
    if pat:sub(-1) == "/" then dir_only = true; pat = pat:gsub("/+$", "") end
    local anchored = pat:find("/", 1, true) ~= nil
    pat = pat:gsub("^/+", "")
    if not anchored then pat = "**/" .. pat end
    out[#out + 1] = {pat = pat, dir_only = dir_only, text = text}
  end
  return out
end

local function glob_any(globs, rel, is_dir)
  if not globs then return false end
  for _, g in ipairs(globs) do
    if (is_dir or not g.dir_only) and glob_match(g.pat, rel) then return true end
  end
  return false
end

sftp.glob = {
  --- sftp.glob.match(pattern, path [, is_dir]): does a .gitignore-style pattern match the path?
  match = function(pattern, path, is_dir)
    U.check(pattern, 1, "glob.match", "string"); U.check(path, 2, "glob.match", "string")
    return glob_any(compile_globs({pattern}, "pattern", "glob.match"), path, is_dir and true or false)
  end,
}

-- Options ---------------------------------------------------------------------------------------

local mirror_keys = {delete = true, exclude = true, include = true, filter = true, compare = true,
                     dry_run = true, preserve_mtime = true, parallel = true, on_action = true}
sftp._mirror_keys = mirror_keys

local function mirror_opts(opts, fname)
  opts = U.check_opts(opts, fname, 3, mirror_keys)
  local o = {}
  for _, k in ipairs({"delete", "dry_run", "preserve_mtime"}) do
    local v = opts[k]
    if v ~= nil and type(v) ~= "boolean" then
      sftp.error("ArgumentError", ("bad option '%s' to '%s' (boolean expected, got %s)"):format(k, fname, type(v)))
    end
    o[k] = v
  end
  if o.preserve_mtime == nil then o.preserve_mtime = true end
  for _, k in ipairs({"filter", "on_action"}) do
    if opts[k] ~= nil and type(opts[k]) ~= "function" then
      sftp.error("ArgumentError", ("bad option '%s' to '%s' (function expected, got %s)"):format(k, fname, type(opts[k])))
    end
    o[k] = opts[k]
  end
  o.compare = opts.compare or "size+mtime"
  if o.compare ~= "size+mtime" and o.compare ~= "size" and o.compare ~= "checksum" then
    sftp.error("ArgumentError", ("bad option 'compare' to '%s' (\"size+mtime\", \"size\" or \"checksum\" expected, got %s)")
      :format(fname, type(o.compare) == "string" and ("'" .. o.compare .. "'") or type(o.compare)))
  end
  o.exclude = compile_globs(opts.exclude, "exclude", fname)
  o.include = compile_globs(opts.include, "include", fname)
  o.parallel = sftp._check_parallel(opts.parallel, fname)
  if sftp.dry_run then o.dry_run = true end
  return o
end

sftp._mirror_opts = mirror_opts

-- Listing ---------------------------------------------------------------------------------------

-- Walks one side. `list_many({abs, ...})` gives each directory's entries (filename, type, st_*).
-- Returns `entries` (rel -> entry, entry.path = rel), `order` (rels, directories before their
-- contents) and `protected` (rels rejected by exclude/include/filter: never deleted, not descended).
local function scan(list_many, root, o, warnings, side, source_rejected)
  local entries, order, protected, temps = {}, {}, {}, {}
  local function rejected(e, rel, is_dir)
    if glob_any(o.exclude, rel, is_dir) then return true end
    if o.filter and (e.type == "file" or e.type == "dir") and not o.filter(e) then return true end
    if not is_dir and o.include and not glob_any(o.include, rel, false) then return true end
    return false
  end
  -- A level at a time: `list_many` lists every directory of a level at once (remote ones
  -- pipelined over the connection), so a tree costs a few round trips per level.
  local level = {{root, "", 0}}
  while #level > 0 do
    local dirs = {}
    for i, d in ipairs(level) do dirs[i] = d[1] end
    local listings = list_many(dirs)
    local nextlevel = {}
    for i, d in ipairs(level) do
      local abs, rel_dir, depth = d[1], d[2], d[3]
      if depth > 256 then sftp.error("IOError", "mirror: directories nested deeper than 256 levels under " .. root, abs) end
      for _, e in ipairs(listings[i]) do
        local name = e.filename
        local rel = rel_dir == "" and name or rel_dir .. "/" .. name
        if sftp.is_temp_name(name) then
          -- sftplua's own temp files (an interrupted transfer): not part of either tree.
          if side == "target" then temps[#temps + 1] = rel end
          protected[rel] = true
        elseif U.unsafe_name(name) then
          warnings[#warnings + 1] = ("%s: unsafe name %q in %s skipped"):format(side, name, abs)
          protected[rel] = true
        else
          e.path = rel
          local is_dir = e.type == "dir"
          if (source_rejected and source_rejected[rel]) or rejected(e, rel, is_dir) then
            protected[rel] = true   -- excluded or filtered (links and special files too): never deleted
          elseif e.type == "link" then
            if side == "source" then
              warnings[#warnings + 1] = "source: symlink " .. rel .. " skipped (links are not followed)"
              protected[rel] = true   -- what the target has under that name is left alone
            else
              entries[rel] = e; order[#order + 1] = rel
            end
          elseif is_dir then
            entries[rel] = e; order[#order + 1] = rel
            nextlevel[#nextlevel + 1] = {U.join(abs, name), rel, depth + 1}
          elseif e.type == "file" then
            entries[rel] = e; order[#order + 1] = rel
          elseif side == "source" then
            warnings[#warnings + 1] = ("source: %s %s skipped"):format(e.type, rel)
            protected[rel] = true
          else
            entries[rel] = e; order[#order + 1] = rel
          end
        end
      end
    end
    level = nextlevel
  end
  -- The order a depth-first walk of sorted listings gives (a directory, then its contents):
  -- paths compared name by name, which is bytewise with "/" below every byte of a name.
  local key = {}
  for _, rel in ipairs(order) do key[rel] = rel:gsub("/", "\0") end
  table.sort(order, function(a, b) return key[a] < key[b] end)
  return entries, order, protected, temps
end

local function parent_of(rel) return rel:match("^(.*)/[^/]*$") end

-- Remote directories listed at once (pipelined); the first that cannot be listed raises.
local function remote_lists(c, dirs)
  local listings, errs = c:_listdirs(dirs)
  for i = 1, #dirs do if not listings[i] then error(errs[i], 0) end end
  return listings
end

-- Local directories, one after another (a local listing costs no round trip).
local function local_lists(list)
  return function(dirs)
    local out = {}
    for i, d in ipairs(dirs) do out[i] = list(d) end
    return out
  end
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
    local ok, lines, status = pcall(c.execute, c, "sha256sum -- " .. table.concat(quoted, " ") .. " 2>/dev/null")
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

local function same(o, s, t, pair)
  if s.st_size ~= t.st_size then return false end
  if o.compare == "size" then return true end
  if o.compare == "checksum" then return pair ~= nil and pair.src == pair.dst end
  if o.preserve_mtime then return s.st_mtime == t.st_mtime end
  -- Without preserved mtimes, a target at least as new as the source is taken as current.
  return (t.st_mtime or 0) >= (s.st_mtime or 0)
end

local function fmt_action(a)
  return ("%-6s %s%s"):format(a.op, sftp._shown(a.path), a.size and (" (" .. a.size .. " bytes)") or "")
end

--- Shared by both directions. `side` has: src_list, dst_list, src_abs(rel), dst_abs(rel),
--- dst_exists(), dst_makedirs(), dst_mkdirs({abs, ...}) (one level), dst_delete(abs, type), job(rel, s, t), sums(...).
local function mirror(c, o, side, label)
  local warnings = {}
  local result = {copied = 0, updated = 0, deleted = 0, skipped = 0, bytes = 0, actions = {}, warnings = warnings}
  local src, src_order, src_rejected = scan(side.src_list, side.src_root, o, warnings, "source")
  local dst, dst_order, dst_protected, dst_temps = {}, {}, {}, {}
  if side.dst_exists() then
    dst, dst_order, dst_protected, dst_temps = scan(side.dst_list, side.dst_root, o, warnings, "target", src_rejected)
  end
  -- A directory holding something protected (excluded, filtered, unsafe) is never deleted.
  local keep = {}
  for rel in pairs(dst_protected) do
    local p = parent_of(rel)
    while p and not keep[p] do keep[p] = true; p = parent_of(p) end
  end

  -- Plan.
  local mkdirs, files, deletes = {}, {}, {}
  local blocked = {}          -- source dirs that cannot be made on the target (a file is there)
  local function is_blocked(rel)
    local p = parent_of(rel)
    while p do
      if blocked[p] then return true end
      p = parent_of(p)
    end
    return false
  end
  local needed_dirs = {}      -- with include: only directories that will hold something
  local conflicts = {}        -- target directories left alone (the source has a file there)
  local candidates = {}
  for _, rel in ipairs(src_order) do
    local s, t = src[rel], dst[rel]
    if next(blocked) ~= nil and is_blocked(rel) then
      if s.type == "dir" then blocked[rel] = true end
    elseif s.type == "dir" then
      if t and t.type ~= "dir" then
        blocked[rel] = true
        warnings[#warnings + 1] = ("target: %s is a %s where the source has a directory; left alone"):format(rel, t.type)
      elseif not t then
        mkdirs[#mkdirs + 1] = rel
      end
    else
      if t and t.type == "dir" then
        warnings[#warnings + 1] = ("target: %s is a directory where the source has a file; left alone"):format(rel)
        conflicts[rel] = true
      elseif not t then
        files[#files + 1] = {op = "copy", path = rel, size = s.st_size}
      elseif t.type ~= "file" or s.st_size ~= t.st_size then
        files[#files + 1] = {op = "update", path = rel, size = s.st_size}
      else
        candidates[#candidates + 1] = rel
      end
    end
  end
  if #candidates > 0 then
    local sums_s, sums_d
    if o.compare == "checksum" then sums_s, sums_d = side.sums(candidates) end
    for _, rel in ipairs(candidates) do
      local pair = sums_s and {src = sums_s[rel], dst = sums_d[rel]}
      if same(o, src[rel], dst[rel], pair) then
        result.skipped = result.skipped + 1
      else
        files[#files + 1] = {op = "update", path = rel, size = src[rel].st_size}
      end
    end
    table.sort(files, function(a, b) return a.path < b.path end)
  end
  if o.include then
    for _, f in ipairs(files) do
      local p = parent_of(f.path)
      while p do needed_dirs[p] = true; p = parent_of(p) end
    end
    local keep = {}
    for _, rel in ipairs(mkdirs) do
      if needed_dirs[rel] or glob_any(o.include, rel, true) then keep[#keep + 1] = rel end
    end
    mkdirs = keep
  end
  if o.delete then
    for i = #dst_order, 1, -1 do
      local rel = dst_order[i]
      local under_conflict = false
      local p = rel
      while p and not under_conflict do under_conflict = conflicts[p] == true; p = parent_of(p) end
      if not src[rel] and not keep[rel] and not under_conflict then
        local t = dst[rel]
        deletes[#deletes + 1] = {op = "delete", path = rel, size = t.type == "file" and t.st_size or nil, type = t.type}
      end
    end
  end

  local actions = result.actions
  for _, rel in ipairs(mkdirs) do actions[#actions + 1] = {op = "mkdir", path = rel} end
  for _, f in ipairs(files) do actions[#actions + 1] = f end
  for _, d in ipairs(deletes) do actions[#actions + 1] = {op = "delete", path = d.path, size = d.size} end

  if o.dry_run then
    for _, f in ipairs(files) do
      if f.op == "copy" then result.copied = result.copied + 1 else result.updated = result.updated + 1 end
      result.bytes = result.bytes + (f.size or 0)
    end
    result.deleted = #deletes
    result.dry_run = true
    if sftp.json then
      for _, a in ipairs(actions) do sftp._emit({event = "plan", call = label, op = a.op, path = a.path, size = a.size}) end
      for _, w in ipairs(warnings) do sftp._emit({event = "warning", call = label, message = w}) end
    elseif sftp.dry_run then
      io.write(("%s: plan (dry run), %d action(s)\n"):format(label, #actions))
      for _, a in ipairs(actions) do io.write("  ", fmt_action(a), "\n") end
      for _, w in ipairs(warnings) do io.write("  warning: ", w, "\n") end
    end
    return result
  end

  -- Act: the target root, directories (parents first), files, then deletes.
  side.dst_makedirs()
  local function done(a)
    sftp._note(("%s: %s %s"):format(label, a.op, a.path))
    sftp._emit({event = "action", call = label, op = a.op, path = a.path, size = a.size})
    if o.on_action then o.on_action({op = a.op, path = a.path, size = a.size}) end
  end
  -- Directories a level at a time (parents first): a remote level goes out at once.
  local by_depth, depths = {}, {}
  for _, rel in ipairs(mkdirs) do
    local _, d = rel:gsub("/", "")
    if not by_depth[d] then by_depth[d] = {}; depths[#depths + 1] = d end
    local level = by_depth[d]
    level[#level + 1] = rel
  end
  table.sort(depths)
  for _, d in ipairs(depths) do
    local abs = {}
    for i, rel in ipairs(by_depth[d]) do abs[i] = side.dst_abs(rel) end
    side.dst_mkdirs(abs)
    for _, rel in ipairs(by_depth[d]) do done({op = "mkdir", path = rel}) end
  end
  local jobs = {}
  for i, f in ipairs(files) do jobs[i] = side.job(f.path, src[f.path], dst[f.path], o) end
  if #jobs > 0 then
    c:_transfer(jobs, o.parallel, function(i, attrs, err)
      if err then error(err, 0) end
      local f = files[i]
      if f.op == "copy" then result.copied = result.copied + 1 else result.updated = result.updated + 1 end
      result.bytes = result.bytes + (f.size or (attrs and attrs.st_size) or 0)
      done(f)
    end)
  end
  for _, d in ipairs(deletes) do
    side.dst_delete(side.dst_abs(d.path), d.type)
    result.deleted = result.deleted + 1
    done(d)
  end
  -- Temp files an earlier, interrupted run left (this run resumed or replaced the ones it needed).
  for _, rel in ipairs(dst_temps) do pcall(side.dst_delete, side.dst_abs(rel), "file") end
  return result
end

-- Under `sftplua run --dry-run`, a source that an earlier rule would have created is planned
-- as empty (with a warning) instead of failing the whole plan.
local function missing_in_dry_run(err)
  return sftp.dry_run and type(err) == "table" and err.kind == "FileNotFound"
end

local function empty_plan(label, src)
  local w = "source: " .. src .. " does not exist (yet)"
  io.write(("%s: plan (dry run), 0 action(s)\n  warning: %s\n"):format(label, w))
  return {copied = 0, updated = 0, deleted = 0, skipped = 0, bytes = 0, actions = {}, dry_run = true, warnings = {w}}
end

local function remote_root_dir(c, path, fname)
  U.check(path, 1, fname, "string")
  local ok0, root = pcall(c.normalize, c, path)
  if not ok0 then
    if missing_in_dry_run(root) then return nil end
    error(root, 0)
  end
  local ok, a = pcall(c.stat, c, root)
  if not ok then
    if missing_in_dry_run(a) then return nil end
    error(a, 0)
  end
  if a.type ~= "dir" then sftp.error("IOError", fname .. ": " .. path .. " is not a directory", path) end
  return root
end

--- c:mirror_down(remote_dir, local_dir [, opts]) -> summary
function M.mirror_down(c, rdir, ldir, opts)
  U.check(rdir, 1, "mirror_down", "string"); U.check(ldir, 2, "mirror_down", "string")
  local o = mirror_opts(opts, "mirror_down")
  local root = remote_root_dir(c, rdir, "mirror_down")
  if not root then return empty_plan(("mirror_down %s -> %s"):format(rdir, ldir), rdir) end
  local la = fs.stat(ldir)
  if la and la.type ~= "dir" then sftp.error("FileExists", "mirror_down: " .. ldir .. " exists and is not a directory", ldir) end
  local side = {
    src_root = root, dst_root = ldir,
    src_list = function(dirs) return remote_lists(c, dirs) end,
    dst_list = local_lists(fs.ls),
    dst_abs = function(rel) return U.join(ldir, rel) end,
    dst_exists = function() return fs.stat(ldir) ~= nil end,
    dst_makedirs = function() U.makedirs(ldir) end,
    dst_mkdirs = function(list)
      for _, abs in ipairs(list) do
        local a = fs.lstat(abs)
        if not a then fs.mkdir(abs, 777)
        elseif a.type ~= "dir" then sftp.error("FileExists", "mirror_down: " .. abs .. " appeared and is not a directory", abs) end
      end
    end,
    dst_delete = function(abs, t)
      local ok, err = os.remove(abs)
      if not ok then sftp.error("OSError", "mirror_down: cannot delete " .. abs .. ": " .. tostring(err), abs) end
    end,
    job = function(rel, s, t, o2)
      return {op = "get", remote = U.join(root, rel), ["local"] = U.join(ldir, rel), preserve_mtime = o2.preserve_mtime,
              size = s.st_size, mtime = s.st_mtime, atime = s.st_atime}
    end,
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
  if not la and sftp.dry_run then return empty_plan(("mirror_up %s -> %s"):format(ldir, rdir), ldir) end
  if not la then sftp.error("FileNotFound", "mirror_up: no such directory " .. ldir, ldir) end
  if la.type ~= "dir" then sftp.error("OSError", "mirror_up: " .. ldir .. " is not a directory", ldir) end
  -- The target may not exist yet (nor its parents): then it is used as given.
  local nok, root = pcall(c.normalize, c, rdir)
  if not nok then
    if type(root) ~= "table" or root.kind ~= "FileNotFound" then error(root, 0) end
    root = rdir
  end
  local side = {
    src_root = ldir, dst_root = root,
    src_list = local_lists(fs.ls),
    dst_list = function(dirs) return remote_lists(c, dirs) end,
    dst_abs = function(rel) return U.join(root, rel) end,
    dst_exists = function()
      local ok, a = pcall(c.stat, c, root)
      if not ok then
        if type(a) == "table" and a.kind == "FileNotFound" then return false end
        error(a, 0)
      end
      if a.type ~= "dir" then sftp.error("FileExists", "mirror_up: " .. rdir .. " exists and is not a directory", rdir) end
      return true
    end,
    dst_makedirs = function() c:makedirs(root) end,
    dst_mkdirs = function(abs) c:_mkdirs(abs, 777) end,
    dst_delete = function(abs, t)
      if t == "dir" then c:rmdir(abs) else c:remove(abs) end
    end,
    job = function(rel, s, t, o2)
      -- A file at the target keeps its mode and owner; a link there is replaced, never written
      -- through (nothing is written outside the target root).
      local f = t and t.type == "file" and t or nil
      return {op = "put", ["local"] = U.join(ldir, rel), remote = U.join(root, rel), preserve_mtime = o2.preserve_mtime,
              checked = t == nil or t.type == "file" or t.type == "link",
              dst_mode = f and f.st_mode, dst_uid = f and f.st_uid, dst_gid = f and f.st_gid}
    end,
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
    return sftp._transfer_call(c, name, opts, function(o) return orig(c, a, b, o) end)
  end
end

sftp._compile_globs = compile_globs
sftp._glob_any = glob_any
