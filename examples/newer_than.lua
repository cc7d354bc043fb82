-- Download only the files changed since a date, keeping the directory layout.
-- Usage: sftplua run examples/newer_than.lua REMOTE_DIR [LOCAL_DIR=downloads] [YYYY-MM-DD=a week ago]
-- Uses c:walktree callbacks: file_cb fetches what changed since the date (creating local
-- directories as files land), unk_cb reports what is not a regular file.
local remote_dir = assert(arg[1], "usage: newer_than.lua REMOTE_DIR [LOCAL_DIR] [YYYY-MM-DD]")
local local_dir = arg[2] or "downloads"
local since = arg[3] or os.date("!%Y-%m-%d", os.time() - 7 * 86400)
local y, m, d = since:match("^(%d%d%d%d)-(%d%d)-(%d%d)$")
assert(y, "date must look like 2024-01-31")
local cutoff = os.time{year = tonumber(y), month = tonumber(m), day = tonumber(d), hour = 0}

local c <close> = sftp.connect{
  host = os.getenv("SFTPLUA_HOST") or "127.0.0.1",
  port = tonumber(os.getenv("SFTPLUA_PORT") or "22"),
  username = os.getenv("SFTPLUA_USER"),
}

local function relative(path) return path:sub(#remote_dir + 2) end
local fetched, skipped, bytes = 0, 0, 0

c:walktree(remote_dir,
  function(path)                       -- file_cb
    local a = c:stat(path)
    if a.st_mtime >= cutoff then
      local target = local_dir .. "/" .. relative(path)
      sftp.fs.makedirs(target:match("^(.*)/[^/]*$"))
      c:get(path, target, {preserve_mtime = true})
      fetched, bytes = fetched + 1, bytes + a.st_size
      print(("fetched %s (%s)"):format(relative(path), os.date("!%Y-%m-%d", a.st_mtime)))
    else
      skipped = skipped + 1
    end
  end,
  nil,                                 -- dir_cb: not needed, directories are made as files land
  function(path) print("skipped (not a regular file): " .. relative(path)) end)

print(("%d file(s) fetched, %d bytes; %d older than %s skipped"):format(fetched, bytes, skipped, since))
