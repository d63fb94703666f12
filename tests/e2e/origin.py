"""Origin servers for the end-to-end tests (stdlib only).

OriginServer: a threaded HTTP/1.1 server (keep-alive capable) with
    GET  /            small HTML page naming the kite
    GET  /bytes/N     N deterministic bytes (see pattern_bytes), Content-Length
    POST /upload      reads the Content-Length body, answers
                      {"sha256": ..., "len": ...}
    GET  /headers     the request headers as JSON, plus the origin-side
                      connection id (to prove keep-alive end to end)
    GET  /ws          RFC 6455 websocket upgrade, then echoes frames
EchoServer: a raw TCP echo server.

Both bind 127.0.0.1 (port 0 unless a port is given), expose .port, and have
start()/stop(); stop() closes the listener and every open connection, and a
stopped server can be started again on the same port.
"""

import base64
import hashlib
import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PATTERN_SEED = b"pagekite-e2e"
_PIECE = 65536
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC11B65"


def _piece(index):
    return hashlib.shake_128(PATTERN_SEED + index.to_bytes(8, "big")).digest(_PIECE)


def pattern_chunks(n):
    """Yield the deterministic byte stream of length n, in pieces of 64 KiB.

    Every 64 KiB piece is different (SHAKE-128 of the seed and the piece's
    index), so lost, repeated or reordered pieces change the digest."""
    index = 0
    left = n
    while left > 0:
        piece = _piece(index)
        if left < len(piece):
            piece = piece[:left]
        yield piece
        left -= len(piece)
        index += 1


def pattern_bytes(n):
    return b"".join(pattern_chunks(n))


_sha_cache = {}
_sha_lock = threading.Lock()


def pattern_sha256(n):
    """sha256 hex digest of pattern_bytes(n) (cached)."""
    with _sha_lock:
        if n in _sha_cache:
            return _sha_cache[n]
    digest = hashlib.sha256()
    for piece in pattern_chunks(n):
        digest.update(piece)
    value = digest.hexdigest()
    with _sha_lock:
        _sha_cache[n] = value
    return value


# ---- websocket framing (shared with the test clients) ----

def ws_accept_key(key):
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


