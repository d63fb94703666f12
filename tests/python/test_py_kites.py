"""TLS by default, kite states and reasons, accepted certificate names.

* A Connector with its default flags (PK_WITH_DEFAULTS: TLS, verified) flies
  through a TLS relay whose certificate a throwaway CA signed, and does not
  fly when that CA is not trusted or when the relay speaks plain text.
* kite_status() / kite_reason() / kites(): WAITING before start, FLYING,
  REJECTED with "signature" (wrong secret) or "unknown" (a name no domain of
  the relay takes), DUPLICATE; unknown kites raise PageKiteError.
* wait_until(FLYING) returns (False) within a second of the status becoming
  REJECTED instead of waiting out its timeout.
* add_frontend_certname(): a relay certificate that carries only another name.

Loopback only; every wait is bounded.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import socket
import threading
import time

import pytest

from pkpy_helpers import (DOMAIN, RELAY_CERT_NAME, SECRET, dump, free_port, http_get,
                          plain_flags, wait_kites_decided, wait_log)

WAIT_S = 30  # a timeout that the rejection must not wait out


def connector(pk, managers, port, name, secret=SECRET, host="127.0.0.1", **kw):
    c = pk.Connector(app_id="py-kites", max_frontends=1, **kw)
    managers.append(c)
    c.add_kite("http", name, secret, 9, origin_host="127.0.0.1")
    assert c.add_frontend(host, port) >= 1
    return c


class StatusWatch:
    """Records when manager.status first equals status (a tight loop in a thread)."""

    def __init__(self, manager, status, timeout=WAIT_S):
        self.manager, self.status, self.seen_at = manager, status, None
        self.deadline = time.monotonic() + timeout
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while time.monotonic() < self.deadline:
            if self.manager.status == self.status:
                self.seen_at = time.monotonic()
                return
            time.sleep(0.001)

    def join(self):
        self.thread.join(WAIT_S)
        return self.seen_at


def wait_rejected(pk, c, relay):
    """Start c and wait for FLYING, which a refusal must cut short."""
    watch = StatusWatch(c, pk.Status.REJECTED)
    t0 = time.monotonic()
    c.start()
    flew = c.wait_until(pk.Status.FLYING, WAIT_S)
    returned = time.monotonic()
    rejected_at = watch.join()
    assert not flew, dump(c, relay)
    assert c.status is pk.Status.REJECTED, dump(c, relay)
    assert rejected_at is not None, dump(c, relay)
    assert returned - rejected_at < 1.0, \
        "wait_until returned %.2f s after REJECTED" % (returned - rejected_at)
    assert returned - t0 < 10, "wait_until took %.1f s" % (returned - t0)
    return returned - t0


# ---------------------------------------------------------------- TLS by default

def test_defaults_fly_over_verified_tls(pk, managers, tls_relay, pki):
    relay = tls_relay()
    name = "tls." + DOMAIN
    c = connector(pk, managers, relay.port, name)  # default flags: PK_WITH_DEFAULTS
    c.set_tls_verify(True, pki.ca)
    c.start()
    assert c.wait_until(pk.Status.FLYING, 20), dump(c, relay)
    assert any("with TLS" in line for line in c.log), dump(c)
    assert c.kite_status("http", name) is pk.KiteStatus.FLYING
    assert c.kite_reason("http", name) == ""
    assert relay.counter(pk.Counter.KITES_LIVE) == 1
    # visitors still speak plain HTTP to the relay; nothing listens on the origin port
    status, _ = http_get(relay.port, name, "/", timeout=10)
    assert status == 503


def test_defaults_verify_the_relay(pk, managers, tls_relay):
    """The same relay, its CA not trusted (the system store): no tunnel."""
    relay = tls_relay()
    c = connector(pk, managers, relay.port, "untrusted." + DOMAIN)
    c.start()
    line = wait_log(c, "certificate verify failed")
    assert "TLS handshake failed" in line, line
    assert c.status is not pk.Status.FLYING
    assert c.kite_status("http", "untrusted." + DOMAIN) is pk.KiteStatus.WAITING


def test_defaults_against_a_plain_relay_say_so(pk, managers, relay):
    c = connector(pk, managers, relay.port, "noplain." + DOMAIN)
    c.start()
    wait_log(c, "the relay does not speak TLS")
    assert not c.wait_until(pk.Status.FLYING, 0.5)
    assert relay.counter(pk.Counter.KITES_LIVE) == 0


# ---------------------------------------------------------------- kite states

def test_kite_status_and_reason_before_start_and_when_flying(pk, managers, relay):
    name = "states." + DOMAIN
    c = connector(pk, managers, relay.port, name, flags=plain_flags(pk))
    c.add_kite("http", name, SECRET, 9, public_port=8080, origin_host="127.0.0.1")
    assert c.kite_status("http", name) is pk.KiteStatus.WAITING
    assert c.kite_status("http-8080", name) == pk.api.PK_KITE_STATUS_WAITING
    assert c.kite_reason("http", name) == ""
    assert c.kites() == [("http", name, pk.KiteStatus.WAITING, ""),
                         ("http-8080", name, pk.KiteStatus.WAITING, "")]
    with pytest.raises(pk.PageKiteError, match="no kite") as e:
        c.kite_status("http", "nobody." + DOMAIN)
    assert e.value.function == "pagekite_get_kite_status"
    with pytest.raises(pk.PageKiteError, match="no kite") as e:
        c.kite_reason("raw", name)
    assert e.value.function == "pagekite_get_kite_reason"
    with pytest.raises(TypeError):
        c.kite_status(b"http", name)
    with pytest.raises(TypeError):
        c.kite_reason("http", None)
    c.start()
    # The relay listens on one port only: the kite for public port 8080 is refused.
    wait_kites_decided(c)
    assert c.kite_status("http", name) is pk.KiteStatus.FLYING, dump(c, relay)
    assert c.kite_reason("http", name) == ""
    assert c.kites() == [("http", name, pk.KiteStatus.FLYING, ""),
                         ("http-8080", name, pk.KiteStatus.REJECTED, "port")], dump(c, relay)
    assert c.status is pk.Status.PROBLEMS  # some kites fly, not all
    assert {int(s) for s in pk.KiteStatus} == {0, 1, 2, 3}


def test_wrong_secret_wait_returns_at_once_with_signature(pk, managers, relay):
    name = "badsecret." + DOMAIN
    c = connector(pk, managers, relay.port, name, secret="not-the-secret", flags=plain_flags(pk))
    took = wait_rejected(pk, c, relay)
    assert c.kite_status("http", name) is pk.KiteStatus.REJECTED
    assert c.kite_reason("http", name) == "signature"
    assert c.kites() == [("http", name, pk.KiteStatus.REJECTED, "signature")]
    assert any("rejected by relay: signature" in line for line in c.log), dump(c)
    # Waiting for REJECTED itself still answers True.
    assert c.wait_until(pk.Status.REJECTED, 1)
    assert relay.counter(pk.Counter.KITES_LIVE) == 0
    print("wait_until(FLYING) gave up after %.3f s" % took)


def test_name_outside_the_relays_domains_is_unknown(pk, managers, relay):
    name = "kite.elsewhere.test"
    c = connector(pk, managers, relay.port, name, flags=plain_flags(pk))
    wait_rejected(pk, c, relay)
    assert c.kite_status("http", name) is pk.KiteStatus.REJECTED
    assert c.kite_reason("http", name) == "unknown"


def test_second_connector_for_a_kite_is_a_duplicate(pk, managers, relay):
    name = "twice." + DOMAIN
    first = connector(pk, managers, relay.port, name, flags=plain_flags(pk))
    first.start()
    assert first.wait_until(pk.Status.FLYING, 20), dump(first, relay)
    second = connector(pk, managers, relay.port, name, flags=plain_flags(pk))
    second.start()
    deadline = time.monotonic() + 20
    while (second.kite_status("http", name) is not pk.KiteStatus.DUPLICATE
           and time.monotonic() < deadline):
        time.sleep(0.01)
    assert second.kite_status("http", name) is pk.KiteStatus.DUPLICATE, dump(second, relay)
    assert second.kite_reason("http", name) == "duplicate"
    assert first.kite_status("http", name) is pk.KiteStatus.FLYING


# ---------------------------------------------------------------- accepted certificate names

def test_frontend_certname(pk, managers, tls_relay, pki):
    """The relay's certificate names only relay.example.test; it is dialled as 127.0.0.1."""
    relay = tls_relay(pki.named)
    name = "certname." + DOMAIN
    without = connector(pk, managers, relay.port, name)
    without.set_tls_verify(True, pki.ca)
    without.start()
    wait_log(without, "the relay's certificate is for")
    assert not without.wait_until(pk.Status.FLYING, 1)
    without.close()

    with_name = connector(pk, managers, relay.port, name)
    with_name.set_tls_verify(True, pki.ca)
    with_name.add_frontend_certname(RELAY_CERT_NAME)
    with_name.start()
    assert with_name.wait_until(pk.Status.FLYING, 20), dump(with_name, relay)
    assert with_name.kite_status("http", name) is pk.KiteStatus.FLYING


