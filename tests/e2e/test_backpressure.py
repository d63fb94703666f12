"""Backpressure under a small buffer pool: every byte arrives, no stream is reset.

A relay and a connector run in this process (libpagekite.so.1 through
ctypes) with deliberately small pools: pagekite_init sizes the block pool
from its arguments (64 + 2 * max_conns + 8 * tunnels blocks of 32 KiB), so
max_conns 8 and one frontend give the connector ~3.5 MiB and the relay
~7 MiB.  A stream's share of the pool (a quarter) is then smaller than the
1 MiB a sender may leave unacknowledged, and a handful of slow readers hold
more than the whole pool.

A correct tunnel pauses (stops reading the socket that feeds the full side)
and resumes; it never resets a stream because a pool or queue limit was hit.
Both directions, several concurrent streams, slow origins and slow clients;
every transfer is checked by sha256.

Seen as node/test/fly.test.js "20 MB upload matches by sha256" (ECONNRESET
after ~13 MB under load).
"""

import hashlib
import random
import socket
import threading
import time

import pytest

import pkctypes as pk
from harness import LIBPAGEKITE, SECRET, free_port, require_file

pytestmark = [pytest.mark.library]

KITE = "bp.example.test"
MAX_CONNS = 8
DEADLINE_S = 40  # the whole test; a healthy run takes a few seconds
# Normal logging plus the data-path errors (a killed stream says why there).
VERBOSITY = pk.PK_LOG_NORMAL | 0x000100


def blob(seed, n):
    return random.Random(seed).randbytes(n)


class SlowOrigin:
    """HTTP/1.1 origin on 127.0.0.1, one thread per connection.

    POST /up    waits `stall` s, then reads the body slowly (16 KiB per
                `pace` s) and answers its length and sha256.
    GET /down/N/SEED  sends N bytes of blob(SEED, N) at once, in pieces of
                16 KiB + 100 (so every piece fills most of a pool block).
    """

    def __init__(self, stall=0.6, pace=0.001):
        self.stall = stall
        self.pace = pace
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            c.settimeout(DEADLINE_S)
            buf = b""
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            head, body = buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            method, path = lines[0].split(" ")[:2]
            if method == "POST":
                n = int(next(ln.split(":", 1)[1] for ln in lines
                             if ln.lower().startswith("content-length:")))
                time.sleep(self.stall)
                h = hashlib.sha256(body)
                got = len(body)
                while got < n and not self.stop.is_set():
                    d = c.recv(min(16384, n - got))
                    if not d:
                        break
                    h.update(d)
                    got += len(d)
                    time.sleep(self.pace)
                answer = ("%d %s" % (got, h.hexdigest())).encode()
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                          % len(answer) + answer)
            else:
                _, _, n, seed = path.split("/")
                data = blob(int(seed), int(n))
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                          % len(data))
                step = 16384 + 100
                for i in range(0, len(data), step):
                    c.sendall(data[i:i + step])
            c.shutdown(socket.SHUT_WR)
            c.settimeout(2)
            try:
                while c.recv(65536):
                    pass
            except OSError:
                pass
        except OSError as e:
            self.errors.append(repr(e))
        finally:
            c.close()

    def close(self):
        self.stop.set()
        self.sock.close()


def read_response(s, slow_start=0.0, pace=0.0):
    """(status, body) of one HTTP/1.1 response with Content-Length."""
    if slow_start:
        time.sleep(slow_start)
    buf = b""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise ConnectionError("closed before the response head (%d bytes)" % len(buf))
        buf += d
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    n = int(next(ln.split(":", 1)[1] for ln in lines if ln.lower().startswith("content-length:")))
    chunks = [body]
    got = len(body)
    while got < n:
        d = s.recv(min(65536, n - got))
        if not d:
            raise ConnectionError("closed after %d of %d body bytes" % (got, n))
        chunks.append(d)
        got += len(d)
        if pace:
            time.sleep(pace)
    return status, b"".join(chunks)


