"""PROXY protocol (haproxy's proxy-protocol.txt), both ways, with real tools.

To origins: pagekitec --proxyproto NAME[=1|2] (pagekite_set_kite_proxy_protocol,
pagekite.py's +proxyproto) puts a PROXY header before each stream of a raw or
https (TLS passthrough) kite.  The origin is Debian's haproxy with
`bind ... accept-proxy`, answering with the address it parsed
(`http-request return ... %[src]:%[src_port]`), so the check is that
haproxy's parser accepts our header and finds the visitor's real address and
port in it.  A capturing origin checks the exact bytes of v1 and v2.

On relay listeners: pagekiter --proxy_protocol_from=CIDR
(pagekite_add_relay_proxy_source).  haproxy as a load balancer in front of
the relay (`send-proxy` / `send-proxy-v2`, from 127.0.0.2), a visitor from
127.0.0.3: the origin's X-Forwarded-For must name 127.0.0.3.  Then the bad
cases straight from the balancer's address: no header, garbage, oversized,
split a byte at a time, slow, LOCAL; and a PROXY header from an address that
is not a configured balancer (refused, 400).

Needs: apt-get install -y haproxy.  Loopback only; every process is started
here and stopped by PID; every wait is bounded.
"""

import json
import os
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time

import pytest

from harness import (DOMAIN, PAGEKITEC, SECRET, Kite, Proc, free_port, kite_name, port_accepts,
                     require_executable)

pytestmark = pytest.mark.ours

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
LB_SOURCE = "127.0.0.2"
CLIENT_SOURCE = "127.0.0.3"


@pytest.fixture(autouse=True)
def no_sanitizer_reports(tmp_path):
    """Under an ASan build (./run's sanitized stage), any report our
    processes wrote (leaks at exit included) fails the test.  Set up before
    the group, so checked after its processes were stopped."""
    yield
    bad = []
    for p in tmp_path.rglob("*.err"):
        text = p.read_text(errors="replace")
        if "Sanitizer" in text or "runtime error:" in text:
            bad.append("%s:\n%s" % (p, text[-3000:]))
    assert not bad, "\n".join(bad)


# ---------------------------------------------------------------- haproxy

class Haproxy:
    """haproxy -db -f CFG in the foreground; stop() by PID."""

    def __init__(self, logdir, name, config, ports):
        require_executable(HAPROXY, "haproxy (Debian package haproxy)")
        self.cfg = os.path.join(str(logdir), name + ".cfg")
        with open(self.cfg, "w") as f:
            f.write(config)
        check = subprocess.run([HAPROXY, "-c", "-f", self.cfg], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=30)
        assert check.returncode == 0, "haproxy -c:\n" + check.stdout.decode(errors="replace")
        self.proc = Proc(name, [HAPROXY, "-db", "-f", self.cfg], logdir)
        deadline = time.monotonic() + 15
        while not all(port_accepts(p) for p in ports):
            assert self.proc.alive, "haproxy exited\n" + self.proc.tail()
            assert time.monotonic() < deadline, "haproxy did not listen\n" + self.proc.tail()
            time.sleep(0.05)

    def stop(self):
        return self.proc.stop()


HAPROXY_GLOBAL = """global
  maxconn 200
defaults
  timeout connect 5s
  timeout client 30s
  timeout server 30s
"""


def origin_haproxy(group, pem=None):
    """An origin that requires a PROXY header (v1 or v2) and answers with the
    client address it found there; plain HTTP, and HTTPS when pem is given."""
    plain = free_port()
    cfg = HAPROXY_GLOBAL + """
frontend plain
  mode http
  bind 127.0.0.1:%d accept-proxy
  http-request return status 200 content-type text/plain lf-string "client=%%[src]:%%[src_port] dst=%%[dst]:%%[dst_port]\\n"
""" % plain
    ports = [plain]
    tls = None
    if pem:
        tls = free_port()
        cfg += """
frontend tls
  mode http
  bind 127.0.0.1:%d accept-proxy ssl crt %s
  http-request return status 200 content-type text/plain lf-string "tls client=%%[src]:%%[src_port]\\n"
""" % (tls, pem)
        ports.append(tls)
    group.add(Haproxy(group.logdir, "haproxy-origin", cfg, ports))
    return plain, tls


