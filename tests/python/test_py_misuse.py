"""Misuse of the bindings: TypeError, PageKiteError, and never a crash."""

from __future__ import annotations

import threading
import time

import pytest

from pkpy_helpers import free_port


def test_wrong_types_raise_typeerror(pk):
    with pytest.raises(TypeError):
        pk.Connector(max_kites="8")
    with pytest.raises(TypeError):
        pk.Connector(app_id=42)
    with pytest.raises(TypeError):
        pk.Relay(max_conns=1.5)
    with pk.Connector() as c:
        with pytest.raises(TypeError):
            c.add_kite("http", "a.example.test", "s", "8000")
        with pytest.raises(TypeError):
            c.add_kite(b"http", "a.example.test", "s", 8000)
        with pytest.raises(TypeError):
            c.add_kite("http", None, "s", 8000)
        with pytest.raises(TypeError):
            c.add_frontend(("127.0.0.1",), 80)
        with pytest.raises(TypeError):
            c.add_frontend("127.0.0.1", "80")
        with pytest.raises(TypeError):
            c.set_tls_verify(True, ca_file=3)
        with pytest.raises(TypeError):
            c.poll("1")
        with pytest.raises(TypeError):
            c.counter("bytes")
    with pk.Relay() as r:
        with pytest.raises(TypeError):
            r.add_listener("127.0.0.1", None)
        with pytest.raises(TypeError):
            r.add_domain("http", "*.example.test", 1234)


def test_api_wrong_types(pk):
    api = pk.api
    with pytest.raises(TypeError):
        api.get_status("not a manager")
    with pytest.raises(TypeError):
        api.init("x", "1", 1, 16, None, 0, 0)
    with pytest.raises(TypeError):
        api.init(1, 1, 1, 16, None, 0, 0)
    with pytest.raises(TypeError):
        api.get_status()  # missing argument
    with pytest.raises(ValueError):
        api.init("x\0y", 1, 1, 16, None, 0, 0)


def test_bad_values_raise_pagekiteerror(pk):
    with pytest.raises(pk.PageKiteError) as e:
        pk.Connector(max_frontends=0)
    assert "max_frontends 0" in str(e.value)
    with pytest.raises(pk.PageKiteError):
        pk.Connector(max_conns=-5)
    with pytest.raises(pk.PageKiteError):
        pk.Connector(max_kites=2 ** 40)
    with pytest.raises(pk.PageKiteError):
        pk.Connector(dyndns_url="http://no-format-here/")
    with pk.Connector(max_kites=1) as c:
        with pytest.raises(pk.PageKiteError) as e:
            c.add_kite("http", "bad name with spaces", "s", 8000)
        assert e.value.reason  # pagekite_last_error() of the failed call
        assert e.value.function == "pagekite_add_kite"
        with pytest.raises(pk.PageKiteError):
            c.add_kite("http", "ok.example.test", "", 8000)  # empty secret
        with pytest.raises(pk.PageKiteError):
            c.add_kite("http", "nul\0.example.test", "s", 8000)
        with pytest.raises(pk.PageKiteError):
            c.poll(1)  # not running
        with pytest.raises(pk.PageKiteError):
            c.counter(999)
        with pytest.raises(pk.PageKiteError):
            c.set_tls_verify(True, ca_file="/x" * 3000)  # longer than the library keeps
    with pk.Connector(flags=pk.api.PK_WITH_DEFAULTS | pk.api.PK_WITH_SSL) as c:
        c.set_tls_verify(True, ca_file="/nonexistent/ca.pem")
        c.add_kite("http", "tls.example.test", "s", 8000)
        c.add_frontend("127.0.0.1", free_port())
        with pytest.raises(pk.PageKiteError, match="TLS"):
            c.start()  # the CA file is loaded when the thread starts
        assert not c.running
    with pk.Relay() as r:
        with pytest.raises(pk.PageKiteError):
            r.add_listener("127.0.0.1", 70000)
        with pytest.raises(pk.PageKiteError):
            r.set_tls("/nonexistent/cert.pem", "/nonexistent/key.pem")
        with pytest.raises(pk.PageKiteError):
            r.start()  # no listener yet


