"""Checks shared by the files that run our pagekitec behind a relay.

A test file subclasses ConnectorChecks as class Test...(ConnectorChecks) and
sets relay_kind ("pk" for pagekite.py, "ours" for pagekiter) and the few
numbers that differ.  The shared stack (one relay, one origin, one echo
server and one pagekitec flying an http and a raw kite) is built
once per class; tests that break things (wrong secret, relay restart,
origin down) build their own pieces.
"""

import os
import time

import pytest

from harness import (PAGEKITEC, PAGEKITER, SECRET, WRONG_SECRET, Kite, concurrent_gets,
                     download_sha256, http_request, keepalive_headers, kite_name, raw_echo,
                     record, require_executable, upload_sha256, wait_http, websocket_echo)
from origin import pattern_sha256

MB = 1024 * 1024


class Stack:
    def __init__(self, relay, connector, origin, echo, http_kite, raw_kite):
        self.relay = relay
        self.connector = connector
        self.origin = origin
        self.echo = echo
        self.http_kite = http_kite
        self.raw_kite = raw_kite

    @property
    def port(self):
        return self.relay.port

    @property
    def host(self):
        return self.http_kite.name


def make_relay(group, kind, **kw):
    if kind == "pk":
        return group.pk_relay(**kw)
    return group.our_relay(**kw)


# pagekitec's default connection pool (-c 25) answers 503 beyond 25 streams
# at once: the shared stack needs room for the 200 concurrent requests.
STACK_ARGS = ("-c", "256")


def build_stack(group, kind, label, extra_args=STACK_ARGS, timeout=30.0):
    require_executable(PAGEKITEC, "pagekitec")
    if kind != "pk":
        require_executable(PAGEKITER, "pagekiter")
    origin = group.origin(kite_name(label))
    echo = group.echo()
    relay = make_relay(group, kind)
    http_kite = Kite("http", kite_name(label), origin.port, relay.port, SECRET)
    raw_kite = Kite("raw", kite_name(label + "-raw"), echo.port, relay.port, SECRET)
    conn = group.our_connector(relay, [http_kite, raw_kite], extra_args)
    conn.wait_serving(timeout=timeout)
    conn.wait_raw_serving(raw_kite, timeout=timeout)
    return Stack(relay, conn, origin, echo, http_kite, raw_kite)


