"""The pagekite.net service in a box, for end-to-end tests of service mode.

A connector in service mode (pagekitec without a relay option,
pagekite_init_pagekitenet(), pagekite_init_whitelabel()) dials fixed DNS
names on port 443 and sends dynamic DNS updates to up.pagekite.net.  The box
makes all of that local and throwaway:

* a fresh network namespace + mount namespace (`unshare -n -m`), held open by
  a `sleep` process.  Port 443 on its loopback is free, nothing leaves it,
  and it disappears with its last process;
* a private /etc/hosts bind-mounted over the real one inside that mount
  namespace only.  The relay pool names (the ones our library dials, read
  from c/include/pagekite.h, and the ones pagekite.py dials) resolve to
  RELAY_IP, the DDNS names to DDNS_IP.  Everything else fails to resolve at
  once (no route to any name server);
* a throwaway CA (openssl CLI, in a temp dir) and relay certificates that
  carry exactly the SANs a test asks for;
* a relay (our pagekiter, or pagekite.py) on RELAY_IP:RELAY_INNER_PORT, with
  a small TCP tap on RELAY_IP:443 in front of it.  The tap forwards bytes
  unchanged and reports, per connection, whether it began with a TLS
  ClientHello (and its SNI) or with plain text (and its first line), so a
  test can tell that a tunnel really used TLS;
* a DDNS stand-in answering like up.pagekite.net: `good <ip>` (pagekite.py
  accepts an answer starting with `good` or `nochg`, pk.py ~line 3783).  It
  serves plain HTTP on DDNS_IP:80 (what our library sends) and, optionally,
  TLS + HTTP CONNECT on DDNS_IP:443 (how pagekite.py reaches up.pagekite.net:
  through an `httpcs!up.pagekite.net,<SERVICE_CERTS>!443` proxy hop).  Each
  request is reported with its hostname, myip and whether the signature is
  valid for the kite secret.

Processes inside the box are started with `nsenter -t HOLDER -n -m` (which
execs, so the PID we hold is the program's) and stopped by that PID.

Needs root (or CAP_SYS_ADMIN + CAP_NET_ADMIN) and util-linux unshare/nsenter,
iproute2 `ip` and the openssl CLI.

The same file is also the program run inside the box for the helpers:

    python3 servicebox.py origin --kite NAME
    python3 servicebox.py ddns --http IP:PORT [--tls IP:PORT --cert C --key K] [--secret S]
    python3 servicebox.py tap --listen IP:PORT --to IP:PORT
    python3 servicebox.py plain --listen IP:PORT
    python3 servicebox.py http --host NAME --port P [--path /] [--expect 200] [--timeout T]
    python3 servicebox.py lib-connector --mode service|whitelabel|init [--tld D] --ca FILE
                                        --kite PROTO:NAME:LPORT:SECRET
"""

import ast
import hashlib
import json
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
HEADER = REPO / "c" / "include" / "pagekite.h"
PKPY_DIR = Path("/usr/lib/python3/dist-packages/pagekite")

RELAY_IP = "127.0.0.1"
DDNS_IP = "127.0.0.2"
SERVICE_PORT = 443          # PAGEKITE_NET_FRONTEND_PORT; checked against the header
RELAY_INNER_PORT = 8443     # the relay itself; the tap on 443 forwards here
SERVICE_KITE_DOMAIN = "pagekite.me"

# pagekite.py 1.5.2, pagekite/common.py line 45 (checked by test_box_facts).
SERVICE_CERTS = ["b5p.us", "frontends.b5p.us", "pagekite.net", "pagekite.me",
                 "pagekite.com", "pagekite.org", "testing.is", "302.is"]


# ============================================================== facts

def header_facts(path=HEADER):
    """The service names our library uses, from the public header."""
    text = Path(path).read_text()
    facts = {}
    for key in ("PAGEKITE_NET_DDNS", "PAGEKITE_NET_V4FRONTENDS", "PAGEKITE_NET_V6FRONTENDS",
                "PAGEKITE_NET_WL_DDNS", "PAGEKITE_NET_WL_V4FRONTENDS",
                "PAGEKITE_NET_WL_V6FRONTENDS"):
        m = re.search(r'^#define %s "([^"]*)"' % key, text, re.M)
        if not m:
            raise AssertionError("%s not found in %s" % (key, path))
        facts[key] = m.group(1)
    for key in ("PAGEKITE_NET_FRONTEND_PORT", "PAGEKITE_NET_WL_FRONTEND_PORT"):
        m = re.search(r"^#define %s (\d+)" % key, text, re.M)
        if not m:
            raise AssertionError("%s not found in %s" % (key, path))
        facts[key] = int(m.group(1))
    return facts


