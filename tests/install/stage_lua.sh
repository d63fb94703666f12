#!/usr/bin/env bash
# The LuaRocks rock: `luarocks make` of lua/pagekite-VERSION-1.rockspec (in
# lua/ of a copy of the checkout) into a fresh tree; then, from a directory
# outside the repository and with only `luarocks path --tree` for the search
# paths, `require "pagekite"` flies a kite through our relay with the module's
# connector API, and the web_ui plugin (default plugins installed by the rock,
# found relative to pagekite.so) answers /status.json.
# debs: luarocks lua5.4 liblua5.4-dev libuv1-dev libssl-dev zlib1g-dev
source "$(dirname "$0")/lib.sh"
LUAROCKS=(luarocks --lua-version 5.4)
command -v luarocks >/dev/null || pk_fail "luarocks not found (Debian: apt-get install luarocks)"
command -v lua5.4 >/dev/null || pk_fail "lua5.4 not found"

# A copy of the checkout, as a user's: `luarocks make` builds in place.
W="$PK_STAGE_TMP/src"
mkdir -p "$W"
if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
  (cd "$SRC" && git ls-files -co --exclude-standard -z) | (cd "$SRC" && tar --null -T - -cf -) | tar -xf - -C "$W"
else
  tar -C "$SRC" --exclude='./build*' --exclude=./.venv --exclude=./node/node_modules -cf - . | tar -xf - -C "$W"
fi
version="$(sed -n 's/^project(libpagekite VERSION \([0-9.]*\).*/\1/p' "$W/CMakeLists.txt")"
rockspec="pagekite-$version-1.rockspec"
[ -f "$W/lua/$rockspec" ] || pk_fail "no lua/$rockspec for the project version $version"

TREE="$PK_STAGE_TMP/tree"
(cd "$W/lua" && nice -n 10 "${LUAROCKS[@]}" make --tree="$TREE" "$rockspec") >"$PK_STAGE_TMP/make.log" 2>&1 ||
  { tail -20 "$PK_STAGE_TMP/make.log" >&2; pk_fail "luarocks make failed"; }
listed="$("${LUAROCKS[@]}" list --tree="$TREE" --porcelain)"
grep -q "^pagekite	$version-1	installed" <<<"$listed" ||
  pk_fail "luarocks list does not show pagekite $version-1: $listed"
so="$TREE/lib/lua/5.4/pagekite.so"
[ -f "$so" ] || pk_fail "no $so"
for p in web_ui access; do
  [ -f "$TREE/share/lua/5.4/pagekite/plugins/$p.lua" ] || pk_fail "the rock did not install the $p plugin"
done
# Only the module and the plugins: nothing of lua/'s C sources as Lua modules.
extra="$(cd "$TREE" && find share lib/lua -type f | grep -v -e '^lib/lua/5.4/pagekite.so$' \
  -e '^share/lua/5.4/pagekite/plugins/[a-z_]*\.lua$' || true)"
[ -z "$extra" ] || pk_fail "the rock installed more than the module and plugins: $extra"
# Self-contained: the core is inside pagekite.so, no libpagekite needed.
deps="$(ldd "$so")" || pk_fail "ldd $so"
if grep -q libpagekite <<<"$deps"; then pk_fail "pagekite.so needs libpagekite: $deps"; fi

LPATH="$("${LUAROCKS[@]}" path --tree="$TREE" --lr-path)"
LCPATH="$("${LUAROCKS[@]}" path --tree="$TREE" --lr-cpath)"
unset LUA_PATH LUA_CPATH LUA_PATH_5_4 LUA_CPATH_5_4 LD_LIBRARY_PATH
OUT="$PK_STAGE_TMP/outside"
mkdir -p "$OUT"
cat >"$OUT/fly.lua" <<'EOF'
local relay_port, origin_port, kite, secret, ui_port, tree = table.unpack(arg)
local found = package.searchpath("pagekite", package.cpath)
assert(found and found:sub(1, #tree) == tree, "pagekite.so not from the tree: " .. tostring(found))
local pagekite = require "pagekite"
local K = pagekite.constants
-- pk_relay is plain TCP: ask for no TLS (the default flags mean TLS).
local conn <close> = pagekite.connector{app_id = "stage-lua", max_kites = 1, max_conns = 16,
                                        flags = K.PK_WITH_IPV4 | K.PK_WITH_IPV6}
assert(conn:add_kite{proto = "http", name = kite, secret = secret,
                     origin_host = "127.0.0.1", origin_port = tonumber(origin_port)})
assert(conn:add_frontend("127.0.0.1", tonumber(relay_port)))
assert(conn:enable_lua_plugins(false, {web_ui = "127.0.0.1:" .. ui_port}))
assert(conn:start())
assert(conn:wait_until("flying", 30))
print("flying " .. pagekite.version .. " " .. found)
io.stdout:flush()
local deadline = os.time() + 90        -- the stage kills it sooner
while os.time() < deadline do conn:poll(0.5) end
EOF

secret="$(openssl rand -hex 16)"; tok="$(pk_token)"; kite=lua.localhost
pk_origin "$tok"
pk_relay "$kite" "$secret"
ui_port="$(pk_free_port)"
(cd "$OUT" && exec lua5.4 -e "package.path='$LPATH'; package.cpath='$LCPATH'" fly.lua \
  "$RELAY_PORT" "$ORIGIN_PORT" "$kite" "$secret" "$ui_port" "$TREE") \
  >"$PK_STAGE_TMP/fly.out" 2>"$PK_STAGE_TMP/fly.err" &
PK_PIDS+=($!)
for i in $(seq 1 120); do
  grep -q '^flying' "$PK_STAGE_TMP/fly.out" 2>/dev/null && break
  kill -0 "${PK_PIDS[-1]}" 2>/dev/null || break
  sleep 0.25
done
grep -q '^flying' "$PK_STAGE_TMP/fly.out" ||
  { cat "$PK_STAGE_TMP/fly.out" "$PK_STAGE_TMP/fly.err" >&2; pk_fail "the Lua connector did not fly"; }
pk_log "$(cat "$PK_STAGE_TMP/fly.out")"
pk_expect_page "$RELAY_PORT" "$kite" "$tok"
status="$(curl -s --max-time 5 "http://127.0.0.1:$ui_port/status.json" || true)"
case "$status" in
  *"$kite"*) pk_log "web_ui plugin from the rock: /status.json lists $kite" ;;
  *) cat "$PK_STAGE_TMP/fly.err" >&2; pk_fail "web_ui plugin: no $kite in /status.json: ${status:0:300}" ;;
esac
