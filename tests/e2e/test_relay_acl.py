"""Access control in the relay core, failing closed (issue 17, item 5):
pagekite.py's --client_acl, --tunnel_acl and --ratelimit_ips, and our
--require-tls, each allowed and refused over real sockets on loopback, and
rules that cannot be applied refusing service (exit 2, saying why).

Loopback has a whole /8: a visitor bound to 127.0.0.2 is another address
than one on 127.0.0.1, so one machine shows both sides of a rule.  Where we
claim pagekite.py's behaviour, the same command line runs against its relay.
"""

import http.client
import socket
import subprocess
import time

import pytest

from harness import (PAGEKITER, SECRET, Kite, OurRelay, PkRelay, http_request, kite_name,
                     require_executable, wait_http)


def get_from(src, port, host, headers=None, timeout=10.0):
    """GET / from source address src; (status, headers, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(src, 0))
    try:
        c.request("GET", "/", headers={"Host": host, **(headers or {})})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def tunnel_probe(port, src, timeout=10.0):
    """The relay's first answer line to a tunnel request from src."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(src, 0))
    try:
        s.sendall(b"CONNECT PageKite:1 HTTP/1.0\r\n"
                  b"X-PageKite: http:probe.example.test:abcdef01::\r\n\r\n")
        data = b""
        deadline = time.monotonic() + timeout
        while b"\r\n" not in data and time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode("latin-1")
    finally:
        s.close()


class PkRelayWith(PkRelay):
    def __init__(self, logdir, extra_args=()):
        super().__init__(logdir)
        self.extra_args = list(extra_args)

    def argv(self):
        return super().argv() + self.extra_args


def start_relay(group, which, args, **kw):
    if which == "pagekite.py":
        relay = group.add(PkRelayWith(group.logdir, args))
    else:
        relay = group.add(OurRelay(group.logdir, extra_args=args, **kw))
    return relay.start()


def fly(group, relay, label, connector_args=()):
    origin = group.origin(kite_name(label))
    kite = Kite("http", origin.kite, origin.port, relay.port, SECRET)
    conn = group.our_connector(relay, [kite], connector_args)
    return kite, conn


def run_pagekiter(args, timeout=20):
    require_executable(PAGEKITER, "pagekiter")
    return subprocess.run([PAGEKITER, "--ports=%d" % _free(), "--listen=127.0.0.1",
                           "--domain=http:*.example.test:%s" % SECRET] + args,
                          capture_output=True, text=True, timeout=timeout)


def _free():
    from harness import free_port
    return free_port()


# ---------------------------------------------------------------- --client_acl

@pytest.mark.parametrize("which", ["pagekiter", "pagekite.py"])
def test_client_acl_allows_listed_and_refuses_the_rest(group, which):
    relay = start_relay(group, which, ["--client_acl=deny:127\\.0\\.0\\.3",
                                       "--client_acl=allow:127\\.0\\.0\\.[12]"])
    kite, conn = fly(group, relay, "cacl")
    status, body = wait_http(kite.name, relay.port, "/", timeout=30)
    assert status == 200
    assert get_from("127.0.0.2", relay.port, kite.name)[0] == 200
    assert get_from("127.0.0.3", relay.port, kite.name)[0] == 403  # the deny rule
    assert get_from("127.0.0.4", relay.port, kite.name)[0] == 403  # no rule: refused
    if which == "pagekiter":
        relay.proc.wait_for(r"Client 127\.0\.0\.3 rejected by the client ACL: deny:", 10)
        relay.proc.wait_for(r"Client 127\.0\.0\.4 rejected by the default client ACL", 10)


# ---------------------------------------------------------------- --tunnel_acl

@pytest.mark.parametrize("which", ["pagekiter", "pagekite.py"])
def test_tunnel_acl_refuses_unlisted_connectors(group, which):
    relay = start_relay(group, which, ["--tunnel_acl=allow:127\\.0\\.0\\.2"])
    assert tunnel_probe(relay.port, "127.0.0.1") == "HTTP/1.0 403 Forbidden"
    assert tunnel_probe(relay.port, "127.0.0.2") != "HTTP/1.0 403 Forbidden"
    kite, conn = fly(group, relay, "tacl")  # from 127.0.0.1: refused
    time.sleep(4)
    assert "FLYING" not in conn.proc.statuses()
    assert http_request(relay.port, kite.name, timeout=10)[0] != 200
    if which == "pagekiter":
        relay.proc.wait_for(r"Tunnel from 127\.0\.0\.1 rejected by the default tunnel ACL", 10)