def url_host(url):
    """Host part of http(s)://host[:port]/..."""
    rest = url.split("://", 1)[1]
    host = rest.split("/", 1)[0]
    return host.rsplit(":", 1)[0] if ":" in host else host


def pkpy_facts(directory=PKPY_DIR):
    """What the installed pagekite.py uses, read from its source (not imported)."""
    common = (Path(directory) / "common.py").read_text()
    facts = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # its regexps have "\." in plain strings
        tree = ast.parse(common)
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and \
                isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name in ("APPVER", "SERVICE_CERTS", "SERVICE_DOMAINS", "DYNDNS"):
                try:
                    facts[name] = ast.literal_eval(node.value)
                except ValueError:
                    pass
    if "APPVER" not in facts:
        m = re.search(r"^APPVER\s*=\s*'([^']+)'", common, re.M)
        if m:
            facts["APPVER"] = m.group(1)
    # pk.py APPVER_DNS(): 'fe4_%s.' + tld with the version's digits (no patch level)
    digits = re.sub(r"[^\d]", "", ".".join(facts["APPVER"].split(".")[:3]))
    facts["APPVER_DNS_LABEL"] = "fe4_%s" % digits
    return facts


def sign_token(secret, payload, salt):
    """pagekite.py signToken(token=salt, secret, payload) without a timestamp."""
    return salt[:8] + hashlib.sha1((secret + payload + salt[:8]).encode()).hexdigest()[:92]


def check_ddns_sign(sign, secret, hostname, ips, truncated_ok=False):
    """The DDNS `sign` is signToken(secret, payload="hostname:ips", length=100):
    8 salt characters + the 40 hex digits of SHA-1, 48 in all, as pagekite.py
    (pk.py ~line 3743) and libpagekite (pk_sign(..., 100, ...)) send it.  With
    truncated_ok, a shorter prefix of that (e.g. a 36-character token) passes."""
    if not sign or len(sign) < 9:
        return False
    full = sign_token(secret, "%s:%s" % (hostname, ips), sign[:8])
    return sign == full or (truncated_ok and full.startswith(sign))


# ============================================================== test side

def _run(argv, timeout=30, check=True, **kw):
    r = subprocess.run([str(a) for a in argv], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=timeout, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s failed (rc %d):\n%s"
                             % (" ".join(map(str, argv)), r.returncode,
                                r.stdout.decode(errors="replace")))
    return r


def listening_in(pid, port):
    """True if the network namespace of pid has a TCP listener on port."""
    for table in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, table)) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A" and \
                            int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except (OSError, StopIteration, ValueError):
            continue
    return False


