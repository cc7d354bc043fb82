-- sftp.syncagent: sftpsyncer's local cache + upload queue, with the queue journaled on disk.
local sftp = require("sftp")
local core = require("sftp.core")
local K = sftp.kinds   -- error kinds: a misspelt one is an error, not a new kind
local U = require("sftp.util")
local transfer_call = require("sftp.connection").transfer_call
local transient = require("sftp.connection").transient
local fs = sftp.fs

local JOURNAL = ".sftplua-queue"      -- the upload queue, one %q-quoted path per line
local CACHE = ".sftplua-cache"        -- what each cached file was on the server when fetched

-- The keys, and the type of those the checker can check by type alone (core.check_opts).
local agent_keys = {host = "string", hostport = true, port = true, username = true, priv_key = true,
                    private_key = true, password = true, local_root = "string", remote_root = "string",
                    connection = true, parallel = true}
for _, k in ipairs(core.connect_keys) do agent_keys[k] = agent_keys[k] or true end

-- "a/./b//c" -> "a/b/c"; refuses what would leave the root ("..", absolute, empty, NUL).
local function relpath(path, fname)
  if type(path) ~= "string" then U.argerror(1, fname, "string expected, got " .. (path == nil and "no value" or type(path))) end
  if path:sub(1, 1) == "/" then U.argerror(1, fname, "path must be relative to the root, got '" .. path .. "'") end
  if path:find("\0", 1, true) then U.argerror(1, fname, "path contains a NUL byte") end
  local parts = {}
  for part in path:gmatch("[^/]+") do
    if part == ".." then U.argerror(1, fname, "path must stay under the root, got '" .. path .. "'") end
    if part ~= "." then parts[#parts + 1] = part end
  end
  if #parts == 0 then U.argerror(1, fname, "path names no file: '" .. path .. "'") end
  if parts[1] == JOURNAL or parts[1] == CACHE then U.argerror(1, fname, "'" .. parts[1] .. "' is the agent's own file") end
  return table.concat(parts, "/")
end

-- Writes `text` to `path` atomically (temp file + rename), so a crash leaves the old or the new.
local function write_atomic(path, text)
  if sftp.dry_run then return end   -- `sftplua run --dry-run` changes nothing, the agent's files included
  local tmp = path .. ".tmp"
  local f, err = io.open(tmp, "wb")
  if not f then sftp.error(K.OSError, "cannot write " .. tmp .. ": " .. tostring(err), tmp) end
  local ok, werr = f:write(text)
  local cok, cerr = f:close()
  if not ok or not cok then os.remove(tmp); sftp.error(K.OSError, "cannot write " .. tmp .. ": " .. tostring(werr or cerr), tmp) end
  local rok, rerr = os.rename(tmp, path)
  if not rok then os.remove(tmp); sftp.error(K.OSError, "cannot write " .. path .. ": " .. tostring(rerr), path) end
end

local function read_file(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a"); f:close()
  return s
end

local Queue = {}
Queue.__index = Queue
Queue.__name = "sftp.UploadQueue"
function Queue.__len(q) return #q._paths end
function Queue.__tostring(q) return ("sftp.UploadQueue(%d queued)"):format(#q._paths) end

function Queue:_load()
  self._paths = {}
  local text = read_file(self._file)
  if not text then return end
  for line in text:gmatch("[^\n]+") do
    local chunk = load("return " .. line, "=queue", "t", {})
    local ok, p = pcall(chunk or error)
    if ok and type(p) == "string" and not self._index[p] then
      self._paths[#self._paths + 1] = p
      self._index[p] = true
    end
  end
end

function Queue:_save()
  local lines = {}
  for _, p in ipairs(self._paths) do lines[#lines + 1] = ("%q"):format(p):gsub("\\\n", "\\n") end
  write_atomic(self._file, table.concat(lines, "\n") .. (#lines > 0 and "\n" or ""))
end

--- queue:add(path): queue a file (relative to local_root) for the next push.
function Queue:add(path)
  local rel = relpath(path, "add")
  local a = fs.stat(U.join(self._agent.local_root, rel))
  if not a then sftp.error(K.FileNotFound, "add: no such file in the local cache: " .. rel, rel) end
  if a.type ~= "file" then sftp.error(K.ArgumentError, "bad argument #1 to 'add' (" .. rel .. " is not a regular file)") end
  if not self._index[rel] then
    self._paths[#self._paths + 1] = rel
    self._index[rel] = true
    self:_save()
  end
  return rel
end

--- queue:list(): the queued paths, in the order they were added.
function Queue:list() return table.move(self._paths, 1, #self._paths, 1, {}) end

--- queue:remove(path): drop a path; true if it was queued.
function Queue:remove(path)
  local rel = relpath(path, "remove")
  if not self._index[rel] then return false end
  self._index[rel] = nil
  for i, p in ipairs(self._paths) do if p == rel then table.remove(self._paths, i); break end end
  self:_save()
  return true
end

--- queue:clear(): empty the queue.
function Queue:clear()
  self._paths, self._index = {}, {}
  self:_save()
end

local Agent = {}
Agent.__index = Agent
Agent.__name = "sftp.SyncAgent"
function Agent.__tostring(a) return ("sftp.SyncAgent(%s <-> %s)"):format(a.local_root, a.remote_root) end
function Agent.__close(a) a:close() end
Agent.__gc = Agent.__close

--- The connection, opened on first use (so cached files can be read offline).
function Agent:connect()
  local c = self._conn
  if c and not c.closed then return c end
  c = sftp.connect(self._connect_opts)
  self._conn, self._owned = c, true
  return c
end

function Agent:close()
  if self._owned and self._conn then self._conn:close() end
  self._conn = self._owned and nil or self._conn
end

-- Runs fn(c); a dropped connection is forgotten so that the next call reconnects.
function Agent:_with(fn)
  local c = self:connect()
  local ok, res = pcall(fn, c)
  if ok then return res end
  if type(res) == "table" and (res.kind == K.ConnectionError or res.kind == K.Timeout) and self._owned then
    pcall(c.close, c); self._conn = nil
  end
  error(res, 0)
end

function Agent:_remote(rel) return U.join(self._remote_root, rel) end
function Agent:_local(rel) return U.join(self.local_root, rel) end

function Agent:_load_cache()
  self._cache = {}
  local text = read_file(U.join(self.local_root, CACHE))
  local chunk = text and load(text, "=cache", "t", {})
  local ok, t = pcall(chunk or error)
  if ok and type(t) == "table" then self._cache = t end
end

function Agent:_save_cache()
  local keys = {}
  for k in pairs(self._cache) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {"return {"}
  for _, k in ipairs(keys) do
    local e = self._cache[k]
    out[#out + 1] = ("[%q] = {size = %d, mtime = %d, checked = %d%s},"):format(k, e.size or 0, e.mtime or 0, e.checked or 0,
                                                                             e.hash and (", hash = %q"):format(e.hash) or "")
  end
  out[#out + 1] = "}"
  write_atomic(U.join(self.local_root, CACHE), (table.concat(out, "\n"):gsub("\\\n", "\\n")))
end

-- The record of what the server has, which the local copy agrees with (after a fetch, a push
-- or a check). Size and mtime tell a local change from the record, but mtimes are whole
-- seconds: a copy written again within the second its record was made, to the same size, would
-- look unchanged ("racily clean", as git calls it). Such a copy's SHA-256 is kept in the record
-- and compared (`_dirty`) until that second has passed.
-- `hash`: the content the server got (a push hashes it before sending, `racy_hash`).
local function racy_hash(path)
  local la = fs.stat(path)
  if la and la.type == "file" and (la.st_mtime or 0) >= os.time() then return fs.sha256(path) end
end

function Agent:_record(rel, a, hash)
  self._cache[rel] = {size = a.st_size, mtime = a.st_mtime, checked = os.time(), hash = hash or racy_hash(self:_local(rel))}
end

-- Downloads rel into the cache (atomic: the connection's get writes a temp file and renames).
function Agent:_fetch(rel, c)
  local lp = self:_local(rel)
  local parent = lp:match("^(.*)/[^/]*$")
  if parent and parent ~= "" then U.makedirs(parent) end
  local a = c:stat(self:_remote(rel))
  if a.type == "dir" then sftp.error(K.IOError, "open: " .. rel .. " is a directory on the server", rel) end
  c:get(self:_remote(rel), lp, {preserve_mtime = true})
  self:_record(rel, a)
  self:_save_cache()
  return a
end

-- The remote attributes of rel, or nil when it does not exist there.
local function remote_attrs(c, path)
  local ok, a = pcall(c.stat, c, path)
  if ok then return a end
  if type(a) == "table" and a.kind == K.FileNotFound then return nil end
  error(a, 0)
end

local function changed(a, la)
  return not la or a.st_size ~= la.st_size or (a.st_mtime and la.st_mtime and a.st_mtime ~= la.st_mtime)
end

-- The cache index records what the server had when the local copy last agreed with it (a fetch
-- or a push). The local copy has changes of its own ("dirty") when it is queued, differs from
-- that record, or has no record at all (it did not come from the server through the agent).
-- A dirty copy is never replaced behind the user's back.
function Agent:_dirty(rel, la)
  if self.upload_queue._index[rel] then return true end
  if not la then return false end
  local e = self._cache[rel]
  if not e then return true end
  if la.st_size ~= e.size or la.st_mtime ~= e.mtime then return true end
  if e.hash then   -- racily clean (see _record): the content decides
    if fs.sha256(self:_local(rel)) ~= e.hash then return true end
    if os.time() > la.st_mtime then e.hash = nil end   -- any later write now changes the mtime
  end
  return false
end

-- The server's copy changed since the record (without a record: differs from the local copy).
function Agent:_stale(rel, a, la)
  local e = self._cache[rel]
  if e then return a.st_size ~= e.size or (a.st_mtime ~= nil and a.st_mtime ~= e.mtime) end
  return changed(a, la)
end

--- agent:open(path, mode="r", {max_age=}): an io file of the local copy, fetched when missing.
function Agent:open(path, mode, opts)
  local rel = relpath(path, "open")
  U.check(mode, 2, "open", "string", true)
  opts = U.check_opts(opts, "open", 3, {max_age = true})
  U.check(opts.max_age, 3, "open", "number", true)
  mode = mode or "r"
  if not mode:match("^[rwa]%+?b?$") then U.argerror(2, "open", "invalid mode '" .. mode .. "'") end
  local lp = self:_local(rel)
  local la = fs.stat(lp)
  if la and la.type == "dir" then sftp.error(K.IOError, "open: " .. rel .. " is a directory", rel) end
  if mode:sub(1, 1) == "w" then
    -- Writing starts a new local file: nothing to fetch.
    local parent = lp:match("^(.*)/[^/]*$")
    if parent and parent ~= "" then U.makedirs(parent) end
  elseif not la then
    self:_with(function(c)
      if not remote_attrs(c, self:_remote(rel)) then
        sftp.error(K.FileNotFound, "open: " .. rel .. " is neither in the local cache nor on the server", rel)
      end
      self:_fetch(rel, c)
    end)
  elseif opts.max_age then
    local e = self._cache[rel]
    local checked = (e and e.checked) or la.st_mtime or 0
    if os.time() - checked >= opts.max_age then
      -- Re-check the server; when it cannot be reached the cached copy is used as is, and a
      -- copy with local changes is never replaced.
      pcall(self._with, self, function(c)
        local a = remote_attrs(c, self:_remote(rel))
        if a and self:_stale(rel, a, la) then
          if not self:_dirty(rel, la) then self:_fetch(rel, c) end
        elseif a and not self:_dirty(rel, la) then
          self:_record(rel, a)
          self:_save_cache()
        end
      end)
    end
  end
  local f, err = io.open(lp, mode)
  if not f then sftp.error(K.OSError, "open: cannot open " .. lp .. ": " .. tostring(err), lp) end
  return f
end

--- agent:refresh(path [, {force=}]): re-download when the server's copy changed (size/mtime).
--- True if it did. A local copy with changes of its own raises IOError unless force = true.
function Agent:refresh(path, opts)
  local rel = relpath(path, "refresh")
  opts = U.check_opts(opts, "refresh", 2, {force = true})
  return self:_with(function(c)
    local a = remote_attrs(c, self:_remote(rel))
    if not a then sftp.error(K.FileNotFound, "refresh: no such file on the server: " .. rel, rel) end
    local la = fs.stat(self:_local(rel))
    if not la or self:_stale(rel, a, la) or changed(a, la) then
      if la and self:_dirty(rel, la) and not opts.force then
        sftp.error(K.IOError, "refresh: " .. rel .. " has local changes that are not on the server (push it, or refresh with {force = true})", rel)
      end
      self:_fetch(rel, c)
      return true
    end
    if not self:_dirty(rel, la) then   -- a local change keeps its record (and shows as modified)
      self:_record(rel, a)
      self:_save_cache()
    end
    return false
  end)
end

-- Every regular file under local_root (relative paths, sorted), the agent's own files aside.
function Agent:_cached_files()
  local out = {}
  core.walk(nil, {path = self.local_root, rel = ""}, "status", function(level)
    local nextlevel = {}
    for _, d in ipairs(level) do
      if d.error then error(d.error, 0) end
      local rel = d.rel
      for _, e in ipairs(d.entries) do
        local r = U.join(rel, e.filename)
        if not (rel == "" and (e.filename == JOURNAL or e.filename == CACHE or e.filename:match("^%.sftplua%-.*%.tmp$"))) then
          if e.type == "file" and not sftp.is_temp_name(e.filename) then out[#out + 1] = r
          elseif e.type == "dir" then nextlevel[#nextlevel + 1] = {path = U.join(d.path, e.filename), rel = r} end
        end
      end
    end
    return nextlevel
  end)
  table.sort(out)
  return out
end

--- agent:status(): {cached=, queued=, modified=, stale=, remote_missing=} (modified: local changes
--- not on the server; stale: the server's copy changed; when the server cannot be reached, stale
--- and remote_missing are nil and `offline` holds the error message).
function Agent:status()
  local cached = self:_cached_files()
  local st = {cached = cached, queued = self.upload_queue:list(), modified = {}, stale = {}, remote_missing = {}}
  for _, rel in ipairs(cached) do
    if self:_dirty(rel, fs.stat(self:_local(rel))) then st.modified[#st.modified + 1] = rel end
  end
  local ok, err = pcall(self._with, self, function(c)
    local listings = {}
    for _, rel in ipairs(cached) do
      local dir, name = rel:match("^(.*)/([^/]*)$")
      if not dir then dir, name = "", rel end
      local l = listings[dir]
      if not l then
        l = {}
        local lok, entries = pcall(c.listdir_attr, c, dir == "" and self._remote_root or self:_remote(dir))
        if not lok and not (type(entries) == "table" and entries.kind == K.FileNotFound) then error(entries, 0) end
        for _, e in ipairs(lok and entries or {}) do l[e.filename] = e end
        listings[dir] = l
      end
      local a = l[name]
      if not a then st.remote_missing[#st.remote_missing + 1] = rel
      elseif self:_stale(rel, a, fs.stat(self:_local(rel))) then st.stale[#st.stale + 1] = rel end
    end
  end)
  if not ok then st.stale, st.remote_missing, st.offline = nil, nil, tostring(err) end
  return st
end

--- agent:push(): upload every queued file under remote_root; {uploaded=, bytes=, skipped=}
--- (a dry run: what it would upload, with dry_run = true; the queue is kept).
--- agent:push([{retries=, bwlimit=}]): a retry continues with what is still queued.
function Agent:push(opts)
  if opts ~= nil then U.check_opts(opts, "push", 1, {retries = true, bwlimit = true}) end
  -- One result across retries: what an earlier attempt landed is counted too.
  local result = {uploaded = 0, bytes = 0, skipped = {}}
  return transfer_call(nil, "push", opts, function() return self:_push(result) end)
end

function Agent:_push(result)
  local q = self.upload_queue
  if #q._paths == 0 then return result end
  -- A queued file deleted locally since cannot be sent: it leaves the queue, named in skipped.
  local jobs, sizes = {}, {}
  for _, rel in ipairs(q:list()) do
    local a = fs.stat(self:_local(rel))
    if not a or a.type ~= "file" then
      result.skipped[#result.skipped + 1] = rel
      q:remove(rel)
    else
      jobs[#jobs + 1] = {op = "put", ["local"] = self:_local(rel), remote = self:_remote(rel), preserve_mtime = true, rel = rel}
      sizes[rel] = a.st_size
    end
  end
  if #jobs == 0 then return result end
  self:_with(function(c)
    local made = {}
    for _, j in ipairs(jobs) do
      local dir = j.remote:match("^(.*)/[^/]*$")
      if dir and dir ~= "" and not made[dir] then c:makedirs(dir); made[dir] = true end
    end
    local specs = {}
    for i, j in ipairs(jobs) do specs[i] = {op = j.op, ["local"] = j["local"], remote = j.remote, preserve_mtime = true} end
    if sftp.dry_run then
      -- The plan is printed (dryrun.lua's stand-in for _transfer); the result counts what a
      -- real push would send, marked, and the queue keeps it all.
      c:_transfer(specs, self._parallel)
      result.uploaded, result.dry_run = #jobs, true
      for _, j in ipairs(jobs) do result.bytes = result.bytes + sizes[j.rel] end
      return
    end
    -- The content sent, for a copy that could still change within its mtime's second (see
    -- _record): hashed before it is read for the upload, so a same-second edit after it shows.
    local sent_hash = {}
    for _, j in ipairs(jobs) do sent_hash[j.rel] = racy_hash(j["local"]) end
    -- A file that fails for itself does not stop the others: each one that lands leaves the
    -- queue, and the first such failure is raised when the batch is done (the rest stays queued).
    -- Ctrl-C, a timeout or a lost connection stop the batch at once (and the retries go on).
    local first_err
    local ok, err = pcall(c._transfer, c, specs, self._parallel, function(i, attrs, e)
      if e then
        if type(e) == "table" and (e.kind == K.Interrupted or transient[e.kind]) then error(e, 0) end
        first_err = first_err or e
        return
      end
      local rel = jobs[i].rel
      q:remove(rel)              -- journaled at once: a crash later keeps only what is left
      result.uploaded = result.uploaded + 1
      result.bytes = result.bytes + (attrs.st_size or sizes[rel] or 0)
      self:_record(rel, attrs, sent_hash[rel])
      if sftp.json then   -- as a tree copy's action events
        U.emit({event = "action", call = "push", op = "put", remote = jobs[i].remote, ["local"] = jobs[i]["local"], size = attrs.st_size})
      end
    end)
    -- The records of what landed are saved however the batch ended (the queue's journal already
    -- has them gone); after a whole batch, below.
    if not ok or first_err then self:_save_cache(); error(ok and first_err or err, 0) end
  end)
  self:_save_cache()
  return result
end

--- sftp.syncagent{host=, hostport=, username=, priv_key=, local_root=, remote_root=, ...}
function sftp.syncagent(opts)
  U.check(opts, 1, "sftp.syncagent", "table")
  U.check_opts(opts, "sftp.syncagent", 1, agent_keys)   -- each key is named in its error, as sftp.connect's are
  if opts.local_root == nil then
    sftp.error(K.ArgumentError, "bad option 'local_root' to 'syncagent' (string expected, got no value)")
  end
  if opts.local_root == "" then sftp.error(K.ArgumentError, "bad option 'local_root' to 'syncagent' (it is empty)") end
  local copts
  U.check_connection(opts.connection, "syncagent")
  if opts.connection == nil then
    if opts.host == nil then
      sftp.error(K.ArgumentError, "bad option 'host' to 'syncagent' (string expected, got no value; or give 'connection')")
    end
    copts = {}
    for _, k in ipairs(core.connect_keys) do copts[k] = opts[k] end
    local port = opts.port or opts.hostport
    if type(port) == "string" then port = math.tointeger(tonumber(port)) or port end
    if port ~= nil and math.type(port) ~= "integer" then
      sftp.error(K.ArgumentError, ("bad option '%s' to 'syncagent' (port number expected)"):format(opts.port ~= nil and "port" or "hostport"))
    end
    copts.port = port
    copts.private_key = opts.private_key or opts.priv_key
  end
  local parallel = U.check_parallel(opts.parallel, "syncagent")
  U.makedirs(opts.local_root)
  local root = fs.realpath(opts.local_root)
  local agent = setmetatable({local_root = root, remote_root = opts.remote_root or ".", _connect_opts = copts,
                              _conn = opts.connection, _owned = false, _parallel = parallel}, Agent)
  agent._remote_root = agent.remote_root
  local q = setmetatable({_agent = agent, _file = U.join(root, JOURNAL), _index = {}}, Queue)
  q:_load()
  agent.upload_queue = q
  agent:_load_cache()
  return agent
end
