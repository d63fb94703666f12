#!/usr/bin/env python3
"""chaos.py - a stateful lifecycle fuzzer ("chaos run") for pagekiter/pagekitec.

Starts, on loopback only:
  * an origin (HTTP: /bytes/N, POST /echo and /upload, /headers, /ws; the
    same behind TLS for an https kite) and a raw TCP echo server;
  * our relay (pagekiter), plain or with --tls-cert/--tls-key (a throwaway CA
    made with the openssl CLI, as tests/e2e/harness.py's TestPKI does);
  * our connector (pagekitec) flying http, raw and https (SNI passthrough)
    kites through a fault-injecting TCP proxy ("tunnel proxy"); in --tls mode
    it uses --ca-file and a second, plain connector flies another kite behind
    its own proxy; with --dups the relay runs --allow-duplicates and a third
    connector flies the same kites;
  * a "victim" connector whose relay is a hostile Python relay;
  * a fault-injecting proxy for clients ("client proxy").

Then it alternates storms and calm checks until --seconds are used:

  storm: the proxies delay, split into 1-byte writes, coalesce, stop
         reading, reset (RST), half-close, truncate, inject garbage or a bogus
         TLS record, duplicate or bit-flip chunks; hostile tunnel peers hit
         the relay directly (challenges, bad or replayed signatures, NOOP/
         PING/SKB/EOF chunks for unknown SIDs, bad ZChunks, websocket tunnels
         with bad frames, authenticated kites that flood, stop reading, lie
         about EOF, floods of unknown connections and kite-less tunnels,
         bursts past the connector's pool, requests aimed at the
         forwarding-header rewriter); the hostile relay feeds the victim
         connector odd handshakes, in-band SignThis, junk chunks, huge
         headers, flow-control abuse, resets; our processes get SIGTERM,
         SIGKILL and SIGUSR1 mid-storm; real clients fetch, upload, echo,
         pipeline, use websockets, TLS and raw CONNECT through the relay and
         verify every body (sha256).  Long storms (--long, default with
         --seconds >= 240) also wait out the PING and write-stall timeouts.
  calm:  faults off, hostile peers gone; the relay must answer /ping, every
         kite must serve a verified request within --calm-timeout seconds,
         the relay and connectors must be back to the expected tunnels/kites
         and 0 streams, the victim connector must serve a well-behaved relay.

Invariants (a violation is a *finding*): no process dies; no AddressSanitizer
/ LeakSanitizer / UBSan report on stderr; no hang (calm checks above); no
corrupted bytes on a request that completed when no corrupting fault could
explain it; the origin never sees a forwarding header but the connector's;
RSS and open descriptors bounded (max reported, growth flagged); every
process exits 0 within 20 s of SIGTERM, mid-storm and at the end.

Every loop is bounded in count and time; everything is seeded (--seed); only
processes started here are signalled (by PID).  Stdlib only.

  python3 tests/chaos/chaos.py --seed 1 --seconds 120 --plain --out /tmp/pk-chaos
  python3 tests/chaos/chaos.py --seed 2 --seconds 120 --tls

Exit status: 0 no finding, 1 findings (logs kept under --out), 2 setup error.
"""

import argparse
import faulthandler
import base64
import collections
import hashlib
import json
import os
import pty
import random
import re
import select
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOMAIN = "example.test"
SECRET = "chaos-secret-0123456789"
HTTP_KITE = "chaos." + DOMAIN
RAW_KITE = "rawchaos." + DOMAIN
PLAIN2_KITE = "chaos2." + DOMAIN
VICTIM_KITE = "victim." + DOMAIN
HTTPS_KITE = "secure." + DOMAIN   # TLS passthrough by SNI to a TLS origin
RELAY_NAME = "relay." + DOMAIN
STUCK_S = float(os.environ.get("PK_CHAOS_STUCK_S", "75"))  # dump thread stacks past this

# fault classes, by how much they may explain a failed or wrong request
NONE, TRANSPARENT, STALL, DISRUPT, CORRUPT = 0, 1, 2, 3, 4
FAULTS = {
    "delay": TRANSPARENT, "split": TRANSPARENT, "coalesce": TRANSPARENT,
    "stall": STALL,
    "reset": DISRUPT, "halfclose": DISRUPT, "truncate": DISRUPT,
    "garbage": CORRUPT, "tlsrec": CORRUPT, "dup": CORRUPT, "bitflip": CORRUPT,
}
PROFILES = {
    # name: (rate range per chunk, weights)
    "transparent": ((0.02, 0.15), {"delay": 3, "split": 2, "coalesce": 2, "stall": 1}),
    "mixed": ((0.01, 0.10), {"delay": 3, "split": 2, "coalesce": 2, "stall": 2, "reset": 1,
                             "halfclose": 1, "truncate": 1, "garbage": 1, "tlsrec": 1,
                             "dup": 1, "bitflip": 1}),
    "disruptive": ((0.005, 0.05), {"delay": 1, "reset": 2, "halfclose": 2, "truncate": 2,
                                   "stall": 1}),
    "corrupting": ((0.005, 0.05), {"delay": 1, "garbage": 2, "tlsrec": 2, "dup": 2,
                                   "bitflip": 2}),
}

SANITIZER_RE = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"SUMMARY: (?:Address|Undefined|Leak)Sanitizer|AddressSanitizer:DEADLYSIGNAL|"
    r"pagekite: watchdog")
STATUS_RE = re.compile(rb"([A-Z_]+) \| kites (\d+) \| tunnels (\d+) \| streams (\d+)")

# ------------------------------------------------------------------ data

_BIG = hashlib.shake_256(b"pagekite-chaos-pattern").digest(4 << 20)
_SHA = {}
_SHA_LOCK = threading.Lock()


def pattern(n):
    """n deterministic bytes (n <= 4 MiB); every offset is distinct content."""
    return _BIG[:n]


def pattern_sha(n):
    with _SHA_LOCK:
        if n not in _SHA:
            _SHA[n] = hashlib.sha256(_BIG[:n]).hexdigest()
        return _SHA[n]


def sha(b):
    return hashlib.sha256(b).hexdigest()


# ------------------------------------------------------------------ bookkeeping

class Journal:
    """Every action, timestamped, to a file and a ring kept for reports."""

    def __init__(self, path, echo=False):
        self.f = open(path, "w", buffering=1)
        self.t0 = time.monotonic()
        self.ring = collections.deque(maxlen=400)
        self.lock = threading.Lock()
        self.echo = echo

    def now(self):
        return time.monotonic() - self.t0

    def log(self, comp, what):
        line = "%9.3f %-14s %s" % (self.now(), comp, what)
        with self.lock:
            self.ring.append(line)
            try:
                self.f.write(line + "\n")
            except ValueError:
                pass
        if self.echo:
            print(line, flush=True)

    def tail(self, n=60):
        with self.lock:
            return list(self.ring)[-n:]

    def close(self):
        with self.lock:
            self.f.close()


class Stats:
    def __init__(self):
        self.c = collections.Counter()
        self.lock = threading.Lock()

    def inc(self, key, n=1):
        with self.lock:
            self.c[key] += n

    def get(self, key):
        with self.lock:
            return self.c[key]

    def snapshot(self):
        with self.lock:
            return dict(self.c)


# ------------------------------------------------------------------ PKI

