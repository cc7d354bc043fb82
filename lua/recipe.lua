-- Declarative recipes and the `sftplua run` driver (including --dry-run).
local sftp = require("sftp")
local K = sftp.kinds   -- error kinds: a misspelt one is an error, not a new kind
local U = require("sftp.util")
local mirror = require("sftp.mirror")
local connection = require("sftp.connection")
local core = require("sftp.core")
local M = core.connection_methods

local recipe_keys = {connect = true, mirror = true, name = true, defaults = true}
local rule_keys = {down = true, up = true, to = true}
for k in pairs(mirror.keys) do rule_keys[k] = true end

-- The keys of a recipe, its defaults or a rule: the one option checker (LuaOptions) finds an
-- unknown key and the closest valid one; the message names where it is.
local function check_keys(t, allowed, prefix, where)
  local msg = core.unknown_key(t, allowed, where)
  if msg then sftp.error(K.ArgumentError, prefix .. msg) end
end

-- "${NAME}", "${NAME:-default}" and "$NAME" in a string, from the environment. A variable
-- that is unset and has no default is an error naming it.
local function expand(s, where)
  if type(s) ~= "string" then return s end
  local function lookup(name, default)
    local v = os.getenv(name)
    if v == nil or (v == "" and default) then
      if default then return default end
      sftp.error(K.ArgumentError, ("%s: environment variable %s is not set"):format(where, name))
    end
    return v
  end
  s = s:gsub("%${([%a_][%w_]*):%-([^}]*)}", function(n, d) return lookup(n, d) end)
  s = s:gsub("%${([%a_][%w_]*)}", function(n) return lookup(n) end)
  s = s:gsub("%$([%a_][%w_]*)", function(n) return lookup(n) end)
  return s
end
sftp.expand_env = expand

local function is_recipe(t)
  return type(t) == "table" and getmetatable(t) == nil and (t.mirror ~= nil or t.connect ~= nil)
end

local function describe(i, rule)
  if type(rule) ~= "table" then return ("rule #%d"):format(i) end
  if rule.down then return ("rule #%d (down %s -> %s)"):format(i, tostring(rule.down), tostring(rule.to)) end
  if rule.up then return ("rule #%d (up %s -> %s)"):format(i, tostring(rule.up), tostring(rule.to)) end
  return ("rule #%d"):format(i)
end

-- Raises the error `e` again; an error object's message is prefixed by `where` (the same
-- object). Any other value (raised by a filter or on_action callback) passes through unchanged.
local function reraise(e, where)
  if type(e) == "table" and e.kind then
    if not tostring(e.message):find(where, 1, true) then e.message = where .. ": " .. tostring(e.message) end
    e.rule = e.rule or where
  end
  error(e, 0)
end

--- sftp.check_recipe(t): validates a recipe table; raises ArgumentError naming the field.
--- (`connected`: the caller gives the connection, so `connect` may be left out.)
local function check_recipe(t, connected)
  if type(t) ~= "table" then sftp.error(K.ArgumentError, "recipe: table expected, got " .. type(t)) end
  check_keys(t, recipe_keys, "recipe: ", "the recipe")
  if type(t.connect) ~= "table" and not (connected and t.connect == nil) then
    sftp.error(K.ArgumentError, "recipe: 'connect' must be a table of sftp.connect options, got " .. type(t.connect))
  end
  if t.name ~= nil and type(t.name) ~= "string" then sftp.error(K.ArgumentError, "recipe: 'name' must be a string") end
  if t.defaults ~= nil and type(t.defaults) ~= "table" then sftp.error(K.ArgumentError, "recipe: 'defaults' must be a table") end
  if t.defaults then check_keys(t.defaults, mirror.keys, "recipe: ", "'defaults'") end
  if type(t.mirror) ~= "table" then sftp.error(K.ArgumentError, "recipe: 'mirror' must be an array of rules, got " .. type(t.mirror)) end
  local n = #t.mirror
  for k in pairs(t.mirror) do
    if math.type(k) ~= "integer" or k < 1 or k > n then
      sftp.error(K.ArgumentError, "recipe: 'mirror' must be an array of rules (found key " .. tostring(k) .. ")")
    end
  end
  for i, rule in ipairs(t.mirror) do
    local where = "recipe " .. describe(i, rule)
    if type(rule) ~= "table" then sftp.error(K.ArgumentError, where .. ": table expected, got " .. type(rule)) end
    check_keys(rule, rule_keys, where .. ": ", "the rule")
    if (rule.down == nil) == (rule.up == nil) then
      sftp.error(K.ArgumentError, where .. ": give exactly one of 'down' (a remote dir) or 'up' (a local dir)")
    end
    for _, k in ipairs({"down", "up", "to"}) do
      if rule[k] ~= nil and (type(rule[k]) ~= "string" or rule[k] == "") then
        sftp.error(K.ArgumentError, where .. (": '%s' must be a non-empty string, got %s"):format(k, type(rule[k])))
      end
    end
    if rule.to == nil then sftp.error(K.ArgumentError, where .. ": 'to' (the target dir) is missing") end
    -- The mirror options, checked before anything connects.
    local opts = {}
    for k, v in pairs(t.defaults or {}) do opts[k] = v end
    for k, v in pairs(rule) do if mirror.keys[k] then opts[k] = v end end
    local ok, err = pcall(mirror.opts, opts, where)
    if not ok then reraise(err, where) end
  end
  return t
