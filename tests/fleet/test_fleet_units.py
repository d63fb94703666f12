"""Socket-free units of the fleet's operator scripts (contrib/fleet):
the customer table, pagekite.py's signatures, the zero-knowledge auth
answers and the DDNS update check, checked against pagekite.py's own
signToken (Debian's pagekite package) where it has one."""

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "contrib" / "fleet"))
import pkfleet  # noqa: E402

PKPY_PROTO = Path("/usr/lib/python3/dist-packages/pagekite/proto/proto.py")


def pkpy_sign(calls):
    """pagekite.py's signToken for each (token, secret, payload, timestamp, length)."""
    if not PKPY_PROTO.exists():
        pytest.fail("pagekite.py is not installed (apt-get install pagekite)")
    code = ("import json,sys\nfrom pagekite.proto.proto import signToken\n"
            "print(json.dumps([signToken(token=t, secret=s, payload=p, timestamp=ts, length=n)"
            " for t, s, p, ts, n in json.load(sys.stdin)]))")
    r = subprocess.run(["/usr/bin/python3", "-c", code], input=json.dumps(calls),
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


TABLE_TEXT = """
# name secret quota
alice.users.fleet.test  s3cret-alice  2048
*.bob.users.fleet.test  s3cret-bob
carol.users.fleet.test  s3cret-carol  70000 30 5
"""


def test_customer_table_parses_and_scopes():
    t = pkfleet.parse_customers(TABLE_TEXT)
    assert pkfleet.find_customer(t, "ALICE.users.fleet.test.").secret == "s3cret-alice"
    assert pkfleet.find_customer(t, "alice.users.fleet.test").quota_kb == 2048
    assert pkfleet.find_customer(t, "www.bob.users.fleet.test").secret == "s3cret-bob"
    assert pkfleet.find_customer(t, "_any_.bob.users.fleet.test").secret == "s3cret-bob"
    assert pkfleet.find_customer(t, "bob.users.fleet.test") is None
    assert pkfleet.find_customer(t, "mallory.users.fleet.test") is None
    c = pkfleet.find_customer(t, "carol.users.fleet.test")
    assert (c.quota_kb, c.days, c.conns) == (70000, 30, 5)


@pytest.mark.parametrize("line", ["lonely-name", "a.b s x", "bad..name s", "a.b s 0",
                                  "a.b s 1 2 3 4", "a.b s -5"])
def test_customer_table_rejects_bad_lines(line):
    with pytest.raises(ValueError, match="line 1"):
        pkfleet.parse_customers(line)


def test_customer_table_file_reload_keeps_last_good(tmp_path):
    p = tmp_path / "customers"
    p.write_text("a.fleet.test s1\n")
    logs = []
    t = pkfleet.CustomerTable(str(p), logs.append)
    assert t.lookup("a.fleet.test").secret == "s1"
    p.write_text("a.fleet.test s1\nb.fleet.test s2\n")
    assert t.lookup("b.fleet.test").secret == "s2"
    p.write_text("a.fleet.test s1\nbroken-line-without-secret-and-longer\n")
    assert t.lookup("b.fleet.test").secret == "s2"  # last good table kept
    assert logs and "line 2" in logs[-1]


def test_signatures_match_pagekite_py():
    now = time.time()
    calls = [["0123456789abcdef", "sec", "http:a.b:srand:tok", None, 36],
             ["fedcba9876543210", "s3cret", "a.fleet.test:10.0.0.1", None, 100],
             ["0123456789abcdef", "sec", "http:a.b:srand:tok", now, 36]]
    ref = pkpy_sign(calls)
    for (tok, sec, pay, ts, n), want in zip(calls, ref):
        assert pkfleet.sign_token(tok, sec, pay, ts, n) == want
        assert pkfleet.check_signature(want, sec, pay, now=now, length=n)
        assert not pkfleet.check_signature(want, sec + "x", pay, now=now, length=n)
        assert not pkfleet.check_signature(want, sec, pay + "x", now=now, length=n)
    # A timestamped signature is good for this window and the one before only.
    t_sig = ref[2]
    assert pkfleet.check_signature(t_sig, "sec", "http:a.b:srand:tok", now=now + 600)
    assert not pkfleet.check_signature(t_sig, "sec", "http:a.b:srand:tok", now=now + 1300)


def zk_query(secret, proto, domain, srand="a1b2c3", token="d4e5f6", auth="auth.fleet.test"):
    payload = "%s:%s:%s:%s" % (proto, domain, srand, token)
    sign = pkpy_sign([["0011223344556677", secret, payload, None, 36]])[0]
    dns_domain = domain.replace("*", "_any_")
    return "%s.%s.%s.%s.%s.%s." % (srand, token, sign, proto, dns_domain, auth)


def test_zk_answers_quota_unknown_and_invalid():
    t = pkfleet.parse_customers(TABLE_TEXT)
    q = zk_query("s3cret-alice", "http", "alice.users.fleet.test")
    assert pkfleet.zk_answer(t, q, "auth.fleet.test") == "0.0.8.0"  # 2048 KB
    q = zk_query("s3cret-alice", "http-8080", "alice.users.fleet.test")
    assert pkfleet.zk_answer(t, q.upper(), "AUTH.fleet.test") == "0.0.8.0"
    q = zk_query("s3cret-bob", "http", "*.bob.users.fleet.test")
    assert pkfleet.zk_answer(t, q, "auth.fleet.test") == pkfleet.quota_address(1048576)
    q = zk_query("wrong", "http", "alice.users.fleet.test")
    assert pkfleet.zk_answer(t, q, "auth.fleet.test") == "255.255.255.1"
    # An unknown kite: 255.255.255.1 by default (pagekite.py lets .0 fly).
    q = zk_query("s3cret-alice", "http", "mallory.users.fleet.test")
    assert pkfleet.zk_answer(t, q, "auth.fleet.test") == "255.255.255.1"
    assert pkfleet.zk_answer(t, q, "auth.fleet.test",
                             unknown=pkfleet.AUTH_ERR_USER_UNKNOWN) == "255.255.255.0"


@pytest.mark.parametrize("qname", ["auth.fleet.test.", "x.auth.fleet.test.",
                                   "a.b.c.http.auth.fleet.test.", "a.b.zz!.http.k.auth.fleet.test.",
                                   "a.b.0abc.ht_tp.k.x.auth.fleet.test.",
                                   "a.b.0abc.http.k.x.other.test."])
def test_zk_ignores_what_is_not_an_auth_query(qname):
    t = pkfleet.parse_customers(TABLE_TEXT)
    assert pkfleet.zk_answer(t, qname, "auth.fleet.test") is None


def test_quota_address_bounds():
    assert pkfleet.quota_address(1) == "0.0.0.1"
    assert pkfleet.quota_address(0) == "0.0.0.1"  # never 0.0.0.0: pagekite.py reads 0 as no quota
    assert pkfleet.quota_address(1 << 40) == "255.255.254.255"  # never an error address


def test_ddns_check_as_pagekite_net():
    t = pkfleet.parse_customers(TABLE_TEXT)
    sign = pkpy_sign([["8899aabbccddeeff", "s3cret-alice",
                       "alice.users.fleet.test:10.1.0.11,10.1.0.12", None, 100]])[0]
    assert len(sign) == 48
    assert pkfleet.ddns_check(t, "alice.users.fleet.test", "10.1.0.11,10.1.0.12", sign) == \
        (["10.1.0.11", "10.1.0.12"], None)
    assert pkfleet.ddns_check(t, "alice.users.fleet.test", "10.1.0.13", sign) == (None, "badauth")
    assert pkfleet.ddns_check(t, "mallory.users.fleet.test", "10.1.0.11", sign) == (None, "nohost")
    assert pkfleet.ddns_check(t, "", "", "") == (None, "nohost")
    bad = pkpy_sign([["8899aabbccddeeff", "s3cret-alice", "alice.users.fleet.test:10.1.0.999",
                      None, 100]])[0]
    assert pkfleet.ddns_check(t, "alice.users.fleet.test", "10.1.0.999", bad) == (None, "badip")


def test_pipe_backend_speaks_abi_1(tmp_path):
    """The PowerDNS pipe protocol end to end through the script's stdin/stdout."""
    cust = tmp_path / "customers"
    cust.write_text(TABLE_TEXT)
    q = zk_query("s3cret-alice", "http", "alice.users.fleet.test")
    lines = ["HELO\t1", "Q\tauth.fleet.test\tIN\tSOA\t-1\t10.0.0.1",
             "Q\t%s\tIN\tANY\t-1\t10.0.0.1" % q.rstrip("."),
             "Q\tnothing.else.test\tIN\tA\t-1\t10.0.0.1", "AXFR\t1", ""]
    r = subprocess.run([sys.executable, str(ROOT / "contrib/fleet/pagekite-zk-auth-pipe"),
                        "--authdomain", "auth.fleet.test", "--customers", str(cust)],
                       input="\n".join(lines), capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    out = r.stdout.splitlines()
    assert out[0].startswith("OK\t")
    assert out[1].startswith("DATA\tauth.fleet.test\tIN\tSOA\t3600\t-1\tns.auth.fleet.test.")
    assert out[2] == "END"
    assert out[3] == "DATA\t%s\tIN\tA\t60\t-1\t0.0.8.0" % q.rstrip(".")
    assert out[4:] == ["END", "END", "END"]
    r = subprocess.run([sys.executable, str(ROOT / "contrib/fleet/pagekite-zk-auth-pipe"),
                        "--authdomain", "auth.fleet.test", "--customers", str(cust)],
                       input="HELO\t2\n", capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stdout == "FAIL\n"
