"""The relay's side of the handshake, driven byte by byte from Python.

The signatures are computed here with hashlib from the formula (pagekite.py's
signToken), not with our C code, so a mistake on either side shows.
"""
import hashlib
import os
import secrets
import socket
import subprocess
import time

import pytest

import pkloop
from pkloop import BUILD, free_port, stop
from harness import tunnel_request_head

SECRET = "handshake-secret-7"
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
pytestmark = pytest.mark.ours


def sign(secret, payload, token=None):
    token = token or secrets.token_hex(4)
    return token[:8] + hashlib.sha1((secret + payload + token[:8]).encode()).hexdigest()[:28]


def handshake(port, lines, features=("AddKites",)):
    data = tunnel_request_head(port, lines, features, version=None, timeout=5)
    head = data.split("\r\n\r\n", 1)[0]
    headers = []
    for line in head.split("\r\n")[1:]:
        k, _, v = line.partition(":")
        headers.append((k.strip(), v.strip()))
    return head.split("\r\n")[0], headers


def values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


@pytest.fixture
def relay(tmp_path):
    if not os.path.exists(FAKETIME):
        pytest.fail("libfaketime missing: apt-get install faketime (./run installs it)")
    port = free_port()
    clock = tmp_path / "clock"
    clock.write_text("+0\n")
    env = dict(os.environ, LD_PRELOAD=FAKETIME, FAKETIME_TIMESTAMP_FILE=str(clock),
               FAKETIME_NO_CACHE="1", FAKETIME_DONT_FAKE_MONOTONIC="1")
    log = open(tmp_path / "relay.log", "w")
    p = subprocess.Popen([f"{BUILD}/pagekiter", "--listen=127.0.0.1", f"--ports={port}",
                          f"--domain=http:*.hs.test:{SECRET}"], stdout=log,
                         stderr=subprocess.STDOUT, env=env)
    deadline = time.time() + 10
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.05)
    yield port, clock
    assert stop(p) == 0


def challenge(port, kite, bsalt):
    status, hdrs = handshake(port, [f"http:{kite}:{bsalt}::"])
    assert status.startswith("HTTP/1.1 200"), status
    (st,) = values(hdrs, "X-PageKite-SignThis")
    proto, name, salt, token = st.split(":")
    assert (proto, name, salt) == ("http", kite, bsalt)
    assert token.startswith("t") and len(token) == 36  # timestamped challenge
    assert values(hdrs, "X-PageKite-SessionID")
    return token


def test_challenge_sign_ok(relay):
    port, _ = relay
    bsalt = secrets.token_hex(18)
    token = challenge(port, "a.hs.test", bsalt)
    payload = f"http:a.hs.test:{bsalt}:{token}"
    _, hdrs = handshake(port, [f"{payload}:{sign(SECRET, payload)}"])
    assert values(hdrs, "X-PageKite-OK") == [f"http:a.hs.test:{bsalt}"]


def test_wrong_secret_and_forged_token_are_invalid(relay):
    port, _ = relay
    bsalt = secrets.token_hex(18)
    token = challenge(port, "b.hs.test", bsalt)
    payload = f"http:b.hs.test:{bsalt}:{token}"
    _, hdrs = handshake(port, [f"{payload}:{sign('not-the-secret', payload)}"])
    assert values(hdrs, "X-PageKite-Invalid-Why") == [f"http:b.hs.test:{bsalt};signature"]
    # A token the relay never issued, properly signed with the kite secret.
    forged = "t" + secrets.token_hex(18)[:35]
    payload = f"http:b.hs.test:{bsalt}:{forged}"
    _, hdrs = handshake(port, [f"{payload}:{sign(SECRET, payload)}"])
    assert values(hdrs, "X-PageKite-Invalid-Why") == [f"http:b.hs.test:{bsalt};signature"]


