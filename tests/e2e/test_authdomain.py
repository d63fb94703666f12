"""--authdomain: pagekite.py's DNS zero-knowledge kite authentication.

The relay keeps no secret for the kites under the auth domain: for each
signed kite request it resolves srand.token.sign.protoport.name.<authdomain>
(pk.py's LookupDomainQuota) and the address answered says the quota (KB) or
an error (255.255.255.x).  Here a small authoritative DNS server (dnslib, in
this process) plays the operator's authority: it knows each customer's
secret and checks the signature, so the relay never sees the secret.

The relay resolves through the system resolver, as pagekite.py does: it runs
in a private mount namespace (unshare -m) where /etc/resolv.conf names our
server on a loopback address of its own (port 53, as resolv.conf allows no
other).  The namespace goes when the relay exits; nothing is left behind.
"""
import hashlib
import os
import random
import re
import shutil
import socket
import threading
import time

import pytest

from harness import (tunnel_request_head, PAGEKITER, OurRelay, PkRelay, Kite, wait_http, wait_not_served, http_request, free_port,
                     require_executable, PAGEKITE_PY)

dnslib = pytest.importorskip("dnslib")  # tests/requirements.txt has it
from dnslib import A, CNAME, QTYPE, RR, DNSRecord  # noqa: E402

pytestmark = pytest.mark.ours

AUTHDOM = "auth.test"
DYN = "dyn.test"        # kites authenticated by DNS
STATIC = "static.test"  # kites with a static --domain secret
STATIC_SECRET = "static-secret-42"


def sha1hex(s):
    return hashlib.sha1(s.encode()).hexdigest()


def sign_token(secret, payload, token=None):
    """pagekite.py's signToken without a timestamp."""
    token = token or "%08x" % random.getrandbits(32)
    return token[:8] + sha1hex(secret + payload + token[:8])[:28]


class AuthDns:
    """The operator's authority for AUTHDOM, answering per pagekite.py's
    scheme: a quota address, 255.255.255.1 (invalid signature) or
    255.255.255.0 (unknown user); a CNAME "ok-IPC-IPS.0.DAYS.CONNS.x" for
    customers with extended quotas.  dead=True: it reads and never answers."""

    def __init__(self):
        self.addr = "127.%d.%d.%d" % (random.randint(20, 250), random.randint(1, 250),
                                     random.randint(2, 250))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.addr, 53))
        self.sock.settimeout(0.2)
        self.customers = {}   # name -> (secret, quota_kb, extra) extra: (days, conns, ipc, ips)
        self.queries = []
        self.dead = False
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _answer(self, qname):
        labels = qname.rstrip(".").split(".")
        suffix = AUTHDOM.split(".")
        if len(labels) < 6 + len(suffix) or labels[-len(suffix):] != suffix:
            return None, None
        srand, token, sign, protoport = labels[:4]
        name = ".".join(labels[4:-len(suffix)]).replace("_any_", "*")
        cust = self.customers.get(name)
        if not cust:
            return "255.255.255.0", None
        secret, quota, extra = cust
        payload = "%s:%s:%s:%s" % (protoport, name, srand, token)
        if sign != sign_token(secret, payload, sign):
            return "255.255.255.1", None
        ip = socket.inet_ntoa(quota.to_bytes(4, "big"))
        if extra:
            days, conns, ipc, ips = extra
            return ip, "ok-%x-%x.0.%x.%x.x.%s." % (ipc, ips, days, conns, AUTHDOM)
        return ip, None

    def _run(self):
        while self.running:
            try:
                data, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            try:
                req = DNSRecord.parse(data)
            except Exception:  # noqa: BLE001 - not DNS: ignore
                continue
            qname = str(req.q.qname)
            self.queries.append((qname, QTYPE[req.q.qtype]))
            if self.dead:
                continue
            reply = req.reply()
            ip, cname = self._answer(qname)
            if ip is None:
                reply.header.rcode = 3  # NXDOMAIN
            elif req.q.qtype == QTYPE.A:
                if cname:
                    reply.add_answer(RR(qname, QTYPE.CNAME, rdata=CNAME(cname), ttl=60))
                    reply.add_answer(RR(cname, QTYPE.A, rdata=A(ip), ttl=60))
                else:
                    reply.add_answer(RR(qname, QTYPE.A, rdata=A(ip), ttl=60))
            self.sock.sendto(reply.pack(), peer)

    def names_asked(self, kite):
        return [q for q, t in self.queries if ("." + kite + "." + AUTHDOM + ".") in q.lower()]

    def stop(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()


class DnsRelay(OurRelay):
    """pagekiter with its own /etc/resolv.conf naming the AuthDns server."""

    def __init__(self, logdir, dns, extra_args=(), dns_timeout=1):
        super().__init__(logdir, pattern="*." + STATIC, secret=STATIC_SECRET,
                         extra_args=extra_args)
        self.resolv = os.path.join(str(logdir), "resolv.conf.%d" % self.port)
        with open(self.resolv, "w") as f:
            f.write("nameserver %s\noptions timeout:%d attempts:1\n" % (dns.addr, dns_timeout))

    def argv(self):
        return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                self.resolv] + super().argv()


