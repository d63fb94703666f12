"""Scriptable hostile peers for connector tests (stdlib only, loopback only).

FakeRelay: a PageKite relay written in Python that does whatever a test
    script says.  It accepts a connector's "CONNECT PageKite:1" request,
    parses the X-PageKite lines, and hands the connection to script(conn).
    Nothing is verified: the point is to send the connector malformed,
    out-of-order or malicious input and see that it survives.

Forwarder: a TCP forwarder between a connector and a real relay that can
    inject raw bytes into one direction (e.g. a bogus TLS record).

Framing helpers: frame(), chunk(), ok_head() build the wire format of
c/src/wire.c ("<hex len>\\r\\n" + "Name: value\\r\\n"... + "\\r\\n" + data).

Every blocking call has a timeout; stop() closes every socket it opened.
"""

import socket
import threading
import time


# ---------------------------------------------------------------- wire format

def frame(payload):
    """One plain (uncompressed) chunk frame: hex length, CRLF, payload."""
    assert payload, "zero-length frames are malformed"
    return b"%x\r\n" % len(payload) + payload


def chunk(headers, data=b""):
    """A chunk frame from [(name, value), ...] header pairs and data bytes."""
    head = "".join("%s: %s\r\n" % (k, v) for k, v in headers).encode() + b"\r\n"
    return frame(head + data)


def noop(headers, data=b"!"):
    """A NOOP control chunk (as relays send kite results and challenges)."""
    return chunk([("NOOP", "1")] + list(headers), data)


def ok_head(kites, session="fake-session-1", features=(), extra=()):
    """The relay's "200 OK" response head accepting kites.

    kites: KiteRequest objects (or "proto:name:bsalt" strings) to answer with
    X-PageKite-OK; features: X-PageKite-Features values (a real relay sends
    AddKites, ZChunks, ...; leaving AddKites out makes an "old" relay)."""
    lines = ["HTTP/1.1 200 OK", "Transfer-Encoding: chunked"]
    lines += ["X-PageKite-Features: %s" % f for f in features]
    lines.append("X-PageKite-SessionID: %s" % session)
    for k in kites:
        lines.append("X-PageKite-OK: %s" % (k.what if isinstance(k, KiteRequest) else k))
    lines += list(extra)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class KiteRequest:
    """One "X-PageKite: proto:name:bsalt:fsalt:sign" line of a handshake."""

    def __init__(self, value):
        parts = value.split(":")
        while len(parts) < 5:
            parts.append("")
        self.value = value
        self.proto, self.name, self.bsalt, self.fsalt, self.sign = parts[:5]

    @property
    def what(self):
        return "%s:%s:%s" % (self.proto, self.name, self.bsalt)

    def __repr__(self):
        return "KiteRequest(%r)" % self.value


# ---------------------------------------------------------------- fake relay