def test_unknown_domain_and_bad_port(relay):
    port, _ = relay
    bsalt = secrets.token_hex(18)
    _, hdrs = handshake(port, [f"http:x.other.test:{bsalt}::"])
    token = values(hdrs, "X-PageKite-SignThis")[0].split(":")[3]
    payload = f"http:x.other.test:{bsalt}:{token}"
    _, hdrs = handshake(port, [f"{payload}:{sign(SECRET, payload)}"])
    assert values(hdrs, "X-PageKite-Invalid-Why") == [f"http:x.other.test:{bsalt};unknown"]
    _, hdrs = handshake(port, [f"http-1:c.hs.test:{bsalt}::"])
    token = values(hdrs, "X-PageKite-SignThis")[0].split(":")[3]
    payload = f"http-1:c.hs.test:{bsalt}:{token}"
    _, hdrs = handshake(port, [f"{payload}:{sign(SECRET, payload)}"])
    assert values(hdrs, "X-PageKite-Invalid-Why") == [f"http-1:c.hs.test:{bsalt};port"]


def test_replayed_signature_from_an_older_window_is_refused(relay):
    """A signed line that worked once is refused two 10-minute windows later."""
    port, clock = relay
    bsalt = secrets.token_hex(18)
    token = challenge(port, "r.hs.test", bsalt)
    payload = f"http:r.hs.test:{bsalt}:{token}"
    line = f"{payload}:{sign(SECRET, payload)}"
    _, hdrs = handshake(port, [line])
    assert values(hdrs, "X-PageKite-OK") == [f"http:r.hs.test:{bsalt}"]
    time.sleep(0.3)  # the first tunnel closes and its kite is released
    clock.write_text("+1300\n")  # >= 2 windows later, whatever the phase
    _, hdrs = handshake(port, [line])
    assert values(hdrs, "X-PageKite-OK") == []
    assert values(hdrs, "X-PageKite-Invalid-Why") == [f"http:r.hs.test:{bsalt};signature"]


def test_connector_reconnects_with_signatures_for_old_relays(tmp_path):
    """A relay without AddKites: our connector must reconnect with the signed
    X-PageKite lines and X-PageKite-Replace carrying the session id."""
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(10)
    port = srv.getsockname()[1]
    conn = pkloop.start([f"{BUILD}/pagekitec", "--frontend", f"127.0.0.1:{port}", "1", "http",
                         "old.hs.test", "0", SECRET], tmp_path / "connector.log")

    def read_head(c):
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            assert chunk, data
            data += chunk
        return [ln.partition(":") for ln in data.decode().split("\r\n")[1:] if ln]

    try:
        c1, _ = srv.accept()
        h1 = read_head(c1)
        (line,) = [v.strip() for k, _, v in h1 if k == "X-PageKite"]
        proto, kite, bsalt, fsalt, sig = line.split(":")
        assert (proto, kite, fsalt) == ("http", "old.hs.test", "")
        token = "t" + secrets.token_hex(18)[:35]
        c1.sendall((f"HTTP/1.1 200 OK\r\nX-PageKite-SessionID: sess-1234\r\n"
                    f"X-PageKite-SignThis: http:old.hs.test:{bsalt}:{token}\r\n\r\n").encode())
        c1.close()
        c2, _ = srv.accept()
        h2 = read_head(c2)
        assert [v.strip() for k, _, v in h2 if k == "X-PageKite-Replace"] == ["sess-1234"]
        (line2,) = [v.strip() for k, _, v in h2 if k == "X-PageKite"]
        proto, kite, bsalt2, fsalt2, sig2 = line2.split(":")
        assert (bsalt2, fsalt2) == (bsalt, token)
        payload = f"http:old.hs.test:{bsalt}:{token}"
        assert sig2 == sign(SECRET, payload, token=sig2[:8])
        c2.sendall(f"HTTP/1.1 200 OK\r\nX-PageKite-OK: http:old.hs.test:{bsalt}\r\n\r\n".encode())
        deadline = time.time() + 10
        while time.time() < deadline and "status: FLYING" not in (tmp_path / "connector.log").read_text():
            time.sleep(0.1)
        assert "status: FLYING" in (tmp_path / "connector.log").read_text()
        c2.close()
    finally:
        stop(conn)
        srv.close()