class ConnectorChecks:
    relay_kind = None          # "pk" or "ours"
    label = "demo"
    concurrency = 200          # thread-pool size for the 200 requests
    restart_bound_s = 30.0     # kite must serve again within this after restart
    download_mb = 50
    upload_mb = 20

    @pytest.fixture(scope="class")
    @classmethod
    def stack(cls, module_group):
        return build_stack(module_group, cls.relay_kind, cls.label)

    # ---- transfers

    def test_small_get(self, stack):
        status, headers, body = http_request(stack.port, stack.host, "GET", "/", timeout=15)
        assert status == 200, body[:300]
        assert ("Hello from %s" % stack.host).encode() in body

    @pytest.mark.slow
    def test_download_sha256(self, stack):
        n = self.download_mb * MB
        t0 = time.monotonic()
        status, got, sha = download_sha256(stack.port, stack.host, n, timeout=150)
        dt = time.monotonic() - t0
        record("%s download" % self.label, "%d MB in %.2f s (%.1f MB/s)"
               % (self.download_mb, dt, self.download_mb / max(dt, 1e-6)))
        assert status == 200
        assert got == n, "received %d of %d bytes" % (got, n)
        assert sha == pattern_sha256(n), "sha256 mismatch"

    @pytest.mark.slow
    def test_upload_sha256(self, stack):
        n = self.upload_mb * MB
        t0 = time.monotonic()
        status, answer = upload_sha256(stack.port, stack.host, n, timeout=150)
        dt = time.monotonic() - t0
        record("%s upload" % self.label, "%d MB in %.2f s (%.1f MB/s)"
               % (self.upload_mb, dt, self.upload_mb / max(dt, 1e-6)))
        assert status == 200, answer
        assert answer == {"sha256": pattern_sha256(n), "len": n}

    def test_200_concurrent_requests(self, stack):
        t0 = time.monotonic()
        errors = concurrent_gets(stack.port, stack.host, count=200, workers=self.concurrency,
                                 size=4000, timeout=60)
        record("%s concurrency" % self.label, "200 requests (%d at a time) in %.2f s"
               % (self.concurrency, time.monotonic() - t0))
        assert not errors, "%d of 200 failed, first: %s" % (len(errors), errors[:5])

    def test_keepalive_forwarded_headers(self, stack):
        answers = keepalive_headers(stack.port, stack.host, count=3)
        ids = [a["conn_id"] for a in answers]
        assert len(set(ids)) == 1, "3 requests on one client connection reached the " \
                                   "origin on connections %s" % ids
        for i, a in enumerate(answers):
            h = a["headers"]
            assert h.get("x-forwarded-for") == "127.0.0.1", \
                "request %d: X-Forwarded-For %r (headers %s)" % (i + 1, h.get("x-forwarded-for"), h)
            assert h.get("x-forwarded-proto") == "http", \
                "request %d: X-Forwarded-Proto %r" % (i + 1, h.get("x-forwarded-proto"))
            assert h.get("host") == stack.host

    def test_no_forwarded_headers_with_H(self, stack, group):
        # pagekitec -H: "do not add X-Forwarded-Proto and X-Forwarded-For".
        origin = group.origin(kite_name(self.label + "-noxff"))
        kite = Kite("http", origin.kite, origin.port, stack.relay.port, SECRET)
        conn = group.our_connector(stack.relay, [kite], ["-H"])
        conn.wait_serving(timeout=30)
        answers = keepalive_headers(stack.port, kite.name, count=2)
        for a in answers:
            assert "x-forwarded-for" not in a["headers"], a["headers"]
            assert "x-forwarded-proto" not in a["headers"], a["headers"]

    def test_websocket_echo(self, stack):
        msgs = ["hello", "\u00e9t\u00e9 \u2603", "z" * 100000, "bye"]
        assert websocket_echo(stack.port, stack.host, msgs, timeout=20) == msgs

    def test_raw_kite_echo(self, stack):
        payload = os.urandom(256 * 1024)
        got = raw_echo(stack.port, stack.raw_kite.name, stack.raw_kite.pport, payload,
                       timeout=20)
        assert len(got) == len(payload), "echoed %d of %d bytes" % (len(got), len(payload))
        assert got == payload

    # ---- failures and recovery

    def test_wrong_secret_rejected(self, stack, group):
        kite = Kite("http", kite_name(self.label + "-wrong"), stack.origin.port,
                    stack.relay.port, WRONG_SECRET)
        conn = group.our_connector(stack.relay, [kite])
        conn.proc.wait_status("REJECTED", timeout=15)
        assert "FLYING" not in conn.proc.statuses()
        status, _h, _b = http_request(stack.port, kite.name, "GET", "/", timeout=10)
        assert status != 200

    @pytest.mark.slow
    def test_relay_restart(self, stack, group):
        origin = group.origin(kite_name(self.label + "-rs"))
        relay = make_relay(group, self.relay_kind)
        kite = Kite("http", origin.kite, origin.port, relay.port, SECRET)
        conn = group.our_connector(relay, [kite])
        conn.wait_serving(timeout=30)
        relay.kill()
        time.sleep(0.5)
        status = None
        try:
            status = http_request(relay.port, kite.name, "GET", "/", timeout=3)[0]
        except OSError:
            pass
        assert status is None, "relay port still answers after the relay was killed"
        relay.start()
        t0 = time.monotonic()
        conn.wait_serving(timeout=self.restart_bound_s + 15)
        dt = time.monotonic() - t0
        record("%s relay restart" % self.label,
               "kite served again %.2f s after the relay accepted connections" % dt)
        assert dt <= self.restart_bound_s, "took %.1f s (bound %.0f s)" % (dt,
                                                                          self.restart_bound_s)
        assert conn.proc.alive

    def test_origin_down_503(self, stack, group):
        origin = group.origin(kite_name(self.label + "-od"))
        kite = Kite("http", origin.kite, origin.port, stack.relay.port, SECRET)
        conn = group.our_connector(stack.relay, [kite])
        conn.wait_serving(timeout=30)
        origin.stop()
        status, _h, body = http_request(stack.port, kite.name, "GET", "/", timeout=15)
        assert status == 503, "origin down: HTTP %d %r" % (status, body[:200])
        origin.start()   # same port
        wait_http(kite.name, stack.port, "/", timeout=10)
        assert conn.proc.alive