class PkDnsRelay(PkRelay):
    """pagekite.py's relay with --authdomain, resolving through AuthDns too:
    the same authority, to compare with."""

    def __init__(self, logdir, dns, extra_args=()):
        super().__init__(logdir, pattern="*." + STATIC, secret=STATIC_SECRET)
        self.extra_args = list(extra_args)
        self.resolv = os.path.join(str(logdir), "resolv.conf.pk%d" % self.port)
        with open(self.resolv, "w") as f:
            f.write("nameserver %s\noptions timeout:1 attempts:1\n" % dns.addr)

    def argv(self):
        return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                self.resolv] + super().argv() + self.extra_args


@pytest.fixture
def dns():
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.fail("needs root and unshare(1) (util-linux) for a private resolv.conf",
                    pytrace=False)
    d = AuthDns()
    yield d
    d.stop()


def start_relay(group, dns, *extra, dns_timeout=1):
    relay = group.add(DnsRelay(group.logdir, dns, ["--authdomain=" + AUTHDOM] + list(extra),
                               dns_timeout=dns_timeout))
    return relay.start()


def http_kite(origin, label, secret):
    return Kite("http", "%s.%s" % (label, DYN), origin.port, 0, secret)


def test_good_kite_flies_with_our_connector(group, dns):
    origin = group.origin()
    dns.customers["alice." + DYN] = ("alice-secret", 1024, None)
    relay = start_relay(group, dns)
    kite = http_kite(origin, "alice", "alice-secret")
    group.our_connector(relay, [kite])
    wait_http(kite.name, relay.port, "/", 20)
    asked = dns.names_asked(kite.name)
    assert asked, "the relay never asked the authority: %s" % dns.queries
    # srand.token.sign.protoport.name.authdomain., the token the relay's own
    labels = asked[0].rstrip(".").split(".")
    assert labels[3] == "http" and len(labels[0]) == 36 and labels[1].startswith("t")


def test_good_kite_flies_with_pagekite_py_connector(group, dns):
    require_executable(PAGEKITE_PY, "pagekite.py (Debian package pagekite)")
    origin = group.origin()
    dns.customers["bob." + DYN] = ("bob-secret", 2048, (30, 10, 5, 60))
    relay = start_relay(group, dns)
    kite = http_kite(origin, "bob", "bob-secret")
    conn = group.pk_connector(relay, [kite])
    wait_http(kite.name, relay.port, "/", 30)
    # pagekite.py logs the quotas the relay told it (X-PageKite-Quota etc.)
    conn.proc.wait_for(r"quota_bw=2048", 10)
    out = conn.proc.output()
    assert "quota_days=30" in out and "quota_conns=10" in out and "ips_per_sec=5/60" in out, out


def test_pagekite_py_relay_agrees(group, dns):
    """pagekite.py's own relay, asking the same authority: the kite our relay
    accepts flies there too, and a wrong secret is refused there too."""
    origin = group.origin()
    dns.customers["ivy." + DYN] = ("ivy-secret", 1024, None)
    dns.customers["jon." + DYN] = ("jon-secret", 1024, None)
    relay = group.add(PkDnsRelay(group.logdir, dns, ["--authdomain=" + AUTHDOM])).start()
    good = http_kite(origin, "ivy", "ivy-secret")
    bad = http_kite(origin, "jon", "not-jons-secret")
    group.our_connector(relay, [good])
    group.our_connector(relay, [bad])
    wait_http(good.name, relay.port, "/", 30)
    assert dns.names_asked(good.name) and dns.names_asked(bad.name)
    assert wait_not_served(bad.name, relay.port, "/", 2) != 200


def test_wrong_secret_and_unknown_kite_refused(group, dns):
    origin = group.origin()
    dns.customers["carol." + DYN] = ("carol-secret", 1024, None)
    relay = start_relay(group, dns)
    wrong = http_kite(origin, "carol", "not-carols-secret")
    nobody = http_kite(origin, "nobody", "whatever")
    group.our_connector(relay, [wrong])
    group.our_connector(relay, [nobody])
    relay.proc.wait_for(r"Rejected kite http:carol\.dyn\.test \(unauthorized\)", 20)
    relay.proc.wait_for(r"Rejected kite http:nobody\.dyn\.test \(unauthorized\)", 20)
    assert dns.names_asked(wrong.name) and dns.names_asked(nobody.name)
    assert wait_not_served(wrong.name, relay.port, "/", 2) != 200
    assert wait_not_served(nobody.name, relay.port, "/", 2) != 200


