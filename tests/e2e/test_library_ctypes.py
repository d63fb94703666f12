"""libpagekite.so.1 through ctypes, against Debian's pagekite.py."""

import pytest

import pkctypes as pk
from harness import (LIBPAGEKITE, SECRET, WRONG_SECRET, Kite, http_request, keepalive_headers,
                     kite_name, require_file, wait_http, wait_not_served)

pytestmark = [pytest.mark.library, pytest.mark.interop]


@pytest.fixture(scope="module")
def lib():
    require_file(LIBPAGEKITE, "libpagekite.so.1")
    try:
        lib = pk.load(LIBPAGEKITE)
    except OSError as e:
        pytest.fail("cannot load %s: %s" % (LIBPAGEKITE, e), pytrace=False)
    needed = [n for n in lib.missing if n in (
        "pagekite_init", "pagekite_add_kite", "pagekite_lookup_and_add_frontend",
        "pagekite_thread_start", "pagekite_get_status", "pagekite_poll", "pagekite_get_log",
        "pagekite_thread_stop", "pagekite_free", "pagekite_last_error")]
    assert not needed, "libpagekite.so.1 does not export %s" % needed
    return lib


@pytest.fixture(scope="module")
def relay(module_group):
    return module_group.pk_relay()


@pytest.fixture
def managers():
    made = []
    yield made
    for m in made:
        m.close()


def new_manager(lib, managers, **kw):
    m = pk.PageKite(lib, **kw)
    managers.append(m)
    return m


def test_flies_through_pagekite_py(lib, relay, origin, managers):
    m = new_manager(lib, managers)
    name = kite_name("lib")
    assert m.add_kite("http", name, relay.port, SECRET, "127.0.0.1", origin.port) == 0, \
        m.last_error()
    n = m.lookup_and_add_frontend("127.0.0.1", relay.port, 0)
    assert n >= 1, "lookup_and_add_frontend returned %d: %s" % (n, m.last_error())
    assert m.enable_http_forwarding_headers(True) == 0, m.last_error()
    assert m.thread_start() == 0, m.last_error()

    seen = m.wait_status(pk.PK_STATUS_FLYING, timeout=20)
    assert seen[-1] == pk.PK_STATUS_FLYING
    wait_http(name, relay.port, "/", timeout=15)
    answers = keepalive_headers(relay.port, name, count=2)
    assert [a["headers"].get("x-forwarded-for") for a in answers] == ["127.0.0.1"] * 2

    log = m.get_log()
    assert log and len(log.strip().splitlines()) >= 1, "get_log() is empty: %r" % log
    if "pagekite_get_counter" not in lib.missing:
        assert m.get_counter(pk.PK_COUNTER_KITES_LIVE) >= 1
        assert m.get_counter(pk.PK_COUNTER_STREAMS_TOTAL) >= 1

    # Kites can be added while running: pagekite.py takes them on the live
    # tunnel (AddKites); the first kite keeps flying.
    late = kite_name("late")
    assert m.add_kite("http", late, relay.port, SECRET, "127.0.0.1", origin.port) == 0, \
        m.last_error()
    wait_http(late, relay.port, "/", timeout=15)
    assert http_request(relay.port, name)[0] == 200
    later = m.get_log() or ""
    assert "Tunnel to relay" not in later, "the live tunnel was remade:\n" + later
    # Before-start calls are still refused once the master thread runs.
    assert lib.pagekite_set_tls_verify(m.mgr, 0, None) == -1
    assert m.last_error(), "pagekite_last_error() empty after a refused call"

    assert m.thread_stop() == 0, m.last_error()
    status = wait_not_served(name, relay.port, "/", timeout=10)
    assert status != 200
    assert m.free() == 0


def test_wrong_secret_rejected(lib, relay, origin, managers):
    m = new_manager(lib, managers)
    assert m.add_kite("http", kite_name("libwrong"), relay.port, WRONG_SECRET, "127.0.0.1",
                      origin.port) == 0
    assert m.lookup_and_add_frontend("127.0.0.1", relay.port, 0) >= 1
    assert m.thread_start() == 0, m.last_error()
    seen = m.wait_status(pk.PK_STATUS_REJECTED, timeout=15)
    assert pk.PK_STATUS_FLYING not in seen
    assert m.get_log(), "get_log() is empty after a rejection"


def test_null_manager(lib):
    null = None
    assert lib.pagekite_add_kite(null, b"http", b"x.example.test", 80, b"s", b"localhost",
                                 80) == -1
    assert lib.pagekite_lookup_and_add_frontend(null, b"127.0.0.1", 80, 0) == -1
    assert lib.pagekite_thread_start(null) == -1
    assert lib.pagekite_thread_stop(null) == -1
    assert lib.pagekite_get_status(null) == -1
    assert lib.pagekite_poll(null, 0) == -1
    assert lib.pagekite_get_log(null) is None
    assert lib.pagekite_free(null) == -1
    assert lib.pagekite_last_error(), "no last error after a NULL-manager call"
    if "pagekite_get_counter" not in lib.missing:
        assert lib.pagekite_get_counter(null, pk.PK_COUNTER_TUNNELS) == -1


def test_bad_arguments(lib, managers):
    m = new_manager(lib, managers)
    # raw kites need a public port
    assert m.add_kite("raw", kite_name("raw0"), 0, SECRET, "127.0.0.1", 22) == -1
    assert m.last_error()
    assert m.add_kite("http", kite_name("ok"), 0, SECRET, "127.0.0.1", 8080) == 0


def test_library_relay_with_pagekite_py_connector(lib, managers, group):
    """The relay role through the library, with pagekite.py as connector."""
    missing = [n for n in ("pagekite_add_relay_listener", "pagekite_add_relay_domain")
               if n in lib.missing]
    assert not missing, "libpagekite.so.1 does not export %s" % missing
    from harness import free_port
    port = free_port()
    m = new_manager(lib, managers, flags=pk.PK_AS_FRONTEND_RELAY | pk.PK_WITHOUT_DEFAULTS
                    | pk.PK_WITH_IPV4 | pk.PK_WITHOUT_SERVICE_FRONTENDS)
    assert m.add_relay_listener("127.0.0.1", port) == 0, m.last_error()
    assert m.add_relay_domain("http,https,raw,websocket", "*.example.test", SECRET) == 0, \
        m.last_error()
    assert m.thread_start() == 0, m.last_error()
    origin = group.origin(kite_name("librelay"))
    kite = Kite("http", origin.kite, origin.port, 0, SECRET)
    group.pk_connector("127.0.0.1:%d" % port, [kite]).wait_serving(timeout=40)
    status, _h, body = http_request(port, kite.name, "GET", "/", timeout=10)
    assert status == 200 and kite.name.encode() in body
    if "pagekite_get_counter" not in lib.missing:
        assert m.get_counter(pk.PK_COUNTER_KITES_LIVE) >= 1
