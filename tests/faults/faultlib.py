"""faultlib - shared helpers for the fault-injection tests (loopback only, bounded).

Every test starts its own processes (pagekiter, pagekitec) and in-process
servers; everything is stopped at the end of the test.  Nothing talks to an
address outside 127.0.0.0/8, and name lookups that must fail use a label
longer than 63 bytes, which the C library refuses without sending a query.
"""
import os
import pty
import re
import select
import signal
import socket
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("PK_BUILD_DIR", os.path.join(ROOT, "build"))
PAGEKITEC = os.path.join(BUILD, "pagekitec")
PAGEKITER = os.path.join(BUILD, "pagekiter")
SECRET = "fault-secret-7"
KITE = "f.example.test"

HAVE_TOOLS = os.access(PAGEKITEC, os.X_OK) and os.access(PAGEKITER, os.X_OK)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait_until(pred, timeout, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ------------------------------------------------------------------ origin

class Origin:
    """A tiny origin with scripted behaviour per path:
      /ok          200, short body
      /big?n=N     200, N bytes of a known pattern, sent in 16 KiB pieces with
                   a small pause (so a transfer is in flight for a while)
      /reset       200 with Content-Length 200000, 20000 bytes, then RST
      /hang        reads the request and never answers (until the test ends)
    """

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.stop = threading.Event()
        self.held = []
        self.requests = 0
        threading.Thread(target=self._accept, daemon=True).start()

    @staticmethod
    def pattern(n):
        block = bytes(range(256)) * 64
        return (block * (n // len(block) + 1))[:n]

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
            c.settimeout(10)
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    d = c.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                self.requests += 1
                path = head.split(b" ")[1].decode()
                if not self._answer(c, path):
                    return
                if b"connection: close" in head.lower():
                    return
        except OSError:
            pass
        finally:
            if c not in self.held:
                c.close()

    def _answer(self, c, path):
        if path.startswith("/ok"):
            body = b"ok " + path.encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
            return True
        if path.startswith("/big"):
            n = int(path.split("n=")[1]) if "n=" in path else 4 << 20
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % n)
            data = self.pattern(n)
            for i in range(0, n, 16384):
                if self.stop.is_set():
                    return False
                c.sendall(data[i:i + 16384])
                time.sleep(0.002)
            return True
        if path.startswith("/reset"):
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n" + self.pattern(20000))
            time.sleep(0.2)
            rst(c)
            return False
        if path.startswith("/hang"):
            self.held.append(c)
            self.stop.wait(60)
            return False
        c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        return True

    def close(self):
        self.stop.set()
        self.sock.close()
        for c in self.held:
            try:
                c.close()
            except OSError:
                pass


def rst(sock):
    """Close with SO_LINGER 0: the peer gets a TCP RST.  SHUT_RD first wakes
    a thread blocked in recv() on it (Linux keeps the socket alive, and sends
    nothing, until that call returns)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        try:
            sock.shutdown(socket.SHUT_RD)
        except OSError:
            pass
        sock.close()
    except OSError:
        pass


# ------------------------------------------------------------------ processes

class Proc:
    """A subprocess whose stdout+stderr go to a log file (or a pty)."""

    def __init__(self, argv, logpath, use_pty=False):
        self.argv = [str(a) for a in argv]
        self.logpath = logpath
        self.master = None
        self.ptybuf = b""
        self.log = open(logpath, "wb")
        if use_pty:
            # stdout on a terminal: the tool keeps its live status line there.
            self.master, slave = pty.openpty()
            self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=slave,
                                      stderr=self.log, start_new_session=True)
            os.close(slave)
        else:
            self.p = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                      stderr=subprocess.STDOUT, start_new_session=True)

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p.poll() is None

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.logpath, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return text + self.pty_text()

    def pty_text(self):
        if self.master is None:
            return ""
        while True:
            r, _, _ = select.select([self.master], [], [], 0)
            if not r:
                break
            try:
                d = os.read(self.master, 65536)
            except OSError:
                break
            if not d:
                break
            self.ptybuf += d
        return self.ptybuf.decode("utf-8", "replace")

    def status_line(self):
        """Last live status line (pty mode): FLYING | kites 1 | ... | streams N ..."""
        lines = re.split(r"[\r\n]", self.pty_text())
        for ln in reversed(lines):
            if "streams" in ln:
                return ln
        return ""

    def streams(self):
        m = re.search(r"streams (\d+)", self.status_line())
        return int(m.group(1)) if m else None

    def statuses(self):
        return re.findall(r"status: (\w+)", self.output())

    def kill(self, sig=signal.SIGKILL):
        if self.alive():
            self.p.send_signal(sig)
        try:
            self.p.wait(5)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait(5)

    def stop(self):
        if self.log.closed:
            return self.p.returncode
        if self.alive():
            self.p.terminate()
            try:
                self.p.wait(5)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        if self.master is not None:
            self.pty_text()
            os.close(self.master)
            self.master = None
        self.log.close()
        return self.p.returncode


class Procs:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.items = []
        self.n = 0

    def start(self, name, argv, use_pty=False):
        self.n += 1
        p = Proc(argv, self.tmp / ("%02d-%s.log" % (self.n, name)), use_pty=use_pty)
        self.items.append(p)
        return p

    def relay(self, port, extra=(), secret=SECRET):
        return self.start("pagekiter", [PAGEKITER, "--listen=127.0.0.1", "--ports=%d" % port,
                                        "--domain=http,raw:*.example.test:%s" % secret]
                          + list(extra))

    def connector(self, fe_port, origin_port, extra=(), use_pty=False, secret=SECRET,
                  frontend=None):
        fe = frontend or "127.0.0.1:%d" % fe_port
        return self.start("pagekitec", [PAGEKITEC, "--frontend", fe] + list(extra)
                          + ["127.0.0.1:%d" % origin_port, "http", KITE, "0", secret],
                          use_pty=use_pty)

    def close(self):
        for p in reversed(self.items):
            p.stop()


def wait_port(port, timeout=5.0):
    def ok():
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            return False
    return wait_until(ok, timeout, 0.02)


# ------------------------------------------------------------------ clients

def http_get(port, path, timeout=5.0, host=KITE):
    """GET through the relay.  Returns (status, headers dict, body, error) where
    error is None when the connection ended cleanly after the body."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (path, host)).encode())
        buf = b""
        err = None
        try:
            while True:
                d = s.recv(262144)
                if not d:
                    break
                buf += d
                if _complete(buf):
                    break
        except OSError as e:
            err = e
    finally:
        s.close()
    if b"\r\n\r\n" not in buf:
        return None, {}, buf, err or "no head"
    head, body = buf.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    return status, hdrs, body, err


def _complete(buf):
    """True once a head with Content-Length and that many body bytes is in."""
    if b"\r\n\r\n" not in buf:
        return False
    head, body = buf.split(b"\r\n\r\n", 1)
    for ln in head.split(b"\r\n")[1:]:
        k, _, v = ln.partition(b":")
        if k.strip().lower() == b"content-length":
            return len(body) >= int(v.strip())
    return False


def serving(port, timeout=15.0, path="/ok"):
    """Wait until GET path through the relay answers 200 with the origin's body."""
    def ok():
        try:
            st, _, body, _ = http_get(port, path, timeout=2.0)
            return st == 200 and body.startswith(b"ok ")
        except OSError:
            return False
    return wait_until(ok, timeout, 0.05)
