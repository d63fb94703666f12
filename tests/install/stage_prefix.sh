#!/usr/bin/env bash
# A relocatable installed tree: `cmake --install` into a prefix other than
# /usr, moved elsewhere afterwards, and with no LD_LIBRARY_PATH (RUNPATH
# relative to $ORIGIN):
#   - the installed pagekitec flies a kite through the installed pagekiter;
#   - every installed binary (tools, Lua module, JNI library when built)
#     resolves libpagekite.so.1 inside the moved prefix;
#   - the installed Lua module is `require`d with LUA_CPATH naming only the
#     moved prefix's lib/lua/5.4, and runs a relay whose web_ui and access
#     settings need the default Lua plugins: the library finds them in the
#     moved prefix (and fails without them there).
source "$(dirname "$0")/lib.sh"
unset LD_LIBRARY_PATH LUA_PATH LUA_CPATH LUA_INIT LUA_INIT_5_4
P="$PK_STAGE_TMP/first/prefix"
cmake --install "$BUILD" --prefix "$P" >/dev/null
mv "$PK_STAGE_TMP/first" "$PK_STAGE_TMP/moved"; P="$PK_STAGE_TMP/moved/prefix"
cd "$PK_STAGE_TMP"
"$P/bin/pagekitec" --help >/dev/null 2>&1 || pk_fail "installed pagekitec does not start: $("$P/bin/pagekitec" --help 2>&1 | head -2)"

# Each installed ELF file that needs libpagekite finds it in the moved prefix.
LIBDIR="$(dirname "$(echo "$P"/lib*/libpagekite.so.1)")"
checked=0
for f in "$P"/bin/* "$LIBDIR"/lua/5.4/*.so "$LIBDIR"/jni/libpagekite_jni.so; do
  [ -f "$f" ] || continue
  readelf -d "$f" 2>/dev/null | grep -q 'NEEDED.*libpagekite\.so\.1' || continue
  where="$(ldd "$f" | awk '$1 == "libpagekite.so.1" {print $3}')"
  [ -n "$where" ] && [ "$(realpath "$where")" = "$(realpath "$LIBDIR/libpagekite.so.1")" ] ||
    pk_fail "$f: libpagekite.so.1 resolves to '${where:-nothing}', not $LIBDIR/libpagekite.so.1 ($(readelf -d "$f" | grep -E 'R(UN)?PATH' || echo 'no RUNPATH'))"
  checked=$((checked + 1))
done
[ "$checked" -ge 3 ] || pk_fail "only $checked installed binaries link libpagekite (want pagekitec, pagekiter, the Lua module)"
pk_log "$checked installed binaries find libpagekite.so.1 in the moved prefix"

secret="$(openssl rand -hex 16)"; tok="$(pk_token)"
pk_origin "$tok"
pk_relay prefix.localhost "$secret" "$P/bin/pagekiter"
"$P/bin/pagekitec" -q --frontend "127.0.0.1:$RELAY_PORT" "127.0.0.1:$ORIGIN_PORT" http \
  prefix.localhost 0 "$secret" >/dev/null 2>"$PK_STAGE_TMP/c.log" &
PK_PIDS+=($!)
pk_expect_page "$RELAY_PORT" prefix.localhost "$tok"

# The Lua module from the moved prefix: a relay with the default plugins.
[ -f "$LIBDIR/lua/5.4/pagekite.so" ] || pk_fail "no Lua module installed in $LIBDIR/lua/5.4"
cat >"$PK_STAGE_TMP/relay.lua" <<'EOF'
local pagekite = require "pagekite"
local port, ui, secret = tonumber(arg[1]), tonumber(arg[2]), arg[3]
print("module " .. package.searchpath("pagekite", package.cpath))
local relay <close> = pagekite.relay{app_id = "prefix-lua", max_conns = 64}
assert(relay:add_listener("127.0.0.1", port))
assert(relay:add_domain{protos = "http", pattern = "*.lua.localhost", secret = secret})
-- web_ui= and access.* settings load the default plugins (web_ui.lua, access.lua).
assert(relay:enable_lua_plugins(false, {web_ui = "127.0.0.1:" .. ui,
                                        ["access.allow"] = "deny.lua.localhost:10.0.0.0/8"}))
local ok, err = relay:start()
if not ok then print("start failed: " .. tostring(err)); os.exit(3) end
print("ready")
io.stdout:flush()
local deadline = os.time() + 120
while os.time() < deadline do relay:poll(1) end
EOF
export LUA_CPATH="$LIBDIR/lua/5.4/?.so"
lua_relay() { # lua_relay PORT UI LOG -> starts it, LUA_PID
  lua5.4 "$PK_STAGE_TMP/relay.lua" "$1" "$2" "$secret" >"$3" 2>&1 &
  LUA_PID=$!; PK_PIDS+=("$LUA_PID")
}
# Without the moved prefix's plugins the relay cannot start: the plugins the
# relay uses below come from there (not from the configured prefix).
mv "$P/share/libpagekite/lua/plugins" "$PK_STAGE_TMP/plugins.aside"
lua_relay "$(pk_free_port)" "$(pk_free_port)" "$PK_STAGE_TMP/lua0.log"
rc=0; timeout 20 tail --pid="$LUA_PID" -f /dev/null || rc=$?
[ "$rc" -eq 0 ] && grep -q 'start failed: .*web_ui\.lua' "$PK_STAGE_TMP/lua0.log" ||
  pk_fail "the Lua relay did not fail without the moved prefix's plugins: $(head -c 600 "$PK_STAGE_TMP/lua0.log")"
mv "$PK_STAGE_TMP/plugins.aside" "$P/share/libpagekite/lua/plugins"

LPORT="$(pk_free_port)"; UI="$(pk_free_port)"
lua_relay "$LPORT" "$UI" "$PK_STAGE_TMP/lua.log"
for _ in $(seq 1 100); do grep -q '^ready$\|start failed\|error' "$PK_STAGE_TMP/lua.log" && break; sleep 0.1; done
grep -q '^ready$' "$PK_STAGE_TMP/lua.log" || pk_fail "the installed Lua module's relay did not start: $(head -c 600 "$PK_STAGE_TMP/lua.log")"
grep -qx "module $LIBDIR/lua/5.4/pagekite.so" "$PK_STAGE_TMP/lua.log" ||
  pk_fail "require \"pagekite\" did not load the moved prefix's module: $(head -1 "$PK_STAGE_TMP/lua.log")"
"$P/bin/pagekitec" -q --frontend "127.0.0.1:$LPORT" \
  "127.0.0.1:$ORIGIN_PORT" http ok.lua.localhost 0 "$secret" \
  "127.0.0.1:$ORIGIN_PORT" http deny.lua.localhost 0 "$secret" >/dev/null 2>"$PK_STAGE_TMP/c2.log" &
PK_PIDS+=($!)
pk_expect_page "$LPORT" ok.lua.localhost "$tok"
# access.lua: 127.0.0.1 is not in deny.lua.localhost's allow list.
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Host: deny.lua.localhost' "http://127.0.0.1:$LPORT/")"
[ "$code" = 403 ] || pk_fail "access plugin: deny.lua.localhost answered $code, not 403"
# web_ui.lua: the status page lists the kites.
status="$(curl -s --max-time 5 -H 'Host: localhost' "http://127.0.0.1:$UI/status.json")"
case "$status" in *'"ok.lua.localhost"'*) ;; *) pk_fail "web_ui status.json without the kite: ${status:0:300}" ;; esac
pk_log "the moved prefix's Lua module ran a relay with its default plugins (access: 403, web_ui: status.json)"
