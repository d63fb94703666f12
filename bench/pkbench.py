"""Building blocks for bench/run.py: origin, processes, setups and clients.

Everything binds or connects to 127.0.0.1 only.  Every loop is bounded by a
count and a deadline; a process that does not come up raises BenchError with
the tail of its log.
"""

import asyncio
import hashlib
import os
import re
import resource
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_DIR = Path(os.environ.get("PK_BUILD_DIR", HERE.parent / "build"))
PAGEKITEC = BUILD_DIR / "pagekitec"
PAGEKITER = BUILD_DIR / "pagekiter"
PAGEKITE_PY = shutil.which("pagekite") or "/usr/bin/pagekite"

DOMAIN = "example.test"
KITE = "bench." + DOMAIN
SECRET = "bench-secret-0123456789abcdef"

# The body pattern: PAT repeated; its odd period is aligned to no buffer size,
# so a lost, repeated or shifted piece changes the sha256.
PERIOD = (1 << 20) + 4099
PAT = hashlib.shake_128(b"pagekite-bench").digest(PERIOD)
PATX = PAT + PAT[:1 << 20]          # any slice of <= 1 MiB is contiguous here
PATX_MV = memoryview(PATX)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    pass


_sha_cache = {}


def pattern_sha256(n):
    """sha256 hex of the first n bytes of the pattern stream."""
    if n not in _sha_cache:
        h = hashlib.sha256()
        left = n
        while left > 0:
            k = min(left, PERIOD)
            h.update(PAT[:k])
            left -= k
        _sha_cache[n] = h.hexdigest()
    return _sha_cache[n]


def pattern_prefix(n):
    """The first n bytes of the pattern stream (n <= PERIOD)."""
    return PAT[:n]


def raise_nofile():
    """Raise RLIMIT_NOFILE to the hard limit (children inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_accepts(port, timeout=0.5):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------- /proc

def proc_cpu_seconds(pid):
    """user + sys CPU seconds of a process (all its threads)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()
    # fields[0] is field 3 (state); utime is field 14, stime field 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_mem_kib(pid):
    """{'VmHWM': kB, 'VmRSS': kB} of a process."""
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    out[key] = int(rest.split()[0])
    except OSError:
        pass
    return out


def default_max_conns(exe):
    """The default of -c, as `exe --help` states it ("max connections (default N)")."""
    r = subprocess.run([str(exe), "--help"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=10)
    m = re.search(r"-c N\s+max connections \(default (\d+)\)", r.stdout.decode(errors="replace"))
    return int(m.group(1)) if m else None


# ---------------------------------------------------------------- processes

class Proc:
    """A child process with stdout/stderr in log files."""

    def __init__(self, name, argv, logdir, env=None):
        self.name = name
        self.argv = [str(a) for a in argv]
        logdir = Path(logdir)
        n = 0
        while (logdir / ("%s.%d.log" % (name, n))).exists():
            n += 1
        self.log_path = logdir / ("%s.%d.log" % (name, n))
        self.log = open(self.log_path, "wb")
        self.log.write(("# " + " ".join(self.argv) + "\n").encode())
        self.log.flush()
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.popen = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self.log,
                                      stderr=subprocess.STDOUT, env=full_env, cwd=str(logdir))
        self.pid = self.popen.pid

    @property
    def alive(self):
        return self.popen.poll() is None

    def tail(self, lines=30):
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            text = ""
        return "---- %s (pid %d, rc %s), log %s:\n%s" % (
            self.name, self.pid, self.popen.poll(), self.log_path,
            "\n".join(text.splitlines()[-lines:]))

    def stop(self, sig=signal.SIGTERM, timeout=5.0):
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
        self.log.close()
        return self.popen.returncode

    def kill(self):
        return self.stop(signal.SIGKILL)


