"""Self-check of the real proxy fixtures (proxies.py) with curl.

Each proxy must carry curl to a local origin (http.server started here) and
back, and refuse a wrong password.  curl -v shows that it really went
through the proxy.  A few raw exchanges pin down what these servers send,
which is what c/src/proxy.c must understand (tinyproxy answers a wrong
password with 401, microsocks answers RFC 1929 with version 1).
"""

import http.server
import os
import shutil
import socket
import subprocess
import threading

import pytest

import proxies

BODY = b"pk-proxy-selfcheck: the origin's body\n"
USER, PASSWORD = "joe", "s3cret"

pytestmark = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
SKIP_MISSING = os.environ.get("PK_E2E_SKIP_MISSING", "") not in ("", "0")


@pytest.fixture(autouse=True)
def daemons_installed():
    """Fail (skip with PK_E2E_SKIP_MISSING=1) when a proxy is not installed."""
    for name in proxies.PACKAGES:
        try:
            proxies.find_program(name)
        except proxies.ProxyError as e:
            if SKIP_MISSING:
                pytest.skip(str(e))
            pytest.fail(str(e), pytrace=False)


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def origin():
    srv = http.server.ThreadingHTTPServer((proxies.HOST, 0), _Handler)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()
    t.join(timeout=5)


def curl(*args):
    """curl -v with no proxy from the environment; (rc, body, stderr)."""
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    r = subprocess.run(["curl", "-sS", "-v", "--max-time", "10", "--noproxy", ""] + list(args),
                       capture_output=True, timeout=30, env=env)
    return r.returncode, r.stdout, r.stderr.decode("utf-8", "replace")


def target(origin, host=proxies.HOST):
    return "http://%s:%d/selfcheck" % (host, origin)


def exchange(p, messages):
    """Send each message, read one answer each (bounded); the answers."""
    answers = []
    with socket.create_connection((p.host, p.port), timeout=5) as s:
        for m in messages:
            s.sendall(m)
            answers.append(s.recv(4096))
    return answers


def assert_through(p, rc, body, err):
    assert rc == 0, err
    assert body == BODY
    assert "port %d" % p.port in err, err   # curl connected to the proxy


# ---------------------------------------------------------------- tinyproxy

def test_tinyproxy_connect(origin):
    with proxies.tinyproxy() as p:
        assert p.user is None and p.password is None and p.scheme == "http"
        rc, body, err = curl("--proxytunnel", "--proxy", p.url(), target(origin))
        assert_through(p, rc, body, err)
        assert "CONNECT %s:%d" % (proxies.HOST, origin) in err
        # CONNECT to any port: no ConnectPort restriction
        ans = exchange(p, [b"CONNECT 127.0.0.1:%d HTTP/1.1\r\nHost: x\r\n\r\n" % origin])
        assert ans[0].startswith(b"HTTP/1.") and b" 200 " in ans[0].split(b"\r\n")[0]


def test_tinyproxy_basic_auth(origin):
    with proxies.tinyproxy(USER, PASSWORD) as p:
        host, port, user, password = p
        assert (host, user, password) == (proxies.HOST, USER, PASSWORD)
        rc, body, err = curl("--proxytunnel", "--proxy", p.url(), target(origin))
        assert_through(p, rc, body, err)
        rc, body, err = curl("--proxytunnel", "--proxy", "http://%s:%d" % (host, port),
                             target(origin))
        assert rc != 0 and body == b"" and "407" in err, err
        rc, body, err = curl("--proxytunnel", "--proxy-user", "%s:wrong" % USER, "--proxy",
                             "http://%s:%d" % (host, port), target(origin))
        assert rc != 0 and body == b"", err
        assert "401" in err or "407" in err, err   # tinyproxy 1.11 says 401


# ---------------------------------------------------------------- SOCKS5

def test_danted_no_auth(origin):
    with proxies.danted() as p:
        assert p.scheme == "socks5" and p.user is None
        rc, body, err = curl("--socks5", "%s:%d" % (p.host, p.port), target(origin))
        assert_through(p, rc, body, err)
        # socks5h: the proxy resolves the name
        rc, body, err = curl("--proxy", p.url("socks5h"), target(origin, "localhost"))
        assert_through(p, rc, body, err)
        # a refused destination gets reply 5 (our "connection refused by
        # destination (reply 5)")
        closed = proxies.free_port()
        ans = exchange(p, [b"\x05\x01\x00",
                           b"\x05\x01\x00\x01\x7f\x00\x00\x01" + closed.to_bytes(2, "big")])
        assert ans[0] == b"\x05\x00"
        assert ans[1][:2] == b"\x05\x05"
        # no user: the user/password method is not accepted
        assert exchange(p, [b"\x05\x01\x02"]) == [b"\x05\xff"]


def test_microsocks_no_auth(origin):
    with proxies.microsocks() as p:
        rc, body, err = curl("--proxy", p.url(), target(origin))
        assert_through(p, rc, body, err)


def test_microsocks_user_password(origin):
    with proxies.socks5(USER, PASSWORD) as p:
        host, port, user, password = p
        assert (user, password) == (USER, PASSWORD)
        rc, body, err = curl("--proxy", p.url(), target(origin))
        assert_through(p, rc, body, err)
        rc, body, err = curl("--socks5", "%s:%d" % (host, port), "--proxy-user",
                             "%s:%s" % (USER, PASSWORD), target(origin))
        assert_through(p, rc, body, err)
        rc, body, err = curl("--proxy", "socks5://%s:wrong@%s:%d" % (USER, host, port),
                             target(origin))
        assert rc != 0 and body == b"", err
        rc, body, err = curl("--proxy", "socks5://%s:%d" % (host, port), target(origin))
        assert rc != 0 and body == b"", err
        # RFC 1929 status with version 1; a wrong password is a non-zero status
        ans = exchange(p, [b"\x05\x02\x00\x02", b"\x01\x03joe\x05wrong"])
        assert ans[0] == b"\x05\x02"
        assert ans[1][:1] == b"\x01" and ans[1][1:2] != b"\x00"
        ans = exchange(p, [b"\x05\x02\x00\x02", b"\x01\x03joe\x06s3cret",
                           b"\x05\x01\x00\x01\x7f\x00\x00\x01" + origin.to_bytes(2, "big")])
        assert ans[1] == b"\x01\x00"
        assert ans[2][:4] == b"\x05\x00\x00\x01" and len(ans[2]) == 10


# ---------------------------------------------------------------- lifecycle

@pytest.mark.parametrize("make", [proxies.tinyproxy, proxies.danted, proxies.microsocks],
                         ids=["tinyproxy", "danted", "microsocks"])
def test_stops_its_own_pid(make):
    with make() as p:
        pid = p.pid
        assert proxies.port_accepts(p.port)
        assert os.path.exists("/proc/%d" % pid)
        kids = proxies._children(pid)
        tmp = os.path.dirname(p.log)
        assert os.path.isdir(tmp)
    assert not os.path.exists("/proc/%d" % pid)
    assert not proxies.port_accepts(p.port)
    assert not any(os.path.exists("/proc/%d" % k) for k in kids)   # reaped, no zombies
    assert not os.path.exists(tmp)


def test_url_quotes_credentials():
    p = proxies.Proxy("127.0.0.1", 1080, "j o", "p@ss:w/rd")
    p.scheme = "socks5"
    assert p.url() == "socks5://j%20o:p%40ss%3Aw%2Frd@127.0.0.1:1080"
    assert p.url("socks5h").startswith("socks5h://")