def test_frontend_certname_mismatch_names_both(pk, managers, tls_relay, pki):
    """Dialled by name (localhost), the refusal says what the certificate is for
    and what was expected; with the certificate's name added, it flies."""
    relay = tls_relay(pki.named)
    name = "byname." + DOMAIN
    c = connector(pk, managers, relay.port, name, host="localhost")
    c.set_tls_verify(True, pki.ca)
    c.add_frontend_certname("other.example.test")
    c.start()
    line = wait_log(c, "the relay's certificate is for")
    assert ("the relay's certificate is for %s; expected one of: localhost, other.example.test"
            % RELAY_CERT_NAME) in line, line
    c.close()
    ok = connector(pk, managers, relay.port, name, host="localhost")
    ok.set_tls_verify(True, pki.ca)
    ok.add_frontend_certname("other.example.test")
    ok.add_frontend_certname(RELAY_CERT_NAME.upper())  # names are not case-sensitive
    ok.start()
    assert ok.wait_until(pk.Status.FLYING, 20), dump(ok, relay)


def test_frontend_certname_ip_mismatch_names_both(pk, managers, tls_relay, pki):
    relay = tls_relay(pki.named)
    c = connector(pk, managers, relay.port, "ipname." + DOMAIN)
    c.set_tls_verify(True, pki.ca)
    c.start()
    wait_log(c, "the relay's certificate is for")
    text = "\n".join(c.log)
    assert ("the relay's certificate is for %s; expected one of: 127.0.0.1" % RELAY_CERT_NAME
            in text), text


