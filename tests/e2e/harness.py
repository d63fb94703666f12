"""Helpers for the end-to-end tests: processes, relays, connectors, clients.

Everything runs on 127.0.0.1.  Every wait is bounded; failures raise
AssertionError with the relevant log tails, never hang.
"""

import atexit
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from origin import EchoServer, OriginServer, pattern_chunks, pattern_sha256, ws_accept_key, \
    ws_frame, ws_read_frame

BUILD_DIR = Path(os.environ.get("PK_BUILD_DIR", "/work/main/build"))
PAGEKITEC = BUILD_DIR / "pagekitec"
PAGEKITER = BUILD_DIR / "pagekiter"
LIBPAGEKITE = BUILD_DIR / "libpagekite.so.1"
PAGEKITE_PY = shutil.which("pagekite") or "/usr/bin/pagekite"

DOMAIN = "example.test"
SECRET = "e2e-secret-0123456789"
WRONG_SECRET = "not-the-right-secret"
VERBOSE = os.environ.get("PK_E2E_VERBOSE", "") not in ("", "0")
SKIP_MISSING = os.environ.get("PK_E2E_SKIP_MISSING", "") not in ("", "0")

STATUS_RE = re.compile(r"^status: ([A-Z_]+)\s*$", re.M)


# ---------------------------------------------------------------- basics

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port, host="127.0.0.1", timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def listening_inodes(port):
    """Socket inodes listening on TCP port (any address), from /proc/net."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 9 and parts[3] == "0A" and \
                            int(parts[1].rsplit(":", 1)[1], 16) == port:
                        inodes.add(parts[9])
        except (OSError, ValueError, StopIteration):
            continue
    return inodes


def pid_listens_on(pid, port):
    """True if process pid holds a socket listening on port (None if unknown)."""
    inodes = listening_inodes(port)
    if not inodes:
        return False
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return None
    for fd in fds:
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False


def require_executable(path, what):
    """Fail (or skip with PK_E2E_SKIP_MISSING=1) when a binary is missing."""
    path = str(path)
    if os.path.isfile(path) and os.access(path, os.X_OK):
        return path
    msg = "%s not found or not executable at %s" % (what, path)
    if "pagekite.py" in what:
        msg += " (apt-get install -y pagekite)"
    else:
        msg += " (build first: cmake -S /work/main -B %s && cmake --build %s; " \
               "or set PK_BUILD_DIR)" % (BUILD_DIR, BUILD_DIR)
    if SKIP_MISSING:
        pytest.skip(msg)
    pytest.fail(msg, pytrace=False)


def require_file(path, what):
    path = str(path)
    if os.path.isfile(path):
        return path
    msg = "%s not found at %s (build first, or set PK_BUILD_DIR)" % (what, path)
    if SKIP_MISSING:
        pytest.skip(msg)
    pytest.fail(msg, pytrace=False)


def kite_name(label):
    return "%s.%s" % (label, DOMAIN)


# ---------------------------------------------------------------- measurements

MEASUREMENTS = []   # (test-ish label, text), printed in the terminal summary


def record(label, text):
    """Note a measurement (speed, recovery time) for the end-of-run summary."""
    MEASUREMENTS.append((label, text))
    print("%s: %s" % (label, text))


# ---------------------------------------------------------------- processes

LIVE = []          # Procs started and not yet stopped (for failure reports)
_LIVE_LOCK = threading.Lock()


class Proc:
    """A subprocess with stdout/stderr captured to files in logdir."""

    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        logdir = Path(logdir)
        logdir.mkdir(parents=True, exist_ok=True)
        n = 0
        while True:
            suffix = "" if n == 0 else ".%d" % n
            out = logdir / ("%s%s.out" % (name, suffix))
            if not out.exists():
                break
            n += 1
        self.out_path = out
        self.err_path = logdir / ("%s%s.err" % (name, suffix))
        full_env = dict(os.environ)
        full_env.update(env or {})
        self._out = open(self.out_path, "wb")
        self._err = open(self.err_path, "wb")
        self._out.write(("# " + " ".join(self.argv) + "\n").encode())
        self._out.flush()
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                      stderr=self._err, env=full_env, cwd=str(logdir))
        self.pid = self.popen.pid
        self.returncode = None
        with _LIVE_LOCK:
            LIVE.append(self)

    # -- output
    def stdout(self):
        try:
            return self.out_path.read_text(errors="replace")
        except OSError:
            return ""

    def stderr(self):
        try:
            return self.err_path.read_text(errors="replace")
        except OSError:
            return ""

    def output(self):
        return self.stdout() + self.stderr()

    def statuses(self):
        return STATUS_RE.findall(self.stdout())

    def tail(self, lines=40):
        def last(text):
            return "\n".join(text.splitlines()[-lines:])
        return ("---- %s (pid %d, rc %s) %s\n---- stdout (%s):\n%s\n---- stderr (%s):\n%s\n"
                % (self.name, self.pid, self.popen.poll(), " ".join(self.argv),
                   self.out_path, last(self.stdout()), self.err_path, last(self.stderr())))

    @property
    def alive(self):
        return self.popen.poll() is None

    def wait_for(self, pattern, timeout, where="both", what=None):
        """Wait until regex pattern (multiline) appears in the output."""
        rx = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while True:
            text = self.stdout() if where == "out" else (
                self.stderr() if where == "err" else self.output())
            m = rx.search(text)
            if m:
                return m
            if not self.alive:
                # One last read: the process may have written before exiting.
                text = self.output()
                m = rx.search(text)
                if m:
                    return m
                raise AssertionError("%s exited (rc %s) before %s appeared\n%s"
                                     % (self.name, self.popen.poll(), what or repr(pattern),
                                        self.tail()))
            if time.monotonic() > deadline:
                raise AssertionError("%s: %s did not appear within %.0f s\n%s"
                                     % (self.name, what or repr(pattern), timeout, self.tail()))
            time.sleep(0.05)

    def wait_status(self, names, timeout):
        """Wait for a "status: NAME" line with NAME in names; return NAME."""
        if isinstance(names, str):
            names = [names]
        pattern = r"^status: (%s)\s*$" % "|".join(names)
        return self.wait_for(pattern, timeout, where="out",
                             what="status %s" % "/".join(names)).group(1)

    def stop(self, timeout=5.0, sig=signal.SIGTERM):
        """Signal by PID, wait, kill on timeout.  Returns the exit code."""
        if self.popen.poll() is None:
            try:
                self.popen.send_signal(sig)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(5)
        self.returncode = self.popen.returncode
        for f in (self._out, self._err):
            try:
                f.close()
            except OSError:
                pass
        with _LIVE_LOCK:
            if self in LIVE:
                LIVE.remove(self)
        return self.returncode

    def kill(self):
        return self.stop(timeout=5.0, sig=signal.SIGKILL)


def _kill_leftovers():
    with _LIVE_LOCK:
        procs = list(LIVE)
    for p in procs:
        try:
            p.kill()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


atexit.register(_kill_leftovers)


def live_logs():
    with _LIVE_LOCK:
        procs = list(LIVE)
    return "\n".join(p.tail(60) for p in procs)


# ---------------------------------------------------------------- relays

class PortTaken(AssertionError):
    pass


class Relay:
    """Base: a relay process on 127.0.0.1:port; start()/stop() keep the port."""
    kind = "relay"

    def __init__(self, logdir, port=None):
        self.logdir = logdir
        self.auto_port = not port
        self.port = port or free_port()
        self.proc = None

    def argv(self):
        raise NotImplementedError

    def start(self, timeout=20.0):
        """Start and wait until this process listens on the port.

        A port picked by free_port() may be taken by someone else before the
        relay binds it: then (and only then) retry on a new port."""
        for attempt in range(3):
            try:
                return self._start_once(timeout)
            except PortTaken:
                if not self.auto_port or attempt == 2:
                    raise
                self.port = free_port()
        return self

    def _start_once(self, timeout):
        self.proc = Proc(self.kind, self.argv(), self.logdir, env=self.env())
        deadline = time.monotonic() + timeout
        while True:
            if port_accepts(self.port):
                owner = pid_listens_on(self.proc.pid, self.port)
                if owner or owner is None:
                    return self
                if not self.proc.alive:
                    raise PortTaken("port %d is taken by another process" % self.port)
            if not self.proc.alive:
                raise AssertionError("%s exited (rc %s) before accepting on port %d\n%s"
                                     % (self.kind, self.proc.popen.poll(), self.port,
                                        self.proc.tail()))
            if time.monotonic() > deadline:
                self.proc.stop()
                raise AssertionError("%s not listening on port %d after %.0f s\n%s"
                                     % (self.kind, self.port, timeout, self.proc.tail()))
            time.sleep(0.05)

    def env(self):
        return {}

    def stop(self):
        if self.proc is not None:
            return self.proc.stop()
        return None

    def kill(self):
        if self.proc is not None:
            return self.proc.kill()
        return None

    @property
    def frontend(self):
        return "127.0.0.1:%d" % self.port


class PkRelay(Relay):
    """Debian's pagekite.py as relay (frontend)."""
    kind = "pk-relay"

    def __init__(self, logdir, port=None, secret=SECRET, pattern="*." + DOMAIN):
        super().__init__(logdir, port)
        require_executable(PAGEKITE_PY, "pagekite.py (Debian package pagekite)")
        self.secret = secret
        self.pattern = pattern

    def argv(self):
        return [PAGEKITE_PY, "--clean", "--nullui", "--nocrashreport", "--logfile=stdio",
                "--isfrontend", "--host=127.0.0.1", "--ports=%d" % self.port,
                "--protos=http,https,raw", "--rawports=virtual",
                "--domain=http,https,raw:%s:%s" % (self.pattern, self.secret)]

    def env(self):
        return {"HOME": str(self.logdir), "PYTHONUNBUFFERED": "1"}


