"""Helpers shared by the tests in tests/python (imported by name: pkpy_helpers)."""

from __future__ import annotations

import functools
import hashlib
import http.client
import http.server
import os
import random
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

DOMAIN = "example.test"
SECRET = "py-binding-secret-0123"
BIG_SIZE = 5 * 1024 * 1024
RELAY_CERT_NAME = "relay.example.test"


def plain_flags(pk) -> int:
    """Connector flags for a relay without a certificate (the tests' usual relay):
    both address families and no PK_WITH_SSL.  PK_WITH_DEFAULTS, the
    Connector's default, turns TLS on, and a plain relay then fails the
    handshake ("the relay does not speak TLS")."""
    return pk.api.PK_WITH_IPV4 | pk.api.PK_WITH_IPV6


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port: int, host: str, path: str = "/", timeout: float = 30.0):
    """GET through the relay; returns (status, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


def wait_http(port: int, host: str, path: str = "/", timeout: float = 15.0):
    """Retry GET until 200 (the relay may answer 503 for a moment)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, body = http_get(port, host, path, timeout=5)
            if status == 200:
                return body
            last = "HTTP %d" % status
        except OSError as e:
            last = repr(e)
        time.sleep(0.2)
    raise AssertionError("GET http://%s%s via 127.0.0.1:%d: no 200 within %.0f s (last: %s)"
                         % (host, path, port, timeout, last))


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest output clean
        pass


class Origin:
    """A stdlib HTTP origin serving a temp dir with index.html and big.bin."""

    def __init__(self, root: Path):
        root.mkdir(parents=True, exist_ok=True)
        self.index = b"<html><body><h1>hello from the python origin</h1></body></html>\n"
        (root / "index.html").write_bytes(self.index)
        big = os.urandom(BIG_SIZE)
        (root / "big.bin").write_bytes(big)
        self.big_sha256 = hashlib.sha256(big).hexdigest()
        handler = functools.partial(_QuietHandler, directory=str(root))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)



def dump(*mgrs) -> str:
    """Status and log of managers, for assertion messages."""
    out = []
    for m in mgrs:
        try:
            out.append("---- %r\n%s" % (m, "\n".join(m.log[-40:])))
        except Exception as e:  # noqa: BLE001 - diagnostics only
            out.append("---- %r (%s)" % (m, e))
    return "\n".join(out)


# ---------------------------------------------------------------- 20 MB origin

HUGE_SIZE = 20 * 1024 * 1024
HUGE_SEED = 20240601


def deterministic_bytes(size: int = HUGE_SIZE, seed: int = HUGE_SEED) -> bytes:
    """The same pseudo-random (incompressible) bytes on every call."""
    return random.Random(seed).randbytes(size)


class _BytesHandler(http.server.BaseHTTPRequestHandler):
    """GET / (a page), GET /huge (deterministic bytes), POST /upload
    (answers "<sha256 hex> <length>" of the request body)."""

    protocol_version = "HTTP/1.1"
    page = b"<html><body><h1>deterministic origin</h1></body></html>\n"

    def log_message(self, *args):
        pass

    def _reply(self, body: bytes, ctype: str = "text/plain") -> None:
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        view = memoryview(body)
        for off in range(0, len(body), 256 * 1024):
            self.wfile.write(view[off:off + 256 * 1024])

    def do_GET(self):  # noqa: N802 - http.server API
        if self.path == "/":
            self._reply(self.page, "text/html")
        elif self.path == "/huge":
            self._reply(self.server.huge, "application/octet-stream")
        else:
            self.send_error(404)

    def do_POST(self):  # noqa: N802 - http.server API
        if self.path != "/upload":
            self.send_error(404)
            return
        left = int(self.headers.get("Content-Length", "0"))
        digest, total = hashlib.sha256(), 0
        while left > 0:
            chunk = self.rfile.read(min(left, 256 * 1024))
            if not chunk:
                break
            digest.update(chunk)
            total += len(chunk)
            left -= len(chunk)
        self.server.uploads.append((digest.hexdigest(), total))
        self._reply(("%s %d\n" % (digest.hexdigest(), total)).encode())


