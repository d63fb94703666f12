"""Per-kite access control on the connector (issue 17, item 5): pagekite.py's
+password/USER=PASS (HTTP basic auth) and +ip/ADDR lists, which pagekite.py
enforces on the back-end (connector) side, for each new stream, using the
visitor address the relay passes in the stream's RIP header.  pagekitec:
--kite-access=NAME:+RULE.  Over loopback: a visitor bound to 127.0.0.2 is
another address than one on 127.0.0.1.

pagekite.py, given the same rule with --be_config=NAME/80:password/USER:PASS,
also answers 401 without credentials; on Python 3 it answers 401 even with the
right ones (it calls base64.decodestring, gone since Python 3.9), so only the
refusal is compared.
"""

import base64
import http.client
import subprocess

import pytest

from harness import PAGEKITEC, SECRET, Kite, http_request, kite_name, require_executable, wait_http


def get_from(src, port, host, headers=None, timeout=10.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(src, 0))
    try:
        c.request("GET", "/", headers={"Host": host, **(headers or {})})
        r = c.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        c.close()


def basic(user, pw):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()}


def fly(group, relay, label, rules=(), pk=False):
    origin = group.origin(kite_name(label))
    kite = Kite("http", origin.kite, origin.port, relay.port, SECRET)
    if pk:
        args = ["--be_config=%s/80:%s" % (kite.name, r) for r in rules]
        conn = group.pk_connector(relay, [kite], args)
    else:
        conn = group.our_connector(relay, [kite], ["--kite-access=%s:%s" % (kite.name, r)
                                                   for r in rules])
    return origin, kite, conn


def wait_flying(relay, kite, expect):
    wait_http(kite.name, relay.port, "/", timeout=30, expect=expect)


def test_basic_auth_401_then_200(group):
    relay = group.our_relay()
    origin, kite, conn = fly(group, relay, "auth", ["+password/alice=s3cr:et",
                                                    "+password/bob=hunter2"])
    wait_flying(relay, kite, 401)
    status, headers, _ = http_request(relay.port, kite.name, timeout=10)
    assert status == 401
    assert headers.get("WWW-Authenticate") == 'Basic realm="PageKite"'
    assert http_request(relay.port, kite.name, headers=basic("alice", "wrong"), timeout=10)[0] == 401
    assert http_request(relay.port, kite.name, headers=basic("bob", "s3cr:et"), timeout=10)[0] == 401
    assert http_request(relay.port, kite.name, headers=basic("mallory", "x"), timeout=10)[0] == 401
    status, _, body = http_request(relay.port, kite.name, headers=basic("alice", "s3cr:et"),
                                   timeout=10)
    assert status == 200 and kite.name.encode() in body
    assert http_request(relay.port, kite.name, headers=basic("bob", "hunter2"), timeout=10)[0] == 200
    # The credentials never reach the connector's log (the harness's first
    # line is the command line, which holds them: left out).
    conn.proc.stop()
    log = "\n".join(l for l in conn.proc.output().splitlines() if not l.startswith("# /"))
    assert "no valid credentials" in log
    assert "s3cr:et" not in log and "hunter2" not in log
    assert base64.b64encode(b"alice:s3cr:et").decode() not in log


def test_pagekite_py_refuses_without_credentials_too(group):
    relay = group.our_relay()
    origin, kite, conn = fly(group, relay, "pkauth", ["password/alice:s3cret"], pk=True)
    wait_flying(relay, kite, 401)
    status, headers, _ = http_request(relay.port, kite.name, timeout=10)
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Basic realm=")


def test_ip_list_admits_listed_and_refuses_others(group):
    relay = group.our_relay()
    origin, kite, conn = fly(group, relay, "iplist", ["+ip/127.0.0.1", "+ip/127.0.1"])
    wait_flying(relay, kite, 200)
    assert get_from("127.0.0.1", relay.port, kite.name)[0] == 200
    assert get_from("127.0.1.77", relay.port, kite.name)[0] == 200  # the /24 entry
    assert get_from("127.0.0.2", relay.port, kite.name)[0] == 503  # as pagekite.py
    conn.proc.wait_for(r"from 127\.0\.0\.2 refused: not on the kite's IP list", 10)


def test_ip_list_same_as_pagekite_py(group):
    relay = group.our_relay()
    origin, kite, conn = fly(group, relay, "pkip", ["ip/127.0.0.1:True"], pk=True)
    wait_flying(relay, kite, 200)
    assert get_from("127.0.0.2", relay.port, kite.name)[0] == 503


@pytest.mark.parametrize("rule,reason", [
    ("+password/alice", "password/ takes USER=PASSWORD"),
    ("+ip/10.0.0.0/8", "ip/ takes an address"),
    ("+insecure", "is not ip/ADDRESS or password/USER=PASSWORD"),
])
def test_bad_kite_rule_refuses_to_start(rule, reason):
    require_executable(PAGEKITEC, "pagekitec")
    r = subprocess.run([PAGEKITEC, "--frontend", "127.0.0.1:9", "--kite-access=k.example.test:" + rule,
                        "80", "http", "k.example.test", "0", "s"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert reason in r.stderr, r.stderr


def test_rule_for_an_unknown_kite_refuses_to_start():
    require_executable(PAGEKITEC, "pagekitec")
    r = subprocess.run([PAGEKITEC, "--frontend", "127.0.0.1:9", "--kite-access=typo.example.test:+ip/1.2.3.4",
                        "80", "http", "k.example.test", "0", "s"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "typo.example.test" in r.stderr and "no such kite" in r.stderr, r.stderr