class OurRelay(Relay):
    """Our pagekiter."""
    kind = "pagekiter"

    def __init__(self, logdir, port=None, secret=SECRET, pattern="*." + DOMAIN,
                 tls_cert=None, tls_key=None, extra_args=()):
        super().__init__(logdir, port)
        require_executable(PAGEKITER, "pagekiter")
        self.secret = secret
        self.pattern = pattern
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.extra_args = list(extra_args)

    def argv(self):
        argv = [PAGEKITER, "--ports=%d" % self.port, "--listen=127.0.0.1",
                "--protos=http,https,raw,websocket",
                "--domain=http,https,raw,websocket:%s:%s" % (self.pattern, self.secret)]
        if self.tls_cert:
            argv += ["--tls-cert=%s" % self.tls_cert, "--tls-key=%s" % self.tls_key]
        return argv + self.extra_args


# ---------------------------------------------------------------- connectors

class Kite:
    """One kite: proto on name (public port pport) -> 127.0.0.1:lport."""

    def __init__(self, proto, name, lport, pport=0, secret=SECRET):
        self.proto = proto
        self.name = name
        self.lport = lport
        self.pport = pport
        self.secret = secret

    def __repr__(self):
        return "Kite(%s:%s:%s -> %s)" % (self.proto, self.name, self.pport, self.lport)


