-- The leak loop (issue 10), run by Tests/EndToEndTests/LeakTests.swift (100 times) and by
-- bench/leaks (10,000 times): connect, write, read, put, open one remote file and leave it to the
-- collector, provoke errors, close half of the connections and leave the rest to the collector.
-- Usage: sftplua run bench/leak-loop.lua ITERATIONS REMOTE_DIR   (SFTPLUA_HOST, SFTPLUA_PORT)
-- Prints: fd growth, live sessions, live SFTP channels, live remote files, RSS growth (KiB).
local n, R = math.tointeger(tonumber(arg[1])), assert(arg[2], "usage: leak-loop.lua ITERATIONS REMOTE_DIR")
local opts = {host = os.getenv("SFTPLUA_HOST") or "127.0.0.1", port = tonumber(os.getenv("SFTPLUA_PORT") or "22")}
local function fds() return #sftp.fs.ls("/proc/self/fd") end
local function rss() return tonumber(io.open("/proc/self/status"):read("a"):match("VmRSS:%s*(%d+)")) end
local function once(i)
  local c = sftp.connect(opts)
  c:write(R .. "/f", "x" .. i)
  assert(c:read(R .. "/f") == "x" .. i)
  c:get(R .. "/f", "local-" .. (i % 3))
  c:put("local-" .. (i % 3), R .. "/g")
  local f = c:open(R .. "/f")                    -- left open: closed when collected
  local g = c:open(R .. "/f"); g:close()
  assert(not pcall(c.stat, c, R .. "/missing"))  -- errors
  assert(not pcall(c.get, c, R .. "/missing", "nope"))
  assert(not pcall(sftp.connect, {host = "127.0.0.1", port = 1, timeout = 2}))
  if i % 2 == 0 then c:close() end               -- half closed, half left to the collector
end
once(0); collectgarbage(); collectgarbage()
local fd0, rss0 = fds(), rss()
for i = 1, n do
  once(i)
  if i % 25 == 0 then collectgarbage() end
end
collectgarbage(); collectgarbage()
local live = sftp._live()
print(fds() - fd0, live.sessions, live.channels, live.files, rss() - rss0)
