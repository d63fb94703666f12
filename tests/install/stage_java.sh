#!/usr/bin/env bash
# The Java binding as a user gets it (bindings/README.md):
#  1. `cmake --install` of a Java build (BUILD if it was configured with
#     -DPK_BUILD_JAVA=ON, else a fresh one here) into a prefix; a small
#     program run from outside the repository with only the installed
#     pagekite.jar on the class path and -Djava.library.path=<prefix>/lib/jni
#     flies a kite through our relay (no LD_LIBRARY_PATH: NativeLoader loads
#     <prefix>/lib/libpagekite.so.1 before the JNI library);
#  2. the self-contained jar (pagekite-VERSION-<os>-<arch>.jar) copied alone
#     into an empty folder: the same program with only that jar on the class
#     path and no java.library.path flies a kite with the natives it carries.
# debs: default-jdk-headless swig
source "$(dirname "$0")/lib.sh"
command -v java >/dev/null && command -v javac >/dev/null || pk_fail "no JDK (Debian: default-jdk-headless)"
command -v swig >/dev/null || pk_fail "no swig"

J="$BUILD"
if ! grep -q '^PK_BUILD_JAVA:BOOL=ON' "$J/CMakeCache.txt" 2>/dev/null; then
  J="$PK_STAGE_TMP/build"
  pk_log "BUILD has no Java binding: configuring one in $J"
  cmake -S "$SRC" -B "$J" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPK_BUILD_JAVA=ON -DPK_BUILD_TESTS=OFF \
    >"$PK_STAGE_TMP/cmake.log" 2>&1 || { tail -20 "$PK_STAGE_TMP/cmake.log" >&2; pk_fail "cmake configure"; }
fi
nice -n 10 cmake --build "$J" -j2 >"$PK_STAGE_TMP/build.log" 2>&1 ||
  { tail -20 "$PK_STAGE_TMP/build.log" >&2; pk_fail "cmake --build $J"; }
version="$(sed -n 's/^CMAKE_PROJECT_VERSION:STATIC=//p' "$J/CMakeCache.txt")"
[ -n "$version" ] || pk_fail "no CMAKE_PROJECT_VERSION in $J/CMakeCache.txt"

P="$PK_STAGE_TMP/prefix"
cmake --install "$J" --prefix "$P" >"$PK_STAGE_TMP/install.log" 2>&1 ||
  { tail -20 "$PK_STAGE_TMP/install.log" >&2; pk_fail "cmake --install"; }
jar="$P/share/java/pagekite.jar"
[ -L "$jar" ] && [ "$(readlink "$jar")" = "pagekite-$version.jar" ] ||
  pk_fail "$jar is not a link to pagekite-$version.jar: $(ls -l "$P/share/java" 2>&1)"
libdir="$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$J/CMakeCache.txt")"; libdir="${libdir:-lib}"
jnidir="$P/$libdir/jni"
[ -f "$jnidir/libpagekite_jni.so" ] || pk_fail "no $jnidir/libpagekite_jni.so: $(find "$P" -name '*jni*')"
unzip -l "$jar" >"$PK_STAGE_TMP/jar.list" || pk_fail "unzip -l $jar"
grep -q 'net/pagekite/lib/PageKiteAPI.class' "$PK_STAGE_TMP/jar.list" || pk_fail "no PageKiteAPI.class in $jar"
if grep -q 'native/' "$PK_STAGE_TMP/jar.list"; then pk_fail "the installed jar carries natives"; fi
native_jars=("$J"/bindings/pagekite-"$version"-*-*.jar)
native_jar="${native_jars[0]}"
[ "${#native_jars[@]}" -eq 1 ] && [ -f "$native_jar" ] || pk_fail "no self-contained jar pagekite-$version-OS-ARCH.jar in $J/bindings"

unset LD_LIBRARY_PATH CLASSPATH
OUT="$PK_STAGE_TMP/outside"
mkdir -p "$OUT/app"
cat >"$OUT/app/Fly.java" <<'EOF'
import net.pagekite.lib.PageKiteAPI;

