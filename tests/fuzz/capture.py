#!/usr/bin/env python3
"""capture.py - record real tunnel traffic for the fuzz seed corpora.

Runs, on loopback only, an origin, a relay and a connector with a logging TCP
proxy between connector and relay, sends a few requests through the relay,
and writes what crossed the tunnel into tests/fuzz/corpus/<target>/:

  http_head/  the tunnel handshake heads (both directions)
  classify/   first bytes a relay sees: the handshake, client requests, a
              real TLS ClientHello with SNI (made by Python's ssl module)
  frame/      frame headers as sent ("1a\\r\\n", "40Z2cR\\r\\n", ...)
  chunk/      chunk payloads (inflated when ZChunks was on)
  tunnel/     the chunk stream after the handshake, prefixed with the byte
              fuzz_tunnel.c reads (bit 0: 1 = fed to the relay side)

Pairs: pagekitec->pagekiter, pagekite.py->pagekiter, pagekitec->pagekite.py.

  python3 tests/fuzz/capture.py [--out DIR]
"""
import argparse
import hashlib
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("PK_BUILD_DIR", os.path.join(ROOT, "build"))
PAGEKITE_PY = shutil.which("pagekite") or "/usr/bin/pagekite"
SECRET = "capture-secret-1"
KITE = "cap.example.test"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = (("hello %s " % self.path) * 40).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *a):
        pass


class Recorder:
    """A TCP proxy listen_port -> target_port that keeps every connection's
    bytes per direction (first `limit` bytes each)."""

    def __init__(self, target_port, limit=65536):
        self.target = target_port
        self.limit = limit
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []  # [c2r bytearray, r2c bytearray]
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        self.sock.settimeout(0.2)
        while not self.stop:
            try:
                a, _ = self.sock.accept()
            except OSError:
                continue
            try:
                b = socket.create_connection(("127.0.0.1", self.target), timeout=5)
            except OSError:
                a.close()
                continue
            rec = [bytearray(), bytearray()]
            self.conns.append(rec)
            threading.Thread(target=self._pump, args=(a, b, rec[0]), daemon=True).start()
            threading.Thread(target=self._pump, args=(b, a, rec[1]), daemon=True).start()

    def _pump(self, src, dst, buf):
        src.settimeout(0.5)
        while not self.stop:
            try:
                d = src.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                break
            if not d:
                break
            if len(buf) < self.limit:
                buf += d[: self.limit - len(buf)]
            try:
                dst.sendall(d)
            except OSError:
                break
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self):
        self.stop = True
        self.sock.close()


def http_through(relay_port, method="GET", path="/", body=b"", timeout=2.0):
    s = socket.create_connection(("127.0.0.1", relay_port), timeout=timeout)
    req = ("%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
           % (method, path, KITE, len(body))).encode() + body
    s.sendall(req)
    out = b""
    try:
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
    except socket.timeout:
        pass
    s.close()
    return req, out


def split_head(b):
    i = b.find(b"\r\n\r\n")
    return (b[: i + 4], b[i + 4:]) if i >= 0 else (b, b"")


def frames(stream):
    """Yield (header bytes, payload) for each complete frame, inflating ZChunks."""
    z = None
    pos = 0
    while True:
        e = stream.find(b"\r\n", pos)
        if e < 0 or e - pos > 24:
            return
        hdr = stream[pos:e].decode("latin-1")
        reset = hdr.endswith("R")
        core = hdr[:-1] if reset else hdr
        try:
            if "Z" in core:
                ln, wl = (int(x, 16) for x in core.split("Z"))
            else:
                ln = wl = int(core, 16)
        except ValueError:
            return
        start = e + 2
        if len(stream) < start + wl:
            return
        wire = stream[start:start + wl]
        if "Z" in core:
            if z is None or reset:
                z = zlib.decompressobj()
            try:
                payload = z.decompress(wire)
            except zlib.error:
                return
        else:
            payload = wire
        yield stream[pos:start], payload
        pos = start + wl


class Corpus:
    def __init__(self, out):
        self.out = out
        self.count = {}

    def add(self, target, data, tag, cap=12):
        if not data:
            return
        n = self.count.get((target, tag), 0)
        if n >= cap:
            return
        d = os.path.join(self.out, target)
        os.makedirs(d, exist_ok=True)
        name = "cap-%s-%s" % (tag, hashlib.sha1(data).hexdigest()[:12])
        path = os.path.join(d, name)
        if not os.path.exists(path):
            with open(path, "wb") as f:
                f.write(data)
            self.count[(target, tag)] = n + 1


def start(argv, logdir, name):
    log = open(os.path.join(logdir, name + ".log"), "wb")
    env = dict(os.environ, HOME=logdir, PYTHONUNBUFFERED="1")
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env,
                            stdin=subprocess.DEVNULL)