def test_start_twice_and_config_after_start(pk):
    port = free_port()
    r = pk.Relay()
    try:
        r.add_listener("127.0.0.1", port)
        r.add_domain("http", "*.example.test", "s")
        r.start()
        assert r.running
        with pytest.raises(pk.PageKiteError):
            r.start()
        with pytest.raises(pk.PageKiteError):
            r.add_listener("127.0.0.1", free_port())  # before-start only
        r.stop()
        r.stop()  # idempotent
        assert not r.running
        with pytest.raises(pk.PageKiteError):
            r.start()  # a manager runs once
    finally:
        r.close()


def test_busy_port_fails_start(pk):
    port = free_port()
    with pk.Relay() as a, pk.Relay() as b:
        for r in (a, b):
            r.add_listener("127.0.0.1", port)
            r.add_domain("http", "*.example.test", "s")
        a.start()
        with pytest.raises(pk.PageKiteError):
            b.start()
        assert not b.running


def test_calls_after_free_raise(pk):
    c = pk.Connector()
    c.add_kite("http", "freed.example.test", "s", 8000)
    c.close()
    assert c.closed
    c.close()  # idempotent
    calls = [
        lambda: c.status, lambda: c.log, lambda: c.poll(0), lambda: c.start(),
        lambda: c.stop(), lambda: c.counters(), lambda: c.counter(pk.Counter.ERRORS),
        lambda: c.wait_until(pk.Status.FLYING, 0.1),
        lambda: c.add_kite("http", "x.example.test", "s", 80),
        lambda: c.add_frontend("127.0.0.1", 80), lambda: c.set_tls_verify(False),
        lambda: c.enable_http_forwarding_headers(), lambda: c.set_log_mask(0),
        lambda: c.kite_status("http", "freed.example.test"),
        lambda: c.kite_reason("http", "freed.example.test"), lambda: c.kites(),
        lambda: c.add_frontend_certname("relay.example.test"),
    ]
    for call in calls:
        with pytest.raises(pk.PageKiteError, match="closed"):
            call()
    assert "closed" in repr(c)
    r = pk.Relay()
    r.close()
    for call in (lambda: r.add_listener(None, 1), lambda: r.add_domain("http", "a", "b"),
                 lambda: r.set_tls("a", "b"), lambda: r.status):
        with pytest.raises(pk.PageKiteError):
            call()


def test_close_while_another_thread_polls(pk):
    """close() waits for in-flight C calls; the poller gets PageKiteError, no crash."""
    c = pk.Connector(max_frontends=1)
    c.add_kite("http", "poll.example.test", "s", free_port(), origin_host="127.0.0.1")
    c.add_frontend("127.0.0.1", free_port())  # nobody listens there
    c.start()
    outcome = []

    def poller():
        try:
            deadline = time.monotonic() + 20  # bounded
            while time.monotonic() < deadline:
                c.poll(5)
                c.status
            outcome.append("still usable after close()")
        except pk.PageKiteError as e:
            outcome.append(e)

    t = threading.Thread(target=poller)
    t.start()
    time.sleep(0.5)
    t0 = time.monotonic()
    c.close()
    t.join(15)
    assert not t.is_alive(), "poller still blocked after close()"
    assert time.monotonic() - t0 < 12
    assert len(outcome) == 1 and isinstance(outcome[0], pk.PageKiteError), outcome


def test_poll_releases_the_gil(pk):
    """A thread blocked in poll() must not stop Python code in other threads."""
    port = free_port()
    with pk.Relay() as r:
        r.add_listener("127.0.0.1", port)
        r.add_domain("http", "*.example.test", "s")
        r.start()
        done = threading.Event()
        durations = []

        def blocked():
            t0 = time.monotonic()
            while time.monotonic() - t0 < 2.5:  # several 1 s polls
                r.poll(1)
            durations.append(time.monotonic() - t0)
            done.set()

        t = threading.Thread(target=blocked)
        t.start()
        # Main thread: many short GIL-needing steps; each must be quick.
        worst = 0.0
        for _ in range(40):
            t0 = time.monotonic()
            sum(range(1000))
            time.sleep(0.01)
            worst = max(worst, time.monotonic() - t0)
        t.join(10)
        assert done.is_set()
        assert worst < 0.5, "main thread stalled %.2f s while another thread polled" % worst