class Connector:
    kind = "connector"

    def __init__(self, logdir, frontend, kites):
        self.logdir = logdir
        self.frontend = frontend
        self.kites = list(kites)
        self.proc = None

    def argv(self):
        raise NotImplementedError

    def env(self):
        return {}

    def start(self):
        self.proc = Proc(self.kind, self.argv(), self.logdir, env=self.env())
        return self

    def stop(self):
        return self.proc.stop() if self.proc else None

    def relay_port(self):
        return int(self.frontend.rsplit(":", 1)[1])

    def wait_serving(self, timeout=20.0, kite=None):
        """Wait until the (first http or given) kite answers 200 via the relay."""
        kite = kite or next(k for k in self.kites if k.proto.startswith("http"))
        try:
            return wait_http(kite.name, self.relay_port(), "/", timeout)
        except AssertionError as e:
            raise AssertionError("%s\nconnector statuses so far: %s\n%s"
                                 % (e, self.proc.statuses(), self.proc.tail())) from None

    def wait_raw_serving(self, kite, timeout=20.0):
        try:
            return wait_raw(kite.name, self.relay_port(), kite.pport, timeout)
        except AssertionError as e:
            raise AssertionError("%s\nconnector statuses so far: %s\n%s"
                                 % (e, self.proc.statuses(), self.proc.tail())) from None


