# Shared helpers for the install stage (tests/install/run.sh sources this in
# every tests/install/stage_*.sh).  A stage is run as
#     bash tests/install/stage_NAME.sh
# with SRC (the source tree), BUILD (a release build of it: its pagekiter is
# the relay every artifact flies a kite through), VENV (the test venv) and
# PK_STAGE_TMP (a scratch directory removed afterwards) in the environment.
# A stage exits 0 when its artifact was built, installed into a clean place
# and flew a kite; anything else is a failure.  A stage may declare the
# Debian packages it needs on a line "# debs: pkg1 pkg2" (./run install-test
# installs them first).

set -euo pipefail

PK_PIDS=()

pk_log() { printf '[install:%s] %s\n' "${PK_STAGE:-?}" "$*" >&2; }
pk_fail() { pk_log "FAIL: $*"; exit 1; }

pk_cleanup() {
  local p
  for p in "${PK_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PK_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  PK_PIDS=()
}
trap pk_cleanup EXIT

pk_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# pk_origin TOKEN -> sets ORIGIN_PORT; serves a page containing TOKEN.
pk_origin() {
  local dir="$PK_STAGE_TMP/origin.$RANDOM"
  mkdir -p "$dir"
  printf '<html><body>%s</body></html>\n' "$1" >"$dir/index.html"
  ORIGIN_PORT="$(pk_free_port)"
  python3 -m http.server "$ORIGIN_PORT" --bind 127.0.0.1 --directory "$dir" >/dev/null 2>&1 &
  PK_PIDS+=($!)
  pk_wait_port "$ORIGIN_PORT"
}

# pk_relay KITE SECRET [PAGEKITER] -> sets RELAY_PORT; a plain-TCP relay on
# loopback that accepts KITE (http) with SECRET.
pk_relay() {
  local kite="$1" secret="$2" bin="${3:-$BUILD/pagekiter}"
  RELAY_PORT="$(pk_free_port)"
  "$bin" --listen=127.0.0.1 --ports="$RELAY_PORT" --domain="http:$kite:$secret" -q \
    >/dev/null 2>"$PK_STAGE_TMP/relay.$RELAY_PORT.log" &
  PK_PIDS+=($!)
  pk_wait_port "$RELAY_PORT" || { cat "$PK_STAGE_TMP/relay.$RELAY_PORT.log" >&2; return 1; }
}

pk_wait_port() {
  local port="$1" i
  for i in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    sleep 0.1
  done
  pk_log "nothing listens on 127.0.0.1:$port after 10 s"
  return 1
}

# pk_expect_page PORT HOST TOKEN [SECONDS]: the relay on PORT serves HOST's
# page with TOKEN in it (retries while the kite comes up; default 20 s).
pk_expect_page() {
  local port="$1" host="$2" token="$3" secs="${4:-20}" body="" i
  for i in $(seq 1 $((secs * 4))); do
    body="$(curl -s --max-time 2 -H "Host: $host" "http://127.0.0.1:$port/" || true)"
    case "$body" in *"$token"*) pk_log "kite $host flew: page with $token through 127.0.0.1:$port"; return 0 ;; esac
    sleep 0.25
  done
  pk_log "no page with $token from $host via 127.0.0.1:$port after ${secs}s; last body: ${body:0:200}"
  return 1
}

# pk_token -> a random token for a page.
pk_token() { echo "tok-$(openssl rand -hex 8)"; }
