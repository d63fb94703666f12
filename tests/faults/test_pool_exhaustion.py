"""Connector connection pool exhausted, with and without idle eviction."""
import socket
import time

import pytest

from faultlib import KITE, free_port, http_get, rst, serving, wait_port, wait_until

MAX_TRY = 400


def open_hangers(port, n):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(("GET /hang%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, KITE)).encode())
        socks.append(s)
    return socks


def answered(socks, wait=1.0):
    """Sockets that got a response (or were closed) within `wait`."""
    time.sleep(wait)
    got = {}
    for i, s in enumerate(socks):
        s.setblocking(False)
        try:
            d = s.recv(4096)
            got[i] = d
        except BlockingIOError:
            pass
        except OSError as e:
            got[i] = repr(e).encode()
        s.setblocking(True)
    return got


def fill_pool(port, conn):
    """Open hanging streams until the connector refuses one; returns
    (sockets, number of streams the connector holds)."""
    socks = []
    while len(socks) < MAX_TRY:
        socks += open_hangers(port, 50)
        got = answered(socks, 0.8)
        if got:
            return socks, got
    return socks, {}


def test_pool_exhausted_without_eviction(procs, origin):
    port = free_port()
    procs.relay(port)
    assert wait_port(port)
    conn = procs.connector(port, origin.port, extra=["-c", "2"], use_pty=True)
    assert serving(port), conn.output()
    socks, got = fill_pool(port, conn)
    try:
        assert got, "no stream refused after %d concurrent streams (-c 2)" % len(socks)
        held = conn.streams()
        print("pool: -c 2 held %s streams before refusing (%d refused of %d)"
              % (held, len(got), len(socks)))
        # The refused ones got a prompt 503 from the connector, nothing made up.
        for d in got.values():
            assert d.startswith(b"HTTP/1.1 503") or d == b"", d[:80]
        assert any(d.startswith(b"HTTP/1.1 503") for d in got.values())
        # (the CLI prints log lines on its own schedule: give it a moment)
        assert wait_until(lambda: "pool exhausted" in conn.output(), 3, 0.1), conn.output()[-2000:]
        # Still refusing while full, and not hanging.
        st, _, body, _ = http_get(port, "/ok-full", timeout=5)
        assert st == 503
    finally:
        for s in socks:
            rst(s)
    # Clients gone: slots come back, service resumes.
    assert wait_until(lambda: conn.streams() == 0, 10, 0.1), conn.status_line()
    st, _, body, _ = http_get(port, "/ok-again")
    assert st == 200 and body == b"ok /ok-again"
    assert conn.alive()


def test_pool_exhausted_with_eviction(procs, origin):
    port = free_port()
    procs.relay(port)
    assert wait_port(port)
    conn = procs.connector(port, origin.port, extra=["-c", "2", "-E", "1"], use_pty=True)
    assert serving(port), conn.output()
    socks, got = fill_pool(port, conn)
    try:
        # Streams idle for more than 1 s are evicted to make room: once the
        # hangers are idle, new requests are served instead of refused.
        time.sleep(1.5)
        for i in range(5):
            st, _, body, _ = http_get(port, "/ok-evict%d" % i, timeout=5)
            assert st == 200 and body == b"ok /ok-evict%d" % i, (st, body[:100])
        # (the CLI prints log lines on its own schedule: give it a moment)
        assert got == {} or wait_until(lambda: "Evicting idle stream" in conn.output(), 3, 0.1), \
            conn.output()[-2000:]
        # The evicted clients were closed, not answered with made-up data.
        closed = answered(socks, 0.3)
        assert closed, "no hanging client was evicted"
        for d in closed.values():
            assert d == b"" or d.startswith(b"HTTP/1.1 503") or b"Error" in d, d[:80]
    finally:
        for s in socks:
            rst(s)
    assert wait_until(lambda: conn.streams() == 0, 10, 0.1), conn.status_line()
    assert conn.alive()


def test_max_conns_bounds_streams(procs, origin):
    port = free_port()
    procs.relay(port)
    assert wait_port(port)
    conn = procs.connector(port, origin.port, extra=["-c", "2"], use_pty=True)
    assert serving(port), conn.output()
    socks = open_hangers(port, 8)
    try:
        answered(socks, 1.0)
        held = conn.streams()
        assert held is not None and held <= 2, "-c 2 but %s streams in flight" % held
    finally:
        for s in socks:
            rst(s)
