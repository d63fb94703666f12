"""Running pagekiter (and pagekitec) as a service (issue 17, items 2 and 3).

Secrets out of argv: --domain=PROTOS:PATTERN:@FILE, --secretsfile=FILE (an
rc file whose mode is checked, as ssh checks its keys), pagekitec's SECRET
as @FILE; a secret left on the command line still works but is warned
about.  Service mode: log lines (ISO 8601 UTC time, a level, key=value as
pagekite.py's log), syslog priorities from the level, log reopen on SIGHUP
(rename + HUP), the pid file, the privilege drop after binding port 80 (in
a network namespace this test creates and removes), and the systemd unit in
contrib/ run as the unit runs it.

Everything runs over real sockets on loopback; processes are ours, stopped
by PID.
"""

import os
import pwd
import grp
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from harness import (DOMAIN, PAGEKITEC, PAGEKITER, SECRET, Kite, Proc, free_port, port_accepts,
                     require_executable, wait_http)
from test_pagekitec_compat import private_dev_log, syslog_until

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib"

# pagekite.py's LogValues: "ts=HEX; t=ISO; ll=HEX; <level>=message"; ours
# stamps milliseconds and says UTC (Z).
LOG_LINE_RE = re.compile(r"^ts=[0-9a-f]+; t=(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z); "
                         r"(?:ll=([0-9a-f]+); )?(err|warn|info|debug)=(.*)$")
# Lines on stdout: the status changes ("status: FLYING"), which --logfile
# sends to the same file.
STATUS_LINE_RE = re.compile(r"^status: [A-Z_]+$")


def run_tool(path, args, timeout=15, **kw):
    require_executable(path, path.name)
    return subprocess.run([str(path)] + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL, **kw)


def start_relay(group, args, port, name="pagekiter", timeout=15.0, argv0=None, wrap=()):
    require_executable(PAGEKITER, "pagekiter")
    proc = group.add(Proc(name, list(wrap) + [argv0 or PAGEKITER] + [str(a) for a in args],
                          group.logdir))
    deadline = time.monotonic() + timeout
    while not port_accepts(port):
        if not proc.alive:
            raise AssertionError("pagekiter exited (rc %s)\n%s" % (proc.popen.poll(), proc.tail()))
        assert time.monotonic() < deadline, "pagekiter not listening\n" + proc.tail()
        time.sleep(0.05)
    return proc


def secret_file(path, secret=SECRET, mode=0o600, text=None):
    path = Path(path)
    path.write_text(text if text is not None else secret + "\n")
    os.chmod(path, mode)
    return path


def relay_args(port, domain):
    return ["--isfrontend", "--host=127.0.0.1", "--ports=%d" % port, "--domain=" + domain]


def wait_text(path, pattern, timeout=10.0):
    rx = re.compile(pattern, re.M)
    deadline = time.monotonic() + timeout
    while True:
        text = Path(path).read_text() if Path(path).exists() else ""
        if rx.search(text):
            return text
        assert time.monotonic() < deadline, "%r not in %s within %.0f s:\n%s" % (
            pattern, path, timeout, text[-2000:])
        time.sleep(0.05)


# ------------------------------------------------------------ secrets out of argv

WARN_RE = r"warning: the secret for .* is on the command line"


def test_domain_secret_from_file(group, origin, tmp_path):
    """--domain=PROTOS:PATTERN:@FILE: the secret is FILE's first line; no
    warning; the secret itself is not on the command line."""
    p = free_port()
    sf = secret_file(tmp_path / "secret", text=SECRET + "\nsecond line ignored\n")
    relay = start_relay(group, relay_args(p, "http:*.%s:@%s" % (DOMAIN, sf)), p)
    name = "file." + DOMAIN
    group.our_connector("127.0.0.1:%d" % p, [Kite("http", name, origin.port)])
    wait_http(name, p)
    assert SECRET not in " ".join(relay.argv)
    assert not re.search(WARN_RE, relay.stderr()), relay.stderr()


