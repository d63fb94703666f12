#!/usr/bin/env bash
# The Debian packages (debian/): built with `dpkg-buildpackage -us -uc -b` from
# a copy of SRC (the repository tree stays clean), lintian-clean, extracted
# into a scratch root with `dpkg -x` (the host's dpkg database is never
# touched), and flown: the extracted pagekitec through the extracted
# pagekiter, and a kite through the extracted Lua module.
# debs: debhelper dpkg-dev fakeroot lintian help2man man-db systemd cmake ninja-build pkg-config libuv1-dev libssl-dev zlib1g-dev liblua5.4-dev lua5.4 gcc
#
# LD_LIBRARY_PATH: the extracted programs find libpagekite.so.1 in
# ROOT/usr/lib/<triplet> through LD_LIBRARY_PATH.  That is the extraction's
# doing, not the package's: installed for real, the library is in
# /usr/lib/<triplet>, which is on the loader's default path (the packages
# are built without RUNPATH, as Debian wants).
source "$(dirname "$0")/lib.sh"

T="$PK_STAGE_TMP"
COPY="$T/pkg/libpagekite"
mkdir -p "$COPY"

# 1. A copy of the tree without build output, venvs, node_modules or git.
tar -C "$SRC" --exclude=./.git --exclude='./build*' --exclude='./obj-*' \
  --exclude=./.venv --exclude='*/node_modules' --exclude=./node/build \
  --exclude='*/__pycache__' --exclude='*.egg-info' --exclude=./python/build \
  --exclude=./debian/tmp --exclude=./debian/.debhelper -cf - . | tar -C "$COPY" -xf -

# 2. Build the binary packages (no tests in the package build; two jobs),
#    and the source package too (from the clean copy, before the build), so
#    that lintian checks debian/ itself and not only the .debs.
(cd "$T/pkg" && dpkg-source -b libpagekite >"$T/source.log" 2>&1) \
  || { cat "$T/source.log" >&2; pk_fail "dpkg-source -b failed"; }
start=$SECONDS
(cd "$COPY" && DEB_BUILD_OPTIONS="nocheck parallel=2" nice -n 10 \
   dpkg-buildpackage -us -uc -b >"$T/build.log" 2>&1) \
  || { tail -40 "$T/build.log" >&2; pk_fail "dpkg-buildpackage failed (log above)"; }
pk_log "dpkg-buildpackage: $((SECONDS - start)) s"
OUT="$T/pkg"
CHANGES="$(ls "$OUT"/libpagekite_*.changes)"
for p in libpagekite1 libpagekite-data libpagekite-dev pagekite-tools lua-pagekite; do
  ls "$OUT"/${p}_*.deb >/dev/null 2>&1 || pk_fail "no $p package built"
done

# 3. lintian: no error and no warning that is not overridden (overrides in
#    debian/*.lintian-overrides, each with a comment saying why).
lintian --no-tag-display-limit "$CHANGES" "$(ls "$OUT"/libpagekite_*.dsc)" >"$T/lintian.log" 2>&1 || true
if grep -E '^[EW]: ' "$T/lintian.log" >&2; then
  pk_fail "lintian reports errors or warnings (above)"
fi
grep -qE '^(internal error|.*[Ff]ailed to)' "$T/lintian.log" && { cat "$T/lintian.log" >&2; pk_fail "lintian did not run cleanly"; }
pk_log "lintian: no errors or warnings ($(grep -c '^[IPX]: ' "$T/lintian.log" || true) info/pedantic tags)"

# 4. The symbols file lists exactly the exports of c/libpagekite.map.
diff <(sed -n 's/^ *\(pagekite_[A-Za-z0-9_]*\);.*/\1/p' "$SRC/c/libpagekite.map" | sort) \
     <(sed -n 's/^ \(pagekite_[A-Za-z0-9_]*\)@PAGEKITE_1 .*/\1/p' "$SRC/debian/libpagekite1.symbols" | sort) \
  >"$T/symbols.diff" || { cat "$T/symbols.diff" >&2;
    pk_fail "debian/libpagekite1.symbols and c/libpagekite.map differ (< map only, > symbols only)"; }

