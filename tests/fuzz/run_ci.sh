#!/usr/bin/env bash
# run_ci.sh - CI fuzz smoke: build every target, replay the checked-in corpus
# and fuzz each target for FUZZ_SECONDS (default 20), two at a time.
# Exits 0 when no target crashed, 1 on a crash (the crashing input is kept in
# $OUT/ci-crashes/<target>/ and its report printed), 3 when clang is missing.
set -uo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="${PK_BUILD_DIR:-$ROOT/build}/fuzz"
SECS="${FUZZ_SECONDS:-20}"
JOBS="${FUZZ_JOBS:-2}"
"$HERE/build.sh" "$OUT" >/dev/null || exit 3
SCRATCH="$(mktemp -d)"
trap 'rm -rf "$SCRATCH"' EXIT
rm -rf "$OUT/ci-crashes"
one() {
  local t="$1" bin="$OUT/fuzz_$1"
  [ -x "$bin" ] || { echo "fuzz_$t: not built" >&2; return 1; }
  mkdir -p "$SCRATCH/$t" "$OUT/ci-crashes/$t"
  "$bin" -max_total_time="$SECS" -print_final_stats=1 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="$OUT/ci-crashes/$t/" "$SCRATCH/$t" "$HERE/corpus/$t" >"$SCRATCH/$t.log" 2>&1
  local rc=$?
  local execs cov
  execs="$(awk '/stat::number_of_executed_units/ {print $2}' "$SCRATCH/$t.log")"
  cov="$(grep -E '^#[0-9]+' "$SCRATCH/$t.log" | tail -1 | grep -oE 'cov: [0-9]+ ft: [0-9]+')"
  if [ $rc -ne 0 ]; then
    echo "fuzz_$t: FAILED rc=$rc execs=${execs:-?}"
    grep -E 'ERROR|SUMMARY|runtime error|Test unit written|leak' "$SCRATCH/$t.log" | head -20
    return 1
  fi
  echo "fuzz_$t: ok execs=${execs:-?} $cov"
}
export -f one
export OUT SECS SCRATCH HERE
if printf '%s\n' frame chunk http_head classify tunnel httpfwd session handshake proxy proxyproto authapp | xargs -P "$JOBS" -I{} bash -c 'one {}'; then
  echo "fuzz smoke: all targets ok"
  exit 0
fi
echo "fuzz smoke: a target crashed (inputs in $OUT/ci-crashes/)"
exit 1
