-- sftpsyncer's use case: a local cache of an SFTP server, and an upload queue pushed in one go.
-- Usage: sftplua run examples/syncagent.lua REMOTE_DIR [CACHE_DIR]
-- Connection settings come from the environment: SFTPLUA_HOST (127.0.0.1), SFTPLUA_PORT (22),
-- SFTPLUA_USER (you), SFTPLUA_KEY (your default identities when unset).
local remote_root = assert(arg[1], "usage: syncagent.lua REMOTE_DIR [CACHE_DIR]")
local cache = arg[2] or "cache"

local agent <close> = sftp.syncagent{
  host = os.getenv("SFTPLUA_HOST") or "127.0.0.1",
  hostport = os.getenv("SFTPLUA_PORT") or "22",
  username = os.getenv("SFTPLUA_USER"),
  priv_key = os.getenv("SFTPLUA_KEY"),
  local_root = cache,
  remote_root = remote_root,
}

-- Upload local files: write them into the cache, queue them, push them all.
local function write(path, text)
  sftp.fs.makedirs((agent.local_root .. "/" .. path):match("^(.*)/"))
  local f = assert(io.open(agent.local_root .. "/" .. path, "w"))
  f:write(text)
  f:close()
end
write("myfile.txt", "my notes\n")
write("docs/readme.txt", "read me first\n")
agent.upload_queue:add("myfile.txt")
agent.upload_queue:add("docs/readme.txt")
print(("queued: %s"):format(table.concat(agent.upload_queue:list(), ", ")))
local pushed = agent:push()       -- uploads whether or not the remote files exist
print(("pushed %d file(s), %d bytes; %d left in the queue"):format(pushed.uploaded, pushed.bytes, #agent.upload_queue))

-- Read files, from the cache when there, else fetched from the server first.
local fh1 = agent:open("myfile.txt")            -- already local
print("myfile.txt: " .. fh1:read("l"))
fh1:close()
local ok, fh2 = pcall(agent.open, agent, "remote.txt")
if ok then
  print("remote.txt (fetched): " .. fh2:read("l"))
  fh2:close()
else
  print("remote.txt: " .. tostring(fh2))
end

-- The errors sftpsyncer users catch.
local ok3, err = pcall(agent.open, agent, "not_anywhere.txt")
if not ok3 and err.kind == "FileNotFound" then print("not_anywhere.txt: does not exist on local or remote") end

local st = agent:status()
print(("cache: %d file(s), %d queued, %s stale"):format(#st.cached, #st.queued, st.stale and #st.stale or "?"))
