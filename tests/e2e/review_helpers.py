"""Helpers for test_review_relay.py (security regressions from a review).

A tunnel peer written in Python (handshake, chunk frames, serving streams),
a TLS client that can slip raw bytes under its TLS layer, an origin that
reports how many body bytes it really got, and probes of the relay process
(RSS, sanitizer reports, memory).  Loopback only; every wait is bounded.
"""
import hashlib
import json
import re
import resource
import secrets
import selectors
import socket
import ssl
import threading
import time

from fake_relay import Forwarder


# ---------------------------------------------------------------- signing

def sign(secret, payload, token=None):
    """pagekite.py's signToken without a timestamp (what a connector sends)."""
    token = token or secrets.token_hex(4)
    return token[:8] + hashlib.sha1((secret + payload + token[:8]).encode()).hexdigest()[:28]


def values(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


# ---------------------------------------------------------------- process probes

def proc_status_kb(pid, field="VmRSS"):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


SANITIZER_RX = re.compile(r"(ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                          r"WARNING: ThreadSanitizer|SUMMARY: \w+Sanitizer)")


def sanitizer_report(text):
    """The first sanitizer report line in text, or None."""
    m = SANITIZER_RX.search(text)
    if not m:
        return None
    start = text.rfind("\n", 0, m.start()) + 1
    return text[start:start + 1500]


def raise_nofile(want):
    """Raise this process's RLIMIT_NOFILE soft limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= want:
        return soft
    if hard != resource.RLIM_INFINITY and hard < want:
        raise AssertionError("RLIMIT_NOFILE hard limit %d < %d needed (ulimit -Hn)" % (hard, want))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want


# ---------------------------------------------------------------- tunnel peer

class PeerClosed(AssertionError):
    pass


class Tunnel:
    """One connection to the relay that speaks the tunnel protocol."""

    def __init__(self, port, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        self.buf = b""

    @staticmethod
    def request(kites=(), features=("AddKites",), extra=()):
        req = "CONNECT PageKite:1 HTTP/1.0\r\n"
        for f in features:
            req += "X-PageKite-Features: %s\r\n" % f
        for line in kites:
            req += "X-PageKite: %s\r\n" % line
        for k, v in extra:
            req += "%s: %s\r\n" % (k, v)
        return (req + "\r\n").encode()

    def _recv(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(left)
        data = self.sock.recv(262144)
        if not data:
            raise PeerClosed("relay closed the tunnel; unparsed bytes: %r" % self.buf[:300])
        self.buf += data

    def read_head(self, timeout=None):
        """The relay's response head: (status line, [(name, value)])."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\r\n\r\n" not in self.buf:
            self._recv(deadline)
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        hdrs = []
        for line in lines[1:]:
            k, _, v = line.partition(":")
            hdrs.append((k.strip(), v.strip()))
        return lines[0], hdrs

    def handshake(self, kites=(), features=("AddKites",), extra=()):
        self.sock.sendall(self.request(kites, features, extra))
        return self.read_head()

    def read_chunk(self, timeout=None):
        """Next chunk as ([(name, value)], data); socket.timeout if none comes."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            nl = self.buf.find(b"\r\n")
            if nl > 0:
                size = int(self.buf[:nl], 16)
                if len(self.buf) >= nl + 2 + size:
                    payload = self.buf[nl + 2:nl + 2 + size]
                    self.buf = self.buf[nl + 2 + size:]
                    head, _, data = payload.partition(b"\r\n\r\n")
                    hdrs = []
                    for line in head.decode("latin-1").split("\r\n"):
                        k, _, v = line.partition(":")
                        hdrs.append((k.strip(), v.strip()))
                    return hdrs, data
            self._recv(deadline)

    def read_until(self, pred, timeout):
        """Read chunks until pred(headers, data) is true; returns that chunk."""
        deadline = time.monotonic() + timeout
        while True:
            hdrs, data = self.read_chunk(max(0.01, deadline - time.monotonic()))
            if pred(hdrs, data):
                return hdrs, data

    @staticmethod
    def frame(headers, data=b""):
        head = "".join("%s: %s\r\n" % kv for kv in headers) + "\r\n"
        payload = head.encode() + data
        return b"%x\r\n" % len(payload) + payload

    def send_chunk(self, headers, data=b""):
        self.sock.sendall(self.frame(headers, data))

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def challenge(port, proto, name, bsalt):
    """Ask the relay for a challenge; returns its token."""
    t = Tunnel(port)
    try:
        status, hdrs = t.handshake(["%s:%s:%s::" % (proto, name, bsalt)], features=())
    finally:
        t.close()
    st = values(hdrs, "X-PageKite-SignThis")
    assert status.startswith("HTTP/1.1 200") and st, "no challenge: %r %r" % (status, hdrs)
    return st[0].split(":")[3]


def signed_line(port, name, secret, proto="http"):
    """A fresh "proto:name:bsalt:token:sign" request, signed with secret."""
    bsalt = secrets.token_hex(18)
    token = challenge(port, proto, name, bsalt)
    payload = "%s:%s:%s:%s" % (proto, name, bsalt, token)
    return "%s:%s" % (payload, sign(secret, payload)), "%s:%s:%s" % (proto, name, bsalt)


class KiteServer:
    """Answers every stream that arrives on a Python tunnel with a fixed body."""

    def __init__(self, tunnel, body):
        self.tunnel = tunnel
        self.body = body
        self.streams = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        answered = set()
        while not self.stop.is_set():
            try:
                hdrs, data = self.tunnel.read_chunk(0.2)
            except socket.timeout:
                continue
            except (OSError, AssertionError, ValueError):
                return
            sid = values(hdrs, "SID")
            if not sid or values(hdrs, "NOOP") or values(hdrs, "EOF") or sid[0] in answered:
                continue
            answered.add(sid[0])
            self.streams += 1
            resp = (b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                    % (len(self.body), self.body))
            try:
                self.tunnel.send_chunk([("SID", sid[0])], resp)
                self.tunnel.send_chunk([("SID", sid[0]), ("EOF", "1WR")], b"Bye!")
            except OSError:
                return

    def close(self):
        self.stop.set()
        self.thread.join(5)
        self.tunnel.close()


# ---------------------------------------------------------------- raw HTTP

def raw_get(port, host, path="/", timeout=5.0, source=None):
    """GET with Connection: close; returns (status or None, body, error text)."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                     source_address=source)
    except OSError as e:
        return None, b"", "connect: %s" % e
    buf = b""
    err = None
    deadline = time.monotonic() + timeout
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (path, host)).encode())
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                err = "no complete answer within %.1f s" % timeout
                break
            s.settimeout(left)
            d = s.recv(65536)
            if not d:
                break
            buf += d
            if http_complete(buf):
                break
    except OSError as e:
        err = "%s: %s" % (type(e).__name__, e)
    finally:
        s.close()
    return parse_response(buf, err)