def test_tunnel_acl_allows_listed_connectors(group):
    relay = start_relay(group, "pagekiter", ["--tunnel_acl=deny:127\\.0\\.0\\.9",
                                             "--tunnel_acl=allow:localhost"])
    kite, conn = fly(group, relay, "taclok")
    assert wait_http(kite.name, relay.port, "/", timeout=30)[0] == 200
    assert tunnel_probe(relay.port, "127.0.0.9") == "HTTP/1.0 403 Forbidden"


# ---------------------------------------------------------------- --require-tls

def test_require_tls_refuses_plain_and_accepts_tls_tunnels(group, tls_pki):
    relay = start_relay(group, "pagekiter", ["--require-tls"],
                        tls_cert=tls_pki.relay_cert, tls_key=tls_pki.relay_key)
    plain, pconn = fly(group, relay, "plain")
    tls, tconn = fly(group, relay, "tls", ["--tls", "--ca-file", str(tls_pki.ca)])
    assert wait_http(tls.name, relay.port, "/", timeout=30)[0] == 200
    relay.proc.wait_for(r"Tunnel from 127\.0\.0\.1 refused: not in TLS \(require_tls\)", 15)
    assert "FLYING" not in pconn.proc.statuses()
    assert http_request(relay.port, plain.name, timeout=10)[0] != 200
    assert tunnel_probe(relay.port, "127.0.0.1") == "HTTP/1.0 403 Forbidden"


def test_require_tls_without_a_certificate_refuses_to_start():
    r = run_pagekiter(["--require-tls"])
    assert r.returncode == 2, r
    assert "--require-tls needs --tls-cert" in r.stderr


# ---------------------------------------------------------------- --ratelimit_ips

@pytest.mark.parametrize("which", ["pagekiter", "pagekite.py"])
def test_ratelimit_ips_refuses_new_clients_after_n(group, which):
    relay = start_relay(group, which, ["--ratelimit_ips=2/600"])
    kite, conn = fly(group, relay, "rl")
    # wait_http's own requests are one client (urllib's User-Agent).
    assert wait_http(kite.name, relay.port, "/", timeout=30)[0] == 200

    def ua(n):
        return {"User-Agent": "client-%d" % n}
    assert http_request(relay.port, kite.name, headers=ua(1), timeout=10)[0] == 200
    results = [http_request(relay.port, kite.name, headers=ua(n), timeout=10)[0]
               for n in (2, 3)]
    assert results == [503, 503], results
    # Known clients come back; new ones on another address are refused too.
    assert http_request(relay.port, kite.name, headers=ua(1), timeout=10)[0] == 200
    assert get_from("127.0.0.2", relay.port, kite.name, headers=ua(1))[0] == 503
    if which == "pagekiter":
        relay.proc.wait_for(r"rejected for %s: ips_per_sec 2/600s" % kite.name.replace(".", r"\."),
                            10)


def test_ratelimit_for_another_kite_does_not_apply(group):
    relay = start_relay(group, "pagekiter", ["--ratelimit_ips=other.example.test:1/600"])
    kite, conn = fly(group, relay, "rlother")
    assert wait_http(kite.name, relay.port, "/", timeout=30)[0] == 200
    for n in range(4):
        assert http_request(relay.port, kite.name, headers={"User-Agent": "c%d" % n},
                            timeout=10)[0] == 200


# ---------------------------------------------------------------- rules that cannot apply

@pytest.mark.parametrize("args,reason", [
    (["--client_acl=deny:10\\.\\d+\\..*"], "Python regexp syntax"),
    (["--client_acl=permit:10\\..*"], "policy is not allow or deny"),
    (["--tunnel_acl=allow:127\\.(0"], "bad regexp"),
    (["--tunnel_acl=127\\.0\\.0\\.1"], "not allow:REGEXP or deny:REGEXP"),
    (["--ratelimit_ips=5"], "not [KITE:]IPS/SECONDS"),
    (["--ratelimit_ips=a.test:0/60"], "not [KITE:]IPS/SECONDS"),
])
def test_rule_that_cannot_apply_refuses_service(args, reason):
    r = run_pagekiter(args)
    assert r.returncode == 2, (r.returncode, r.stderr)
    flag = args[0].split("=", 1)[0]
    assert flag in r.stderr and reason in r.stderr, r.stderr


def test_accept_acl_file_is_refused_not_ignored():
    # pagekite.py lets everyone in when this file is missing: we refuse the flag.
    r = run_pagekiter(["--accept_acl_file=/nonexistent"])
    assert r.returncode != 0
    assert "not supported: --accept_acl_file" in r.stderr
