"""The connector in setups its users run (issue "Connector in the field"):
IPv6 literal relays and origins, a name whose first address refuses, the
relay's reasons for a refused kite reaching the CLI, protocol typos, and a
refused kite asked for again on the live tunnel with a back-off.

Real loopback sockets; the private /etc/hosts test uses a mount namespace
(unshare -m) for the connector process only.
"""

import os
import re
import shutil
import socket
import subprocess
import time

import pytest

from harness import PAGEKITEC, PAGEKITER, SECRET, Proc, free_port, kite_name, wait_http

pytestmark = pytest.mark.ours


def ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


def wait_accepts(host, port, proc, timeout=20):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.alive, proc.tail()
        with socket.socket(family, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError("%s:%d never accepted\n%s" % (host, port, proc.tail()))


def start_relay(tmp_path, listen="127.0.0.1", domains=None):
    port = free_port()
    argv = [PAGEKITER, "--ports=%d" % port, "--listen=%s" % listen,
            "--protos=http,https,raw,websocket"]
    for d in domains or ["http,https,raw,websocket:*.example.test:" + SECRET]:
        argv.append("--domain=" + d)
    relay = Proc("pagekiter", argv, tmp_path)
    wait_accepts(listen, port, relay)
    return relay, port


def start_connector(tmp_path, args, wrap=()):
    return Proc("pagekitec", list(wrap) + [PAGEKITEC, "-v"] + list(args), tmp_path)


def http_get_v6(port, host, timeout=10):
    with socket.create_connection(("::1", port), timeout=timeout) as s:
        s.sendall(("GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % host).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk


class Origin6:
    """A tiny HTTP origin on one address (::1 or 127.0.0.1)."""

    def __init__(self, host):
        import http.server
        import threading

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = ("origin on %s\n" % host).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        class Server(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

        self.server = Server((host, 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def procs():
    items = []
    yield items
    for p in reversed(items):
        if hasattr(p, "stop"):
            p.stop()
        else:
            p.close()


# ---------------------------------------------------------------- IPv6 literals

@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback here")
def test_ipv6_literal_relay_and_origin(tmp_path, procs):
    relay, port = start_relay(tmp_path, listen="::1")
    procs.append(relay)
    origin = Origin6("::1")
    procs.append(origin)
    name = kite_name("v6")
    conn = start_connector(tmp_path, ["--frontend", "[::1]:%d" % port,
                                      "[::1]:%d" % origin.port, "http", name, "0", SECRET])
    procs.append(conn)
    conn.wait_status("FLYING", timeout=20)
    reply = http_get_v6(port, name)
    assert b" 200 " in reply.split(b"\r\n")[0] and b"origin on ::1" in reply, reply[:300]


# ---------------------------------------------------------------- every address of a name

def private_hosts_wrap(tmp_path, lines):
    """argv prefix that runs a command with its own /etc/hosts (mount ns)."""
    if not shutil.which("unshare") or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a private /etc/hosts")
    hosts = tmp_path / "hosts"
    hosts.write_text("\n".join(lines) + "\n")
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cannot create a mount namespace: %s" % probe.stderr.decode().strip())
    return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts)]


def test_origin_name_tries_every_address(tmp_path, procs):
    """localhost resolves to ::1 first (as on many systems) while the origin
    listens on 127.0.0.1 only: the connector moves on to the next address
    instead of answering 503."""
    wrap = private_hosts_wrap(tmp_path, ["::1 localhost", "127.0.0.1 localhost"])
    relay, port = start_relay(tmp_path)
    procs.append(relay)
    origin = Origin6("127.0.0.1")
    procs.append(origin)
    name = kite_name("every")
    conn = start_connector(tmp_path, ["--frontend", "127.0.0.1:%d" % port,
                                      "localhost:%d" % origin.port, "http", name, "0", SECRET],
                           wrap=wrap)
    procs.append(conn)
    conn.wait_status("FLYING", timeout=20)
    for _ in range(3):  # every request, not only the first
        wait_http(name, port, "/", timeout=10)
    conn.wait_for(r"Connecting to ::1 failed \(connection refused\): trying the next", timeout=5,
                  where="err", what="the move to the next address")
    # The address that answered is tried first from then on.
    time.sleep(0.5)
    assert len(re.findall(r"Connecting to ::1 failed", conn.stderr())) == 1, conn.tail()


# ---------------------------------------------------------------- reasons

@pytest.mark.parametrize("case", ["signature", "unknown", "port"])
def test_relay_reason_reaches_the_cli(tmp_path, procs, case):
    relay, port = start_relay(tmp_path)
    procs.append(relay)
    origin = Origin6("127.0.0.1")
    procs.append(origin)
    name = {"unknown": "nobody.elsewhere.test"}.get(case, kite_name("why"))
    secret = "wrong-secret" if case == "signature" else SECRET
    proto, pport = ("raw", "2222") if case == "port" else ("http", "0")
    conn = start_connector(tmp_path, ["--frontend", "127.0.0.1:%d" % port,
                                      "127.0.0.1:%d" % origin.port, proto, name, pport, secret])
    procs.append(conn)
    t0 = time.monotonic()
    conn.wait_status("REJECTED", timeout=20)
    assert time.monotonic() - t0 < 15
    conn.wait_for(r"rejected by relay: %s\b" % case, timeout=5, where="err",
                  what="the relay's reason in the connector's log")


def test_protocol_typo_refused_at_start(tmp_path):
    p = subprocess.run([str(PAGEKITEC), "--frontend", "127.0.0.1:9", "127.0.0.1:80", "htp",
                        kite_name("typo"), "0", SECRET], capture_output=True, text=True,
                       timeout=20)
    assert p.returncode != 0
    # The library's typed error names the argument and the protocols it takes.
    assert "proto 'htp' is not http, https, raw or websocket" in p.stderr, p.stderr


# ---------------------------------------------------------------- asked again

def test_refused_kite_asked_again_on_the_live_tunnel(tmp_path, procs):
    """One kite flies, the other is refused: the connector asks for the
    refused one again on the same tunnel (no reconnect), with a back-off
    that doubles (hk_min 1 s here: asks at about 1, 3, 7 s)."""
    relay, port = start_relay(tmp_path, domains=[
        "http:ok.example.test:" + SECRET, "http:bad.example.test:other-secret"])
    procs.append(relay)
    origin = Origin6("127.0.0.1")
    procs.append(origin)
    conn = start_connector(tmp_path, [
        "--frontend", "127.0.0.1:%d" % port, "--housekeeping-min=1",
        "127.0.0.1:%d" % origin.port, "http", "ok.example.test", "0", SECRET,
        "127.0.0.1:%d" % origin.port, "http", "bad.example.test", "0", SECRET])
    procs.append(conn)
    conn.wait_for(r"rejected by relay: signature", timeout=20, where="err", what="rejection")
    wait_http("ok.example.test", port, "/", timeout=10)
    time.sleep(8)
    log = conn.stderr()
    asks = len(re.findall(r"Asking again for refused kites", log))
    assert 2 <= asks <= 4, "%d asks in ~8 s\n%s" % (asks, log[-3000:])
    assert len(re.findall(r"Connected to relay", log)) == 1, log[-3000:]
    rejections = len(re.findall(r"Rejected kite http:bad\.example\.test", relay.stderr() +
                                relay.stdout()))
    assert rejections >= 1 + asks - 1, relay.tail()
    wait_http("ok.example.test", port, "/", timeout=10)  # the good kite kept flying


# ---------------------------------------------------------------- no blocking lookups

def test_slow_ddns_lookup_does_not_stall_the_tunnel(tmp_path, procs):
    """The DDNS host's lookup hangs (a name server that never answers): the
    lookup runs off the loop thread, so requests through the tunnel keep
    being served at once meanwhile."""
    import socket as _s
    import threading

    if os.geteuid() != 0:
        pytest.skip("needs root for a private resolv.conf and a port-53 listener")
    blackhole = _s.socket(_s.AF_INET, _s.SOCK_DGRAM)
    try:
        blackhole.bind(("127.0.0.77", 53))
    except OSError as e:
        pytest.skip("cannot bind 127.0.0.77:53: %s" % e)
    stop = threading.Event()
    queries = []

    def swallow():  # reads queries, never answers
        blackhole.settimeout(0.2)
        while not stop.is_set():
            try:
                queries.append(blackhole.recv(2048))
            except OSError:
                pass

    threading.Thread(target=swallow, daemon=True).start()
    try:
        resolv = tmp_path / "resolv.conf"
        resolv.write_text("nameserver 127.0.0.77\noptions timeout:5 attempts:1\n")
        wrap = ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                str(resolv)]
        relay, port = start_relay(tmp_path)
        procs.append(relay)
        origin = Origin6("127.0.0.1")
        procs.append(origin)
        name = kite_name("slowdns")
        conn = start_connector(tmp_path, [
            "--frontend", "127.0.0.1:%d" % port,
            "--ddns-url", "http://ddns.blackhole.test/?hostname=%s&myip=%s&sign=%s",
            "127.0.0.1:%d" % origin.port, "http", name, "0", SECRET], wrap=wrap)
        procs.append(conn)
        conn.wait_status("FLYING", timeout=20)
        conn.wait_for(r"DDNS update for %s" % re.escape(name), timeout=20, where="err",
                      what="the DDNS update starting")
        worst = 0.0
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            wait_http(name, port, "/", timeout=10)
            worst = max(worst, time.monotonic() - t0)
        assert queries, "the DDNS name was never looked up through the black hole"
        assert worst < 1.5, "a request took %.1f s while the DDNS lookup hung" % worst
    finally:
        stop.set()
        blackhole.close()


# ---------------------------------------------------------------- refused requests

def test_refused_requests_are_logged_once_a_second(tmp_path, procs):
    """With its connection limit full, the connector refuses requests with
    503 and logs one line a second with a count, not one line each."""
    import concurrent.futures
    import http.client

    relay, port = start_relay(tmp_path)
    procs.append(relay)
    origin = Origin6("127.0.0.1")
    procs.append(origin)
    name = kite_name("limit")
    conn = start_connector(tmp_path, ["--frontend", "127.0.0.1:%d" % port, "-c", "1",
                                      "127.0.0.1:%d" % origin.port, "http", name, "0", SECRET])
    procs.append(conn)
    conn.wait_status("FLYING", timeout=20)
    # One request holds the only slot (a client that sends half a request).
    hold = socket.create_connection(("127.0.0.1", port), timeout=10)
    hold.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n" % name).encode())
    time.sleep(0.5)

    def get(_):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/", headers={"Host": name})
        status = c.getresponse().status
        c.close()
        return status

    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        statuses = list(ex.map(get, range(200)))
    took = time.monotonic() - t0
    hold.close()
    assert statuses.count(503) >= 150, statuses
    time.sleep(1.2)
    lines = re.findall(r"No origin for .*; (\d+) more refused since the last line", conn.stderr())
    assert 1 <= len(lines) <= took + 3, (len(lines), took, conn.tail())
    assert len(lines) + sum(int(n) for n in lines) <= statuses.count(503)


# ---------------------------------------------------------------- certificate names

def test_dialled_ip_or_accepted_name_either_will_do(tmp_path, procs, tls_pki):
    """The relay's certificate carries IP:127.0.0.1 (and relay.example.test).
    Dialled as 127.0.0.1 it flies with an unrelated --fe_certname added too
    (either the dialled address or an accepted name is enough); a certificate
    that has neither is refused with both lists in the message."""
    port = free_port()
    relay = Proc("pagekiter", [PAGEKITER, "--ports=%d" % port, "--listen=127.0.0.1",
                               "--domain=http:*.example.test:" + SECRET,
                               "--tls-cert=%s" % tls_pki.relay_cert,
                               "--tls-key=%s" % tls_pki.relay_key], tmp_path)
    procs.append(relay)
    wait_accepts("127.0.0.1", port, relay)
    origin = Origin6("127.0.0.1")
    procs.append(origin)
    name = kite_name("ipcert")
    ok = start_connector(tmp_path, ["--frontend", "127.0.0.1:%d" % port, "--ca-file",
                                    str(tls_pki.ca), "--fe_certname", "other.example.test",
                                    "127.0.0.1:%d" % origin.port, "http", name, "0", SECRET])
    procs.append(ok)
    ok.wait_status("FLYING", timeout=20)
    wait_http(name, port, "/", timeout=10)
    ok.stop()
    bad = start_connector(tmp_path, ["--frontend", "localhost:%d" % port, "--ca-file",
                                     str(tls_pki.ca), "--fe_certname", "other.example.test",
                                     "127.0.0.1:%d" % origin.port, "http", name, "0", SECRET])
    procs.append(bad)
    bad.wait_for(r"the relay's certificate is for relay\.example\.test, 127\.0\.0\.1; "
                 r"expected one of: localhost, other\.example\.test", timeout=20, where="err",
                 what="the names on both sides")
