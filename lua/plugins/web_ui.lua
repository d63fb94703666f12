-- web_ui.lua - status pages on a local HTTP port.
--
-- Setting: web_ui=HOST:PORT (default 127.0.0.1:3173 when loaded as a default
-- plugin; "off" disables).  IPv6 hosts go in brackets: web_ui=[::1]:3173.
--   /              human-readable status (HTML)
--   /status.json   the same as JSON
--   /metrics       Prometheus text format
-- Only answers GET/HEAD; everything is read-only.

local where = pk.settings.web_ui or "127.0.0.1:3173"
if where == "off" or where == "0" or where == "" then
  pk.log_debug("web UI disabled")
  return
end

local host, port = where:match("^%[(.+)%]:(%d+)$")
if not host then host, port = where:match("^(.+):(%d+)$") end
if not host then
  error("web_ui: want HOST:PORT, got " .. where)
end

local ARRAY = {} -- metatable marking a table that is a JSON array even when empty

local function json(v)
  local t = type(v)
  if t == "table" then
    if #v > 0 or getmetatable(v) == ARRAY then
      local out = {}
      for i = 1, #v do out[i] = json(v[i]) end
      return "[" .. table.concat(out, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    table.sort(keys)
    local out = {}
    for _, k in ipairs(keys) do out[#out + 1] = json(k) .. ":" .. json(v[k]) end
    return "{" .. table.concat(out, ",") .. "}"
  elseif t == "string" then
    return '"' .. v:gsub('[%c"\\]', function(c)
      local named = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
      return named[c] or string.format("\\u%04x", c:byte())
    end) .. '"'
  elseif t == "number" or t == "boolean" then
    return tostring(v)
  end
  return "null"
end

local function html_escape(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

local started = os.time()

local function snapshot()
  local st = pk.status()
  return {
    app_id = st.app_id,
    version = st.version,
    role = st.is_relay and "relay" or "connector",
    status = st.name,
    status_code = st.code,
    uptime_s = os.time() - started,
    kites = setmetatable(st.kites, ARRAY),
    counters = pk.counters(),
  }
end

local function metrics()
  local s = snapshot()
  local c = s.counters
  local out = {}
  local function metric(name, kind, help, value, labels)
    out[#out + 1] = "# HELP " .. name .. " " .. help
    out[#out + 1] = "# TYPE " .. name .. " " .. kind
    if type(value) == "table" then
      for _, row in ipairs(value) do out[#out + 1] = name .. row[1] .. " " .. row[2] end
    else
      out[#out + 1] = name .. (labels or "") .. " " .. tostring(value)
    end
  end
  local function esc(v) return (tostring(v):gsub('[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"', ["\n"] = "\\n" })) end
  metric("pagekite_info", "gauge", "Library version and role.", 1,
    string.format('{version="%s",role="%s",app_id="%s"}', esc(s.version), s.role, esc(s.app_id)))
  metric("pagekite_status_code", "gauge", "Manager status (PK_STATUS_*; 40 = flying).", s.status_code)
  metric("pagekite_kites", "gauge", "Kites configured (connector) or registered (relay).", #s.kites)
  metric("pagekite_kites_live", "gauge", "Kites currently live.", c.kites_live)
  metric("pagekite_tunnels", "gauge", "Open tunnels.", c.tunnels)
  metric("pagekite_streams", "gauge", "Streams in flight.", c.streams)
  metric("pagekite_streams_total", "counter", "Streams since start.", c.streams_total)
  metric("pagekite_bytes_in_total", "counter", "Bytes received.", c.bytes_in)
  metric("pagekite_bytes_out_total", "counter", "Bytes sent.", c.bytes_out)
  metric("pagekite_errors_total", "counter", "Errors logged.", c.errors)
  metric("pagekite_rejected_total", "counter", "Connections and streams rejected.", c.rejected)
  local rows = {}
  for _, k in ipairs(s.kites) do
    rows[#rows + 1] = { string.format('{proto="%s",kite="%s",port="%d"}', esc(k.proto), esc(k.name), k.port),
      k.state == "live" and 1 or 0 }
  end
  metric("pagekite_kite_up", "gauge", "1 when the kite is live.", rows)
  return table.concat(out, "\n") .. "\n"
end

local function page()
  local s = snapshot()
  local h = {
    "<!doctype html><html><head><meta charset=\"utf-8\"><title>PageKite status</title>",
    "<style>body{font-family:sans-serif;margin:2em}td,th{padding:.2em .8em;text-align:left}</style>",
    "</head><body>",
    "<h1>PageKite " .. html_escape(s.role) .. " <small>" .. html_escape(s.app_id) .. "</small></h1>",
    "<p>Status: <b>" .. html_escape(s.status) .. "</b> &middot; libpagekite " .. html_escape(s.version)
      .. " &middot; up " .. s.uptime_s .. " s</p>",
    "<h2>Kites</h2><table><tr><th>Protocol</th><th>Name</th><th>Port</th><th>State</th></tr>",
  }
  for _, k in ipairs(s.kites) do
    h[#h + 1] = string.format("<tr><td>%s</td><td>%s</td><td>%d</td><td>%s</td></tr>",
      html_escape(k.proto), html_escape(k.name), k.port, html_escape(k.state))
  end
  h[#h + 1] = "</table><h2>Counters</h2><table>"
  local names = {}
  for k in pairs(s.counters) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    h[#h + 1] = "<tr><td>" .. html_escape(k) .. "</td><td>" .. s.counters[k] .. "</td></tr>"
  end
  h[#h + 1] = "</table><p><a href=\"/status.json\">status.json</a> &middot; <a href=\"/metrics\">metrics</a></p>"
  h[#h + 1] = "</body></html>\n"
  return table.concat(h, "\n")
end

local routes = {
  ["/"] = function() return 200, "text/html; charset=utf-8", page() end,
  ["/status.json"] = function() return 200, "application/json", json(snapshot()) .. "\n" end,
  ["/metrics"] = function() return 200, "text/plain; version=0.0.4", metrics() end,
}

local bound, err = pk.http_listen(host, tonumber(port), function(req)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    return 405, "text/plain", "method not allowed\n"
  end
  local route = routes[(req.path:gsub("%?.*$", ""))]
  if not route then return 404, "text/plain", "not found\n" end
  return route()
end)
if not bound then error("web_ui: " .. err) end
pk.log_info(string.format("web UI on http://%s:%d/", host:find(":") and "[" .. host .. "]" or host, bound))