def handshake(port, line):
    """One old-style tunnel request (no AddKites): the relay's head."""
    return tunnel_request_head(port, [line])


def test_quota_headers_in_the_answer(group, dns):
    dns.customers["dave." + DYN] = ("dave-secret", 4096, (7, 3, 2, 10))
    relay = start_relay(group, dns)
    name, salt = "dave." + DYN, "%08x" % random.getrandbits(32)
    head = handshake(relay.port, "http:%s:%s::" % (name, salt))
    m = re.search(r"X-PageKite-SignThis: http:%s:%s:(\S+)" % (re.escape(name), salt), head)
    assert m, head
    token = m.group(1)
    sig = sign_token("dave-secret", "http:%s:%s:%s" % (name, salt, token))
    head = handshake(relay.port, "http:%s:%s:%s:%s" % (name, salt, token, sig))
    assert "X-PageKite-OK: http:%s:%s" % (name, salt) in head, head
    assert "X-PageKite-Quota: 4096\r\n" in head, head
    assert "X-PageKite-QDays: 7\r\n" in head and "X-PageKite-QConns: 3\r\n" in head, head
    assert "X-PageKite-IPsPerSec: 2/10\r\n" in head, head


def test_dns_dead_fails_open_by_default(group, dns):
    origin = group.origin()
    dns.dead = True
    relay = start_relay(group, dns)
    kite = http_kite(origin, "erin", "any-secret-at-all")
    group.our_connector(relay, [kite])
    wait_http(kite.name, relay.port, "/", 30)
    relay.proc.wait_for(r"Auth lookup failed for http:erin\.dyn\.test", 5)


def test_dns_dead_fails_closed_when_asked(group, dns):
    origin = group.origin()
    dns.dead = True
    relay = start_relay(group, dns, "--authfail_closed")
    kite = http_kite(origin, "frank", "any-secret-at-all")
    group.our_connector(relay, [kite])
    relay.proc.wait_for(r"Rejected kite http:frank\.dyn\.test \(unauthorized\)", 30)
    assert wait_not_served(kite.name, relay.port, "/", 2) != 200


def test_flying_kites_keep_flying_while_dns_is_dead(group, dns):
    origin = group.origin()
    dns.customers["gina." + DYN] = ("gina-secret", 1024, None)
    relay = start_relay(group, dns, "--authfail_closed")
    kite = http_kite(origin, "gina", "gina-secret")
    group.our_connector(relay, [kite])
    wait_http(kite.name, relay.port, "/", 20)
    dns.dead = True
    # a DNS kite now waits on a dead server: nothing else does
    group.our_connector(relay, [http_kite(origin, "hank", "hank-secret")])
    static = Kite("http", "s." + STATIC, origin.port, 0, STATIC_SECRET)
    t0 = time.monotonic()
    group.our_connector(relay, [static])
    wait_http(static.name, relay.port, "/", 10)
    for _ in range(20):
        assert http_request(relay.port, kite.name, timeout=5)[0] == 200
    assert time.monotonic() - t0 < 10


