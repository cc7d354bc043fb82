-- A declarative recipe: publish the local site (examples/site) to the server, then keep a local
-- backup of what the server has. `sftplua run` connects and applies the rules in order;
-- `sftplua run --dry-run examples/site.recipe.lua REMOTE_DIR` prints the plan and changes nothing.
-- Usage: sftplua run examples/site.recipe.lua [REMOTE_DIR]
-- Settings come from the environment, so the same recipe runs in CI and on a laptop:
--   SFTPLUA_HOST (127.0.0.1), SFTPLUA_PORT (22), SFTPLUA_USER (you), SITE_REMOTE (the remote
--   dir when no argument is given). "${NAME}" and "${NAME:-default}" are expanded by sftplua.
local here = debug.getinfo(1, "S").source:match("^@(.*)/") or "."
local remote = arg[1] or "${SITE_REMOTE}"

return {
  name = "site",
  connect = {host = "${SFTPLUA_HOST:-127.0.0.1}", port = "${SFTPLUA_PORT:-22}", username = os.getenv("SFTPLUA_USER")},
  defaults = {exclude = {"*.tmp", "*~", ".git/"}},
  mirror = {
    -- Publish: the server's www becomes exactly the local site (extra files there are deleted).
    {up = here .. "/site", to = remote .. "/www", delete = true},
    -- Back up: fetch what changed, compared by content, into the directory you run it from
    -- (a relative local path would be the recipe's own directory's).
    {down = remote .. "/www", to = sftp.fs.getcwd() .. "/site-backup", compare = "checksum"},
  },
}