def relay_argv(kind, port):
    if kind == "pagekiter":
        return [os.path.join(BUILD, "pagekiter"), "--listen=127.0.0.1", "--ports=%d" % port,
                "--domain=http,raw:*.example.test:%s" % SECRET]
    return [PAGEKITE_PY, "--clean", "--nullui", "--nocrashreport", "--logfile=stdio",
            "--isfrontend", "--host=127.0.0.1", "--ports=%d" % port, "--protos=http,raw",
            "--rawports=virtual", "--domain=http,raw:*.example.test:%s" % SECRET]


def connector_argv(kind, fe_port, origin_port):
    if kind == "pagekitec":
        return [os.path.join(BUILD, "pagekitec"), "--frontend", "127.0.0.1:%d" % fe_port,
                "127.0.0.1:%d" % origin_port, "http", KITE, "0", SECRET]
    return [PAGEKITE_PY, "--clean", "--nullui", "--nocrashreport", "--logfile=stdio",
            "--frontend=127.0.0.1:%d" % fe_port,
            "--service_on=http:%s:127.0.0.1:%d:%s" % (KITE, origin_port, SECRET)]


def capture_pair(conn_kind, relay_kind, origin_port, corpus, logdir):
    tag = "%s-%s" % ("c" if conn_kind == "pagekitec" else "py", "r" if relay_kind == "pagekiter" else "py")
    rport = free_port()
    procs = [start(relay_argv(relay_kind, rport), logdir, tag + "-relay")]
    try:
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", rport), timeout=0.3).close()
                break
            except OSError:
                time.sleep(0.1)
        rec = Recorder(rport)
        procs.append(start(connector_argv(conn_kind, rec.port, origin_port), logdir, tag + "-conn"))
        ok = False
        deadline = time.time() + 25
        while time.time() < deadline:
            try:
                _, resp = http_through(rport, path="/probe")
                if resp.startswith(b"HTTP/1.1 200") or resp.startswith(b"HTTP/1.0 200"):
                    ok = True
                    break
            except OSError:
                pass
            time.sleep(0.3)
        if not ok:
            print("%s: kite never served" % tag, file=sys.stderr)
            return False
        for i in range(3):
            req, _ = http_through(rport, path="/page%d?x=%d" % (i, i))
            corpus.add("classify", req, tag + "-client")
        req, _ = http_through(rport, "POST", "/post", b"a=1&b=" + b"z" * 3000)
        corpus.add("classify", req, tag + "-client")
        time.sleep(0.5)
        rec.close()
        for c2r, r2c in rec.conns:
            c2r, r2c = bytes(c2r), bytes(r2c)
            h1, s1 = split_head(c2r)
            h2, s2 = split_head(r2c)
            corpus.add("http_head", b"\x00" + h1, tag + "-hs-req")
            corpus.add("http_head", b"\x00" + h2, tag + "-hs-resp")
            corpus.add("classify", c2r[:4096], tag + "-tunnel")
            # The tunnel target: relay side eats connector bytes, and back.
            corpus.add("tunnel", b"\x01" + s1[:16384], tag + "-to-relay")
            corpus.add("tunnel", b"\x00" + s2[:16384], tag + "-to-conn")
            corpus.add("tunnel", b"\x0b" + s1[:4096], tag + "-to-relay-split")
            for stream, side in ((s1, "c2r"), (s2, "r2c")):
                for hdr, payload in frames(stream):
                    corpus.add("frame", hdr, tag + "-" + side)
                    corpus.add("chunk", payload[:8192], tag + "-" + side)
        return True
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def client_hello(host):
    ctx = ssl.create_default_context()
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=host)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(HERE, "corpus"))
    args = ap.parse_args()
    corpus = Corpus(args.out)
    corpus.add("classify", client_hello("Secure.Example.test"), "tls-clienthello")
    corpus.add("classify", client_hello(".".join(["x" * 60] * 3) + ".example.test"), "tls-clienthello-long")
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    logdir = tempfile.mkdtemp(prefix="pk-capture-")
    results = {}
    for conn_kind, relay_kind in (("pagekitec", "pagekiter"), ("pagekite.py", "pagekiter"),
                                  ("pagekitec", "pagekite.py")):
        results["%s->%s" % (conn_kind, relay_kind)] = capture_pair(
            conn_kind, relay_kind, srv.server_address[1], corpus, logdir)
    srv.shutdown()
    for k, v in results.items():
        print("%-26s %s" % (k, "captured" if v else "FAILED (logs in %s)" % logdir))
    print("files written:", sum(corpus.count.values()))
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