def test_flags_are_checked():
    """Malformed --authdomain values are refused with the reason, not ignored."""
    import subprocess
    from harness import PAGEKITER
    for bad, why in (("a:b:c", "is not SUFFIX or KITE-DOMAIN:SUFFIX"),
                     ("x.test:", "is not SUFFIX or KITE-DOMAIN:SUFFIX"),
                     ("bad..suffix", "is not a DNS suffix")):
        r = subprocess.run([str(PAGEKITER), "--ports=%d" % free_port(), "--listen=127.0.0.1",
                            "--authdomain=" + bad], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20, text=True)
        assert r.returncode != 0 and why in r.stderr, (bad, r.returncode, r.stderr)
    # auth apps are supported (tests/e2e/test_authapp.py); one that cannot
    # be run is refused at start, not "not supported" (exit 3)
    r = subprocess.run([str(PAGEKITER), "--ports=%d" % free_port(), "--listen=127.0.0.1",
                        "--authdomain=/nonexistent/bin/app"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=20, text=True)
    assert r.returncode not in (0, 3) and "cannot be run" in r.stderr, r.stderr


def signed_line(port, name, secret):
    """Challenge, then the signed request line for one kite (old style)."""
    salt = "%08x" % random.getrandbits(32)
    head = handshake(port, "http:%s:%s::" % (name, salt))
    m = re.search(r"X-PageKite-SignThis: http:%s:%s:(\S+)" % (re.escape(name), salt), head)
    assert m, head
    token = m.group(1)
    return "http:%s:%s:%s:%s" % (name, salt, token,
                                 sign_token(secret, "http:%s:%s:%s" % (name, salt, token)))


def test_tunnels_closed_during_their_lookups(group, dns):
    """Connectors that hang up while the authority is slow.  A head waiting
    for its answer is not read (the close is seen when the answer is
    written); an open tunnel's close is seen at once and its lookup, when it
    ends, answers nobody.  The relay keeps serving and the queue drains."""
    origin = group.origin()
    dns.customers["kim." + DYN] = ("kim-secret", 1024, None)
    relay = start_relay(group, dns, dns_timeout=3)  # each lookup of the dead server: 3 s
    lines = [signed_line(relay.port, "kim." + DYN, "kim-secret") for _ in range(4)]
    dns.dead = True
    t0 = time.monotonic()
    for line in lines:
        s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        s.sendall(("CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite: %s\r\n\r\n" % line).encode())
        s.close()  # gone before the authority answers
    relay.proc.wait_for(r"Asking auth\.test about kite http:kim\.dyn\.test", 5)
    # an open tunnel (AddKites: the signed request in a NOOP) that closes
    closed = relay.proc.output().count("closed by peer")
    lee = group.our_connector(relay, [http_kite(origin, "lee", "lee-secret")])
    relay.proc.wait_for(r"Asking auth\.test about kite http:lee\.dyn\.test", 10)
    lee.proc.kill()
    deadline = time.monotonic() + 5
    while relay.proc.output().count("closed by peer") == closed and time.monotonic() < deadline:
        time.sleep(0.05)
    assert relay.proc.output().count("closed by peer") > closed, relay.proc.tail()
    # 4 + 1 lookups, 2 at a time, 3 s each: all ended within 10 s
    while (len(re.findall(r"Auth lookup failed for http:kim", relay.proc.output())) < 4
           and time.monotonic() - t0 < 15):
        time.sleep(0.1)
    time.sleep(max(0.0, t0 + 10 - time.monotonic()))
    assert relay.proc.alive, relay.proc.tail()
    out = relay.proc.output()
    assert len(re.findall(r"Auth lookup failed for http:kim", out)) == 4, out[-3000:]
    assert "Auth lookup failed for http:lee" not in out  # its tunnel had gone: forgotten
    dns.dead = False
    kite = http_kite(origin, "kim", "kim-secret")
    group.our_connector(relay, [kite])
    wait_http(kite.name, relay.port, "/", 20)


class RcDnsRelay(DnsRelay):
    """pagekiter reading an rc file (to be changed and SIGHUPed)."""

    def __init__(self, logdir, dns, rc):
        super().__init__(logdir, dns)
        self.rc = rc

    def argv(self):
        return ["unshare", "-m", "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && exec "$@"',
                self.resolv, str(PAGEKITER), "--clean", "--optfile=%s" % self.rc,
                "--ports=%d" % self.port, "--listen=127.0.0.1"]


def test_dns_kites_survive_a_domain_change(group, dns, tmp_path):
    """A reload that changes the --domain table re-checks live kites against
    it: a kite the auth domain vouched for is not the table's to drop."""
    import signal
    origin = group.origin()
    dns.customers["max." + DYN] = ("max-secret", 1024, None)
    rc = tmp_path / "relay.rc"
    rc.write_text("isfrontend\ndomain = http:*.%s:%s\nauthdomain = %s\n"
                  % (STATIC, STATIC_SECRET, AUTHDOM))
    relay = group.add(RcDnsRelay(group.logdir, dns, str(rc))).start()
    kite = http_kite(origin, "max", "max-secret")
    group.our_connector(relay, [kite])
    wait_http(kite.name, relay.port, "/", 20)
    rc.write_text("isfrontend\ndomain = http:*.%s:%s\ndomain = http:*.other.test:x\n"
                  "authdomain = %s\n" % (STATIC, STATIC_SECRET, AUTHDOM))
    before = relay.proc.output().count("Reloaded")
    os.kill(relay.proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + 10
    while relay.proc.output().count("Reloaded") == before:
        assert time.monotonic() < deadline, relay.proc.tail()
        time.sleep(0.05)
    time.sleep(1)
    assert "Kite http:max.dyn.test dropped" not in relay.proc.output(), relay.proc.tail()
    assert http_request(relay.port, kite.name, timeout=5)[0] == 200