def read_http(sock, timeout=10.0):
    """One HTTP/1.x response (haproxy's have a Content-Length); (status, body)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(4096)
        if not data:
            break
        buf += data
    head, _, body = buf.partition(b"\r\n\r\n")
    if not head:
        return None, b""
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        data = sock.recv(4096)
        if not data:
            break
        body += data
    return int(head.split()[1]), body


def connect_raw(relay_port, kite, pport):
    """CONNECT kite:pport through the relay; the socket, ready for the origin."""
    sock = socket.create_connection(("127.0.0.1", relay_port), timeout=10)
    sock.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (kite, pport, kite, pport))
                 .encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(1)
        if not data:
            break
        buf += data
    status = buf.split(b"\r\n", 1)[0]
    if b" 200 " not in status + b" ":
        sock.close()
        return None
    return sock


def get_through_raw(relay_port, kite, pport):
    """GET / over a raw kite; (body, our source port) or (None, None)."""
    sock = connect_raw(relay_port, kite, pport)
    if sock is None:
        return None, None
    with sock:
        sport = sock.getsockname()[1]
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        try:
            status, body = read_http(sock)
        except OSError:
            return None, None
        return (body.decode() if status == 200 else None), sport


def get_through_https(relay_port, kite, ca):
    """GET / over TLS with SNI kite (passthrough to the origin)."""
    ctx = ssl.create_default_context(cafile=ca)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", relay_port), timeout=10)
    sport = raw.getsockname()[1]
    try:
        with ctx.wrap_socket(raw, server_hostname=kite) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            status, body = read_http(s)
            return (body.decode() if status == 200 else None), sport
    except (OSError, ssl.SSLError):
        raw.close()
        return None, None


def poll(fn, timeout=20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last[0] is not None:
            return last
        time.sleep(0.25)
    raise AssertionError("kite never answered through the relay (last %r)" % (last,))


def self_signed(tmp_path, name):
    pem = tmp_path / "origin.pem"
    key = tmp_path / "origin.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", str(key), "-out",
                    str(tmp_path / "origin.crt"), "-days", "2", "-subj", "/CN=" + name],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    pem.write_bytes((tmp_path / "origin.crt").read_bytes() + key.read_bytes())
    return str(pem)


# ---------------------------------------------------------------- to origins

@pytest.mark.parametrize("version", [1, 2])
def test_raw_kite_origin_haproxy_parses_header(group, version):
    """pagekitec --proxyproto NAME=V on a raw kite: haproxy (accept-proxy)
    sees the visitor's own address and source port, and the public port."""
    plain, _ = origin_haproxy(group)
    relay = group.our_relay(extra_args=["--rawports=virtual"])
    kite = Kite("raw", kite_name("pp-raw%d" % version), plain, relay.port)
    group.our_connector(relay, [kite], extra_args=["--proxyproto=%s=%d" % (kite.name, version)])
    body, sport = poll(lambda: get_through_raw(relay.port, kite.name, kite.pport))
    assert body.startswith("client=127.0.0.1:%d " % sport), body
    assert "dst=127.0.0.1:%d" % relay.port in body, body
    # A second visitor: its own port, so the address is per stream.
    body2, sport2 = get_through_raw(relay.port, kite.name, kite.pport)
    assert body2 == "client=127.0.0.1:%d dst=127.0.0.1:%d\n" % (sport2, relay.port)


@pytest.mark.parametrize("version", [1, 2])
def test_https_passthrough_kite_origin_haproxy_parses_header(group, tmp_path, version):
    """An https kite (TLS passed through to the origin): the PROXY header goes
    before the ClientHello, and haproxy (accept-proxy ssl) reads both."""
    name = kite_name("pp-tls%d" % version)
    pem = self_signed(tmp_path, name)
    _, tls = origin_haproxy(group, pem=pem)
    relay = group.our_relay()
    kite = Kite("https", name, tls, 0)
    group.our_connector(relay, [kite], extra_args=["--proxyproto=%s=%d" % (kite.name, version)])
    body, sport = poll(lambda: get_through_https(relay.port, kite.name, pem))
    assert body == "tls client=127.0.0.1:%d\n" % sport, body


