#!/usr/bin/env python3
"""bench/scale.py - scale figures for a relay (issue 18, item 4).

Three parts, each printed as a table of ratios against a baseline measured in
the same run, and written as JSON with --json:

  auth     kite requests authenticated per second by a relay: each request is
           the handshake a libpagekite connector makes (a CONNECT PageKite:1
           with an unsigned kite line, the relay's X-PageKite-SignThis
           challenge, a second connection with the signed line, X-PageKite-OK).
           "cold": every request names a new kite; "warm": each client cycles
           over the same few kites.  Our relay's auth options are a parameter
           (--auth NAME=OPTIONS, repeatable) so that other auth back-ends
           (e.g. --authdomain) are measured the same way; pagekite.py's relay
           with a static --domain secret is the baseline.
           --authdomain (or --parts authdomain) adds rows for delegated auth,
           each against pagekite.py's
           relay on the same inputs: "dns" (--authdomain=scale.test:AUTHDOM,
           pagekite.py's zero-knowledge DNS scheme answered by a local DNS
           responder that checks every signature; both relays resolve
           through the system resolver, given a private /etc/resolv.conf by
           unshare -m: root only), "app-server" and "app-oneshot" (an auth
           app, SERVER AUTH and AUTH: one --server child, or one process per
           query).  Every OK there must carry the authority's quota
           (X-PageKite-Quota: 1024): a kite let in by a failed lookup
           (fail-open) counts as a failure.  Neither relay caches answers
           (each name holds a one-time challenge), so "warm" means the same
           kite names again with the resolver, the responder and the app
           already running, "cold" a new name each request.
  tunnels  one relay holding N tunnels (default 10,000): one client process
           (this script, asyncio) opens N tunnels with one kite each, answers
           the relay's PINGs and answers requests routed through a sample of
           the tunnels; the relay's VmRSS before and after gives KiB per
           tunnel.  Same for pagekite.py's relay (as many as it holds within
           a bounded time, said in the table) and rathole (optional: a
           `rathole` binary from `cargo install rathole`; skipped with a
           printed reason when absent).
  routing  the relay's routing cost per connection against the number of
           kites, 10 to 100,000 (bench/registry_bench.sh): ns per lookup and
           the ratio 100k / 10.

--smoke runs every part with small sizes (under 60 s) and exits 1 on any
failure; it never looks at speed.  Everything runs on loopback; every loop is
bounded by a count and a deadline.  RLIMIT_NOFILE is raised to the hard limit.
"""

import argparse
import asyncio
import hashlib
import json
import os
import re
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import pkbench  # noqa: E402
from pkbench import BenchError, Proc, free_port, port_accepts, proc_mem_kib  # noqa: E402

HERE = Path(__file__).resolve().parent
DOMAIN = "scale.test"
SECRET = "scale-secret-0123456789abcdef"
STATIC_AUTH = "--domain=http:*.%s:%s" % (DOMAIN, SECRET)
PK_AUTH = "--domain=http,https,raw:*.%s:%s" % (DOMAIN, SECRET)
RATHOLE_TOKEN = "scale-rathole-token"
RATHOLE_ROOT = Path(os.environ.get("PK_RATHOLE_ROOT", "/var/tmp/pk-bench-rathole"))


def sign_token(secret, payload):
    """pagekite.py's signToken with a random, untimed token."""
    prefix = os.urandom(4).hex()
    return prefix + hashlib.sha1((secret + payload + prefix).encode()).hexdigest()[:28]


def head_values(head, name):
    name = name.lower()
    out = []
    for line in head.split("\r\n")[1:]:
        k, sep, v = line.partition(":")
        if sep and k.strip().lower() == name:
            out.append(v.strip())
    return out


# ---------------------------------------------------------------- handshake

class Refused(Exception):
    pass


async def _open(port, src, timeout):
    return await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0) if src else None), timeout)


async def _head(reader, timeout):
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    if len(raw) > 65536:
        raise Refused("answer head over 64 KiB")
    return raw.decode("latin-1")


def _close(writer):
    try:
        writer.close()
    except Exception:
        pass


async def kite_request(port, kite, secret, src=None, keep=False, timeout=10.0, want_quota=None):
    """libpagekite's handshake for one kite.  Returns (reader, writer) of the
    flying tunnel when keep, else closes it; raises Refused with the reason.
    want_quota: the X-PageKite-Quota the OK must carry (delegated auth)."""
    bsalt = os.urandom(18).hex()
    req = "CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite-Version: 0.91.bench\r\n"
    r, w = await _open(port, src, timeout)
    try:
        w.write((req + "X-PageKite: http:%s:%s::\r\n\r\n" % (kite, bsalt)).encode())
        head = await _head(r, timeout)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
            asyncio.LimitOverrunError) as e:
        raise Refused("challenge: %s" % (type(e).__name__,))
    finally:
        _close(w)
    signs = head_values(head, "X-PageKite-SignThis")
    if not signs:
        raise Refused("no challenge: %s" % head.split("\r\n", 1)[0][:80])
    line = "%s:%s" % (signs[0], sign_token(secret, signs[0]))
    extra = "".join("X-PageKite-Replace: %s\r\n" % s
                    for s in head_values(head, "X-PageKite-SessionID")[:1])
    r, w = await _open(port, src, timeout)
    try:
        w.write((req + extra + "X-PageKite: %s\r\n\r\n" % line).encode())
        head = await _head(r, timeout)
    except (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError,
            asyncio.LimitOverrunError) as e:
        _close(w)
        raise Refused("signed: %s" % (type(e).__name__,))
    if not head_values(head, "X-PageKite-OK"):
        _close(w)
        why = (head_values(head, "X-PageKite-Invalid-Why") or
               ["duplicate"] if head_values(head, "X-PageKite-Duplicate") else
               [head.split("\r\n", 1)[0][:80]])
        raise Refused("not OK: %s" % why[0])
    if want_quota is not None and head_values(head, "X-PageKite-Quota") != [str(want_quota)]:
        _close(w)
        raise Refused("OK without the authority's quota (a failed lookup let in?)")
    if not keep:
        _close(w)
        return None
    return r, w