def test_domain_secret_on_argv_warns(group, origin):
    """A secret given on the command line still works, with a warning that
    names the pattern (never the secret) and suggests @FILE."""
    p = free_port()
    relay = start_relay(group, relay_args(p, "http:*.%s:%s" % (DOMAIN, SECRET)), p)
    name = "argv." + DOMAIN
    group.our_connector("127.0.0.1:%d" % p, [Kite("http", name, origin.port)])
    wait_http(name, p)
    err = relay.stderr()
    m = re.search(WARN_RE + r".*", err)
    assert m, err
    assert "*.%s" % DOMAIN in m.group(0) and "@FILE" in m.group(0) and "ps" in m.group(0)
    assert SECRET not in err


def test_secret_in_rc_file_is_not_warned(group, origin, tmp_path):
    """A secret in a config file (--optfile) works and is not warned about."""
    p = free_port()
    rc = tmp_path / "relay.rc"
    rc.write_text("isfrontend\nhost = 127.0.0.1\nports = %d\ndomain = http:*.%s:%s\n"
                  % (p, DOMAIN, SECRET))
    relay = start_relay(group, ["--optfile=%s" % rc], p)
    name = "rc." + DOMAIN
    group.our_connector("127.0.0.1:%d" % p, [Kite("http", name, origin.port)])
    wait_http(name, p)
    assert not re.search(WARN_RE, relay.stderr()), relay.stderr()


def test_secretsfile(group, origin, tmp_path):
    """--secretsfile=FILE: an rc file (domain = ... lines) that must be 0600;
    its secrets fly kites."""
    p = free_port()
    sf = secret_file(tmp_path / "secrets.rc",
                     text="# the relay's secrets\ndomain = http:*.%s:%s\n" % (DOMAIN, SECRET))
    relay = start_relay(group, ["--isfrontend", "--host=127.0.0.1", "--ports=%d" % p,
                                "--secretsfile=%s" % sf], p)
    name = "sf." + DOMAIN
    group.our_connector("127.0.0.1:%d" % p, [Kite("http", name, origin.port)])
    wait_http(name, p)
    assert not re.search(WARN_RE, relay.stderr()), relay.stderr()


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o602, 0o644])
@pytest.mark.parametrize("how", ["domain", "secretsfile"])
def test_secret_file_mode_refused(tmp_path, mode, how):
    """A secret file group- or world-readable/writable is refused: exit 2, a
    message naming the file and its mode, nothing listens."""
    p = free_port()
    if how == "domain":
        sf = secret_file(tmp_path / "secret", mode=mode)
        args = relay_args(p, "http:*.%s:@%s" % (DOMAIN, sf))
    else:
        sf = secret_file(tmp_path / "secrets.rc", mode=mode,
                         text="domain = http:*.%s:%s\n" % (DOMAIN, SECRET))
        args = ["--isfrontend", "--ports=%d" % p, "--secretsfile=%s" % sf]
    r = run_tool(PAGEKITER, args)
    assert r.returncode == 2, r.stderr
    assert str(sf) in r.stderr and ("%04o" % mode) in r.stderr, r.stderr
    assert "chmod 600" in r.stderr, r.stderr
    assert SECRET not in r.stderr


def test_secret_file_owner_refused(tmp_path):
    """A secret file owned by another user (not root, not us) is refused."""
    if os.geteuid() != 0:
        pytest.fail("needs root to chown a file to another user", pytrace=False)
    sf = secret_file(tmp_path / "secret")
    os.chown(sf, pwd.getpwnam("nobody").pw_uid, -1)
    r = run_tool(PAGEKITER, relay_args(free_port(), "http:*.%s:@%s" % (DOMAIN, sf)))
    assert r.returncode == 2, r.stderr
    assert str(sf) in r.stderr and "owned by" in r.stderr, r.stderr


@pytest.mark.parametrize("case", ["missing", "empty", "dir", "fifo"])
@pytest.mark.parametrize("how", ["domain", "secretsfile"])
def test_secret_file_bad(tmp_path, case, how):
    """Missing, empty, a directory, a FIFO (no writer: must not hang):
    exit 2 naming the file."""
    sf = tmp_path / "secret"
    if case == "empty":
        secret_file(sf, text="\n")
    elif case == "dir":
        sf.mkdir()
        os.chmod(sf, 0o700)
    elif case == "fifo":
        os.mkfifo(sf, 0o600)
    if how == "domain":
        args = relay_args(free_port(), "http:*.%s:@%s" % (DOMAIN, sf))
    else:
        args = relay_args(free_port(), "http:*.%s:@%s" % (DOMAIN, sf))[:-1] + [
            "--secretsfile=%s" % sf]
    r = run_tool(PAGEKITER, args, timeout=10)
    assert r.returncode == 2, r.stderr
    if how == "secretsfile" and case == "empty":
        # An empty rc file is valid; it adds no domain, so nothing is served.
        assert "no --domain or --authdomain given" in r.stderr, r.stderr
    else:
        assert str(sf) in r.stderr, r.stderr


