-- The Lua side of the sftp module. Each chunk in lua/ receives the module table as `...`.
local sftp = ...

local function is_identifier(s)
  return type(s) == "string" and s:match("^[%a_][%w_]*$") ~= nil
end

--- sftp.pretty(value [, indent]): a readable, deterministic rendering of any value
--- (tables sorted by key, nested, cycles marked). Used by the REPL to print results.
function sftp.pretty(value, indent)
  indent = indent or "  "
  local seen = {}
  local function render(v, depth)
    if type(v) == "string" then return string.format("%q", v) end
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

return sftp
