"""pagekitec as a drop-in for libpagekite's pagekitec (contrib/backends/pagekitec.c).

Command lines are written the way scripts written for libpagekite's tool
write them (OpenWrt's init script runs `pagekitec 80 http NAME 80 SECRET 22
raw NAME 443 SECRET` under start-stop-daemon).  libpagekite picks a relay
with `-F HOST [-P PORT]` (default port 443); the tests use that, never our
`--frontend`, so the command lines work unchanged with the original.

What libpagekite's tool does and these tests check:
  * option letters: -s is syslog (not TLS), -V 46 asks for DNS visibility
    (`&ipv=46` on the dynamic DNS update URL), -r URL is a rejection URL;
  * exit codes: 2 bad usage, 3 a kite could not be added, 4 the relays could
    not be set up, 7 the -Y status file cannot be opened, 100 bail-on-errors
    (-B); a rejected kite alone does not end the process;
  * signals: SIGUSR1 more logging, SIGUSR2 state dump to the log, SIGINT and
    SIGQUIT a clean stop (exit 0, the -Y file then says "shutdown").
"""

import http.client
import http.server
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from harness import (LIBPAGEKITE, PAGEKITEC, PAGEKITER, SECRET, WRONG_SECRET, Proc, _openssl,
                     free_port, kite_name, port_accepts, require_executable, wait_http)

pytestmark = [pytest.mark.ours]

# libpagekite's pagekitec: EXIT_ERR_USAGE, _ADD_KITE, _FRONTENDS, _STATUS_FILE;
# 100 is the library's bail-on-errors exit.
EXIT_USAGE, EXIT_ADD_KITE, EXIT_FRONTENDS, EXIT_STATUS_FILE, EXIT_BAIL = 2, 3, 4, 7, 100


# ---------------------------------------------------------------- helpers

def pagekitec(group, args, name="pagekitec", env=None, wrap=()):
    require_executable(PAGEKITEC, "pagekitec")
    argv = list(wrap) + [str(PAGEKITEC)] + [str(a) for a in args]
    return group.add(Proc(name, argv, group.logdir, env=env))


