-- A first recipe: upload a report, list the remote directory, fetch the report back.
-- Usage: sftplua run examples/quickstart.lua REMOTE_DIR
-- Connection settings come from the environment so the same recipe runs anywhere:
--   SFTPLUA_HOST (default 127.0.0.1), SFTPLUA_PORT (22), SFTPLUA_USER (you).
local remote_dir = assert(arg[1], "usage: quickstart.lua REMOTE_DIR")

local c <close> = sftp.connect{
  host = os.getenv("SFTPLUA_HOST") or "127.0.0.1",
  port = tonumber(os.getenv("SFTPLUA_PORT") or "22"),
  username = os.getenv("SFTPLUA_USER"),
}
print(("connected to %s as %s (%s)"):format(c.host, c.username, c.auth_method))

-- Something to send.
local name = "report-" .. os.date("!%Y%m%d") .. ".csv"
local f = assert(io.open(name, "w"))
f:write("id,value\n1,42\n2,17\n")
f:close()

local attr = c:put(name, remote_dir .. "/" .. name, {preserve_mtime = true})
print(("uploaded %s: %d bytes, mode %o"):format(name, attr.st_size, attr.st_mode & 0x1ff))

for _, e in ipairs(c:listdir_attr(remote_dir)) do
  print(("  %-4s %8d  %s"):format(e.type, e.st_size or 0, e.filename))
end

c:get(remote_dir .. "/" .. name, name .. ".back")
local back = assert(io.open(name .. ".back")):read("a")
print(("downloaded it back: %d bytes, %s"):format(#back, back == "id,value\n1,42\n2,17\n" and "identical" or "DIFFERENT"))

-- Errors are objects with a kind.
local ok, err = pcall(c.stat, c, remote_dir .. "/no-such-file")
print(("stat of a missing file: %s (kind %s)"):format(tostring(err), err.kind))
os.remove(name); os.remove(name .. ".back")
