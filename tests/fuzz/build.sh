#!/usr/bin/env bash
# build.sh - build the libFuzzer targets with ASan + UBSan.
#   tests/fuzz/build.sh [OUTDIR]     (default: $PK_BUILD_DIR/fuzz or build/fuzz)
# Needs clang with libFuzzer (Debian: clang-14 libclang-rt-14-dev).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${1:-${PK_BUILD_DIR:-$ROOT/build}/fuzz}"
CC="${FUZZ_CC:-}"
if [ -z "$CC" ]; then
  for c in clang-14 clang; do command -v "$c" >/dev/null && { CC="$c"; break; }; done
fi
[ -n "$CC" ] || { echo "build.sh: clang not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 3; }
mkdir -p "$OUT"
SRC="$ROOT/c/src"
FLAGS=(-std=c11 -g -O1 -fno-omit-frame-pointer -Wall -Wextra -Werror -Wno-unused-parameter
       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -D_GNU_SOURCE -I"$SRC" -I"$ROOT/c/include")
pids=()
for t in frame chunk http_head classify; do
  "$CC" "${FLAGS[@]}" -o "$OUT/fuzz_$t" "$HERE/fuzz_$t.c" "$SRC/wire.c" &
  pids+=($!)
done
# The outgoing proxy handshake (proxy.c): proxy answers in pieces.
"$CC" "${FLAGS[@]}" -o "$OUT/fuzz_proxy" "$HERE/fuzz_proxy.c" "$SRC/proxy.c" &
pids+=($!)
# PROXY protocol headers from load balancers (proxyproto.c), in pieces.
"$CC" "${FLAGS[@]}" -o "$OUT/fuzz_proxyproto" "$HERE/fuzz_proxyproto.c" "$SRC/proxyproto.c" &
pids+=($!)
# An auth app's output (authapp_proto.c): server lines, --auth/--zk-auth JSON.
"$CC" "${FLAGS[@]}" -o "$OUT/fuzz_authapp" "$HERE/fuzz_authapp.c" "$SRC/authapp_proto.c" \
  "$SRC/authdns.c" "$SRC/wire.c" "$SRC/wire_enc.c" -lz &
pids+=($!)
# The forwarding-header rewriter (httpfwd.c) is pure too.
"$CC" "${FLAGS[@]}" -o "$OUT/fuzz_httpfwd" "$HERE/fuzz_httpfwd.c" "$SRC/httpfwd.c" "$SRC/wire.c" &
pids+=($!)
# The protocol session (session.c) against a peer session, no sockets.  A
# session links its handshake half (handshake.c) and kite authentication.
SESSION=("$SRC/session.c" "$SRC/handshake.c" "$SRC/kiteauth.c" "$SRC/sign.c" "$SRC/replay.c"
         "$SRC/wire.c" "$SRC/wire_enc.c")
"$CC" "${FLAGS[@]}" -o "$OUT/fuzz_session" "$HERE/fuzz_session.c" "${SESSION[@]}" -lz -lcrypto &
pids+=($!)
# The handshake and kite authentication: a connector session and a relay
# session against each other and against raw bytes.  (The two bugs it found
# are fixed; its FUZZ_HANDSHAKE_KNOWN_* macros are no longer passed.)
"$CC" "${FLAGS[@]}" -o "$OUT/fuzz_handshake" "$HERE/fuzz_handshake.c" "${SESSION[@]}" -lz -lcrypto &
pids+=($!)
# The tunnel target links the whole core (minus the Lua plugin host).
tunnel_is_strict=0
if [ -f "$HERE/fuzz_tunnel.c" ]; then
  CORE=()
  for f in "$SRC"/*.c; do
    case "$f" in */plugins_*.c) ;; *) CORE+=("$f") ;; esac
  done
  CORE+=("$SRC/plugins_none.c")
  LIBS=$(pkg-config --cflags --libs libuv libssl libcrypto zlib)
  # fuzz_tunnel steps over the known, reported bugs listed in
  # known_bugs.ignorelist so that a campaign can go past them;
  # fuzz_tunnel_strict does not (the regression inputs run against it).
  # shellcheck disable=SC2086
  "$CC" "${FLAGS[@]}" -DPK_BUILDING -o "$OUT/fuzz_tunnel_strict" "$HERE/fuzz_tunnel.c" \
    "${CORE[@]}" $LIBS -lpthread &
  pids+=($!)
  if grep -qv '^[[:space:]]*\(#\|$\)' "$HERE/known_bugs.ignorelist"; then
    # shellcheck disable=SC2086
    "$CC" "${FLAGS[@]}" -fsanitize-ignorelist="$HERE/known_bugs.ignorelist" -DPK_BUILDING \
      -o "$OUT/fuzz_tunnel" "$HERE/fuzz_tunnel.c" "${CORE[@]}" $LIBS -lpthread &
    pids+=($!)
  else
    tunnel_is_strict=1 # nothing to step over: one build serves both names
  fi
fi
rc=0
for p in "${pids[@]}"; do wait "$p" || rc=1; done
if [ "${tunnel_is_strict:-0}" = 1 ] && [ $rc -eq 0 ]; then
  ln -sf fuzz_tunnel_strict "$OUT/fuzz_tunnel"
fi
[ $rc -eq 0 ] || { echo "build.sh: a fuzz target failed to build" >&2; exit 1; }
echo "$OUT"
