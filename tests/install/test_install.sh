#!/bin/sh
# Installs the build into a scratch prefix, then builds consumer.c four ways:
# pkg-config and find_package(PageKite), each shared and static (a static link
# of a Lua-enabled library needs Lua: pagekite.pc's Requires.private and
# PageKiteConfig.cmake name it).  tests/install/stage_link.sh does the same
# with and without Lua and flies a kite with each.
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
# Static: the archive, then everything it needs (pkg-config --static).
LIBDIR="$(dirname "$PKG_CONFIG_PATH")"
cc -Wall -Werror -o "$T/c2" "$SRC/consumer.c" $(pkg-config --cflags pagekite) \
  "$LIBDIR/libpagekite.a" -Wl,--as-needed $(pkg-config --static --libs pagekite)
static_only() { # a static consumer must not need libpagekite.so
  if readelf -d "$1" | grep -q 'NEEDED.*libpagekite'; then echo "$1 needs libpagekite.so" >&2; exit 1; fi
}
static_only "$T/c2"
"$T/c2"
cmake -S "$SRC" -B "$T/cs" -DCMAKE_PREFIX_PATH="$T/prefix" -DPK_CONSUMER_STATIC=ON >/dev/null
cmake --build "$T/cs" >/dev/null
static_only "$T/cs/consumer"
"$T/cs/consumer"
# The installed tools find the library through their $ORIGIN RUNPATH
# (unless the build turned it off: -DPK_INSTALL_RPATH=OFF).
if [ -x "$T/prefix/bin/pagekitec" ] && grep -q '^PK_INSTALL_RPATH:BOOL=ON' "$BUILD/CMakeCache.txt" &&
   ! grep -q '^CMAKE_SKIP_INSTALL_RPATH:BOOL=ON' "$BUILD/CMakeCache.txt"; then
  env -u LD_LIBRARY_PATH "$T/prefix/bin/pagekitec" --help >/dev/null
fi
