#!/bin/sh
# doc/man/generate.sh BUILD_DIR [OUT_DIR] - write pagekitec.1 and pagekiter.1
# (default: next to this script) from ONE source per page: the tool's own
# --help and --version output (c/tools/pagekitec.c, c/tools/pagekiter_opts.c)
# run through help2man, plus the extra sections in doc/man/TOOL.h2m (files,
# the service, see also).  The pages are committed so a build without
# help2man still installs them (CMakeLists.txt: install to share/man/man1);
# after changing a --help text, rerun this and commit the result.
# tests/e2e/test_man_pages.py checks every option in --help is in the page;
# tests/install/stage_deb.sh regenerates the pages and diffs them against the
# committed ones (all but the .TH line, which carries the date).
set -eu
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:?usage: generate.sh BUILD_DIR [OUT_DIR]}"
out="${2:-$here}"
command -v help2man >/dev/null || { echo "generate.sh: help2man is not installed (apt-get install help2man)" >&2; exit 1; }
mkdir -p "$out"
for tool in pagekitec pagekiter; do
  bin="$build/$tool"
  [ -x "$bin" ] || { echo "generate.sh: no $bin (build the tools first)" >&2; exit 1; }
  # "pagekitec (libpagekite reborn) 0.92.261125C, library 0.92.0" -> 0.92.0
  version="$("$bin" --version | sed -n 's/.*library \([0-9][0-9.]*\).*/\1/p')"
  [ -n "$version" ] || { echo "generate.sh: cannot read the version from $bin --version" >&2; exit 1; }

  LC_ALL=C.UTF-8 help2man --no-info --no-discard-stderr \
    --source="libpagekite $version" --version-string="$version" \
    --include="$here/$tool.h2m" --output="$out/$tool.1" "$bin"
done