def test_proxy_down_is_named_in_the_log(pk, managers, relay):
    """set_proxy: a bad URL is refused with the reason; a proxy that is down
    is named (password masked) when the tunnel cannot reach it."""
    c = connector(pk, managers, relay.port, "proxied." + DOMAIN, flags=plain_flags(pk))
    with pytest.raises(pk.PageKiteError, match="scheme"):
        c.set_proxy("ftp://127.0.0.1:21")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    c.set_proxy("socks5h://joe:pw123@127.0.0.1:%d" % port)
    c.set_rejection_url("https://offline.example.test/")
    c.start()
    line = wait_log(c, "connecting to proxy socks5h://joe:***@127.0.0.1:%d failed" % port)
    assert "pw123" not in "\n".join(c.log), line


def test_frontend_certname_arguments(pk, managers, relay):
    c = connector(pk, managers, relay.port, "args." + DOMAIN, flags=plain_flags(pk))
    c.add_frontend_certname("a.example.test")
    c.add_frontend_certname("")  # forgets the list
    with pytest.raises(pk.PageKiteError, match="invalid name"):
        c.add_frontend_certname("not a name")
    with pytest.raises(TypeError):
        c.add_frontend_certname(None)
    c.start()
    with pytest.raises(pk.PageKiteError):
        c.add_frontend_certname("late.example.test")  # before start() only