class RelayConn:
    """One accepted connector connection, as a test script sees it."""

    def __init__(self, sock, index):
        self.sock = sock
        self.index = index
        self.head = b""
        self.headers = []       # [(name, value)] of the handshake request
        self.kites = []         # KiteRequest per X-PageKite line
        self.buf = b""          # bytes read after the head
        self.closed = False
        self.opened = set()     # SIDs this relay connection opened (stream_chunk)
        self.foreign = []       # chunks the connector sent for SIDs never opened here

    def read_head(self, timeout=10.0):
        self.sock.settimeout(timeout)
        data = b""
        while b"\r\n\r\n" not in data:
            d = self.sock.recv(65536)
            if not d:
                raise ConnectionError("connector closed before its request head ended: %r"
                                      % data[:200])
            data += d
            if len(data) > 1 << 20:
                raise ConnectionError("request head too long")
        self.head, _, self.buf = data.partition(b"\r\n\r\n")
        for line in self.head.decode("latin-1").split("\r\n")[1:]:
            name, _, value = line.partition(":")
            self.headers.append((name.strip(), value.strip()))
        self.kites = [KiteRequest(v) for k, v in self.headers if k.lower() == "x-pagekite"]
        return self

    def header(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def send(self, data):
        self.sock.sendall(data)

    def stream_chunk(self, sid, proto, host, data, rip="10.1.2.3", rport=4242, port=80):
        """The chunk a relay sends to open stream sid (recorded in .opened)."""
        self.opened.add(int(sid))
        return chunk([("SID", sid), ("Proto", proto), ("Host", host), ("Port", port),
                      ("RIP", rip), ("RPort", rport)], data)

    def read_chunk(self, timeout=5.0):
        """Next chunk from the connector as (headers dict, data), or None on EOF.
        Chunks for a SID this connection never opened are noted in .foreign."""
        got = self._read_chunk(timeout)
        if got is not None:
            sid = got[0].get("SID")
            if sid is not None and (not sid.isdigit() or int(sid) not in self.opened):
                self.foreign.append((got[0], got[1][:80]))
        return got

    def _read_chunk(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            if b"\r\n" in self.buf:
                line, _, rest = self.buf.partition(b"\r\n")
                n = int(line.split(b"Z")[0].rstrip(b"R"), 16)
                if len(rest) >= n:
                    payload, self.buf = rest[:n], rest[n:]
                    head, _, data = payload.partition(b"\r\n\r\n")
                    hdrs = {}
                    for ln in head.decode("latin-1").split("\r\n"):
                        k, _, v = ln.partition(":")
                        hdrs.setdefault(k.strip(), v.strip())
                    return hdrs, data
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no complete chunk from the connector in %.1f s" % timeout)
            self.sock.settimeout(left)
            d = self.sock.recv(65536)
            if not d:
                return None
            self.buf += d

    def close(self):
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class FakeRelay:
    """A listening fake relay.  scripts: one callable per accepted connection
    (the last one is reused for any further connections).  A script gets a
    RelayConn whose head was read; when it returns, the connection stays open
    (silent) until stop(), unless the script closed it."""

    def __init__(self, scripts):
        self.scripts = list(scripts)
        self.conns = []
        self.errors = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True,
                                        name="fake-relay-%d" % self.port)
        self._thread.start()

    @property
    def frontend(self):
        return "127.0.0.1:%d" % self.port

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                s, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                conn = RelayConn(s, len(self.conns))
                self.conns.append(conn)
            script = self.scripts[min(conn.index, len(self.scripts) - 1)]
            threading.Thread(target=self._run, args=(conn, script), daemon=True).start()

    def _run(self, conn, script):
        try:
            conn.read_head()
            script(conn)
        except Exception as e:  # noqa: BLE001 - recorded for the test to show
            if not self._stop.is_set():
                self.errors.append("conn #%d: %s: %s" % (conn.index, type(e).__name__, e))

    def wait_conns(self, n, timeout):
        """Wait until n connections were accepted; returns True if so."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.conns) >= n and all(c.head for c in self.conns[:n]):
                    return True
            time.sleep(0.02)
        return False

    def seen(self):
        with self._lock:
            return bytes(self.up), bytes(self.down)

    def stop(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            conns = list(self.conns)
        for c in conns:
            c.close()
        self._thread.join(timeout=5)


# ---------------------------------------------------------------- forwarder

class Forwarder:
    """127.0.0.1:port -> 127.0.0.1:target, one thread per direction.

    inject_to_client(data) writes data into the newest connection's
    target->client direction, between two pieces of forwarded data (so when
    the link is quiet it lands on a record boundary); with mute_upstream, what
    the client sends on that connection afterwards is dropped (so the target
    never sees the client's reaction, e.g. a TLS alert).  A close on either
    side closes both.  seen() returns what passed each way (up to 1 MiB
    each): what anyone on the network path of a plain tunnel can see."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.up = bytearray()    # client -> target
        self.down = bytearray()  # target -> client
        self.pairs = []          # [(client_sock, upstream_sock, lock, muted)]
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    @property
    def count(self):
        with self._lock:
            return len(self.pairs)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                u = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                c.close()
                continue
            c.settimeout(None)
            u.settimeout(None)
            wlock, muted = threading.Lock(), threading.Event()
            with self._lock:
                self.pairs.append((c, u, wlock, muted))
            threading.Thread(target=self._pump, args=(c, u, threading.Lock(), muted, self.up),
                             daemon=True).start()
            threading.Thread(target=self._pump, args=(u, c, wlock, None, self.down),
                             daemon=True).start()

    def _pump(self, src, dst, wlock, muted, log):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                if muted is not None and muted.is_set():
                    continue
                with self._lock:
                    if len(log) < (1 << 20):
                        log += d
                with wlock:
                    dst.sendall(d)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def inject_to_client(self, data, mute_upstream=False):
        with self._lock:
            c, _u, wlock, muted = self.pairs[-1]
        with wlock:
            if mute_upstream:
                muted.set()
            c.sendall(data)

    def seen(self):
        with self._lock:
            return bytes(self.up), bytes(self.down)

    def stop(self):
        self._stop.set()
        try:
            self.sock.close()
        except OSError:
            pass
        with self._lock:
            pairs = list(self.pairs)
        for c, u, _, _ in pairs:
            for s in (c, u):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