class OurConnector(Connector):
    kind = "pagekitec"

    def __init__(self, logdir, frontend, kites, extra_args=()):
        super().__init__(logdir, frontend, kites)
        require_executable(PAGEKITEC, "pagekitec")
        self.extra_args = list(extra_args)

    def argv(self):
        argv = [PAGEKITEC, "--frontend", self.frontend]
        if VERBOSE:
            argv.append("-v")
        argv += self.extra_args
        for k in self.kites:
            argv += ["127.0.0.1:%d" % k.lport, k.proto, k.name, str(k.pport), k.secret]
        return argv


class PkConnector(Connector):
    kind = "pk-connector"

    def __init__(self, logdir, frontend, kites, extra_args=()):
        super().__init__(logdir, frontend, kites)
        require_executable(PAGEKITE_PY, "pagekite.py (Debian package pagekite)")
        self.extra_args = list(extra_args)

    def argv(self):
        argv = [PAGEKITE_PY, "--clean", "--nullui", "--nocrashreport", "--logfile=stdio",
                "--frontend=%s" % self.frontend] + self.extra_args
        for k in self.kites:
            proto = k.proto
            if proto == "raw":
                proto = "raw-%d" % k.pport
            argv.append("--service_on=%s:%s:127.0.0.1:%d:%s"
                        % (proto, k.name, k.lport, k.secret))
        return argv

    def env(self):
        return {"HOME": str(self.logdir), "PYTHONUNBUFFERED": "1"}


# ---------------------------------------------------------------- groups

class Group:
    """Owns servers and processes; close() stops them in reverse order."""

    def __init__(self, logdir):
        self.logdir = Path(logdir)
        self.items = []

    def add(self, item):
        self.items.append(item)
        return item

    def origin(self, kite="demo." + DOMAIN):
        return self.add(OriginServer(kite).start())

    def echo(self):
        return self.add(EchoServer().start())

    def pk_relay(self, **kw):
        relay = self.add(PkRelay(self.logdir, **kw))
        return relay.start()

    def our_relay(self, **kw):
        relay = self.add(OurRelay(self.logdir, **kw))
        return relay.start()

    def our_connector(self, frontend, kites, extra_args=()):
        if isinstance(frontend, Relay):
            frontend = frontend.frontend
        return self.add(OurConnector(self.logdir, frontend, kites, extra_args)).start()

    def pk_connector(self, frontend, kites, extra_args=()):
        if isinstance(frontend, Relay):
            frontend = frontend.frontend
        return self.add(PkConnector(self.logdir, frontend, kites, extra_args)).start()

    def close(self):
        errors = []
        for item in reversed(self.items):
            try:
                item.stop()
            except Exception as e:  # noqa: BLE001 - keep closing the rest
                errors.append("%r: %s" % (item, e))
        self.items.clear()
        return errors


# ------------------------------------------------------- tunnel requests

def tunnel_request_head(port, lines, features=(), version="1.5.2", timeout=15.0):
    """Sends one tunnel request (CONNECT PageKite:1, an X-PageKite line each
    of `lines`, an X-PageKite-Features line each of `features`) and returns
    what the relay sent up to the end of its head, decoded (latin-1)."""
    req = "CONNECT PageKite:1 HTTP/1.0\r\n"
    if version:
        req += "X-PageKite-Version: %s\r\n" % version
    req += "".join("X-PageKite-Features: %s\r\n" % f for f in features)
    req += "".join("X-PageKite: %s\r\n" % line for line in lines) + "\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(req.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
    return data.decode("latin-1")


# ---------------------------------------------------------------- HTTP client

def http_request(port, host, method="GET", path="/", body=None, headers=None, timeout=30.0):
    """One request to 127.0.0.1:port with Host: host; returns (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        hdrs = {"Host": host}
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, dict(resp.getheaders()), data
    finally:
        conn.close()


def wait_http(url_host, port, path="/", timeout=20.0, expect=200):
    """Poll http://127.0.0.1:port/path with Host: url_host until status expect.

    Returns (status, body); raises AssertionError with the last result."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            status, _h, body = http_request(port, url_host, "GET", path, timeout=5.0)
            if status == expect:
                return status, body
            last = "HTTP %d: %r" % (status, body[:200])
        except (OSError, http.client.HTTPException) as e:
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() > deadline:
            raise AssertionError("http://%s%s via 127.0.0.1:%d did not answer %d within %.0f s;"
                                 " last: %s" % (url_host, path, port, expect, timeout, last))
        time.sleep(0.2)


