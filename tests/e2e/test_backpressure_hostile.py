"""Hostile backpressure: clients that stall must not stall their neighbours.

Since flake19 a stream that has no room for a chunk pauses its whole tunnel
(the session stops reading) until room comes back.  When the room is
missing because the buffer pool is full of output nobody reads, "until room
comes back" was until the 60 s write-stall timeout closed the stalled
peers: meanwhile every other kite on that tunnel waited.

Attack (default options of pagekiter and pagekitec): from one address,
unauthenticated clients POST big bodies to kite D, whose origin reads
nothing.  The relay forwards each within its 1 MiB stream window, so the
connector holds ~1 MiB per client; 128 of them fill the connector's pool
(~66 MiB with -c 1024).  Kites A and C, served by the same connector
(same tunnel), must keep answering small GETs within a few seconds.
"""

import socket
import threading
import time

from harness import DOMAIN, Group, Kite

N_ATTACKERS = 128
BODY = 50 * 1000 * 1000
MEASURE_S = 14.0
MAX_GAP_S = 6.0  # longest time A or C may go without a served request


class DeafOrigin:
    """Accepts connections and never reads them (nor answers)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(512)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        self.sock.settimeout(0.2)
        while not self.stopped.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            self.conns.append(c)

    def stop(self):
        self.stopped.set()
        self.thread.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


def get_ok(port, host, timeout):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                       % host).encode())
            data = b""
            while len(data) < 100000:
                d = s.recv(65536)
                if not d:
                    break
                data += d
        return data.startswith(b"HTTP/1.1 200")
    except OSError:
        return False


def test_deaf_origin_uploads_do_not_stall_the_tunnel(tmp_path):
    g = Group(tmp_path)
    attackers = []
    stop = threading.Event()
    try:
        oa = g.origin("a." + DOMAIN)
        oc = g.origin("c." + DOMAIN)
        deaf = g.add(DeafOrigin())
        relay = g.our_relay()
        ka = Kite("http", "a." + DOMAIN, oa.port)
        kc = Kite("http", "c." + DOMAIN, oc.port)
        kd = Kite("http", "d." + DOMAIN, deaf.port)
        con = g.our_connector(relay, [ka, kc, kd])
        con.wait_serving(kite=ka)
        con.wait_serving(kite=kc)
        deadline = time.monotonic() + 2.0 + MEASURE_S + 10

        def upload(s):
            chunk = b"x" * 65536
            sent = 0
            s.settimeout(0.5)
            while not stop.is_set() and sent < BODY and time.monotonic() < deadline:
                try:
                    sent += s.send(chunk)
                except socket.timeout:
                    continue
                except OSError:
                    return

        head = ("POST /upload HTTP/1.1\r\nHost: d.%s\r\nContent-Length: %d\r\n\r\n"
                % (DOMAIN, BODY)).encode()
        for _ in range(N_ATTACKERS):
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            s.sendall(head)
            attackers.append(s)
            threading.Thread(target=upload, args=(s,), daemon=True).start()
        time.sleep(2.0)  # the connector's pool fills

        gaps = {}
        counts = {}

        def prober(host):
            start = time.monotonic()
            end = start + MEASURE_S
            last_ok, worst, n_ok, n = start, 0.0, 0, 0
            while time.monotonic() < end:
                ok = get_ok(relay.port, host, timeout=MAX_GAP_S)
                n += 1
                now = time.monotonic()
                if ok:
                    n_ok += 1
                    worst = max(worst, now - last_ok)
                    last_ok = now
                time.sleep(0.3)
            gaps[host] = round(max(worst, time.monotonic() - last_ok), 1)
            counts[host] = (n_ok, n)

        probes = [threading.Thread(target=prober, args=(h,)) for h in (ka.name, kc.name)]
        for t in probes:
            t.start()
        for t in probes:
            t.join(MEASURE_S + MAX_GAP_S + 5)
        assert all(gap <= MAX_GAP_S for gap in gaps.values()), (
            "kites on the attacked tunnel stalled (longest gap without a served "
            "request, s): %s; served/tried: %s\n%s" % (gaps, counts, con.proc.tail()))
    finally:
        stop.set()
        for s in attackers:
            s.close()
        g.close()