def http_complete(buf):
    if b"\r\n\r\n" not in buf:
        return False
    head, body = buf.split(b"\r\n\r\n", 1)
    m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return bool(m) and len(body) >= int(m.group(1))


def parse_response(buf, err=None):
    if b"\r\n\r\n" not in buf:
        return None, buf, err or ("no response head (got %r)" % buf[:100])
    head, body = buf.split(b"\r\n\r\n", 1)
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None, buf, "bad status line %r" % head[:80]
    return status, body, err


# ---------------------------------------------------------------- TLS client

class RawTls:
    """A TLS client over a socket we own (ssl.MemoryBIO): inject() writes raw
    bytes on the TCP connection underneath the TLS layer."""

    def __init__(self, port, server_hostname, timeout=5.0):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.timeout = timeout
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.inc, self.out, server_hostname=server_hostname)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                self._pull(deadline)
        self._flush()

    def _flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def _pull(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("TLS: timed out")
        self.sock.settimeout(left)
        data = self.sock.recv(65536)
        if not data:
            self.inc.write_eof()
            raise PeerClosed("TLS: connection closed by the relay")
        self.inc.write(data)

    def send(self, data):
        self.tls.write(data)
        self._flush()

    def inject(self, raw):
        self.sock.sendall(raw)

    def recv_head(self, timeout=None):
        """Read up to the end of a response head; returns the head (bytes)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        buf = b""
        while b"\r\n\r\n" not in buf:
            try:
                buf += self.tls.read(65536)
            except ssl.SSLWantReadError:
                self._pull(deadline)
        return buf.split(b"\r\n\r\n", 1)[0]

    def recv_response(self, timeout=None):
        """Read one HTTP response (Content-Length framed); returns (status, body, err)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        buf = b""
        err = None
        try:
            while not http_complete(buf):
                try:
                    buf += self.tls.read(65536)
                except ssl.SSLWantReadError:
                    self._pull(deadline)
        except (OSError, ssl.SSLError, AssertionError) as e:
            err = "%s: %s" % (type(e).__name__, e)
        return parse_response(buf, err)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


# A TLS 1.2/1.3 application-data record the relay cannot decrypt.
BOGUS_TLS_RECORD = b"\x17\x03\x03\x00\x05hello"


# ---------------------------------------------------------------- counting origin

class CountingOrigin:
    """HTTP origin that reads a request body up to Content-Length (or until the
    client is idle for idle_s) and answers {"len": received, "sha256": ...}, so
    a short body shows as a number instead of a hang.  GET answers "ok"."""

    def __init__(self, idle_s=2.0):
        self.idle_s = idle_s
        self.lsock = socket.create_server(("127.0.0.1", 0))
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.received = []  # (path, content-length, bytes received, sha256)
        self.done = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.done.is_set():
            try:
                c, _ = self.lsock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(self.idle_s)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = c.recv(65536)
                if not d:
                    return
                buf += d
            head, body = buf.split(b"\r\n\r\n", 1)
            path = head.split(b" ")[1].decode(errors="replace")
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            want = int(m.group(1)) if m else 0
            try:
                while len(body) < want:
                    d = c.recv(65536)
                    if not d:
                        break
                    body += d
            except socket.timeout:
                pass
            got = body[:want]
            self.received.append((path, want, len(got), hashlib.sha256(got).hexdigest()))
            if head.startswith(b"GET"):
                answer = b"ok"
            else:
                answer = json.dumps({"len": len(got),
                                     "sha256": hashlib.sha256(got).hexdigest()}).encode()
            c.settimeout(5)
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                      % (len(answer), answer))
        except OSError:
            pass
        finally:
            c.close()

    def stop(self):
        self.done.set()
        self.lsock.close()