def upload(port, size, seed, results, i):
    data = blob(seed, size)
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        try:
            s.sendall(("POST /up HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                       "Connection: close\r\n\r\n" % (KITE, size)).encode())
            for off in range(0, size, 65536):
                s.sendall(data[off:off + 65536])
            status, body = read_response(s)
        finally:
            s.close()
        want = ("%d %s" % (size, hashlib.sha256(data).hexdigest())).encode()
        results[i] = "ok" if status == 200 and body == want else \
            "upload %d: status %d, origin saw %r, sent %r" % (i, status, body[:90], want[:90])
    except OSError as e:
        results[i] = "upload %d: %r" % (i, e)


def download(port, size, seed, results, i):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
        try:
            s.sendall(("GET /down/%d/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                       % (size, seed, KITE)).encode())
            status, body = read_response(s, slow_start=1.0, pace=0.0005)
        finally:
            s.close()
        ok = status == 200 and len(body) == size and \
            hashlib.sha256(body).digest() == hashlib.sha256(blob(seed, size)).digest()
        results[i] = "ok" if ok else "download %d: status %d, %d of %d bytes, sha256 %s" % (
            i, status, len(body), size, "differs" if len(body) == size else "-")
    except OSError as e:
        results[i] = "download %d: %r" % (i, e)


@pytest.fixture(scope="module")
def lib():
    require_file(LIBPAGEKITE, "libpagekite.so.1")
    return pk.load(LIBPAGEKITE)


@pytest.fixture
def stack(lib):
    """(relay port, relay manager, connector manager, origin), small pools."""
    made = []
    origin = SlowOrigin()
    try:
        port = free_port()
        relay = pk.PageKite(lib, "bp-relay", max_kites=1, max_frontends=1, max_conns=MAX_CONNS,
                            verbosity=VERBOSITY, flags=pk.PK_AS_FRONTEND_RELAY | pk.PK_WITHOUT_DEFAULTS
                            | pk.PK_WITH_IPV4 | pk.PK_WITHOUT_SERVICE_FRONTENDS)
        made.append(relay)
        assert relay.add_relay_listener("127.0.0.1", port) == 0, relay.last_error()
        assert relay.add_relay_domain("http", "*.example.test", SECRET) == 0, relay.last_error()
        assert relay.thread_start() == 0, relay.last_error()
        conn = pk.PageKite(lib, "bp-connector", max_kites=1, max_frontends=1,
                           max_conns=MAX_CONNS, verbosity=VERBOSITY)
        made.append(conn)
        assert conn.add_kite("http", KITE, 0, SECRET, "127.0.0.1", origin.port) == 0, \
            conn.last_error()
        assert conn.add_frontend("127.0.0.1", port) >= 1, conn.last_error()
        assert conn.thread_start() == 0, conn.last_error()
        seen = conn.wait_status(pk.PK_STATUS_FLYING, timeout=15)
        assert seen[-1] == pk.PK_STATUS_FLYING, (seen, conn.get_log())
        yield port, relay, conn, origin
    finally:
        for m in reversed(made):
            m.close()
        origin.close()


def run_all(jobs):
    results = {}
    threads = [threading.Thread(target=fn, args=args + (results, i), daemon=True)
               for i, (fn, args) in enumerate(jobs)]
    for t in threads:
        t.start()
    end = time.monotonic() + DEADLINE_S
    for t in threads:
        t.join(max(0.1, end - time.monotonic()))
    return [results.get(i, "job %d: not done within %d s" % (i, DEADLINE_S))
            for i in range(len(jobs))]


def logs(relay, conn):
    return "--- relay log ---\n%s\n--- connector log ---\n%s" % (
        (relay.get_log() or "")[-3000:], (conn.get_log() or "")[-3000:])


def check(results, relay, conn):
    bad = [r for r in results if r != "ok"]
    assert not bad, "%d of %d transfers lost bytes:\n%s\n%s" % (
        len(bad), len(results), "\n".join(bad), logs(relay, conn))
    # The tunnel stayed up throughout (no reconnect, no stream killed with it).
    assert conn.get_counter(pk.PK_COUNTER_TUNNELS) == 1, logs(relay, conn)
    for m in (relay, conn):
        text = m.get_log() or ""
        for bad_line in ("ignores flow control", "pool exhausted", "does not read",
                         "cannot queue a chunk"):
            assert bad_line not in text, logs(relay, conn)


def test_uploads_to_a_slow_origin_lose_no_byte(stack):
    """Connector side: the relay sends up to its 1 MiB window per stream; the
    connector's pool share per stream is smaller, and the origin reads slowly."""
    port, relay, conn, _origin = stack
    jobs = [(upload, (port, 3 << 20, 100 + i)) for i in range(4)]
    check(run_all(jobs), relay, conn)


def test_downloads_to_slow_clients_lose_no_byte(stack):
    """Relay side: the connector sends up to its window per stream; the slow
    clients' queued bytes are more than the relay's whole pool."""
    port, relay, conn, _origin = stack
    jobs = [(download, (port, 3 << 20, 200 + i)) for i in range(MAX_CONNS - 1)]
    check(run_all(jobs), relay, conn)


def test_both_directions_at_once(stack):
    port, relay, conn, _origin = stack
    jobs = [(upload, (port, 2 << 20, 300 + i)) for i in range(3)]
    jobs += [(download, (port, 2 << 20, 400 + i)) for i in range(4)]
    check(run_all(jobs), relay, conn)


def test_a_stalled_client_holds_only_its_share(stack):
    """Fairness: a client that stops reading holds at most its stream's
    window/share of the relay's pool; the other streams of the same tunnel
    keep flowing, and the stalled one still gets every byte later."""
    port, relay, conn, _origin = stack
    size, seed = 8 << 20, 500
    s = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE_S)
    try:
        s.sendall(("GET /down/%d/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (size, seed, KITE)).encode())
        time.sleep(0.5)  # its window fills; it reads nothing until the others are done
        t0 = time.monotonic()
        jobs = [(download, (port, 2 << 20, 600 + i)) for i in range(4)]
        others = run_all(jobs)
        took = time.monotonic() - t0
        assert others == ["ok"] * 4, "%s\n%s" % (others, logs(relay, conn))
        # The downloads pause 1 s before reading; a stall would take >= 10 s.
        assert took < 10, "the other streams waited %.1f s for the stalled one" % took
        status, body = read_response(s)
    finally:
        s.close()
    assert status == 200 and len(body) == size
    assert hashlib.sha256(body).digest() == hashlib.sha256(blob(seed, size)).digest()
    check(["ok"], relay, conn)