def make_pki(d):
    """A CA, a relay cert for relay.example.test + 127.0.0.1 (as TestPKI)."""
    d = Path(d)
    d.mkdir(parents=True, exist_ok=True)
    if not shutil.which("openssl"):
        raise SystemExit("chaos: openssl CLI not found (apt-get install -y openssl)")

    def run(args):
        r = subprocess.run(["openssl"] + args, cwd=str(d), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise SystemExit("openssl %s failed:\n%s" % (" ".join(args), r.stdout.decode()))

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    san = "subjectAltName=DNS:%s,DNS:%s,IP:127.0.0.1" % (RELAY_NAME, HTTPS_KITE)
    run(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
                                 "-subj", "/CN=PageKite Chaos Test CA",
                                 "-addext", "basicConstraints=critical,CA:TRUE",
                                 "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    run(["req"] + ec + ["-keyout", "relay.key", "-out", "relay.csr", "-subj", "/CN=" + RELAY_NAME])
    (d / "relay.ext").write_text(san + "\nbasicConstraints=CA:FALSE\n"
                                 "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n")
    run(["x509", "-req", "-in", "relay.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "relay.pem", "-days", "3", "-extfile", "relay.ext"])
    return d / "ca.pem", d / "relay.pem", d / "relay.key"


# ------------------------------------------------------------------ origin

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_accept(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_frame(opcode, payload, mask=True, fin=True, rsv=0, mask_key=None):
    head = bytearray([(0x80 if fin else 0) | (rsv << 4) | opcode])
    m = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head.append(m | n)
    elif n < 65536:
        head.append(m | 126)
        head += struct.pack("!H", n)
    else:
        head.append(m | 127)
        head += struct.pack("!Q", n)
    if mask:
        key = mask_key or os.urandom(4)
        head += key
        payload = bytes(b ^ key[i & 3] for i, b in enumerate(payload))
    return bytes(head) + payload


def ws_parse(buf):
    """One frame from the front of buf: (fin, opcode, payload, used) or None."""
    if len(buf) < 2:
        return None
    b1, b2 = buf[0], buf[1]
    n, hl = b2 & 0x7F, 2
    if n == 126:
        if len(buf) < 4:
            return None
        n, hl = struct.unpack("!H", bytes(buf[2:4]))[0], 4
    elif n == 127:
        if len(buf) < 10:
            return None
        n, hl = struct.unpack("!Q", bytes(buf[2:10]))[0], 10
    key = None
    if b2 & 0x80:
        if len(buf) < hl + 4:
            return None
        key = bytes(buf[hl:hl + 4])
        hl += 4
    if len(buf) < hl + n:
        return None
    p = bytes(buf[hl:hl + n])
    if key:
        p = bytes(b ^ key[i & 3] for i, b in enumerate(p))
    return bool(b1 & 0x80), b1 & 0x0F, p, hl + n


class _OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60

    def log_message(self, *a):
        pass

    def _send(self, code, body, ctype="application/octet-stream"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            for i in range(0, len(body), 65536):
                self.wfile.write(body[i:i + 65536])

    # -- every request: its body is read by the framing the connector saw
    def _read_body(self):
        """The request body by Content-Length or chunked (a GET may have one
        too: left unread it would be taken for the next request)."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            body = bytearray()
            while len(body) < (16 << 20):
                line = self.rfile.readline(4100)
                if not line.endswith(b"\n"):
                    raise ValueError("bad chunk size line")
                size = int(line.split(b";", 1)[0].strip() or b"x", 16)
                if size == 0:
                    while self.rfile.readline(4100) not in (b"\r\n", b"\n", b""):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                if self.rfile.readline(8) not in (b"\r\n", b"\n"):
                    raise ValueError("bad chunk end")
            raise ValueError("chunked body too long")
        n = int(self.headers.get("Content-Length") or 0)
        body = bytearray()
        while len(body) < n:
            d = self.rfile.read(min(n - len(body), 262144))
            if not d:
                break
            body += d
        return bytes(body)

    def _check_forwarding(self):
        """Every request from a connector carries exactly our forwarding headers."""
        if getattr(self.server, "tls_origin", False):
            return
        xff = self.headers.get_all("X-Forwarded-For") or []
        xfp = self.headers.get_all("X-Forwarded-Proto") or []
        odd = [k for k in self.headers.keys()
               if k.lower().replace("_", "-") in ("x-forwarded-for", "x-forwarded-proto")
               and k not in ("X-Forwarded-For", "X-Forwarded-Proto")]
        # the victim's "relay" (ours, hostile) may claim any client address
        # requests for our main kites only: the victim's (hostile) relay may claim
        # any address, and its "websocket" streams get no forwarding headers
        if (self.headers.get("Host") or "").split(":")[0].lower() not in (HTTP_KITE, PLAIN2_KITE):
            return
        ok_ip = r"127\.0\.0\.\d+|unknown"
        if len(xff) != 1 or not re.fullmatch(ok_ip, xff[0]) or \
                len(xfp) != 1 or xfp[0] not in ("http", "https") or odd:
            owner = getattr(self.server, "owner", None)
            if owner is not None:
                owner.violations.append("%s %s: X-Forwarded-For %r, X-Forwarded-Proto %r, other %r"
                                        % (self.command, self.path[:80], xff, xfp, odd))

    def _prologue(self):
        self._check_forwarding()
        try:
            self.req_body = self._read_body()
        except (ValueError, OSError):
            self.close_connection = True
            self._send(400, b"bad body\n")
            return False
        return True

    def do_HEAD(self):
        if self._prologue():
            self._get()

    def do_GET(self):
        if self._prologue():
            self._get()

    def do_PUT(self):
        if self._prologue():
            self._send(200, sha(self.req_body).encode())

    def _get(self):
        path = self.path.split("?", 1)[0]
        if path.startswith("/bytes/"):
            try:
                n = min(int(path[7:]), len(_BIG))
            except ValueError:
                return self._send(400, b"bad length\n")
            return self._send(200, pattern(n))
        if path == "/ws":
            return self._ws()
        if path == "/headers":
            return self._send(200, json.dumps(dict(self.headers.items())).encode(),
                              "application/json")
        return self._send(200, b"chaos origin\n", "text/plain")

    def do_POST(self):
        if not self._prologue():
            return
        body = self.req_body
        if self.path.startswith("/echo"):
            return self._send(200, bytes(body))
        return self._send(200, json.dumps({"sha256": sha(body), "len": len(body)}).encode(),
                          "application/json")

    def _ws(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if (self.headers.get("Upgrade") or "").lower() != "websocket" or not key:
            return self._send(400, b"websocket upgrade expected\n")
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", ws_accept(key))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        buf = bytearray()
        sock = self.connection
        sock.settimeout(30)
        try:
            while True:
                f = ws_parse(buf)
                if f is None:
                    d = sock.recv(65536)
                    if not d:
                        return
                    buf += d
                    continue
                _fin, op, p, used = f
                del buf[:used]
                if op == 0x8:
                    sock.sendall(ws_frame(0x8, p[:2], mask=False))
                    return
                if op == 0x9:
                    sock.sendall(ws_frame(0xA, p, mask=False))
                elif op in (0x0, 0x1, 0x2):
                    sock.sendall(ws_frame(op, p, mask=False))
        except OSError:
            return


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def handle_error(self, request, client_address):
        pass  # clients and tunnels die mid-request all the time here


class _TLSServer(_Server):
    """The same origin behind TLS (the https kite: the relay passes it through)."""

    def __init__(self, addr, handler, cert, key):
        super().__init__(addr, handler)
        self.sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.sctx.load_cert_chain(str(cert), str(key))

    def get_request(self):
        sock, addr = self.socket.accept()
        sock.settimeout(30)
        # the handshake happens on the first read, in the handler's thread
        return self.sctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr


class Origin:
    """HTTP origin and raw echo on 127.0.0.1."""

    def __init__(self):
        self.violations = []   # forwarding headers the origin should never have seen
        self.http = _Server(("127.0.0.1", 0), _OriginHandler)
        self.http.owner = self
        self.http_port = self.http.server_address[1]
        threading.Thread(target=self.http.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True, name="origin").start()
        self.echo = socket.socket()
        self.echo.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.echo.bind(("127.0.0.1", 0))
        self.echo.listen(256)
        self.echo_port = self.echo.getsockname()[1]
        self.stopped = False
        threading.Thread(target=self._echo_accept, daemon=True, name="echo").start()

    def _echo_accept(self):
        while not self.stopped:
            try:
                c, _ = self.echo.accept()
            except OSError:
                return
            threading.Thread(target=self._echo_serve, args=(c,), daemon=True).start()

    @staticmethod
    def _echo_serve(c):
        c.settimeout(60)
        try:
            while True:
                d = c.recv(65536)
                if not d:
                    break
                c.sendall(d)
        except OSError:
            pass
        finally:
            c.close()

    def start_tls(self, cert, key):
        self.https = _TLSServer(("127.0.0.1", 0), _OriginHandler, cert, key)
        self.https.tls_origin = True
        self.https_port = self.https.server_address[1]
        threading.Thread(target=self.https.serve_forever, kwargs={"poll_interval": 0.2},
                         daemon=True, name="origin-tls").start()

    def stop(self):
        self.stopped = True
        self.http.shutdown()
        self.http.server_close()
        if getattr(self, "https", None):
            self.https.shutdown()
            self.https.server_close()
        self.echo.close()


# ------------------------------------------------------------------ processes

class Proc:
    """One of our binaries: stdout on a pty (the tools draw their status line
    there), stderr to a file; RSS sampling; sanitizer scan; stop by PID."""

    def __init__(self, ctx, name, argv):
        self.ctx = ctx
        self.name = name
        self.argv = [str(a) for a in argv]
        self.generation = 0
        self.popen = None
        self.rss_max_kb = 0
        self.rss_samples = []
        self.fd_samples = []
        self.status = None            # (NAME, kites, tunnels, streams, monotonic)
        self.scan_off = 0
        self.calm_err_off = 0   # stderr of this generation seen by the last calm check
        self.calm_t = time.monotonic()
        self.rss_samples = []   # calm-check samples of this generation only
        self.fd_samples = []
        self.usr1_done = False
        self.reported = False         # a sanitizer report was already a finding
        self.expected_exit = False
        self.calm_err_off = 0
        self.calm_t = time.monotonic()

    def start(self):
        self.generation += 1
        sfx = "" if self.generation == 1 else ".%d" % self.generation
        d = self.ctx.logdir
        self.out_path = d / ("%s%s.out" % (self.name, sfx))
        self.err_path = d / ("%s%s.err" % (self.name, sfx))
        self.err_f = open(self.err_path, "wb")
        self.out_f = open(self.out_path, "wb")
        self.out_f.write(("# " + " ".join(self.argv) + "\n").encode())
        master, slave = pty.openpty()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1:halt_on_error=1")
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=slave,
                                      stderr=self.err_f, env=env, cwd=str(d),
                                      start_new_session=True)
        os.close(slave)
        self.master = master
        self.pid = self.popen.pid
        self.started_at = time.monotonic()
        self.scan_off = 0
        self.reported = False
        self.expected_exit = False
        self.status = None
        threading.Thread(target=self._drain_pty, args=(master, self.out_f), daemon=True,
                         name="pty-" + self.name).start()
        self.ctx.journal.log(self.name, "started pid %d: %s" % (self.pid, " ".join(self.argv)))
        return self

    def _drain_pty(self, master, out_f):
        tail = b""
        while True:
            try:
                d = os.read(master, 65536)
            except OSError:
                break
            if not d:
                break
            try:
                out_f.write(d)
            except ValueError:
                pass
            tail = (tail + d)[-4096:]
            ms = list(STATUS_RE.finditer(tail))
            if ms:
                m = ms[-1]
                self.status = (m.group(1).decode(), int(m.group(2)), int(m.group(3)),
                               int(m.group(4)), time.monotonic())
        try:
            os.close(master)
        except OSError:
            pass

    @property
    def alive(self):
        return self.popen is not None and self.popen.poll() is None

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            pass
        return None

    def fd_count(self):
        try:
            return len(os.listdir("/proc/%d/fd" % self.pid))
        except OSError:
            return None

    def sample_rss(self):
        v = self.rss_kb()
        if v:
            self.rss_max_kb = max(self.rss_max_kb, v)
        return v

    def stderr_text(self):
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def scan(self):
        """New sanitizer lines on stderr since the last scan: excerpt or None."""
        try:
            with open(self.err_path, "rb") as f:
                f.seek(self.scan_off)
                data = f.read()
        except OSError:
            return None
        # only advance past complete lines
        cut = data.rfind(b"\n") + 1
        text = data[:cut].decode(errors="replace")
        self.scan_off += cut
        m = SANITIZER_RE.search(text)
        if not m:
            return None
        return text[max(0, text.rfind("\n", 0, m.start()) + 1):]

    def tail(self, n=40):
        lines = self.stderr_text().splitlines()
        return "\n".join(lines[-n:])

    def stop(self, timeout=20.0):
        """SIGTERM, wait; returns (rc, seconds) with rc None when it had to be killed."""
        if self.popen is None:
            return 0, 0.0
        self.expected_exit = True
        t0 = time.monotonic()
        if self.popen.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.popen.wait(10)
                return None, time.monotonic() - t0
        return self.popen.returncode, time.monotonic() - t0

    def kill(self):
        if self.popen is not None and self.popen.poll() is None:
            self.expected_exit = True
            try:
                os.kill(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                pass

    def close_files(self):
        for f in (getattr(self, "err_f", None), getattr(self, "out_f", None)):
            try:
                f and f.close()
            except OSError:
                pass


# ------------------------------------------------------------------ fault proxy

def _rst_close(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        s.close()
    except OSError:
        pass


class _Dir:
    """One direction of a pipe: src -> dst."""

    def __init__(self, src, dst, name):
        self.src, self.dst, self.name = src, dst, name
        self.q = collections.deque()   # [send_at, bytes, piece] ; piece 1 = split writes
        self.qbytes = 0
        self.eof = False               # src said EOF (or halfclose fault)
        self.shut = False              # dst shut down for writing
        self.discard = False           # after halfclose: read and drop
        self.stall_until = 0.0


class _Pipe:
    def __init__(self, proxy, csock, usock, cport, pid):
        self.proxy, self.c, self.u, self.cport, self.id = proxy, csock, usock, cport, pid
        self.up = _Dir(csock, usock, "up")       # client -> upstream
        self.down = _Dir(usock, csock, "down")   # upstream -> client
        self.closing_at = None                    # truncate: close when drained (or then)
        self.dead = False
        self.corrupted = False

    def run(self):
        px = self.proxy
        try:
            self._loop()
        except Exception as e:  # noqa: BLE001 - a proxy bug must not kill the run
            px.ctx.journal.log(px.name, "pipe %d: internal error %r" % (self.id, e))
        finally:
            if not self.dead:
                for s in (self.c, self.u):
                    try:
                        s.close()
                    except OSError:
                        pass
            self.dead = True
            px.pipe_closed(self)

    def _loop(self):
        px = self.proxy
        while not self.dead and not px.stopped:
            now = time.monotonic()
            rl, wl = [], []
            for d in (self.up, self.down):
                if not d.eof and d.stall_until <= now and d.qbytes < (1 << 20):
                    rl.append(d.src)
                if d.q and d.q[0][0] <= now:
                    wl.append(d.dst)
            if self.closing_at is not None and (now >= self.closing_at or
                                                (not self.up.q and not self.down.q)):
                self.c.close()
                self.u.close()
                self.dead = True
                return
            if self.up.eof and self.down.eof and not self.up.q and not self.down.q:
                return
            r, w, _ = select.select(rl, wl, [], 0.05)
            for d in (self.up, self.down):
                if d.src in r:
                    try:
                        data = d.src.recv(65536)
                    except BlockingIOError:
                        continue
                    except OSError:
                        # a reset on one side is a reset on the other
                        _rst_close(d.dst)
                        d.src.close()
                        self.dead = True
                        return
                    if not data:
                        d.eof = True
                        if not d.q:
                            self._shut(d)
                    elif d.discard:
                        pass
                    else:
                        self._forward(d, data)
                        if self.dead:
                            return
            for d in (self.up, self.down):
                if d.dst in w and d.q:
                    if not self._write(d):
                        return
                if d.eof and not d.q and not d.shut:
                    self._shut(d)

    def _shut(self, d):
        d.shut = True
        try:
            d.dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    def _write(self, d):
        now = time.monotonic()
        head = d.q[0]
        try:
            if head[2] == 1:
                n = d.dst.send(head[1][:1])
            else:
                # coalesce everything that is due into one write
                parts, total = [], 0
                for it in d.q:
                    if it[0] > now or it[2] == 1 or total > 262144:
                        break
                    parts.append(it[1])
                    total += len(it[1])
                n = d.dst.send(b"".join(parts))
        except BlockingIOError:
            return True
        except OSError:
            _rst_close(d.src)
            d.dst.close()
            self.dead = True
            return False
        d.qbytes -= n
        while n > 0:
            it = d.q[0]
            if n >= len(it[1]):
                n -= len(it[1])
                d.q.popleft()
            else:
                it[1] = it[1][n:]
                n = 0
        return True

    def _enqueue(self, d, data, at=0.0, piece=0):
        if d.q and d.q[-1][0] > at:
            at = d.q[-1][0]  # keep order
        d.q.append([at, data, piece])
        d.qbytes += len(data)

    def _forward(self, d, data):
        px = self.proxy
        if not px.enabled or px.rng.random() >= px.rate:
            self._enqueue(d, data)
            return
        kind = px.pick()
        cls = FAULTS[kind]
        now = time.monotonic()
        rng = px.rng
        detail = ""
        # book the fault before it can have any effect: a client that sees it
        # must find it when it looks
        if kind == "stall":
            dt = rng.choice(px.stall_choices)
            px.record(cls, now, now + dt, self)
        elif cls == CORRUPT:
            px.record(CORRUPT if not px.tls_inner else DISRUPT, now, None, self)
        else:
            px.record(cls, now, now, self)
        px.note_taint(self.cport, cls)
        if kind == "delay":
            dt = rng.choice((0.01, 0.05, 0.2, 0.5))
            self._enqueue(d, data, now + dt)
            detail = "%.2fs" % dt
        elif kind == "split":
            k = min(len(data), rng.choice((16, 256, 2048)))
            for i in range(k):
                self._enqueue(d, data[i:i + 1], piece=1)
            if k < len(data):
                self._enqueue(d, data[k:])
            detail = "%d bytes one by one" % k
        elif kind == "coalesce":
            dt = rng.choice((0.05, 0.2, 0.4))
            self._enqueue(d, data, now + dt)
            detail = "hold %.2fs" % dt
        elif kind == "stall":
            d.stall_until = now + dt
            self._enqueue(d, data)
            detail = "stop reading %s for %.1fs" % (d.name, dt)
        elif kind == "reset":
            _rst_close(self.c)
            _rst_close(self.u)
            self.dead = True
        elif kind == "halfclose":
            d.q.clear()
            d.qbytes = 0
            d.discard = True
            self._shut(d)
        elif kind == "truncate":
            cut = rng.randrange(0, len(data))
            self._enqueue(d, data[:cut])
            self.closing_at = now + 1.0
            detail = "%d of %d bytes, then close" % (cut, len(data))
        elif kind == "garbage":
            g = bytes(rng.getrandbits(8) for _ in range(rng.choice((1, 7, 64))))
            self._enqueue(d, g + data)
            self.corrupted = True
        elif kind == "tlsrec":
            self._enqueue(d, b"\x17\x03\x03\x00\x05hello" + data)
            self.corrupted = True
        elif kind == "dup":
            self._enqueue(d, data)
            self._enqueue(d, data)
            self.corrupted = True
        elif kind == "bitflip":
            i = rng.randrange(len(data))
            b = bytearray(data)
            b[i] ^= 1 << rng.randrange(8)
            self._enqueue(d, bytes(b))
            self.corrupted = True
            detail = "byte %d of %d" % (i, len(data))
        px.ctx.stats.inc("exec")
        px.ctx.stats.inc("fault:" + kind)
        if px.verbose_journal:
            px.ctx.journal.log(px.name, "pipe %d %s %s %s" % (self.id, d.name, kind, detail))


class FaultProxy:
    """TCP proxy 127.0.0.1:port -> 127.0.0.1:target that injects faults."""

    def __init__(self, ctx, name, target, tls_inner=False, verbose_journal=True):
        self.ctx, self.name, self.target = ctx, name, target
        self.rng = random.Random("%s:%s" % (ctx.seed, name))
        self.tls_inner = tls_inner   # the bytes are TLS: corruption cannot pass unnoticed
        self.verbose_journal = verbose_journal
        self.enabled = False
        self.rate = 0.0
        self.weights = {}
        self.stall_choices = (0.3, 1.0, 3.0)
        self.lock = threading.Lock()
        self.intervals = collections.deque(maxlen=50000)  # [t0, t1 or None, cls, pipe]
        self.taint = {}
        self.pipes = set()
        self.npipes = 0
        self.stopped = False
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(256)
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="proxy-" + name).start()

    def configure(self, profile, rate, long_stalls=False):
        self.weights = PROFILES[profile][1]
        self.rate = rate
        self.stall_choices = (0.3, 1.0, 3.0, 8.0) if long_stalls else (0.3, 1.0, 3.0)
        self._kinds = list(self.weights)
        self._cum = []
        acc = 0
        for k in self._kinds:
            acc += self.weights[k]
            self._cum.append(acc)
        self.enabled = rate > 0

    def pick(self):
        x = self.rng.random() * self._cum[-1]
        for k, c in zip(self._kinds, self._cum):
            if x < c:
                return k
        return self._kinds[-1]

    def record(self, cls, t0, t1, pipe):
        with self.lock:
            self.intervals.append([t0, t1, cls, pipe])

    def note_taint(self, cport, cls):
        with self.lock:
            if self.taint.get(cport, 0) < cls:
                self.taint[cport] = cls

    def taint_of(self, cport):
        with self.lock:
            return self.taint.get(cport, 0)

    def pipe_closed(self, pipe):
        now = time.monotonic()
        with self.lock:
            self.pipes.discard(pipe)
            for it in self.intervals:
                if it[3] is pipe and it[1] is None:
                    it[1] = now   # plain-text corruption taints the rest of the connection
        if self.verbose_journal:
            self.ctx.journal.log(self.name, "pipe %d closed" % pipe.id)

    def max_class(self, t0, t1):
        """Worst fault class whose interval meets [t0, t1]."""
        worst = 0
        with self.lock:
            for a, b, cls, _p in reversed(self.intervals):
                if b is not None and b < t0:
                    if a < t0 - 600:
                        break
                    continue
                if a > t1:
                    continue
                worst = max(worst, cls)
        return worst

    def _accept(self):
        while not self.stopped:
            try:
                c, addr = self.ls.accept()
            except OSError:
                return
            with self.lock:
                too_many = len(self.pipes) >= 300
            if too_many:
                c.close()
                continue
            try:
                u = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                _rst_close(c)
                continue
            for s in (c, u):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.npipes += 1
            p = _Pipe(self, c, u, addr[1], self.npipes)
            with self.lock:
                self.taint[addr[1]] = 0
                self.pipes.add(p)
            if self.verbose_journal:
                self.ctx.journal.log(self.name, "pipe %d from :%d" % (p.id, addr[1]))
            threading.Thread(target=p.run, daemon=True).start()

    def stop(self):
        self.stopped = True
        self.enabled = False
        try:
            self.ls.close()
        except OSError:
            pass


class ProxySet:
    """The tunnel proxies a kite's streams may take (several with --dups)."""

    def __init__(self, *proxies):
        self.proxies = list(proxies)

    def add(self, px):
        self.proxies.append(px)

    def max_class(self, t0, t1):
        return max([px.max_class(t0, t1) for px in self.proxies] or [0])

    def corrupt_in(self, t0, t1):
        """Could plain-text corruption have reached a stream in [t0, t1]?"""
        return any(not px.tls_inner and px.max_class(t0, t1) >= CORRUPT for px in self.proxies)


# ------------------------------------------------------------------ wire format

FRAME_RE = re.compile(rb"([0-9a-fA-F]{1,16})(?:Z([0-9a-fA-F]{1,16}))?(R?)\r\n")


def frame(payload):
    return b"%x\r\n" % len(payload) + payload


def chunk_payload(headers, data=b""):
    return b"".join(b"%s: %s\r\n" % (_b(k), _b(v)) for k, v in headers) + b"\r\n" + data


def chunk(headers, data=b""):
    return frame(chunk_payload(headers, data))


def noop(headers, data=b"!"):
    return chunk([("NOOP", "1")] + list(headers), data)


def _b(x):
    return x if isinstance(x, bytes) else str(x).encode()


class Deflater:
    def __init__(self):
        self.z = None

    def frame(self, payload, reset=False):
        r = b""
        if self.z is None or reset:
            self.z = zlib.compressobj(1)
            r = b"R" if reset else b""
        c = self.z.compress(payload) + self.z.flush(zlib.Z_SYNC_FLUSH)
        return b"%xZ%x%s\r\n" % (len(payload), len(c), r) + c


class Chunk:
    def __init__(self, payload):
        self.raw = payload
        self.headers = []
        if payload.startswith(b"\r\n"):
            self.data = payload[2:]
        else:
            i = payload.find(b"\r\n\r\n")
            head, self.data = (payload, b"") if i < 0 else (payload[:i], payload[i + 4:])
            for line in head.split(b"\r\n"):
                k, _, v = line.partition(b":")
                self.headers.append((k.strip().decode("latin-1"), v.strip().decode("latin-1")))

    def get(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def sid(self):
        try:
            return int(self.get("SID"))
        except (TypeError, ValueError):
            return None

    @property
    def noop(self):
        return self.get("NOOP") is not None


class ChunkReader:
    """Frames from a byte stream: plain, ZChunks, or websocket frames."""

    def __init__(self, ws=False):
        self.buf = bytearray()
        self.z = None
        self.ws = ws
        self.pending = collections.deque()   # parsed, not yet looked at (read_chunks)

    def feed(self, data):
        self.buf += data
        out = []
        while self.buf:
            if self.ws:
                f = ws_parse(self.buf)
                if f is None:
                    break
                _fin, op, p, used = f
                del self.buf[:used]
                if op in (1, 2) and p:
                    out.append(Chunk(p))
                continue
            m = FRAME_RE.match(self.buf)
            if not m:
                if b"\n" in self.buf[:40] or len(self.buf) > 40:
                    raise ValueError("bad frame header %r" % bytes(self.buf[:40]))
                break
            # (a match on a bytearray reads it lazily: copy the groups first)
            g1, g2, g3, end = bytes(m.group(1)), m.group(2), bytes(m.group(3)), m.end()
            g2 = bytes(g2) if g2 is not None else None
            n = int(g1, 16)
            wl = int(g2, 16) if g2 else n
            if len(self.buf) < end + wl:
                break
            p = bytes(self.buf[end:end + wl])
            del self.buf[:end + wl]
            if g2:
                if self.z is None or g3:
                    self.z = zlib.decompressobj()
                p = self.z.decompress(p)
                if len(p) != n:
                    raise ValueError("ZChunk inflated to %d, header said %d" % (len(p), n))
            out.append(Chunk(p))
        return out


def sign_token(secret, payload, token=None, ts=0):
    """pagekite.py's signToken (c/src/sign.c)."""
    prefix = (token or os.urandom(4).hex())[:8]
    parts = [secret, payload]
    if ts:
        prefix = "t" + prefix[1:]
        parts.append("%x" % (int(ts) // 600))
    parts.append(prefix)
    return prefix + hashlib.sha1("".join(parts).encode()).hexdigest()[:28]


def parse_head(raw):
    """HTTP head bytes -> (first line, [(name, value)])."""
    lines = raw.decode("latin-1").split("\r\n")
    hdrs = []
    for ln in lines[1:]:
        if ":" in ln:
            k, _, v = ln.partition(":")
            hdrs.append((k.strip(), v.strip()))
    return lines[0], hdrs


class Peer:
    """A socket with a receive buffer and a deadline on every call."""

    def __init__(self, sock, deadline):
        self.s = sock
        self.buf = bytearray()
        self.deadline = deadline

    def left(self):
        t = self.deadline - time.monotonic()
        if t <= 0:
            raise TimeoutError("deadline")
        return min(t, 30.0)

    def send(self, data):
        self.s.settimeout(self.left())
        self.s.sendall(data)

    def fill(self, maxwait=None):
        t = self.left() if maxwait is None else min(self.left(), maxwait)
        self.s.settimeout(t)
        try:
            d = self.s.recv(262144)
        except socket.timeout:
            if maxwait is not None:
                return None
            raise TimeoutError("recv")
        if not d:
            raise EOFError("closed by peer")
        self.buf += d
        return d

    def read_head(self, limit=65536):
        while b"\r\n\r\n" not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("head too long")
            self.fill()
        i = self.buf.find(b"\r\n\r\n")
        raw = bytes(self.buf[:i])
        del self.buf[:i + 4]
        return raw

    def read_exact(self, n):
        while len(self.buf) < n:
            try:
                self.fill()
            except EOFError:
                raise ShortRead(len(self.buf), n)
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def take(self):
        out = bytes(self.buf)
        self.buf.clear()
        return out

    def close(self, rst=False):
        if rst:
            _rst_close(self.s)
        else:
            try:
                self.s.close()
            except OSError:
                pass


class ShortRead(Exception):
    def __init__(self, got, want):
        super().__init__("short read: %d of %d bytes" % (got, want))
        self.got, self.want = got, want


def read_response(p):
    """(status, headers dict lower-case, body) of one HTTP response."""
    raw = p.read_head()
    first, hdrs = parse_head(raw)
    parts = first.split()
    if len(parts) < 2 or not parts[0].startswith("HTTP/"):
        raise ValueError("not an HTTP response: %r" % first[:80])
    status = int(parts[1])
    h = {k.lower(): v for k, v in hdrs}
    if "content-length" in h:
        body = p.read_exact(int(h["content-length"]))
    elif status in (101, 204, 304):
        body = b""
    else:
        body = bytearray()
        try:
            while True:
                body += p.take()
                p.fill()
        except EOFError:
            body += p.take()
        body = bytes(body)
    return status, h, body


# ------------------------------------------------------------------ context

class Ctx:
    def __init__(self, args):
        self.args = args
        self.seed = args.seed
        self.rng = random.Random(args.seed)
        self.tls = args.tls
        self.logdir = Path(args.out) / ("%s-seed%d-%s" % ("tls" if args.tls else "plain",
                                                            args.seed, time.strftime("%H%M%S")))
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.logdir / "journal.log", echo=args.verbose > 1)
        self.stats = Stats()
        self.findings = []
        self.flock = threading.Lock()
        self.storm = threading.Event()     # storm phase: faults and hostile peers on
        self.stopping = threading.Event()  # the run is ending
        self.phase = "setup"
        self.procs = []
        self.restarts = []                 # (monotonic, name)
        self.unexplained = []
        self.build = Path(args.build)

    def finding(self, kind, what, detail="", proc=None):
        with self.flock:
            for f in self.findings:  # one report per distinct problem and process
                if f["kind"] == kind and f["what"] == what:
                    f["count"] += 1
                    return
            f = {"kind": kind, "what": what, "seed": self.seed,
                 "mode": "tls" if self.tls else "plain", "t": round(self.journal.now(), 3),
                 "phase": self.phase, "detail": detail, "count": 1,
                 "journal_tail": self.journal.tail(40)}
            if proc is not None:
                f["process"] = proc.name
                f["log"] = str(proc.err_path)
            self.findings.append(f)
        self.journal.log("FINDING", "%s: %s" % (kind, what))
        print("chaos: FINDING [%s] %s" % (kind, what), flush=True)
        if detail and self.args.verbose:
            print(detail[:3000], flush=True)

    def restarted_within(self, t0, t1):
        return any(t0 - 20 <= t <= t1 for t, _ in self.restarts)


# ------------------------------------------------------------------ clients

class Clients:
    """Real clients through the relay; every completed body is verified."""

    def __init__(self, ctx, env):
        self.ctx, self.env = ctx, env
        self.client_ssl = ssl.create_default_context(cafile=str(env.ca))
        self.busy = {}   # thread -> start of its current request (driver self-check)

    # -- plumbing
    def connect(self, via, deadline, tls=False, sni=RELAY_NAME):
        port = self.env.cproxy.port if via == "proxy" else self.env.relay_port
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        lport = s.getsockname()[1]
        return Peer(s, deadline), lport

    def starttls(self, p, sni):
        p.s.settimeout(15)
        p.s = self.client_ssl.wrap_socket(p.s, server_hostname=sni)

    def evaluate(self, kind, via, kite, lport, t0, result, detail, strict=True):
        ctx = self.ctx
        t1 = time.monotonic()
        ctx.stats.inc("req")
        ctx.stats.inc("req:" + result)
        ctaint = self.env.cproxy.taint_of(lport) if via == "proxy" else 0
        tpx = self.env.kite_proxy.get(kite)
        if result == "ok":
            return
        if result == "corrupt":
            # TLS between client and relay turns corruption into an error, never wrong bytes
            client_can = ctaint >= CORRUPT and not kind.startswith("tls_")
            explained = client_can or (tpx is not None and tpx.corrupt_in(t0 - 1, t1 + 1))
            if explained:
                ctx.stats.inc("req:corrupt_explained")
                return
            ctx.finding("corruption", "%s via %s: wrong bytes on a completed request" % (kind, via),
                        "kite %s, client taint %d, tunnel class %d: %s\n%s"
                        % (kite, ctaint, tpx.max_class(t0 - 1, t1 + 1) if tpx else -1, detail,
                           "\n".join(ctx.journal.tail(60))))
            return
        tclass = tpx.max_class(t0 - 20, t1 + 0.5) if tpx else 0
        hostile_dup = self.env.dup_window_hit(t0 - 20, t1)
        slow = result == "timeout" and max(ctaint, tclass) >= TRANSPARENT  # delays add up
        if not strict or ctaint >= STALL or tclass >= STALL or ctx.restarted_within(t0, t1) \
                or hostile_dup or slow:
            ctx.stats.inc("req:fail_explained")
            return
        ctx.stats.inc("req:fail_unexplained")
        msg = "%s via %s to %s failed (%s: %s) with only transparent faults (client %d, tunnel %d)" \
              % (kind, via, kite, result, detail, ctaint, tclass)
        ctx.journal.log("client", "UNEXPLAINED " + msg)
        if len(ctx.unexplained) < 50:
            ctx.unexplained.append({"t": round(ctx.journal.now(), 3), "phase": ctx.phase,
                                    "msg": msg})

    def run_one(self, rng, via, deadline_s=45.0, kinds=None, strict=True):
        """One client action, chosen by rng; returns the result string."""
        env = self.env
        self.busy[threading.get_ident()] = time.monotonic()
        try:
            return self._run_one(rng, via, deadline_s, kinds, strict)
        finally:
            self.busy.pop(threading.get_ident(), None)

    def _run_one(self, rng, via, deadline_s, kinds, strict):
        env = self.env
        kinds = kinds or env.client_kinds
        kind = rng.choice(kinds)
        tls = False
        if kind.startswith("tls_"):
            tls = True
        t0 = time.monotonic()
        deadline = t0 + deadline_s
        kite = HTTP_KITE
        if kind in ("raw_echo",):
            kite = RAW_KITE
        elif kind == "get2":
            kite = PLAIN2_KITE
        elif kind == "tls_https":
            kite = HTTPS_KITE
        lport = 0
        p = None
        result, detail = "ok", ""
        try:
            p, lport = self.connect(via, deadline)
            if tls:
                self.starttls(p, HTTPS_KITE if kite == HTTPS_KITE else RELAY_NAME)
            result, detail = getattr(self, "do_" + kind.replace("tls_", ""))(p, rng, kite)
        except ShortRead as e:
            result, detail = "short", str(e)
        except (TimeoutError, socket.timeout) as e:
            result, detail = "timeout", str(e) or "timeout"
        except ssl.SSLError as e:
            result, detail = "error", "TLS: %s" % e
        except (EOFError, ConnectionError, OSError, ValueError) as e:
            result, detail = "error", "%s: %s" % (type(e).__name__, e)
        finally:
            if p is not None:
                p.close(rst=(result == "abort_rst"))
        if result.startswith("abort"):
            result = "ok"
        self.ctx.journal.log("client", "%s via %s%s: %s in %.2fs%s" % (
            kind, via, " :%d" % lport if via == "proxy" else "", result, time.monotonic() - t0,
            (" (%s)" % detail[:100]) if detail else ""))
        self.evaluate(kind, via, kite, lport, t0, result, detail, strict)
        return result, detail

    @staticmethod
    def _check_get(status, h, body, n):
        if status != 200:
            return "refused", "HTTP %d %r" % (status, body[:80])
        if len(body) != n:
            return "short", "%d of %d bytes" % (len(body), n)
        if sha(body) != pattern_sha(n):
            first = next((i for i in range(n) if body[i] != _BIG[i]), -1)
            return "corrupt", "%d bytes, first difference at %d" % (n, first)
        return "ok", ""

    SIZES = (0, 1, 100, 4000, 40000, 65536, 300000, 1048576, 3000000)

    def do_get(self, p, rng, kite):
        n = rng.choice(self.SIZES)
        p.send(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                % (n, kite)).encode())
        return self._check_get(*read_response(p), n)

    do_get2 = do_get

    def do_https(self, p, rng, kite):
        """End-to-end TLS with the origin; the relay routes by SNI and never decrypts."""
        if rng.random() < 0.5:
            return self.do_keepalive(p, rng, kite)
        return self.do_get(p, rng, kite)

    def do_keepalive(self, p, rng, kite):
        for _ in range(rng.randint(2, 4)):
            n = rng.choice(self.SIZES[:7])
            p.send(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, kite)).encode())
            r = self._check_get(*read_response(p), n)
            if r[0] != "ok":
                return r
        return "ok", ""

    def do_pipeline(self, p, rng, kite):
        ns = [rng.choice(self.SIZES[:6]) for _ in range(rng.randint(2, 5))]
        p.send(b"".join(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, kite)).encode()
                        for n in ns))
        for n in ns:
            r = self._check_get(*read_response(p), n)
            if r[0] != "ok":
                return r
        return "ok", ""

    def do_echo(self, p, rng, kite):
        n = rng.choice((1, 1000, 70000, 500000, 2000000))
        body = rng.randbytes(n)
        p.send(("POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                "Connection: close\r\n\r\n" % (kite, n)).encode() + body)
        status, _h, got = read_response(p)
        if status != 200:
            return "refused", "HTTP %d" % status
        if len(got) != n:
            return "short", "%d of %d" % (len(got), n)
        if got != body:
            return "corrupt", "echo of %d bytes differs" % n
        return "ok", ""

    def do_upload(self, p, rng, kite):
        n = rng.choice((100000, 1048576, 4000000))
        p.send(("POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                "Connection: close\r\n\r\n" % (kite, n)).encode())
        for i in range(0, n, 262144):
            p.send(pattern(min(n, len(_BIG)))[i:i + 262144])
        status, _h, got = read_response(p)
        if status != 200:
            return "refused", "HTTP %d" % status
        try:
            ans = json.loads(got)
        except ValueError:
            return "corrupt", "answer %r" % got[:80]
        if ans.get("len") != n:
            return "short", "origin got %s of %d bytes" % (ans.get("len"), n)
        if ans.get("sha256") != pattern_sha(n):
            return "corrupt", "upload of %d bytes arrived changed" % n
        return "ok", ""

    def do_raw_echo(self, p, rng, kite):
        p.send(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                % (kite, self.env.relay_port, kite, self.env.relay_port)).encode())
        first, _ = parse_head(p.read_head())
        if " 200 " not in first + " ":
            return "refused", first[:80]
        total = bytearray()
        for _ in range(rng.randint(1, 4)):
            data = rng.randbytes(rng.choice((1, 100, 5000, 100000)))
            total += data
            p.send(data)
        got = p.read_exact(len(total))
        if got != bytes(total):
            return "corrupt", "raw echo of %d bytes differs" % len(total)
        return "ok", ""

    def do_ws(self, p, rng, kite):
        key = base64.b64encode(rng.randbytes(16)).decode()
        p.send(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (kite, key)).encode())
        first, hdrs = parse_head(p.read_head())
        if " 101 " not in first + " ":
            return "refused", first[:80]
        if dict((k.lower(), v) for k, v in hdrs).get("sec-websocket-accept") != ws_accept(key):
            return "corrupt", "bad Sec-WebSocket-Accept"
        for _ in range(rng.randint(1, 5)):
            msg = rng.randbytes(rng.choice((1, 100, 3000, 70000)))
            p.send(ws_frame(0x2, msg))
            while True:
                f = ws_parse(p.buf)
                if f:
                    break
                p.fill()
            _fin, op, got, used = f
            del p.buf[:used]
            if op != 0x2 or got != msg:
                return "corrupt", "websocket echo differs (op %d, %d/%d bytes)" % (op, len(got), len(msg))
        p.send(ws_frame(0x8, b"\x03\xe8"))
        return "ok", ""

    def do_abort(self, p, rng, kite):
        n = rng.choice((1048576, 3000000))
        p.send(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, kite)).encode())
        want = rng.choice((0, 1, 1000, 100000))
        while len(p.buf) < want:
            p.fill()
        return ("abort_rst" if rng.random() < 0.5 else "abort"), ""

    def do_slow(self, p, rng, kite):
        n = rng.choice((1048576, 3000000))
        p.send(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                % (n, kite)).encode())
        time.sleep(rng.choice((0.5, 2.0, 5.0)))   # the stream backs up to the connector
        head = p.read_head()
        first, hdrs = parse_head(head)
        status = int(first.split()[1])
        h = {k.lower(): v for k, v in hdrs}
        want = int(h.get("content-length", -1))
        body = bytearray(p.take())
        while len(body) < want:                   # then trickle: 64 KiB per 20 ms
            try:
                p.fill()
            except EOFError:
                break
            body += p.take()
            time.sleep(0.02)
        return self._check_get(status, h, bytes(body), n)

    def do_halfclose(self, p, rng, kite):
        """Request, then shut our write side before reading (HTTP/1.0 style)."""
        n = rng.choice((0, 1000, 300000))
        p.send(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                % (n, kite)).encode())
        try:
            p.s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return self._check_get(*read_response(p), n)


# ------------------------------------------------------------------ hostile tunnel peers

class HostilePeers:
    """Peers that speak (mostly) the tunnel protocol to the relay, badly."""

    SCENARIOS = ("hs_challenges", "hs_bad_signatures", "hs_nothing", "hs_garbage",
                 "hs_huge_head", "hs_slowloris", "hs_replay", "ws_tunnel", "auth_junk",
                 "auth_serve", "auth_flood", "auth_noread", "auth_eof_games", "auth_rst_mid",
                 "auth_many_streams", "dup_kite", "client_junk", "flood_unknown", "flood_tunnels",
                 "burst", "fwd_smuggle", "fwd_smuggle")
    LONG = ("long_ping_silence", "long_write_stall")

    def __init__(self, ctx, env):
        self.ctx, self.env = ctx, env
        self.opened = {}

    def run(self, idx, stop_at, first=None):
        ctx = self.ctx
        rng = random.Random("%s:hostile:%d:%d" % (ctx.seed, idx, self.env.cycle))
        src = "127.0.0.%d" % (2 + idx)
        i = 0
        while ctx.storm.is_set() and time.monotonic() < stop_at and i < 10000:
            i += 1
            sc = rng.choice(self.SCENARIOS)
            budget = min(12.0, max(1.0, stop_at - time.monotonic()))
            if first and i == 1:
                sc, budget = first, max(1.0, stop_at - time.monotonic() - 2)
            ctx.journal.log("hostile%d" % idx, "scenario %s" % sc)
            ctx.stats.inc("exec")
            ctx.stats.inc("hostile:" + sc)
            self.opened[idx] = []
            try:
                getattr(self, sc)(rng, src, time.monotonic() + budget)
            except (OSError, EOFError, TimeoutError, ValueError, ssl.SSLError, ShortRead,
                    zlib.error) as e:
                ctx.journal.log("hostile%d" % idx, "%s ended: %s: %s" % (sc, type(e).__name__, e))
            except Exception as e:  # noqa: BLE001
                ctx.journal.log("hostile%d" % idx, "%s driver error %r" % (sc, e))
            finally:
                for p in self.opened.pop(idx, []):
                    p.close(rst=rng.random() < 0.5)

    # -- plumbing
    def connect(self, rng, src, deadline, tls=None):
        s = socket.socket()
        s.bind((src, 0))
        s.settimeout(5)
        s.connect(("127.0.0.1", self.env.relay_port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is None:
            tls = self.ctx.tls and rng.random() < 0.5
        if tls:
            c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            c.check_hostname = False
            c.verify_mode = ssl.CERT_NONE
            s = c.wrap_socket(s, server_hostname=RELAY_NAME)
        p = Peer(s, deadline)
        idx = int(src.rsplit(".", 1)[1]) - 2
        self.opened.setdefault(idx, []).append(p)
        return p

    def handshake(self, p, lines, features=("AddKites",), extra=()):
        req = ["CONNECT PageKite:1 HTTP/1.0"]
        req += ["X-PageKite-Features: %s" % f for f in features]
        req += list(extra)
        req += ["X-PageKite: %s" % ln for ln in lines]
        p.send(("\r\n".join(req) + "\r\n\r\n").encode())
        first, hdrs = parse_head(p.read_head())
        return first, hdrs

    def read_chunks(self, p, reader, until, maxwait=2.0):
        """Chunks until until(chunk) is true or maxwait passes."""
        got = []
        end = min(p.deadline, time.monotonic() + maxwait)
        reader.pending.extend(reader.feed(p.take()))
        while True:
            while reader.pending:
                c = reader.pending.popleft()
                got.append(c)
                if until(c):
                    return got, c
            if time.monotonic() >= end:
                return got, None
            try:
                if p.fill(maxwait=max(0.01, end - time.monotonic())) is None:
                    return got, None
            except TimeoutError:
                return got, None
            reader.pending.extend(reader.feed(p.take()))

    def auth(self, rng, src, deadline, names, zchunks=None, tls=None, proto="http"):
        """A tunnel flying names (signed properly): (peer, reader, deflater or None)."""
        p = self.connect(rng, src, deadline, tls)
        if zchunks is None:
            zchunks = rng.random() < 0.5
        bsalts = {n: os.urandom(4).hex() for n in names}
        feats = ("AddKites", "ZChunks") if zchunks else ("AddKites",)
        ps = proto if proto != "raw" else "raw-%d" % self.env.relay_port
        first, hdrs = self.handshake(p, ["%s:%s:%s::" % (ps, n, bsalts[n]) for n in names], feats)
        if " 200 " not in first + " ":
            raise ValueError("handshake refused: %s" % first)
        signs = [v for k, v in hdrs if k.lower() == "x-pagekite-signthis"]
        lines = [("X-PageKite", "%s:%s" % (v, sign_token(SECRET, v))) for v in signs]
        if not lines:
            raise ValueError("no challenge")
        p.send(noop(lines))
        reader = ChunkReader()
        oks = []

        def done(c):
            oks.extend(c.all("X-PageKite-OK"))
            return c.noop and (c.get("X-PageKite-OK") or c.get("X-PageKite-Invalid")
                               or c.get("X-PageKite-Duplicate"))
        _got, c = self.read_chunks(p, reader, done, 5.0)
        if not oks:
            raise ValueError("kite not accepted: %r" % (c.headers if c else None))
        return p, reader, (Deflater() if zchunks else None), oks

    def kite_client(self, kite, deadline, requests=1, n=100000, read=True, upload=0,
                    results=None, hold=0.0):
        """A client of a hostile kite, in a thread; appends outcomes to results."""
        def run():
            for _ in range(requests):
                if time.monotonic() > deadline:
                    return
                try:
                    s = socket.create_connection(("127.0.0.1", self.env.relay_port), timeout=5)
                    p = Peer(s, deadline)
                    if upload:
                        p.send(("POST /up HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n"
                                % (kite, upload)).encode())
                        for i in range(0, upload, 262144):
                            j = i % len(_BIG)
                            p.send(_BIG[j:j + min(262144, upload - i)])
                    else:
                        p.send(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                                % (n, kite)).encode())
                    if hold:
                        time.sleep(max(0.0, min(hold, deadline - time.monotonic() - 0.2)))
                    if read:
                        st, _h, body = read_response(p)
                        r = "ok" if st == 200 and body == pattern(n) else "bad:%d:%d" % (st, len(body))
                    else:
                        r = "sent"
                    p.close()
                except (OSError, EOFError, TimeoutError, ValueError, ShortRead) as e:
                    r = "err:%s" % type(e).__name__
                if results is not None:
                    results.append(r)
        t = threading.Thread(target=run, daemon=True)
        t.start()
        return t

    def hostile_name(self, rng):
        return "h%d.%s" % (rng.randrange(100000), DOMAIN)

    # -- scenarios before any kite is authenticated
    def hs_challenges(self, rng, src, deadline):
        p = self.connect(rng, src, deadline)
        names = [self.hostile_name(rng) for _ in range(rng.choice((1, 3, 40, 300)))]
        lines = []
        for nm in names:
            proto = rng.choice(("http", "https", "raw", "raw-%d" % self.env.relay_port,
                                "websocket", "gopher", "http-1", "HTTP", "raw-0", "raw-99999999"))
            lines.append("%s:%s:%s::" % (proto, nm, os.urandom(4).hex()))
        lines += ["", ":::", "http:x", "http:" + "a" * 300 + ".example.test:s::",
                  "http:*.example.test:s::", "http:%s:s:t:s:extra" % HTTP_KITE]
        rng.shuffle(lines)
        feats = rng.choice((("AddKites",), ("AddKites", "ZChunks"), (), ("ZChunks",)))
        first, hdrs = self.handshake(p, lines[:rng.choice((1, 5, len(lines)))], feats)
        self.ctx.stats.inc("exec")
        reader = ChunkReader()
        for _ in range(rng.randint(1, 25)):
            self.send_junk(p, rng, reader)
        self.read_chunks(p, reader, lambda c: False, 0.3)
        p.close(rst=rng.random() < 0.5)

    def hs_bad_signatures(self, rng, src, deadline):
        p = self.connect(rng, src, deadline)
        nm = self.hostile_name(rng)
        first, hdrs = self.handshake(p, ["http:%s:abcd::" % nm])
        signs = [v for k, v in hdrs if k.lower() == "x-pagekite-signthis"]
        bad = []
        for v in signs:
            bad.append("%s:%s" % (v, sign_token("wrong-secret", v)))
            bad.append("%s:%s" % (v, "t" + "0" * 35))
            bad.append("%s:%s" % (v, sign_token(SECRET, v)[:-1]))
            bad.append("%s:%s" % (v.rsplit(":", 1)[0] + ":t0000000" + "0" * 28,
                                  sign_token(SECRET, v)))
        bad.append("http:%s:abcd:%s:%s" % (HTTP_KITE, "t1234567" + "a" * 28, "b" * 36))
        p.send(noop([("X-PageKite", b) for b in bad]))
        self.ctx.stats.inc("exec")
        self.read_chunks(p, ChunkReader(), lambda c: c.noop, 3.0)
        p.close(rst=rng.random() < 0.5)

    def hs_replay(self, rng, src, deadline):
        """A correct answer used twice: the second use must be refused."""
        nm = self.hostile_name(rng)
        p = self.connect(rng, src, deadline)
        first, hdrs = self.handshake(p, ["http:%s:abcd::" % nm])
        signs = [v for k, v in hdrs if k.lower() == "x-pagekite-signthis"]
        if not signs:
            return
        line = ("X-PageKite", "%s:%s" % (signs[0], sign_token(SECRET, signs[0])))
        p.send(noop([line]))
        self.read_chunks(p, ChunkReader(), lambda c: c.noop, 3.0)
        p.close(rst=True)
        q = self.connect(rng, src, deadline)
        q.send(("CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite-Features: AddKites\r\n"
                "X-PageKite: %s\r\n\r\n" % line[1]).encode())
        first, hdrs = parse_head(q.read_head())
        self.ctx.stats.inc("exec")
        if any(k.lower() == "x-pagekite-ok" for k, v in hdrs):
            self.ctx.finding("replay", "a signed kite request was accepted twice",
                             "second use of %s answered %r" % (line[1], hdrs))
        q.close()

    def hs_nothing(self, rng, src, deadline):
        p = self.connect(rng, src, deadline)
        extra = rng.choice(((), ("X-PageKite-Replace: %s" % os.urandom(8).hex(),),
                            ("X-PageKite-Version: 0.0",)))
        first, hdrs = self.handshake(p, [], features=(), extra=extra)
        # the relay answers and hangs up
        try:
            while True:
                p.fill()
                p.take()
        except EOFError:
            pass

    def hs_garbage(self, rng, src, deadline):
        p = self.connect(rng, src, deadline, tls=False)
        junk = rng.choice((
            os.urandom(rng.choice((1, 100, 5000))),
            b"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",              # truncated ClientHello
            b"\x16\x03\x01\xff\xff" + os.urandom(200),
            b"\x17\x03\x03\x00\x05hello",
            b"CONNECT PageKite:1 HTTP/1.0\r\n" + b"X-PageKite: " + os.urandom(100) + b"\r\n\r\n",
            b"CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite-Features: AddKites\r\n\r\n" +
            b"zz\r\n" + os.urandom(50),
            b"CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite-Features: AddKites\r\n\r\n" +
            b"ffffffffff\r\n",
            b"CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite-Features: AddKites\r\n\r\n" +
            frame(b"SID: 1\r\n\r\nhello") + frame(b"NOOP: 1\r\n\r\n!") + b"8000\r\n" + b"x" * 100,
            b"GET / HTTP/1.1\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: " + b"x" * 300 + b"\r\n\r\n",
            b"CONNECT %s:1 HTTP/1.1\r\n\r\n" % RAW_KITE.encode(),
            b"CONNECT :::: HTTP/1.1\r\n\r\n",
            b"GET /~:PageKite:~/x HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
            b"\r\n\r\n",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        ))
        p.send(junk)
        self.ctx.stats.inc("exec")
        try:
            p.fill(maxwait=1.0)
        except (EOFError, OSError):
            pass
        p.close(rst=rng.random() < 0.5)

    def hs_huge_head(self, rng, src, deadline):
        p = self.connect(rng, src, deadline)
        line = b"X-Junk: " + b"a" * 1000 + b"\r\n"
        p.send(b"CONNECT PageKite:1 HTTP/1.0\r\n")
        try:
            for _ in range(rng.choice((15, 17, 40))):
                p.send(line)
            p.send(b"\r\n")
            p.fill(maxwait=2.0)
        except (OSError, EOFError):
            pass
        p.close()

    def hs_slowloris(self, rng, src, deadline):
        p = self.connect(rng, src, deadline)
        msg = rng.choice((b"CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite-Features: AddKites\r\n",
                          b"GET / HTTP/1.1\r\nHost: %s\r\n" % HTTP_KITE.encode()))
        try:
            for i in range(len(msg)):
                if time.monotonic() > deadline - 0.5:
                    break
                p.send(msg[i:i + 1])
                time.sleep(0.3)
        except OSError:
            pass
        p.close(rst=rng.random() < 0.5)

    def ws_tunnel(self, rng, src, deadline):
        p = self.connect(rng, src, deadline)
        nm = self.hostile_name(rng)
        key = base64.b64encode(os.urandom(16)).decode()
        path = rng.choice(("/~:PageKite:~/x", "/Beanstalk~Magic~Beans/0.2"))
        p.send(("GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n"
                "Sec-WebSocket-Protocol: v1.pagekite.org\r\nX-PageKite: http:%s:abcd::\r\n\r\n"
                % (path, RELAY_NAME, key, nm)).encode())
        first, _ = parse_head(p.read_head())
        if " 101 " not in first + " ":
            return
        reader = ChunkReader(ws=True)
        got, c = self.read_chunks(p, reader, lambda c: c.noop, 3.0)
        signs = [v for ch in got for v in ch.all("X-PageKite-SignThis")]
        masked = rng.random() < 0.8
        if signs and rng.random() < 0.7:
            pl = chunk_payload([("NOOP", "1")] + [("X-PageKite", "%s:%s" % (v, sign_token(SECRET, v)))
                                                for v in signs], b"!")
            p.send(ws_frame(0x2, pl, mask=masked))
            self.read_chunks(p, reader, lambda c: bool(c.get("X-PageKite-OK")), 3.0)
            if rng.random() < 0.6:
                res = []
                self.kite_client(nm, deadline, requests=2, n=5000, results=res)
                got, c = self.read_chunks(p, reader, lambda c: c.get("Proto") is not None, 3.0)
                if c is not None and c.sid is not None:
                    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 5000\r\n\r\n" + pattern(5000)
                    p.send(ws_frame(0x2, chunk_payload([("SID", c.sid)], resp), mask=masked))
                    p.send(ws_frame(0x2, chunk_payload([("SID", c.sid), ("EOF", "1WR")], b"Bye!"),
                                    mask=masked))
        bad = [
            ws_frame(0x2, chunk_payload([("NOOP", "1"), ("PING", "1")], b"!"), mask=masked),
            ws_frame(0x9, b"ping", mask=masked),
            ws_frame(0xA, b"pong", mask=masked),
            ws_frame(0x2, b"SID: 77\r\n\r\ndata", mask=masked),
            ws_frame(0x2, b"SID: 77\r\nEOF: 1\r\n\r\n", mask=masked),
            ws_frame(0x2, b"", mask=masked),
            ws_frame(0x2, b"junk without headers", mask=masked),
            ws_frame(0x1, b"NOOP: 1\r\nSKB: 5\r\nSID: 3\r\n\r\n!", mask=masked),
            ws_frame(0x2, b"x" * 100, fin=False, mask=masked),
            ws_frame(0x2, b"x", rsv=4, mask=masked),
            ws_frame(0x3, b"x", mask=masked),
            ws_frame(0x9, b"p" * 200, mask=masked),
            ws_frame(0x8, b"\x03\xe8", mask=masked),
            b"\x82\x7f" + struct.pack("!Q", 1 << 62),
            b"\x82\x7e\xff\xff" + b"y" * 100,
            ws_frame(0x2, b"SID: 1\r\n\r\n" + b"z" * 40000, mask=masked),
            ws_frame(0x2, b"NOOP: 1\r\n" + b"X-PageKite: http:%s:a::\r\n" % nm.encode() * 50
                     + b"\r\n!", mask=masked),
        ]
        for _ in range(rng.randint(1, 8)):
            f = rng.choice(bad)
            if rng.random() < 0.3:
                for i in range(0, len(f), 3):
                    p.send(f[i:i + 3])
            else:
                p.send(f)
            self.ctx.stats.inc("exec")
        self.read_chunks(p, reader, lambda c: False, 0.5)
        p.close(rst=rng.random() < 0.5)

    def client_junk(self, rng, src, deadline):
        """Client-side oddities at the relay (not tunnels)."""
        p = self.connect(rng, src, deadline, tls=False)
        kite = rng.choice((HTTP_KITE, RAW_KITE, "nope." + DOMAIN, "ping.pagekite"))
        msgs = (
            b"GET /ping HTTP/1.1\r\nHost: ping.pagekite\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: %s\r\nContent-Length: 99999999\r\n\r\nabc" % kite.encode(),
            b"GET / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" % kite.encode(),
            b"GET / HTTP/1.1\r\nHost: %s\r\nHost: other\r\n\r\n" % kite.encode(),
            b"GET / HTTP/1.1\r\nHost: %s:99999\r\n\r\n" % kite.encode(),
            b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n",
            b"CONNECT %s:%d HTTP/1.1\r\n\r\n" % (RAW_KITE.encode(), self.env.relay_port) + os.urandom(3000),
            b"CONNECT %s:443 HTTP/1.1\r\n\r\n" % kite.encode(),
            b"GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: x\r\n\r\n" % kite.encode() + os.urandom(100),
            b"\x16\x03\x01\x00\x40\x01\x00\x00\x3c\x03\x03" + os.urandom(58),
        )
        p.send(rng.choice(msgs))
        self.ctx.stats.inc("exec")
        try:
            p.fill(maxwait=rng.choice((0.1, 1.0)))
        except (EOFError, OSError):
            pass
        p.close(rst=rng.random() < 0.5)

    def burst(self, rng, src, deadline):
        """Many requests at once to the real kite: past the connector's -c 100
        it must answer 503 at once (pool exhausted), never hang or crash."""
        k = rng.choice((20, 60, 130))
        t0 = time.monotonic()
        if k > 60:
            self.env.note_dup_window(t0, deadline + 2)   # legit clients may get 503s now
        res = []
        ths = []
        for _ in range(k):
            ths.append(self.kite_client(HTTP_KITE, min(deadline, t0 + 10), requests=1,
                                        n=rng.choice((10, 100000)), results=res))
        for t in ths:
            t.join(max(0.05, min(deadline, t0 + 12) - time.monotonic()))
        self.ctx.stats.inc("exec", k)
        c = collections.Counter(r.split(":")[0] for r in res)
        self.ctx.journal.log("hostile", "burst of %d: %s" % (k, dict(c)))
        bad = [r for r in res if r.startswith("bad:200")]
        tpx = self.env.kite_proxy[HTTP_KITE]
        if bad and not tpx.corrupt_in(t0 - 1, time.monotonic() + 1):
            self.ctx.finding("corruption", "wrong answer to a burst of requests",
                             "%d requests: %s" % (k, res))

    SMUGGLE = [
        # client forwarding headers, in every spelling: the origin must see only ours
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nX-Forwarded-For: 6.6.6.6\r\n"
        b"X-Forwarded-Proto: gopher\r\n\r\n",
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nx-forwarded-for: 6.6.6.6\r\n"
        b"X_Forwarded_For: 6.6.6.6\r\nX-FORWARDED-FOR:6.6.6.6\r\n\r\n",
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nX-Forwarded-For : 6.6.6.6\r\n\r\n",
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nX-A: b\r\n X-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nX-A: b\rX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"GET /headers HTTP/1.1\nHost: %(k)s\nX-Forwarded-For: 6.6.6.6\n\n",
        b"GET /headers HTTP/1.0\r\nHost: %(k)s\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        # a request hidden in a body, by every framing
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nContent-Length: 51\r\n\r\n"
        b"GET /headers HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nContent-Length: 51\r\n\r\n"
        b"GET /headers HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n"
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"33\r\nGET /headers HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n\r\n0\r\n\r\n"
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        b"0\r\n\r\nGET /headers HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nContent-Length: 3\r\nContent-Length: 54\r\n\r\n"
        b"abcGET /headers HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nContent-Length: 3, 3\r\n\r\nabc"
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n0\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3\nabc\n0\n\nGET /headers HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"ffffffffffffffffff\r\nabc",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nContent-Length: 99999999999999999999\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nContent-Length: -1\r\n\r\nabc",
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nContent-Length: +5\r\n\r\nabcde",
        # 1xx, HEAD, Upgrade, CONNECT: the response side must keep the queue straight
        b"POST /echo HTTP/1.1\r\nHost: %(k)s\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        b"hello" b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"HEAD /bytes/100 HTTP/1.1\r\nHost: %(k)s\r\n\r\nGET /bytes/5 HTTP/1.1\r\nHost: %(k)s\r\n\r\n"
        b"HEAD /bytes/7 HTTP/1.1\r\nHost: %(k)s\r\n\r\nGET /headers HTTP/1.1\r\nHost: %(k)s\r\n\r\n",
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n"
        b"Connection: Upgrade, HTTP2-Settings\r\n\r\n",
        b"GET /nows HTTP/1.1\r\nHost: %(k)s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"GET /ws HTTP/1.1\r\nHost: %(k)s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: eA==\r\n\r\nGET /headers HTTP/1.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
        b"CONNECT %(k)s:80 HTTP/1.1\r\nHost: %(k)s\r\n\r\nGET /headers HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        b"GET http://%(k)s/headers HTTP/1.1\r\nHost: other\r\n\r\n",
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nHost: %(k)s\r\n\r\n",
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\n" + b"X-Many: 1\r\n" * 80 + b"\r\n",
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\nX-Long: " + b"l" * 17000 + b"\r\n\r\n",
        b"\r\n\r\nGET /headers HTTP/1.1\r\nHost: %(k)s\r\n\r\n",
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\n\r\nGET /he",                # a head cut short
        b"GET /headers HTTP/1.1\r\nHost: %(k)s\r\n\r\n\x81\x05hello",
    ]

    def fwd_smuggle(self, rng, src, deadline):
        """Requests aimed at the connector's forwarding-header rewriter.  The
        origin checks every request it gets (X-Forwarded-For exactly ours)."""
        kite = rng.choice((HTTP_KITE, PLAIN2_KITE)) if self.ctx.tls else HTTP_KITE
        p = self.connect(rng, src, deadline, tls=False)
        msgs = [rng.choice(self.SMUGGLE) % {b"k": kite.encode()}
                for _ in range(rng.choice((1, 1, 3)))]
        if rng.random() < 0.2:   # a long pipeline: past the queue of 32 runs
            msgs = [b"GET /bytes/10 HTTP/1.1\r\nHost: %s\r\n\r\n" % kite.encode(),
                    b"HEAD /bytes/10 HTTP/1.1\r\nHost: %s\r\n\r\n" % kite.encode()] * 20 + msgs
        data = b"".join(msgs)
        if rng.random() < 0.3:
            for i in range(0, len(data), rng.choice((1, 5, 50))):
                p.send(data[i:i + 50])
        else:
            p.send(data)
        self.ctx.stats.inc("exec", len(msgs))
        end = min(deadline, time.monotonic() + rng.choice((0.2, 1.0, 3.0)))
        try:
            while time.monotonic() < end:
                if p.fill(maxwait=max(0.01, end - time.monotonic())) is None:
                    break
                p.take()
        except (EOFError, OSError, TimeoutError):
            pass
        if rng.random() < 0.5:
            p.close(rst=True)
        else:
            try:
                p.s.shutdown(socket.SHUT_WR)   # half-close, and read what comes
                p.fill(maxwait=1.0)
            except (EOFError, OSError, TimeoutError):
                pass

    def flood_unknown(self, rng, src, deadline):
        """Connections from one source that say (almost) nothing: per-source caps."""
        k = rng.choice((10, 25, 40))
        held = []
        for _ in range(k):
            try:
                p = self.connect(rng, src, deadline, tls=False)
                if rng.random() < 0.5:
                    p.send(b"GET / HTTP/1.1\r\n")
            except OSError:
                break
            held.append(p)
        self.ctx.stats.inc("exec", len(held))
        time.sleep(max(0.0, min(rng.choice((0.5, 2.0, 4.0)), deadline - time.monotonic() - 0.5)))
        closed = sum(1 for p in held if self._closed(p))
        self.ctx.journal.log("hostile", "flood of %d unknown conns from %s: %d closed by the relay"
                             % (len(held), src, closed))

    def flood_tunnels(self, rng, src, deadline):
        """Kite-less tunnels from one source, more than their quarter of the slots."""
        k = rng.choice((10, 20, 30))
        held = []
        for _ in range(k):
            try:
                p = self.connect(rng, src, deadline, tls=False)
                p.send(("CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite-Features: AddKites\r\n"
                        "X-PageKite: http:%s:ab::\r\n\r\n" % self.hostile_name(rng)).encode())
            except OSError:
                break
            held.append(p)
        self.ctx.stats.inc("exec", len(held))
        time.sleep(max(0.0, min(rng.choice((0.5, 2.0, 4.0)), deadline - time.monotonic() - 0.5)))
        closed = sum(1 for p in held if self._closed(p))
        self.ctx.journal.log("hostile", "flood of %d kite-less tunnels from %s: %d closed by the relay"
                             % (len(held), src, closed))

    @staticmethod
    def _closed(p):
        """Did the relay close p?  (Reads what is there; EOF or reset = closed.)"""
        try:
            p.s.settimeout(0.05)
            while True:
                d = p.s.recv(65536)
                if not d:
                    return True
        except (socket.timeout, ssl.SSLWantReadError):
            return False
        except OSError:
            return True

    # -- long scenarios (long storms only): the relay's own timeouts must fire
    def long_ping_silence(self, rng, src, deadline):
        """A live kite whose tunnel then says nothing, and answers no PING: the
        relay must drop it (PING after 30 s quiet, dead 20 s later)."""
        nm, p, reader, defl = self._auth_one(rng, src, deadline)
        t0 = time.monotonic()
        pinged = None
        closed = None
        while time.monotonic() < deadline - 1:
            try:
                d = p.fill(maxwait=1.0)
            except (EOFError, OSError):
                closed = time.monotonic() - t0
                break
            if d:
                try:
                    for c in reader.feed(p.take()):
                        if c.get("PING") and pinged is None:
                            pinged = time.monotonic() - t0
                except (ValueError, zlib.error):
                    pass
        self.ctx.journal.log("hostile", "long_ping_silence: PING after %s s, closed after %s s"
                             % (pinged and round(pinged, 1), closed and round(closed, 1)))
        if closed is None and time.monotonic() - t0 > 70:
            self.ctx.finding("hang", "relay keeps a tunnel that answers no PING for %.0f s"
                             % (time.monotonic() - t0), "kite %s, PING seen after %s s" % (nm, pinged))

    def long_write_stall(self, rng, src, deadline):
        """A live kite that keeps talking but never reads while a client uploads
        into it: the relay must drop it (it stops reading a peer whose output
        piles up, so the PING check ends it after ~50 s; a write stall ends it
        after 60 s)."""
        nm, p, reader, defl = self._auth_one(rng, src, deadline)
        self.kite_client(nm, deadline, requests=1, upload=40 << 20, read=False)
        t0 = time.monotonic()
        closed = None
        while time.monotonic() < deadline - 1:
            try:
                p.s.settimeout(5)
                p.s.sendall(noop([("X-Chaos", "still here")]))
            except OSError:
                closed = time.monotonic() - t0
                break
            time.sleep(min(3.0, max(0.1, deadline - time.monotonic() - 1)))
        self.ctx.journal.log("hostile", "long_write_stall: closed after %s s"
                             % (closed and round(closed, 1)))
        if closed is None and time.monotonic() - t0 > 80:
            self.ctx.finding("hang", "relay keeps a tunnel that reads nothing for %.0f s "
                             "(write stall bound: 60 s)" % (time.monotonic() - t0), "kite %s" % nm)

    # -- junk chunks on a tunnel
    def send_junk(self, p, rng, reader, deflater=None, sid_hint=1):
        big_sid = rng.choice(("9223372036854775807", "-1", "0", "18446744073709551616", "abc",
                              "8364357045552065194", "-9223372036854775808", str(sid_hint),
                              str(rng.randrange(1, 1 << 62))))
        choices = [
            lambda: noop([("PING", "%.3f" % time.time())]),
            lambda: noop([("PONG", "1")]),
            lambda: noop([("SID", big_sid), ("SKB", rng.choice(("1", "-5", "99999999999999",
                                                                 "x", "9223372036854775807")))]),
            lambda: noop([("SID", big_sid), ("SPD", "1")]),
            lambda: noop([("ZRST", "1")]),
            lambda: noop([("X-PageKite", "http:%s:ab::" % self.hostile_name(rng))]),
            lambda: noop([("X-PageKite", "x" * 600)]),
            lambda: noop([("X-PageKite-Replace", "abc")] + [("X-PageKite", "http:%s:%d::"
                                                              % (self.hostile_name(rng), i))
                                                             for i in range(rng.choice((2, 70)))]),
            lambda: chunk([("SID", big_sid)], os.urandom(rng.choice((1, 100, 20000)))),
            lambda: chunk([("SID", big_sid), ("EOF", rng.choice(("1", "1R", "1W", "1RW", "0",
                                                                    "", "WRWRWR", "x")))], b"Bye!"),
            lambda: chunk([("SID", big_sid), ("Proto", "http"), ("Host", HTTP_KITE)], b"GET /"),
            lambda: chunk([("NOOP", "1")] + [("X-H%d" % i, "v") for i in range(100)], b"!"),
            lambda: frame(b"no colon line\r\n\r\ndata"),
            lambda: frame(b"SID: 5\r\n"),            # no blank line
            lambda: frame(b" SID: 5\r\n\r\n"),
            lambda: b"%xZ%x\r\n" % (50, 10) + os.urandom(10),        # bad zlib
            lambda: b"%xZ%xR\r\n" % (5, 7) + zlib.compress(b"NOOP:")[:7],
            lambda: (deflater or Deflater()).frame(chunk_payload([("NOOP", "1"), ("PING", "1")], b"!")),
            lambda: (deflater or Deflater()).frame(chunk_payload([("SID", big_sid)], b"zz"),
                                                   reset=rng.random() < 0.5),
            lambda: b"%xZ%x\r\n" % (999999, 4) + b"abcd",
            lambda: b"0\r\n",
            lambda: b"G\r\n",
            lambda: b"10\r\n" + b"short",
            lambda: b"1" * 30 + b"\r\n",
            lambda: frame(b"\r\n"),
            lambda: frame(b"NOOP: 1\r\n\r\n"),
        ]
        data = rng.choice(choices)()
        if rng.random() < 0.2:
            for i in range(0, len(data), 7):
                p.send(data[i:i + 7])
        else:
            p.send(data)
        self.ctx.stats.inc("exec")
        try:
            reader.feed(p.take())
        except (ValueError, zlib.error):
            pass

    # -- scenarios with an authenticated hostile kite
    def _auth_one(self, rng, src, deadline):
        nm = self.hostile_name(rng)
        p, reader, defl, oks = self.auth(rng, src, deadline, [nm])
        return nm, p, reader, defl

    def _send_data(self, p, defl, sid, data, rng):
        payload = chunk_payload([("SID", sid)], data)
        if defl is not None and rng.random() < 0.5 and len(payload) < 200000:
            p.send(defl.frame(payload))
        else:
            p.send(frame(payload))

    def auth_junk(self, rng, src, deadline):
        nm, p, reader, defl = self._auth_one(rng, src, deadline)
        for _ in range(rng.randint(1, 40)):
            self.send_junk(p, rng, reader, defl)
        self.read_chunks(p, reader, lambda c: False, 0.3)
        p.close(rst=rng.random() < 0.5)

    def auth_serve(self, rng, src, deadline):
        """A correct kite server: the bytes must arrive unchanged."""
        nm, p, reader, defl = self._auth_one(rng, src, deadline)
        res = []
        nreq = rng.randint(1, 4)
        n = rng.choice((1, 1000, 100000, 700000))
        th = self.kite_client(nm, deadline, requests=nreq, n=n, results=res)
        served = 0
        while served < nreq and time.monotonic() < deadline - 0.5:
            got, c = self.read_chunks(p, reader, lambda c: c.get("Proto") is not None, 2.0)
            if c is None:
                continue
            resp = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n + pattern(n)
            for i in range(0, len(resp), 60000):
                self._send_data(p, defl, c.sid, resp[i:i + 60000], rng)
            p.send(chunk([("SID", c.sid), ("EOF", "1WR")], b"Bye!"))
            served += 1
        th.join(max(0.1, deadline - time.monotonic()))
        bad = [r for r in res if r.startswith("bad")]
        if bad:
            self.ctx.finding("corruption", "relay changed bytes from a well-behaved kite",
                             "kite %s, %d byte bodies: %r" % (nm, n, res))
        p.close()

    def auth_flood(self, rng, src, deadline):
        """Ignore flow control: the relay must bound the stream (8 MiB) and not die."""
        nm, p, reader, defl = self._auth_one(rng, src, deadline)
        self.kite_client(nm, deadline, requests=1, n=100, read=False, hold=6.0)
        got, c = self.read_chunks(p, reader, lambda c: c.get("Proto") is not None, 3.0)
        if c is None:
            return
        blob = os.urandom(65536)
        sent = 0
        while sent < rng.choice((2, 9, 12)) << 20 and time.monotonic() < deadline - 1:
            self._send_data(p, defl, c.sid, blob, rng)
            sent += len(blob)
        self.ctx.stats.inc("exec")
        self.read_chunks(p, reader, lambda c: False, 1.0)
        p.close(rst=rng.random() < 0.5)

    def auth_noread(self, rng, src, deadline):
        """Stop reading the tunnel while a client uploads into it."""
        nm, p, reader, defl = self._auth_one(rng, src, deadline)
        self.kite_client(nm, deadline, requests=1, upload=rng.choice((1, 6, 20)) << 20,
                         read=False)
        time.sleep(max(0.1, min(rng.choice((1.0, 4.0, 8.0)), deadline - time.monotonic() - 0.5)))
        self.ctx.stats.inc("exec")
        p.close(rst=rng.random() < 0.7)

    def auth_eof_games(self, rng, src, deadline):
        nm, p, reader, defl = self._auth_one(rng, src, deadline)
        self.kite_client(nm, deadline, requests=rng.randint(1, 3), n=1000)
        for _ in range(3):
            got, c = self.read_chunks(p, reader, lambda c: c.get("Proto") is not None, 2.0)
            if c is None:
                break
            steps = [
                lambda: self._send_data(p, defl, c.sid, b"HTTP/1.1 200 OK\r\nContent-Length: 1000"
                                        b"\r\n\r\n" + pattern(500), rng),
                lambda: p.send(chunk([("SID", c.sid), ("EOF", rng.choice(("1R", "1W", "1", "1RW",
                                                                           "", "garbage")))], b"")),
                lambda: p.send(chunk([("SID", c.sid), ("EOF", "1R")], b"Bye!")),
                lambda: self._send_data(p, defl, c.sid, pattern(500), rng),
                lambda: p.send(noop([("SID", c.sid), ("SKB", rng.choice(("0", "1", "-1",
                                                                         "99999999999")))])),
                lambda: p.send(chunk([("SID", c.sid), ("Proto", "http"), ("Host", nm)], b"again")),
            ]
            for _ in range(rng.randint(1, 6)):
                rng.choice(steps)()
                self.ctx.stats.inc("exec")
        self.read_chunks(p, reader, lambda c: False, 0.5)
        p.close(rst=rng.random() < 0.5)

    def auth_rst_mid(self, rng, src, deadline):
        nm, p, reader, defl = self._auth_one(rng, src, deadline)
        self.kite_client(nm, deadline, requests=1, n=2000000)
        got, c = self.read_chunks(p, reader, lambda c: c.get("Proto") is not None, 3.0)
        if c is not None:
            resp = b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n" + pattern(2000000)
            cut = rng.randrange(len(resp))
            for i in range(0, cut, 60000):
                self._send_data(p, defl, c.sid, resp[i:min(cut, i + 60000)], rng)
        p.close(rst=True)

    def auth_many_streams(self, rng, src, deadline):
        nm, p, reader, defl = self._auth_one(rng, src, deadline)
        k = rng.choice((10, 30))
        for _ in range(k):
            self.kite_client(nm, deadline, requests=1, n=100)
        got, _c = self.read_chunks(p, reader, lambda c: False, 2.0)
        sids = [c.sid for c in got if c.get("Proto") is not None and c.sid is not None]
        for s in sids[: len(sids) // 2]:
            self._send_data(p, defl, s, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
                            + pattern(100), rng)
        self.ctx.stats.inc("exec")
        p.close(rst=rng.random() < 0.5)

    def dup_kite(self, rng, src, deadline):
        """Ask for the real kite: the relay must say Duplicate, and it stays served."""
        t0 = time.monotonic()
        p = self.connect(rng, src, deadline)
        first, hdrs = self.handshake(p, ["http:%s:abcd::" % HTTP_KITE])
        signs = [v for k, v in hdrs if k.lower() == "x-pagekite-signthis"]
        if not signs:
            return
        p.send(noop([("X-PageKite", "%s:%s" % (v, sign_token(SECRET, v))) for v in signs]))
        got, c = self.read_chunks(p, ChunkReader(), lambda c: c.noop, 3.0)
        won = c is not None and c.get("X-PageKite-OK")
        if won:
            # the real tunnel was down at that moment: we held the kite; give it back
            self.ctx.stats.inc("hostile:dup_won")
        p.close(rst=rng.random() < 0.5)
        if won:
            self.env.note_dup_window(t0, time.monotonic() + 1)


# ------------------------------------------------------------------ hostile relay

class HostileRelay:
    """A relay in Python for the victim connector: handshakes and chunks that
    range from correct (verified: the connector must serve them right) to
    hostile."""

    SCENARIOS = ("ok_serve", "ok_serve", "challenge_inband", "challenge_old", "reject_then_ok",
                 "junk_after_ok", "stream_games", "bad_head", "no_answer", "huge_noop",
                 "flow_control")

    def __init__(self, ctx, env):
        self.ctx, self.env = ctx, env
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(16)
        self.port = self.ls.getsockname()[1]
        self.rng = random.Random("%s:hrelay" % ctx.seed)
        self.calm_ok = threading.Event()
        self.busy = threading.Semaphore(3)
        self.stopped = False
        self.sctx = None
        if ctx.tls:
            self.sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.sctx.load_cert_chain(str(env.relay_cert), str(env.relay_key))
        self.sid = 1000
        threading.Thread(target=self._accept, daemon=True, name="hrelay").start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            if not self.busy.acquire(timeout=5):
                _rst_close(c)
                continue
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    def _handle(self, c):
        ctx = self.ctx
        try:
            if self.sctx is not None:
                c.settimeout(10)
                c = self.sctx.wrap_socket(c, server_side=True)
            deadline = time.monotonic() + 20
            p = Peer(c, deadline)
            raw = p.read_head()
            first, hdrs = parse_head(raw)
            kites = [v for k, v in hdrs if k.lower() == "x-pagekite"]
            calm = not ctx.storm.is_set()
            sc = "ok_serve" if calm else self.rng.choice(self.SCENARIOS)
            if not calm and self.env.long_pending:
                self.env.long_pending = False
                sc = self.rng.choice(("long_silent", "long_noread"))
                p.deadline = self.env.storm_end - 2
            ctx.journal.log("hrelay", "connector handshake (%d kites): scenario %s%s"
                            % (len(kites), sc, " (calm check)" if calm else ""))
            ctx.stats.inc("exec")
            ctx.stats.inc("hrelay:" + sc)
            getattr(self, sc)(p, kites, calm)
        except (OSError, EOFError, TimeoutError, ValueError, ssl.SSLError, ShortRead,
                zlib.error) as e:
            ctx.journal.log("hrelay", "ended: %s: %s" % (type(e).__name__, e))
        except Exception as e:  # noqa: BLE001
            ctx.journal.log("hrelay", "driver error %r" % e)
        finally:
            try:
                c.close()
            except OSError:
                pass
            self.busy.release()

    # -- helpers
    @staticmethod
    def what(line):
        parts = line.split(":")
        return ":".join(parts[:3])

    def head(self, kites, ok=True, features=("AddKites", "ZChunks"), extra=(), status="200 OK"):
        lines = ["HTTP/1.1 %s" % status, "Transfer-Encoding: chunked"]
        lines += ["X-PageKite-Features: %s" % f for f in features]
        lines.append("X-PageKite-SessionID: chaos-%d" % self.rng.randrange(1 << 30))
        if ok:
            lines += ["X-PageKite-OK: %s" % self.what(k) for k in kites]
        lines += list(extra)
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def next_sid(self):
        self.sid += 1
        return self.sid

    def serve_streams(self, p, reader, defl, rng, calm, nstreams=None, skb=True):
        """Open verified streams to the victim's kites; returns True if all ok."""
        env = self.env
        streams = {}
        for _ in range(nstreams or rng.randint(1, 4)):
            sid = self.next_sid()
            kind = rng.choice(("get", "get", "echo", "raw"))
            if kind == "get":
                n = rng.choice((0, 1, 5000, 100000, 1500000))
                req = ("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                       % (n, VICTIM_KITE)).encode()
                streams[sid] = {"kind": kind, "n": n, "want": pattern(n)}
                hdr = [("SID", sid), ("Proto", "http"), ("Host", VICTIM_KITE), ("Port", 80),
                       ("RIP", "10.1.2.3"), ("RPort", 4321)]
            elif kind == "echo":
                body = rng.randbytes(rng.choice((1, 3000, 200000)))
                req = ("POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                       "Connection: close\r\n\r\n" % (VICTIM_KITE, len(body))).encode() + body
                streams[sid] = {"kind": kind, "n": len(body), "want": body}
                hdr = [("SID", sid), ("Proto", "http"), ("Host", VICTIM_KITE), ("Port", 80),
                       ("RIP", "10.1.2.3"), ("RPort", 4321)]
            else:
                body = rng.randbytes(rng.choice((1, 3000, 200000)))
                req = body
                streams[sid] = {"kind": kind, "n": len(body), "want": body}
                hdr = [("SID", sid), ("Proto", "raw"), ("Host", VICTIM_KITE),
                       ("Port", self.port), ("RIP", "10.1.2.3"), ("RPort", 4321)]
            streams[sid]["got"] = bytearray()
            streams[sid]["eof"] = False
            first, rest = req[:30000], req[30000:]
            payload = chunk_payload(hdr, first)
            p.send(defl.frame(payload) if (defl and rng.random() < 0.5) else frame(payload))
            for i in range(0, len(rest), 30000):
                pl = chunk_payload([("SID", sid)], rest[i:i + 30000])
                p.send(defl.frame(pl) if (defl and rng.random() < 0.5) else frame(pl))
        end = min(p.deadline, time.monotonic() + 15)

        def complete(st):
            g = st["got"]
            if st["kind"] == "raw":
                return len(g) >= st["n"]
            i = g.find(b"\r\n\r\n")
            if i < 0:
                return False
            m = re.search(rb"(?i)content-length:\s*(\d+)", bytes(g[:i]))
            return m is not None and len(g) - i - 4 >= int(m.group(1))

        acked = collections.Counter()
        while time.monotonic() < end and not all(complete(s) or s["eof"] for s in streams.values()):
            try:
                if p.fill(maxwait=max(0.01, end - time.monotonic())) is None:
                    break
            except TimeoutError:
                break
            for c in reader.feed(p.take()):
                if c.noop and c.get("PING"):
                    p.send(noop([("PONG", c.get("PING"))]))
                sid = c.sid
                if sid in streams:
                    if c.get("EOF") is not None:
                        streams[sid]["eof"] = True
                    elif not c.noop:
                        streams[sid]["got"] += c.data
                        if skb and len(streams[sid]["got"]) - acked[sid] > 65536:
                            acked[sid] = len(streams[sid]["got"])
                            p.send(noop([("SID", sid), ("SKB", acked[sid] // 1024)]))
        ok = True
        for sid, st in streams.items():
            g = bytes(st["got"])
            if st["kind"] == "raw":
                body = g[:st["n"]]
                status = 200
            else:
                i = g.find(b"\r\n\r\n")
                status = int(g[9:12]) if g.startswith(b"HTTP/") and len(g) >= 12 else 0
                body = g[i + 4:] if i >= 0 else b""
            good = status == 200 and body == st["want"]
            complete_ = complete(st)
            if complete_ and not good and status == 200:
                self.ctx.finding("corruption", "victim connector delivered wrong bytes",
                                 "stream %d (%s, %d bytes): got %d bytes, status %d"
                                 % (sid, st["kind"], st["n"], len(body), status))
            if not good:
                ok = False
                self.ctx.journal.log("hrelay", "stream %d %s n=%d: status %d, %d bytes, complete %s,"
                                     " eof %s" % (sid, st["kind"], st["n"], status, len(body),
                                                  complete_, st["eof"]))
            # tell the connector we are done with it
            p.send(chunk([("SID", sid), ("EOF", "1WR")], b"Bye!"))
        self.ctx.stats.inc("hrelay:streams_ok" if ok else "hrelay:streams_bad")
        return ok

    def finish(self, p, rng):
        r = rng.random()
        if r < 0.4:
            p.close(rst=True)
        elif r < 0.8:
            p.close()
        else:
            time.sleep(0.5)
            p.close()

    # -- scenarios
    def ok_serve(self, p, kites, calm):
        rng = self.rng
        z = calm or rng.random() < 0.5
        p.send(self.head(kites, features=("AddKites", "ZChunks") if z else ("AddKites",)))
        reader = ChunkReader()
        defl = Deflater() if rng.random() < 0.5 else None
        ok = self.serve_streams(p, reader, defl, rng, calm, nstreams=2 if calm else None)
        if calm:
            if ok:
                self.calm_ok.set()
            p.close()
            return
        if not ok:
            self.ctx.stats.inc("hrelay:serve_fail")
        self.finish(p, rng)

    def challenge_inband(self, p, kites, calm):
        rng = self.rng
        ext = ["X-PageKite-SignThis: %s:t%s" % (self.what(k), os.urandom(14).hex()[:27])
               for k in kites]
        p.send(self.head(kites, ok=False, extra=ext))
        reader = ChunkReader()
        got, _ = HostilePeers.read_chunks(None, p, reader, lambda c: c.noop, 3.0)
        signed = [v for c in got for v in c.all("X-PageKite")]
        p.send(noop([("X-PageKite-OK", self.what(k)) for k in signed] or
                    [("X-PageKite-OK", self.what(k)) for k in kites]))
        if rng.random() < 0.6:
            self.serve_streams(p, reader, None, rng, calm)
        self.finish(p, rng)

    def challenge_old(self, p, kites, calm):
        ext = ["X-PageKite-SignThis: %s:t%s" % (self.what(k), os.urandom(14).hex()[:27])
               for k in kites]
        p.send(self.head(kites, ok=False, features=("ZChunks",), extra=ext))
        try:
            p.fill(maxwait=3.0)   # the connector hangs up to reconnect signed
        except (EOFError, OSError):
            pass
        p.close()

    def reject_then_ok(self, p, kites, calm):
        rng = self.rng
        ext = []
        for k in kites:
            w = self.what(k)
            if rng.random() < 0.5:
                ext += ["X-PageKite-Invalid: %s" % w, "X-PageKite-Invalid-Why: %s;signature" % w]
            else:
                ext += ["X-PageKite-Duplicate: %s" % w]
        p.send(self.head(kites, ok=False, extra=ext))
        time.sleep(0.2)
        # and then change our mind, in-band (so the connector does not back off for minutes)
        p.send(noop([("X-PageKite-OK", self.what(k)) for k in kites]))
        reader = ChunkReader()
        if rng.random() < 0.5:
            self.serve_streams(p, reader, None, rng, calm)
        self.finish(p, rng)

    def junk_after_ok(self, p, kites, calm):
        rng = self.rng
        p.send(self.head(kites))
        reader = ChunkReader()
        defl = Deflater()
        port = self.port
        junk = [
            lambda: noop([("X-PageKite-SignThis", "http:%s:x:t1234567" % VICTIM_KITE)]),
            lambda: noop([("X-PageKite-SignThis", "http:unknown.example.test:x:tok")]),
            lambda: noop([("X-PageKite-SignThis", "%s:%s" % (self.what(kites[0]), "t" * 200))]
                         if kites else [("NOOP", "2")]),
            lambda: noop([("X-PageKite-OK", "http:unknown.example.test:x")]),
            lambda: noop([("X-PageKite-Invalid-Why", "%s;%s" % (self.what(kites[0]) if kites else "x",
                                                               "w" * 200))]),
            lambda: noop([("X-PageKite-SessionID", "s" * 300)]),
            lambda: noop([("PING", "1")]),
            lambda: noop([("PONG", "1")]),
            lambda: noop([("ZRST", "1")]),
            lambda: noop([("SID", rng.randrange(1 << 40)), ("SKB", "77")]),
            lambda: chunk([("SID", rng.randrange(1 << 40))], b"data for nobody"),
            lambda: chunk([("SID", rng.randrange(1 << 40)), ("EOF", "1")], b""),
            lambda: chunk([("SID", self.next_sid()), ("Proto", "http"), ("Host", "nope.example.test")],
                          b"GET / HTTP/1.1\r\nHost: nope\r\n\r\n"),
            lambda: chunk([("SID", self.next_sid()), ("Proto", "probe"), ("Host", VICTIM_KITE)], b""),
            lambda: chunk([("SID", self.next_sid()), ("Proto", "websocket"), ("Host", VICTIM_KITE),
                           ("Port", 80)], b"GET /ws HTTP/1.1\r\nHost: v\r\nUpgrade: websocket\r\n"
                                          b"Sec-WebSocket-Key: eA==\r\n\r\n"),
            lambda: chunk([("SID", self.next_sid()), ("Proto", "raw"), ("Host", VICTIM_KITE),
                           ("Port", 1)], b"raw to the wrong port"),
            lambda: chunk([("SID", self.next_sid()), ("Proto", "raw"), ("Host", VICTIM_KITE),
                           ("Port", port)], b""),
            lambda: chunk([("SID", self.next_sid()), ("Proto", "http"), ("Host", VICTIM_KITE.upper()),
                           ("Port", "99999999999999999999"), ("RIP", "x" * 100), ("RPort", "-1"),
                           ("RTLS", "1")], b"GET /bytes/10 HTTP/1.1\r\nHost: v\r\n\r\n"),
            lambda: chunk([("SID", self.next_sid()), ("Proto", "http"), ("Host", VICTIM_KITE)],
                          b"GET /bytes/10 HTTP/1.1\r\n" + b"X-Big: " + b"b" * 20000 + b"\r\n\r\n"),
            lambda: chunk([("SID", self.next_sid()), ("Proto", "http"), ("Host", VICTIM_KITE)],
                          b"POST /echo HTTP/1.1\r\nContent-Length: -5\r\n\r\nabc"),
            lambda: chunk([("SID", self.next_sid()), ("Proto", "http"), ("Host", VICTIM_KITE)],
                          b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"),
            lambda: chunk([("SID", "-3"), ("Proto", "http"), ("Host", VICTIM_KITE)], b"x"),
            lambda: chunk([("SID", "9223372036854775807"), ("Proto", "http"), ("Host", VICTIM_KITE)],
                          b"GET / HTTP/1.1\r\n\r\n"),
            lambda: chunk([("Proto", "http"), ("Host", VICTIM_KITE)], b"no sid"),
            lambda: noop([("X-Junk-%d" % i, "v" * 100) for i in range(60)]),
            lambda: defl.frame(chunk_payload([("NOOP", "1"), ("PING", "z")], b"!"),
                               reset=rng.random() < 0.3),
            lambda: b"%xZ%x\r\n" % (30, 8) + os.urandom(8),
            lambda: b"%xZ%x\r\n" % (5000000, 8) + os.urandom(8),
            lambda: b"zzzz\r\n",
            lambda: b"40000\r\n" + b"n" * 100,
            lambda: frame(b"NOOP: 1\r\n" + b"X: " + b"h" * 250000 + b"\r\n\r\n!"),
        ]
        for _ in range(rng.randint(1, 30)):
            data = rng.choice(junk)()
            p.send(data)
            self.ctx.stats.inc("exec")
            if rng.random() < 0.2:
                try:
                    p.fill(maxwait=0.05)
                    reader.feed(p.take())
                except (EOFError, ValueError, zlib.error):
                    break
        if rng.random() < 0.5:
            try:
                self.serve_streams(p, reader, None, rng, calm, nstreams=1)
            except (EOFError, ValueError, zlib.error):
                pass
        self.finish(p, rng)

    def stream_games(self, p, kites, calm):
        """Streams that end in odd ways: EOF before data, data after EOF, resets."""
        rng = self.rng
        p.send(self.head(kites))
        for _ in range(rng.randint(1, 6)):
            sid = self.next_sid()
            hdr = [("SID", sid), ("Proto", "http"), ("Host", VICTIM_KITE), ("Port", 80)]
            req = b"GET /bytes/%d HTTP/1.1\r\nHost: v\r\n\r\n" % rng.choice((10, 2000000))
            steps = [
                lambda: p.send(chunk(hdr, req)),
                lambda: p.send(chunk([("SID", sid), ("EOF", rng.choice(("1R", "1W", "1")))], b"")),
                lambda: p.send(chunk([("SID", sid)], b"after eof?")),
                lambda: p.send(noop([("SID", sid), ("SKB", rng.choice(("0", "5000", "-1")))])),
                lambda: p.send(chunk(hdr, b"")),
                lambda: time.sleep(0.2),
            ]
            for _ in range(rng.randint(1, 5)):
                rng.choice(steps)()
                self.ctx.stats.inc("exec")
        try:
            p.fill(maxwait=rng.choice((0.1, 1.0)))
        except (EOFError, OSError):
            pass
        self.finish(p, rng)

    def flow_control(self, p, kites, calm):
        """Acknowledge once, then never: the connector must pause (1 MiB window),
        not buffer without bound; then stop reading the tunnel for a while."""
        rng = self.rng
        p.send(self.head(kites, features=("AddKites",)))
        for _ in range(rng.randint(1, 4)):
            sid = self.next_sid()
            p.send(chunk([("SID", sid), ("Proto", "http"), ("Host", VICTIM_KITE), ("Port", 80)],
                         b"GET /bytes/3000000 HTTP/1.1\r\nHost: v\r\n\r\n"))
            p.send(noop([("SID", sid), ("SKB", "0")]))
        time.sleep(rng.choice((0.5, 3.0, 8.0)))   # do not read at all
        self.ctx.stats.inc("exec")
        self.finish(p, rng)

    def bad_head(self, p, kites, calm):
        rng = self.rng
        choice = rng.choice((
            b"HTTP/1.1 403 Forbidden\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n" + b"X-Pad: " + b"p" * 20000 + b"\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nX-PageKite-SessionID: " + b"s" * 5000 + b"\r\n\r\n",
            b"garbage\r\n\r\n",
            b"HTTP/1.1 101 Switching Protocols\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-PageKite-OK: %s\r\n" % self.what(k).encode()
                                             for k in kites) * 40 + b"\r\n",
            os.urandom(300),
            b"\x15\x03\x03\x00\x02\x02\x28",
            b"",
        ))
        if rng.random() < 0.3:
            for i in range(len(choice)):
                p.send(choice[i:i + 1])
        else:
            p.send(choice)
        if rng.random() < 0.5:
            p.send(noop([("PING", "1")]) + os.urandom(100))
        try:
            p.fill(maxwait=1.0)
        except (EOFError, OSError):
            pass
        self.finish(p, rng)

    def no_answer(self, p, kites, calm):
        time.sleep(self.rng.choice((0.5, 3.0, 8.0)))
        self.finish(p, self.rng)

    def huge_noop(self, p, kites, calm):
        rng = self.rng
        p.send(self.head(kites))
        size = rng.choice((30000, 33000, 250000, 262144, 262145, 300000))
        pl = b"NOOP: 1\r\nX-Big: " + b"q" * size + b"\r\n\r\n!"
        if rng.random() < 0.5:
            p.send(frame(pl))
        else:
            p.send(Deflater().frame(pl))
        self.ctx.stats.inc("exec")
        try:
            p.fill(maxwait=0.5)
        except (EOFError, OSError):
            pass
        self.finish(p, rng)

    def long_silent(self, p, kites, calm):
        """OK, then silence (PINGs unanswered): the connector must give up on us
        (PING after 30 s quiet, dead 20 s later) and reconnect."""
        p.send(self.head(kites))
        t0 = time.monotonic()
        closed = None
        while time.monotonic() < p.deadline - 1:
            try:
                p.fill(maxwait=1.0)
                p.take()
            except (EOFError, OSError):
                closed = time.monotonic() - t0
                break
        self.ctx.journal.log("hrelay", "long_silent: connector closed after %s s"
                             % (closed and round(closed, 1)))
        if closed is None and time.monotonic() - t0 > 70:
            self.ctx.finding("hang", "connector keeps a tunnel to a relay that answers no PING "
                             "for %.0f s" % (time.monotonic() - t0), self.env.victim.tail(20),
                             proc=self.env.victim)
        p.close()

    def long_noread(self, p, kites, calm):
        """Ask for 32 MB, then never read (but keep talking): the connector must
        drop the tunnel when its output stops moving (60 s)."""
        p.send(self.head(kites, features=("AddKites",)))
        for _ in range(8):
            p.send(chunk([("SID", self.next_sid()), ("Proto", "http"), ("Host", VICTIM_KITE),
                          ("Port", 80)], b"GET /bytes/4000000 HTTP/1.1\r\nHost: v\r\n\r\n"))
        t0 = time.monotonic()
        closed = None
        while time.monotonic() < p.deadline - 1:
            try:
                p.s.settimeout(5)
                p.s.sendall(noop([("X-Chaos", "still here")]))
            except OSError:
                closed = time.monotonic() - t0
                break
            time.sleep(3.0)
        self.ctx.journal.log("hrelay", "long_noread: connector closed after %s s"
                             % (closed and round(closed, 1)))
        if closed is None and time.monotonic() - t0 > 80:
            self.ctx.finding("hang", "connector keeps a tunnel to a relay that reads nothing for "
                             "%.0f s (write stall bound: 60 s)" % (time.monotonic() - t0),
                             self.env.victim.tail(20), proc=self.env.victim)
        p.close(rst=True)

    def stop(self):
        self.stopped = True
        try:
            self.ls.close()
        except OSError:
            pass


# ------------------------------------------------------------------ the run

class Env:
    """Everything a run starts, and the checks between storms."""

    def __init__(self, ctx):
        self.ctx = ctx
        a = ctx.args
        self.cycle = 0
        self.restart_lock = threading.Lock()
        self.long_pending = False
        self.storm_end = 0.0
        self.stacks_dumped = False
        self.dup_windows = []
        self.dup_lock = threading.Lock()
        pagekiter = ctx.build / "pagekiter"
        pagekitec = ctx.build / "pagekitec"
        for b in (pagekiter, pagekitec):
            if not os.access(b, os.X_OK):
                raise SystemExit("chaos: %s not found (build first, or set PK_BUILD_DIR / --build)" % b)
        self.origin = Origin()
        self.ca, self.relay_cert, self.relay_key = make_pki(ctx.logdir / "pki")
        self.origin.start_tls(self.relay_cert, self.relay_key)
        # relay
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.relay_port = s.getsockname()[1]
        rargv = [pagekiter, "--listen=127.0.0.1", "--ports=%d" % self.relay_port,
                 "-c", str(a.relay_conns), "-k", str(a.relay_kites),
                 "--domain=http,https,raw,websocket:*.%s:%s" % (DOMAIN, SECRET)]
        if ctx.tls:
            rargv += ["--tls-cert=%s" % self.relay_cert, "--tls-key=%s" % self.relay_key]
        if a.dups:
            rargv += ["--allow-duplicates"]
        self.relay = Proc(ctx, "pagekiter", rargv)
        ctx.procs.append(self.relay)
        self.relay.start()
        self.wait_listening(self.relay, self.relay_port)
        # proxies
        self.tproxy = FaultProxy(ctx, "tunnel-proxy", self.relay_port, tls_inner=ctx.tls)
        self.cproxy = FaultProxy(ctx, "client-proxy", self.relay_port, verbose_journal=False)
        self.proxies = [self.tproxy, self.cproxy]
        main = ProxySet(self.tproxy)
        self.kite_proxy = {HTTP_KITE: main, RAW_KITE: main, HTTPS_KITE: main}
        # connectors
        cargv = [pagekitec, "--frontend", "127.0.0.1:%d" % self.tproxy.port, "-c", "100"]
        if ctx.tls:
            cargv += ["--ca-file", self.ca]
        cargv += ["127.0.0.1:%d" % self.origin.http_port, "http", HTTP_KITE, "0", SECRET,
                  "127.0.0.1:%d" % self.origin.echo_port, "raw", RAW_KITE, str(self.relay_port), SECRET,
                  "127.0.0.1:%d" % self.origin.https_port, "https", HTTPS_KITE, "0", SECRET]
        self.conn = Proc(ctx, "pagekitec", cargv)
        ctx.procs.append(self.conn)
        self.connectors = [(self.conn, 3)]
        self.conn.start()
        self.client_kinds = ["get", "get", "keepalive", "pipeline", "echo", "upload", "raw_echo",
                             "ws", "abort", "slow", "halfclose", "tls_https", "tls_https"]
        if ctx.tls:
            # a plain connector on the TLS relay, behind its own proxy
            self.tproxy2 = FaultProxy(ctx, "tunnel2-proxy", self.relay_port)
            self.proxies.append(self.tproxy2)
            self.kite_proxy[PLAIN2_KITE] = ProxySet(self.tproxy2)
            c2 = [pagekitec, "--frontend", "127.0.0.1:%d" % self.tproxy2.port, "-c", "100",
                  "127.0.0.1:%d" % self.origin.http_port, "http", PLAIN2_KITE, "0", SECRET]
            self.conn2 = Proc(ctx, "pagekitec-plain", c2)
            ctx.procs.append(self.conn2)
            self.connectors.append((self.conn2, 1))
            self.conn2.start()
            self.client_kinds += ["tls_get", "tls_get", "tls_echo", "tls_keepalive", "get2"]
        if a.dups:
            # a second connector for the same http and raw kites: the relay spreads streams
            self.tproxy3 = FaultProxy(ctx, "tunnel3-proxy", self.relay_port, tls_inner=ctx.tls)
            self.proxies.append(self.tproxy3)
            main.add(self.tproxy3)
            c3 = [pagekitec, "--frontend", "127.0.0.1:%d" % self.tproxy3.port, "-c", "100"]
            if ctx.tls:
                c3 += ["--ca-file", self.ca]
            c3 += ["127.0.0.1:%d" % self.origin.http_port, "http", HTTP_KITE, "0", SECRET,
                   "127.0.0.1:%d" % self.origin.echo_port, "raw", RAW_KITE, str(self.relay_port),
                   SECRET]
            self.conn3 = Proc(ctx, "pagekitec-dup", c3)
            ctx.procs.append(self.conn3)
            self.connectors.append((self.conn3, 2))
            self.conn3.start()
        self.expected_kites = sum(n for _, n in self.connectors)
        # hostile relay and its victim connector
        self.hrelay = None
        if not a.no_hostile_relay:
            self.hrelay = HostileRelay(ctx, self)
            vargv = [pagekitec, "--frontend", "127.0.0.1:%d" % self.hrelay.port, "-c", "25"]
            if ctx.tls:
                vargv += ["--ca-file", self.ca]
            vargv += ["127.0.0.1:%d" % self.origin.http_port, "http", VICTIM_KITE, "0", SECRET,
                      "127.0.0.1:%d" % self.origin.echo_port, "raw", VICTIM_KITE,
                      str(self.hrelay.port), SECRET]
            self.victim = Proc(ctx, "pagekitec-victim", vargv)
            ctx.procs.append(self.victim)
            self.victim.start()
        self.clients = Clients(ctx, self)
        self.hostile = HostilePeers(ctx, self)

    def note_dup_window(self, t0, t1):
        with self.dup_lock:
            self.dup_windows.append((t0, t1))

    def dup_window_hit(self, t0, t1):
        with self.dup_lock:
            return any(a <= t1 and b >= t0 for a, b in self.dup_windows)

    def wait_listening(self, proc, port, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not proc.alive:
                raise SystemExit("chaos: %s exited (rc %s) at start:\n%s"
                                 % (proc.name, proc.popen.returncode, proc.tail()))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("chaos: %s not listening on %d" % (proc.name, port))

    # -- checks
    def ping_relay(self, timeout=5.0):
        """GET /ping with Host: ping.pagekite, straight to the relay."""
        try:
            s = socket.create_connection(("127.0.0.1", self.relay_port), timeout=timeout)
            p = Peer(s, time.monotonic() + timeout)
            p.send(b"GET /ping HTTP/1.1\r\nHost: ping.pagekite\r\n\r\n")
            st, h, _ = read_response(p)
            p.close()
            return "x-pagekite-uuid" in h
        except (OSError, EOFError, TimeoutError, ValueError, ShortRead):
            return False

    def verified(self, kind, kite_via, deadline_s=15):
        rng = random.Random(self.ctx.rng.random())
        r, d = self.clients.run_one(rng, kite_via, deadline_s=deadline_s, kinds=[kind], strict=False)
        return r, d

    def wait_served(self, kind, via, timeout):
        t0 = time.monotonic()
        last = None
        n = 0
        while time.monotonic() - t0 < timeout and n < 500:
            n += 1
            r, d = self.verified(kind, via, deadline_s=min(15, max(3, timeout - (time.monotonic() - t0))))
            if r == "ok":
                return time.monotonic() - t0, None
            last = "%s: %s" % (r, d)
            time.sleep(0.3)
        return None, last

    def check_processes(self):
        with self.restart_lock:
            self._check_processes()

    def _check_processes(self):
        ctx = self.ctx
        for p in ctx.procs:
            if p.popen is None:
                continue
            rep = p.scan()
            if rep and not p.reported:
                time.sleep(1.0)   # let the report finish
                more = p.scan() or ""
                p.reported = True
                first = next((ln for ln in (rep + more).splitlines() if SANITIZER_RE.search(ln)), "")
                ctx.finding("sanitizer", "%s: %s" % (p.name, first.strip()[:160]),
                            (rep + more)[:20000], proc=p)
            if not p.alive and not p.expected_exit and not ctx.stopping.is_set():
                rc = p.popen.returncode
                more = p.scan() or ""
                if more and not p.reported:
                    p.reported = True
                    first = next((ln for ln in more.splitlines() if SANITIZER_RE.search(ln)), "")
                    ctx.finding("sanitizer", "%s: %s" % (p.name, first.strip()[:160]),
                                more[:20000], proc=p)
                ctx.finding("crash", "%s died (rc %s, %s)" % (p.name, rc, "signal %d" % -rc
                                                               if rc is not None and rc < 0 else "exit"),
                            p.tail(80), proc=p)
                p.close_files()
                ctx.restarts.append((time.monotonic(), p.name))
                p.start()
                if p is self.relay:
                    try:
                        self.wait_listening(p, self.relay_port)
                    except SystemExit as e:
                        ctx.finding("crash", "relay does not restart", str(e))
            p.sample_rss()

    def monitor(self):
        last_ping = 0.0
        while not self.ctx.stopping.is_set():
            self.check_processes()
            now = time.monotonic()
            if self.ctx.storm.is_set() and now - last_ping > 3.0:
                last_ping = now
                ok = any(self.ping_relay(10.0) for _ in range(2))
                if not ok and self.relay.alive:
                    self.ctx.finding("hang", "relay did not answer /ping within 10 s (twice) during a storm",
                                     self.relay.tail(60), proc=self.relay)
                self.ctx.stats.inc("pings")
            while self.origin.violations:
                v = self.origin.violations.pop(0)
                self.ctx.finding("forwarding", "origin saw forwarding headers that are not the "
                                 "connector's", v)
            stuck = [t for t in list(self.clients.busy.values()) if now - t > STUCK_S]
            if stuck and not self.stacks_dumped:
                self.stacks_dumped = True
                with open(self.ctx.logdir / "stacks.txt", "w") as f:
                    faulthandler.dump_traceback(file=f, all_threads=True)
                self.ctx.journal.log("driver", "a client request runs for > 75 s: stacks.txt")
            time.sleep(0.5)

    # -- phases
    def storm(self, seconds, long_storm=False):
        ctx = self.ctx
        a = ctx.args
        self.cycle += 1
        rng = ctx.rng
        profile = rng.choice(list(PROFILES))
        lo, hi = PROFILES[profile][0]
        lo, hi = lo * a.rate_scale, hi * a.rate_scale
        for px in self.proxies:
            r = rng.uniform(lo, hi)
            if px is not self.cproxy and profile != "transparent":
                r *= 0.25   # a tunnel carries every stream: kill it less often than a client
            px.configure(profile, r, long_stalls=seconds > 30)
        ctx.phase = "storm %d (%s)" % (self.cycle, profile)
        ctx.journal.log("driver", "STORM %d: %s, %.0f s, rates %s" % (
            self.cycle, profile, seconds, ", ".join("%s %.3f" % (p.name, p.rate) for p in self.proxies)))
        if a.verbose:
            print("chaos: storm %d: %s for %.0f s" % (self.cycle, profile, seconds), flush=True)
        stop_at = time.monotonic() + seconds
        self.storm_end = stop_at
        first = None
        if long_storm:
            first = rng.choice(HostilePeers.LONG)
            self.long_pending = self.hrelay is not None
            ctx.journal.log("driver", "long storm: hostile0 starts with %s; the hostile relay gets "
                            "a long scenario" % first)
        ctx.storm.set()
        threads = []
        for i in range(a.clients):
            threads.append(threading.Thread(target=self.client_loop, args=(i, stop_at), daemon=True))
        for i in range(a.hostile):
            threads.append(threading.Thread(target=self.hostile.run,
                                            args=(i, stop_at, first if i == 0 else None),
                                            daemon=True))
        if a.lifecycle and not long_storm:   # long scenarios time our processes: leave them be
            threads.append(threading.Thread(target=self.lifecycle_loop, args=(stop_at,), daemon=True))
        for t in threads:
            t.start()
        while time.monotonic() < stop_at and not ctx.stopping.is_set():
            time.sleep(0.2)
        ctx.storm.clear()
        self.long_pending = False
        for px in self.proxies:
            px.enabled = False
        join_end = time.monotonic() + 60
        for t in threads:
            t.join(timeout=max(0.1, join_end - time.monotonic()))
        stuck = [t for t in threads if t.is_alive()]
        if stuck:
            ctx.journal.log("driver", "%d client/hostile threads still busy after the storm" % len(stuck))

    def lifecycle_loop(self, stop_at):
        """Stop and start our processes in the middle of the storm: SIGTERM must
        give exit 0 and no sanitizer report even with every kind of connection
        in flight; SIGKILL (relay, connectors) must be survived by the others;
        SIGUSR1 raises logging to everything (hostile input in log lines)."""
        ctx = self.ctx
        rng = random.Random("%s:lifecycle:%d" % (ctx.seed, self.cycle))
        n = 0
        while ctx.storm.is_set() and n < 3:
            wait = rng.uniform(3.0, 25.0)
            if time.monotonic() + wait > stop_at - 3:
                return
            time.sleep(wait)
            if not ctx.storm.is_set():
                return
            n += 1
            p = rng.choice(ctx.procs)
            how = rng.choice(("term", "term", "kill", "usr1"))
            ctx.stats.inc("exec")
            ctx.stats.inc("lifecycle:%s" % how)
            ctx.journal.log("lifecycle", "%s %s (pid %d)" % (how, p.name, p.pid))
            if how == "usr1":
                if p.usr1_done:
                    continue
                p.usr1_done = True
                try:
                    os.kill(p.pid, signal.SIGUSR1)
                except ProcessLookupError:
                    pass
                continue
            with self.restart_lock:
                ctx.restarts.append((time.monotonic(), p.name))
                if how == "term":
                    rc, took = p.stop(20.0)
                    ctx.journal.log("lifecycle", "%s exited %s after %.2f s" % (p.name, rc, took))
                    if rc != 0:
                        ctx.finding("exit", "%s exited %s on SIGTERM in the middle of a storm"
                                    % (p.name, rc), p.tail(60), proc=p)
                else:
                    p.kill()
                rep = p.scan()
                if rep and not p.reported:
                    p.reported = True
                    first = next((ln for ln in rep.splitlines() if SANITIZER_RE.search(ln)), "")
                    ctx.finding("sanitizer", "%s (stopped mid-storm): %s" % (p.name, first.strip()[:160]),
                                rep[:20000], proc=p)
                p.close_files()
                p.start()
                if p is self.relay:
                    try:
                        self.wait_listening(p, self.relay_port)
                    except SystemExit as e:
                        ctx.finding("crash", "relay does not restart", str(e))
                ctx.restarts.append((time.monotonic(), p.name))

    def client_loop(self, i, stop_at):
        rng = random.Random("%s:client:%d:%d" % (self.ctx.seed, i, self.cycle))
        n = 0
        while self.ctx.storm.is_set() and time.monotonic() < stop_at and n < 100000:
            n += 1
            via = "proxy" if rng.random() < 0.7 else "direct"
            self.clients.run_one(rng, via, deadline_s=max(5.0, min(45.0, stop_at - time.monotonic() + 15)))

    def calm(self, final=False):
        """Faults off; everything must come back.  Returns seconds used."""
        ctx = self.ctx
        a = ctx.args
        ctx.phase = "calm %d%s" % (self.cycle, " (final)" if final else "")
        t0 = time.monotonic()
        ctx.journal.log("driver", "CALM %d" % self.cycle)
        for p in ctx.procs:
            if not p.alive:
                self.check_processes()
        # 1. the relay answers /ping
        ok = any(self.ping_relay(5.0) for _ in range(3))
        if not ok:
            ctx.finding("hang", "relay does not answer /ping after the storm", self.relay.tail(60),
                        proc=self.relay)
        # 2. every kite serves a verified request (straight to the relay, and via the proxy)
        checks = [("get", "direct"), ("raw_echo", "direct"), ("echo", "proxy"),
                  ("tls_https", "direct")]
        if ctx.tls:
            checks += [("tls_get", "direct"), ("get2", "direct")]
        for kind, via in checks:
            took, last = self.wait_served(kind, via, a.calm_timeout)
            if took is None:
                conn = self.conn2 if kind == "get2" else self.conn
                self.diagnose(conn, kind, via, last)
                took, last = self.wait_served(kind, via, a.calm_timeout)
                if took is None:
                    ctx.finding("hang", "%s via %s not served after a restart of %s"
                                % (kind, via, conn.name), "last: %s" % last, proc=conn)
            else:
                ctx.stats.inc("calm_ok")
                ctx.journal.log("driver", "calm: %s via %s served after %.1f s" % (kind, via, took))
                with ctx.flock:
                    ctx.recovery.append(took)
        # 3. the victim connector serves a well-behaved relay again
        if self.hrelay is not None:
            self.hrelay.calm_ok.clear()
            end = time.monotonic() + a.calm_timeout + 15
            while time.monotonic() < end and not self.hrelay.calm_ok.is_set():
                time.sleep(0.2)
            if not self.hrelay.calm_ok.is_set():
                ctx.finding("hang", "victim connector did not serve a well-behaved relay within %d s"
                            % (a.calm_timeout + 15), self.victim.tail(40), proc=self.victim)
        # 4. the relay is back to our tunnels and kites; no streams are left
        want_t, want_k = len(self.connectors), self.expected_kites
        end = time.monotonic() + (25 if final else 20)
        st = None
        while time.monotonic() < end:
            st = self.relay.status
            cst = [c.status for c, _ in self.connectors]
            if st and st[1] == want_k and st[2] == want_t and st[3] == 0 and \
                    all(c and c[3] == 0 for c in cst) and st[4] > time.monotonic() - 2.5:
                break
            time.sleep(0.25)
        else:
            cst = [(c.name, c.status and c.status[:4]) for c, _ in self.connectors]
            what = "relay status %s after calm (want kites %d, tunnels %d, streams 0); connectors %s" % (
                st and st[:4], want_k, want_t, cst)
            if st and (st[1] != want_k or st[2] != want_t):
                ctx.finding("state", "relay kites/tunnels not back to the expected count", what,
                            proc=self.relay)
            else:
                ctx.finding("leak", "streams left open after calm", what, proc=self.relay)
        # 5. memory and descriptors
        for p in ctx.procs:
            fds = p.fd_count()
            if fds is not None:
                p.fd_samples.append(fds)
            v = p.sample_rss()
            if v:
                p.rss_samples.append(v)
                if v > a.rss_limit_mb * 1024:
                    ctx.finding("rss", "%s RSS %d MB > %d MB" % (p.name, v // 1024, a.rss_limit_mb),
                                proc=p)
        for p in ctx.procs:
            p.calm_err_off = len(p.stderr_text())
            p.calm_t = time.monotonic()
        ctx.journal.log("driver", "calm done in %.1f s; RSS %s" % (
            time.monotonic() - t0, ", ".join("%s %s MB" % (p.name, (p.rss_samples[-1] // 1024)
                                                          if p.rss_samples else "?")
                                            for p in ctx.procs)))
        return time.monotonic() - t0

    def diagnose(self, conn, kind, via, last):
        """A kite did not come back: say why, then restart its connector so that
        the campaign goes on."""
        ctx = self.ctx
        text = conn.stderr_text()[conn.calm_err_off:]
        tpx = self.kite_proxy.get(PLAIN2_KITE if kind == "get2" else HTTP_KITE)
        corrupted = tpx is not None and tpx.corrupt_in(conn.calm_t, time.monotonic())
        rej = [ln for ln in text.splitlines() if "rejected by relay" in ln]
        detail = "last: %s\n--- %s:\n%s\n--- relay:\n%s" % (last, conn.name, conn.tail(40),
                                                           self.relay.tail(40))
        if rej and corrupted:
            ctx.finding("availability", "a kite rejected on a live tunnel (after a corrupted plain "
                        "handshake) is never requested again while the tunnel stays up",
                        "%s\n%s" % ("\n".join(rej[-3:]), detail), proc=conn)
        elif rej:
            ctx.finding("availability", "kite rejected by the relay without a corrupting fault",
                        "%s\n%s" % ("\n".join(rej[-3:]), detail), proc=conn)
        else:
            ctx.finding("hang", "%s via %s not served within %d s after faults stopped"
                        % (kind, via, ctx.args.calm_timeout), detail, proc=conn)
        ctx.journal.log("driver", "restarting %s" % conn.name)
        rc, took = conn.stop(20.0)
        if rc != 0:
            ctx.finding("exit", "%s exited %s on SIGTERM" % (conn.name, rc), conn.tail(40), proc=conn)
        rep = conn.scan()
        if rep and not conn.reported:
            conn.reported = True
            ctx.finding("sanitizer", "%s at exit: %s" % (conn.name, rep.splitlines()[0][:160]),
                        rep[:20000], proc=conn)
        conn.close_files()
        ctx.restarts.append((time.monotonic(), conn.name))
        conn.start()
        conn.calm_err_off = 0
        conn.calm_t = time.monotonic()

    def shutdown(self):
        ctx = self.ctx
        ctx.stopping.set()
        ctx.storm.clear()
        for px in self.proxies:
            px.enabled = False
        results = {}
        # connectors first, then the relay
        for p in sorted(ctx.procs, key=lambda p: p is self.relay):
            if not p.alive:
                results[p.name] = ("dead", p.popen.returncode if p.popen else None)
                continue
            rc, took = p.stop(20.0)
            results[p.name] = (rc, round(took, 2))
            ctx.journal.log("driver", "%s SIGTERM: rc %s after %.2f s" % (p.name, rc, took))
            rep = p.scan()
            if rep and not p.reported:
                p.reported = True
                first = next((ln for ln in rep.splitlines() if SANITIZER_RE.search(ln)), "")
                ctx.finding("sanitizer", "%s at exit: %s" % (p.name, first.strip()[:160]),
                            rep[:20000], proc=p)
            if rc is None:
                ctx.finding("exit", "%s did not exit within 20 s of SIGTERM" % p.name, p.tail(40),
                            proc=p)
            elif rc != 0:
                ctx.finding("exit", "%s exited %d on SIGTERM" % (p.name, rc), p.tail(60), proc=p)
            p.close_files()
        for px in self.proxies:
            px.stop()
        if self.hrelay:
            self.hrelay.stop()
        self.origin.stop()
        return results


def is_asan(binary):
    try:
        with open(binary, "rb") as f:
            data = f.read()
        return b"__asan_init" in data or b"AddressSanitizer" in data
    except OSError:
        return False


def rss_growth(ctx):
    """Calm-phase samples: late third clearly above the early third?  Under
    ASan freed memory sits in the quarantine (256 MB by default), so only
    growth beyond that counts there; open descriptors must not grow at all."""
    out = {}
    asan = is_asan(ctx.build / "pagekiter")
    for p in ctx.procs:
        f = p.fd_samples
        if len(f) >= 3:
            k = max(1, len(f) // 3)
            if min(f[-k:]) > max(f[:k]) + 4:
                ctx.finding("fd", "%s open descriptors grow across calm checks: %s" % (p.name, f),
                            "fd counts at each calm check: %s" % f, proc=p)
        s = p.rss_samples
        if len(s) < 6:
            continue
        k = len(s) // 3
        early, late = max(s[:k]), min(s[-k:])
        out[p.name] = (early // 1024, late // 1024)
        allowance = 320 * 1024 if asan else 64 * 1024
        if late > early * 1.25 and late - early > allowance:
            ctx.finding("rss", "%s RSS grows across calm checks: %d MB early, >= %d MB late"
                        % (p.name, early // 1024, late // 1024), "samples (KB): %s" % s, proc=p)
    return out


def run(args):
    ctx = Ctx(args)
    ctx.recovery = []
    t_start = time.monotonic()
    print("chaos: seed %d, %s, %d s, logs in %s" % (args.seed, "tls" if args.tls else "plain",
                                                   args.seconds, ctx.logdir), flush=True)
    env = Env(ctx)
    mon = threading.Thread(target=env.monitor, daemon=True, name="monitor")
    mon.start()
    # first: everything flies
    ctx.phase = "startup"
    took, last = env.wait_served("get", "direct", 30)
    if took is None:
        ctx.finding("startup", "kite not served within 30 s of start", "last: %s\n%s\n%s"
                    % (last, env.relay.tail(30), env.conn.tail(30)))
    for p in ctx.procs:
        v = p.sample_rss()
        if v:
            p.rss_samples.append(v)
    end = t_start + args.seconds
    cycles = 0
    while cycles < 10000:
        left = end - time.monotonic()
        calm_budget = 8 if args.seconds < 120 else 15
        if left < calm_budget + 5:
            break
        lo, hi = args.storm_min, args.storm_max
        dur = min(ctx.rng.uniform(lo, hi), left - calm_budget)
        long_storm = args.long_scenarios and cycles % 3 == 1 and left - calm_budget >= 95
        if long_storm:
            dur = 90.0
        env.storm(dur, long_storm)
        env.calm()
        cycles += 1
    env.calm(final=True) if cycles == 0 else None
    ctx.phase = "shutdown"
    exits = env.shutdown()
    growth = rss_growth(ctx)
    elapsed = time.monotonic() - t_start
    st = ctx.stats.snapshot()
    summary = {
        "seed": args.seed, "mode": "tls" if args.tls else "plain", "seconds": round(elapsed, 1),
        "cycles": cycles, "executions": st.get("exec", 0),
        "faults": {k[6:]: v for k, v in sorted(st.items()) if k.startswith("fault:")},
        "hostile": {k[8:]: v for k, v in sorted(st.items()) if k.startswith("hostile:")},
        "hostile_relay": {k[7:]: v for k, v in sorted(st.items()) if k.startswith("hrelay:")},
        "lifecycle": {k[10:]: v for k, v in sorted(st.items()) if k.startswith("lifecycle:")},
        "requests": {k[4:] or "total": v for k, v in sorted(st.items()) if k.startswith("req")},
        "relay_pings": st.get("pings", 0),
        "recovery_s": {"max": round(max(ctx.recovery), 2) if ctx.recovery else None,
                       "mean": round(sum(ctx.recovery) / len(ctx.recovery), 2) if ctx.recovery else None},
        "rss_max_mb": {p.name: round(p.rss_max_kb / 1024, 1) for p in ctx.procs},
        "rss_calm_early_late_mb": growth,
        "fds_at_calm": {p.name: p.fd_samples for p in ctx.procs},
        "exits": exits,
        "unexplained_failures": ctx.unexplained,
        "findings": ctx.findings,
        "logdir": str(ctx.logdir),
    }
    ctx.journal.close()
    with open(ctx.logdir / "summary.json", "w") as f:
        json.dump(summary, f, indent=1, default=str)
    if ctx.findings:
        with open(ctx.logdir / "findings.txt", "w") as f:
            for fd in ctx.findings:
                f.write("=== [%s] %s (x%d, seed %d, %s, t=%.1f, %s)\n%s\n--- journal tail:\n%s\n\n"
                        % (fd["kind"], fd["what"], fd["count"], fd["seed"], fd["mode"], fd["t"],
                           fd["phase"], fd["detail"], "\n".join(fd["journal_tail"])))
    req = summary["requests"]
    line = ("chaos: seed=%d mode=%s seconds=%.0f cycles=%d executions=%d requests=%d ok=%d "
            "failed_explained=%d failed_unexplained=%d corrupt_explained=%d findings=%d "
            "max_rss_mb=%s" % (
                args.seed, summary["mode"], elapsed, cycles, summary["executions"],
                req.get("total", 0), req.get("ok", 0), req.get("fail_explained", 0),
                req.get("fail_unexplained", 0), req.get("corrupt_explained", 0),
                len(ctx.findings),
                ",".join("%s:%s" % (k, v) for k, v in summary["rss_max_mb"].items())))
    print(line, flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1, default=str)
    if not ctx.findings and not args.keep_logs:
        shutil.rmtree(ctx.logdir, ignore_errors=True)
    else:
        print("chaos: logs kept in %s (seed %d: rerun with --seed %d --%s)"
              % (ctx.logdir, args.seed, args.seed, summary["mode"]), flush=True)
    return 1 if ctx.findings else 0


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=None, help="RNG seed (default: from the clock)")
    ap.add_argument("--seconds", type=float, default=120, help="campaign time (default 120)")
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--tls", action="store_true", help="TLS relay, TLS + plain connectors")
    g.add_argument("--plain", action="store_true", help="plain relay and connector (default)")
    ap.add_argument("--out", default="/tmp/pk-chaos", help="where logs of failing runs are kept")
    ap.add_argument("--build", default=os.environ.get("PK_BUILD_DIR") or str(ROOT / "build"),
                    help="directory with pagekiter/pagekitec (default $PK_BUILD_DIR or build/)")
    ap.add_argument("--clients", type=int, default=4, help="client threads (default 4)")
    ap.add_argument("--hostile", type=int, default=2, help="hostile tunnel peers (default 2)")
    ap.add_argument("--no-hostile-relay", action="store_true", help="no victim connector")
    ap.add_argument("--dups", action="store_true",
                    help="relay --allow-duplicates, and a second connector flying the same kites")
    ap.add_argument("--storm-min", type=float, default=15.0)
    ap.add_argument("--storm-max", type=float, default=40.0)
    ap.add_argument("--rate-scale", type=float, default=1.0, help="multiply fault rates")
    ap.add_argument("--calm-timeout", type=int, default=30,
                    help="seconds a kite may take to serve again after a storm (default 30)")
    ap.add_argument("--rss-limit-mb", type=int, default=1500)
    ap.add_argument("--relay-conns", type=int, default=300,
                    help="pagekiter -c (default 300: per-source and unknown-conn caps are reachable)")
    ap.add_argument("--relay-kites", type=int, default=40,
                    help="pagekiter -k (default 40: 56 tunnel slots, 18 of them kite-less)")
    ap.add_argument("--long", dest="long_scenarios", action="store_true", default=None,
                    help="long storms with 60-80 s scenarios (ping timeouts, write stalls); "
                         "default on when --seconds >= 240")
    ap.add_argument("--keep-logs", action="store_true", help="keep logs of passing runs too")
    ap.add_argument("--no-lifecycle", dest="lifecycle", action="store_false",
                    help="no SIGTERM/SIGKILL/SIGUSR1 of our processes during storms")
    ap.add_argument("--json", help="write the summary here too")
    ap.add_argument("-v", "--verbose", action="count", default=0)
    args = ap.parse_args(argv)
    if args.seed is None:
        args.seed = int(time.time() * 1000) % 1000000
    args.storm_min = max(2.0, min(args.storm_min, args.storm_max))
    if args.long_scenarios is None:
        args.long_scenarios = args.seconds >= 240
    return args


def main(argv=None):
    args = parse_args(argv)
    faulthandler.register(signal.SIGUSR2, all_threads=True)  # kill -USR2 <pid>: thread stacks
    try:
        return run(args)
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())