def run_pagekitec(args, timeout=20):
    require_executable(PAGEKITEC, "pagekitec")
    return subprocess.run([str(PAGEKITEC)] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def relay_args(relay):
    """libpagekite's way to name a plain relay: -I (no TLS) -F HOST -P PORT."""
    return ["-I", "-F", "127.0.0.1", "-P", relay.port]


def wait_until(what, cond, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while not cond():
        if proc is not None and not proc.alive:
            raise AssertionError("%s exited (rc %s) before %s\n%s"
                                 % (proc.name, proc.popen.poll(), what, proc.tail()))
        if time.monotonic() > deadline:
            raise AssertionError("%s: not within %.0f s%s"
                                 % (what, timeout, "\n" + proc.tail() if proc else ""))
        time.sleep(0.1)


def get_via(addr, port, host, timeout=5.0):
    conn = http.client.HTTPConnection(addr, port, timeout=timeout)
    try:
        conn.request("GET", "/", headers={"Host": host})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def served_via(addr, port, host):
    try:
        return get_via(addr, port, host)[0] == 200
    except (OSError, http.client.HTTPException):
        return False


def raw_echo_via(addr, port, kite, pport, payload, timeout=5.0):
    with socket.create_connection((addr, port), timeout=timeout) as s:
        s.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                   % (kite, pport, kite, pport)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf and len(buf) < 65536:
            data = s.recv(4096)
            if not data:
                break
            buf += data
        head, _, got = buf.partition(b"\r\n\r\n")
        assert head.split()[1:2] == [b"200"], "CONNECT answered %r" % head[:100]
        s.sendall(payload)
        while len(got) < len(payload):
            data = s.recv(65536)
            if not data:
                break
            got += data
        return got


# ---------------------------------------------------------------- a service-like relay

def _bindable(addr, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.bind((addr, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def service_address():
    """A loopback address where ports 80 and 443 are free (kites use those)."""
    rnd = random.Random()
    for _ in range(20):
        addr = "127.%d.%d.%d" % (rnd.randint(1, 254), rnd.randint(1, 254), rnd.randint(2, 254))
        if _bindable(addr, 80) and _bindable(addr, 443):
            return addr
    pytest.skip("no loopback address with ports 80 and 443 free (needs root)")


def relay_cert(directory, addr):
    """A CA (ca.pem) and a relay certificate for IP addr that it signed."""
    d = directory
    d.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                                     "-subj", "/CN=pagekitec compat CA",
                                     "-addext", "basicConstraints=critical,CA:TRUE",
                                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    _openssl(["req"] + ec + ["-keyout", "relay.key", "-out", "relay.csr",
                             "-subj", "/CN=%s" % addr], d)
    (d / "relay.ext").write_text("subjectAltName=IP:%s\nbasicConstraints=CA:FALSE\n"
                                 "extendedKeyUsage=serverAuth\n" % addr)
    _openssl(["x509", "-req", "-in", "relay.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
              "-CAcreateserial", "-out", "relay.pem", "-days", "2", "-extfile", "relay.ext"], d)
    return d / "ca.pem", d / "relay.pem", d / "relay.key"


def service_relay(group, addr, tls=None):
    """pagekiter on addr:80 and addr:443, like a pagekite.net relay."""
    require_executable(PAGEKITER, "pagekiter")
    argv = [PAGEKITER, "--listen=%s" % addr, "--ports=80,443",
            "--domain=http,https,raw,websocket:*.example.test:%s" % SECRET]
    if tls:
        argv += ["--tls-cert=%s" % tls[0], "--tls-key=%s" % tls[1]]
    proc = group.add(Proc("pagekiter", argv, group.logdir))
    wait_until("pagekiter accepting on %s:443" % addr,
               lambda: port_accepts(443, host=addr), 20, proc)
    return proc


def openwrt_kites(origin, echo, name):
    # `80 http NAME 80 SECRET 22 raw NAME 443 SECRET`, with local origin ports.
    return [origin.port, "http", name, 80, SECRET, echo.port, "raw", name, 443, SECRET]


def check_openwrt_kites(addr, conn, name):
    wait_until("http://%s via %s:80" % (name, addr), lambda: served_via(addr, 80, name), 30, conn)
    status, body = get_via(addr, 80, name)
    assert status == 200 and name.encode() in body
    payload = b"ssh-ish \x00\x01\x02 payload"
    assert raw_echo_via(addr, 443, name, 443, payload) == payload
    assert raw_echo_via(addr, 80, name, 443, payload) == payload


# ---------------------------------------------------------------- OpenWrt's command line

def test_openwrt_command_line(group):
    addr = service_address()
    service_relay(group, addr)
    name = kite_name("owrt")
    origin, echo = group.origin(name), group.echo()
    conn = pagekitec(group, ["-I", "-F", addr] + openwrt_kites(origin, echo, name))
    check_openwrt_kites(addr, conn, name)
    assert conn.alive
    assert conn.stop(timeout=10) == 0


def test_openwrt_command_line_tls_by_default(group, tmp_path):
    # No -I: TLS to the relay, as libpagekite's pagekitec does by default.
    addr = service_address()
    ca, cert, key = relay_cert(tmp_path / "pki", addr)
    service_relay(group, addr, tls=(cert, key))
    name = kite_name("owrt-tls")
    origin, echo = group.origin(name), group.echo()
    conn = pagekitec(group, ["-F", addr] + openwrt_kites(origin, echo, name),
                     env={"SSL_CERT_FILE": str(ca), "SSL_CERT_DIR": str(tmp_path / "none")})
    check_openwrt_kites(addr, conn, name)


# ---------------------------------------------------------------- -s: syslog

# Runs the command with a private /dev in a private mount namespace, whose
# /dev/log is a symlink to the test's datagram socket.  Nothing outside the
# namespace changes.
PRIVATE_DEV_LOG = r'''set -e
D="$1/dev"; mkdir -p "$D"
for n in null zero full random urandom; do : > "$D/$n"; mount --bind "/dev/$n" "$D/$n"; done
ln -sf "$1/log.sock" "$D/log"
mount --rbind "$D" /dev
shift; exec "$@"'''


def private_dev_log(tmp_path):
    """(wrapper argv, bound socket) so that the wrapped command's syslog(3)
    lands on the socket; skips when mount namespaces are not available."""
    unshare = shutil.which("unshare")
    if not unshare:
        pytest.skip("unshare (util-linux) not installed")
    probe = subprocess.run([unshare, "-m", "--propagation", "private", "true"],
                           capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip("cannot create a mount namespace: %s" % probe.stderr.decode().strip())
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "log.sock"))
    sock.settimeout(0.2)
    wrap = [unshare, "-m", "--propagation", "private", "sh", "-c", PRIVATE_DEV_LOG, "sh",
            str(tmp_path)]
    return wrap, sock


def syslog_until(sock, pattern, timeout, proc):
    """Datagrams received until one matches pattern; fails after timeout."""
    rx, got = re.compile(pattern), []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            got.append(sock.recv(65536).decode(errors="replace"))
        except socket.timeout:
            if not proc.alive:
                break
            continue
        if rx.search(got[-1]):
            return got
    raise AssertionError("no syslog message matching %r within %.0f s; got %d:\n%s\n%s"
                         % (pattern, timeout, len(got), "\n".join(got[-10:]), proc.tail()))


def test_s_logs_to_syslog_not_stderr(group, tmp_path):
    wrap, sock = private_dev_log(tmp_path)
    try:
        relay = group.our_relay()
        name = kite_name("syslog")
        origin = group.origin(name)
        conn = pagekitec(group, relay_args(relay) + ["-s", "-a", "owrt-kite",
                                                     origin.port, "http", name, 0, SECRET],
                         wrap=wrap)
        wait_http(name, relay.port, "/", timeout=30)
        got = syslog_until(sock, r"owrt-kite: .*%s is flying" % re.escape(name), 20, conn)
        pri = int(re.match(r"<(\d+)>", got[-1]).group(1))
        assert pri >> 3 == 1, "facility is not LOG_USER: %r" % got[-1]
        assert "is flying" not in conn.stderr(), "-s still logs to stderr:\n" + conn.stderr()
        assert conn.stop(timeout=10) == 0
    finally:
        sock.close()


# ---------------------------------------------------------------- -V 46

class DdnsServer:
    """Records the paths of GET requests; answers "good" like up.pagekite.net."""

    def __init__(self):
        paths = self.paths = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "5")
                self.end_headers()
                self.wfile.write(b"good\n")

            def log_message(self, *a):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self):
        return "http://127.0.0.1:%d/up?hostname=%%s&myip=%%s&sign=%%s" % self.port

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("vflags,suffix", [
    (["-V", "46"], "&ipv=46"),
    (["-V", "64"], "&ipv=46"),
    (["-V4"], "&ipv=4"),
    (["-V", "6"], "&ipv=6"),
    ([], None),
])
def test_V_requests_dns_visibility(group, vflags, suffix):
    # libpagekite appends "&ipv=" + 4 and/or 6 to the dynamic DNS update.
    # The update URL is pointed at a local server with our --ddns-url (the
    # original tool had no way to do that; the default is up.pagekite.net).
    relay = group.our_relay()
    ddns = group.add(DdnsServer())
    name = kite_name("ddns")
    origin = group.origin(name)
    conn = pagekitec(group, relay_args(relay) + vflags + [
        "--ddns-url", ddns.url(), origin.port, "http", name, 0, SECRET])
    wait_until("a dynamic DNS update", lambda: ddns.paths, 30, conn)
    path = ddns.paths[0]
    assert path.startswith("/up?hostname=%s&myip=127.0.0.1&sign=" % name), path
    if suffix:
        assert path.endswith(suffix), path
    else:
        assert "ipv=" not in path, path


def test_V_accepted_without_dynamic_dns(group):
    # -S (static setup) sends no DNS updates; -V is still accepted.
    relay = group.our_relay()
    name = kite_name("vstatic")
    origin = group.origin(name)
    conn = pagekitec(group, relay_args(relay) + ["-S", "-V", "46",
                                                 origin.port, "http", name, 0, SECRET])
    conn.wait_status("FLYING", timeout=30)


# ---------------------------------------------------------------- exit codes

KITE = ["80", "http", kite_name("x"), "80", SECRET]


@pytest.mark.parametrize("args", [
    [],
    KITE[:4],
    KITE + KITE[:2],
    ["-Z"] + KITE,                 # in libpagekite's getopt string, but not handled
    ["-P", "x", "-F", "127.0.0.1"] + KITE,
    ["-B", "x"] + KITE,
    ["-c", "x"] + KITE,
    ["-E", "x"] + KITE,
    ["-n", "x"] + KITE,
    ["-V"],
    ["abc", "http", kite_name("x"), "80", SECRET],
    ["80", "http", kite_name("x"), "port", SECRET],
], ids=["none", "4-args", "7-args", "Z", "P", "B", "c", "E", "n", "V-no-value", "lport",
        "pport"])
def test_bad_usage_exits_2(args):
    p = run_pagekitec(args)
    assert p.returncode == EXIT_USAGE, (p.returncode, p.stderr)
    assert p.stderr.strip(), "no message for bad usage"


def test_unwritable_status_file_exits_7(tmp_path):
    p = run_pagekitec(["-Y", tmp_path / "no-such-dir" / "status.json",
                       "-I", "-F", "127.0.0.1", "-P", free_port()] + KITE)
    assert p.returncode == EXIT_STATUS_FILE, (p.returncode, p.stderr)
    assert "status.json" in p.stderr, p.stderr


def test_kite_the_library_refuses_exits_3():
    # A raw kite needs a public port: pagekite_add_kite() fails.
    p = run_pagekitec(["-I", "-F", "127.0.0.1", "-P", free_port(),
                       "22", "raw", kite_name("x"), "0", SECRET])
    assert p.returncode == EXIT_ADD_KITE, (p.returncode, p.stderr)
    assert "pagekite_add_kite" in p.stderr, p.stderr


def test_relay_the_library_refuses_exits_4():
    p = run_pagekitec(["-I", "-F", "not a host name"] + KITE)
    assert p.returncode == EXIT_FRONTENDS, (p.returncode, p.stderr)
    assert "not a host name" in p.stderr, p.stderr


def test_rejected_kite_keeps_running(group, tmp_path):
    relay = group.our_relay(secret=WRONG_SECRET)
    status = tmp_path / "status.txt"
    name = kite_name("rejected")
    conn = pagekitec(group, relay_args(relay) + ["-Y", "text:%s" % status,
                                                 "80", "http", name, 0, SECRET])
    conn.wait_status("REJECTED", timeout=20)
    wait_until("status file says rejected",
               lambda: "pagekitec_status: rejected" in status.read_text(), 10, conn)
    assert "pagekitec_status_code: 60" in status.read_text()
    time.sleep(2)
    assert conn.alive, "a rejected kite ended pagekitec (libpagekite's keeps retrying)"


def test_rejected_kite_with_B_exits_100(group):
    # libpagekite adds 10 per logged error and exits when the sum passes
    # 10 x N, so -B 1 ends it on the second error (here: the kite name does
    # not resolve, then the rejection), within seconds.
    relay = group.our_relay(secret=WRONG_SECRET)
    conn = pagekitec(group, relay_args(relay) + ["-B", "1",
                                                 "80", "http", kite_name("bail"), 0, SECRET])
    # A rejection weighs ten faults (PK_FAULTS_PER_REJECTION): -B 1 ends it
    # from the library's thread, before the CLI prints the REJECTED status.
    deadline = time.monotonic() + 30
    while conn.alive and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not conn.alive, "pagekitec -B 1 still running 30 s after a rejection"
    assert conn.popen.returncode == EXIT_BAIL, conn.tail()
    assert "too many errors" in conn.tail(), conn.tail()


# ---------------------------------------------------------------- signals

@pytest.fixture
def flying(group, tmp_path):
    relay = group.our_relay()
    name = kite_name("signals")
    origin = group.origin(name)
    status = tmp_path / "status.json"
    conn = pagekitec(group, relay_args(relay) + ["-Y", "json:%s" % status,
                                                 origin.port, "http", name, 0, SECRET])
    conn.wait_status("FLYING", timeout=30)
    return conn, status


def test_sigusr1_sigusr2_keep_running_and_dump_state(flying):
    conn, _status = flying
    conn.popen.send_signal(signal.SIGUSR1)
    conn.popen.send_signal(signal.SIGUSR2)
    # The connector's DDNS update may be in flight (UPDATING_DNS, issue 16).
    conn.wait_for(r"state/status: (FLYING|UPDATING_DNS) ", timeout=10, where="err",
                  what="SIGUSR2 state dump")
    conn.wait_for(r"state/kites_live: 1\b", timeout=5, where="err", what="live kites in dump")
    time.sleep(0.5)
    assert conn.alive, "pagekitec died on SIGUSR1/SIGUSR2"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT, signal.SIGTERM],
                         ids=["INT", "QUIT", "TERM"])
