-- c:watch: a remote directory watcher. SFTP has no change notifications, so this polls: each
-- poll lists the tree (or, with relist = "changed", stats each directory and lists only those
-- whose mtime moved), compares with the last snapshot and reports created/modified/deleted.
local sftp = require("sftp")
local K = sftp.kinds   -- error kinds: a misspelt one is an error, not a new kind
local U = require("sftp.util")
local core = require("sftp.core")
local M = core.connection_methods

-- The keys, and the type of those the checker can check by type alone (core.check_opts).
local watch_keys = {interval = true, recursive = "boolean", exclude = true, settle = true, duration = true,
                    events = true, max_backoff = true, relist = true, on_poll = "function"}

local function num_opt(o, k, fname, min, integer)
  local v = o[k]
  if v == nil then return nil end
  if type(v) ~= "number" or v ~= v or v == math.huge or v < min or (integer and math.type(v) ~= "integer") then
    sftp.error(K.ArgumentError, ("bad option '%s' to '%s' (%s >= %s expected)"):format(k, fname, integer and "integer" or "number", min))
  end
  return v
end

local function is_connection_error(e)
  return type(e) == "table" and (e.kind == K.ConnectionError or e.kind == K.Timeout)
end

local function interrupted(e) return type(e) == "table" and e.kind == K.Interrupted end

--- c:watch(remote_dir, opts, callback) -> number of events delivered
-- The options of a watch, checked; defaults filled in.
local function watch_options(opts)
  local o = {
    interval = num_opt(opts, "interval", "watch", 0) or 2,
    settle = num_opt(opts, "settle", "watch", 0) or 0,
    duration = num_opt(opts, "duration", "watch", 0),
    max_events = num_opt(opts, "events", "watch", 1, true),
    max_backoff = num_opt(opts, "max_backoff", "watch", 0.01) or 30,
    recursive = opts.recursive,
    relist = opts.relist or "always",
    on_poll = opts.on_poll,
  }
  if o.recursive == nil then o.recursive = true end
  if o.relist ~= "always" and o.relist ~= "changed" then
    sftp.error(K.ArgumentError, "bad option 'relist' to 'watch' (\"always\" or \"changed\" expected)")
  end
  o.exclude = core.compile_globs(opts.exclude, "exclude", "watch")
  return o
end

-- A function that makes one pass over the tree (the one tree walk, core.walk): rel ->
-- attribute table (files, directories, links, ...). With relist = "changed", each directory is
-- stated, and one whose mtime did not move is not listed again.
local function scanner(c, root, o, stats)
  local changed_only = o.relist == "changed"
  local cache = {}          -- rel dir -> {mtime=, entries=, listed_at=} (relist = "changed")
  -- A directory to walk; with relist = "changed", its cached entries if it cannot have changed
  -- unseen (listed in a later second than its mtime), or the mtime and time to cache it under.
  local function record(abs, rel)
    local rec = {path = abs, rel = rel}
    if not changed_only then return rec end
    local ok, a = pcall(c.stat, c, abs)
    stats.stated = stats.stated + 1
    if not ok then rec.error, rec.entries = a, {}; return rec end   -- not listed
    local hit = cache[rel]
    if hit and a.st_mtime and hit.mtime == a.st_mtime and hit.listed_at > a.st_mtime + 1 then
      rec.entries, rec.cached = hit.entries, true
    else
      rec.mtime, rec.when = a.st_mtime, os.time()
    end
    return rec
  end
  return function()
    local cur, seen_dirs = {}, {}
    local ok, err = pcall(core.walk, c, record(root, ""), "watch", function(level)
      local nextlevel = {}
      for _, d in ipairs(level) do
        local rel, list = d.rel, d.entries
        seen_dirs[rel] = true
        if d.error then
          -- A subdirectory deleted between its parent's listing and its own: it is gone (the
          -- next poll reports it). The root itself going away is handled below.
          if rel ~= "" and type(d.error) == "table" and d.error.kind == K.FileNotFound then list = {} else error(d.error, 0) end
        elseif not d.cached then
          stats.listed = stats.listed + 1
          if changed_only then cache[rel] = {mtime = d.mtime, entries = list, listed_at = d.when} end
        end
        for _, e in ipairs(list) do
          local r = U.join(rel, e.filename)
          if not core.glob_any(o.exclude, r, e.type == "dir") then
            cur[r] = e
            if e.type == "dir" and o.recursive then nextlevel[#nextlevel + 1] = record(U.join(d.path, e.filename), r) end
          end
        end
      end
      return nextlevel
    end)
    if not ok then
      -- The watched directory itself went away: everything in it is gone.
      local gone = type(err) == "table" and err.kind == K.FileNotFound and not c:exists(root)
      if not gone then error(err, 0) end
      cur = {}
    end
    for rel in pairs(cache) do if not seen_dirs[rel] then cache[rel] = nil end end
    return cur
  end
