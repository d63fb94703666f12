#!/usr/bin/env bash
# The Python distribution (issue 19 item 3): `python -m build python` makes an
# sdist and a wheel; `twine check` passes; the wheel carries the Lua plugins
# and py.typed and no build or test junk; the sdist carries the C core and the
# plugins.  The wheel goes into one fresh venv, the sdist (compiled there,
# outside the repository) into another; from a directory outside the
# repository each imports, reports its version and flies a kite through
# pk_relay with the binding's Connector.  A relay served from the wheel with
# the default plugins (web_ui, access) then carries a kite too: its web UI
# answers and its access rule refuses a kite to loopback visitors.
# build and twine come from PyPI into a tools venv in the scratch directory.
# debs: python3-venv python3-dev gcc pkg-config libuv1-dev libssl-dev zlib1g-dev liblua5.4-dev curl
source "$(dirname "$0")/lib.sh"
T="$PK_STAGE_TMP"
PY="${PYTHON:-python3}"
unset PYTHONPATH PAGEKITE_C_DIR PAGEKITE_LUA_PLUGIN_DIR LD_LIBRARY_PATH
mkdir -p "$T/work" "$T/dist"
cd "$T/work"  # never the repository: nothing may be imported from it

pk_log "tools venv: build, twine (PyPI)"
"$PY" -m venv "$T/tools"
"$T/tools/bin/pip" install -q --disable-pip-version-check build twine \
  || pk_fail "cannot install build and twine from PyPI"

pk_log "python -m build $SRC/python"
nice -n 10 "$T/tools/bin/python" -m build "$SRC/python" --outdir "$T/dist" >"$T/build.log" 2>&1 \
  || { tail -30 "$T/build.log" >&2; pk_fail "python -m build failed"; }
