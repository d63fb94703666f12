"""The idiomatic wrappers of the calls that only the raw layer had (spec
idiomatic.python, tests/spec/test_idiomatic_coverage.py): Relay.set_duplicates
lets two connectors fly one kite; the manager settings reach the library
(its failures come back as the documented exceptions)."""

from __future__ import annotations

import time

import pytest

from pkpy_helpers import DOMAIN, SECRET, dump, free_port, plain_flags


def connector(pk, managers, port, name):
    c = pk.Connector(app_id="py-wrappers", max_frontends=1, flags=plain_flags(pk))
    managers.append(c)
    c.add_kite("http", name, SECRET, 9, origin_host="127.0.0.1")
    assert c.add_frontend("127.0.0.1", port) >= 1
    return c


def test_set_duplicates_lets_two_connectors_fly_one_kite(pk, managers):
    r = pk.Relay(app_id="py-dups")
    managers.append(r)
    port = free_port()
    r.add_listener("127.0.0.1", port)
    r.add_domain("http", "*." + DOMAIN, SECRET)
    r.set_duplicates(True)
    r.start()
    name = "shared." + DOMAIN
    first, second = connector(pk, managers, port, name), connector(pk, managers, port, name)
    first.start()
    assert first.wait_until(pk.Status.FLYING, 20), dump(first, r)
    second.start()
    assert second.wait_until(pk.Status.FLYING, 20), dump(second, r)
    assert second.kite_status("http", name) is pk.KiteStatus.FLYING
    assert first.kite_status("http", name) is pk.KiteStatus.FLYING
    with pytest.raises(pk.WrongState, match="pagekite_set_relay_duplicates"):
        r.set_duplicates(False)  # before start() only
    with pytest.raises(TypeError):
        pk.Relay().set_duplicates("yes")


def test_settings_reach_the_library(pk, managers):
    c = pk.Connector(app_id="py-settings", flags=plain_flags(pk))
    managers.append(c)
    c.enable_fake_ping(True)
    c.enable_tick_timer(False)
    c.set_conn_eviction_idle(30)
    c.set_openssl_ciphers("HIGH:!aNULL")
    c.set_bail_on_errors(0)
    c.want_spare_frontends(0)
    c.enable_watchdog(False)
    with pytest.raises(pk.PageKiteError, match="pagekite_tick"):
        c.tick()  # only while the master thread runs
    c.add_kite("http", "settings." + DOMAIN, SECRET, 9)
    c.add_frontend("127.0.0.1", free_port())
    c.start()
    c.tick()
    with pytest.raises(pk.WrongState, match="pagekite_enable_watchdog"):
        c.enable_watchdog(True)
    with pytest.raises(pk.WrongState, match="pagekite_add_service_frontends"):
        c.add_service_frontends()
    with pytest.raises(pk.WrongState, match="pagekite_add_whitelabel_frontends"):
        c.add_whitelabel_frontends("example.test")
    for bad in (lambda: c.set_conn_eviction_idle("30"), lambda: c.set_openssl_ciphers(None),
                lambda: c.want_spare_frontends(1.5), lambda: c.set_bail_on_errors(True)):
        with pytest.raises(TypeError):
            bad()
    c.close()
    with pytest.raises(pk.WrongState, match="closed"):
        c.set_bail_on_errors(1)


def test_library_version_number(pk):
    assert pk.LIBRARY_VERSION_NUMBER == pk.api.version_number() == pk.api.PK_VERSION_NUMBER
    assert "LIBRARY_VERSION_NUMBER" in pk.__all__
