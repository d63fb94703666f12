"""Relay options from pagekite.py's front-end: TLS endpoints per name (and
the name for clients without SNI), raw ports, port aliases, the message of
the day.  A Python Relay on 127.0.0.1 terminates TLS with each name's
certificate (checked with the ssl module); bad values and calls after
start() raise PageKiteError with the library's message."""

from __future__ import annotations

import socket
import ssl

import pytest

from pkpy_helpers import DOMAIN, SECRET, dump, free_port, plain_flags, wait_kites_decided

ONE = "one." + DOMAIN
TWO = "two." + DOMAIN


@pytest.fixture(scope="module")
def endpoints(pki):
    """Certificates for ONE (cert and key files) and TWO (one PEM holding
    both, for key=None), signed by pki.ca."""
    one = pki.cert("one", "DNS:" + ONE, cn=ONE)
    two_cert, two_key = pki.cert("two", "DNS:" + TWO, cn=TWO)
    combined = pki.dir / "two-combined.pem"
    combined.write_text(two_cert.read_text() + two_key.read_text())
    return {ONE: one, TWO: (combined, None)}


def der(pem_path) -> bytes:
    """The first certificate of a PEM file, DER-encoded."""
    text = pem_path.read_text()
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(text[:text.index(end) + len(end)] + "\n")


