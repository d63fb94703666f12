#!/usr/bin/env bash
# Linking against an installed libpagekite, the four ways a C program does:
#   find_package(PageKite) + PageKite::pagekite         (cmake shared)
#   find_package(PageKite) + PageKite::pagekite_static  (cmake static)
#   pkg-config --cflags --libs pagekite                 (pkg-config shared)
#   libpagekite.a + pkg-config --static --libs pagekite (pkg-config static)
# each against the Lua-enabled release build ($BUILD) and against a small
# build configured here with -DPK_WITH_LUA=OFF.  Every consumer
# (tests/install/consumer.c) is then run as a connector and flies a kite
# through pagekiter; a static one must not need libpagekite.so, a shared one
# must find it in the prefix without LD_LIBRARY_PATH.
source "$(dirname "$0")/lib.sh"
unset LD_LIBRARY_PATH PKG_CONFIG_PATH CMAKE_PREFIX_PATH
cd "$PK_STAGE_TMP"

secret="$(openssl rand -hex 16)"; tok="$(pk_token)"
pk_origin "$tok"
pk_relay '*.link.localhost' "$secret"

needs_libpagekite() { readelf -d "$1" | grep -q 'NEEDED.*libpagekite\.so'; }

# fly NAME BINARY lua|nolua: the consumer flies NAME.link.localhost.
fly() {
  local name="$1" bin="$2" lua="$3" kite="$1.link.localhost" pid rc
  "$bin" connect "$RELAY_PORT" "$ORIGIN_PORT" "$kite" "$secret" "$lua" 60 \
    >"$PK_STAGE_TMP/$name.out" 2>"$PK_STAGE_TMP/$name.err" &
  pid=$!; PK_PIDS+=("$pid")
  if ! pk_expect_page "$RELAY_PORT" "$kite" "$tok"; then
    cat "$PK_STAGE_TMP/$name.err" >&2
    pk_fail "$name: the consumer did not fly its kite"
  fi
  kill "$pid"; rc=0; wait "$pid" || rc=$?
  [ "$rc" -eq 0 ] || { cat "$PK_STAGE_TMP/$name.err" >&2; pk_fail "$name: the consumer exited $rc"; }
  grep -q "^consumer flying $kite" "$PK_STAGE_TMP/$name.out" || pk_fail "$name: no 'consumer flying' line"
}

