#!/usr/bin/env bash
# A relocatable installed tree: `cmake --install` into a prefix other than
# /usr, moved elsewhere afterwards, and the installed pagekitec flies a kite
# through pagekiter with no LD_LIBRARY_PATH (RPATH relative to $ORIGIN).
source "$(dirname "$0")/lib.sh"
P="$PK_STAGE_TMP/first/prefix"
cmake --install "$BUILD" --prefix "$P" >/dev/null
mv "$PK_STAGE_TMP/first" "$PK_STAGE_TMP/moved"; P="$PK_STAGE_TMP/moved/prefix"
unset LD_LIBRARY_PATH
"$P/bin/pagekitec" --help >/dev/null 2>&1 || pk_fail "installed pagekitec does not start: $("$P/bin/pagekitec" --help 2>&1 | head -2)"
secret="$(openssl rand -hex 16)"; tok="$(pk_token)"
pk_origin "$tok"
pk_relay prefix.localhost "$secret" "$P/bin/pagekiter"
"$P/bin/pagekitec" -q --frontend "127.0.0.1:$RELAY_PORT" "127.0.0.1:$ORIGIN_PORT" http \
  prefix.localhost 0 "$secret" >/dev/null 2>"$PK_STAGE_TMP/c.log" &
PK_PIDS+=($!)
pk_expect_page "$RELAY_PORT" prefix.localhost "$tok"