class Origin:
    """bench/origin.c, compiled into the work directory."""

    def __init__(self, workdir, workers=1):
        self.workdir = Path(workdir)
        self.workers = workers
        self.proc = None
        self.port = None

    def start(self):
        exe = self.workdir / "origin"
        cc = shutil.which("cc") or shutil.which("gcc")
        if not cc:
            raise BenchError("no C compiler (apt-get install gcc)")
        r = subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-o", str(exe),
                            str(HERE / "origin.c"), "-lcrypto"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
        if r.returncode != 0:
            raise BenchError("compiling bench/origin.c failed:\n" + r.stdout.decode())
        pat_file = self.workdir / "pattern.bin"
        pat_file.write_bytes(PAT)
        self.proc = Proc("origin", [exe, pat_file, self.workers], self.workdir)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            m = re.search(r"^port (\d+)$", self.proc.log_path.read_text(), re.M)
            if m:
                self.port = int(m.group(1))
                return self
            if not self.proc.alive:
                break
            time.sleep(0.02)
        raise BenchError("origin did not start\n" + self.proc.tail())

    def stop(self):
        if self.proc:
            self.proc.stop()


def make_pki(directory):
    """A throwaway CA and a relay certificate for 127.0.0.1 / relay.example.test."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)

    def ossl(args):
        r = subprocess.run(["openssl"] + args, cwd=str(d), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise BenchError("openssl %s failed:\n%s" % (" ".join(args), r.stdout.decode()))

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ossl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                                  "-subj", "/CN=PageKite Bench CA",
                                  "-addext", "basicConstraints=critical,CA:TRUE",
                                  "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    ossl(["req"] + ec + ["-keyout", "relay.key", "-out", "relay.csr",
                         "-subj", "/CN=relay.example.test"])
    (d / "relay.ext").write_text("subjectAltName=DNS:relay.example.test,IP:127.0.0.1\n"
                                 "basicConstraints=CA:FALSE\n"
                                 "keyUsage=critical,digitalSignature\n"
                                 "extendedKeyUsage=serverAuth\n")
    ossl(["x509", "-req", "-in", "relay.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
          "-CAcreateserial", "-out", "relay.pem", "-days", "2", "-extfile", "relay.ext"])
    return {"ca": d / "ca.pem", "cert": d / "relay.pem", "key": d / "relay.key"}


class Setup:
    """One way of reaching the origin: direct, or a relay + a connector.

    relay: None, "ours" or "pk"; connector: None, "ours" or "pk".
    max_conns None: our tools run with their default -c."""

    def __init__(self, name, label, relay, connector, workdir, origin, tls=None,
                 max_conns=1000, connector_args=()):
        self.name = name
        self.label = label
        self.relay_kind = relay
        self.conn_kind = connector
        self.workdir = Path(workdir) / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.origin = origin
        self.tls = tls
        self.max_conns = max_conns
        self.connector_args = list(connector_args)
        self.relay = None
        self.connector = None
        self.relay_port = None if relay is None else free_port()

    @property
    def direct(self):
        return self.relay_kind is None

    @property
    def port(self):
        return self.origin.port if self.direct else self.relay_port

    def pids(self):
        """{'connector': pid, 'relay': pid} of the live processes."""
        out = {}
        if self.connector and self.connector.alive:
            out["connector"] = self.connector.pid
        if self.relay and self.relay.alive:
            out["relay"] = self.relay.pid
        return out

    # -- argv
    def relay_argv(self):
        if self.relay_kind == "ours":
            argv = [PAGEKITER, "--listen=127.0.0.1", "--ports=%d" % self.relay_port,
                    "--protos=http", "--domain=http:*.%s:%s" % (DOMAIN, SECRET), "-q"]
            if self.max_conns is not None:
                argv += ["-c", str(2 * self.max_conns + 100)]
            if self.tls:
                argv += ["--tls-cert=%s" % self.tls["cert"], "--tls-key=%s" % self.tls["key"]]
            return argv, {}
        return ([PAGEKITE_PY, "--clean", "--nullui", "--nocrashreport",
                 "--logfile=%s" % (self.workdir / "pk-relay.pklog"),
                 "--isfrontend", "--host=127.0.0.1", "--ports=%d" % self.relay_port,
                 "--protos=http,https,raw", "--rawports=virtual",
                 "--domain=http,https,raw:*.%s:%s" % (DOMAIN, SECRET)],
                {"HOME": str(self.workdir), "PYTHONUNBUFFERED": "1"})

    def connector_argv(self):
        fe = "127.0.0.1:%d" % self.relay_port
        if self.conn_kind == "ours":
            argv = [PAGEKITEC, "--frontend", fe, "-q"]
            if self.max_conns is not None:
                argv += ["-c", str(self.max_conns + 64)]
            argv += self.connector_args
            if self.tls:
                argv += ["--ca-file", str(self.tls["ca"])]
            argv += ["127.0.0.1:%d" % self.origin.port, "http", KITE, "0", SECRET]
            return argv, {}
        return ([PAGEKITE_PY, "--clean", "--nullui", "--nocrashreport",
                 "--logfile=%s" % (self.workdir / "pk-connector.pklog"),
                 "--frontend=%s" % fe,
                 "--service_on=http:%s:127.0.0.1:%d:%s" % (KITE, self.origin.port, SECRET)],
                {"HOME": str(self.workdir), "PYTHONUNBUFFERED": "1"})

    # -- lifecycle
    def start_relay(self, timeout=20.0):
        argv, env = self.relay_argv()
        self.relay = Proc("relay", argv, self.workdir, env)
        deadline = time.monotonic() + timeout
        while not port_accepts(self.relay_port, 0.2):
            if not self.relay.alive:
                raise BenchError("%s relay exited\n%s" % (self.name, self.relay.tail()))
            if time.monotonic() > deadline:
                raise BenchError("%s relay not listening after %.0f s\n%s"
                                 % (self.name, timeout, self.relay.tail()))
            time.sleep(0.01)

    def start_connector(self):
        argv, env = self.connector_argv()
        self.connector = Proc("connector", argv, self.workdir, env)

    def wait_live(self, timeout=30.0, interval=0.02):
        """Poll GET / through the relay every interval s until 200; returns the
        monotonic time of the first 200, or raises BenchError."""
        deadline = time.monotonic() + timeout
        last = None
        while True:
            t = time.monotonic()
            try:
                status = http_status(self.port, "/", timeout=1.0)
                if status == 200:
                    return time.monotonic()
                last = "HTTP %s" % status
            except (OSError, BenchError) as e:
                last = "%s: %s" % (type(e).__name__, e)
            if t > deadline:
                raise BenchError("%s: kite not live within %.0f s (last: %s)\n%s"
                                 % (self.name, timeout, last, self.tails()))
            for p in (self.relay, self.connector):
                if p is not None and not p.alive:
                    raise BenchError("%s: %s exited\n%s" % (self.name, p.name, p.tail()))
            time.sleep(max(0.0, interval - (time.monotonic() - t)))

    def start(self):
        if self.direct:
            return self
        self.start_relay()
        self.start_connector()
        self.wait_live()
        return self

    def stop(self):
        for p in (self.connector, self.relay):
            if p is not None:
                p.stop()

    def tails(self):
        return "\n".join(p.tail() for p in (self.relay, self.connector) if p is not None)


# ---------------------------------------------------------------- clients

def _read_head(sock, deadline):
    buf = b""
    while b"\r\n\r\n" not in buf:
        if time.monotonic() > deadline or len(buf) > 65536:
            raise BenchError("no response head (got %r)" % buf[:200])
        data = sock.recv(65536)
        if not data:
            raise BenchError("connection closed before the response head (got %r)"
                             % buf[:200])
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise BenchError("bad status line %r" % lines[0])
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(parts[1]), headers, rest


def _connect(port, timeout):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def http_status(port, path="/", timeout=1.0):
    s = _connect(port, timeout)
    try:
        s.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                   % (path, KITE)).encode())
        return _read_head(s, time.monotonic() + timeout)[0]
    finally:
        s.close()


def download(port, n, verify, timeout=300.0):
    """GET /bytes/n; returns dict(seconds, bytes, ok, error)."""
    deadline = time.monotonic() + timeout
    s = _connect(port, 30.0)
    try:
        t0 = time.monotonic()
        s.sendall(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (n, KITE)).encode())
        status, headers, rest = _read_head(s, deadline)
        if status != 200:
            raise BenchError("download: HTTP %d" % status)
        if int(headers.get("content-length", -1)) != n:
            raise BenchError("download: Content-Length %r, want %d"
                             % (headers.get("content-length"), n))
        h = hashlib.sha256() if verify else None
        if h:
            h.update(rest)
        got = len(rest)
        buf = bytearray(1 << 20)
        mv = memoryview(buf)
        while got < n:
            if time.monotonic() > deadline:
                raise BenchError("download: %d of %d bytes after %.0f s" % (got, n, timeout))
            k = s.recv_into(buf, min(len(buf), n - got))
            if k == 0:
                raise BenchError("download: closed after %d of %d bytes" % (got, n))
            got += k
            if h:
                h.update(mv[:k])
        t1 = time.monotonic()
        if h and h.hexdigest() != pattern_sha256(n):
            raise BenchError("download: sha256 mismatch for %d bytes" % n)
        return {"seconds": t1 - t0, "bytes": got}
    finally:
        s.close()


def upload(port, n, verify, timeout=300.0):
    """POST n pattern bytes to /upload; the origin hashes them if verify."""
    deadline = time.monotonic() + timeout
    s = _connect(port, 30.0)
    try:
        t0 = time.monotonic()
        s.sendall(("POST /upload%s HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
                   "Content-Type: application/octet-stream\r\n\r\n"
                   % ("" if verify else "?nohash", KITE, n)).encode())
        pos = 0
        left = n
        while left > 0:
            if time.monotonic() > deadline:
                raise BenchError("upload: %d of %d bytes sent after %.0f s"
                                 % (n - left, n, timeout))
            k = min(left, 1 << 20)
            s.sendall(PATX_MV[pos:pos + k])
            pos = (pos + k) % PERIOD
            left -= k
        status, headers, rest = _read_head(s, deadline)
        clen = int(headers.get("content-length", 0))
        while len(rest) < clen and time.monotonic() < deadline:
            data = s.recv(4096)
            if not data:
                break
            rest += data
        t1 = time.monotonic()
        if status != 200:
            raise BenchError("upload: HTTP %d %r" % (status, rest[:200]))
        import json
        answer = json.loads(rest[:clen])
        if answer.get("len") != n:
            raise BenchError("upload: origin got %r bytes, sent %d" % (answer.get("len"), n))
        if verify and answer.get("sha256") != pattern_sha256(n):
            raise BenchError("upload: sha256 mismatch for %d bytes" % n)
        return {"seconds": t1 - t0, "bytes": n}
    finally:
        s.close()


def keepalive_check(port, size, count, timeout=30.0):
    """count GET /bytes/size on one connection, each body checked by sha256."""
    deadline = time.monotonic() + timeout
    want = pattern_sha256(size)
    s = _connect(port, 10.0)
    try:
        req = ("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (size, KITE)).encode()
        for i in range(count):
            s.sendall(req)
            status, headers, body = _read_head(s, deadline)
            if status != 200:
                raise BenchError("keep-alive #%d: HTTP %d" % (i, status))
            clen = int(headers.get("content-length", -1))
            while len(body) < clen:
                if time.monotonic() > deadline:
                    raise BenchError("keep-alive #%d: timeout" % i)
                data = s.recv(65536)
                if not data:
                    raise BenchError("keep-alive #%d: closed mid-body" % i)
                body += data
            if len(body) != size or hashlib.sha256(body).hexdigest() != want:
                raise BenchError("keep-alive #%d: wrong body (%d bytes)" % (i, len(body)))
        return count
    finally:
        s.close()


# ---------------------------------------------------------------- wrk

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else None


def wrk(port, path, conns, seconds):
    """Run wrk; returns dict(rps, p50_ms, p99_ms, requests, errors, non2xx)."""
    exe = shutil.which("wrk")
    if not exe:
        raise BenchError("wrk not installed (apt-get install -y wrk)")
    threads = max(1, min(2, conns))
    argv = [exe, "-t%d" % threads, "-c%d" % conns, "-d%ds" % seconds, "--latency",
            "--timeout", "5s", "-H", "Host: %s" % KITE,
            "http://127.0.0.1:%d%s" % (port, path)]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=seconds + 60)
    out = r.stdout.decode(errors="replace")
    res = {"rps": None, "p50_ms": None, "p99_ms": None, "requests": 0, "errors": 0,
           "non2xx": 0}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if m:
        res["rps"] = float(m.group(1))
    m = re.search(r"(\d+) requests in", out)
    if m:
        res["requests"] = int(m.group(1))
    for pct, key in (("50", "p50_ms"), ("99", "p99_ms")):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, out, re.M)
        if m:
            res[key] = _ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        res["errors"] = sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        res["non2xx"] = int(m.group(1))
    if res["requests"] == 0:
        res["p50_ms"] = res["p99_ms"] = None
    if r.returncode != 0 or res["rps"] is None:
        raise BenchError("wrk failed (rc %d):\n%s" % (r.returncode, out[-2000:]))
    return res


# ---------------------------------------------------------------- many streams

async def _request(reader, writer, size, timeout):
    writer.write(("GET /bytes/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (size, KITE)).encode())
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    lines = head.decode("latin-1").split("\r\n")
    if " 200 " not in lines[0] + " ":
        raise BenchError("HTTP status %r" % lines[0])
    clen = -1
    for line in lines[1:]:
        if line.lower().startswith("content-length:"):
            clen = int(line.split(":", 1)[1])
    if clen != size:
        raise BenchError("Content-Length %d, want %d" % (clen, size))
    body = await asyncio.wait_for(reader.readexactly(clen), timeout)
    if body != pattern_prefix(size):
        raise BenchError("wrong body")


async def _many(port, n, active, rounds, size, time_limit, on_phase, open_conc):
    deadline = time.monotonic() + time_limit
    streams = [None] * n
    errors = {}

    def note(phase, e):
        key = "%s: %s" % (phase, type(e).__name__ if not isinstance(e, BenchError) else e)
        errors[key] = errors.get(key, 0) + 1

    sem = asyncio.Semaphore(open_conc)

    async def open_one(i):
        async with sem:
            left = deadline - time.monotonic()
            if left <= 0:
                note("open", BenchError("time limit"))
                return
            try:
                r, w = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), min(10.0, left))
            except (OSError, asyncio.TimeoutError) as e:
                note("open", e)
                return
            try:
                await _request(r, w, size, min(10.0, left))
                streams[i] = (r, w)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    asyncio.LimitOverrunError, BenchError) as e:
                note("open", e)
                w.close()

    async def use(i, count, phase):
        r, w = streams[i]
        try:
            for _ in range(count):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise BenchError("time limit")
                await _request(r, w, size, min(10.0, left))
            return True
        except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError,
                asyncio.LimitOverrunError, BenchError) as e:
            note(phase, e)
            streams[i] = None
            w.close()
            return False

    res = {"streams": n}
    t0 = time.monotonic()
    await asyncio.gather(*(open_one(i) for i in range(n)))
    res["open_s"] = time.monotonic() - t0
    res["opened"] = sum(1 for s in streams if s)
    await asyncio.sleep(1.0)           # let buffers settle, then read memory
    on_phase("idle")
    live = [i for i in range(n) if streams[i]][:active]
    t0 = time.monotonic()
    ok = await asyncio.gather(*(use(i, rounds, "active") for i in live))
    dt = time.monotonic() - t0
    res["active"] = len(live)
    res["active_ok"] = sum(ok)
    res["active_rps"] = sum(ok) * rounds / dt if dt > 0 else None
    on_phase("active")
    # Every stream still open must still answer (nothing was evicted or lost).
    sem2 = asyncio.Semaphore(500)

    async def final(i):
        async with sem2:
            return await use(i, 1, "final")
    alive = [i for i in range(n) if streams[i]]
    ok = await asyncio.gather(*(final(i) for i in alive))
    res["final_ok"] = sum(ok)
    for s in streams:
        if s:
            s[1].close()
    res["failures"] = sum(errors.values())
    res["errors"] = errors
    return res


def many_streams(port, n, active, rounds, size, time_limit, on_phase, open_conc=200):
    """Hold n keep-alive streams open, use `active` of them, re-check all.

    on_phase(name) is called after the idle and active phases (to read memory)."""
    return asyncio.run(_many(port, n, active, rounds, size, time_limit, on_phase, open_conc))