version="$(sed -n "s/^VERSION = '\(.*\)'$/\1/p" "$SRC/python/pagekite/_cdef.py")"
[ -n "$version" ] || pk_fail "no VERSION in python/pagekite/_cdef.py"
sdist="$T/dist/libpagekite-$version.tar.gz"
wheel="$(ls "$T/dist"/libpagekite-"$version"-*.whl 2>/dev/null | head -1)"
[ -f "$sdist" ] || pk_fail "no sdist $sdist: $(ls "$T/dist")"
[ -n "$wheel" ] || pk_fail "no wheel for $version: $(ls "$T/dist")"
"$T/tools/bin/twine" check --strict "$T/dist"/* >"$T/twine.log" 2>&1 \
  || { cat "$T/twine.log" >&2; pk_fail "twine check failed"; }

pk_log "artifact contents"
"$T/tools/bin/python" - "$wheel" "$sdist" "$version" <<'EOF' || pk_fail "bad artifact contents"
import re, sys, tarfile, zipfile
wheel, sdist, version = sys.argv[1:]
w = zipfile.ZipFile(wheel).namelist()
s = [n.split("/", 1)[1] for n in tarfile.open(sdist).getnames() if "/" in n]
problems = []
for need in ("pagekite/__init__.py", "pagekite/py.typed", "pagekite/_spec.json",
             "pagekite/lua/plugins/web_ui.lua", "pagekite/lua/plugins/access.lua"):
    if need not in w:
        problems.append("wheel lacks " + need)
if not [n for n in w if re.fullmatch(r"pagekite/_pagekite\..*so", n)]:
    problems.append("wheel lacks the extension pagekite/_pagekite*.so")
junk = re.compile(r"(^|/)(tests?|build|csrc|__pycache__)/|\.(o|c|h|pyc|map)$|^pagekite_build\.py$|^setup\.py$")
problems += ["wheel carries junk: " + n for n in w if junk.search(n)]
problems += ["wheel file outside pagekite/ and its dist-info: " + n for n in w
             if not n.startswith(("pagekite/", "libpagekite-%s.dist-info/" % version))]
meta = zipfile.ZipFile(wheel).read("libpagekite-%s.dist-info/METADATA" % version).decode()
for field in ("Classifier: Typing :: Typed", "Classifier: Development Status ::",
              "Classifier: Programming Language :: Python :: 3.11", "Classifier: Operating System ::",
              "Classifier: Topic ::", "Project-URL:", "Author:", "Keywords:", "Requires-Python:"):
    if field not in meta:
        problems.append("wheel METADATA lacks " + field)
for need in ("csrc/include/pagekite.h", "csrc/src/api.c", "csrc/src/plugins_lua.c",
             "csrc/src/plugins_none.c", "csrc/lua/plugins/web_ui.lua",
             "csrc/lua/plugins/access.lua", "pagekite/_spec.json", "pagekite/py.typed",
             "pagekite_build.py", "setup.py", "pyproject.toml", "PKG-INFO"):
    if need not in s:
        problems.append("sdist lacks " + need)
problems += ["sdist carries junk: " + n for n in s
             if re.search(r"(^|/)(build|__pycache__)/|\.(o|so|pyc)$", n)]
for p in problems:
    print(p, file=sys.stderr)
print("wheel: %d files, sdist: %d files" % (len(w), len(s)), file=sys.stderr)
sys.exit(1 if problems else 0)
EOF

# The connector: flies KITE (http) from ORIGIN_PORT through the relay on
# RELAY_PORT (plain TCP) until killed; stops by itself after 120 s.
cat >"$T/kite.py" <<'EOF'
import sys, time
import pagekite
relay_port, kite, secret, origin_port = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
extra = sys.argv[5:]
plain = pagekite.api.PK_WITH_IPV4 | pagekite.api.PK_WITH_IPV6
with pagekite.Connector(app_id="install-py", flags=plain) as c:
    for name in [kite] + extra:
        c.add_kite("http", name, secret, origin_port, origin_host="127.0.0.1")
    c.add_frontend("127.0.0.1", relay_port)
    c.start()
    if not c.wait_until(pagekite.Status.FLYING, timeout=30):
        sys.exit("kite did not fly: %s" % c.status.name)
    print("flying", flush=True)
    time.sleep(120)
EOF

# smoke ENV KIND: import from ENV outside the repository, check the version,
# fly a kite through pk_relay with the binding's Connector.
smoke() {
  local env="$1" kind="$2" secret tok kpid
  "$env/bin/python" - "$version" "$env" "$SRC" <<'EOF' || pk_fail "$kind: import/version smoke failed"
import os, sys
import pagekite
version, env, src = sys.argv[1:]
where = os.path.realpath(pagekite.__file__)
assert where.startswith(os.path.realpath(env) + os.sep), "pagekite from %s, not %s" % (where, env)
assert not where.startswith(os.path.realpath(src) + os.sep), "pagekite from the repository: " + where
assert pagekite.__version__ == version, (pagekite.__version__, version)
assert pagekite.LIBRARY_VERSION.startswith(version.rsplit(".", 1)[0]), pagekite.LIBRARY_VERSION
print("%s: pagekite %s, library %s, from %s" % (sys.argv[0], pagekite.__version__,
      pagekite.LIBRARY_VERSION, os.path.dirname(where)), file=sys.stderr)
EOF
  secret="$(openssl rand -hex 16)"; tok="$(pk_token)"
  pk_origin "$tok"
  pk_relay "py$kind.localhost" "$secret"
  "$env/bin/python" "$T/kite.py" "$RELAY_PORT" "py$kind.localhost" "$secret" "$ORIGIN_PORT" \
    >"$T/kite-$kind.log" 2>&1 &
  kpid=$!; PK_PIDS+=($kpid)
  pk_expect_page "$RELAY_PORT" "py$kind.localhost" "$tok" || { cat "$T/kite-$kind.log" >&2; return 1; }
  kill "$kpid" 2>/dev/null || true
}

pk_log "wheel into a fresh venv: $(basename "$wheel")"
"$PY" -m venv "$T/wheelenv"
"$T/wheelenv/bin/pip" install -q --disable-pip-version-check "$wheel" || pk_fail "pip install wheel failed"
smoke "$T/wheelenv" wheel || pk_fail "wheel: no kite"

pk_log "a relay from the wheel with the default Lua plugins (web_ui, access)"
ui="$(pk_free_port)"; rport="$(pk_free_port)"; secret="$(openssl rand -hex 16)"; tok="$(pk_token)"
pk_origin "$tok"
cat >"$T/relay.py" <<'EOF'
import sys, time
import pagekite
port, ui, secret = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
with pagekite.Relay(app_id="install-py-relay") as r:
    r.add_listener("127.0.0.1", port)
    r.add_domain("http", "*.localhost", secret)
    # Default plugins from the package: web_ui answers on ui; access lets
    # only 192.0.2.0/24 visit pyshut.localhost (so loopback gets 403).
    r.enable_lua_plugins(True, ["web_ui=127.0.0.1:%d" % ui,
                                "access.allow=pyshut.localhost:192.0.2.0/24"])
    r.start()
    print("relay up", flush=True)
    time.sleep(120)
EOF
"$T/wheelenv/bin/python" "$T/relay.py" "$rport" "$ui" "$secret" >"$T/relay-wheel.log" 2>&1 &
PK_PIDS+=($!)
pk_wait_port "$ui" || { cat "$T/relay-wheel.log" >&2; pk_fail "the wheel's relay: no web UI (plugins not found?)"; }
"$T/wheelenv/bin/python" "$T/kite.py" "$rport" pyplug.localhost "$secret" "$ORIGIN_PORT" pyshut.localhost \
  >"$T/kite-plug.log" 2>&1 &
PK_PIDS+=($!)
pk_expect_page "$rport" pyplug.localhost "$tok" || { cat "$T/kite-plug.log" "$T/relay-wheel.log" >&2; pk_fail "no kite through the wheel's relay"; }
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Host: pyshut.localhost' "http://127.0.0.1:$rport/")"
[ "$code" = 403 ] || pk_fail "access.lua from the wheel: pyshut.localhost gave $code to loopback, want 403"
status="$(curl -s --max-time 5 "http://127.0.0.1:$ui/status.json")"
case "$status" in *pyplug.localhost*) ;; *) pk_fail "web_ui.lua from the wheel: status.json lacks the kite: ${status:0:300}" ;; esac
pk_log "the wheel's relay: web UI lists the kite, access rule refuses with 403"

pk_log "sdist into a fresh venv (compiled outside the repository): $(basename "$sdist")"
"$PY" -m venv "$T/sdistenv"
nice -n 10 "$T/sdistenv/bin/pip" install -v --disable-pip-version-check "$sdist" >"$T/sdist-install.log" 2>&1 \
  || { tail -30 "$T/sdist-install.log" >&2; pk_fail "pip install sdist failed"; }
grep -q "/csrc/src/api.c" "$T/sdist-install.log" || pk_fail "the sdist build did not compile its own csrc/"
if grep -q -- "$SRC/c/src/" "$T/sdist-install.log"; then pk_fail "the sdist build read the repository's c/src"; fi
smoke "$T/sdistenv" sdist || pk_fail "sdist: no kite"
"$T/sdistenv/bin/python" -c 'import pagekite, pathlib; d = pathlib.Path(pagekite.__file__).parent / "lua" / "plugins"; assert (d / "web_ui.lua").is_file() and (d / "access.lua").is_file(), d' \
  || pk_fail "the sdist install lacks the Lua plugins"
pk_log "wheel and sdist: installed, imported, kites flew"