# consumers TAG PREFIX lua|nolua
consumers() {
  local tag="$1" P="$2" lua="$3" pcdir libdir b
  pcdir="$(echo "$P"/lib*/pkgconfig)"; libdir="$(dirname "$pcdir")"
  export PKG_CONFIG_PATH="$pcdir"
  if [ "$lua" = lua ]; then
    pkg-config --print-requires-private pagekite | grep -qw 'lua5.4' ||
      pk_fail "$tag: pagekite.pc does not name lua5.4 in Requires.private: $(pkg-config --print-requires-private pagekite | tr '\n' ' ')"
  else
    ! pkg-config --print-requires-private pagekite | grep -qw 'lua5.4' ||
      pk_fail "$tag: pagekite.pc names lua5.4 in a build without Lua"
  fi

  for kind in shared static; do
    b="$PK_STAGE_TMP/$tag-cmake-$kind"
    local st=OFF; [ "$kind" = static ] && st=ON
    cmake -S "$SRC/tests/install" -B "$b" -DCMAKE_PREFIX_PATH="$P" -DPK_CONSUMER_STATIC=$st \
      >"$b.log" 2>&1 || { cat "$b.log" >&2; pk_fail "$tag: find_package consumer ($kind) does not configure"; }
    cmake --build "$b" >>"$b.log" 2>&1 || { tail -20 "$b.log" >&2; pk_fail "$tag: find_package consumer ($kind) does not build"; }
  done

  b="$PK_STAGE_TMP/$tag-pc-shared"
  # shellcheck disable=SC2046
  cc -Wall -Werror -o "$b" "$SRC/tests/install/consumer.c" $(pkg-config --cflags --libs pagekite) \
    -Wl,-rpath,"$(pkg-config --variable=libdir pagekite)" 2>"$b.log" ||
    { cat "$b.log" >&2; pk_fail "$tag: pkg-config shared consumer does not link"; }
  b="$PK_STAGE_TMP/$tag-pc-static"
  # The archive by name, then everything it needs (--as-needed: the -lpagekite
  # in the list adds no dependency on the shared library).
  # shellcheck disable=SC2046
  cc -Wall -Werror -o "$b" "$SRC/tests/install/consumer.c" $(pkg-config --cflags pagekite) \
    "$libdir/libpagekite.a" -Wl,--as-needed $(pkg-config --static --libs pagekite) 2>"$b.log" ||
    { cat "$b.log" >&2; pk_fail "$tag: pkg-config --static consumer does not link"; }
  unset PKG_CONFIG_PATH

  needs_libpagekite "$PK_STAGE_TMP/$tag-cmake-shared/consumer" || pk_fail "$tag: cmake shared consumer does not use libpagekite.so"
  needs_libpagekite "$PK_STAGE_TMP/$tag-pc-shared" || pk_fail "$tag: pkg-config shared consumer does not use libpagekite.so"
  ! needs_libpagekite "$PK_STAGE_TMP/$tag-cmake-static/consumer" || pk_fail "$tag: cmake static consumer needs libpagekite.so"
  ! needs_libpagekite "$PK_STAGE_TMP/$tag-pc-static" || pk_fail "$tag: pkg-config static consumer needs libpagekite.so"

  fly "$tag-cmake-shared" "$PK_STAGE_TMP/$tag-cmake-shared/consumer" "$lua"
  fly "$tag-cmake-static" "$PK_STAGE_TMP/$tag-cmake-static/consumer" "$lua"
  fly "$tag-pc-shared" "$PK_STAGE_TMP/$tag-pc-shared" "$lua"
  fly "$tag-pc-static" "$PK_STAGE_TMP/$tag-pc-static" "$lua"
}

# The Lua-enabled build: the release build the install stage was given.
[ -e "$BUILD/lua/pagekite.so" ] || pk_fail "$BUILD is not a Lua-enabled build (no lua/pagekite.so)"
cmake --install "$BUILD" --prefix "$PK_STAGE_TMP/lua-prefix" >/dev/null
consumers lua "$PK_STAGE_TMP/lua-prefix" lua

# A build without Lua: the library only (no tools, tests or Java).
pk_log "configuring and building a -DPK_WITH_LUA=OFF library"
cmake -S "$SRC" -B "$PK_STAGE_TMP/nolua-build" -DPK_WITH_LUA=OFF -DPK_BUILD_TESTS=OFF \
  -DPK_BUILD_JAVA=OFF -DPK_BUILD_TOOLS=OFF >"$PK_STAGE_TMP/nolua-build.log" 2>&1 ||
  { tail -20 "$PK_STAGE_TMP/nolua-build.log" >&2; pk_fail "the -DPK_WITH_LUA=OFF build does not configure"; }
nice -n 10 cmake --build "$PK_STAGE_TMP/nolua-build" -j2 >>"$PK_STAGE_TMP/nolua-build.log" 2>&1 ||
  { tail -20 "$PK_STAGE_TMP/nolua-build.log" >&2; pk_fail "the -DPK_WITH_LUA=OFF build fails"; }
cmake --install "$PK_STAGE_TMP/nolua-build" --prefix "$PK_STAGE_TMP/nolua-prefix" >/dev/null
[ ! -e "$PK_STAGE_TMP/nolua-prefix/lib/lua" ] || pk_fail "the -DPK_WITH_LUA=OFF build installed a Lua module"
consumers nolua "$PK_STAGE_TMP/nolua-prefix" nolua
pk_log "8 consumers (find_package and pkg-config, shared and static, with and without Lua) flew their kites"
