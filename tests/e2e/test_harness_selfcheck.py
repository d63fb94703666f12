"""Harness self-check: pagekite.py relay + pagekite.py connector.

Validates the origin servers, the fixtures and the client helpers against
the reference implementation on both ends, independently of our binaries.
"""

import os

import pytest

from harness import Kite, SECRET, download_sha256, kite_name, raw_echo, upload_sha256
from origin import pattern_sha256

pytestmark = [pytest.mark.interop, pytest.mark.selfcheck]


@pytest.fixture(scope="module")
def stack(module_group):
    g = module_group
    origin = g.origin(kite_name("self"))
    echo = g.echo()
    relay = g.pk_relay()
    http_kite = Kite("http", kite_name("self"), origin.port, 0, SECRET)
    raw_kite = Kite("raw", kite_name("selfraw"), echo.port, relay.port, SECRET)
    conn = g.pk_connector(relay, [http_kite, raw_kite])
    conn.wait_serving(timeout=30)
    conn.wait_raw_serving(raw_kite, timeout=30)
    return relay, conn, http_kite, raw_kite


def test_small_get(stack):
    relay, _conn, http_kite, _raw = stack
    from harness import http_request
    status, _h, body = http_request(relay.port, http_kite.name, "GET", "/")
    assert status == 200
    assert http_kite.name.encode() in body


def test_download_5mb(stack):
    relay, _conn, http_kite, _raw = stack
    n = 5 * 1024 * 1024
    status, got, sha = download_sha256(relay.port, http_kite.name, n, timeout=60)
    assert (status, got) == (200, n)
    assert sha == pattern_sha256(n)


def test_upload_5mb(stack):
    relay, _conn, http_kite, _raw = stack
    n = 5 * 1024 * 1024
    status, answer = upload_sha256(relay.port, http_kite.name, n, timeout=60)
    assert status == 200, answer
    assert answer == {"sha256": pattern_sha256(n), "len": n}


def test_raw_echo(stack):
    relay, _conn, _http, raw_kite = stack
    payload = os.urandom(64 * 1024)
    got = raw_echo(relay.port, raw_kite.name, raw_kite.pport, payload, timeout=20)
    assert got == payload


def test_unknown_kite_is_not_served(stack):
    relay, _conn, _http, _raw = stack
    from harness import http_request
    status, _h, _body = http_request(relay.port, kite_name("nobody"), "GET", "/")
    assert status != 200


def test_websocket_echo(stack):
    relay, _conn, http_kite, _raw = stack
    from harness import websocket_echo
    msgs = ["hello", "x" * 70000, "done"]
    assert websocket_echo(relay.port, http_kite.name, msgs) == msgs


def test_keepalive_through_relay(stack):
    relay, _conn, http_kite, _raw = stack
    from harness import keepalive_headers
    answers = keepalive_headers(relay.port, http_kite.name, 3)
    print(answers)
    assert len({a["conn_id"] for a in answers}) == 1, answers
    # pagekite.py adds X-Forwarded-For to every request on the connection.
    assert [a["headers"].get("x-forwarded-for") for a in answers] == ["127.0.0.1"] * 3


# ---- the origin servers on their own (no relay) ----

def test_origin_direct(origin):
    from harness import http_request, keepalive_headers, websocket_echo
    status, headers, body = http_request(origin.port, "x", "GET", "/bytes/100000")
    assert status == 200 and int(headers["Content-Length"]) == 100000
    assert len(body) == 100000
    answers = keepalive_headers(origin.port, "x", 3)
    assert len({a["conn_id"] for a in answers}) == 1
    assert websocket_echo(origin.port, "x", ["a", "b" * 200]) == ["a", "b" * 200]
    origin.stop()
    with pytest.raises(OSError):
        http_request(origin.port, "x", "GET", "/", timeout=2)
    origin.start()
    assert http_request(origin.port, "x", "GET", "/")[0] == 200


def test_echo_direct(echo_server):
    import socket
    with socket.create_connection(("127.0.0.1", echo_server.port), timeout=5) as s:
        s.sendall(b"ping")
        assert s.recv(10) == b"ping"
