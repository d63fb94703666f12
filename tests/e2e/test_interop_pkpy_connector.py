"""Debian's pagekite.py as connector behind our pagekiter."""

import os

import pytest

from harness import (PAGEKITER, SECRET, Kite, download_sha256, http_request,
                     keepalive_headers, kite_name, raw_echo, require_executable, upload_sha256)
from origin import pattern_sha256

pytestmark = [pytest.mark.interop, pytest.mark.ours]

MB = 1024 * 1024


@pytest.fixture(scope="module")
def stack(module_group):
    require_executable(PAGEKITER, "pagekiter")
    g = module_group
    origin = g.origin(kite_name("pyconn"))
    echo = g.echo()
    relay = g.our_relay()
    http_kite = Kite("http", origin.kite, origin.port, 0, SECRET)
    raw_kite = Kite("raw", kite_name("pyconn-raw"), echo.port, relay.port, SECRET)
    # pagekite.py takes a few seconds to start, probe and register.
    conn = g.pk_connector(relay, [http_kite, raw_kite])
    conn.wait_serving(timeout=40)
    conn.wait_raw_serving(raw_kite, timeout=30)
    return relay, http_kite, raw_kite


def test_small_get(stack):
    relay, http_kite, _raw = stack
    status, _h, body = http_request(relay.port, http_kite.name, "GET", "/", timeout=15)
    assert status == 200
    assert ("Hello from %s" % http_kite.name).encode() in body


@pytest.mark.slow
def test_download_20mb_sha256(stack):
    relay, http_kite, _raw = stack
    n = 20 * MB
    status, got, sha = download_sha256(relay.port, http_kite.name, n, timeout=120)
    assert status == 200
    assert got == n, "received %d of %d bytes" % (got, n)
    assert sha == pattern_sha256(n)


@pytest.mark.slow
def test_upload_sha256(stack):
    relay, http_kite, _raw = stack
    n = 10 * MB
    status, answer = upload_sha256(relay.port, http_kite.name, n, timeout=120)
    assert status == 200, answer
    assert answer == {"sha256": pattern_sha256(n), "len": n}


def test_forwarded_for_from_relay_rip(stack):
    # pagekite.py adds X-Forwarded-For from the RIP our relay sends.
    relay, http_kite, _raw = stack
    answers = keepalive_headers(relay.port, http_kite.name, count=2)
    assert [a["headers"].get("x-forwarded-for") for a in answers] == ["127.0.0.1"] * 2


def test_raw_kite_echo(stack):
    relay, _http, raw_kite = stack
    payload = os.urandom(128 * 1024)
    got = raw_echo(relay.port, raw_kite.name, raw_kite.pport, payload, timeout=20)
    assert len(got) == len(payload), "echoed %d of %d bytes" % (len(got), len(payload))
    assert got == payload
