"""PROXY protocol through the Python bindings: Connector.set_kite_proxy_protocol
(any time: the next stream follows the new setting) with a capturing raw
origin checking the exact v1/v2 bytes, and Relay.add_proxy_source with a
client that sends the header itself from the balancer's address."""

from __future__ import annotations

import http.server
import socket
import struct
import threading
import time

import pytest

from pkpy_helpers import DOMAIN, SECRET, dump, free_port, plain_flags, wait_kites_decided

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


class Capture:
    """Raw origin: records each connection's bytes up to b"hello\\n", answers ok."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.got = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
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

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the thread in accept()
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


class XffOrigin:
    """HTTP origin answering each request with its X-Forwarded-For."""

    def __init__(self):
        class H(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = (self.headers.get("X-Forwarded-For") or "-").encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def raw_hello(relay_port, name, pport, timeout=15.0):
    """CONNECT name:pport, send hello; (our source port) once the origin answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.create_connection(("127.0.0.1", relay_port), timeout=10) as s:
            s.sendall(b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (name.encode(), pport))
            head = b""
            while b"\r\n\r\n" not in head:
                d = s.recv(1)
                if not d:
                    break
                head += d
            if b" 200 " in head:
                s.sendall(b"hello\n")
                if s.recv(16) == b"ok\n":
                    return s.getsockname()[1]
        time.sleep(0.2)
    raise AssertionError("raw kite %s never answered" % name)


def test_set_kite_proxy_protocol_any_time(pk, managers):
    cap = Capture()
    try:
        r = pk.Relay(app_id="py-test-pp")
        managers.append(r)
        port = free_port()
        r.add_listener("127.0.0.1", port)
        r.add_domain("raw", "*." + DOMAIN, SECRET)
        r.set_raw_ports("virtual")
        r.start()
        name = "pp." + DOMAIN
        c = pk.Connector(app_id="py-test-pp", max_frontends=1, flags=plain_flags(pk))
        managers.append(c)
        c.add_kite("raw", name, SECRET, cap.port, public_port=port, origin_host="127.0.0.1")
        c.set_kite_proxy_protocol("raw", name, 1)  # before start
        c.add_frontend("127.0.0.1", port)
        c.start()
        wait_kites_decided(c)
        sport = raw_hello(port, name, port)
        assert cap.got[-1] == b"PROXY TCP4 127.0.0.1 127.0.0.1 %d %d\r\nhello\n" % (sport, port), \
            dump(c, r)
        c.set_kite_proxy_protocol("raw", name, 2)  # while running
        sport = raw_hello(port, name, port)
        assert cap.got[-1] == (V2_SIG + b"\x21\x11\x00\x0c" + socket.inet_aton("127.0.0.1") * 2
                               + struct.pack("!HH", sport, port) + b"hello\n")
        c.set_kite_proxy_protocol("raw-%d" % port, name, 0)  # proto with the port, too
        raw_hello(port, name, port)
        assert cap.got[-1] == b"hello\n"

        with pytest.raises(pk.PageKiteError, match="version 3 is not 0") as e:
            c.set_kite_proxy_protocol("raw", name, 3)
        assert e.value.function == "pagekite_set_kite_proxy_protocol"
        with pytest.raises(pk.PageKiteError, match="no kite raw:nope"):
            c.set_kite_proxy_protocol("raw", "nope", 1)
        with pytest.raises(TypeError):
            c.set_kite_proxy_protocol("raw", name, "1")
    finally:
        cap.close()


@pytest.fixture
def xff_origin():
    o = XffOrigin()
    yield o
    o.close()


def test_add_proxy_source(pk, managers, xff_origin):
    with pk.Relay() as r:
        r.add_proxy_source("10.0.0.0/8")
        r.add_proxy_source("::1")
        r.add_proxy_source("2001:db8::/32")
        for bad, why in (("10.0.0.0/33", "prefix length 33 is over 32"),
                         ("relay.example", "not an IPv4 or IPv6 network"),
                         ("", "empty network")):
            with pytest.raises(pk.PageKiteError, match=why) as e:
                r.add_proxy_source(bad)
            assert e.value.function == "pagekite_add_relay_proxy_source"
        for i in range(29):
            r.add_proxy_source("192.0.2.%d" % i)
        with pytest.raises(pk.PageKiteError, match="too many sources"):
            r.add_proxy_source("192.0.2.200")
    with pk.Connector() as c:
        assert not hasattr(c, "add_proxy_source")

    # Working: the header's client reaches the origin's X-Forwarded-For.
    r = pk.Relay(app_id="py-test-ppsrc")
    managers.append(r)
    port = free_port()
    r.add_listener("127.0.0.1", port)
    r.add_domain("http", "*." + DOMAIN, SECRET)
    r.add_proxy_source("127.0.0.2")
    r.start()
    with pytest.raises(pk.PageKiteError, match="before"):
        r.add_proxy_source("127.0.0.3")
    name = "ppsrc." + DOMAIN
    c = pk.Connector(app_id="py-test-ppsrc", max_frontends=1, flags=plain_flags(pk))
    managers.append(c)
    c.add_kite("http", name, SECRET, xff_origin.port, origin_host="127.0.0.1")
    c.enable_http_forwarding_headers(True)
    c.add_frontend("127.0.0.1", port)
    c.start()
    wait_kites_decided(c)
    req = b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % name.encode()
    hdr = b"PROXY TCP4 198.51.100.9 127.0.0.1 4000 80\r\n"
    deadline = time.monotonic() + 15
    while True:
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(10)
        with s:
            s.connect(("127.0.0.1", port))
            s.sendall(hdr + req)
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        if b" 200 " in got[:16] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got.startswith(b"HTTP/1.") and b" 200 " in got[:16], got[:300]
    assert got.partition(b"\r\n\r\n")[2] == b"198.51.100.9", got


def test_access_rules_see_the_balancers_client(pk, managers, xff_origin):
    """The client address from the PROXY header is the one access rules
    judge: the default plugins' access.allow list admits 198.51.100.0/24
    and refuses 203.0.113.1 (403), though both came from the balancer."""
    r = pk.Relay(app_id="py-test-ppacl")
    managers.append(r)
    port = free_port()
    r.add_listener("127.0.0.1", port)
    r.add_domain("http", "*." + DOMAIN, SECRET)
    r.add_proxy_source("127.0.0.2")
    r.enable_lua_plugins(True, ["access.allow=*.%s:198.51.100.0/24" % DOMAIN])
    r.start()
    name = "ppacl." + DOMAIN
    c = pk.Connector(app_id="py-test-ppacl", max_frontends=1, flags=plain_flags(pk))
    managers.append(c)
    c.add_kite("http", name, SECRET, xff_origin.port, origin_host="127.0.0.1")
    c.add_frontend("127.0.0.1", port)
    c.start()
    wait_kites_decided(c)
    req = b"GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % name.encode()

    def status_for(src):
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        s.settimeout(10)
        with s:
            s.connect(("127.0.0.1", port))
            s.sendall(b"PROXY TCP4 %s 127.0.0.1 4000 80\r\n" % src.encode() + req)
            got = b""
            while True:
                d = s.recv(65536)
                if not d:
                    break
                got += d
        return got.split(b" ", 2)[1] if got.startswith(b"HTTP/") else got

    deadline = time.monotonic() + 15
    while status_for("198.51.100.9") != b"200" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert status_for("198.51.100.9") == b"200", dump(c, r)
    assert status_for("203.0.113.1") == b"403", dump(c, r)