end

local function same_file(a, b)
  return a.type == b.type and a.st_size == b.st_size and a.st_mtime == b.st_mtime
end

-- A function that compares a scan with the snapshot `known` (which it updates) and returns the
-- events, in path order. With `settle`, a file is reported once it held still that long.
local function differ(known, settle)
  local pending = {}        -- rel -> {attr=, since=} for files waiting to settle
  return function(cur, now)
    local evs = {}
    for rel, a in pairs(cur) do
      local k = known[rel]
      if k and k.type ~= a.type then
        evs[#evs + 1] = {type = "deleted", path = rel}
        known[rel] = nil
        k = nil
      end
      if k and a.type == "dir" then
        known[rel] = a        -- a directory's own mtime moves with its entries: not an event
      elseif not k or not same_file(k, a) then
        local kind = k and "modified" or "created"
        if settle > 0 and a.type ~= "dir" then
          local p = pending[rel]
          if p and same_file(p.attr, a) then
            if now - p.since >= settle then
              evs[#evs + 1] = {type = kind, path = rel, attr = a}
              known[rel], pending[rel] = a, nil
            end
          else
            pending[rel] = {attr = a, since = now}
          end
        else
          evs[#evs + 1] = {type = kind, path = rel, attr = a}
          known[rel] = a
        end
      else
        pending[rel] = nil
      end
    end
    for rel in pairs(known) do
      if not cur[rel] then evs[#evs + 1] = {type = "deleted", path = rel}; known[rel] = nil end
    end
    for rel in pairs(pending) do if not cur[rel] then pending[rel] = nil end end
    table.sort(evs, function(x, y)
      if x.path ~= y.path then return x.path < y.path end
      return x.type == "deleted"     -- a deletion before a re-creation of the same path
    end)
    return evs
  end
end

-- Waits `t` seconds, never past the deadline; false when the deadline has come.
local function wait_until(deadline, t)
  if deadline then
    local left = deadline - sftp.now()
    if left <= 0 then return false end
    if t > left then t = left end
  end
  sftp.sleep(t)
  return not deadline or sftp.now() < deadline
end

-- A dropped connection: reopen it with backoff; permanent failures (auth, host key) raise.
-- False when the deadline came first.
local function reconnect(c, o, deadline, stats)
  local backoff = math.min(0.5, o.max_backoff)
  for _ = 1, 1000000 do
    if not wait_until(deadline, backoff) then return false end
    local ok, err = pcall(c._reconnect, c)
    if ok then stats.reconnects = stats.reconnects + 1; return true end
    if not is_connection_error(err) then error(err, 0) end
    backoff = math.min(backoff * 2, o.max_backoff)
  end
  return false
end

--- c:watch(dir [, opts], callback) -> number of events: polls, reports, reconnects.
function M.watch(c, dir, opts, callback)
  U.check_self(c, "watch")
  if type(opts) == "function" and callback == nil then opts, callback = nil, opts end
  U.check(dir, 1, "watch", "string")
  opts = U.check_opts(opts, "watch", 2, watch_keys)
  U.check(callback, 3, "watch", "function")
  local o = watch_options(opts)
  local root = c:normalize(dir)
  if c:stat(root).type ~= "dir" then sftp.error(K.IOError, "watch: " .. dir .. " is not a directory", dir) end

  local deadline = o.duration and sftp.now() + o.duration
  local stats = {polls = 0, listed = 0, stated = 0, files = 0, reconnects = 0}
  local scan = scanner(c, root, o, stats)
  local diff = differ(scan(), o.settle)
  local count = 0

  local function poll_once()
    if not wait_until(deadline, o.interval) then return "stop" end
    local ok, cur = pcall(scan)
    if not ok then
      if not is_connection_error(cur) then error(cur, 0) end
      if not reconnect(c, o, deadline, stats) then return "stop" end
      ok, cur = pcall(scan)
      if not ok then
        if is_connection_error(cur) then return "again" end
        error(cur, 0)
      end
    end
    stats.polls = stats.polls + 1
    local n = 0
    for _ in pairs(cur) do n = n + 1 end
    stats.files = n
    for _, ev in ipairs(diff(cur, sftp.now())) do
      count = count + 1
      if callback(ev) == false then return "stop" end
      if o.max_events and count >= o.max_events then return "stop" end
    end
    if o.on_poll and o.on_poll(stats) == false then return "stop" end
    return "again"
  end

  for _ = 1, math.maxinteger do
    local ok, r = pcall(poll_once)
    if not ok then
      if interrupted(r) then return count end   -- Ctrl-C ends the watch cleanly
      error(r, 0)
    end
    if r == "stop" then break end
  end
  return count
end