def ws_frame(payload, mask=True):
    """A client->server binary websocket frame."""
    import struct
    head = bytes([0x82])
    n = len(payload)
    mbit = 0x80 if mask else 0
    if n < 126:
        head += bytes([mbit | n])
    elif n < 65536:
        head += bytes([mbit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mbit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = secrets.token_bytes(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def ws_read(sock, buf):
    """Read one server frame (unmasked); returns (payload, rest)."""
    import struct
    while True:
        if len(buf) >= 2:
            n = buf[1] & 0x7f
            hl = 2
            if n == 126 and len(buf) >= 4:
                n, hl = struct.unpack("!H", buf[2:4])[0], 4
            elif n == 127 and len(buf) >= 10:
                n, hl = struct.unpack("!Q", buf[2:10])[0], 10
            if n < 126 or hl > 2:
                assert not buf[1] & 0x80, "server frames are not masked"
                if len(buf) >= hl + n:
                    return buf[hl:hl + n], buf[hl + n:]
        chunk = sock.recv(65536)
        assert chunk, "connection closed"
        buf += chunk


def test_websocket_tunnel_form(relay):
    """pagekite.py's websocket tunnel: GET /~:PageKite:~/v1 + Upgrade, kites
    signed in-band, chunks as websocket frames; a client's request flows."""
    import base64
    port, _ = relay
    key = base64.b64encode(secrets.token_bytes(16)).decode()
    bsalt = secrets.token_hex(18)
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall((f"GET /~:PageKite:~/v1 HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Protocol: v1.pagekite.org\r\n"
               f"Sec-WebSocket-Version: 13\r\nX-PageKite: http:ws.hs.test:{bsalt}::\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, buf = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101")
    want = base64.b64encode(hashlib.sha1((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")
                                         .encode()).digest()).decode()
    assert f"Sec-WebSocket-Accept: {want}".encode() in head
    noop, buf = ws_read(s, buf)
    assert noop.startswith(b"NOOP: 1\r\n")
    st = [ln.split(": ", 1)[1] for ln in noop.decode().split("\r\n") if ln.startswith("X-PageKite-SignThis")]
    token = st[0].split(":")[3]
    payload = f"http:ws.hs.test:{bsalt}:{token}"
    s.sendall(ws_frame(f"NOOP: 1\r\nX-PageKite: {payload}:{sign(SECRET, payload)}\r\n\r\n!".encode()))
    ok, buf = ws_read(s, buf)
    assert f"X-PageKite-OK: http:ws.hs.test:{bsalt}".encode() in ok
    # A client request arrives as a chunk; we answer it and close the stream.
    c = socket.create_connection(("127.0.0.1", port), timeout=5)
    c.sendall(b"GET /hello HTTP/1.1\r\nHost: ws.hs.test\r\n\r\n")
    first, buf = ws_read(s, buf)
    hdrs, _, data = first.partition(b"\r\n\r\n")
    fields = dict(ln.split(": ", 1) for ln in hdrs.decode().split("\r\n"))
    assert fields["Proto"] == "http" and fields["Host"] == "ws.hs.test"
    assert data.startswith(b"GET /hello HTTP/1.1")
    sid = fields["SID"]
    body = b"hello over websocket"
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
    s.sendall(ws_frame(f"SID: {sid}\r\n\r\n".encode() + resp))
    s.sendall(ws_frame(f"SID: {sid}\r\nEOF: 1WR\r\n\r\nBye!".encode()))
    got = b""
    while not got.endswith(body):
        chunk = c.recv(4096)
        if not chunk:
            break
        got += chunk
    assert got.startswith(b"HTTP/1.1 200 OK") and got.endswith(body)
    c.close()
    s.close()
