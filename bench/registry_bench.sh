#!/bin/sh
# registry_bench.sh - compile and run bench/registry_bench.c: the relay's
# routing cost per connection for 10, 1,000 and 100,000 kites, against the
# linear scan it replaced.  Needs only a C compiler (registry.c is pure).
# An optional argument: seconds timed per row (default 0.3).
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
SRC="$HERE/../c/src"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
"${CC:-cc}" -std=c11 -O2 -Wall -Wextra -Werror -I"$SRC" -o "$OUT/registry_bench" \
  "$HERE/registry_bench.c" "$SRC/registry.c"
"$OUT/registry_bench" "$@"