class Capture:
    """A raw origin that records the first bytes of each connection, answers
    "ok\\n" and closes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.stopping = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                data = b""
                try:
                    while b"hello\n" not in data and len(data) < 4096:
                        d = c.recv(4096)
                        if not d:
                            break
                        data += d
                    self.got.append(data)
                    c.sendall(b"ok\n")
                except OSError:
                    pass

    def stop(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


def test_exact_header_bytes_v1_v2_and_off(group):
    """The bytes an origin gets: v1 text, v2 binary (TCP over IPv4, the
    visitor's address and port, the relay's address and the public port),
    then the stream; none once the setting is 0 (here: a kite without it)."""
    cap = group.add(Capture())
    relay = group.our_relay(extra_args=["--rawports=virtual"])
    k1 = Kite("raw", kite_name("pp-b1"), cap.port, relay.port)
    k2 = Kite("raw", kite_name("pp-b2"), cap.port, relay.port)
    k0 = Kite("raw", kite_name("pp-b0"), cap.port, relay.port)
    group.our_connector(relay, [k1, k2, k0],
                        extra_args=["--proxyproto", k1.name, "--proxyproto=%s=2" % k2.name])

    def send(kite):
        def once():
            sock = connect_raw(relay.port, kite.name, kite.pport)
            if sock is None:
                return None, None
            with sock:
                sport = sock.getsockname()[1]
                sock.sendall(b"hello\n")
                sock.settimeout(10)
                try:
                    ok = sock.recv(16)
                except OSError:
                    ok = b""
                return (cap.got[-1] if ok == b"ok\n" else None), sport
        return poll(once)

    got, sport = send(k1)
    assert got == b"PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\nhello\n" % (sport, relay.port)
    got, sport = send(k2)
    want = V2_SIG + b"\x21\x11\x00\x0c" + socket.inet_aton("127.0.0.1") * 2 + \
        struct.pack("!HH", sport, relay.port) + b"hello\n"
    assert got == want, got
    got, _ = send(k0)
    assert got == b"hello\n"


def test_pagekitec_proxyproto_usage_errors(tmp_path):
    require_executable(PAGEKITEC, "pagekitec")
    kite = ["8000", "raw", "a." + DOMAIN, "443", SECRET]
    for arg, want in (("--proxyproto=b." + DOMAIN, "names no kite"),
                      ("--proxyproto=a.%s=3" % DOMAIN, "expected NAME, NAME=1 or NAME=2"),
                      ("--proxyproto==1", "expected NAME")):
        r = subprocess.run([str(PAGEKITEC), "--frontend", "127.0.0.1:1", arg] + kite,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        assert r.returncode == 2, r.stdout
        assert want in r.stdout.decode(), r.stdout


# ---------------------------------------------------------------- on relay listeners

def lb_stack(group, origin, version=None, extra=()):
    """A relay that takes PROXY headers from 127.0.0.2, a connector with an
    http kite on origin; with version, haproxy as the balancer in front."""
    relay = group.our_relay(extra_args=["--proxy_protocol_from=%s/32" % LB_SOURCE] + list(extra))
    kite = Kite("http", kite_name("pp-lb"), origin.port, 0)
    group.our_connector(relay, [kite])
    lb = None
    if version:
        lb = free_port()
        cfg = HAPROXY_GLOBAL + """
frontend lb
  mode tcp
  bind 127.0.0.1:%d
  default_backend relay
backend relay
  mode tcp
  server r 127.0.0.1:%d %s source %s
