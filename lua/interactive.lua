-- sftp.interactive: what people at the REPL use (sftp.pretty, help(), completion) and keeping
-- script output apart from the progress block.
local sftp = require("sftp")
local core = require("sftp.core")

local function is_identifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

-- A string as a Lua literal that reads back as the same bytes: %q, with each byte that is not
-- part of valid UTF-8 as \xHH (a name that is not UTF-8 shows as plans show it, and can be
-- typed back).
local function literal(s)
  local q = string.format("%q", s)
  local out, i, rounds = {}, 1, 0
  while i <= #q and rounds <= #q do
    rounds = rounds + 1
    local ok, bad = utf8.len(q, i)
    if ok then out[#out + 1] = q:sub(i); break end
    out[#out + 1] = q:sub(i, bad - 1)
    out[#out + 1] = ("\\x%02x"):format(q:byte(bad))
    i = bad + 1
  end
  return table.concat(out)
end

--- sftp.pretty(value [, indent]): a readable, deterministic rendering of any value
--- (tables sorted by key, nested, cycles marked). Used by the REPL to print results.
function sftp.pretty(value, indent)
  indent = indent or "  "
  local seen = {}
  local function render(v, depth)
    if type(v) == "string" then
      -- Text with line breaks (and no other control bytes) reads best as it is: a long string.
      if v:find("\n") and not v:find("[%z\1-\9\11-\31\127]") and utf8.len(v) then
        local eq = ""
        while v:find("]" .. eq .. "]", 1, true) do eq = eq .. "=" end
        return "[" .. eq .. "[\n" .. v .. "]" .. eq .. "]"
      end
      return literal(v)
    end
    if type(v) ~= "table" then return tostring(v) end
    local mt = getmetatable(v)
    if mt and mt.__tostring then return tostring(v) end
    if seen[v] then return "<cycle>" end
    if depth > 8 then return "{...}" end
    seen[v] = true
    local n = #v
    local keys = {}
    for k in pairs(v) do
      if not (math.type(k) == "integer" and k >= 1 and k <= n) then keys[#keys + 1] = k end
    end
    table.sort(keys, function(a, b)
      if type(a) == type(b) and (type(a) == "number" or type(a) == "string") then return a < b end
      return type(a) < type(b)
    end)
    local parts = {}
    for i = 1, n do parts[#parts + 1] = render(v[i], depth + 1) end
    for _, k in ipairs(keys) do
      local key = is_identifier(k) and k or ("[" .. render(k, depth + 1) .. "]")
      parts[#parts + 1] = key .. " = " .. render(v[k], depth + 1)
    end
    seen[v] = nil
    if #parts == 0 then return "{}" end
    local flat = "{ " .. table.concat(parts, ", ") .. " }"
    if #flat <= 72 and not flat:find("\n") then return flat end
    local pad = string.rep(indent, depth + 1)
    return "{\n" .. pad .. table.concat(parts, ",\n" .. pad) .. "\n" .. string.rep(indent, depth) .. "}"
  end
  return render(value, 0)
end

-- REPL tab completion ---------------------------------------------------------------------------

local keywords = {"and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if",
                  "in", "local", "nil", "not", "or", "repeat", "return", "then", "true", "until", "while"}

-- Field names of a value: table keys (and those of an __index table), or for sftplua objects the
-- methods (with ":") and fields (with ".") of their class.
local connection_fields = {"closed", "host", "port", "username", "auth_method", "host_key", "logfile",
                           "timeout", "pwd", "active_ciphers", "security_options"}
local function names_of(v, sep)
  local out = {}
  local function add_table(t, only_functions)
    for k, x in pairs(t) do
      if type(k) == "string" and k:match("^[%a_][%w_]*$") and k:sub(1, 1) ~= "_" and (not only_functions or type(x) == "function") then
        out[#out + 1] = k
      end
    end
  end
  local mt = getmetatable(v)
  local name = type(mt) == "table" and rawget(mt, "__name")
  if type(v) == "userdata" and name == "sftp.Connection" then
    add_table(core.connection_methods, true)
    if sep == "." then for _, f in ipairs(connection_fields) do out[#out + 1] = f end end
  elseif type(v) == "userdata" and name == "sftp.RemoteFile" then
    add_table(core.remotefile_methods, true)
  elseif type(v) == "table" then
    add_table(v, sep == ":")
    local idx = type(mt) == "table" and rawget(mt, "__index")
    if type(idx) == "table" then add_table(idx, sep == ":") end
  elseif type(v) == "string" and sep == ":" then
    add_table(string, true)
  end
  return out
end

--- core.complete(word, line) (called by the REPL, Runner.completions): completions for the REPL (full replacements for `word`).
-- Inside a string argument of a Connection method (`c:get("/srv/in/re<Tab>`): the remote names
-- of that directory that start so (directories with a "/"). `word` is the end of the line that
-- the line editor replaces (where it starts depends on its word breaks), so each completion is
-- `word` plus the rest of a name.
local function complete_remote(word, line)
  local var, args = line:match("([%a_][%w_]*):[%a_][%w_]*%s*%((.*)$")
  if not var then return nil end
  local _, quotes = args:gsub("[\"']", "")
  local path = args:match("[\"']([^\"']*)$")
  if not path or quotes % 2 == 0 then return nil end
  local conn = rawget(_G, var)
  if type(conn) ~= "userdata" or not tostring(conn):match("^sftp%.Connection") then return nil end
  local dir, partial = path:match("^(.*/)([^/]*)$")
  if not dir then dir, partial = "", path end
  local ok, entries = pcall(conn.listdir_attr, conn, dir == "" and "." or dir)
  if not ok then return {} end
  local out = {}
  for _, e in ipairs(entries) do
    local n = e.filename
    if n:sub(1, #partial) == partial then out[#out + 1] = word .. n:sub(#partial + 1) .. (e.type == "dir" and "/" or "") end
    if #out >= 500 then break end
  end
  return out
end

function core.complete(word, line)
  local remote = complete_remote(word, line)
  if remote then return remote end
  local out, seen = {}, {}
  local function offer(s) if not seen[s] then seen[s] = true; out[#out + 1] = s end end
  local prefix, sep, partial = word:match("^([%a_][%w_%.:]-)([%.:])([%w_]*)$")
  if prefix then
    local v = _G
    for part in prefix:gmatch("[^%.:]+") do
      local ok, x = pcall(function() return v[part] end)
      if not ok or x == nil then return out end
      v = x
    end
    for _, n in ipairs(names_of(v, sep)) do
      if n:sub(1, #partial) == partial then offer(prefix .. sep .. n) end
    end
  elseif word:match("^[%a_][%w_]*$") or word == "" then
    for k in pairs(_G) do
      if type(k) == "string" and k:sub(1, #word) == word and k:match("^[%a_][%w_]*$") then offer(k) end
    end
    for _, k in ipairs(keywords) do if k:sub(1, #word) == word then offer(k) end end
  end
  table.sort(out)
  return out
end

-- REPL help ----------------------------------------------------------------------------------

--- help([fn | "name"]): without an argument, what there is; with a function of the library (or
--- its name), its section of the reference (docs/reference.md).
function sftp.help(what)
  local ref = core.reference or ""
  if what == nil then
    local names = {}
    for k, v in pairs(core.connection_methods) do
      if type(k) == "string" and k:sub(1, 1) ~= "_" and type(v) == "function" then names[#names + 1] = k end
    end
    table.sort(names)
    io.write("Connection methods (c:NAME(...)); help(c.NAME) shows one:\n  ", table.concat(names, " "), "\n",
      "Module: sftp.connect, sftp.syncagent, sftp.run_recipe, sftp.walktree, sftp.fs, sftp.pretty, ...\n",
      "REPL: ls([path]) lists c's directory like ls -l; the full reference is docs/reference.md.\n")
    return
  end
  local name = what
  if type(what) == "function" then
    name = nil
    for k, v in pairs(core.connection_methods) do if v == what then name = k end end
    for k, v in pairs(sftp) do if v == what and not name then name = "sftp." .. k end end
    if not name then io.write("no reference for this function\n"); return end
  end
  name = tostring(name)
  local heads = name:find("^sftp%.") and {"`" .. name .. "(", "`" .. name .. "`", "`" .. name .. ","}
    or {"`c:" .. name .. "(", "`c:" .. name .. "`", "`c." .. name .. "`"}
  local lines, from = {}, nil
  for line in (ref .. "\n"):gmatch("(.-)\n") do lines[#lines + 1] = line end
  for i, line in ipairs(lines) do
    if line:sub(1, 5) == "#### " then
      for _, h in ipairs(heads) do if line:find(h, 1, true) then from = i; break end end
      if from then break end
    end
  end
  if from then
    local out = {lines[from]:sub(6)}
    for i = from + 1, #lines do
      if lines[i]:sub(1, 1) == "#" then break end
      out[#out + 1] = lines[i]
    end
    io.write(table.concat(out, "\n"), "\n")
    return
  end
  io.write("no reference for ", name, "\n")
end

-- A script's output never merges with a progress block: `print` and `io.write` (callbacks run
-- while a transfer shows its block) clear it first and draw it again after.
do
  local raw_print, raw_write = print, io.write
  print = function(...)
    core.progress_hide()
    raw_print(...)
    core.progress_show()
  end
  io.write = function(...)
    core.progress_hide()
    local r = table.pack(raw_write(...))
    -- Output that did not end its line: the block is drawn below it, not over it.
    local partial = false
    for i = select("#", ...), 1, -1 do
      local v = select(i, ...)
      if (type(v) == "string" or type(v) == "number") and #tostring(v) > 0 then partial = tostring(v):sub(-1) ~= "\n"; break end
    end
    core.progress_show(partial)
    return table.unpack(r, 1, r.n)
  end
end

return sftp
