#!/usr/bin/env bash
# tests/fleet/run.sh - the relay fleet test alone (issue 18; doc/FLEET.md).
# Needs root (network namespaces, port 53).  Installs what is missing
# (Debian), builds into $PK_BUILD_DIR (default ./build) if pagekitec is not
# there, and runs tests/fleet under a time bound.  Everything it creates is
# named pkf<random>-* and removed at the end, pass or fail.
#   tests/fleet/run.sh [pytest args...]      e.g. -k pkpy
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${PK_BUILD_DIR:-$ROOT/build}"
VENV="$ROOT/.venv"
[ "$(id -u)" -eq 0 ] || { echo "tests/fleet/run.sh: needs root (ip netns, port 53)" >&2; exit 2; }
DEBS=(iproute2 curl pagekite pdns-server pdns-backend-pipe pdns-backend-sqlite3 sqlite3
      bind9-dnsutils python3-dnspython)
missing=()
for p in "${DEBS[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -ne 0 ]; then
  echo "[fleet] installing ${missing[*]}" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}" >/dev/null
fi
if [ ! -x "$BUILD/pagekitec" ] || [ ! -x "$BUILD/pagekiter" ]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPK_BUILD_JAVA=OFF >/dev/null
  cmake --build "$BUILD" -j"$(nproc)" --target pagekitec pagekiter >/dev/null
fi
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q --disable-pip-version-check -r "$ROOT/tests/requirements.txt"
fi
cd "$ROOT"
PK_BUILD_DIR="$BUILD" exec timeout 600 "$PY" -m pytest -q -s -rxXs -p no:cacheprovider \
  tests/fleet "$@"
