"""Connector behaviour across several relays, the tick timer and bail-on-errors.

Self-contained: starts pagekiter relays, a threaded origin, and drives the
library through ctypes (pkctypes) or the pagekitec CLI.
"""
import http.client
import http.server
import os
import socket
import subprocess
import threading
import time

import pytest

import pkloop
from pkloop import BUILD, free_port, get, stop

import pkctypes

SECRET = "relays-secret-42"
pytestmark = pytest.mark.ours




class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes

    def do_GET(self):
        body = b"relays-ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def origin():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def relay(tmp_path, port, name):
    log = open(tmp_path / f"{name}.log", "w")
    p = subprocess.Popen([f"{BUILD}/pagekiter", "--listen=127.0.0.1", f"--ports={port}",
                          f"--domain=http:*.relays.test:{SECRET}"], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return p
        except OSError:
            time.sleep(0.05)
    raise AssertionError("relay did not start")






def served(port, host, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if get(port, host, timeout=1) == (200, b"relays-ok"):
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


@pytest.fixture
def lib():
    return pkctypes.load()


def test_spare_relay_flies_too_and_failover(tmp_path, origin, lib):
    """want_spare_frontends(1): the kite flies on both relays; killing one
    leaves the other serving without a gap in availability."""
    p1, p2 = free_port(), free_port()
    r1, r2 = relay(tmp_path, p1, "r1"), relay(tmp_path, p2, "r2")
    pk = pkctypes.PageKite(lib)
    try:
        assert pk.add_kite("http", "spare.relays.test", 0, SECRET, "127.0.0.1", origin) == 0
        assert pk.add_frontend("127.0.0.1", p1) == 1
        assert pk.add_frontend("127.0.0.1", p2) == 1
        assert lib.pagekite_want_spare_frontends(pk.mgr, 1) == 0
        assert pk.thread_start() == 0
        assert served(p1, "spare.relays.test") and served(p2, "spare.relays.test")
        assert pk.get_counter(pkctypes.PK_COUNTER_TUNNELS) == 2
        stop(r1)
        assert get(p2, "spare.relays.test") == (200, b"relays-ok")
    finally:
        pk.close()
        stop(r1)
        stop(r2)


def test_failover_to_second_relay(tmp_path, origin, lib):
    """One tunnel at a time: when its relay dies, the connector moves to the
    other relay."""
    p1, p2 = free_port(), free_port()
    r1, r2 = relay(tmp_path, p1, "r1"), relay(tmp_path, p2, "r2")
    pk = pkctypes.PageKite(lib)
    try:
        assert pk.add_kite("http", "fo.relays.test", 0, SECRET, "127.0.0.1", origin) == 0
        assert pk.add_frontend("127.0.0.1", p1) == 1
        assert pk.add_frontend("127.0.0.1", p2) == 1
        assert pk.thread_start() == 0
        assert pk.wait_status(pkctypes.PK_STATUS_FLYING, 10)
        first = p1 if served(p1, "fo.relays.test", 2) else p2
        other = p2 if first == p1 else p1
        stop(r1 if first == p1 else r2)
        t0 = time.time()
        assert served(other, "fo.relays.test", 10), pk.get_log()
        print(f"failover took {time.time() - t0:.2f} s")
    finally:
        pk.close()
        stop(r1)
        stop(r2)


def test_tick_timer_off_then_manual_tick(tmp_path, origin, lib):
    """With the tick timer off, nothing reconnects until pagekite_tick()."""
    port = free_port()
    pk = pkctypes.PageKite(lib)
    r = None
    try:
        assert pk.add_kite("http", "tick.relays.test", 0, SECRET, "127.0.0.1", origin) == 0
        assert pk.add_frontend("127.0.0.1", port) == 1
        assert lib.pagekite_enable_tick_timer(pk.mgr, 0) == 0
        assert pk.thread_start() == 0
        r = relay(tmp_path, port, "r")
        time.sleep(1.5)
        assert pk.get_status() != pkctypes.PK_STATUS_FLYING
        deadline = time.time() + 10
        while time.time() < deadline and pk.get_status() != pkctypes.PK_STATUS_FLYING:
            assert lib.pagekite_tick(pk.mgr) == 0
            time.sleep(0.3)
        assert pk.get_status() == pkctypes.PK_STATUS_FLYING
        assert served(port, "tick.relays.test")
    finally:
        pk.close()
        if r:
            stop(r)


def test_bail_on_errors_exits_100(tmp_path):
    """-B 1: after 10 logged errors the connector exits with code 100."""
    port = free_port()  # nothing listens: every attempt is an error
    p = subprocess.Popen([f"{BUILD}/pagekitec", "-B", "1", "--frontend", f"127.0.0.1:{port}",
                          "1", "http", "bail.relays.test", "0", SECRET],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert p.wait(30) == 100
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


class NamedHandler(Handler):
    def do_GET(self):
        body = self.server.name.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def named_origin(name):
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NamedHandler)
    srv.daemon_threads = True
    srv.name = name
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def test_relay_spreads_streams_across_duplicate_tunnels(tmp_path):
    """pagekiter --allow-duplicates: two connectors fly one kite; new streams
    take turns; without the option the second one is refused (test_relay_abuse)."""
    port = free_port()
    log = open(tmp_path / "relay.log", "w")
    r = subprocess.Popen([f"{BUILD}/pagekiter", "--listen=127.0.0.1", f"--ports={port}",
                          "--allow-duplicates", f"--domain=http:*.relays.test:{SECRET}"],
                         stdout=log, stderr=subprocess.STDOUT)
    a, b = named_origin("origin-a"), named_origin("origin-b")
    conns = []
    try:
        for o, name in ((a, "ca"), (b, "cb")):
            conns.append(pkloop.start([f"{BUILD}/pagekitec", "--frontend", f"127.0.0.1:{port}",
                                       str(o.server_address[1]), "http", "dup.relays.test", "0",
                                       SECRET], tmp_path / f"{name}.log"))
        deadline = time.time() + 15
        while time.time() < deadline and not all(
                "status: FLYING" in (tmp_path / f"{n}.log").read_text() for n in ("ca", "cb")):
            time.sleep(0.1)
        for n in ("ca", "cb"):
            assert "status: FLYING" in (tmp_path / f"{n}.log").read_text(), n
        seen = {}
        for _ in range(20):
            st, body = get(port, "dup.relays.test", timeout=5)
            assert st == 200
            seen[body] = seen.get(body, 0) + 1
        assert seen.get(b"origin-a", 0) >= 5 and seen.get(b"origin-b", 0) >= 5, seen
        # One connector goes away: the other carries everything.
        stop(conns[0])
        time.sleep(0.3)
        assert all(get(port, "dup.relays.test")[1] == b"origin-b" for _ in range(5))
    finally:
        for c in conns:
            stop(c)
        stop(r)
        a.shutdown(), b.shutdown()
        a.server_close(), b.server_close()
