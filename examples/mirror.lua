-- Imperative mirroring: publish a local folder, pull an inbox, with rules a glob cannot say.
-- Usage: sftplua run examples/mirror.lua REMOTE_DIR [LOCAL_DIR]
-- Connection settings come from the environment: SFTPLUA_HOST (127.0.0.1), SFTPLUA_PORT (22),
-- SFTPLUA_USER (you). `sftplua run --dry-run examples/mirror.lua ...` prints the plans only.
local remote = assert(arg[1], "usage: mirror.lua REMOTE_DIR [LOCAL_DIR]")
local here = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
local site = arg[2] or (here .. "/site")

local c <close> = sftp.connect{
  host = os.getenv("SFTPLUA_HOST") or "127.0.0.1",
  port = tonumber(os.getenv("SFTPLUA_PORT") or "22"),
  username = os.getenv("SFTPLUA_USER"),
}

local function report(label, r)
  print(("%s: %d copied, %d updated, %d deleted, %d unchanged, %d bytes"):format(
    label, r.copied, r.updated, r.deleted, r.skipped, r.bytes))
  if not r.dry_run then   -- (a dry run's plan has listed them already)
    for _, w in ipairs(r.warnings) do print("  warning: " .. w) end
  end
end

-- 1. Publish the site: only what a browser needs, nothing bigger than 10 MB, stale files removed.
local published = c:mirror_up(site, remote .. "/public", {
  include = {"*.html", "*.css", "*.js", "*.png", "*.svg"},
  exclude = {"drafts/", "*.tmp"},
  filter = function(e) return e.type == "dir" or e.st_size <= 10 * 1024 * 1024 end,
  delete = true,
  parallel = 4,
  on_action = function(a) print(("  %-6s %s"):format(a.op, a.path)) end,
})
report("publish", published)

-- 2. Pull the inbox: only files that are complete (a sibling "NAME.done" marker says so).
local inbox = remote .. "/inbox"
if sftp.dry_run and not c:isdir(inbox) then
  -- A dry run makes nothing, so a fresh server has no inbox yet to list or pull.
  print("inbox: " .. inbox .. " does not exist yet (the real run makes it)")
else
  c:makedirs(inbox)
  if #c:listdir(inbox) == 0 then      -- something to pull the first time
    c:write(inbox .. "/orders.csv", "id,qty\n1,3\n")
    c:write(inbox .. "/orders.csv.done", "")
    c:write(inbox .. "/partial.csv", "id,qty\n2,")
  end
  local ready = {}
  for _, name in ipairs(c:listdir(inbox)) do ready[name] = true end
  local pulled = c:mirror_down(inbox, "inbox", {
    exclude = {"*.done"},
    filter = function(e) return e.type == "dir" or ready[e.filename .. ".done"] == true end,
  })
  report("inbox", pulled)
end

-- 3. A second run right away has nothing to do.
report("publish again", c:mirror_up(site, remote .. "/public", {include = {"*.html", "*.css", "*.js", "*.png", "*.svg"},
                                                                  exclude = {"drafts/", "*.tmp"}, delete = true}))