end
function sftp.check_recipe(t) return check_recipe(t, false) end

local run_rules   -- below: the rules of a checked recipe, one after the other

--- sftp.run_recipe(t [, {connection=c, base=dir}]) -> array of summaries, one per rule. Relative
--- local paths (`to` of a down rule, `up`) are taken against `base`: `sftplua run` passes the
--- recipe file's directory, so a recipe works from wherever it is run.
function sftp.run_recipe(t, how)
  how = U.check_opts(how, "sftp.run_recipe", 2, {connection = true, quiet = "boolean", base = "string"})
  U.check_connection(how.connection, "run_recipe")
  check_recipe(t, how.connection ~= nil)
  -- Each rule prints its own line below: no second summary from the mirror.
  local had = connection.no_summary
  connection.no_summary = true
  local ok, res = pcall(run_rules, t, how)
  connection.no_summary = had
  if not ok then error(res, 0) end
  return res
end

function run_rules(t, how)
  how = how or {}
  local function here(p)
    if how.base and how.base ~= "" and p:sub(1, 1) ~= "/" then return U.join(how.base, p) end
    return p
  end
  local copts = {}
  for k, v in pairs(t.connect or {}) do copts[k] = expand(v, "recipe connect." .. tostring(k)) end
  if type(copts.port) == "string" and tonumber(copts.port) then copts.port = math.tointeger(tonumber(copts.port)) end
  local c = how.connection
  local own = false
  if not c then
    local ok, conn = pcall(sftp.connect, copts)
    if not ok then reraise(conn, "recipe connect") end
    c, own = conn, true
  end
  local results = {}
  local ok, err = pcall(function()
    for i, rule in ipairs(t.mirror) do
      local where = "recipe " .. describe(i, rule)
      local opts = {}
      for k, v in pairs(t.defaults or {}) do opts[k] = v end
      for k, v in pairs(rule) do if mirror.keys[k] then opts[k] = v end end
      local rok, res = pcall(function()
        if rule.down then return c:mirror_down(expand(rule.down, where), here(expand(rule.to, where)), opts) end
        return c:mirror_up(here(expand(rule.up, where)), expand(rule.to, where), opts)
      end)
      if not rok then reraise(res, where) end
      results[i] = res
      -- (Under --json the mirror's own summary and warning events stand for this line.)
      if not sftp.dry_run and not how.quiet and not sftp.quiet and not sftp.json then
        io.write(("%s: %d copied, %d updated, %d deleted, %d unchanged, %d bytes%s\n"):format(
          describe(i, rule), res.copied, res.updated, res.deleted, res.skipped, res.bytes,
          #res.warnings > 0 and (", %d warning(s)"):format(#res.warnings) or ""))
        for _, w in ipairs(res.warnings) do io.write("  warning: ", w, "\n") end
      end
    end
  end)
  if own then c:close() end
  if not ok then error(err, 0) end
  return results
end

--- core.main(chunk, ...): the `sftplua run` driver (Runner.runFile): runs the chunk; a returned
--- recipe table is applied.
function core.main(chunk, ...)
  if sftp.dry_run then require("sftp.dryrun").install() end
  local res = table.pack(chunk(...))
  if res.n >= 1 and is_recipe(res[1]) then
    local script = type(arg) == "table" and arg[0]
    local base = type(script) == "string" and script ~= "-" and script ~= "-e" and script:match("^(.*)/[^/]*$") or nil
    -- Run from the recipe's own directory, its paths stay as written (and so do plan labels).
    if base then
      local ok, real = pcall(sftp.fs.realpath, base)
      if ok and real == sftp.fs.getcwd() then base = nil end
    end
    sftp.run_recipe(res[1], {base = base})
    return
  end
  return table.unpack(res, 1, res.n)
end
