"""Our Python Connector behind Debian's pagekite.py relay (the reference
implementation, apt-get install pagekite).  Loopback only; waits are bounded."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import time

import pytest

from pkpy_helpers import (BIG_SIZE, DOMAIN, SECRET, dump, free_port, http_get, plain_flags,
                          wait_http)

pytestmark = pytest.mark.interop

PAGEKITE_PY = shutil.which("pagekite") or "/usr/bin/pagekite"


def port_accepts(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@pytest.fixture
def pk_relay(pk, tmp_path):
    """Debian's pagekite.py as a relay for http kites under *.example.test."""
    if not (os.path.isfile(PAGEKITE_PY) and os.access(PAGEKITE_PY, os.X_OK)):
        msg = "pagekite.py not found at %s (apt-get install -y pagekite)" % PAGEKITE_PY
        if os.environ.get("PK_E2E_SKIP_MISSING") == "1":
            pytest.skip(msg)
        pytest.fail(msg, pytrace=False)
    log = tmp_path / "pagekite-py.log"
    for attempt in range(3):  # a free_port() may be taken before pagekite.py binds it
        port = free_port()
        argv = [PAGEKITE_PY, "--clean", "--isfrontend", "--host=127.0.0.1",
                "--ports=%d" % port, "--protos=http",
                "--domain=http:*.%s:%s" % (DOMAIN, SECRET), "--nullui", "--nocrashreport",
                "--logfile=stdio"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=str(tmp_path),
                                    env={"HOME": str(tmp_path), "PATH": os.environ["PATH"],
                                         "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 15  # it takes ~1-2 s to start
        while time.monotonic() < deadline and proc.poll() is None and not port_accepts(port):
            time.sleep(0.1)
        if proc.poll() is None and port_accepts(port):
            break
        proc.kill()
        proc.wait(5)
        if attempt == 2:
            pytest.fail("pagekite.py not listening on %d:\n%s" % (port, log.read_text()))
    proc.port = port
    proc.logpath = log
    yield proc
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def connector_for(pk, managers, pk_relay, origin, name, secret=SECRET):
    c = pk.Connector(app_id="py-interop", max_frontends=1, flags=plain_flags(pk))  # plain relay
    managers.append(c)
    c.add_kite("http", name, secret, origin.port, origin_host="127.0.0.1")
    assert c.add_frontend("127.0.0.1", pk_relay.port) == 1
    c.start()
    return c


def relay_log(pk_relay):
    return "---- pagekite.py\n" + "\n".join(pk_relay.logpath.read_text(errors="replace")
                                            .splitlines()[-40:])


def test_page_through_debian_relay(pk, managers, pk_relay, origin):
    name = "interop." + DOMAIN
    c = connector_for(pk, managers, pk_relay, origin, name)
    assert c.wait_until(pk.Status.FLYING, 20), dump(c) + relay_log(pk_relay)
    assert wait_http(pk_relay.port, name, "/") == origin.index
    status, body = http_get(pk_relay.port, name, "/index.html")
    assert status == 200 and body == origin.index
    status, big = http_get(pk_relay.port, name, "/big.bin", timeout=60)
    assert status == 200, dump(c) + relay_log(pk_relay)
    assert len(big) == BIG_SIZE and hashlib.sha256(big).hexdigest() == origin.big_sha256
    assert c.counter(pk.Counter.KITES_LIVE) == 1
    assert c.counter(pk.Counter.STREAMS_TOTAL) >= 3
    # pagekite.py does not serve kites nobody flies
    status, _ = http_get(pk_relay.port, "nobody." + DOMAIN, "/", timeout=10)
    assert status != 200


def test_wrong_secret_rejected_by_debian_relay(pk, managers, pk_relay, origin):
    name = "badsecret." + DOMAIN
    c = connector_for(pk, managers, pk_relay, origin, name, secret="not-the-secret")
    assert c.wait_until(pk.Status.REJECTED, 20), dump(c) + relay_log(pk_relay)
    assert c.counter(pk.Counter.KITES_LIVE) == 0
    status, _ = http_get(pk_relay.port, name, "/", timeout=10)
    assert status != 200
