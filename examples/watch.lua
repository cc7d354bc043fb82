-- Watch an inbox on the server: download each new file as it lands, then move it to processed/.
-- Usage: sftplua run examples/watch.lua REMOTE_DIR [LOCAL_DIR=inbox] [SECONDS]
-- Runs until Ctrl-C (or for SECONDS). Connection settings come from the environment:
-- SFTPLUA_HOST (127.0.0.1), SFTPLUA_PORT (22), SFTPLUA_USER (you).
local remote = assert(arg[1], "usage: watch.lua REMOTE_DIR [LOCAL_DIR] [SECONDS]")
local local_dir = arg[2] or "inbox"
local seconds = arg[3] and tonumber(arg[3])

local c <close> = sftp.connect{
  host = os.getenv("SFTPLUA_HOST") or "127.0.0.1",
  port = tonumber(os.getenv("SFTPLUA_PORT") or "22"),
  username = os.getenv("SFTPLUA_USER"),
}
local inbox, processed = remote .. "/inbox", remote .. "/processed"
c:makedirs(inbox)
c:makedirs(processed)
sftp.fs.makedirs(local_dir)

local function take(name)
  c:get(inbox .. "/" .. name, local_dir .. "/" .. name, {preserve_mtime = true})
  -- A name already in processed/ gets a timestamp, so nothing is overwritten.
  local target = processed .. "/" .. name
  if c:exists(target) then target = ("%s/%s.%d"):format(processed, name, os.time()) end
  c:rename(inbox .. "/" .. name, target)
  print(("fetched %s (%d bytes), moved to %s"):format(name, sftp.fs.stat(local_dir .. "/" .. name).st_size, target))
end

-- Files already waiting are taken first; the watcher then reports only what arrives later.
for _, e in ipairs(c:listdir_attr(inbox)) do
  if e.type == "file" and not e.filename:match("^%.") then take(e.filename) end
end

print(("watching %s (Ctrl-C to stop)"):format(inbox))
local n = c:watch(inbox, {
  interval = 0.5,
  recursive = false,
  settle = 1,                   -- a file is taken once its size and mtime held still for 1 s
  exclude = {".*", "*.part"},   -- uploads in progress under temp names are not files yet
  duration = seconds,
}, function(ev)
  if ev.type == "created" and ev.attr.type == "file" then
    local ok, err = pcall(take, ev.path)
    if not ok then print(("could not take %s: %s"):format(ev.path, tostring(err))) end
  end
end)
print(("stopped after %d event(s)"):format(n))