# 5. Extract every package (not the -dbgsym ones) into a scratch root.
ROOT="$T/root"
mkdir -p "$ROOT"
for deb in "$OUT"/*.deb; do
  case "$deb" in *-dbgsym_*) continue ;; esac
  dpkg -x "$deb" "$ROOT"
done
MA="$(dpkg-architecture -qDEB_HOST_MULTIARCH)"
LIBDIR="$ROOT/usr/lib/$MA"
for f in usr/bin/pagekitec usr/bin/pagekiter "usr/lib/$MA/libpagekite.so.1" "usr/lib/$MA/libpagekite.so" \
         "usr/lib/$MA/libpagekite.a" "usr/lib/$MA/pkgconfig/pagekite.pc" \
         "usr/lib/$MA/cmake/PageKite/PageKiteConfig.cmake" usr/include/pagekite.h \
         "usr/lib/$MA/lua/5.4/pagekite.so" usr/share/libpagekite/lua/plugins/access.lua \
         usr/share/man/man1/pagekitec.1.gz usr/share/man/man1/pagekiter.1.gz \
         lib/systemd/system/pagekiter.service usr/lib/sysusers.d/pagekiter.conf \
         usr/lib/tmpfiles.d/pagekiter.conf etc/pagekiter.d/10-relay.rc \
         usr/share/doc/pagekite-tools/examples/secrets.rc.example; do
  [ -e "$ROOT/$f" ] || pk_fail "the packages lack /$f"
done
# No RUNPATH in what Debian installs under /usr.
for f in "$ROOT/usr/bin/pagekitec" "$ROOT/usr/bin/pagekiter" "$LIBDIR/lua/5.4/pagekite.so" "$LIBDIR/libpagekite.so.1"; do
  readelf -d "$f" | grep -qE 'RUNPATH|RPATH' && pk_fail "$f has a RUNPATH/RPATH: $(readelf -d "$f" | grep -E 'RUNPATH|RPATH')"
done
dpkg-deb -e "$OUT"/pagekite-tools_*.deb "$T/ctl"
grep -qx /etc/pagekiter.d/10-relay.rc "$T/ctl/conffiles" || pk_fail "10-relay.rc is not a conffile: $(cat "$T/ctl/conffiles")"
# The unit is installed disabled and is never started by the package.
if grep -q 'deb-systemd-invoke' "$T/ctl/postinst"; then pk_fail "postinst starts pagekiter.service"; fi
sed -n '/dh_installsystemd/,/End automatically/p' "$T/ctl/postinst" >"$T/ctl/systemd.snippet"
[ -s "$T/ctl/systemd.snippet" ] || pk_fail "postinst has no dh_installsystemd section"
if grep -q 'deb-systemd-helper enable' "$T/ctl/systemd.snippet" \
   && ! grep -q 'was-enabled' "$T/ctl/systemd.snippet"; then pk_fail "postinst enables pagekiter.service"; fi
if sed -n '/else/,/fi/p' "$T/ctl/systemd.snippet" | grep -q 'deb-systemd-helper enable'; then
  pk_fail "postinst enables pagekiter.service on a first install"
fi
grep -q 'systemd-sysusers' "$T/ctl/postinst" || pk_fail "postinst does not create the pagekiter user"

export LD_LIBRARY_PATH="$LIBDIR"
PKC="$ROOT/usr/bin/pagekitec" PKR="$ROOT/usr/bin/pagekiter"

# 6. Man pages: both render without warnings, and they are what
#    doc/man/generate.sh makes from today's --help (all but the .TH line,
#    which carries the month).
for tool in pagekitec pagekiter; do
  page="$ROOT/usr/share/man/man1/$tool.1.gz"
  MANWIDTH=80 man --warnings -l "$page" >"$T/$tool.txt" 2>"$T/$tool.manerr" || pk_fail "man -l $page failed: $(cat "$T/$tool.manerr")"
  [ ! -s "$T/$tool.manerr" ] || pk_fail "man -l $page warns: $(cat "$T/$tool.manerr")"
  grep -q -- '--version' "$T/$tool.txt" || pk_fail "$tool.1 renders without its options"
  cmp -s <(zcat "$page") "$SRC/doc/man/$tool.1" || pk_fail "the packaged $tool.1 is not doc/man/$tool.1"
done
"$SRC/doc/man/generate.sh" "$ROOT/usr/bin" "$T/man" >/dev/null
for tool in pagekitec pagekiter; do
  diff <(grep -v '^\.TH ' "$SRC/doc/man/$tool.1") <(grep -v '^\.TH ' "$T/man/$tool.1") >"$T/$tool.mandiff" \
    || { cat "$T/$tool.mandiff" >&2; pk_fail "doc/man/$tool.1 is out of date with $tool --help: run doc/man/generate.sh BUILD_DIR and commit"; }
done

# 7. The unit passes systemd-analyze verify (ExecStart pointed at the
#    extracted binary: the one change), as tests/e2e/test_relay_service.py.
sed "s#/usr/bin/pagekiter#$PKR#" "$ROOT/lib/systemd/system/pagekiter.service" >"$T/pagekiter.service"
systemd-analyze verify "$T/pagekiter.service" >"$T/verify.log" 2>&1 || { cat "$T/verify.log" >&2; pk_fail "systemd-analyze verify failed"; }
if grep pagekiter.service "$T/verify.log" >&2; then pk_fail "systemd-analyze verify warns about the unit"; fi
grep -q '^ExecStart=/usr/bin/pagekiter --clean --optdir=/etc/pagekiter.d$' "$ROOT/lib/systemd/system/pagekiter.service" \
  || pk_fail "the packaged unit does not run /usr/bin/pagekiter with /etc/pagekiter.d"
# The sysusers and tmpfiles snippets the postinst runs, applied to a scratch
# root: the pagekiter user, and /etc/pagekiter as root:pagekiter 0750.
SYSROOT="$T/sysroot"
mkdir -p "$SYSROOT/etc" "$SYSROOT/usr/lib/sysusers.d" "$SYSROOT/usr/lib/tmpfiles.d"
cp "$ROOT/usr/lib/sysusers.d/pagekiter.conf" "$SYSROOT/usr/lib/sysusers.d/"
cp "$ROOT/usr/lib/tmpfiles.d/pagekiter.conf" "$SYSROOT/usr/lib/tmpfiles.d/"
systemd-sysusers --root="$SYSROOT" pagekiter.conf >/dev/null 2>&1 || pk_fail "systemd-sysusers rejects the sysusers snippet"
gid="$(awk -F: '$1 == "pagekiter" {print $3}' "$SYSROOT/etc/group")"
grep -q '^pagekiter:.*:/usr/sbin/nologin$' "$SYSROOT/etc/passwd" && [ -n "$gid" ] || pk_fail "sysusers made no pagekiter user/group"
if [ "$(id -u)" -eq 0 ]; then  # creating root-owned files needs root (CI is)
  systemd-tmpfiles --root="$SYSROOT" --create pagekiter.conf >/dev/null 2>&1 || pk_fail "systemd-tmpfiles rejects the tmpfiles snippet"
  [ "$(stat -c '%u %g %a' "$SYSROOT/etc/pagekiter")" = "0 $gid 750" ] \
    || pk_fail "tmpfiles made /etc/pagekiter $(stat -c '%u %g %a' "$SYSROOT/etc/pagekiter"), not 0 $gid 750"
else
  pk_log "not root: the tmpfiles snippet is not applied (it chowns to root)"
fi
grep -q '^secretsfile = /etc/pagekiter/secrets.rc$' "$ROOT/etc/pagekiter.d/10-relay.rc" \
  || pk_fail "10-relay.rc does not name /etc/pagekiter/secrets.rc"

# 8. The -dev package: a program built with pkg-config against the
#    extracted header and library (the .pc file is relocatable).
cc -Wall -Werror -o "$T/consumer" "$SRC/tests/install/consumer.c" \
  $(PKG_CONFIG_PATH="$LIBDIR/pkgconfig" pkg-config --cflags --libs pagekite) \
  || pk_fail "consumer.c does not build against libpagekite-dev"
"$T/consumer" >/dev/null || pk_fail "consumer built against libpagekite-dev fails"
# ... and with find_package(PageKite) from the packaged CMake files.
cmake -S "$SRC/tests/install" -B "$T/cmake-consumer" -DCMAKE_PREFIX_PATH="$ROOT/usr" -DPageKite_DIR="$LIBDIR/cmake/PageKite" \
  >"$T/cmake-consumer.log" 2>&1 \
  && cmake --build "$T/cmake-consumer" >>"$T/cmake-consumer.log" 2>&1 \
  || { tail -20 "$T/cmake-consumer.log" >&2; pk_fail "find_package(PageKite) from libpagekite-dev failed"; }
"$T/cmake-consumer/consumer" >/dev/null || pk_fail "the find_package consumer fails"

# 9. Fly: the extracted pagekitec through the extracted pagekiter.
cd "$T"
"$PKC" --version >/dev/null || pk_fail "the packaged pagekitec does not start"
secret="$(openssl rand -hex 16)"; tok="$(pk_token)"
pk_origin "$tok"
pk_relay deb.localhost "$secret" "$PKR"
"$PKC" -q --frontend "127.0.0.1:$RELAY_PORT" "127.0.0.1:$ORIGIN_PORT" http \
  deb.localhost 0 "$secret" >/dev/null 2>"$T/c.log" &
PK_PIDS+=($!)
pk_expect_page "$RELAY_PORT" deb.localhost "$tok" || pk_fail "no page through the packaged tools: $(tail -5 "$T/c.log")"

# 10. Fly: a Lua connector (lua-pagekite) through the packaged relay.
tok2="$(pk_token)"
pk_origin "$tok2"
cat >"$T/fly.lua" <<'EOF'
local pagekite = require "pagekite"
local K = pagekite.constants
local port, origin, secret = tonumber(arg[1]), tonumber(arg[2]), arg[3]
local conn <close> = pagekite.connector{app_id = "deb", max_kites = 1, max_conns = 16,
                                        flags = K.PK_WITH_IPV4 | K.PK_WITH_IPV6}
assert(conn:add_kite{proto = "http", name = "lua.localhost", secret = secret,
                     origin_host = "127.0.0.1", origin_port = origin})
assert(conn:add_frontend("127.0.0.1", port))
assert(conn:start())
assert(conn:wait_until("flying", 30))
io.stdout:write("flying\n"); io.stdout:flush()
io.stdin:read("l")  -- stay up until the stage closes stdin
EOF
pk_relay lua.localhost "$secret" "$PKR"
mkfifo "$T/lua.in"
LUA_CPATH="$LIBDIR/lua/5.4/?.so" LUA_PATH="" lua5.4 "$T/fly.lua" "$RELAY_PORT" "$ORIGIN_PORT" "$secret" \
  <"$T/lua.in" >"$T/lua.out" 2>"$T/lua.err" &
PK_PIDS+=($!)
exec 7>"$T/lua.in"
pk_expect_page "$RELAY_PORT" lua.localhost "$tok2" || pk_fail "no page through lua-pagekite: $(cat "$T/lua.err")"
exec 7>&-
