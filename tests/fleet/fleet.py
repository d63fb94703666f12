"""A relay fleet in network namespaces: a real PowerDNS server, three
relays behind one pool name, connectors, a client.  Used by test_fleet.py.

Everything this creates carries the prefix pkf<random> (namespaces, the
/etc/netns/<ns>/ directories holding their resolv.conf) and is removed by
Fleet.close(), which the test fixture calls in a finally; every process
is ours (started here) and killed by its process group id.  Every wait is
bounded.  Needs root, iproute2, pdns-server, pdns-backend-pipe,
pdns-backend-sqlite3, sqlite3, python3-dnspython, bind9-dnsutils (dig),
curl and Debian's pagekite.
"""

import atexit
import os
import re
import secrets
import shutil
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRIB = ROOT / "contrib" / "fleet"
HERE = Path(__file__).resolve().parent
BUILD_DIR = Path(os.environ.get("PK_BUILD_DIR", str(ROOT / "build")))
PAGEKITEC = BUILD_DIR / "pagekitec"
PAGEKITER = BUILD_DIR / "pagekiter"
PAGEKITE_PY = shutil.which("pagekite") or "/usr/bin/pagekite"
SYS_PY = "/usr/bin/python3"  # Debian's: python3-dnspython, pagekite

ZONE = "fleet.test"
POOL = "relays." + ZONE
USERS = "users." + ZONE
AUTHDOMAIN = "auth." + ZONE
NET = "10.201.0."
DNS_IP = NET + "2"
RELAY_IPS = [NET + "11", NET + "12", NET + "13"]
CLIENT_IP = NET + "31"
DDNS_PORT = 8053
RELAY_INNER_PORT = 8080  # the relay itself; its latency shim is on RELAY_IP:80
FAR_MS = 300             # a connector's "far" relays answer this much later

TOOLS = {"ip": "iproute2", "pdns_server": "pdns-server", "sqlite3": "sqlite3",
         "dig": "bind9-dnsutils", "curl": "curl"}


def missing_tools():
    out = [pkg for tool, pkg in TOOLS.items() if not shutil.which(tool)]
    for path, pkg in (("/usr/lib/x86_64-linux-gnu/pdns/libpipebackend.so", "pdns-backend-pipe"),
                      ("/usr/lib/x86_64-linux-gnu/pdns/libgsqlite3backend.so",
                       "pdns-backend-sqlite3"),
                      (PAGEKITE_PY, "pagekite")):
        if not os.path.exists(path):
            out.append(pkg)
    r = subprocess.run([SYS_PY, "-c", "import dns.update"], capture_output=True)
    if r.returncode:
        out.append("python3-dnspython")
    return out


def pagekiter_has(flag):
    r = subprocess.run([str(PAGEKITER), "--help"], capture_output=True, text=True, timeout=10)
    return flag in (r.stdout + r.stderr)