# ---------------------------------------------------------------- part 1: auth

async def auth_rate(port, secret, seconds, conc, warm, max_requests, pid, want_quota=None):
    """Authenticated kite requests per second, conc clients for seconds."""
    ok = 0
    failed = {}
    lat = []
    deadline = time.monotonic() + seconds
    counter = [0]

    async def worker(wi):
        nonlocal ok
        src = "127.0.%d.%d" % (1 + wi // 250, 1 + wi % 250)
        j = 0
        while time.monotonic() < deadline and counter[0] < max_requests:
            counter[0] += 1
            if warm:
                kite = "w%d-%d.%s" % (wi, j % 4, DOMAIN)
            else:
                kite = "c%d-%d-%s.%s" % (wi, j, os.urandom(3).hex(), DOMAIN)
            j += 1
            t = time.monotonic()
            try:
                await kite_request(port, kite, secret, src=src, timeout=10.0,
                                   want_quota=want_quota)
                ok += 1
                lat.append(time.monotonic() - t)
            except Refused as e:
                failed[str(e)] = failed.get(str(e), 0) + 1
            except OSError as e:
                failed[type(e).__name__] = failed.get(type(e).__name__, 0) + 1

    if warm:  # the warm names are authenticated once before the clock starts
        async def prime(wi):
            for j in range(4):
                try:
                    await kite_request(port, "w%d-%d.%s" % (wi, j, DOMAIN), secret,
                                       src="127.0.%d.%d" % (1 + wi // 250, 1 + wi % 250))
                except (Refused, OSError):
                    pass
        await asyncio.wait_for(asyncio.gather(*(prime(i) for i in range(conc))), 60)
        deadline = time.monotonic() + seconds
    t0 = time.monotonic()
    cpu0, me0 = pkbench.proc_cpu_seconds(pid), os.times()
    await asyncio.wait_for(asyncio.gather(*(worker(i) for i in range(conc))), seconds + 30)
    took = time.monotonic() - t0
    cpu1, me1 = pkbench.proc_cpu_seconds(pid), os.times()
    relay_cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else None
    client_cpu = (me1.user + me1.system) - (me0.user + me0.system)
    lat.sort()
    return {"ok": ok, "failed": sum(failed.values()), "why": failed, "seconds": round(took, 3),
            "per_s": round(ok / took, 1) if took > 0 else 0.0,
            "relay_cpu_us_per_auth": (round(1e6 * relay_cpu / ok, 1)
                                      if ok and relay_cpu is not None else None),
            "client_cpu_share": round(client_cpu / took, 2) if took > 0 else None,
            "p50_ms": round(1000 * lat[len(lat) // 2], 2) if lat else None,
            "p99_ms": (round(1000 * lat[min(len(lat) - 1, int(len(lat) * 0.99))], 2)
                       if lat else None)}


# ---------------------------------------------------------------- part 2: tunnels

class Holder:
    """One held tunnel: answers PING with PONG and any new stream with a
    fixed 200 response ("ok <kite>"), then EOF."""

    def __init__(self, kite, reader, writer):
        self.kite = kite
        self.r = reader
        self.w = writer
        self.alive = True
        self.task = asyncio.ensure_future(self.run())

    def chunk(self, payload):
        self.w.write(b"%x\r\n" % len(payload) + payload)

    async def run(self):
        try:
            for _ in range(1000000):
                line = await self.r.readuntil(b"\r\n")
                m = re.match(rb"([0-9a-fA-F]+)", line)
                if not m or len(m.group(1)) > 8:
                    break
                payload = await self.r.readexactly(int(m.group(1), 16))
                hdr, _, _data = payload.partition(b"\r\n\r\n")
                fields = {}
                for ln in hdr.split(b"\r\n"):
                    k, sep, v = ln.partition(b":")
                    if sep:
                        fields[k.strip().lower()] = v.strip()
                if b"ping" in fields:
                    self.chunk(b"NOOP: 1\r\nPONG: %s\r\n\r\n" % fields[b"ping"])
                sid = fields.get(b"sid")
                if sid and b"eof" not in fields and b"noop" not in fields and \
                        (b"host" in fields or b"proto" in fields):
                    body = b"ok " + self.kite.encode()
                    self.chunk(b"SID: %s\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                               b"Connection: close\r\n\r\n%s" % (sid, len(body), body))
                    self.chunk(b"SID: %s\r\nEOF: 1WR\r\n\r\n" % sid)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError,
                asyncio.CancelledError):
            pass
        finally:
            self.alive = False

    def close(self):
        self.task.cancel()
        _close(self.w)


async def http_get(port, host, timeout=5.0):
    r, w = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
    try:
        w.write(("GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % host).encode())
        data = await asyncio.wait_for(r.read(65536), timeout)
        for _ in range(20):
            more = await asyncio.wait_for(r.read(65536), timeout)
            if not more:
                break
            data += more
        return data
    finally:
        _close(w)


async def hold_tunnels(port, n, secret, time_limit, open_conc, sample, pid, settle):
    """Open n tunnels (one kite each); returns the figures and the holders."""
    holders = []
    failed = {}
    deadline = time.monotonic() + time_limit
    next_i = [0]
    rss_before = proc_mem_kib(pid).get("VmRSS", 0)

    async def opener(wi):
        src = "127.0.%d.%d" % (100 + wi // 250, 1 + wi % 250)
        while next_i[0] < n and time.monotonic() < deadline:
            i = next_i[0]
            next_i[0] += 1
            kite = "t%d.%s" % (i, DOMAIN)
            try:
                r, w = await kite_request(port, kite, secret, src=src, keep=True,
                                          timeout=max(1.0, min(20.0, deadline - time.monotonic())))
                holders.append(Holder(kite, r, w))
            except (Refused, OSError) as e:
                k = str(e) if isinstance(e, Refused) else type(e).__name__
                failed[k] = failed.get(k, 0) + 1
                if sum(failed.values()) > max(20, n // 20):
                    return  # the relay holds no more: stop trying

    t0 = time.monotonic()
    try:
        await asyncio.wait_for(asyncio.gather(*(opener(i) for i in range(open_conc))),
                               time_limit + 30)
    except asyncio.TimeoutError:
        failed["open time limit"] = failed.get("open time limit", 0) + 1
    took = time.monotonic() - t0
    await asyncio.sleep(settle)
    held = sum(1 for h in holders if h.alive)
    rss_after = proc_mem_kib(pid).get("VmRSS", 0)
    # Route a sample of requests through held tunnels, spread over them.
    tried = ok = 0
    bad = {}
    live = [h for h in holders if h.alive]
    step = max(1, len(live) // max(1, sample))
    gate = asyncio.Semaphore(50)  # requests in flight at once

    async def route(h):
        nonlocal tried, ok
        async with gate:
            tried += 1
            try:
                data = await http_get(port, h.kite)
                if data.startswith(b"HTTP/1.1 200") and data.endswith(b"ok " + h.kite.encode()):
                    ok += 1
                    return
                k = data.split(b"\r\n", 1)[0][:60].decode(errors="replace") or "empty"
            except (OSError, asyncio.TimeoutError) as e:
                k = type(e).__name__
            bad[k] = bad.get(k, 0) + 1

    t_route = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(route(h) for h in live[::step][:sample])), 120)
    t_route = time.monotonic() - t_route
    held_end = sum(1 for h in holders if h.alive)
    return {"wanted": n, "held": held, "held_after_routing": held_end,
            "open_failed": sum(failed.values()), "open_why": failed,
            "open_seconds": round(took, 2), "rss_before_kib": rss_before,
            "rss_after_kib": rss_after,
            "kib_per_tunnel": round((rss_after - rss_before) / held, 2) if held else None,
            "total_kib_per_tunnel": round(rss_after / held, 2) if held else None,
            "routed_tried": tried, "routed_ok": ok, "routed_why": bad,
            "routed_seconds": round(t_route, 2)}, holders


# ---------------------------------------------------------------- relays

def start_ours(workdir, port, auth_args, n, wrap=None):
    argv = [pkbench.PAGEKITER, "--listen=127.0.0.1", "--ports=%d" % port, "--protos=http",
            "-q", "-c", str(2 * n + 300), "-k", str(max(1000, n + 100))] + auth_args
    return _start("ours", wrap(argv) if wrap else argv, {}, workdir, port)


def start_pk(workdir, port, auth_args=None, wrap=None):
    workdir.mkdir(parents=True, exist_ok=True)
    argv = [pkbench.PAGEKITE_PY, "--clean", "--nullui", "--nocrashreport",
            "--logfile=%s" % (workdir / "pk-relay.pklog"),
            "--isfrontend", "--host=127.0.0.1", "--ports=%d" % port,
            "--protos=http,https,raw", "--rawports=virtual"] + (auth_args or [PK_AUTH])
    return _start("pk", wrap(argv) if wrap else argv,
                  {"HOME": str(workdir), "PYTHONUNBUFFERED": "1"}, workdir, port)


# ---------------------------------------------------------------- delegated auth

AUTHDOM = "auth.scale.bench"
AUTH_QUOTA = 1024  # KB: 0.0.4.0
DNS_RESPONDER = r'''#!/usr/bin/env python3
"""The operator's authority for AUTHDOM (pagekite.py's zero-knowledge
scheme): A queries for srand.token.sign.protoport.NAME.AUTHDOM get the quota
address when sign is the kite's signature with SECRET, 255.255.255.1 when
not.  Plain UDP DNS, no library."""
import hashlib, socket, struct, sys

addr, authdom, secret, quota = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind((addr, 53))
suffix = authdom.split(".")
good = socket.inet_aton(".".join(str((quota >> k) & 255) for k in (24, 16, 8, 0)))
bad = socket.inet_aton("255.255.255.1")
print("listening", flush=True)
while True:
    data, peer = s.recvfrom(4096)
    if len(data) < 17:
        continue
    i, labels = 12, []
    try:
        while data[i]:
            labels.append(data[i + 1:i + 1 + data[i]].decode("ascii", "replace"))
            i += 1 + data[i]
        qtype, _qclass = struct.unpack(">HH", data[i + 1:i + 5])
    except (IndexError, struct.error):
        continue
    question = data[12:i + 5]
    ans = b""
    rcode = 3  # NXDOMAIN
    if len(labels) >= 5 + len(suffix) and [l.lower() for l in labels[-len(suffix):]] == suffix:
        rcode = 0
        if qtype == 1:
            srand, token, sign, protoport = labels[:4]
            name = ".".join(labels[4:-len(suffix)]).replace("_any_", "*")
            payload = "%s:%s:%s:%s" % (protoport, name, srand, token)
            salt = sign[:8]
            ok = sign == salt + hashlib.sha1((secret + payload + salt).encode()).hexdigest()[:28]
            ans = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 0, 4) + (good if ok else bad)
    head = data[:2] + struct.pack(">HHHHH", 0x8180 | rcode, 1, 1 if ans else 0, 0, 0)
    s.sendto(head + question + ans, peer)
'''

AUTH_APP = r'''#!/usr/bin/env python3
"""An auth app (pagekite.py's protocol) answering every kite under DOMAIN
with SECRET and a quota: CAPS from the file name (server: SERVER AUTH)."""
import json, sys

SERVER = "server" in sys.argv[0]
DOMAIN, SECRET, QUOTA = %r, %r, %d


def auth(name):
    if not name.endswith("." + DOMAIN):
        return json.dumps({"error": "unknown-kite"})
    return json.dumps({"secret": SECRET, "quota_kb": QUOTA})


if sys.argv[1:] == ["--capabilities"]:
    print("SERVER AUTH" if SERVER else "AUTH")
elif sys.argv[1:] == ["--server"]:
    for line in sys.stdin:
        words = line.split()
        print(auth(words[1]) if len(words) == 2 and words[0] == "--auth" else "{}", flush=True)
elif len(sys.argv) == 3 and sys.argv[1] == "--auth":
    print(auth(sys.argv[2]))
else:
    sys.exit(2)
'''


class Authority:
    """The DNS responder (a process of its own, so that it does not share
    this client's interpreter), a resolv.conf naming it, and the auth
    apps, in workdir."""

    def __init__(self, workdir, secret):
        if os.geteuid() != 0 or not shutil.which("unshare"):
            raise BenchError("--authdomain needs root and unshare(1): the relays resolve through "
                             "a private /etc/resolv.conf naming a DNS responder on port 53")
        d = workdir / "authority"
        d.mkdir(parents=True, exist_ok=True)
        self.addr = "127.%d.%d.%d" % tuple(os.urandom(3)[i] % 200 + 30 for i in range(3))
        (d / "dns_responder.py").write_text(DNS_RESPONDER)
        self.dns = Proc("dns", [sys.executable, str(d / "dns_responder.py"), self.addr, AUTHDOM,
                                secret, str(AUTH_QUOTA)], d)
        self.resolv = d / "resolv.conf"
        self.resolv.write_text("nameserver %s\noptions timeout:1 attempts:2\n" % self.addr)
        self.apps = {}
        for kind in ("server", "oneshot"):
            path = d / ("auth_app_%s.py" % kind)
            path.write_text(AUTH_APP % (DOMAIN, secret, AUTH_QUOTA))
            path.chmod(0o755)
            self.apps[kind] = str(path)
        deadline = time.monotonic() + 10
        while "listening" not in self.dns.log_path.read_text(errors="replace"):
            if not self.dns.alive or time.monotonic() > deadline:
                raise BenchError("DNS responder did not start\n" + self.dns.tail())
            time.sleep(0.05)

    def wrap(self, argv):
        """argv run with the private resolv.conf (the pid stays the relay's)."""
        return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                str(self.resolv)] + [str(a) for a in argv]

    def stop(self):
        self.dns.stop()


def authdomain_rows(authority):
    """(row name, our relay's auth options, pagekite.py's row, its options)."""
    return [("ours:dns", ["--authdomain=%s:%s" % (DOMAIN, AUTHDOM)],
             "pk:dns", ["--authdomain=%s:%s" % (DOMAIN, AUTHDOM)]),
            ("ours:app-server", ["--authdomain=%s:%s" % (DOMAIN, authority.apps["server"])],
             "pk:app", ["--authdomain=%s:%s" % (DOMAIN, authority.apps["server"])]),
            ("ours:app-oneshot", ["--authdomain=%s:%s" % (DOMAIN, authority.apps["oneshot"])],
             "pk:app", None)]


def _start(name, argv, env, workdir, port, timeout=30.0):
    d = workdir / name
    d.mkdir(parents=True, exist_ok=True)
    p = Proc("relay", argv, d, env)
    deadline = time.monotonic() + timeout
    while not port_accepts(port, 0.2):
        if not p.alive:
            raise BenchError("%s relay exited\n%s" % (name, p.tail()))
        if time.monotonic() > deadline:
            p.stop()
            raise BenchError("%s relay not listening after %.0f s\n%s" % (name, timeout, p.tail()))
        time.sleep(0.02)
    time.sleep(0.3)  # let it finish starting before the RSS baseline
    return p


def find_rathole(explicit):
    for c in ([explicit] if explicit else []) + [shutil.which("rathole"),
                                                 str(RATHOLE_ROOT / "bin" / "rathole")]:
        if c and os.access(c, os.X_OK):
            return c
    return None


def install_rathole():
    """`cargo install rathole` (crates registry) into RATHOLE_ROOT, niced.
    Returns (path or None, reason)."""
    cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
    if not os.access(cargo, os.X_OK):
        return None, "no cargo on PATH or in ~/.cargo/bin"
    argv = ["nice", "-n", "19", cargo, "install", "rathole", "--version", "0.5.0",
            "--root", str(RATHOLE_ROOT)]
    print("building rathole: " + " ".join(argv), flush=True)
    log = RATHOLE_ROOT.parent / "pk-bench-rathole-build.log"
    try:
        with open(log, "wb") as f:
            r = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, timeout=1800)
    except subprocess.TimeoutExpired:
        return None, "cargo install rathole ran over 30 min (log %s)" % log
    if r.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        return None, "cargo install rathole failed (rc %d, log %s): %s" % (
            r.returncode, log, " | ".join(tail))
    return find_rathole(None), "built"


def rathole_tunnels(exe, workdir, n, time_limit, sample):
    """rathole server + one client with n services (one control channel each);
    the server's VmRSS before the client starts and once every channel is up."""
    d = workdir / "rathole"
    d.mkdir(parents=True, exist_ok=True)
    origin = pkbench.Origin(d)
    origin.start()
    sport = free_port()
    base = 20000  # below the ephemeral range (32768-60999 here)
    svc_ports = [base + i for i in range(n)]
    srv = ["[server]", 'bind_addr = "127.0.0.1:%d"' % sport, 'default_token = "%s"' % RATHOLE_TOKEN]
    cli = ["[client]", 'remote_addr = "127.0.0.1:%d"' % sport,
           'default_token = "%s"' % RATHOLE_TOKEN]
    for i, p in enumerate(svc_ports):
        srv += ["[server.services.s%d]" % i, 'bind_addr = "127.0.0.1:%d"' % p]
        cli += ["[client.services.s%d]" % i, 'local_addr = "127.0.0.1:%d"' % origin.port]
    (d / "server.toml").write_text("\n".join(srv) + "\n")
    (d / "client.toml").write_text("\n".join(cli) + "\n")
    env = {"RUST_LOG": "info"}
    server = Proc("rathole-server", [exe, "--server", d / "server.toml"], d, env)
    client = None
    try:
        deadline = time.monotonic() + 30
        while not port_accepts(sport, 0.2):
            if not server.alive or time.monotonic() > deadline:
                raise BenchError("rathole server did not listen\n%s" % server.tail())
            time.sleep(0.05)
        # every service port bound?
        time.sleep(0.5)
        rss_before = proc_mem_kib(server.pid).get("VmRSS", 0)
        t0 = time.monotonic()
        client = Proc("rathole-client", [exe, "--client", d / "client.toml"], d, env)
        deadline = t0 + time_limit
        held = 0
        while time.monotonic() < deadline:
            # rathole's client logs this once per service whose control
            # channel the server accepted.
            text = client.log_path.read_text(errors="replace")
            held = text.count("Control channel established")
            if held >= n or not server.alive or not client.alive:
                break
            time.sleep(0.25)
        took = time.monotonic() - t0
        time.sleep(1.0)
        rss_after = proc_mem_kib(server.pid).get("VmRSS", 0)
        tried = ok = 0
        step = max(1, n // max(1, sample))
        for p in svc_ports[::step][:sample]:
            if tried - ok >= 10:
                break  # bounded: ten failures say enough
            tried += 1
            try:
                if pkbench.http_status(p, "/bytes/16", timeout=5.0) == 200:
                    ok += 1
            except (OSError, BenchError):
                pass
        return {"wanted": n, "held": held, "held_after_routing": held, "open_failed": n - held,
                "open_why": {}, "open_seconds": round(took, 2), "rss_before_kib": rss_before,
                "rss_after_kib": rss_after,
                "kib_per_tunnel": round((rss_after - rss_before) / held, 2) if held else None,
                "total_kib_per_tunnel": round(rss_after / held, 2) if held else None,
                "routed_tried": tried, "routed_ok": ok, "routed_why": {},
                "client_rss_kib": proc_mem_kib(client.pid).get("VmRSS", 0)}
    finally:
        if client:
            client.stop()
        server.stop()
        origin.stop()


# ---------------------------------------------------------------- part 3: routing

def routing(seconds):
    r = subprocess.run(["sh", str(HERE / "registry_bench.sh"), str(seconds)],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=300)
    text = r.stdout.decode(errors="replace")
    if r.returncode != 0:
        raise BenchError("registry_bench.sh failed:\n" + text[-3000:])
    rows = []
    for line in text.splitlines():
        m = re.match(r"(exact hit|wildcard hit|miss)\s+(\d+) \|\s+([\d.]+)\s+([\d.]+)\s+(\d+)% \|"
                     r"\s+([\d.]+)\s+([\d.]+)\s+(\d+)%", line)
        if m:
            rows.append({"lookup": m.group(1), "kites": int(m.group(2)),
                         "ns": float(m.group(3)), "found_pct": int(m.group(5)),
                         "old_scan_ns": float(m.group(6))})
    by = {(r["lookup"], r["kites"]): r for r in rows}
    ratio = {}
    for k in ("exact hit", "wildcard hit", "miss"):
        if (k, 10) in by and (k, 100000) in by:
            ratio[k] = round(by[(k, 100000)]["ns"] / by[(k, 10)]["ns"], 2)
    return {"rows": rows, "ratio_100k_over_10": ratio, "text": text}


# ---------------------------------------------------------------- report

def fmt(v, unit=""):
    if v is None:
        return "-"
    if isinstance(v, float):
        v = ("%.0f" % v) if abs(v) >= 100 else ("%.3g" % v)
    return "%s%s" % (v, (" " + unit) if unit else "")


def ratio(a, b):
    return ("%.2fx" % (a / b)) if (a and b) else ""


def print_tables(doc):
    print("\nkite requests authenticated per second (c=%d, %.0f s each)"
          % (doc["config"]["auth_conc"], doc["config"]["auth_seconds"]))
    print("(x pk.py: against pagekite.py's relay on the same auth: static, dns or app)")
    print("%-18s %-5s %9s %8s %8s %6s %8s %11s %8s %7s" % (
        "relay:auth", "cache", "auth/s", "p50 ms", "p99 ms", "failed", "x pk.py",
        "relay us/au", "x pk.py", "client"))
    baselines = doc.get("auth_baseline", {})
    for name, by in doc["auth"].items():
        for cache in ("cold", "warm"):
            r = by.get(cache)
            if r:
                bname = baselines.get(name, "pk")
                base = {} if name.startswith("pk") else doc["auth"].get(bname, {}).get(cache, {})
                print("%-18s %-5s %9s %8s %8s %6d %8s %11s %8s %6.0f%%" % (
                    name, cache, fmt(r["per_s"]), fmt(r["p50_ms"]), fmt(r["p99_ms"]),
                    r["failed"], ratio(r["per_s"], base.get("per_s")),
                    fmt(r["relay_cpu_us_per_auth"]),
                    ratio(r["relay_cpu_us_per_auth"], base.get("relay_cpu_us_per_auth")),
                    100 * (r["client_cpu_share"] or 0)))
    print("\none relay holding N tunnels (one kite each, one client process)")
    print("KiB/tun: (RSS after - RSS before) / held; all/tun: RSS after / held")
    print("%-8s %7s %7s %8s %12s %12s %8s %8s %8s %8s %9s" % (
        "relay", "wanted", "held", "open s", "RSS before", "RSS after", "KiB/tun", "x pk.py",
        "all/tun", "x pk.py", "routed"))
    t = doc["tunnels"]
    pkt = (t.get("pk") or {}).get("kib_per_tunnel")
    pka = (t.get("pk") or {}).get("total_kib_per_tunnel")
    for name, r in t.items():
        if r.get("skipped"):
            print("%-8s skipped: %s" % (name, r["skipped"]))
            continue
        print("%-8s %7d %7d %8s %8d KiB %8d KiB %8s %8s %8s %8s %5d/%-3d" % (
            name, r["wanted"], r["held"], fmt(r["open_seconds"]), r["rss_before_kib"],
            r["rss_after_kib"], fmt(r["kib_per_tunnel"]),
            "" if name == "pk" else ratio(r["kib_per_tunnel"], pkt),
            fmt(r["total_kib_per_tunnel"]),
            "" if name == "pk" else ratio(r["total_kib_per_tunnel"], pka),
            r["routed_ok"], r["routed_tried"]))
        if r.get("open_why"):
            print("         open failures: %s" % r["open_why"])
        if r.get("routed_why"):
            print("         routing failures: %s" % r["routed_why"])
    rt = doc.get("routing")
    if rt:
        print("\nrouting cost per connection (registry, ns per lookup)")
        print("%-13s %9s %9s %9s %11s" % ("lookup", "10", "1000", "100000", "100k / 10"))
        by = {(r["lookup"], r["kites"]): r["ns"] for r in rt["rows"]}
        for k in ("exact hit", "wildcard hit", "miss"):
            print("%-13s %9s %9s %9s %10sx" % (k, fmt(by.get((k, 10))), fmt(by.get((k, 1000))),
                                               fmt(by.get((k, 100000))),
                                               rt["ratio_100k_over_10"].get(k, "-")))


# ---------------------------------------------------------------- main

def parse_auth(specs):
    out = []
    for s in specs or ["static=" + STATIC_AUTH]:
        name, sep, args = s.partition("=")
        if not sep or not name:
            raise SystemExit("--auth wants NAME=OPTIONS, got %r" % s)
        out.append((name, shlex.split(args)))
    return out


async def measure(relay, port, args, conc, want_quota):
    by = {}
    for cache in ("cold", "warm"):
        by[cache] = await auth_rate(port, args.secret, args.auth_seconds, conc, cache == "warm",
                                    args.auth_max, relay.pid, want_quota=want_quota)
    return by


async def ready(port, secret, name, relay, timeout=30.0):
    """One kite the authority vouched for before the clock starts: the
    app's --capabilities and --server child (or the resolver) are up, so
    that a slow start on a loaded machine is not counted as failures."""
    deadline = time.monotonic() + timeout
    why = None
    while time.monotonic() < deadline:
        try:
            await kite_request(port, "ready-%s.%s" % (os.urandom(3).hex(), DOMAIN), secret,
                               timeout=10.0, want_quota=AUTH_QUOTA)
            return
        except (Refused, OSError) as e:
            why = e
            await asyncio.sleep(0.2)
    raise BenchError("%s: no kite authenticated within %.0f s (%s)\n%s"
                     % (name, timeout, why, relay.tail()))


async def authdomain_auth(args, workdir, doc, failures):
    """The --authdomain rows: ours and pagekite.py's relay on the same
    authority (DNS responder, auth apps), the same clients."""
    authority = Authority(workdir, args.secret)
    conc = args.authdomain_conc
    doc.setdefault("auth_baseline", {})
    try:
        for ours, our_args, pk, pk_args in authdomain_rows(authority):
            kinds = [("ours", ours, our_args)]
            if pk_args is not None and "pk" in args.relays:
                kinds.append(("pk", pk, pk_args))
            doc["auth_baseline"][ours] = pk
            for kind, name, auth_args in kinds:
                port = free_port()
                wd = workdir / ("auth-" + name.replace(":", "-"))
                relay = (start_ours(wd, port, auth_args, 1000, wrap=authority.wrap)
                         if kind == "ours" else
                         start_pk(wd, port, auth_args, wrap=authority.wrap))
                try:
                    if not authority.dns.alive:
                        raise BenchError("DNS responder died\n" + authority.dns.tail())
                    await ready(port, args.secret, name, relay)
                    by = await measure(relay, port, args, conc, AUTH_QUOTA)
                    for cache, r in by.items():
                        if r["failed"] or not r["ok"]:
                            failures.append("auth %s %s: %d ok, failures %s" % (
                                name, cache, r["ok"], r["why"]))
                    doc["auth"][name] = by
                finally:
                    relay.stop()
    finally:
        authority.stop()


async def amain(args, workdir, doc, failures):
    conc = args.auth_conc
    parts = set(args.parts.split(","))
    if args.authdomain:
        parts.add("authdomain")

    async def auth_cold_warm(label, port, relay):
        """The auth rate on one relay, cold then warm; a failure is recorded."""
        by = {}
        for cache in ("cold", "warm"):
            by[cache] = await auth_rate(port, args.secret, args.auth_seconds, conc,
                                        cache == "warm", args.auth_max, relay.pid)
            if by[cache]["failed"] or not by[cache]["ok"]:
                failures.append("auth %s %s: %d ok, failures %s" % (
                    label, cache, by[cache]["ok"], by[cache]["why"]))
        return by

    if "auth" in parts:
        for name, auth_args in parse_auth(args.auth):
            port = free_port()
            relay = start_ours(workdir / ("auth-" + name), port, auth_args, 1000)
            try:
                doc["auth"]["ours:" + name] = await auth_cold_warm("ours:" + name, port, relay)
            finally:
                relay.stop()
        if "pk" in args.relays:
            port = free_port()
            relay = start_pk(workdir / "auth-pk", port, shlex.split(args.pk_auth))
            try:
                doc["auth"]["pk"] = await auth_cold_warm("pk", port, relay)
            finally:
                relay.stop()
    if "authdomain" in parts:
        await authdomain_auth(args, workdir, doc, failures)
    if "tunnels" in parts:
        for kind in args.relays:
            if kind == "rathole":
                continue
            n = args.tunnels if kind == "ours" else min(args.tunnels, args.pk_tunnels)
            port = free_port()
            if kind == "ours":
                auth_name, auth_args = parse_auth(args.auth)[0]
                relay = start_ours(workdir / "tun-ours", port, auth_args, n)
                secret = args.secret
            else:
                relay = start_pk(workdir / "tun-pk", port, shlex.split(args.pk_auth))
                secret = args.secret
            holders = []
            try:
                row, holders = await hold_tunnels(port, n, secret, args.tunnel_seconds,
                                                  args.open_conc, args.sample, relay.pid,
                                                  args.settle)
                if not relay.alive:
                    failures.append("%s relay died holding tunnels\n%s" % (kind, relay.tail()))
                doc["tunnels"][kind] = row
                if kind == "ours" and (row["held"] != n or row["held_after_routing"] != n):
                    failures.append("ours: held %d of %d tunnels (%d after routing): %s"
                                    % (row["held"], n, row["held_after_routing"], row["open_why"]))
                if row["routed_ok"] != row["routed_tried"] or not row["routed_tried"]:
                    failures.append("%s: %d of %d routed requests answered: %s" % (
                        kind, row["routed_ok"], row["routed_tried"], row["routed_why"]))
                if kind == "pk" and args.smoke and row["held"] != n:
                    failures.append("pk: held %d of %d tunnels: %s" % (row["held"], n,
                                                                       row["open_why"]))
            finally:
                for h in holders:
                    h.close()
                await asyncio.sleep(0.1)
                relay.stop()
        if "rathole" in args.relays:
            exe = find_rathole(args.rathole)
            reason = ("no rathole binary (PATH, %s/bin, --rathole): install it with "
                      "--install-rathole or `cargo install rathole --version 0.5.0 --root %s`"
                      % (RATHOLE_ROOT, RATHOLE_ROOT))
            if not exe and args.install_rathole:
                exe, reason = await asyncio.get_event_loop().run_in_executor(
                    None, install_rathole)
            if not exe:
                print("rathole skipped: " + reason)
                doc["tunnels"]["rathole"] = {"skipped": reason}
            else:
                n = min(args.tunnels, 12000)
                row = await asyncio.get_event_loop().run_in_executor(
                    None, rathole_tunnels, exe, workdir, n, args.tunnel_seconds, args.sample)
                doc["tunnels"]["rathole"] = row
                if row["held"] != n or row["routed_ok"] != row["routed_tried"]:
                    failures.append("rathole: held %d of %d, routed %d of %d" % (
                        row["held"], n, row["routed_ok"], row["routed_tried"]))
    if "routing" in parts:
        doc["routing"] = await asyncio.get_event_loop().run_in_executor(
            None, routing, args.routing_seconds)
        for r in doc["routing"]["rows"]:
            if r["found_pct"] != (0 if r["lookup"] == "miss" else 100):
                failures.append("routing: %s at %d kites found %d%%"
                                % (r["lookup"], r["kites"], r["found_pct"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="small sizes, correctness only")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--parts", default="auth,tunnels,routing",
                    help="comma list of auth, authdomain, tunnels, routing")
    ap.add_argument("--relays", default="ours,pk,rathole",
                    help="comma list of ours, pk, rathole")
    ap.add_argument("--auth", action="append", metavar="NAME=OPTIONS",
                    help="our relay's auth options, repeatable (default: static=%s)"
                    % STATIC_AUTH)
    ap.add_argument("--pk-auth", default=PK_AUTH, metavar="OPTIONS",
                    help="pagekite.py relay's auth options (default %(default)s)")
    ap.add_argument("--secret", default=SECRET, help="the kite secret the clients sign with")
    ap.add_argument("--auth-seconds", type=float, default=None)
    ap.add_argument("--auth-conc", type=int, default=None)
    ap.add_argument("--auth-max", type=int, default=1000000, help="cap on requests per pass")
    ap.add_argument("--authdomain", action="store_true",
                    help="also measure --authdomain: DNS and auth apps, ours and pagekite.py's "
                    "(root: a private resolv.conf through unshare -m)")
    ap.add_argument("--authdomain-conc", type=int, default=None,
                    help="clients for the --authdomain rows (default 4 smoke, 16 full)")
    ap.add_argument("--tunnels", type=int, default=None, help="N tunnels (default 10000)")
    ap.add_argument("--pk-tunnels", type=int, default=None,
                    help="cap for pagekite.py's relay (default: N)")
    ap.add_argument("--tunnel-seconds", type=float, default=None,
                    help="time limit to open the tunnels")
    ap.add_argument("--open-conc", type=int, default=None)
    ap.add_argument("--sample", type=int, default=None, help="requests routed through tunnels")
    ap.add_argument("--settle", type=float, default=None)
    ap.add_argument("--routing-seconds", type=float, default=None)
    ap.add_argument("--rathole", help="path of a rathole binary")
    ap.add_argument("--install-rathole", action="store_true",
                    help="if no rathole binary is found, `cargo install` it into %s (niced, "
                    "several minutes on 2 cores)" % RATHOLE_ROOT)
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    args = ap.parse_args()
    defaults = dict(auth_seconds=(1.0, 8.0), auth_conc=(4, 64), tunnels=(100, 10000),
                    tunnel_seconds=(20.0, 300.0), open_conc=(20, 200), sample=(10, 200),
                    settle=(0.5, 3.0), routing_seconds=(0.03, 0.3), authdomain_conc=(4, 16))
    for k, (small, full) in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, small if args.smoke else full)
    if args.pk_tunnels is None:
        args.pk_tunnels = args.tunnels
    args.relays = [r for r in args.relays.split(",") if r]
    nofile = pkbench.raise_nofile()
    # rathole's server needs two fds per service (listener + control channel)
    need = 3 * args.tunnels + args.open_conc + 500
    if nofile < need and os.geteuid() == 0:  # root may raise the hard limit
        try:
            cap = int(Path("/proc/sys/fs/nr_open").read_text())
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, cap), min(need, cap)))
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        except (OSError, ValueError):
            pass
    need = args.tunnels + args.open_conc + 200
    if nofile < need:
        raise SystemExit("RLIMIT_NOFILE hard limit %d < %d needed for %d tunnels"
                         % (nofile, need, args.tunnels))
    workdir = Path(tempfile.mkdtemp(prefix="pk-scale-"))
    failures = []
    doc = {"config": {k: v for k, v in vars(args).items() if k not in ("json",)},
           "machine": {"cores": os.cpu_count(), "load": os.getloadavg(),
                       "uname": " ".join(os.uname())},
           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "auth": {}, "tunnels": {}, "failures": failures}
    t0 = time.monotonic()
    try:
        asyncio.run(amain(args, workdir, doc, failures))
    except BenchError as e:
        failures.append(str(e))
    doc["seconds"] = round(time.monotonic() - t0, 1)
    print_tables(doc)
    if failures:
        print("\nFAILURES:")
        for f in failures:
            print("  " + f)
    print("\nran %.1f s; work dir %s" % (doc["seconds"], workdir if args.keep else "removed"))
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=1, default=str) + "\n")
    if not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    return 1 if failures else 0


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(1))
    sys.exit(main())