def test_stop_signals_exit_0_and_status_file_says_shutdown(flying, sig):
    conn, status = flying
    assert '"pagekitec_status": "flying"' in status.read_text()
    assert conn.stop(timeout=10, sig=sig) == 0
    text = status.read_text()
    assert '"pagekitec_status": "shutdown"' in text, text
    assert '"pagekitec_status_code": 0' in text, text


# ---------------------------------------------------------------- -r URL

def test_r_is_accepted(group):
    relay = group.our_relay()
    name = kite_name("rurl")
    origin = group.origin(name)
    conn = pagekitec(group, relay_args(relay) + ["-r", "https://offline.example.test/",
                                                 origin.port, "http", name, 0, SECRET])
    conn.wait_status("FLYING", timeout=30)
    wait_http(name, relay.port, "/", timeout=10)


def test_r_url_framed_in_the_503_page(group):
    # libpagekite: when the origin is down, the connector's 503 page frames
    # URL?&where=BE&v=...&proto=...&domain=...&relay_ip=... (default
    # https://pagekite.net/offline/).
    relay = group.our_relay()
    name = kite_name("rurl503")
    conn = pagekitec(group, relay_args(relay) + ["-r", "https://offline.example.test/",
                                                 free_port(), "http", name, 0, SECRET])
    conn.wait_status("FLYING", timeout=30)
    status, body = get_via("127.0.0.1", relay.port, name)
    assert status == 503, (status, body[:300])
    assert b"https://offline.example.test/?" in body and b"where=BE" in body, body[:600]


