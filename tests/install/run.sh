#!/usr/bin/env bash
# The install stage: every tests/install/stage_*.sh (or the ones named on the
# command line, e.g. `tests/install/run.sh python node`) builds its artifact,
# installs it into a clean place and flies a kite through it.  Needs SRC,
# BUILD and VENV in the environment (./run install-test sets them).
set -uo pipefail
exec 2>&1
HERE="$(cd "$(dirname "$0")" && pwd)"
: "${SRC:=$(cd "$HERE/../.." && pwd)}" "${BUILD:=$SRC/build}" "${VENV:=$SRC/.venv}"
export SRC BUILD VENV
stages=()
if [ $# -gt 0 ]; then
  for n in "$@"; do stages+=("$HERE/stage_$n.sh"); done
else
  for f in "$HERE"/stage_*.sh; do [ -e "$f" ] && stages+=("$f"); done
fi
pass=0 fail=0 failed=()
for s in "${stages[@]}"; do
  name="$(basename "$s" .sh)"; name="${name#stage_}"
  tmp="$(mktemp -d -t "pk-install-$name.XXXXXX")"
  start=$SECONDS
  printf '[install] %s: start\n' "$name" >&2
  if PK_STAGE="$name" PK_STAGE_TMP="$tmp" timeout 1200 bash "$s"; then
    pass=$((pass + 1)); printf '[install] %s: PASS (%ss)\n' "$name" $((SECONDS - start)) >&2
  else
    fail=$((fail + 1)); failed+=("$name"); printf '[install] %s: FAIL (%ss)\n' "$name" $((SECONDS - start)) >&2
  fi
  rm -rf "$tmp"
done
printf '[install] %d passed, %d failed%s\n' "$pass" "$fail" "${failed:+ (${failed[*]})}"
[ "$fail" -eq 0 ]
