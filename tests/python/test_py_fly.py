"""A Python Relay and a Python Connector fly kites in one process (loopback)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import signal
import subprocess
import sys
import time

import pytest

from pkpy_helpers import DOMAIN, SECRET, dump, free_port, http_get, plain_flags, wait_http


def make_connector(pk, managers, relay, origin, name, secret=SECRET, **kw):
    kw.setdefault("flags", plain_flags(pk))  # the relay fixture has no certificate
    c = pk.Connector(app_id="py-test-connector", **kw)
    managers.append(c)
    c.add_kite("http", name, secret, origin.port, origin_host="127.0.0.1")
    assert c.add_frontend("127.0.0.1", relay.port) >= 1
    c.start()
    return c


def test_page_and_5mb_download(pk, managers, relay, origin):
    name = "fly." + DOMAIN
    c = make_connector(pk, managers, relay, origin, name)
    assert c.wait_until(pk.Status.FLYING, 20), dump(c, relay)
    assert c.status is pk.Status.FLYING
    body = wait_http(relay.port, name, "/")
    assert body == origin.index
    status, big = http_get(relay.port, name, "/big.bin", timeout=60)
    assert status == 200
    assert len(big) == 5 * 1024 * 1024
    assert hashlib.sha256(big).hexdigest() == origin.big_sha256
    counters = c.counters()
    assert counters["kites_live"] == 1
    assert counters["tunnels"] >= 1
    assert counters["streams_total"] >= 2
    assert counters["bytes_in"] + counters["bytes_out"] >= 5 * 1024 * 1024, counters
    assert relay.counter(pk.Counter.KITES_LIVE) == 1
    assert any(line for line in c.log), "empty connector log"
    # an unknown kite is not served
    status, _ = http_get(relay.port, "nobody." + DOMAIN, "/", timeout=10)
    assert status != 200


def test_wrong_secret_is_rejected(pk, managers, relay, origin):
    c = make_connector(pk, managers, relay, origin, "wrong." + DOMAIN,
                       secret="definitely-not-the-secret")
    assert c.wait_until(pk.Status.REJECTED, 20), dump(c, relay)
    assert c.status == pk.Status.REJECTED
    assert c.counter(pk.Counter.KITES_LIVE) == 0
    assert relay.counter(pk.Counter.KITES_LIVE) == 0
    status, _ = http_get(relay.port, "wrong." + DOMAIN, "/", timeout=10)
    assert status != 200


def test_context_manager_start_on_enter_and_close(pk, relay, origin):
    name = "ctx." + DOMAIN
    c = pk.Connector(start_on_enter=True, flags=plain_flags(pk))
    c.add_kite("http", name, SECRET, origin.port, origin_host="127.0.0.1")
    c.add_frontend("127.0.0.1", relay.port)
    with c as entered:
        assert entered is c and c.running
        assert c.wait_until(pk.Status.FLYING, 20), dump(c, relay)
        assert wait_http(relay.port, name) == origin.index
    assert c.closed and not c.running
    # the relay notices the tunnel went away and stops serving the kite
    deadline = time.monotonic() + 15
    while relay.counter(pk.Counter.KITES_LIVE) != 0 and time.monotonic() < deadline:
        relay.poll(1)
    assert relay.counter(pk.Counter.KITES_LIVE) == 0, dump(relay)


def test_async_statuses(pk, managers, relay, origin):
    c = make_connector(pk, managers, relay, origin, "async." + DOMAIN)

    async def collect():
        seen = []
        async for status in c.statuses():
            seen.append(status)
            if status == pk.Status.FLYING:
                break
        return seen

    seen = asyncio.run(asyncio.wait_for(collect(), 20))
    assert seen[-1] == pk.Status.FLYING, (seen, dump(c))
    assert all(isinstance(s, pk.Status) for s in seen)
    assert len(set(seen)) == len(seen)  # only changes are reported


def _wait_line(proc, path, text, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError("%r not seen in %s within %.0f s (rc %s):\n%s"
                         % (text, path, timeout, proc.poll(), path.read_text(errors="replace")))


def test_cli_relay_and_connect(pk, tmp_path, origin):
    port = free_port()
    name = "cli." + DOMAIN
    procs = []

    def spawn(label, *args):
        out = open(tmp_path / (label + ".out"), "wb")
        err = open(tmp_path / (label + ".err"), "wb")
        p = subprocess.Popen([sys.executable, "-m", "pagekite", *args], stdout=out, stderr=err,
                             stdin=subprocess.DEVNULL, cwd=str(tmp_path))
        procs.append(p)
        return p

    try:
        relay = spawn("relay", "relay", "--listen", "127.0.0.1", "--ports", str(port),
                      "--domain", "http:*.%s:%s" % (DOMAIN, SECRET))
        _wait_line(relay, tmp_path / "relay.out", "status: FLYING", 15)
        conn = spawn("connect", "connect", "--frontend", "127.0.0.1:%d" % port,
                     "127.0.0.1:%d" % origin.port, "http", name, "0", SECRET)
        _wait_line(conn, tmp_path / "connect.out", "status: FLYING", 20)
        assert wait_http(port, name) == origin.index
        for p in (conn, relay):
            p.send_signal(signal.SIGTERM)
            assert p.wait(15) == 0
        assert "libpagekite" in (tmp_path / "connect.err").read_text()
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)


@pytest.mark.parametrize("args", [["--help"], ["connect", "--help"], ["relay", "--help"]])
def test_cli_help(pk, tmp_path, args):
    r = subprocess.run([sys.executable, "-m", "pagekite", *args], capture_output=True,
                       text=True, timeout=30, cwd=str(tmp_path))
    assert r.returncode == 0
    assert "usage: python -m pagekite" in r.stdout
    if args[0] == "connect":
        assert "LPORT PROTO NAME PPORT SECRET" in r.stdout
    if args[0] == "relay":
        assert "PROTOS:PATTERN:SECRET" in r.stdout


def test_cli_bad_arguments(pk, tmp_path):
    r = subprocess.run([sys.executable, "-m", "pagekite", "relay", "--ports", "x",
                        "--domain", "http:a:b"], capture_output=True, text=True, timeout=30,
                       cwd=str(tmp_path))
    assert r.returncode == 2 and "bad port list" in r.stderr
    r = subprocess.run([sys.executable, "-m", "pagekite", "connect", "--frontend",
                        "127.0.0.1:1", "8000", "http", "bad name", "0", "s"],
                       capture_output=True, text=True, timeout=30, cwd=str(tmp_path))
    assert r.returncode == 1 and "pagekite_add_kite" in r.stderr
    assert os.path.isdir(tmp_path)