# ---------------------------------------------------------------- the live status line

def _read_pty(fd, buf, pattern, timeout):
    """Reads the terminal side into buf[0] until pattern matches; the match."""
    import select
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, buf[0])
        if m:
            return m
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            try:
                buf[0] += os.read(fd, 65536).decode("utf-8", "replace")
            except OSError:
                break
    return re.search(pattern, buf[0])


def test_live_status_line_on_a_terminal(group, tmp_path):
    """On a terminal pagekitec keeps one status line (doc/CLI.md), now drawn
    from pagekite_next_events: FLYING with the kite and tunnel, then the
    bytes of a request; log lines go to stderr as "<seq> t=<unix time> text"
    with increasing sequence numbers."""
    import pty
    require_executable(PAGEKITEC, "pagekitec")
    relay = group.our_relay()
    name = kite_name("tty")
    origin = group.origin(name)
    master, slave = pty.openpty()
    err = open(tmp_path / "stderr.txt", "w+")
    p = subprocess.Popen([str(PAGEKITEC)] + [str(a) for a in relay_args(relay) + [
        origin.port, "http", name, 0, SECRET]], stdin=subprocess.DEVNULL, stdout=slave,
        stderr=err)
    os.close(slave)
    buf = [""]
    try:
        line = r"\r(FLYING) \| kites 1 \| tunnels 1 \| streams \d+ \| in ([^|]+) \| out ([^\x1b]+)\x1b\[K"
        assert _read_pty(master, buf, line, 30), buf[0][-2000:]
        wait_http(name, relay.port)
        m = _read_pty(master, buf, r"\rFLYING \| kites 1 \| tunnels 1 \| streams \d+ \| in "
                      r"[1-9][^|]* \| out [1-9][^\x1b]*\x1b\[K", 10)
        assert m, buf[0][-2000:]
    finally:
        p.send_signal(signal.SIGINT)
        rc = p.wait(15)
        os.close(master)
    assert rc == 0
    err.seek(0)
    # One event a line, pagekite.py's key=value style (doc/CLI.md "Output"):
    # ts=HEX; t=ISO 8601 UTC; ll=SEQ (hex); LEVEL=text.  A warning that the
    # SECRET is on the command line comes first.
    lines = [l for l in err.read().splitlines() if not l.startswith("pagekitec: warning:")]
    logged = [re.match(r"^ts=([0-9a-f]+); t=\d{4}-\d\d-\d\dT[\d:]{8}\.\d{3}Z; ll=([0-9a-f]+); "
                       r"(err|warn|info|debug)=\S", l) for l in lines]
    assert logged and all(logged), lines
    seqs = [int(m.group(2), 16) for m in logged]
    assert seqs == sorted(set(seqs)) and abs(int(logged[-1].group(1), 16) - time.time()) < 120
