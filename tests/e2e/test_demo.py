"""The README's main job: `./run demo` serves http://demo.localhost:PORT/.

`./run demo` installs only what the demo needs (issue 19 item 7).  These
tests never install anything: a fake `apt-get`, `dpkg` and `sudo` come first
on PATH.  The fake `dpkg -s` knows only the packages the fake `apt-get`
"installed" (so the demo asks for every package it needs), and the fake
`apt-get` fails for the packages named in PK_FAKE_APT_FAIL, as the real one
does: the whole `apt-get install` call fails and installs nothing.
"""
import os
import re
import shlex
import signal
import subprocess
import time

import pytest

from pkloop import BUILD, free_port, get

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
pytestmark = pytest.mark.ours

# What the demo needs: compiler, build tools, the library's -dev packages,
# python3 (the origin and a free port), openssl (the secret), curl (the
# printed line).  liblua5.4-dev is optional (the Lua plugin host).
DEMO_NEEDS = {"cmake", "pkg-config", "gcc", "make", "libuv1-dev", "libssl-dev", "zlib1g-dev",
              "openssl", "curl", "python3"}
DEMO_OPTIONAL = {"liblua5.4-dev"}
# Some of what `./run test` installs and the demo must not ask for.
TEST_ONLY = {"wrk", "faketime", "clang", "libclang-rt-14-dev", "haproxy", "prometheus",
             "pdns-server", "pdns-backend-pipe", "tinyproxy", "dante-server", "microsocks",
             "pagekite", "swig", "lua5.4", "g++", "bind9-dnsutils", "sqlite3", "systemd",
             "logrotate", "python3-dnspython", "default-jdk"}

FAKE_APT_GET = r"""#!/bin/sh
# Fake apt-get for tests/e2e/test_demo.py: records each call, installs nothing.
echo "apt-get $*" >>"$PK_FAKE_APT_LOG"
[ "$1" = update ] && exit 0
pkgs=""
for a in "$@"; do
  case "$a" in -*|install) ;; *) pkgs="$pkgs $a" ;; esac
done
for p in $pkgs; do
  for f in $PK_FAKE_APT_FAIL; do
    if [ "$p" = "$f" ]; then
      echo "E: Unable to locate package $p" >&2
      exit 100
    fi
  done
done
for p in $pkgs; do echo "$p" >>"$PK_FAKE_APT_STATE"; done
exit 0
"""

FAKE_DPKG = r"""#!/bin/sh
# Fake dpkg -s for tests/e2e/test_demo.py: installed = what the fake apt-get
# installed.  Anything else goes to the real dpkg.
if [ "$1" = "-s" ]; then
  shift
  for p in "$@"; do
    grep -qxF "$p" "$PK_FAKE_APT_STATE" 2>/dev/null || exit 1
  done
  exit 0
fi
exec /usr/bin/dpkg "$@"
"""

FAKE_SUDO = """#!/bin/sh
# Fake sudo (the real one would reset PATH and reach the real apt-get).
exec "$@"
"""


def fake_apt(tmp_path, fail=()):
    d = tmp_path / "fakebin"
    d.mkdir()
    for name, text in (("apt-get", FAKE_APT_GET), ("dpkg", FAKE_DPKG), ("sudo", FAKE_SUDO)):
        (d / name).write_text(text)
        (d / name).chmod(0o755)
    log = tmp_path / "apt.log"
    state = tmp_path / "apt.state"
    log.write_text("")
    state.write_text("")
    env = {"PATH": f"{d}:{os.environ['PATH']}", "PK_FAKE_APT_LOG": str(log),
           "PK_FAKE_APT_STATE": str(state), "PK_FAKE_APT_FAIL": " ".join(fail)}
    return env, log


def asked_for(log):
    """The packages named in the fake apt-get's install calls."""
    pkgs = set()
    for line in log.read_text().splitlines():
        words = line.split()
        if "install" in words:
            pkgs.update(w for w in words[words.index("install") + 1:] if not w.startswith("-"))
    return pkgs