def wait_not_served(url_host, port, path="/", timeout=10.0):
    """Poll until the kite no longer answers 200 (connection errors count)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status = http_request(port, url_host, "GET", path, timeout=5.0)[0]
        except (OSError, http.client.HTTPException):
            return None
        if status != 200:
            return status
        if time.monotonic() > deadline:
            raise AssertionError("http://%s%s via 127.0.0.1:%d still answers 200 after %.0f s"
                                 % (url_host, path, port, timeout))
        time.sleep(0.2)


def download_sha256(port, host, n, timeout=120.0):
    """GET /bytes/n; returns (status, bytes received, sha256 hex)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30.0)
    deadline = time.monotonic() + timeout
    try:
        conn.request("GET", "/bytes/%d" % n, headers={"Host": host})
        resp = conn.getresponse()
        digest = hashlib.sha256()
        got = 0
        while True:
            if time.monotonic() > deadline:
                raise AssertionError("download of %d bytes: only %d after %.0f s"
                                     % (n, got, timeout))
            data = resp.read(262144)
            if not data:
                break
            digest.update(data)
            got += len(data)
        return resp.status, got, digest.hexdigest()
    finally:
        conn.close()


def upload_sha256(port, host, n, timeout=120.0):
    """POST n pattern bytes to /upload; returns (status, answer dict)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/upload", body=pattern_chunks(n),
                     headers={"Host": host, "Content-Length": str(n),
                              "Content-Type": "application/octet-stream"})
        resp = conn.getresponse()
        data = resp.read()
        try:
            answer = json.loads(data)
        except ValueError:
            answer = {"raw": data[:300]}
        return resp.status, answer
    finally:
        conn.close()


def keepalive_headers(port, host, count=3, timeout=15.0):
    """count GET /headers on one client connection; returns the JSON answers."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    answers = []
    try:
        for _ in range(count):
            conn.request("GET", "/headers", headers={"Host": host})
            resp = conn.getresponse()
            data = resp.read()
            assert resp.status == 200, "GET /headers: HTTP %d %r" % (resp.status, data[:200])
            answers.append(json.loads(data))
    finally:
        conn.close()
    return answers


def concurrent_gets(port, host, count, workers, size=1000, timeout=60.0):
    """count GET /bytes/size with a thread pool; returns list of error strings."""
    from concurrent.futures import ThreadPoolExecutor
    want = pattern_sha256(size)

    def one(i):
        try:
            status, _h, body = http_request(port, host, "GET", "/bytes/%d" % size,
                                            timeout=timeout)
        except (OSError, http.client.HTTPException) as e:
            return "#%d: %s: %s" % (i, type(e).__name__, e)
        if status != 200:
            return "#%d: HTTP %d %r" % (i, status, body[:100])
        if hashlib.sha256(body).hexdigest() != want or len(body) != size:
            return "#%d: wrong body (%d bytes)" % (i, len(body))
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(one, range(count), timeout=timeout + 30))
    return [r for r in results if r]


# ---------------------------------------------------------------- websocket