class BoxPKI:
    """A throwaway CA (openssl CLI) and certificates with chosen SANs."""

    def __init__(self, directory):
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        if not shutil.which("openssl"):
            raise AssertionError("openssl CLI not found (apt-get install -y openssl)")
        self._ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self._openssl(["req", "-x509"] + self._ec +
                      ["-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
                       "-subj", "/CN=PageKite Service Box Test CA",
                       "-addext", "basicConstraints=critical,CA:TRUE",
                       "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        self.ca = self.dir / "ca.pem"
        self.issued = {}

    def _openssl(self, args):
        _run(["openssl"] + args, timeout=60, cwd=str(self.dir))

    def issue(self, label, dns_names):
        """Leaf cert for dns_names (CN = first name).  Returns a dict with
        cert, key and pem (cert + key, for pagekite.py's tls_endpoint)."""
        if label in self.issued:
            return self.issued[label]
        names = list(dns_names)
        self._openssl(["req"] + self._ec + ["-keyout", "%s.key" % label,
                                            "-out", "%s.csr" % label, "-subj", "/CN=%s" % names[0]])
        (self.dir / ("%s.ext" % label)).write_text(
            "subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
            "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
            % ",".join("DNS:%s" % n for n in names))
        self._openssl(["x509", "-req", "-in", "%s.csr" % label, "-CA", "ca.pem",
                       "-CAkey", "ca.key", "-CAcreateserial", "-out", "%s.pem" % label,
                       "-days", "3", "-extfile", "%s.ext" % label])
        cert, key = self.dir / ("%s.pem" % label), self.dir / ("%s.key" % label)
        both = self.dir / ("%s.both.pem" % label)
        both.write_text(cert.read_text() + key.read_text())
        self.issued[label] = {"cert": cert, "key": key, "pem": both, "names": names}
        return self.issued[label]


def service_hosts():
    """name -> IP for the pagekite.net service (ours and pagekite.py's names)."""
    h, p = header_facts(), pkpy_facts()
    relay = {h["PAGEKITE_NET_V4FRONTENDS"], p["APPVER_DNS_LABEL"] + ".b5p.us",
             "frontends.b5p.us", "b5p.us"}
    ddns = {url_host(h["PAGEKITE_NET_DDNS"]), url_host(p["DYNDNS"]["pagekite.net"]),
            url_host(p["DYNDNS"]["beanstalks.net"])}
    hosts = {n: RELAY_IP for n in relay}
    hosts.update({n: DDNS_IP for n in ddns})
    return hosts


def whitelabel_hosts(tld):
    """name -> IP for a white-label domain (ours and pagekite.py's names)."""
    h, p = header_facts(), pkpy_facts()
    relay = {h["PAGEKITE_NET_WL_V4FRONTENDS"] % tld, "%s.%s" % (p["APPVER_DNS_LABEL"], tld),
             "fe." + tld, tld}
    ddns = {url_host(h["PAGEKITE_NET_WL_DDNS"] % tld), url_host(p["DYNDNS"]["whitelabel"] % tld)}
    hosts = {n: RELAY_IP for n in relay}
    hosts.update({n: DDNS_IP for n in ddns})
    return hosts


def _json_lines(text, prefix):
    out = []
    for line in text.splitlines():
        if line.startswith(prefix + " "):
            try:
                out.append(json.loads(line[len(prefix) + 1:]))
            except ValueError:
                pass
    return out


class ServiceBox:
    """Network + mount namespace with a private /etc/hosts; see the module doc.

    Use through a harness.Group (box = group.add(ServiceBox(...)).start());
    the group stops what runs inside before the box itself."""

    def __init__(self, logdir, hosts, group):
        import harness  # noqa: F401 - test side only
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.hosts = dict(hosts)
        self.group = group
        self.holder = None
        self.hosts_file = self.logdir / "box-hosts"
        self.python = sys.executable

    # ---- lifecycle
    def start(self, timeout=15.0):
        for tool in ("unshare", "nsenter", "ip"):
            if not shutil.which(tool):
                raise AssertionError("service box needs %s (util-linux / iproute2)" % tool)
        self.hosts_file.write_text(self._hosts_text())
        script = ("set -e; ip link set lo up; mount --bind %s /etc/hosts; echo BOX-READY; "
                  "exec sleep 100000" % self.hosts_file)
        self.holder_log = self.logdir / "box-holder.log"
        self._holder_out = open(self.holder_log, "wb")
        self.holder = subprocess.Popen(
            ["unshare", "--net", "--mount", "--propagation", "private", "sh", "-c", script],
            stdin=subprocess.DEVNULL, stdout=self._holder_out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while b"BOX-READY" not in self.holder_log.read_bytes():
            if self.holder.poll() is not None or time.monotonic() > deadline:
                out = self.holder_log.read_text(errors="replace")
                self.stop()
                raise AssertionError(
                    "could not create the service box (unshare --net --mount + bind mount of "
                    "/etc/hosts; needs root / CAP_SYS_ADMIN): rc %s\n%s"
                    % (self.holder.poll(), out))
            time.sleep(0.05)
        self.pid = self.holder.pid
        self.check_resolution()
        return self

    def map_name(self, name, ip):
        """Make name resolve to ip from now on: the hosts file is rewritten in
        place (same inode), so the bind mount in the box sees it at once."""
        self.hosts[name] = ip
        with open(self.hosts_file, "r+") as f:
            f.truncate(0)
            f.write(self._hosts_text())

    def _hosts_text(self):
        lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost"]
        lines += ["%s %s" % (ip, name) for name, ip in sorted(self.hosts.items())]
        return "\n".join(lines) + "\n"

    def stop(self):
        if self.holder is not None and self.holder.poll() is None:
            self.holder.send_signal(signal.SIGTERM)
            try:
                self.holder.wait(5)
            except subprocess.TimeoutExpired:
                self.holder.kill()
                self.holder.wait(5)
        try:
            self._holder_out.close()
        except (AttributeError, OSError):
            pass

    # ---- running things inside
    def prefix(self):
        return ["nsenter", "-t", str(self.pid), "--net", "--mount", "--"]

    def run(self, argv, timeout=30, check=True):
        return _run(self.prefix() + list(argv), timeout=timeout, check=check)

    def proc(self, name, argv, env=None):
        import harness
        p = harness.Proc(name, self.prefix() + [str(a) for a in argv], self.logdir, env=env)
        return self.group.add(p)

    def helper(self, name, args, ready, timeout=15.0):
        """Start `python servicebox.py ARGS` in the box; wait for regex ready."""
        p = self.proc(name, [self.python, "-u", str(Path(__file__).resolve())] + list(args))
        p.wait_for(ready, timeout, what="%s ready" % name)
        return p

    def wait_listening(self, proc, port, timeout=20.0):
        deadline = time.monotonic() + timeout
        while not listening_in(proc.pid, port):
            if not proc.alive:
                raise AssertionError("%s exited (rc %s) before listening on %d in the box\n%s"
                                     % (proc.name, proc.popen.poll(), port, proc.tail()))
            if time.monotonic() > deadline:
                raise AssertionError("%s not listening on %d in the box after %.0f s\n%s"
                                     % (proc.name, port, timeout, proc.tail()))
            time.sleep(0.05)
        return proc

    def check_resolution(self):
        """Every mapped name resolves (getaddrinfo, as the library does) to its
        address inside the box, and an unmapped name fails at once."""
        nss = ""
        try:
            nss = next((ln.strip() for ln in open("/etc/nsswitch.conf")
                        if ln.strip().startswith("hosts:")), "")
        except OSError:
            pass
        self.nsswitch_hosts = nss
        # getaddrinfo(name, port, {SOCK_STREAM}) with no AI_ADDRCONFIG, exactly
        # as pk_frontend_resolve() asks.  (getent ahosts sets AI_ADDRCONFIG,
        # which finds nothing in a namespace that only has loopback.)
        code = ("import json, socket, sys, time\n"
                "out = {}\n"
                "for n in sys.argv[1:]:\n"
                "    t = time.monotonic()\n"
                "    try:\n"
                "        r = socket.getaddrinfo(n, 443, 0, socket.SOCK_STREAM)\n"
                "        out[n] = [sorted({a[4][0] for a in r}), time.monotonic() - t]\n"
                "    except OSError as e:\n"
                "        out[n] = [str(e), time.monotonic() - t]\n"
                "print(json.dumps(out))\n")
        unmapped = "not-in-the-box.invalid"
        names = sorted(self.hosts)
        r = self.run([self.python, "-c", code] + names + [unmapped], timeout=30)
        got = json.loads(r.stdout.decode().strip().splitlines()[-1])
        for name in names:
            if got[name][0] != [self.hosts[name]]:
                raise AssertionError(
                    "in the box, getaddrinfo(%s) gives %r, not [%r]; /etc/nsswitch.conf %r "
                    "must consult files for hosts" % (name, got[name][0], self.hosts[name], nss))
        if isinstance(got[unmapped][0], list):
            raise AssertionError("in the box, an unmapped name resolved: %r" % got[unmapped])
        if got[unmapped][1] > 5:
            raise AssertionError("in the box, a failed name lookup took %.1f s"
                                 % got[unmapped][1])
        self.resolution = got

    # ---- pieces
    def origin(self, kite):
        p = self.helper("origin", ["origin", "--kite", kite], r"origin: port \d+")
        p.port = int(re.search(r"origin: port (\d+)", p.stdout()).group(1))
        return p

    def ddns(self, secret, pki=None, http_port=80, tls_port=443):
        """The DDNS stand-in on DDNS_IP (plain HTTP; TLS+CONNECT too with pki)."""
        args = ["ddns", "--http", "%s:%d" % (DDNS_IP, http_port), "--secret", secret]
        if pki is not None:
            c = pki.issue("ddns", ["up.pagekite.net"] + SERVICE_CERTS)
            args += ["--tls", "%s:%d" % (DDNS_IP, tls_port), "--cert", c["cert"],
                     "--key", c["key"]]
        p = self.helper("ddns", args, r"^ddns: ready")
        p.requests = lambda: _json_lines(p.stdout(), "ddns-request")
        return p

    def plain_responder(self, ip=RELAY_IP, port=SERVICE_PORT):
        """A plain-text server on ip:port: whatever the first bytes, it
        answers "HTTP/1.1 400 Bad Request" at once and closes (no TLS at all)."""
        p = self.helper("plain", ["plain", "--listen", "%s:%d" % (ip, port)], r"^plain: ready")
        p.conns = lambda: _json_lines(p.stdout(), "plain-conn")
        return p

    def tap(self, listen_port=SERVICE_PORT, to_port=RELAY_INNER_PORT):
        p = self.helper("tap", ["tap", "--listen", "%s:%d" % (RELAY_IP, listen_port),
                                "--to", "%s:%d" % (RELAY_IP, to_port)], r"^tap: ready")
        p.conns = lambda: _json_lines(p.stdout(), "tap-conn")
        return p

    def our_relay(self, patterns, secret, cert=None, port=RELAY_INNER_PORT):
        import harness
        harness.require_executable(harness.PAGEKITER, "pagekiter")
        argv = [harness.PAGEKITER, "--ports=%d" % port, "--listen=%s" % RELAY_IP,
                "--protos=http,https,raw,websocket"]
        argv += ["--domain=http,https,raw,websocket:%s:%s" % (pat, secret) for pat in patterns]
        if cert:
            argv += ["--tls-cert=%s" % cert["cert"], "--tls-key=%s" % cert["key"]]
        p = self.proc("pagekiter", argv)
        return self.wait_listening(p, port)

    def pk_relay(self, patterns, secret, tls_endpoints=(), port=RELAY_INNER_PORT):
        """pagekite.py as relay; tls_endpoints: [(domain, pki cert)] for
        --tls_endpoint (what answers pagekite.py's CONNECT <name>:443 + TLS)."""
        import harness
        harness.require_executable(harness.PAGEKITE_PY, "pagekite.py (Debian package pagekite)")
        argv = [harness.PAGEKITE_PY, "--clean", "--nullui", "--nocrashreport",
                "--logfile=stdio", "--isfrontend", "--host=%s" % RELAY_IP, "--ports=%d" % port,
                "--protos=http,https,raw", "--rawports=virtual"]
        argv += ["--domain=http,https,raw:%s:%s" % (pat, secret) for pat in patterns]
        argv += ["--tls_endpoint=%s:%s" % (dom, c["pem"]) for dom, c in tls_endpoints]
        p = self.proc("pk-relay", argv, env={"HOME": str(self.logdir), "PYTHONUNBUFFERED": "1"})
        return self.wait_listening(p, port)

    def pagekitec(self, args, kites, verbose=True):
        """Our connector; kites: [(proto, name, lport, pport, secret)]."""
        import harness
        harness.require_executable(harness.PAGEKITEC, "pagekitec")
        argv = [harness.PAGEKITEC] + (["-v"] if verbose else []) + list(args)
        for proto, name, lport, pport, secret in kites:
            argv += ["127.0.0.1:%d" % lport, proto, name, str(pport), secret]
        return self.proc("pagekitec", argv)

    def lib_connector(self, mode, ca, kite, tld=None, flags=None):
        """Our library through ctypes (pkctypes.py) in a process in the box."""
        import harness
        harness.require_file(harness.LIBPAGEKITE, "libpagekite.so.1")
        args = ["lib-connector", "--mode", mode, "--ca", str(ca),
                "--kite", ":".join(str(x) for x in kite)]
        if tld:
            args += ["--tld", tld]
        if flags is not None:
            args += ["--flags", str(flags)]
        p = self.proc("lib-connector",
                      [self.python, "-u", str(Path(__file__).resolve())] + args)
        return p

    def pk_connector(self, args, kites):
        """pagekite.py as connector; kites: [(proto, name, lport, secret)]."""
        import harness
        harness.require_executable(harness.PAGEKITE_PY, "pagekite.py (Debian package pagekite)")
        argv = [harness.PAGEKITE_PY, "--clean", "--nullui", "--nocrashreport",
                "--logfile=stdio"] + list(args)
        argv += ["--service_on=%s:%s:127.0.0.1:%d:%s" % k for k in kites]
        return self.proc("pk-connector", argv,
                         env={"HOME": str(self.logdir), "PYTHONUNBUFFERED": "1"})

    def http(self, host, port=RELAY_INNER_PORT, path="/", expect=200, timeout=20.0):
        """Poll http://RELAY_IP:port/path with Host: host from inside the box
        until status expect.  Returns (status, body); raises AssertionError."""
        r = self.run([self.python, str(Path(__file__).resolve()), "http", "--host", host,
                      "--port", str(port), "--path", path, "--expect", str(expect),
                      "--timeout", str(timeout)], timeout=timeout + 20, check=False)
        out = r.stdout.decode(errors="replace").strip().splitlines()
        try:
            res = json.loads(out[-1])
        except (IndexError, ValueError):
            raise AssertionError("box http client failed: %s" % "\n".join(out)) from None
        if not res.get("ok"):
            raise AssertionError("http://%s%s via the box relay (%s:%d) did not answer %d "
                                 "within %.0f s; last: %s"
                                 % (host, path, RELAY_IP, port, expect, timeout, res.get("last")))
        return res["status"], res["body"]


# ============================================================== box side

def _hostport(s):
    host, port = s.rsplit(":", 1)
    return host, int(port)


def _emit(prefix, obj):
    sys.stdout.write("%s %s\n" % (prefix, json.dumps(obj, sort_keys=True)))
    sys.stdout.flush()


def _read_head(f, limit=16384):
    """Read an HTTP head from a file object; returns (request line, headers) or None."""
    line = f.readline(limit)
    if not line:
        return None
    headers = {}
    for _ in range(100):
        h = f.readline(limit)
        if not h or h in (b"\r\n", b"\n"):
            break
        k, _, v = h.decode("latin-1").partition(":")
        headers[k.strip().lower()] = v.strip()
    return line.decode("latin-1").strip(), headers


def _ddns_answer(f, sock, reqline, headers, secret, via):
    from urllib.parse import parse_qs, urlsplit
    parts = reqline.split()
    if len(parts) < 2 or parts[0] not in ("GET", "HEAD"):
        body = b"bad request\n"
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: %d\r\n"
                     b"Connection: close\r\n\r\n%s" % (len(body), body))
        _emit("ddns-request", {"via": via, "line": reqline[:200], "answer": 400})
        return
    q = parse_qs(urlsplit(parts[1]).query)
    hostname = (q.get("hostname") or [""])[0]
    myip = (q.get("myip") or [""])[0]
    sign = (q.get("sign") or [""])[0]
    # dyndns2-style answer, as pagekite.py expects: "good <ip>" / "nochg <ip>"
    body = ("good %s\n" % myip).encode() if hostname else b"nohost\n"
    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                 b"Connection: close\r\n\r\n%s" % (len(body), body))
    _emit("ddns-request", {"via": via, "path": parts[1], "host_header": headers.get("host"),
                           "hostname": hostname, "myip": myip, "sign": sign,
                           "sign_ok": check_ddns_sign(sign, secret, hostname, myip),
                           "sign_len": len(sign),
                           "sign_truncated_ok": check_ddns_sign(sign, secret, hostname, myip,
                                                                truncated_ok=True),
                           "answer": body.decode().strip()})


def _serve(listen, handler, name):
    host, port = _hostport(listen)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(64)

    def loop():
        while True:
            c, addr = ls.accept()
            threading.Thread(target=handler, args=(c, addr), daemon=True).start()
    threading.Thread(target=loop, daemon=True, name=name).start()


def cmd_ddns(a):
    import ssl

    def plain(c, addr):
        try:
            c.settimeout(10)
            f = c.makefile("rb")
            head = _read_head(f)
            if head:
                _ddns_answer(f, c, head[0], head[1], a.secret, "http")
        except OSError:
            pass
        finally:
            c.close()

    ctx = None
    if a.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(a.cert, a.key)

    def tls(c, addr):
        # pagekite.py: TLS to up.pagekite.net:443, then CONNECT host:80, then HTTP.
        try:
            c.settimeout(10)
            s = ctx.wrap_socket(c, server_side=True)
            f = s.makefile("rb")
            head = _read_head(f)
            if head and head[0].upper().startswith("CONNECT "):
                s.sendall(b"HTTP/1.0 200 Connection Established\r\n\r\n")
                target = head[0].split()[1]
                head = _read_head(f)
                if head:
                    _ddns_answer(f, s, head[0], head[1], a.secret, "tls-connect:" + target)
            elif head:
                _ddns_answer(f, s, head[0], head[1], a.secret, "https")
        except (OSError, ssl.SSLError) as e:
            _emit("ddns-request", {"via": "tls", "error": str(e)[:200]})
        finally:
            c.close()

    _serve(a.http, plain, "ddns-http")
    if a.tls:
        _serve(a.tls, tls, "ddns-tls")
    print("ddns: ready http %s%s" % (a.http, (" tls %s" % a.tls) if a.tls else ""), flush=True)
    _wait_forever()


def cmd_plain(a):
    def handle(c, addr):
        try:
            c.settimeout(5)
            first = c.recv(4096)
            c.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                      b"Content-Length: 12\r\nConnection: close\r\n\r\nbad request\n")
            _emit("plain-conn", {"kind": "tls" if first[:1] == b"\x16" else "plain",
                                 "sni": _client_hello_sni(first), "n_bytes": len(first)})
        except OSError:
            pass
        finally:
            c.close()
    _serve(a.listen, handle, "plain")
    print("plain: ready %s" % a.listen, flush=True)
    _wait_forever()