class BytesOrigin:
    """A threaded stdlib HTTP origin serving deterministic bytes and hashing uploads."""

    def __init__(self, size: int = HUGE_SIZE):
        self.huge = deterministic_bytes(size)
        self.huge_sha256 = hashlib.sha256(self.huge).hexdigest()
        self.page = _BytesHandler.page
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _BytesHandler)
        self.server.daemon_threads = True
        self.server.huge = self.huge
        self.server.uploads = []
        self.uploads = self.server.uploads
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def http_post(port: int, host: str, path: str, body: bytes, timeout: float = 60.0):
    """POST body through the relay; returns (status, reply body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body, headers={
            "Host": host, "Content-Type": "application/octet-stream",
            "Content-Length": str(len(body))})
        reply = conn.getresponse()
        return reply.status, reply.read()
    finally:
        conn.close()


# ---------------------------------------------------------------- a gated TCP proxy

class GateProxy:
    """127.0.0.1:port -> target: accepts at once but forwards nothing until
    open() is called.  Lets a test hold a connector in CONNECTING."""

    def __init__(self, target_port: int):
        self.target_port = target_port
        self.gate = threading.Event()
        self.accepted = threading.Event()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.stopping = threading.Event()
        self.socks = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def open(self):
        self.gate.set()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                client, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.accepted.set()
            self.socks.append(client)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client):
        while not self.gate.wait(0.2):
            if self.stopping.is_set():
                return
        try:
            upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
        except OSError:
            client.close()
            return
        upstream.settimeout(None)
        client.settimeout(None)
        self.socks.append(upstream)
        threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
        self._pipe(client, upstream)

    @staticmethod
    def _pipe(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)  # pass the EOF on
            except OSError:
                pass

    def close(self):
        self.stopping.set()
        self.gate.set()
        self.sock.close()
        for s in list(self.socks):
            try:
                s.close()
            except OSError:
                pass
        self.thread.join(5)


def rss_kib() -> int:
    """This process's resident set size (VmRSS) in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


# ---------------------------------------------------------------- a throwaway PKI

def _openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=str(cwd), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed:\n%s" % (" ".join(args), r.stdout.decode()))


class PKI:
    """A test CA (ca.pem) and relay certificates it signed, made with the openssl CLI
    in directory: cert(label, san) -> (cert path, key path)."""

    def __init__(self, directory: Path):
        if not shutil.which("openssl"):
            raise AssertionError("openssl CLI not found (apt-get install -y openssl)")
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        _openssl(["req", "-x509"] + self.ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
                                              "-subj", "/CN=pagekite Python binding test CA",
                                              "-addext", "basicConstraints=critical,CA:TRUE",
                                              "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
                 self.dir)
        self.ca = self.dir / "ca.pem"

    def cert(self, label: str, san: str, cn: str = RELAY_CERT_NAME):
        """A relay certificate for subjectAltName san (e.g. "DNS:a.test,IP:127.0.0.1")."""
        _openssl(["req"] + self.ec + ["-keyout", label + ".key", "-out", label + ".csr",
                                      "-subj", "/CN=" + cn], self.dir)
        (self.dir / (label + ".ext")).write_text(
            "subjectAltName=%s\nbasicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
            "extendedKeyUsage=serverAuth\n" % san)
        _openssl(["x509", "-req", "-in", label + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-CAcreateserial", "-out", label + ".pem", "-days", "3",
                  "-extfile", label + ".ext"], self.dir)
        return self.dir / (label + ".pem"), self.dir / (label + ".key")


def wait_log(manager, text: str, timeout: float = 15.0) -> str:
    """Wait until a line of manager.log contains text; returns that line."""
    deadline = time.monotonic() + timeout
    while True:
        for line in manager.log:
            if text in line:
                return line
        if time.monotonic() > deadline:
            raise AssertionError("%r not logged within %.0f s\n%s" % (text, timeout, dump(manager)))
        time.sleep(0.05)


def wait_kites_decided(connector, timeout: float = 20.0):
    """Wait (at most timeout s) until no kite of connector is WAITING any
    more: each flies or was refused.  Returns connector.kites()."""
    deadline = time.monotonic() + timeout
    while (any(k.status.name == "WAITING" for k in connector.kites())
           and time.monotonic() < deadline):
        time.sleep(0.01)
    return connector.kites()