def websocket_echo(port, host, messages, timeout=15.0):
    """Upgrade GET /ws via the relay, send text frames, return the echoes."""
    key = "dGhlIHNhbXBsZSBub25jZQ=="
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        req = ("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (host, key))
        sock.sendall(req.encode())
        reader = sock.makefile("rb")
        status_line = reader.readline().decode(errors="replace").strip()
        headers = {}
        while True:
            line = reader.readline()
            if not line:
                raise AssertionError("websocket: connection closed during handshake "
                                     "(status %r)" % status_line)
            line = line.decode(errors="replace").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        assert " 101 " in status_line + " ", "websocket: expected 101, got %r" % status_line
        assert headers.get("sec-websocket-accept") == ws_accept_key(key), \
            "websocket: bad Sec-WebSocket-Accept %r" % headers.get("sec-websocket-accept")
        echoes = []
        for msg in messages:
            sock.sendall(ws_frame(0x1, msg.encode(), mask=True))
            _fin, opcode, payload = ws_read_frame(reader)
            assert opcode == 0x1, "websocket: expected text frame, got opcode %d" % opcode
            echoes.append(payload.decode())
        sock.sendall(ws_frame(0x8, b"\x03\xe8", mask=True))
        _fin, opcode, _payload = ws_read_frame(reader)
        assert opcode == 0x8, "websocket: expected close frame, got opcode %d" % opcode
        return echoes
    finally:
        sock.close()


# ---------------------------------------------------------------- raw kites

def raw_connect(port, kite, pport, timeout=10.0):
    """CONNECT kite:pport through the relay; returns (sock, status line, leftover)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        sock.sendall(("CONNECT %s:%d HTTP/1.1\r\nHost: %s:%d\r\n\r\n"
                      % (kite, pport, kite, pport)).encode())
        buf = b""
        while b"\r\n\r\n" not in buf:
            data = sock.recv(4096)
            if not data:
                break
            buf += data
            if len(buf) > 65536:
                break
        head, _, rest = buf.partition(b"\r\n\r\n")
        status_line = head.split(b"\r\n", 1)[0].decode(errors="replace")
        return sock, status_line, rest
    except BaseException:
        sock.close()
        raise


def raw_echo(port, kite, pport, payload, timeout=10.0):
    """CONNECT and send payload; returns what came back (len(payload) bytes)."""
    sock, status_line, rest = raw_connect(port, kite, pport, timeout)
    try:
        parts = status_line.split()
        if len(parts) < 2 or parts[1] != "200":
            raise AssertionError("CONNECT %s:%d answered %r" % (kite, pport, status_line))
        sock.sendall(payload)
        got = bytearray(rest)
        deadline = time.monotonic() + timeout
        while len(got) < len(payload):
            if time.monotonic() > deadline:
                break
            try:
                data = sock.recv(65536)
            except socket.timeout:
                break
            if not data:
                break
            got += data
        return bytes(got)
    finally:
        sock.close()


def wait_raw(kite, port, pport, timeout=20.0):
    """Poll a raw kite with a small echo until it works."""
    deadline = time.monotonic() + timeout
    probe = b"raw-probe-\x00\x01\x02"
    last = None
    while True:
        try:
            got = raw_echo(port, kite, pport, probe, timeout=3.0)
            if got == probe:
                return True
            last = "echoed %r" % got[:60]
        except (OSError, AssertionError) as e:
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() > deadline:
            raise AssertionError("raw kite %s:%d via 127.0.0.1:%d not echoing within %.0f s;"
                                 " last: %s" % (kite, pport, port, timeout, last))
        time.sleep(0.25)


# ---------------------------------------------------------------- TLS

def _openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=str(cwd), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    if r.returncode != 0:
        raise AssertionError("openssl %s failed:\n%s" % (" ".join(args), r.stdout.decode()))


class TestPKI:
    """A test CA, a relay cert it signed (relay.example.test + 127.0.0.1) and a
    self-signed cert for the same names that nobody trusts."""
    __test__ = False

    def __init__(self, directory):
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        if not shutil.which("openssl"):
            pytest.fail("openssl CLI not found (apt-get install -y openssl)", pytrace=False)
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        san = "subjectAltName=DNS:relay.example.test,IP:127.0.0.1"
        _openssl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
                                         "-subj", "/CN=PageKite E2E Test CA",
                                         "-addext", "basicConstraints=critical,CA:TRUE",
                                         "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
        _openssl(["req"] + ec + ["-keyout", "relay.key", "-out", "relay.csr",
                                 "-subj", "/CN=relay.example.test"], d)
        (d / "relay.ext").write_text(san + "\nbasicConstraints=CA:FALSE\n"
                                     "keyUsage=critical,digitalSignature\n"
                                     "extendedKeyUsage=serverAuth\n")
        _openssl(["x509", "-req", "-in", "relay.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-CAcreateserial", "-out", "relay.pem", "-days", "3",
                  "-extfile", "relay.ext"], d)
        _openssl(["req", "-x509"] + ec + ["-keyout", "self.key", "-out", "self.pem",
                                         "-days", "3", "-subj", "/CN=relay.example.test",
                                         "-addext", san], d)
        self.dir = d
        self.ca = d / "ca.pem"
        self.relay_cert = d / "relay.pem"
        self.relay_key = d / "relay.key"
        self.self_cert = d / "self.pem"
        self.self_key = d / "self.key"