def served_cert(port: int, sni, ca) -> bytes:
    """The certificate the relay presents for sni (None: no SNI sent),
    verified against ca (and for sni's name when one is sent)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    ctx.check_hostname = sni is not None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            return tls.getpeercert(binary_form=True)


@pytest.fixture
def tls_endpoint_relay(pk, managers, endpoints):
    r = pk.Relay(app_id="py-test-endpoints")
    managers.append(r)
    r.port = free_port()
    r.add_listener("127.0.0.1", r.port)
    r.add_domain("http", "*." + DOMAIN, SECRET)
    cert, key = endpoints[ONE]
    r.add_tls_endpoint(ONE, cert, key)
    r.add_tls_endpoint(TWO, *endpoints[TWO])  # key None: in the certificate's file
    r.set_tls_default(TWO)
    r.start()
    return r


def test_each_name_gets_its_certificate(pk, tls_endpoint_relay, endpoints, pki):
    port = tls_endpoint_relay.port
    assert served_cert(port, ONE, pki.ca) == der(endpoints[ONE][0])
    assert served_cert(port, TWO, pki.ca) == der(endpoints[TWO][0])
    assert der(endpoints[ONE][0]) != der(endpoints[TWO][0])
    # No SNI: the set_tls_default() name's certificate.
    assert served_cert(port, None, pki.ca) == der(endpoints[TWO][0])
    # A name without an endpoint (and no set_tls()): a TLS alert.
    with pytest.raises(ssl.SSLError):
        served_cert(port, "nobody." + DOMAIN, pki.ca)


def test_calls_after_start_raise(pk, tls_endpoint_relay, endpoints):
    r = tls_endpoint_relay
    calls = [
        ("pagekite_set_relay_raw_ports", lambda: r.set_raw_ports("virtual")),
        ("pagekite_add_relay_port_alias", lambda: r.add_port_alias(r.port, 80)),
    ]
    for function, call in calls:
        with pytest.raises(pk.PageKiteError, match="only allowed before") as e:
            call()
        assert e.value.function == function


def test_live_changes_after_start(pk, endpoints, pki):
    """Endpoints, the default name, the MOTD and domains change while the
    relay runs: a second add_tls_endpoint() for a name replaces its
    certificate (rotation), remove_tls_endpoint() forgets it (then a TLS
    alert), remove_domain() of an unknown entry raises NotFound."""
    cert_one, key_one = endpoints[ONE]
    two_pem, _ = endpoints[TWO]
    port = free_port()
    with pk.Relay(app_id="py-test-live") as r:
        r.add_listener("127.0.0.1", port)
        r.add_domain("http", "*." + DOMAIN, SECRET)
        r.start()
        r.add_tls_endpoint(ONE, cert_one, key_one)
        assert served_cert(port, ONE, pki.ca) == der(cert_one)
        r.set_tls_default(ONE)
        assert served_cert(port, None, pki.ca) == der(cert_one)
        r.add_tls_endpoint(ONE, two_pem)  # replaced: TWO's certificate for ONE now
        with pytest.raises(ssl.SSLError):  # it does not name ONE: verification fails
            served_cert(port, ONE, pki.ca)
        r.remove_tls_endpoint(ONE)
        with pytest.raises(pk.PageKiteError, match="has no endpoint") as e:
            r.remove_tls_endpoint(ONE)
        assert e.value.function == "pagekite_remove_relay_tls_endpoint"
        assert e.value.code == pk.api.PK_ENOTFOUND
        with pytest.raises(ssl.SSLError):
            served_cert(port, ONE, pki.ca)
        r.set_motd("after start")
        r.add_domain("http", "late." + DOMAIN, SECRET)
        r.remove_domain("http", "late." + DOMAIN)
        with pytest.raises(pk.PageKiteError, match="no domain") as e:
            r.remove_domain("http", "late." + DOMAIN)
        assert e.value.code == pk.api.PK_ENOTFOUND


def test_tls_endpoint_errors(pk, endpoints, tmp_path):
    cert, key = endpoints[ONE]
    with pk.Relay() as r:
        r.add_tls_endpoint("*.wild." + DOMAIN, cert, key)
        r.add_tls_endpoint("*.WILD." + DOMAIN, cert, key)  # the same name again: replaced
        missing = tmp_path / "missing.pem"
        with pytest.raises(pk.PageKiteError, match="missing.pem") as e:
            r.add_tls_endpoint(ONE, missing)
        assert e.value.function == "pagekite_add_relay_tls_endpoint"
        with pytest.raises(pk.PageKiteError):
            r.add_tls_endpoint(ONE, cert)  # the key is not in the certificate's file
        with pytest.raises(pk.PageKiteError, match="is not a host name or"):
            r.add_tls_endpoint("not a name", cert, key)
        with pytest.raises(TypeError):
            r.add_tls_endpoint(None, cert, key)
        with pytest.raises(TypeError):
            r.add_tls_endpoint(ONE, 5, key)
        r.add_tls_endpoint(ONE, str(cert), str(key).encode())  # str and bytes paths too
        r.set_tls_default(ONE)
        r.set_tls_default(None)
        with pytest.raises(pk.PageKiteError, match="not a valid name"):
            r.set_tls_default("bad name")
        with pytest.raises(TypeError):
            r.set_tls_default(5)


def test_raw_ports_port_alias_and_motd_checks(pk):
    with pk.Relay() as r:
        r.set_raw_ports("virtual")
        r.set_raw_ports("22,2222,virtual")
        r.set_raw_ports([22, 2222, "virtual"])
        r.set_raw_ports(None)
        with pytest.raises(pk.PageKiteError, match="'bogus'") as e:
            r.set_raw_ports("bogus")
        assert e.value.function == "pagekite_set_relay_raw_ports"
        assert 'expected ports (1-65535) and/or "virtual"' in e.value.reason
        with pytest.raises(pk.PageKiteError):
            r.set_raw_ports([70000])
        with pytest.raises(TypeError):
            r.set_raw_ports(22)
        with pytest.raises(TypeError):
            r.set_raw_ports([22.5])

        r.add_port_alias(8443, 443)
        for bad in ((0, 80), (80, 80), (80, 65536)):
            with pytest.raises(pk.PageKiteError, match="is not 1-65535"):
                r.add_port_alias(*bad)
        with pytest.raises(pk.PageKiteError, match="aliased already"):
            r.add_port_alias(8443, 444)
        with pytest.raises(TypeError):
            r.add_port_alias("8080", 80)

        r.set_motd("Welcome to the test relay.\nBe nice.")
        r.set_motd("x" * 1024)
        r.set_motd(None)
        with pytest.raises(pk.PageKiteError, match="1025 bytes, at most 1024") as e:
            r.set_motd("x" * 1025)
        assert e.value.function == "pagekite_set_relay_motd"
        with pytest.raises(pk.PageKiteError, match="control character"):
            r.set_motd("bell\a")
        with pytest.raises(TypeError):
            r.set_motd(b"bytes")
    with pk.Connector() as c:  # relay-only calls: the Connector has no such methods
        assert not hasattr(c, "set_raw_ports") and not hasattr(c, "add_tls_endpoint")


def test_virtual_raw_port_and_port_alias_accept_kites(pk, managers):
    """raw-2222 needs the raw ports (2222 is not a listening port); http-8080
    needs the listening port aliased to 8080.  With both, both kites fly."""
    r = pk.Relay(app_id="py-test-raw-alias")
    managers.append(r)
    port = free_port()
    r.add_listener("127.0.0.1", port)
    r.add_domain("http,raw", "*." + DOMAIN, SECRET)
    r.set_raw_ports("virtual")
    r.add_port_alias(port, 8080)
    r.set_motd("hello from the Python relay test")
    r.start()
    name = "ports." + DOMAIN
    c = pk.Connector(app_id="py-test-raw-alias", max_frontends=1, flags=plain_flags(pk))
    managers.append(c)
    c.add_kite("raw", name, SECRET, 9, public_port=2222, origin_host="127.0.0.1")
    c.add_kite("http", name, SECRET, 9, public_port=8080, origin_host="127.0.0.1")
    c.add_frontend("127.0.0.1", port)
    c.start()
    wait_kites_decided(c)
    assert c.kites() == [("raw-2222", name, pk.KiteStatus.FLYING, ""),
                         ("http-8080", name, pk.KiteStatus.FLYING, "")], dump(c, r)
