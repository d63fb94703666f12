"""Relay killed mid-transfer, tunnel TCP reset, 50 relay restarts."""
import socket
import statistics
import threading
import time

from faultlib import KITE, Origin, free_port, http_get, rst, serving, wait_port, wait_until

BIG = 8 << 20


def read_big(port, out, started):
    """GET /big through the relay; record what arrived and how it ended."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(("GET /big?n=%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
               % (BIG, KITE)).encode())
    buf = b""
    try:
        while True:
            d = s.recv(262144)
            if not d:
                out["end"] = "eof"
                break
            buf += d
            if len(buf) > 200000:
                started.set()
    except OSError as e:
        out["end"] = "error: %r" % e
    finally:
        s.close()
        started.set()
    out["buf"] = buf


def check_truncated_or_error(out):
    """Never a silent wrong body: either an error, or a body whose length does
    not match Content-Length (detectable), or the full and correct body."""
    buf = out["buf"]
    assert b"\r\n\r\n" in buf, out.get("end")
    head, body = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200")
    cl = int([ln.split(b":")[1] for ln in head.split(b"\r\n")
              if ln.lower().startswith(b"content-length")][0])
    assert cl == BIG
    # Whatever arrived is a correct prefix of what the origin sent.
    assert body == Origin.pattern(len(body)), "corrupted body bytes"
    if out["end"] == "eof" and len(body) == cl:
        return "complete"
    assert len(body) < cl, "body longer than Content-Length"
    return "truncated (%d of %d bytes, %s)" % (len(body), cl, out["end"])


def test_relay_killed_mid_transfer(procs, origin):
    port = free_port()
    relay = procs.relay(port)
    assert wait_port(port)
    conn = procs.connector(port, origin.port)
    assert serving(port), conn.output()
    out, started = {}, threading.Event()
    th = threading.Thread(target=read_big, args=(port, out, started))
    th.start()
    assert started.wait(10)
    relay.kill()  # SIGKILL while the body is in flight
    th.join(15)
    assert not th.is_alive()
    result = check_truncated_or_error(out)
    assert result != "complete", "relay died mid-transfer but the body completed?"
    # Same port, new relay: the connector reconnects and serves again.
    procs.relay(port)
    assert wait_port(port)
    assert serving(port, timeout=15), conn.output()[-2000:]
    assert conn.alive()
    st, _, body, err = http_get(port, "/big?n=300000", timeout=10)
    assert st == 200 and err is None and body == Origin.pattern(300000)


class RstProxy:
    """TCP proxy listen -> target; rst_all() resets every live connection on
    both sides (SO_LINGER 0)."""

    def __init__(self, target):
        self.target = target
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.live = []
        self.accepted = 0
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.1)
        while not self.stop:
            try:
                a, _ = self.sock.accept()
            except OSError:
                continue
            try:
                b = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                rst(a)
                continue
            self.accepted += 1
            pair = (a, b)
            self.live.append(pair)
            for x, y in ((a, b), (b, a)):
                threading.Thread(target=self._pump, args=(x, y), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def rst_all(self):
        pairs, self.live = self.live, []
        for a, b in pairs:
            rst(a)
            rst(b)
        return len(pairs)

    def close(self):
        self.stop = True
        self.sock.close()
        self.rst_all()


def test_tunnel_tcp_reset(procs, origin):
    port = free_port()
    procs.relay(port)
    assert wait_port(port)
    proxy = RstProxy(port)
    try:
        conn = procs.connector(proxy.port, origin.port)
        assert serving(port), conn.output()
        out, started = {}, threading.Event()
        th = threading.Thread(target=read_big, args=(port, out, started))
        th.start()
        assert started.wait(10)
        assert proxy.rst_all() >= 1
        th.join(15)
        assert not th.is_alive()
        result = check_truncated_or_error(out)
        assert result != "complete"
        # The connector notices the reset, reconnects through the proxy and
        # the relay routes to the new tunnel.
        assert serving(port, timeout=15), conn.output()[-2000:]
        assert proxy.accepted >= 2
        # A reset of an idle tunnel is survived too.
        assert proxy.rst_all() >= 1
        assert serving(port, timeout=15), conn.output()[-2000:]
        assert conn.alive()
        assert "Tunnel to relay" in conn.output()
    finally:
        proxy.close()


def test_fifty_relay_restarts(procs, origin):
    port = free_port()
    relay = procs.relay(port, extra=["-q"])
    assert wait_port(port)
    conn = procs.connector(port, origin.port, extra=["-q"])
    assert serving(port), conn.output()
    times = []
    for i in range(50):
        relay.kill()
        t0 = time.monotonic()
        relay = procs.relay(port, extra=["-q"])
        ok = serving(port, timeout=10)
        dt = time.monotonic() - t0
        assert ok, "restart %d: kite not served again after %.1f s\n%s" % (
            i, dt, conn.output()[-2000:])
        times.append(dt)
        # Keep only the newest relay in the list of things to stop.
        procs.items = [p for p in procs.items if p is relay or p.alive()]
    mean = statistics.mean(times)
    print("50 relay restarts: mean %.3f s, median %.3f s, max %.3f s"
          % (mean, statistics.median(times), max(times)))
    slow = [(i, round(t, 2)) for i, t in enumerate(times) if t >= 3.0]
    assert not slow, "restarts slower than 3 s: %s" % slow
    assert conn.alive()