# ---------------------------------------------------------------- the command line

def test_cli_connect_over_tls(pk, tmp_path, pki, origin):
    """python -m pagekite: relay --tls-cert/--tls-key, connect --ca-file --fe-certname."""
    port = free_port()
    name = "clitls." + DOMAIN
    cert, key = pki.named
    procs = []

    def spawn(label, *args):
        out = open(tmp_path / (label + ".out"), "wb")
        err = open(tmp_path / (label + ".err"), "wb")
        p = subprocess.Popen([sys.executable, "-m", "pagekite", *args], stdout=out, stderr=err,
                             stdin=subprocess.DEVNULL, cwd=str(tmp_path))
        procs.append(p)
        return p

    def wait_text(p, label, text, timeout=20):
        deadline = time.monotonic() + timeout
        path = tmp_path / label
        while time.monotonic() < deadline and p.poll() is None:
            if text in path.read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise AssertionError("%r not in %s (rc %s):\n%s" % (text, label, p.poll(),
                                                           path.read_text(errors="replace")))

    try:
        relay = spawn("relay", "relay", "--listen", "127.0.0.1", "--ports", str(port),
                      "--domain", "http:*.%s:%s" % (DOMAIN, SECRET),
                      "--tls-cert", str(cert), "--tls-key", str(key))
        wait_text(relay, "relay.out", "status: FLYING")
        conn = spawn("connect", "connect", "--frontend", "127.0.0.1:%d" % port,
                     "--ca-file", str(pki.ca), "--fe-certname", RELAY_CERT_NAME,
                     "127.0.0.1:%d" % origin.port, "http", name, "0", SECRET)
        wait_text(conn, "connect.out", "status: FLYING")
        assert "with TLS" in (tmp_path / "connect.err").read_text()
        for p in (conn, relay):
            p.send_signal(signal.SIGTERM)
            assert p.wait(15) == 0
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(5)


def test_add_and_remove_kites_and_relays_while_running(pk, managers, relay):
    """add_kite() after start() flies on the live tunnel; remove_kite() and
    remove_frontend() work at any time and say NotFound for unknown ones."""
    name, late = "live." + DOMAIN, "late." + DOMAIN
    c = connector(pk, managers, relay.port, name, flags=plain_flags(pk))
    c.start()
    wait_kites_decided(c)
    assert c.kite_status("http", name) is pk.KiteStatus.FLYING, dump(c, relay)
    c.add_kite("http", late, SECRET, 9, origin_host="127.0.0.1")
    wait_kites_decided(c)
    assert c.kites() == [("http", name, pk.KiteStatus.FLYING, ""),
                         ("http", late, pk.KiteStatus.FLYING, "")], dump(c, relay)
    c.remove_kite("http", late)
    assert [k[1] for k in c.kites()] == [name]
    with pytest.raises(pk.NotFound):
        c.remove_kite("http", late)
    assert c.kite_status("http", name) is pk.KiteStatus.FLYING
    with pytest.raises(pk.NotFound):
        c.remove_frontend("127.0.0.2", relay.port)
    c.remove_frontend("127.0.0.1", relay.port)
    deadline = time.monotonic() + WAIT_S
    while c.kite_status("http", name) is pk.KiteStatus.FLYING:
        assert time.monotonic() < deadline, "the kite still flies with its relay removed"
        time.sleep(0.05)