class Demo:
    """`./run demo` in its own process group, its output in a file."""

    def __init__(self, tmp_path, port, build, extra_env):
        self.log = tmp_path / "demo.log"
        self.port = port
        env = dict(os.environ, PORT=str(port), PK_BUILD_DIR=os.path.abspath(build))
        env.update(extra_env)
        with open(self.log, "w") as out:
            self.p = subprocess.Popen([os.path.join(ROOT, "run"), "demo"], cwd=ROOT, env=env,
                                      stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def text(self):
        return self.log.read_text()

    def wait_for(self, needle, timeout):
        deadline = time.time() + timeout
        while time.time() < deadline:
            if needle in self.text():
                return self.text()
            assert self.p.poll() is None, self.text()
            time.sleep(0.2)
        raise AssertionError(f"{needle!r} not printed in {timeout}s:\n{self.text()}")

    def wait_page(self):
        body = b""
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                status, body = get(self.port, f"demo.localhost:{self.port}", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        return body

    def group_pids(self):
        """PIDs of the processes in the demo's process group."""
        pids = []
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                stat = open(f"/proc/{d}/stat").read()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2:].split()
            if int(fields[2]) == self.p.pid:  # field 5: pgrp
                pids.append(int(d))
        return pids

    def stop(self):
        """Ctrl-C (SIGINT to the group), then SIGKILL if it lingers."""
        if self.p.poll() is None:
            os.killpg(self.p.pid, signal.SIGINT)
            try:
                self.p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.p.pid, signal.SIGKILL)
                self.p.wait()
        return self.p.returncode


