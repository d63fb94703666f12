"""Helpers shared by the tests in tests/python (imported by name: pkpy_helpers)."""

from __future__ import annotations

import functools
import hashlib
import http.client
import http.server
import os
import socket
import threading
import time
from pathlib import Path

DOMAIN = "example.test"
SECRET = "py-binding-secret-0123"
BIG_SIZE = 5 * 1024 * 1024


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
