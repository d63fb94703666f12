"""Tunnels to relays through real outgoing proxies (issue "Connector in the
field", item 8): tinyproxy (HTTP CONNECT, with and without Basic auth),
dante-server (SOCKS5) and microsocks (SOCKS5 with RFC 1929 user/password).

Each case flies a kite through the proxy and checks that the proxy carried
it (the connector says so, and the proxy's own log shows the CONNECT); a
wrong password and a proxy that is down give a clear error and are retried.
"""

import os
import re
import time

import pytest

import proxies
from harness import Kite, kite_name, wait_http

pytestmark = pytest.mark.ours
USER, PASSWORD = "joe", "s3cret"


@pytest.fixture(autouse=True)
def daemons_installed():
    for name in proxies.PACKAGES:
        try:
            proxies.find_program(name)
        except proxies.ProxyError as e:
            pytest.fail(str(e), pytrace=False)


def fly_through(group, proxy_url, extra=(), relay_kw=None, env=None):
    relay = group.our_relay(**(relay_kw or {}))
    name = kite_name("px")
    origin = group.origin(name)
    conn = group.our_connector(relay, [Kite("http", name, origin.port)],
                               ["--proxy", proxy_url] + list(extra) if proxy_url else list(extra))
    return relay, conn, name


def assert_flies(relay, conn, name):
    conn.proc.wait_status("FLYING", timeout=30)
    wait_http(name, relay.port, "/", timeout=10)
    conn.proc.wait_for(r"Proxy \S+ connected us", timeout=5, where="err",
                       what="the connector's word that the proxy carried the tunnel")


@pytest.mark.parametrize("kind", ["http", "http-auth", "socks5", "socks5h-auth"])
def test_tunnel_through_proxy(group, kind):
    auth = kind.endswith("-auth")
    if kind.startswith("http"):
        ctx, scheme = proxies.tinyproxy(USER if auth else None, PASSWORD if auth else None), "http"
    elif auth:
        ctx, scheme = proxies.microsocks(USER, PASSWORD), "socks5h"
    else:
        ctx, scheme = proxies.danted(), "socks5"
    with ctx as px:
        relay, conn, name = fly_through(group, px.url(scheme))
        assert_flies(relay, conn, name)
        if px.log and os.path.exists(px.log) and kind.startswith("http"):
            log = open(px.log, errors="replace").read()
            assert "CONNECT" in log and str(relay.port) in log, log[-2000:]
        if auth:
            assert PASSWORD not in conn.proc.stderr(), "the password leaked into the log"


def test_tls_tunnel_through_proxy(group, tls_pki):
    with proxies.tinyproxy() as px:
        relay, conn, name = fly_through(
            group, px.url("http"), ["--tls", "--ca-file", str(tls_pki.ca)],
            relay_kw={"tls_cert": tls_pki.relay_cert, "tls_key": tls_pki.relay_key})
        assert_flies(relay, conn, name)


@pytest.mark.parametrize("kind", ["http", "socks5h"])
def test_wrong_password_is_a_clear_error_and_retried(group, kind):
    ctx = proxies.tinyproxy(USER, PASSWORD) if kind == "http" else proxies.microsocks(USER, PASSWORD)
    with ctx as px:
        url = px.url(kind).replace(PASSWORD, "bad-pw-xyz")
        relay, conn, name = fly_through(group, url)
        pattern = (r"proxy \S+: proxy refused: HTTP 40[17]" if kind == "http"
                   else r"proxy \S+: SOCKS5 proxy\b.*(password|authentication)")
        conn.proc.wait_for(pattern, timeout=20, where="err", what="the proxy's refusal")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if len(re.findall(pattern, conn.proc.stderr())) >= 2:
                break
            time.sleep(0.2)
        assert len(re.findall(pattern, conn.proc.stderr())) >= 2, "not retried\n" + \
            conn.proc.tail()
        assert "FLYING" not in conn.proc.statuses()
        assert "bad-pw-xyz" not in conn.proc.stderr(), "the password leaked into the log"


def test_proxy_down_is_a_clear_error_and_retried(group):
    port = proxies.free_port()
    relay, conn, name = fly_through(group, "http://127.0.0.1:%d" % port)
    pattern = r"connecting to proxy http://127\.0\.0\.1:%d failed: connection refused" % port
    conn.proc.wait_for(pattern, timeout=20, where="err", what="the proxy being down")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and len(re.findall(pattern, conn.proc.stderr())) < 2:
        time.sleep(0.2)
    assert len(re.findall(pattern, conn.proc.stderr())) >= 2, conn.proc.tail()


def test_environment_proxy_and_no_proxy(group, monkeypatch):
    with proxies.tinyproxy() as px:
        monkeypatch.setenv("https_proxy", px.url("http"))
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        relay, conn, name = fly_through(group, None)
        assert_flies(relay, conn, name)
        conn.stop()
        # no_proxy naming the relay: straight there.
        monkeypatch.setenv("no_proxy", "localhost,127.0.0.1")
        relay2, conn2, name2 = fly_through(group, None)
        conn2.proc.wait_status("FLYING", timeout=30)
        wait_http(name2, relay2.port, "/", timeout=10)
        assert "Proxy" not in conn2.proc.stderr() or \
            not re.search(r"Proxy \S+ connected us", conn2.proc.stderr())
