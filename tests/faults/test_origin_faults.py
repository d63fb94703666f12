"""Origin misbehaving behind a connector: reset mid-response, never answering."""
import socket
import time

import pytest

from faultlib import KITE, Origin, free_port, http_get, rst, serving, wait_port, wait_until


def start_pair(procs, origin, extra=()):
    port = free_port()
    procs.relay(port)
    assert wait_port(port)
    # On a pty the connector keeps its live status line (streams N).
    conn = procs.connector(port, origin.port, extra=list(extra), use_pty=True)
    assert serving(port), conn.output()
    return port, conn


def streams_back_to_zero(conn, timeout=10):
    ok = wait_until(lambda: conn.streams() == 0, timeout, 0.1)
    return ok, conn.status_line()


def test_origin_reset_mid_response(procs, origin):
    port, conn = start_pair(procs, origin)
    for _ in range(3):
        st, hdrs, body, err = http_get(port, "/reset", timeout=10)
        assert st == 200
        cl = int(hdrs["content-length"])
        # Truncated, detectably: fewer bytes than Content-Length.
        assert len(body) < cl, (len(body), cl, err)
        assert len(body) >= 1 and body == Origin.pattern(len(body))
    ok, line = streams_back_to_zero(conn)
    assert ok, "connector streams did not return to 0: %r" % line
    # Still serving.
    st, _, body, err = http_get(port, "/ok-after-reset")
    assert st == 200 and body == b"ok /ok-after-reset" and err is None
    assert conn.alive()


def hang_clients(port, conn, n=3):
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=2)
        s.sendall(("GET /hang%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, KITE)).encode())
        socks.append(s)
    assert wait_until(lambda: conn.streams() == n, 5, 0.1), conn.status_line()
    for s in socks:
        t0 = time.monotonic()
        try:
            got = s.recv(100)
            outcome = "closed" if got == b"" else "data %r" % got
        except socket.timeout:
            outcome = "timeout"
        # The client times out (or is closed); it never gets a made-up answer.
        assert outcome in ("timeout", "closed"), outcome
        assert time.monotonic() - t0 < 3
    # Other requests are unaffected while those hang.
    st, _, body, _ = http_get(port, "/ok-meanwhile")
    assert st == 200 and body == b"ok /ok-meanwhile"
    return socks


def test_origin_never_answers_client_aborts(procs, origin):
    """The client gives up with an abortive close (RST): the relay sees a
    reset, kills the stream, and the connector closes its origin side."""
    port, conn = start_pair(procs, origin)
    for s in hang_clients(port, conn):
        rst(s)
    ok, line = streams_back_to_zero(conn)
    assert ok, "connector streams did not return to 0 after clients left: %r" % line
    assert conn.alive()


def test_origin_never_answers_client_closes(procs, origin):
    """The client gives up with a normal close (FIN), as curl --max-time does."""
    port, conn = start_pair(procs, origin, extra=["-E", "1"])
    for s in hang_clients(port, conn):
        s.close()
    ok, line = streams_back_to_zero(conn, timeout=8)
    assert ok, "connector streams did not return to 0 after clients left: %r" % line