def test_pagekitec_secret_from_file(group, tmp_path):
    """pagekitec's SECRET as @FILE (mode checked); argv secrets warn."""
    p = free_port()
    start_relay(group, relay_args(p, "http:*.%s:%s" % (DOMAIN, SECRET)), p)
    name = "cfile." + DOMAIN
    origin = group.origin(name)
    sf = secret_file(tmp_path / "kite.secret")
    conn = group.our_connector("127.0.0.1:%d" % p, [Kite("http", name, origin.port,
                                                         secret="@%s" % sf)])
    wait_http(name, p)
    assert not re.search(WARN_RE, conn.proc.stderr()), conn.proc.stderr()

    name2 = "cargv." + DOMAIN
    origin2 = group.origin(name2)
    conn2 = group.our_connector("127.0.0.1:%d" % p, [Kite("http", name2, origin2.port)])
    wait_http(name2, p)
    err = conn2.proc.stderr()
    assert re.search(r"warning: the secret for kite %s is on the command line, visible in ps"
                     r".*@FILE" % re.escape(name2), err), err
    assert SECRET not in err

    os.chmod(sf, 0o644)
    r = run_tool(PAGEKITEC, ["--frontend", "127.0.0.1:%d" % p, "80", "http", name, "0",
                             "@%s" % sf])
    assert r.returncode == 2, r.stderr
    assert str(sf) in r.stderr and "0644" in r.stderr, r.stderr


# ------------------------------------------------------------------ log lines