// Fly RELAY_PORT ORIGIN_PORT KITE SECRET: fly an http kite, print "flying ...",
// keep it up for at most 90 s (the stage stops it sooner).
public final class Fly {
    public static void main(String[] a) throws Exception {
        int relayPort = Integer.parseInt(a[0]), originPort = Integer.parseInt(a[1]);
        if (PageKiteAPI.versionNumber() != PageKiteAPI.PK_VERSION_NUMBER)
            throw new AssertionError("library " + PageKiteAPI.versionNumber() + " != binding");
        // The stage's relay is plain TCP: no PK_WITH_SSL.
        int flags = PageKiteAPI.PK_WITH_IPV4 | PageKiteAPI.PK_WITHOUT_SERVICE_FRONTENDS;
        if (!PageKiteAPI.init("stage-java", 1, 1, 16, null, flags, 0))
            throw new AssertionError("init: " + PageKiteAPI.lastError());
        if (PageKiteAPI.addKite("http", a[2], 0, a[3], "127.0.0.1", originPort) != 0)
            throw new AssertionError("addKite: " + PageKiteAPI.lastError());
        if (PageKiteAPI.addFrontend("127.0.0.1", relayPort) != 1)
            throw new AssertionError("addFrontend: " + PageKiteAPI.lastError());
        if (PageKiteAPI.threadStart() != 0)
            throw new AssertionError("threadStart: " + PageKiteAPI.lastError());
        long deadline = System.currentTimeMillis() + 30000;
        while (PageKiteAPI.getStatus() != PageKiteAPI.PK_STATUS_FLYING
               && System.currentTimeMillis() < deadline) PageKiteAPI.poll(1);
        if (PageKiteAPI.getStatus() != PageKiteAPI.PK_STATUS_FLYING)
            throw new AssertionError("not flying; log:\n" + PageKiteAPI.getLog());
        System.out.println("flying " + PageKiteAPI.PK_VERSION + " "
                           + System.getProperty("net.pagekite.lib.jni.loaded"));
        System.out.flush();
        deadline = System.currentTimeMillis() + 90000;
        while (System.currentTimeMillis() < deadline) PageKiteAPI.poll(1);
        PageKiteAPI.threadStop();
        PageKiteAPI.free();
    }
}
EOF

secret="$(openssl rand -hex 16)"
pk_relay "*.java.localhost" "$secret"

# fly NAME EXPECTED_LOADED JAVA_ARGS...: run Fly (source launch) from $OUT/app
# with JAVA_ARGS, wait for "flying", check where the natives came from and
# that the relay serves the origin's page through the kite.
fly() {
  local name="$1" loaded="$2"; shift 2
  local kite="$name.java.localhost" tok log="$PK_STAGE_TMP/fly.$name"
  tok="$(pk_token)"
  pk_origin "$tok"
  (cd "$OUT/app" && exec java "$@" Fly.java "$RELAY_PORT" "$ORIGIN_PORT" "$kite" "$secret") \
    >"$log.out" 2>"$log.err" &
  local pid=$!
  PK_PIDS+=($pid)
  for _ in $(seq 1 240); do
    grep -q '^flying' "$log.out" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  grep -q '^flying' "$log.out" ||
    { cat "$log.out" "$log.err" >&2; pk_fail "$name: the Java connector did not fly"; }
  pk_log "$name: $(cat "$log.out")"
  grep -q "^flying .* $loaded\$" "$log.out" || pk_fail "$name: natives not loaded from $loaded"
  pk_expect_page "$RELAY_PORT" "$kite" "$tok"
  kill "$pid" 2>/dev/null || true
}

# 1. The installed jar and JNI library.
fly installed "$jnidir/libpagekite_jni.so" -Djava.library.path="$jnidir" -cp "$jar"

# 2. The self-contained jar alone.
mkdir -p "$OUT/lib"
cp "$native_jar" "$OUT/lib/"
fly bundled "jar:/native/.*/libpagekite_jni.so" -cp "$OUT/lib/$(basename "$native_jar")"
