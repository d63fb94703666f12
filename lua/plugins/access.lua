-- access.lua - per-kite IP allow-lists and HTTP basic authentication.
--
-- Settings (each may be given several times; ";" also separates rules):
--   access.allow=KITE:ADDR,ADDR,...   only these clients may reach KITE;
--                                     ADDR is an IPv4/IPv6 address or CIDR
--   access.auth=KITE:USER:PASSWORD    KITE needs HTTP basic auth (any listed user)
--   access.realm=TEXT                 realm shown by browsers (default: the kite)
-- KITE is a name, "*.domain" or "*".  A client outside the allow-list gets
-- 403; a request without valid credentials gets 401 with WWW-Authenticate.
-- Non-HTTP streams of a kite that needs auth are refused (they cannot
-- authenticate).  The checks run on the relay and on the connector alike.

local function split(s, sep)
  local out = {}
  for part in (s .. sep):gmatch("(.-)" .. sep:gsub("%p", "%%%0")) do
    part = part:match("^%s*(.-)%s*$")
    if part ~= "" then out[#out + 1] = part end
  end
  return out
end

-- Address parsing: an address becomes a list of 16 bytes (IPv4 as ::ffff:a.b.c.d).
local function parse_v4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  local bytes = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255, 255 }
  for _, x in ipairs({ a, b, c, d }) do
    x = tonumber(x)
    if x > 255 then return nil end
    bytes[#bytes + 1] = x
  end
  return bytes
end

local function parse_v6(s)
  s = s:gsub("%%.*$", "")
  local v4tail
  local head, tail = s:match("^(.*:)(%d+%.%d+%.%d+%.%d+)$")
  if head then
    v4tail = parse_v4(tail)
    if not v4tail then return nil end
    s = head .. "0:0"
  end
  local left, right = s, nil
  local dbl = s:find("::", 1, true)
  if dbl then left, right = s:sub(1, dbl - 1), s:sub(dbl + 2) end
  local function groups(part)
    if part == "" then return {} end
    local g = {}
    for x in (part .. ":"):gmatch("([^:]*):") do
      if not x:match("^%x%x?%x?%x?$") then return nil end
      g[#g + 1] = tonumber(x, 16)
    end
    return g
  end
  local lg, rg = groups(left), groups(right or "")
  if not lg or not rg then return nil end
  local all = {}
  for _, x in ipairs(lg) do all[#all + 1] = x end
  if dbl then
    for _ = 1, 8 - #lg - #rg do all[#all + 1] = 0 end
  end
  for _, x in ipairs(rg) do all[#all + 1] = x end
  if #all ~= 8 then return nil end
  local bytes = {}
  for _, x in ipairs(all) do
    bytes[#bytes + 1] = x >> 8
    bytes[#bytes + 1] = x & 255
  end
  if v4tail then
    for i = 13, 16 do bytes[i] = v4tail[i] end
  end
  return bytes
end

local function parse_addr(s)
  s = s:gsub("^%[(.*)%]$", "%1")
  return parse_v4(s) or parse_v6(s), parse_v4(s) ~= nil
end

-- "10.0.0.0/8" -> {bytes, prefix bits (of 128)}
local function parse_net(s)
  local addr, bits = s:match("^(.-)/(%d+)$")
  addr = addr or s
  local bytes, v4 = parse_addr(addr)
  if not bytes then return nil end
  bits = tonumber(bits) or (v4 and 32 or 128)
  if v4 then bits = bits + 96 end
  if bits > 128 then return nil end
  return { bytes = bytes, bits = bits }
end

local function in_net(bytes, net)
  local bits = net.bits
  for i = 1, 16 do
    if bits <= 0 then return true end
    local mask = bits >= 8 and 255 or (0xff << (8 - bits)) & 255
    if (bytes[i] & mask) ~= (net.bytes[i] & mask) then return false end
    bits = bits - 8
  end
  return true
end

local function kite_matches(pattern, kite)
  pattern, kite = pattern:lower(), kite:lower()
  if pattern == "*" or pattern == kite then return true end
  local suffix = pattern:match("^%*(%..+)$")
  return suffix ~= nil and #kite > #suffix and kite:sub(-#suffix) == suffix
end

-- Rules from the settings.
local allow, auth = {}, {}
for _, value in ipairs(pk.setting_list("access.allow")) do
  for _, rule in ipairs(split(value, ";")) do
    local kite, list = rule:match("^([^:]+):(.+)$")
    if not kite then error("access.allow: want KITE:ADDR,..., got " .. rule) end
    local nets = {}
    for _, a in ipairs(split(list, ",")) do
      local net = parse_net(a)
      if not net then error("access.allow: bad address " .. a) end
      nets[#nets + 1] = net
    end
    allow[#allow + 1] = { kite = kite, nets = nets }
  end
end
for _, value in ipairs(pk.setting_list("access.auth")) do
  for _, rule in ipairs(split(value, ";")) do
    local kite, user, pass = rule:match("^([^:]+):([^:]+):(.*)$")
    if not kite then error("access.auth: want KITE:USER:PASSWORD, got " .. rule) end
    auth[#auth + 1] = { kite = kite, user = user, pass = pass }
  end
end
if #allow == 0 and #auth == 0 then
  pk.log_debug("access: no rules")
  return
end

local B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local B64IDX = {}
for i = 1, #B64 do B64IDX[B64:sub(i, i)] = i - 1 end

local function b64decode(s)
  s = s:gsub("%s", ""):gsub("=+$", "")
  if #s > 1024 or s:find("[^%w+/]") then return nil end
  local out, acc, nbits = {}, 0, 0
  for i = 1, #s do
    acc = (acc << 6) | B64IDX[s:sub(i, i)]
    nbits = nbits + 6
    if nbits >= 8 then
      nbits = nbits - 8
      out[#out + 1] = string.char((acc >> nbits) & 255)
    end
  end
  return table.concat(out)
end

-- Compares without stopping at the first difference.
local function same(a, b)
  if #a ~= #b then return false end
  local diff = 0
  for i = 1, #a do diff = diff | (a:byte(i) ~ b:byte(i)) end
  return diff == 0
end

local realm_setting = pk.settings["access.realm"]

pk.on_stream(function(s)
  local ip = parse_addr(s.remote_ip)
  for _, rule in ipairs(allow) do
    if kite_matches(rule.kite, s.kite) then
      local ok = false
      for _, net in ipairs(rule.nets) do
        if ip and in_net(ip, net) then ok = true break end
      end
      if not ok then
        pk.log_info(string.format("access: %s denied for %s", s.kite, s.remote_ip))
        return { reject = 403, reason = "Forbidden",
          body = "<h1>403 Forbidden</h1><p>Your address may not visit this site.</p>\n" }
      end
      break
    end
  end
  local users
  for _, rule in ipairs(auth) do
    if kite_matches(rule.kite, s.kite) then
      users = users or {}
      users[#users + 1] = rule
    end
  end
  if not users then return nil end
  local creds = (s.headers.authorization or ""):match("^[Bb]asic%s+(%S+)")
  local decoded = creds and b64decode(creds)
  if decoded then
    local user, pass = decoded:match("^([^:]*):(.*)$")
    for _, rule in ipairs(users) do
      if user and same(user, rule.user) and same(pass, rule.pass) then
        return { del_headers = { "Authorization" } } -- the origin does not need the password
      end
    end
  end
  local realm = (realm_setting or s.kite):gsub('[%c"\\]', "")
  return { reject = 401, reason = "Unauthorized",
    body = "<h1>401 Unauthorized</h1><p>This site needs a user name and password.</p>\n",
    headers = { ["WWW-Authenticate"] = 'Basic realm="' .. realm .. '"' } }
end)

pk.log_info(string.format("access: %d allow rule(s), %d user(s)", #allow, #auth))