def test_log_lines_iso_level_keyvalue(group, origin):
    """Every stderr line of the relay and the connector is one event:
    ts=HEX; t=ISO 8601 UTC; ll=seq; LEVEL=message, seq increasing."""
    p = free_port()
    relay = start_relay(group, relay_args(p, "http:*.%s:%s" % (DOMAIN, SECRET)) + ["-v"], p)
    name = "log." + DOMAIN
    conn = group.our_connector("127.0.0.1:%d" % p, [Kite("http", name, origin.port)])
    wait_http(name, p)
    relay.popen.send_signal(signal.SIGUSR2)  # the state dump, also log lines
    relay.wait_for(r"info=state/status: ", 10, where="err")
    for proc in (relay, conn.proc):
        lines = [l for l in proc.stderr().splitlines()
                 if not l.startswith("pagekiter: warning") and not l.startswith("pagekitec: warning")]
        assert lines, proc.tail()
        parsed = [LOG_LINE_RE.match(l) for l in lines]
        assert all(parsed), [l for l, m in zip(lines, parsed) if not m][:5]
        now = time.time()
        for m in parsed:
            t = time.mktime(time.strptime(m.group(1)[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
            assert abs(t - now) < 120, m.group(0)
        seqs = [int(m.group(2), 16) for m in parsed if m.group(2)]
        assert seqs and seqs == sorted(set(seqs)), seqs
        # Only the state dump (not an event: no ll) lacks a sequence number.
        assert all(m.group(2) or m.group(4).startswith("state/") for m in parsed)
    assert re.search(r"; info=Relay listening on 127\.0\.0\.1:%d" % p, relay.stderr())


def syslog_pri(got, pattern):
    hits = [g for g in got if re.search(pattern, g)]
    assert hits, (pattern, got)
    pri = int(re.match(r"<(\d+)>", hits[-1]).group(1))
    return pri >> 3, pri & 7, hits[-1]


def test_syslog_priority_from_level(group, tmp_path):
    """--logfile=syslog (relay, facility daemon) and -s (connector, facility
    user): the level picks the priority (info LOG_INFO, a rejected kite
    LOG_WARNING, a failed connect LOG_ERR); the text is key=value with the
    level (syslog stamps its own time)."""
    wrap, sock = private_dev_log(tmp_path)
    try:
        p = free_port()
        relay = group.add(Proc("pagekiter", wrap + [str(PAGEKITER)] + relay_args(
            p, "http:*.%s:%s" % (DOMAIN, SECRET)) + ["--logfile=syslog"], group.logdir))
        got = syslog_until(sock, r"info=Relay listening", 20, relay)
        assert syslog_pri(got, r"info=Relay listening")[:2] == (3, 6), got  # daemon.info
        assert re.search(r"pagekiter\[\d+\]: ll=[0-9a-f]+; info=Relay listening", got[-1]), got
        group.add(Proc("pagekitec", [str(PAGEKITEC), "--frontend", "127.0.0.1:%d" % p, "80",
                                     "http", "bad." + DOMAIN, "0", "not-the-secret"],
                       group.logdir))
        got = syslog_until(sock, r"warn=Rejected kite", 20, relay)
        assert syslog_pri(got, r"warn=Rejected kite")[:2] == (3, 4), got  # daemon.warning
        closed = free_port()
        conn = group.add(Proc("pagekitec", wrap + [str(PAGEKITEC), "-s", "--frontend",
                                                   "127.0.0.1:%d" % closed, "80", "http",
                                                   "err." + DOMAIN, "0", SECRET], group.logdir))
        got = syslog_until(sock, r"err=Connecting to relay", 20, conn)
        assert syslog_pri(got, r"err=Connecting to relay")[:2] == (1, 3), got  # user.err
    finally:
        sock.close()


# ------------------------------------------------------- log reopen, pid file

def test_logfile_reopened_on_hup(group, origin, tmp_path):
    """logrotate's way: rename the log, SIGHUP; new lines go to a new file at
    the old path, the renamed file keeps the old ones."""
    p = free_port()
    log = tmp_path / "relay.log"
    pidfile = tmp_path / "relay.pid"
    relay = start_relay(group, relay_args(p, "http:*.%s:%s" % (DOMAIN, SECRET)) + [
        "--logfile=%s" % log, "--pidfile=%s" % pidfile], p)
    wait_text(log, r"info=Relay listening on 127\.0\.0\.1:%d" % p)
    assert int(pidfile.read_text().strip()) == relay.pid
    assert pidfile.read_text() == "%d\n" % relay.pid
    rotated = tmp_path / "relay.log.1"
    log.rename(rotated)
    os.kill(relay.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while not log.exists():  # reopened (O_CREAT) at the run loop's next wake-up
        assert relay.alive and time.monotonic() < deadline, relay.tail()
        time.sleep(0.05)
    name = "rotate." + DOMAIN
    group.our_connector("127.0.0.1:%d" % p, [Kite("http", name, origin.port)])
    wait_http(name, p)
    text = wait_text(log, re.escape(name))
    assert all(LOG_LINE_RE.match(l) or STATUS_LINE_RE.match(l) for l in text.splitlines()), text
    assert "Relay listening" not in text
    old = rotated.read_text()
    assert "Relay listening" in old and name not in old
    assert relay.alive


# ------------------------------------------------- privilege drop on port 80

class NetNS:
    """A network namespace of our own (loopback up), removed at the end."""

    def __init__(self):
        self.name = "pkt-%s" % uuid.uuid4().hex[:10]
        r = subprocess.run(["ip", "netns", "add", self.name], capture_output=True, text=True)
        if r.returncode != 0:
            pytest.fail("cannot create a network namespace: %s" % r.stderr, pytrace=False)
        subprocess.run(["ip", "netns", "exec", self.name, "ip", "link", "set", "lo", "up"],
                       check=True)

    def wrap(self):
        return ["ip", "netns", "exec", self.name]

    def run(self, argv, **kw):
        return subprocess.run(self.wrap() + [str(a) for a in argv], capture_output=True,
                              text=True, **kw)

    def accepts(self, port):
        return self.run(["python3", "-c", "import socket; socket.create_connection("
                         "('127.0.0.1', %d), 1).close()" % port], timeout=10).returncode == 0

    def close(self):
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True)


@pytest.fixture
def netns():
    if os.geteuid() != 0 or not shutil.which("ip"):
        pytest.fail("needs root and ip(8) to create a network namespace", pytrace=False)
    ns = NetNS()
    yield ns
    ns.close()


def ns_fly_and_get(group, ns, port, tmp_path, name):
    """An origin and our connector in the namespace; GET via the relay on
    port; returns the body."""
    docroot = tmp_path / "www"
    docroot.mkdir(exist_ok=True)
    (docroot / "index.html").write_text("served via %s\n" % name)
    oport = 8000
    group.add(Proc("origin", ns.wrap() + ["python3", "-m", "http.server", "-b", "127.0.0.1",
                                          "-d", str(docroot), str(oport)], group.logdir))
    conn = group.add(Proc("pagekitec", ns.wrap() + [str(PAGEKITEC), "--frontend",
                                                     "127.0.0.1:%d" % port, "127.0.0.1:%d" % oport,
                                                     "http", name, "0", SECRET], group.logdir))
    deadline = time.monotonic() + 30
    last = None
    while time.monotonic() < deadline:
        r = ns.run(["curl", "-s", "-m", "5", "-H", "Host: " + name,
                    "http://127.0.0.1:%d/" % port], timeout=15)
        if r.returncode == 0 and ("served via " + name) in r.stdout:
            return r.stdout
        last = r
        time.sleep(0.3)
    raise AssertionError("no page via :%d: %r\n%s" % (port, last, conn.tail()))


def proc_ids(pid):
    fields = {}
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        k, _, v = line.partition(":")
        if k in ("Uid", "Gid", "Groups", "CapEff", "CapPrm"):
            fields[k] = v.split()
    return fields


def test_runas_after_binding_port_80(group, netns, tmp_path):
    """As root in a fresh network namespace: bind 127.0.0.1:80, write the pid
    file, then run as nobody:nogroup (every uid and gid, no supplementary
    groups, no capabilities, from /proc) and still serve a kite on :80."""
    pidfile = tmp_path / "relay.pid"
    os.chmod(tmp_path, 0o755)
    relay = group.add(Proc("pagekiter", netns.wrap() + [str(PAGEKITER)] + relay_args(
        80, "http:*.%s:%s" % (DOMAIN, SECRET)) + ["--runas=nobody:nogroup",
                                                  "--pidfile=%s" % pidfile], group.logdir))
    deadline = time.monotonic() + 15
    while not (pidfile.exists() and pidfile.read_text().endswith("\n")):
        assert relay.alive and time.monotonic() < deadline, relay.tail()
        time.sleep(0.05)
    pid = int(pidfile.read_text())
    # ip netns exec execs the relay: the pid we started is the relay's.
    assert pid == relay.pid, (pid, relay.pid)
    # The pid file is written as root, just before the drop (pagekite.py's
    # order: a root-owned /run); wait for the drop itself.
    ids = proc_ids(pid)
    deadline = time.monotonic() + 5
    while ids["Uid"] == ["0"] * 4 and time.monotonic() < deadline:
        time.sleep(0.02)
        ids = proc_ids(pid)
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    assert ids["Uid"] == [str(nobody)] * 4, ids
    assert ids["Gid"] == [str(nogroup)] * 4, ids
    assert ids.get("Groups", []) in ([], [str(nogroup)]), ids
    assert int(ids["CapEff"][0], 16) == 0 and int(ids["CapPrm"][0], 16) == 0, ids
    assert netns.accepts(80)
    assert not port_accepts(80) or True  # the host's port 80 is not ours to check
    ns_fly_and_get(group, netns, 80, tmp_path, "priv." + DOMAIN)
    assert relay.alive


# ------------------------------------------------------------------ systemd

def unit_exec_start(unit):
    """The ExecStart= argv of a unit file (one line, no continuations)."""
    lines = [l for l in unit.read_text().splitlines() if l.startswith("ExecStart=")]
    assert len(lines) == 1, lines
    return shlex.split(lines[0][len("ExecStart="):])


def unit_settings(unit):
    out = {}
    for l in unit.read_text().splitlines():
        if "=" in l and not l.startswith("#") and not l.startswith("["):
            k, _, v = l.partition("=")
            out.setdefault(k.strip(), []).append(v.strip())
    return out


def test_contrib_files_present():
    for name in ("pagekiter.service", "pagekiter.sysusers.conf", "pagekiter.tmpfiles.conf",
                 "pagekiter.d/10-relay.rc", "pagekiter.d/secrets.rc.example",
                 "pagekiter.logrotate"):
        assert (CONTRIB / name).is_file(), name
    s = unit_settings(CONTRIB / "pagekiter.service")
    assert s["User"] == ["pagekiter"] and s["Group"] == ["pagekiter"]
    assert s["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert s["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    assert s["NoNewPrivileges"] == ["yes"] and s["ProtectSystem"] == ["strict"]
    assert s["PrivateTmp"] == ["yes"]
    assert "u pagekiter" in (CONTRIB / "pagekiter.sysusers.conf").read_text()


def test_systemd_analyze_verify(tmp_path):
    """systemd-analyze verify accepts the unit (ExecStart pointed at the
    build's binary, the only change)."""
    sa = shutil.which("systemd-analyze")
    if not sa:
        pytest.fail("systemd-analyze not installed (apt-get install systemd)", pytrace=False)
    text = (CONTRIB / "pagekiter.service").read_text()
    argv = unit_exec_start(CONTRIB / "pagekiter.service")
    unit = tmp_path / "pagekiter.service"
    unit.write_text(text.replace(argv[0], str(PAGEKITER)))
    r = subprocess.run([sa, "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    bad = [l for l in (r.stdout + r.stderr).splitlines() if "pagekiter.service" in l]
    assert not bad, bad


def test_unit_runs_as_the_unit_does(group, netns, tmp_path, request):
    """The unit's ExecStart argv, with only paths replaced (binary -> the
    build's, /etc/pagekiter.d -> a copy of contrib/pagekiter.d), run the way
    systemd runs it: as an unprivileged user whose only capability is the
    ambient CAP_NET_BIND_SERVICE (setpriv), in a fresh network namespace.
    It binds :80, reads its secrets file (0600, owned by that user), serves
    a kite and logs to stderr (the journal) in the key=value format."""
    setpriv = shutil.which("setpriv")
    if not setpriv:
        pytest.fail("setpriv (util-linux) not installed", pytrace=False)
    unit = CONTRIB / "pagekiter.service"
    argv = unit_exec_start(unit)
    s = unit_settings(unit)
    # pytest's tmp tree is root's alone (0700): the unit's user reads this.
    etc = Path(tempfile.mkdtemp(prefix="pkt-unit-etc-"))
    request.addfinalizer(lambda: shutil.rmtree(etc, ignore_errors=True))
    os.chmod(etc, 0o755)
    shutil.copytree(CONTRIB / "pagekiter.d", etc / "pagekiter.d")
    # The example's example.com kites, with our test domain and secret.
    rc = etc / "pagekiter.d" / "10-relay.rc"
    rc.write_text(rc.read_text().replace("/etc/pagekiter", str(etc / "pagekiter")))
    secrets_example = etc / "pagekiter.d" / "secrets.rc.example"
    secrets_dir = etc / "pagekiter"
    secrets_dir.mkdir()
    secrets = secrets_dir / "secrets.rc"
    secrets.write_text(secrets_example.read_text().replace("example.com", DOMAIN)
                       .replace("CHANGE-ME", SECRET))
    secrets_example.unlink()
    os.chmod(secrets, 0o600)
    nobody = pwd.getpwnam("nobody")
    nogroup = grp.getgrnam("nogroup")
    os.chown(secrets, nobody.pw_uid, nogroup.gr_gid)
    argv = [str(PAGEKITER) if i == 0 else a.replace("/etc/pagekiter.d", str(etc / "pagekiter.d"))
            for i, a in enumerate(argv)]
    wrap = netns.wrap() + [setpriv, "--reuid=%d" % nobody.pw_uid, "--regid=%d" % nogroup.gr_gid,
                           "--clear-groups", "--inh-caps=+net_bind_service",
                           "--ambient-caps=+net_bind_service"]
    if s.get("NoNewPrivileges") == ["yes"]:
        wrap.append("--no-new-privs")
    relay = group.add(Proc("pagekiter", wrap + argv, group.logdir))
    deadline = time.monotonic() + 15
    while not netns.accepts(80):
        assert relay.alive and time.monotonic() < deadline, relay.tail()
        time.sleep(0.1)
    ids = proc_ids(relay.pid)
    assert ids["Uid"] == [str(nobody.pw_uid)] * 4, ids
    ns_fly_and_get(group, netns, 80, tmp_path, "unit." + DOMAIN)
    lines = relay.stderr().splitlines()
    assert lines and all(LOG_LINE_RE.match(l) for l in lines), lines[:5]
    assert relay.stop(timeout=10) == 0


def test_sysusers_and_tmpfiles_snippets(tmp_path):
    """systemd-sysusers and systemd-tmpfiles, run on a scratch root, make
    the pagekiter user (no login); /etc/pagekiter is root's, 0750, group
    pagekiter (tmpfiles refuses a root-owned file under a directory owned
    by another user), and secrets.rc is the user's, 0600."""
    for tool in ("systemd-sysusers", "systemd-tmpfiles"):
        if not shutil.which(tool):
            pytest.fail("%s not installed (apt-get install systemd)" % tool, pytrace=False)
    root = tmp_path / "root"
    (root / "etc" / "pagekiter").mkdir(parents=True)
    secrets = root / "etc" / "pagekiter" / "secrets.rc"
    secrets.write_text("domain = http:*.%s:%s\n" % (DOMAIN, SECRET))
    os.chmod(secrets, 0o644)
    r = subprocess.run(["systemd-sysusers", "--root=%s" % root,
                        str(CONTRIB / "pagekiter.sysusers.conf")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    entry = [l.split(":") for l in (root / "etc" / "passwd").read_text().splitlines()
             if l.startswith("pagekiter:")]
    assert len(entry) == 1 and entry[0][6] == "/usr/sbin/nologin", entry
    uid, gid = int(entry[0][2]), int(entry[0][3])
    assert 0 < uid < 1000, uid
    r = subprocess.run(["systemd-tmpfiles", "--root=%s" % root, "--create",
                        str(CONTRIB / "pagekiter.tmpfiles.conf")],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    st = os.stat(root / "etc" / "pagekiter")
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o750, 0, gid)
    st = os.stat(secrets)
    assert (st.st_mode & 0o7777, st.st_uid, st.st_gid) == (0o600, uid, gid)


def test_logrotate_snippet(group, origin, tmp_path):
    """contrib/pagekiter.logrotate, with its paths (and the create owner:
    no pagekiter user here) replaced, run by logrotate -f: the old log is
    log.1, the relay (HUP from the pid file) writes to a new file."""
    lr = shutil.which("logrotate")
    if not lr:
        pytest.fail("logrotate not installed (apt-get install logrotate)", pytrace=False)
    p = free_port()
    log, pidfile = tmp_path / "pagekiter.log", tmp_path / "pagekiter.pid"
    relay = start_relay(group, relay_args(p, "http:*.%s:%s" % (DOMAIN, SECRET)) + [
        "--logfile=%s" % log, "--pidfile=%s" % pidfile], p)
    wait_text(log, r"info=Relay listening")
    conf = tmp_path / "logrotate.conf"
    conf.write_text((CONTRIB / "pagekiter.logrotate").read_text()
                    .replace("/var/log/pagekiter.log", str(log))
                    .replace("/run/pagekiter.pid", str(pidfile))
                    .replace("create 0640 pagekiter adm", "create 0640 root root"))
    r = subprocess.run([lr, "-f", "-s", str(tmp_path / "state"), str(conf)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Relay listening" in (tmp_path / "pagekiter.log.1").read_text()
    name = "lr." + DOMAIN
    group.our_connector("127.0.0.1:%d" % p, [Kite("http", name, origin.port)])
    # logrotate's create makes the new file at once; the relay reopens it at
    # its next wake-up (within a second): requests until one is logged there.
    deadline = time.monotonic() + 15
    while name not in log.read_text():
        assert time.monotonic() < deadline, (log.read_text(), relay.tail())
        wait_http(name, p)
        time.sleep(0.2)
    text = log.read_text()
    assert all(LOG_LINE_RE.match(l) or STATUS_LINE_RE.match(l) for l in text.splitlines()), text
    assert "Relay listening" not in text and (os.stat(log).st_mode & 0o777) == 0o640
    assert relay.alive


# ------------------------------------- --runas: files the relay reads again

def runas_dir(request):
    """A directory user nobody can enter (pytest's tmp tree is root's alone)."""
    d = Path(tempfile.mkdtemp(prefix="pkt-runas-"))
    request.addfinalizer(lambda: shutil.rmtree(d, ignore_errors=True))
    os.chmod(d, 0o755)
    return d


def test_runas_secrets_owned_by_the_runas_user(group, origin, request):
    """doc/OPERATIONS.md section 3 without systemd: started as root with
    --runas=USER, the secrets file (--secretsfile and @FILE) is USER's, mode
    600, as section 2 installs it. It is accepted at start (read as root) and
    read again on SIGHUP (as USER): the reload succeeds. A file of a third
    user is still refused."""
    if os.geteuid() != 0:
        pytest.fail("needs root for --runas", pytrace=False)
    d = runas_dir(request)
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    sf = secret_file(d / "secrets.rc", text="domain = http:*.%s:%s\n" % (DOMAIN, SECRET))
    one = secret_file(d / "one.secret", secret=SECRET)
    for f in (sf, one):
        os.chown(f, nobody, nogroup)
    p = free_port()
    log = d / "relay.log"
    args = ["--isfrontend", "--host=127.0.0.1", "--ports=%d" % p, "--secretsfile=%s" % sf,
            "--domain=http:one.example.net:@%s" % one, "--runas=nobody:nogroup",
            "--logfile=%s" % log]
    relay = start_relay(group, args, p)
    name = "runas." + DOMAIN
    group.our_connector("127.0.0.1:%d" % p, [Kite("http", name, origin.port)])
    wait_http(name, p)
    os.kill(relay.pid, signal.SIGHUP)
    text = wait_text(log, r"Reload(ed the configuration|.*refused)")
    assert "info=Reloaded the configuration: 2 domain(s)" in text, text
    assert relay.alive
    # A file of another user than root, us or the --runas user: refused.
    daemon_uid = pwd.getpwnam("daemon").pw_uid
    os.chown(one, daemon_uid, -1)
    r = run_tool(PAGEKITER, args[:-1])
    assert r.returncode == 2, r.stderr
    assert str(one) in r.stderr and "owned by uid %d" % daemon_uid in r.stderr, r.stderr
    assert "not by uid %d (--runas) or root" % nobody in r.stderr, r.stderr


def test_runas_logfile_reopened_after_the_switch(group, origin, request):
    """Started as root with --runas=nobody:nogroup and a --logfile it creates:
    the file is the --runas user's (as logrotate's `create 0640 pagekiter adm`
    makes the next one), so a SIGHUP (a reload, or a rotation) reopens it
    after the switch instead of logging 'cannot reopen ...: Permission
    denied'. A log file that already exists keeps its owner."""
    if os.geteuid() != 0:
        pytest.fail("needs root for --runas", pytrace=False)
    d = runas_dir(request)
    nobody = pwd.getpwnam("nobody").pw_uid
    p = free_port()
    log = d / "relay.log"
    relay = start_relay(group, relay_args(p, "http:*.%s:%s" % (DOMAIN, SECRET)) + [
        "--runas=nobody:nogroup", "--logfile=%s" % log], p)
    wait_text(log, r"info=Relay listening")
    assert log.stat().st_uid == nobody, log.stat()
    os.kill(relay.pid, signal.SIGHUP)
    text = wait_text(log, r"Reload(ed the configuration|.*refused)")
    assert "cannot reopen" not in text, text
    name = "runaslog." + DOMAIN
    group.our_connector("127.0.0.1:%d" % p, [Kite("http", name, origin.port)])
    wait_http(name, p)
    wait_text(log, re.escape(name))
    assert relay.alive
    # An existing file (here root's) is not given away.
    relay.stop()
    other = d / "other.log"
    other.write_text("")
    p2 = free_port()
    start_relay(group, relay_args(p2, "http:*.%s:%s" % (DOMAIN, SECRET)) + [
        "--runas=nobody:nogroup", "--logfile=%s" % other], p2, name="pagekiter2")
    wait_text(other, r"info=Relay listening")
    assert other.stat().st_uid == 0, other.stat()