""" % (lb, relay.port, "send-proxy" if version == 1 else "send-proxy-v2", LB_SOURCE)
        group.add(Haproxy(group.logdir, "haproxy-lb", cfg, [lb]))
    return relay, kite, lb


def from_addr(src, port, payload, timeout=15.0, pause=0.0):
    """Connect from src to 127.0.0.1:port, send payload (a byte at a time with
    pause); return everything read until the peer closes or timeout."""
    s = socket.socket()
    s.bind((src, 0))
    s.settimeout(timeout)
    try:
        s.connect(("127.0.0.1", port))
        sport = s.getsockname()[1]
        if pause:
            for i in range(len(payload)):
                s.sendall(payload[i:i + 1])
                time.sleep(pause)
        else:
            s.sendall(payload)
        got = b""
        try:
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        except ConnectionResetError:
            pass
        return got, sport
    finally:
        s.close()


def headers_request(host):
    return ("GET /headers HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode()


def xff_of(resp):
    head, _, body = resp.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), resp[:300]
    return json.loads(body.decode())["headers"].get("x-forwarded-for")


def wait_kite(port, host, src, header=b""):
    deadline = time.monotonic() + 20
    while True:
        got, _ = from_addr(src, port, header + headers_request(host))
        if got.startswith(b"HTTP/1.1 200"):
            return got
        assert time.monotonic() < deadline, "kite never served: %r" % got[:200]
        time.sleep(0.25)


@pytest.mark.parametrize("version", [1, 2])
def test_haproxy_load_balancer_in_front_of_relay(group, origin, version):
    """haproxy send-proxy(-v2) from 127.0.0.2 -> relay: the visitor's address
    (127.0.0.3) reaches the origin's X-Forwarded-For, through the relay's
    RIP/RPort and the connector."""
    relay, kite, lb = lb_stack(group, origin, version)
    resp = wait_kite(lb, kite.name, CLIENT_SOURCE)
    assert xff_of(resp) == CLIENT_SOURCE
    # The relay logs the visitor and the balancer it came through.
    relay.proc.wait_for(r"Connection from 127\.0\.0\.3:\d+ via load balancer 127\.0\.0\.2", 10)


def v1(src, sport, dport=80):
    return b"PROXY TCP4 %s 127.0.0.1 %d %d\r\n" % (src.encode(), sport, dport)


def v2(src, sport, dport=80, cmd=0x21):
    return V2_SIG + bytes([cmd, 0x11]) + b"\x00\x0c" + socket.inet_aton(src) + \
        socket.inet_aton("127.0.0.1") + struct.pack("!HH", sport, dport)


def test_relay_proxy_headers_from_the_balancer(group, origin):
    relay, kite, _ = lb_stack(group, origin)
    host = kite.name
    # v1 and v2 whole, then split a byte at a time across reads.
    resp = wait_kite(relay.port, host, LB_SOURCE, v1("198.51.100.7", 4242))
    assert xff_of(resp) == "198.51.100.7"
    resp, _ = from_addr(LB_SOURCE, relay.port, v2("203.0.113.9", 4343) + headers_request(host))
    assert xff_of(resp) == "203.0.113.9"
    resp, _ = from_addr(LB_SOURCE, relay.port, v1("192.0.2.1", 1) + headers_request(host),
                        pause=0.002)
    assert xff_of(resp) == "192.0.2.1"
    resp, _ = from_addr(LB_SOURCE, relay.port, v2("192.0.2.2", 2) + headers_request(host),
                        pause=0.002)
    assert xff_of(resp) == "192.0.2.2"
    # IPv6 client in a v1 header.
    resp, _ = from_addr(LB_SOURCE, relay.port,
                        b"PROXY TCP6 2001:db8::5 ::1 5 80\r\n" + headers_request(host))
    assert xff_of(resp) == "2001:db8::5"
    # LOCAL (a health check) and UNKNOWN: the balancer's own address.
    resp, _ = from_addr(LB_SOURCE, relay.port,
                        V2_SIG + b"\x20\x00\x00\x00" + headers_request(host))
    assert xff_of(resp) == LB_SOURCE
    resp, _ = from_addr(LB_SOURCE, relay.port, b"PROXY UNKNOWN\r\n" + headers_request(host))
    assert xff_of(resp) == LB_SOURCE


@pytest.mark.parametrize("payload", [
    pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="no-header"),
    pytest.param(b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\nGET / HTTP/1.1\r\n\r\n", id="v1-short"),
    pytest.param(b"PROXY TCP4 999.1.1.1 127.0.0.1 1 2\r\nGET / HTTP/1.1\r\n\r\n", id="v1-badip"),
    pytest.param(b"PROXY UNKNOWN " + b"x" * 200 + b"\r\n", id="v1-oversized"),
    pytest.param(V2_SIG + b"\x21\x11\xff\xff" + b"\x00" * 300, id="v2-oversized"),
    pytest.param(V2_SIG + b"\x21\x12\x00\x0c" + b"\x00" * 12, id="v2-udp"),
    pytest.param(V2_SIG + b"\x31\x11\x00\x0c" + b"\x00" * 12, id="v2-version3"),
])
def test_relay_refuses_bad_headers_from_the_balancer(group, origin, payload):
    """Without a valid header, a balancer's connection is closed at once,
    with nothing sent back (the relay never got to read the request)."""
    relay, kite, _ = lb_stack(group, origin)
    wait_kite(relay.port, kite.name, LB_SOURCE, v1("192.0.2.1", 1))
    t0 = time.monotonic()
    got, _ = from_addr(LB_SOURCE, relay.port, payload, timeout=8)
    assert got == b""
    assert time.monotonic() - t0 < 5
    # The relay says why, in its log (default verbosity).
    relay.proc.wait_for(r"Closing a connection from load balancer 127\.0\.0\.2: "
                        r"(bad PROXY v[12] header|not a PROXY protocol header)", 5)
    # And the relay still serves.
    resp, _ = from_addr(LB_SOURCE, relay.port, v1("192.0.2.3", 3) + headers_request(kite.name))
    assert xff_of(resp) == "192.0.2.3"


def test_proxy_header_from_other_sources_is_bad_input(group, origin):
    """A PROXY header from an address that is not a configured balancer is
    not believed: 400 and close; plain requests from there still work."""
    relay, kite, _ = lb_stack(group, origin)
    wait_kite(relay.port, kite.name, "127.0.0.1")
    got, _ = from_addr("127.0.0.1", relay.port,
                       v1("198.51.100.7", 4242) + headers_request(kite.name))
    assert got.startswith(b"HTTP/1.1 400") or got.startswith(b"HTTP/1.0 400"), got[:200]
    assert b"198.51.100.7" not in got
    got, _ = from_addr("127.0.0.1", relay.port, v2("198.51.100.7", 4242) + headers_request(kite.name))
    assert b" 400 " in got.split(b"\r\n", 1)[0] or got == b"", got[:200]
    resp, _ = from_addr("127.0.0.1", relay.port, headers_request(kite.name))
    assert xff_of(resp) == "127.0.0.1"


@pytest.mark.slow
def test_slow_header_is_timed_out(group, origin):
    """Half a header, then silence: closed by the relay's first-bytes timeout
    (10 s), not held forever."""
    relay, kite, _ = lb_stack(group, origin)
    wait_kite(relay.port, kite.name, LB_SOURCE, v1("192.0.2.1", 1))
    s = socket.socket()
    s.bind((LB_SOURCE, 0))
    s.settimeout(30)
    with s:
        s.connect(("127.0.0.1", relay.port))
        s.sendall(b"PROXY TCP4 192.0.2.1 ")
        t0 = time.monotonic()
        assert s.recv(100) == b""
        took = time.monotonic() - t0
    assert 8 <= took < 25, took


def test_bad_proxy_source_is_refused_at_start(group):
    """pagekiter --proxy_protocol_from=NOT-A-NETWORK does not start."""
    from harness import OurRelay
    relay = OurRelay(group.logdir, extra_args=["--proxy_protocol_from=10.0.0.0/33"])
    p = Proc("pagekiter-bad", relay.argv(), group.logdir)
    try:
        p.popen.wait(20)
    finally:
        p.stop()
    assert p.returncode == 1
    assert "prefix length 33 is over 32" in p.output(), p.output()


def test_client_address_through_balancer_relay_connector_origin(group):
    """Both ends: haproxy send-proxy-v2 -> relay -> pagekitec --proxyproto
    -> haproxy accept-proxy origin: the origin sees the visitor (127.0.0.3)
    and its source port."""
    plain, _ = origin_haproxy(group)
    relay = group.our_relay(extra_args=["--rawports=virtual",
                                        "--proxy_protocol_from=%s" % LB_SOURCE])
    kite = Kite("raw", kite_name("pp-both"), plain, relay.port)
    group.our_connector(relay, [kite], extra_args=["--proxyproto=%s" % kite.name])
    lb = free_port()
    cfg = HAPROXY_GLOBAL + """
