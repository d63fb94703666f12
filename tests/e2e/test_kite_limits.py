"""The most kites the API lets a connector fly, on one tunnel, really fly
(issue: no hidden cap below what pagekite_init accepts), and one more is
refused by pagekite_init with a reason instead of failing later."""
import re
import subprocess

import pytest

from harness import PAGEKITEC, SECRET, Kite, wait_http

pytestmark = [pytest.mark.ours]

MAX_KITES = 64  # PK_MAX_KITES_PER_TUNNEL (c/src/bounds.h), documented for max_kites


def test_max_kites_fly_on_one_tunnel(group):
    origin = group.origin(kite="k0.example.test")
    relay = group.our_relay()
    kites = [Kite("http", "k%d.example.test" % i, origin.port, 0, SECRET) for i in range(MAX_KITES)]
    conn = group.our_connector(relay, kites)
    conn.proc.wait_status("FLYING", timeout=30)
    # Every kite answers through the relay (the origin serves any Host).
    for i in (0, 1, MAX_KITES // 2, MAX_KITES - 1):
        wait_http("k%d.example.test" % i, relay.port, "/", timeout=10)
    # ... and all of them on one tunnel.
    log = conn.proc.output()
    assert len(re.findall(r"Connected to relay", log)) == 1, log[-3000:]
    assert len(re.findall(r"Kite http:k\d+\.example\.test is flying", log)) == MAX_KITES


def long_name(i):
    """A 253-character name (the longest DNS allows) ending in example.test."""
    labels = ["k%02d" % i + "a" * 58, "b" * 63, "c" * 63, "d" * 50]
    name = ".".join(labels) + ".example.test"
    assert len(name) == 253
    return name


def test_max_kites_with_longest_names_fly_on_one_tunnel(group):
    """64 kites of 253 characters do not fit one request head: the rest
    follow in NOOPs (AddKites), still on the one tunnel."""
    origin = group.origin(kite=long_name(0))
    relay = group.our_relay()
    kites = [Kite("http", long_name(i), origin.port, 0, SECRET) for i in range(MAX_KITES)]
    conn = group.our_connector(relay, kites)
    conn.proc.wait_status("FLYING", timeout=30)
    for i in (0, MAX_KITES - 1):
        wait_http(long_name(i), relay.port, "/", timeout=10)
    log = conn.proc.output()
    assert len(re.findall(r"Connected to relay", log)) == 1, log[-3000:]
    # (the names nearly fill a log line: match their start only)
    flying = set(re.findall(r"Kite http:(k\d\d)a", log))
    assert len(flying) == MAX_KITES, sorted(flying)


def test_one_kite_more_is_refused_at_init():
    argv = [str(PAGEKITEC), "--frontend", "127.0.0.1:9"]
    for i in range(MAX_KITES + 1):
        argv += ["127.0.0.1:9", "http", "k%d.example.test" % i, "0", SECRET]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=20)
    assert p.returncode != 0
    assert "at most %d kites" % MAX_KITES in p.stderr, p.stderr