def _client_hello_sni(data):
    """SNI of a TLS ClientHello record (None if absent or unparsable)."""
    try:
        if data[0] != 0x16 or data[5] != 0x01:
            return None
        p = 9 + 2 + 32            # record hdr 5, hs hdr 4, version 2, random 32
        p += 1 + data[p]          # session id
        p += 2 + int.from_bytes(data[p:p + 2], "big")   # cipher suites
        p += 1 + data[p]          # compression
        end = p + 2 + int.from_bytes(data[p:p + 2], "big")
        p += 2
        while p + 4 <= end:
            etype = int.from_bytes(data[p:p + 2], "big")
            elen = int.from_bytes(data[p + 2:p + 4], "big")
            if etype == 0:
                q = p + 4 + 2
                if data[q] == 0:
                    n = int.from_bytes(data[q + 1:q + 3], "big")
                    return data[q + 3:q + 3 + n].decode("ascii", "replace")
            p += 4 + elen
    except (IndexError, ValueError):
        return None
    return None


def cmd_tap(a):
    to = _hostport(a.to)
    counter = [0]
    lock = threading.Lock()

    def pump(src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                dst.sendall(d)
        except OSError:
            pass
        finally:
            for s, how in ((dst, socket.SHUT_WR),):
                try:
                    s.shutdown(how)
                except OSError:
                    pass

    def handle(c, addr):
        with lock:
            counter[0] += 1
            n = counter[0]
        try:
            up = socket.create_connection(to, timeout=10)
        except OSError as e:
            _emit("tap-conn", {"n": n, "error": "upstream: %s" % e})
            c.close()
            return
        c.settimeout(5)
        first = b""
        try:
            while len(first) < 5:
                d = c.recv(4096)
                if not d:
                    break
                first += d
            if first[:1] == b"\x16" and len(first) >= 5:
                need = 5 + int.from_bytes(first[3:5], "big")
                while len(first) < need:
                    d = c.recv(4096)
                    if not d:
                        break
                    first += d
            else:
                while b"\n" not in first and len(first) < 512:
                    d = c.recv(4096)
                    if not d:
                        break
                    first += d
        except OSError:
            pass
        c.settimeout(None)
        up.settimeout(None)
        if first[:1] == b"\x16":
            info = {"n": n, "kind": "tls", "sni": _client_hello_sni(first)}
        elif first:
            info = {"n": n, "kind": "plain",
                    "first_line": first.split(b"\n", 1)[0].decode("latin-1").strip()[:200]}
        else:
            info = {"n": n, "kind": "empty"}
        _emit("tap-conn", info)
        try:
            if first:
                up.sendall(first)
        except OSError:
            c.close()
            up.close()
            return
        t = threading.Thread(target=pump, args=(up, c), daemon=True)
        t.start()
        pump(c, up)
        t.join(600)
        c.close()
        up.close()

    _serve(a.listen, handle, "tap")
    print("tap: ready %s -> %s" % (a.listen, a.to), flush=True)
    _wait_forever()


def cmd_origin(a):
    sys.path.insert(0, str(HERE))
    from origin import OriginServer
    o = OriginServer(a.kite).start()
    print("origin: port %d" % o.port, flush=True)
    _wait_forever()


def cmd_http(a):
    import http.client
    deadline = time.monotonic() + a.timeout
    last = None
    while True:
        try:
            conn = http.client.HTTPConnection(RELAY_IP, a.port, timeout=5)
            conn.request("GET", a.path, headers={"Host": a.host})
            resp = conn.getresponse()
            body = resp.read()
            conn.close()
            if resp.status == a.expect:
                print(json.dumps({"ok": True, "status": resp.status,
                                  "body": body.decode(errors="replace")}))
                return 0
            last = "HTTP %d: %r" % (resp.status, body[:200])
        except (OSError, http.client.HTTPException) as e:
            last = "%s: %s" % (type(e).__name__, e)
        if time.monotonic() > deadline:
            print(json.dumps({"ok": False, "last": last}))
            return 0
        time.sleep(0.3)


def cmd_lib_connector(a):
    """pagekite_init_pagekitenet / _whitelabel (or pagekite_init +
    pagekite_add_service_frontends) + pagekite_set_tls_verify, one
    kite, thread_start; prints "status: NAME" on changes (like pagekitec) and
    the library's log lines on stderr, until SIGTERM."""
    sys.path.insert(0, str(HERE))
    import pkctypes as pk
    lib = pk.load()
    proto, name, lport, secret = a.kite.split(":", 3)
    flags = pk.PK_WITH_DEFAULTS if a.flags is None else a.flags
    if a.mode == "service":
        mgr = lib.pagekite_init_pagekitenet(b"pk-service-box", 1, 25, flags, pk.PK_LOG_ALL)
    elif a.mode == "init":
        # The service by hand: pagekite_init with the service's DDNS URL, then
        # pagekite_add_service_frontends (as libpagekite apps may do).
        ddns = header_facts()["PAGEKITE_NET_DDNS"].encode()
        mgr = lib.pagekite_init(b"pk-service-box", 1, 25, 25, ddns, flags, pk.PK_LOG_ALL)
        if mgr:
            print("add_service_frontends: %d" % lib.pagekite_add_service_frontends(mgr, flags),
                  file=sys.stderr, flush=True)
    else:
        mgr = lib.pagekite_init_whitelabel(b"pk-service-box", 1, 25, flags, pk.PK_LOG_ALL,
                                           a.tld.encode())
    def err():
        e = lib.pagekite_last_error()
        return e.decode(errors="replace") if e else ""
    if not mgr:
        print("init failed: %s" % err(), file=sys.stderr, flush=True)
        return 1
    seen = [0]

    def dump_log():
        log = lib.pagekite_get_log(mgr)
        for line in (log.decode(errors="replace") if log else "").splitlines():
            m = re.match(r"(\d+) ", line)
            if m and int(m.group(1)) <= seen[0]:
                continue
            if m:
                seen[0] = int(m.group(1))
            print(line, file=sys.stderr, flush=True)

    rc = lib.pagekite_set_tls_verify(mgr, pk.PK_TLS_VERIFY_PEER, a.ca.encode())
    print("set_tls_verify: %d" % rc, file=sys.stderr, flush=True)
    if lib.pagekite_add_kite(mgr, proto.encode(), name.encode(), 0, secret.encode(),
                             b"127.0.0.1", int(lport)) != 0:
        print("add_kite failed: %s" % err(), file=sys.stderr, flush=True)
        return 1
    if lib.pagekite_thread_start(mgr) != 0:
        dump_log()
        print("thread_start failed: %s" % err(), file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    last = None
    deadline = time.monotonic() + 3600
    while not stop.is_set() and time.monotonic() < deadline:
        st = lib.pagekite_get_status(mgr)
        if st != last:
            print("status: %s" % pk.STATUS_NAMES.get(st, str(st)), flush=True)
            last = st
        dump_log()
        stop.wait(0.1)
    dump_log()
    lib.pagekite_thread_stop(mgr)
    lib.pagekite_free(mgr)
    return 0


def _wait_forever():
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait(3600)   # bounded: nothing in a test lives for an hour


def main(argv):
    import argparse
    ap = argparse.ArgumentParser(prog="servicebox.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ddns")
    p.add_argument("--http", required=True)
    p.add_argument("--tls")
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--secret", default="")
    p = sub.add_parser("plain")
    p.add_argument("--listen", required=True)
    p = sub.add_parser("tap")
    p.add_argument("--listen", required=True)
    p.add_argument("--to", required=True)
    p = sub.add_parser("origin")
    p.add_argument("--kite", required=True)
    p = sub.add_parser("http")
    p.add_argument("--host", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", default="/")
    p.add_argument("--expect", type=int, default=200)
    p.add_argument("--timeout", type=float, default=20.0)
    p = sub.add_parser("lib-connector")
    p.add_argument("--mode", choices=("service", "whitelabel", "init"), required=True)
    p.add_argument("--tld")
    p.add_argument("--ca", required=True)
    p.add_argument("--kite", required=True)
    p.add_argument("--flags", type=int)
    a = ap.parse_args(argv)
    return {"ddns": cmd_ddns, "tap": cmd_tap, "origin": cmd_origin, "http": cmd_http,
            "plain": cmd_plain, "lib-connector": cmd_lib_connector}[a.cmd](a) or 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