def run(cmd, timeout=20, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode:
        raise RuntimeError("%s: rc %d: %s" % (" ".join(map(str, cmd)), r.returncode,
                                              (r.stderr or r.stdout)[-600:]))
    return r


class NodeProc:
    def __init__(self, name, popen, log):
        self.name, self.p, self.log = name, popen, log

    @property
    def alive(self):
        return self.p.poll() is None

    def output(self):
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def kill(self, sig=signal.SIGKILL, wait=5):
        if self.p.poll() is None:
            try:
                os.killpg(self.p.pid, sig)
            except ProcessLookupError:
                pass
        try:
            self.p.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            os.killpg(self.p.pid, signal.SIGKILL)
            self.p.wait(timeout=5)


_OPEN = []


@atexit.register
def _close_all():  # a safety net: the fixture's finally closes each fleet
    for f in list(_OPEN):
        f.close()


class Fleet:
    """One fleet.  relay_kind: 'pkpy' (pagekite.py relays) or 'pagekiter'."""

    def __init__(self, workdir, relay_kind, n_connectors=5):
        _OPEN.append(self)
        self.dir = Path(workdir)
        self.kind = relay_kind
        self.prefix = "pkf" + secrets.token_hex(3)
        self.hub = self.prefix + "-hub"
        self.nodes = {}  # role -> (netns, ip)
        self.procs = []
        self.relays = {}   # index -> [relay proc, shim proc]
        self.customers = self.dir / "customers"
        self.n_connectors = n_connectors
        self.connector_ips = [NET + str(21 + i) for i in range(n_connectors)]
        self.created_ns = []
        self.created_etc = []
        self.use_authdomain = relay_kind == "pkpy" or pagekiter_has("--authdomain")
        self.pdns = None

    # ---- network ----
    def ns(self, role):
        return self.nodes[role][0]

    def _add_node(self, role, ip):
        name = "%s-%s" % (self.prefix, role)
        run(["ip", "netns", "add", name])
        self.created_ns.append(name)
        etc = Path("/etc/netns") / name
        etc.mkdir(parents=True, exist_ok=True)
        self.created_etc.append(etc)
        (etc / "resolv.conf").write_text("nameserver %s\noptions timeout:1 attempts:2\n" % DNS_IP)
        veth = "v" + role[:10]
        run(["ip", "-n", self.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
             "netns", name])
        run(["ip", "-n", self.hub, "link", "set", veth, "master", "br0", "up"])
        run(["ip", "-n", name, "addr", "add", ip + "/24", "dev", "eth0"])
        run(["ip", "-n", name, "link", "set", "eth0", "up"])
        run(["ip", "-n", name, "link", "set", "lo", "up"])
        self.nodes[role] = (name, ip)

    def build_network(self):
        run(["ip", "netns", "add", self.hub])
        self.created_ns.append(self.hub)
        run(["ip", "-n", self.hub, "link", "add", "br0", "type", "bridge"])
        run(["ip", "-n", self.hub, "link", "set", "br0", "up"])
        self._add_node("dns", DNS_IP)
        for i, ip in enumerate(RELAY_IPS):
            self._add_node("r%d" % (i + 1), ip)
        for i, ip in enumerate(self.connector_ips):
            self._add_node("c%d" % (i + 1), ip)
        self._add_node("client", CLIENT_IP)

    # ---- processes ----
    def spawn(self, role, name, argv, env=None):
        log = self.dir / ("%s.log" % name)
        f = open(log, "ab")
        e = dict(os.environ)
        e.update(env or {})
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(role)] + [str(a) for a in argv],
                             stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=e)
        f.close()
        proc = NodeProc(name, p, log)
        self.procs.append(proc)
        return proc

    def sh(self, role, argv, timeout=10, check=False):
        return run(["ip", "netns", "exec", self.ns(role)] + [str(a) for a in argv],
                   timeout=timeout, check=check)

    def wait_port(self, role, ip, port, timeout=15, proc=None):
        deadline = time.monotonic() + timeout
        code = ("import socket,sys\ns=socket.socket()\ns.settimeout(0.5)\n"
                "sys.exit(s.connect_ex((%r,%d)))" % (ip, port))
        while time.monotonic() < deadline:
            if self.sh(role, [SYS_PY, "-c", code]).returncode == 0:
                return
            if proc is not None and not proc.alive:
                raise AssertionError("%s exited:\n%s" % (proc.name, proc.output()[-2000:]))
            time.sleep(0.2)
        raise AssertionError("nothing listens on %s:%d in %s after %ss%s" % (
            ip, port, role, timeout, "" if proc is None else ":\n" + proc.output()[-2000:]))

    # ---- the customer table ----
    def add_customer(self, name, secret, quota_kb=None):
        with open(self.customers, "a") as f:
            f.write("%s %s%s\n" % (name, secret, "" if quota_kb is None else " %d" % quota_kb))

    # ---- DNS ----
    def start_dns(self):
        d = self.dir / "pdns"
        d.mkdir(exist_ok=True)
        db = d / "zone.sqlite3"
        if not db.exists():
            schema = Path("/usr/share/pdns-backend-sqlite3/schema/schema.sqlite3.sql").read_text()
            soa = "ns1.%s. hostmaster.%s. 1 10800 3600 604800 1" % (ZONE, ZONE)
            rows = [(ZONE, "SOA", soa), (ZONE, "NS", "ns1." + ZONE), ("ns1." + ZONE, "A", DNS_IP)]
            rows += [(POOL, "A", ip) for ip in RELAY_IPS]
            rows += [("ddns." + ZONE, "A", DNS_IP)]
            sql = schema + "\nINSERT INTO domains (name, type) VALUES ('%s', 'NATIVE');\n" % ZONE
            for n, t, c in rows:
                sql += ("INSERT INTO records (domain_id, name, type, content, ttl, prio, disabled,"
                        " auth) VALUES (1, '%s', '%s', '%s', 1, 0, 0, 1);\n" % (n, t, c))
            r = subprocess.run(["sqlite3", str(db)], input=sql, capture_output=True, text=True,
                               timeout=20)
            assert r.returncode == 0, r.stderr
        conf = "\n".join([
            "launch=gsqlite3,pipe",
            "gsqlite3-database=%s" % db,
            "pipe-command=%s %s --authdomain %s --customers %s --ttl 5" % (
                SYS_PY, CONTRIB / "pagekite-zk-auth-pipe", AUTHDOMAIN, self.customers),
            "pipe-abi-version=1",
            "local-address=%s, 127.0.0.1" % DNS_IP,
            "local-port=53",
            "dnsupdate=yes",
            "allow-dnsupdate-from=127.0.0.0/8",
            "cache-ttl=0", "query-cache-ttl=0", "negquery-cache-ttl=0",
            "socket-dir=%s" % d,
            "guardian=no", "daemon=no", "disable-syslog=yes", "write-pid=no",
            "loglevel=5", "security-poll-suffix=", "distributor-threads=2",
            "receiver-threads=1", "zone-cache-refresh-interval=0", ""])
        (d / "pdns.conf").write_text(conf)
        self.pdns = self.spawn("dns", "pdns", ["pdns_server", "--config-dir=%s" % d])
        self.wait_port("dns", DNS_IP, 53, proc=self.pdns)
        deadline = time.monotonic() + 15
        while self.dig(POOL, role="dns") != sorted(RELAY_IPS):
            assert time.monotonic() < deadline and self.pdns.alive, self.pdns.output()[-2000:]
            time.sleep(0.2)

    def stop_dns(self):
        self.pdns.kill(signal.SIGTERM)

    def dig(self, name, role="client", rtype="A"):
        r = self.sh(role, ["dig", "+short", "+time=1", "+tries=1", "@" + DNS_IP, name, rtype])
        if r.returncode:
            return []
        return sorted(x for x in r.stdout.split() if re.match(r"^[0-9a-f:.]+$", x))

    def start_ddns(self):
        self.ddns = self.spawn("dns", "ddns", [
            SYS_PY, CONTRIB / "pagekite-ddns-endpoint", "--listen", "%s:%d" % (DNS_IP, DDNS_PORT),
            "--customers", self.customers, "--zone", ZONE, "--dns-server", "127.0.0.1",
            "--ttl", "1"])
        self.wait_port("dns", DNS_IP, DDNS_PORT, proc=self.ddns)

    # ---- relays ----
    def relay_argv(self, i, fail_closed):
        if self.kind == "pkpy":
            argv = [PAGEKITE_PY, "--clean", "--nullui", "--nocrashreport", "--logfile=stdio",
                    "--isfrontend", "--host=127.0.0.1", "--ports=%d" % RELAY_INNER_PORT,
                    "--protos=http", "--authdomain=%s" % AUTHDOMAIN]
            return argv + (["--authfail_closed"] if fail_closed else [])
        argv = [PAGEKITER, "--listen=127.0.0.1", "--ports=%d" % RELAY_INNER_PORT, "--protos=http"]
        if self.use_authdomain:
            argv += ["--authdomain=%s" % AUTHDOMAIN]
            if fail_closed:
                assert pagekiter_has("--authfail_closed"), "pagekiter has --authdomain only"
                argv.append("--authfail_closed")
        else:  # static secrets, read once at start
            for line in self.customers.read_text().splitlines():
                if line.strip() and not line.startswith("#"):
                    name, secret = line.split()[:2]
                    argv.append("--domain=http:%s:%s" % (name, secret))
        return argv

    def start_relay(self, i, fail_closed=False):
        role = "r%d" % (i + 1)
        relay = self.spawn(role, "relay%d" % (i + 1), self.relay_argv(i, fail_closed))
        self.wait_port(role, "127.0.0.1", RELAY_INNER_PORT, proc=relay)
        # Connector c(k) is near relay k mod 3 and far from the two others.
        delays = ["--delay=%s=%d" % (ip, 0 if k % 3 == i else FAR_MS)
                  for k, ip in enumerate(self.connector_ips)]
        shim = self.spawn(role, "shim%d" % (i + 1), [
            SYS_PY, HERE / "latency_shim.py", "--listen", "%s:80" % RELAY_IPS[i],
            "--to", "127.0.0.1:%d" % RELAY_INNER_PORT, "--verbose"] + delays)
        self.wait_port(role, RELAY_IPS[i], 80, proc=shim)
        self.relays[i] = [relay, shim]

    def kill_relay(self, i):
        for p in self.relays[i]:
            p.kill()

    # ---- connectors and origins ----
    def start_connector(self, k, kite, secret, frontend=None, spares=0, extra=()):
        """Connector k (0-based) for kite, with an origin answering 'kite KITE'.
        frontend None: the pool name (with spares); else one relay address."""
        role = "c%d" % (k + 1)
        site = self.dir / ("site-" + kite)
        site.mkdir(exist_ok=True)
        (site / "index.html").write_text("kite %s\n" % kite)
        port = 9000 + len([p for p in self.procs if p.name.startswith("origin")])
        self.spawn(role, "origin-" + kite, [SYS_PY, "-m", "http.server", str(port), "--bind",
                                            "127.0.0.1", "--directory", site])
        self.wait_port(role, "127.0.0.1", port)
        sfile = self.dir / ("secret-" + kite)
        sfile.write_text(secret + "\n")
        sfile.chmod(0o600)
        ddns = "http://%s:%d/?hostname=%%s&myip=%%s&sign=%%s" % (DNS_IP, DDNS_PORT)
        # No -N: the pool is re-checked, and PowerDNS shuffles its A records
        # on every answer (what a connector knows of each relay must follow
        # the address: pk_addrs_merge).
        relays = ["-F", POOL, "-P", "80", "-n", str(spares)] if frontend is None else \
            ["--frontend", "%s:80" % frontend]
        argv = [PAGEKITEC, "-I", "-C", "--ddns-url", ddns] + relays + list(extra) + [
            "127.0.0.1:%d" % port, "http", kite, "0", "@%s" % sfile]
        return self.spawn(role, "connector-" + kite, argv)

    # ---- the client ----
    def fetch(self, kite, via=None, timeout=2):
        """GET http://kite/ from the client namespace, by DNS, or via one
        relay address; the body, or None."""
        argv = ["curl", "-s", "-m", str(timeout), "-o", "-", "-w", "\n%{http_code}"]
        if via:
            argv += ["--resolve", "%s:80:%s" % (kite, via)]
        r = self.sh("client", argv + ["http://%s/" % kite], timeout=timeout + 5)
        body, _, code = r.stdout.rpartition("\n")
        return body if code == "200" else None

    def answers(self, kite, via=None):
        """Whether kite's own origin answers (not a relay's error page)."""
        return (self.fetch(kite, via) or "").strip() == "kite %s" % kite

    def wait_fetch(self, kite, timeout, via=None, want=None):
        want = want or "kite %s" % kite
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.fetch(kite, via) or "").strip() == want:
                return time.monotonic()
            time.sleep(0.2)
        return None

    def logs(self, tail=1500):
        return "\n".join("---- %s\n%s" % (p.name, p.output()[-tail:]) for p in self.procs)

    # ---- teardown ----
    def close(self):
        if self in _OPEN:
            _OPEN.remove(self)
        for p in reversed(self.procs):
            try:
                p.kill(signal.SIGKILL, wait=5)
            except Exception:
                pass
        for name in reversed(self.created_ns):
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=20)
        for etc in self.created_etc:
            shutil.rmtree(etc, ignore_errors=True)