def cmdline(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return [a.decode() for a in f.read().split(b"\0")[:-1]]


def printed_command(text, tool):
    """The printed line that runs `tool` (pagekiter / pagekitec), as argv."""
    def runs(line):
        try:
            argv = shlex.split(line)
        except ValueError:  # prose with an apostrophe
            return False
        return bool(argv) and os.path.basename(argv[0]) == tool

    lines = [ln for ln in text.splitlines() if runs(ln)]
    assert len(lines) == 1, f"one printed {tool} line expected:\n{text}"
    return lines[0], shlex.split(lines[0])


def test_run_demo_serves_the_page_and_stops_cleanly(tmp_path):
    port = free_port()
    env, apt_log = fake_apt(tmp_path)
    demo = Demo(tmp_path, port, BUILD, env)
    try:
        demo.wait_for(f"http://demo.localhost:{port}/", 120)  # includes a no-op/incremental build
        assert b"It flies!" in demo.wait_page()
    finally:
        rc = demo.stop()
    assert rc == 0, demo.text()
    # Nothing of the demo is left behind.
    left = subprocess.run(["pgrep", "-f", f"ports={port}"], capture_output=True, text=True).stdout
    assert left.strip() == ""


def test_run_demo_asks_only_for_what_it_needs(tmp_path):
    """The demo's packages, and no test-only one (wrk, haproxy, pdns...)."""
    port = free_port()
    env, apt_log = fake_apt(tmp_path)
    demo = Demo(tmp_path, port, BUILD, env)
    try:
        demo.wait_for(f"http://demo.localhost:{port}/", 120)
    finally:
        demo.stop()
    asked = asked_for(apt_log)
    assert asked - (DEMO_NEEDS | DEMO_OPTIONAL) == set(), apt_log.read_text()
    assert DEMO_NEEDS <= asked, apt_log.read_text()
    assert not asked & TEST_ONLY


def test_run_demo_prints_a_working_curl_line_and_the_cli_lines_it_runs(tmp_path):
    port = free_port()
    env, _ = fake_apt(tmp_path)
    demo = Demo(tmp_path, port, BUILD, env)
    try:
        text = demo.wait_for(f"http://demo.localhost:{port}/", 120)
        assert b"It flies!" in demo.wait_page()
        # The curl line that works without *.localhost resolving.
        curl = [ln.strip() for ln in text.splitlines() if ln.strip().startswith("curl ")]
        assert curl == [f"curl -H 'Host: demo.localhost' http://127.0.0.1:{port}/"], text
        out = subprocess.run(curl[0], shell=True, capture_output=True, timeout=15)
        assert out.returncode == 0 and b"It flies!" in out.stdout, out
        # The relay and connector lines are exactly what runs.
        running = {}
        for pid in demo.group_pids():
            try:
                argv = cmdline(pid)
            except OSError:
                continue
            if argv:
                running.setdefault(os.path.basename(argv[0]), []).append(argv)
        for tool in ("pagekiter", "pagekitec"):
            line, argv = printed_command(text, tool)
            assert running.get(tool) == [argv], (line, running)
            assert os.path.isabs(argv[0]) and os.access(argv[0], os.X_OK)
        # The secret: a throwaway one, in a file of mode 600 that both lines
        # name as @FILE (doc/OPERATIONS.md: secrets out of argv).
        relay = printed_command(text, "pagekiter")[1]
        at = [a for a in relay if a.startswith("--domain=")][0].split(":", 2)[2]
        assert at.startswith("@/"), relay
        assert printed_command(text, "pagekitec")[1][-1] == at
        assert os.stat(at[1:]).st_mode & 0o777 == 0o600
        assert re.fullmatch(r"[0-9a-f]{32}\n", open(at[1:]).read())
        assert "is on the command line" not in demo.text()  # pagekitec's warning
    finally:
        assert demo.stop() == 0, demo.text()
    # The printed origin line still serves the page after the demo (its
    # directory is kept, as the secret is): the three lines run it again.
    origin = [shlex.split(ln) for ln in text.splitlines() if "http.server" in ln]
    assert len(origin) == 1, text
    page = os.path.join(origin[0][origin[0].index("--directory") + 1], "index.html")
    assert os.path.isfile(page) and "It flies!" in open(page).read(), page


def test_run_demo_goes_on_without_a_failed_optional_package(tmp_path):
    """liblua5.4-dev fails to install: a warning, and a build without Lua.

    Its own build directory (the shared one keeps Lua): the two tools only,
    about 15 s of CPU."""
    port = free_port()
    build = tmp_path / "build"
    env, apt_log = fake_apt(tmp_path, fail=["liblua5.4-dev"])
    demo = Demo(tmp_path, port, build, env)
    try:
        text = demo.wait_for(f"http://demo.localhost:{port}/", 150)
        assert b"It flies!" in demo.wait_page()
    finally:
        rc = demo.stop()
    assert rc == 0, demo.text()
    assert re.search(r"warning: .*liblua5\.4-dev", text), text
    assert "liblua5.4-dev" in asked_for(apt_log) | set(apt_log.read_text().split())
    # The required ones were still installed, in a call of their own.
    state = (tmp_path / "apt.state").read_text().split()
    assert DEMO_NEEDS <= set(state) and "liblua5.4-dev" not in state
    # That part is off: the library has no Lua in it, and no Java was built.
    cache = (build / "CMakeCache.txt").read_text()
    assert "PK_WITH_LUA:BOOL=OFF" in cache
    needed = subprocess.run(["readelf", "-d", str(build / "libpagekite.so")], capture_output=True,
                            text=True, check=True).stdout
    assert "liblua" not in needed and "libuv" in needed
    assert "PK_BUILD_JAVA:BOOL=OFF" in cache


def test_run_demo_stops_when_a_needed_package_fails(tmp_path):
    """A required package that cannot be installed: a clear error, no build."""
    port = free_port()
    build = tmp_path / "build"
    env, _ = fake_apt(tmp_path, fail=["libuv1-dev"])
    demo = Demo(tmp_path, port, build, env)
    try:
        demo.p.wait(60)
    finally:
        demo.stop()
    text = demo.text()
    assert demo.p.returncode != 0
    assert "libuv1-dev" in text and "Unable to locate package libuv1-dev" in text, text
    assert not (build / "CMakeCache.txt").exists()
