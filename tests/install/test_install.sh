#!/bin/sh
# Installs the build into a scratch prefix, then builds consumer.c twice:
# with pkg-config and with find_package(PageKite).
set -eu
BUILD="$1"; SRC="$2"
T="$(mktemp -d)"; trap 'rm -rf "$T"' EXIT
cmake --install "$BUILD" --prefix "$T/prefix" >/dev/null
test -f "$T/prefix/include/pagekite.h"
ls "$T"/prefix/lib*/libpagekite.so.1 >/dev/null
# pagekiter's service files (PK_INSTALL_SERVICE): the unit names the
# configured prefix's binary and configuration directory.
if [ -x "$T/prefix/bin/pagekiter" ]; then
  U="$T/prefix/lib/systemd/system/pagekiter.service"
  grep -Eq '^ExecStart=/.*/bin/pagekiter --clean --optdir=/.*/pagekiter\.d$' "$U"
  grep -q '^u pagekiter ' "$T/prefix/lib/sysusers.d/pagekiter.conf"
  grep -q 'secrets.rc 0600 pagekiter' "$T/prefix/lib/tmpfiles.d/pagekiter.conf"
  ls "$T"/prefix/share/doc/*/examples/pagekiter.d/10-relay.rc >/dev/null
  ls "$T"/prefix/share/doc/*/examples/pagekiter.logrotate >/dev/null
fi
PKG_CONFIG_PATH="$(echo "$T"/prefix/lib*/pkgconfig)"
export PKG_CONFIG_PATH
cc -Wall -Werror -o "$T/c1" "$SRC/consumer.c" $(pkg-config --cflags --libs pagekite)
LD_LIBRARY_PATH="$(echo "$T"/prefix/lib*)" "$T/c1"
cmake -S "$SRC" -B "$T/cb" -DCMAKE_PREFIX_PATH="$T/prefix" >/dev/null
cmake --build "$T/cb" >/dev/null
LD_LIBRARY_PATH="$(echo "$T"/prefix/lib*)" "$T/cb/consumer"