# ---------------------------------------------------------------- process memory

def scan_memory(pid, pattern, max_region=1 << 30):
    """Yield regex matches (bytes) in the readable, writable private memory of
    pid (needs ptrace rights: root or the same user with ptrace_scope 0).
    Huge regions (sanitizer shadow) are skipped; they hold no strings."""
    rx = re.compile(pattern)
    with open("/proc/%d/maps" % pid) as maps, open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            parts = line.split()
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            perms = parts[1]
            name = parts[5] if len(parts) > 5 else ""
            if not perms.startswith("rw") or name in ("[vvar]", "[vsyscall]"):
                continue
            if hi - lo > max_region:
                continue
            try:
                mem.seek(lo)
                data = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            for m in rx.finditer(data):
                yield m.group(0)


# ---------------------------------------------------------------- recording proxy

# A TCP forwarder that keeps what passed each way: fake_relay.Forwarder.
RecordingProxy = Forwarder


# ---------------------------------------------------------------- idle flood

class IdleFlood:
    """Holds `count` connections from `source` to 127.0.0.1:port that never
    send a byte; any the relay closes are opened again (at most `burst` per
    round).  start()/stop(); `opened` and `closed_by_peer` count events."""

    def __init__(self, port, count, source="127.0.0.2", burst=100):
        self.port, self.count, self.source, self.burst = port, count, source, burst
        self.opened = self.closed_by_peer = self.errors = 0
        self.live = 0
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def _open(self, sel):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.SOL_IP, 24, 1)  # IP_BIND_ADDRESS_NO_PORT
            s.bind((self.source, 0))
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            sel.register(s, selectors.EVENT_READ)
            self.opened += 1
            self.live += 1
        except OSError:
            self.errors += 1
            s.close()

    def _run(self):
        sel = selectors.DefaultSelector()
        try:
            # The first round opens all of them; after that at most `burst`
            # re-opens per 50 ms round (20 x burst per second).
            limit = self.count
            while not self.done.is_set():
                t0 = time.monotonic()
                for _ in range(min(limit, self.count - self.live)):
                    self._open(sel)
                limit = self.burst
                for key, _ in sel.select(0.05):
                    s = key.fileobj
                    try:
                        if s.recv(4096):
                            continue  # the relay said something: keep holding it
                    except BlockingIOError:
                        continue
                    except OSError:
                        pass
                    sel.unregister(s)
                    s.close()
                    self.live -= 1
                    self.closed_by_peer += 1
                time.sleep(max(0.0, 0.05 - (time.monotonic() - t0)))
        finally:
            for key in list(sel.get_map().values()):
                key.fileobj.close()
            sel.close()
            self.live = 0

    def stop(self):
        self.done.set()
        self.thread.join(10)


def sanitized_build():
    """True when PK_BUILD_DIR's pagekiter is built with AddressSanitizer."""
    from harness import PAGEKITER
    try:
        with open(PAGEKITER, "rb") as f:
            return b"__asan_init" in f.read()
    except OSError:
        return False
