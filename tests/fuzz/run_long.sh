#!/usr/bin/env bash
# run_long.sh - long fuzzing campaign: each target for RUNS executions (default
# 10 million), JOBS targets at a time (default 2), starting from the checked-in
# corpus plus a scratch corpus in WORK (default /tmp/pk-fuzz).  Prints one
# summary line per target: execs, cov, ft, crashes.
#   tests/fuzz/run_long.sh [target ...]
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${PK_BUILD_DIR:-$ROOT/build}/fuzz"
RUNS="${RUNS:-10000000}"
JOBS="${JOBS:-2}"
WORK="${WORK:-/tmp/pk-fuzz}"
"$HERE/build.sh" "$OUT" >/dev/null || exit 3
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(frame chunk http_head classify tunnel httpfwd session handshake proxy)
mkdir -p "$WORK"
one() {
  local t="$1" bin="$OUT/fuzz_$1"
  [ -x "$bin" ] || { echo "$t: not built"; return 0; }
  mkdir -p "$WORK/$t" "$WORK/$t.crashes"
  local start=$SECONDS
  "$bin" -runs="$RUNS" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$WORK/$t.crashes/" "$WORK/$t" "$HERE/corpus/$t" >"$WORK/$t.log" 2>&1
  local rc=$?
  local done_line execs
  done_line="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$WORK/$t.log" | tail -1)"
  execs="$(grep -E 'stat::number_of_executed_units' "$WORK/$t.log" | awk '{print $2}')"
  echo "$t: rc=$rc execs=${execs:-?} secs=$((SECONDS - start)) $(echo "$done_line" | grep -oE 'cov: [0-9]+ ft: [0-9]+') crashes=$(ls "$WORK/$t.crashes" | wc -l)"
}
export -f one
export OUT RUNS WORK HERE
printf '%s\n' "${TARGETS[@]}" | xargs -P "$JOBS" -I{} bash -c 'one {}'
