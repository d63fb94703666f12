"""contrib/fleet/pagekite-ddns-endpoint on loopback, without a DNS server
(the fleet test covers real RFC 2136 updates): its answers to good, forged
and malformed updates, and its bound on requests in progress."""

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "contrib" / "fleet"))
import pkfleet  # noqa: E402

ENDPOINT = ROOT / "contrib" / "fleet" / "pagekite-ddns-endpoint"
SYS_PY = "/usr/bin/python3"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def endpoint(tmp_path):
    r = subprocess.run([SYS_PY, "-c", "import dns.update"], capture_output=True)
    assert r.returncode == 0, "needs python3-dnspython (apt-get install python3-dnspython)"
    cust = tmp_path / "customers"
    cust.write_text("alice.fleet.test s3cret-alice\n")
    port, dns_port = free_port(), free_port()  # nothing answers DNS on dns_port
    p = subprocess.Popen([SYS_PY, str(ENDPOINT), "--listen", "127.0.0.1:%d" % port,
                          "--customers", str(cust), "--zone", "fleet.test",
                          "--dns-server", "127.0.0.1", "--dns-port", str(dns_port)],
                         stdout=subprocess.DEVNULL, stderr=open(tmp_path / "endpoint.log", "w"))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                assert p.poll() is None, (tmp_path / "endpoint.log").read_text()
                time.sleep(0.1)
        yield port
    finally:
        p.kill()
        p.wait(timeout=10)


def get(port, query, timeout=10):
    with urllib.request.urlopen("http://127.0.0.1:%d/?%s" % (port, query), timeout=timeout) as r:
        return r.read().decode().strip()


def test_answers(endpoint):
    sign = pkfleet.sign_token("0123abcd", "s3cret-alice", "alice.fleet.test:10.1.0.11",
                              length=100)
    # A good sign reaches the DNS step, which fails here (no server).
    assert get(endpoint, "hostname=alice.fleet.test&myip=10.1.0.11&sign=" + sign) == "dnserr"
    assert get(endpoint, "hostname=alice.fleet.test&myip=10.1.0.12&sign=" + sign) == "badauth"
    assert get(endpoint, "hostname=bob.fleet.test&myip=10.1.0.11&sign=" + sign) == "nohost"
    assert get(endpoint, "hostname=" + "a" * 5000) == "nohost"
    assert get(endpoint, "") == "nohost"


def test_requests_in_progress_are_bounded(endpoint):
    held = []
    try:
        for _ in range(70):  # more than its 64: each sends half a request
            s = socket.create_connection(("127.0.0.1", endpoint), timeout=5)
            s.sendall(b"GET /?hostname=x HTTP/1.1\r\n")
            held.append(s)
        time.sleep(0.5)
        closed = 0
        for s in held:
            s.settimeout(0.01)
            try:
                closed += s.recv(1) == b""
            except socket.timeout:
                pass
            except OSError:
                closed += 1
        assert closed == 6, closed  # those over the bound (64) were closed at once
    finally:
        for s in held:
            s.close()
    # Once the held ones are gone (their threads see EOF), it serves again.
    deadline, answer = time.monotonic() + 10, None
    while time.monotonic() < deadline and answer is None:
        try:
            answer = get(endpoint, "hostname=bob.fleet.test")
        except OSError:  # http.client.RemoteDisconnected: still at its bound
            time.sleep(0.2)
    assert answer == "nohost"