frontend lb
  mode tcp
  bind 127.0.0.1:%d
  default_backend relay
backend relay
  mode tcp
  server r 127.0.0.1:%d send-proxy-v2 source %s
""" % (lb, relay.port, LB_SOURCE)
    group.add(Haproxy(group.logdir, "haproxy-lb", cfg, [lb]))
    req = b"CONNECT %s:%d HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % (
        kite.name.encode(), relay.port)
    deadline = time.monotonic() + 20
    while True:
        got, sport = from_addr(CLIENT_SOURCE, lb, req)
        if b"client=" in got or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert b"client=%s:%d dst=" % (CLIENT_SOURCE.encode(), sport) in got, got


@pytest.mark.parametrize("version", [1, 2])
def test_ipv6_client_from_balancer_reaches_origin_header(group, version):
    """A balancer reports an IPv6 visitor; the relay passes it on (RIP) and
    the connector's header to the origin is TCP6 with that address and port,
    the destination :: (the relay was reached over IPv4)."""
    cap = group.add(Capture())
    relay = group.our_relay(extra_args=["--rawports=virtual",
                                        "--proxy_protocol_from=%s" % LB_SOURCE])
    kite = Kite("raw", kite_name("pp-v6-%d" % version), cap.port, relay.port)
    group.our_connector(relay, [kite], extra_args=["--proxyproto=%s=%d" % (kite.name, version)])
    req = b"PROXY TCP6 2001:db8::5 ::1 5555 443\r\nCONNECT %s:%d HTTP/1.1\r\n\r\nhello\n" % (
        kite.name.encode(), relay.port)
    deadline = time.monotonic() + 20
    while True:
        got, _ = from_addr(LB_SOURCE, relay.port, req, timeout=5)
        if got.endswith(b"ok\n") or time.monotonic() > deadline:
            break
        time.sleep(0.25)
    assert got.endswith(b"ok\n"), got
    if version == 1:
        assert cap.got[-1] == b"PROXY TCP6 2001:db8::5 :: 5555 %d\r\nhello\n" % relay.port
    else:
        assert cap.got[-1] == (V2_SIG + b"\x21\x21\x00\x24"
                               + socket.inet_pton(socket.AF_INET6, "2001:db8::5")
                               + b"\x00" * 16 + struct.pack("!HH", 5555, relay.port) + b"hello\n")


@pytest.mark.interop
def test_header_behind_pagekite_py_relay(group):
    """Behind pagekite.py as the relay (its RIP/RPort), pagekitec's header
    names the visitor as pagekite.py reported it."""
    cap = group.add(Capture())
    relay = group.pk_relay()
    kite = Kite("raw", kite_name("pp-pkpy"), cap.port, relay.port)
    group.our_connector(relay, [kite], extra_args=["--proxyproto=%s" % kite.name])
    deadline = time.monotonic() + 30
    while True:
        sock = connect_raw(relay.port, kite.name, kite.pport)
        got = b""
        sport = None
        if sock is not None:
            with sock:
                sport = sock.getsockname()[1]
                sock.sendall(b"hello\n")
                sock.settimeout(10)
                try:
                    got = sock.recv(16)
                except OSError:
                    got = b""
        if got == b"ok\n" or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert got == b"ok\n"
    assert cap.got[-1] == b"PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\nhello\n" % (sport, relay.port)