def ws_read_frame(reader):
    """Read one frame from a buffered binary reader (socket.makefile("rb") or
    the handler's rfile); returns (fin, opcode, payload)."""

    def take(n):
        data = reader.read(n) if n else b""
        if len(data) != n:
            raise ConnectionError("connection closed after %d of %d bytes" % (len(data), n))
        return data

    b1, b2 = take(2)
    fin = bool(b1 & 0x80)
    opcode = b1 & 0x0F
    masked = bool(b2 & 0x80)
    length = b2 & 0x7F
    if length == 126:
        length = struct.unpack("!H", take(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", take(8))[0]
    mask = take(4) if masked else None
    payload = take(length)
    if mask:
        payload = _unmask(payload, mask)
    return fin, opcode, payload


def _unmask(payload, mask):
    key = (mask * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(len(payload), "big")


def ws_frame(opcode, payload, mask=False):
    head = bytearray([0x80 | opcode])
    mbit = 0x80 if mask else 0
    if len(payload) < 126:
        head.append(mbit | len(payload))
    elif len(payload) < 65536:
        head.append(mbit | 126)
        head += struct.pack("!H", len(payload))
    else:
        head.append(mbit | 127)
        head += struct.pack("!Q", len(payload))
    if mask:
        key = hashlib.sha256(payload + bytes(head)).digest()[:4]
        head += key
        payload = _unmask(payload, key)
    return bytes(head) + payload


# ---- HTTP origin ----

class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pk-e2e-origin/1"

    def log_message(self, fmt, *args):  # keep test output quiet
        pass

    def setup(self):
        super().setup()
        self.server.owner._track(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            self.server.owner._untrack(self.connection)

    def _send(self, code, body, ctype="text/plain"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self):
        self.do_GET()

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        owner = self.server.owner
        if path == "/":
            body = ("<!DOCTYPE html>\n<html><head><title>%s</title></head>"
                    "<body><h1>Hello from %s</h1></body></html>\n"
                    % (owner.kite, owner.kite)).encode()
            self._send(200, body, "text/html; charset=utf-8")
        elif path.startswith("/bytes/"):
            try:
                n = int(path[len("/bytes/"):])
            except ValueError:
                self._send(400, b"bad length\n")
                return
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(n))
            self.end_headers()
            if self.command != "HEAD":
                for piece in pattern_chunks(n):
                    self.wfile.write(piece)
        elif path == "/headers":
            headers = {}
            for name, value in self.headers.items():
                key = name.lower()
                headers[key] = headers[key] + ", " + value if key in headers else value
            body = json.dumps({
                "headers": headers,
                "conn_id": owner._conn_id(self.connection),
                "peer": "%s:%d" % self.client_address[:2],
            }).encode()
            self._send(200, body, "application/json")
        elif path == "/ws":
            self._websocket()
        else:
            self._send(404, b"not found\n")

    def do_POST(self):
        path = self.path.split("?", 1)[0]
        if path != "/upload":
            self._send(404, b"not found\n")
            return
        length = int(self.headers.get("Content-Length", "0"))
        digest = hashlib.sha256()
        left = length
        while left > 0:
            data = self.rfile.read(min(left, 262144))
            if not data:
                break
            digest.update(data)
            left -= len(data)
        body = json.dumps({"sha256": digest.hexdigest(), "len": length - left}).encode()
        self._send(200, body, "application/json")

    def _websocket(self):
        key = self.headers.get("Sec-WebSocket-Key")
        if (self.headers.get("Upgrade", "").lower() != "websocket" or not key):
            self._send(400, b"websocket upgrade expected\n")
            return
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", ws_accept_key(key))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        sock = self.connection
        try:
            while True:
                _fin, opcode, payload = ws_read_frame(self.rfile)
                if opcode == 0x8:  # close
                    sock.sendall(ws_frame(0x8, payload[:2]))
                    return
                if opcode == 0x9:  # ping
                    sock.sendall(ws_frame(0xA, payload))
                    continue
                if opcode in (0x1, 0x2, 0x0):
                    sock.sendall(ws_frame(opcode, payload))
        except (ConnectionError, OSError):
            return


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256


class OriginServer:
    def __init__(self, kite="demo.example.test", port=0):
        self.kite = kite
        self.port = port
        self._lock = threading.Lock()
        self._conns = {}
        self._next_id = 0
        self._server = None
        self._thread = None

    def _track(self, sock):
        with self._lock:
            self._next_id += 1
            self._conns[sock] = self._next_id

    def _untrack(self, sock):
        with self._lock:
            self._conns.pop(sock, None)

    def _conn_id(self, sock):
        with self._lock:
            return self._conns.get(sock)

    def start(self):
        if self._server is not None:
            return self
        server = _HTTPServer(("127.0.0.1", self.port), _Handler)
        server.owner = self
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.1},
                                        name="origin-%d" % self.port, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns = list(self._conns)
            self._conns.clear()
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            try:
                sock.close()
            except OSError:
                pass
        self._thread.join(timeout=5)

    @property
    def running(self):
        return self._server is not None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


# ---- raw TCP echo ----

class EchoServer:
    def __init__(self, port=0):
        self.port = port
        self._lock = threading.Lock()
        self._conns = set()
        self._listener = None
        self._thread = None

    def start(self):
        if self._listener is not None:
            return self
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        lsock.bind(("127.0.0.1", self.port))
        lsock.listen(128)
        self.port = lsock.getsockname()[1]
        self._listener = lsock
        self._thread = threading.Thread(target=self._accept_loop, args=(lsock,),
                                        name="echo-%d" % self.port, daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self, lsock):
        while True:
            try:
                conn, _addr = lsock.accept()
            except OSError:
                return
            with self._lock:
                if self._listener is not lsock:
                    conn.close()
                    return
                self._conns.add(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                conn.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                self._conns.discard(conn)
            try:
                conn.close()
            except OSError:
                pass

    def stop(self):
        with self._lock:
            lsock, self._listener = self._listener, None
            conns = list(self._conns)
            self._conns.clear()
        if lsock is None:
            return
        try:
            lsock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        lsock.close()
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            conn.close()
        self._thread.join(timeout=5)

    @property
    def running(self):
        return self._listener is not None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
