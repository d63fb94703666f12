"""Relay access rules through the Python binding (issue 17, item 5):
Relay.add_client_acl / add_tunnel_acl / add_ratelimit_ips / set_require_tls.
Over loopback sockets: a visitor on 127.0.0.2 is another address than one on
127.0.0.1.  Rules that cannot apply raise PageKiteError saying why."""

from __future__ import annotations

import socket

import pytest

from pkpy_helpers import DOMAIN, SECRET, free_port


def first_line(port: int, src: str, request: bytes) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(src, 0)) as s:
        s.sendall(request)
        data = b""
        while b"\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.split(b"\r\n", 1)[0].decode("latin-1")


GET = b"GET / HTTP/1.1\r\nHost: nokite." + DOMAIN.encode() + b"\r\n\r\n"
TUNNEL = b"CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite: http:probe." + DOMAIN.encode() + \
    b":abcdef01::\r\n\r\n"


def relay(pk, managers, app):
    r = pk.Relay(app_id=app)
    managers.append(r)
    r.port = free_port()
    r.add_listener("127.0.0.1", r.port)
    r.add_domain("http", "*." + DOMAIN, SECRET)
    return r


def test_client_and_tunnel_acls_decide_by_address(pk, managers):
    r = relay(pk, managers, "py-test-acl")
    r.add_client_acl("allow:127\\.0\\.0\\.1")
    r.add_tunnel_acl("deny:127\\.0\\.0\\.2")
    r.add_tunnel_acl("allow:any")
    r.start()
    # Allowed visitors reach routing (no such kite: 503); others get 403.
    assert first_line(r.port, "127.0.0.1", GET).split()[1] == "503"
    assert first_line(r.port, "127.0.0.2", GET).split()[1] == "403"
    assert first_line(r.port, "127.0.0.1", TUNNEL) != "HTTP/1.0 403 Forbidden"
    assert first_line(r.port, "127.0.0.2", TUNNEL) == "HTTP/1.0 403 Forbidden"


def test_rules_that_cannot_apply_raise(pk, managers):
    r = relay(pk, managers, "py-test-acl-bad")
    with pytest.raises(pk.PageKiteError, match="Python regexp syntax") as e:
        r.add_client_acl("deny:\\d+")
    assert e.value.function == "pagekite_add_relay_client_acl"
    with pytest.raises(pk.PageKiteError, match="bad regexp"):
        r.add_tunnel_acl("allow:(")
    with pytest.raises(pk.PageKiteError, match="policy is not allow or deny"):
        r.add_tunnel_acl("maybe:.*")
    with pytest.raises(pk.PageKiteError, match=r"not \[KITE:\]IPS/SECONDS"):
        r.add_ratelimit_ips("10 per minute")
    with pytest.raises(TypeError):
        r.add_client_acl(None)
    r.add_ratelimit_ips("5/60")
    r.add_ratelimit_ips("a." + DOMAIN + ":1/60")
    # require_tls with no certificate: no tunnel could connect, start() says so.
    r.set_require_tls(True)
    with pytest.raises(pk.PageKiteError, match="require_tls is on but the relay has no certificate"):
        r.start()


def test_require_tls_refuses_a_plain_tunnel(pk, managers, pki):
    cert, key = pki.cert("acl-relay", "DNS:relay." + DOMAIN, cn="relay." + DOMAIN)
    r = relay(pk, managers, "py-test-acl-tls")
    r.set_tls(cert, key)
    r.set_require_tls(True)
    r.start()
    assert first_line(r.port, "127.0.0.1", TUNNEL) == "HTTP/1.0 403 Forbidden"
    assert first_line(r.port, "127.0.0.1", GET).split()[1] == "503"  # visitors unaffected


def test_connector_kite_access_rules(pk, managers):
    c = pk.Connector(app_id="py-test-kite-access")
    managers.append(c)
    c.add_kite("http", "k." + DOMAIN, SECRET, 9, origin_host="127.0.0.1")
    c.add_kite_access("k." + DOMAIN, "+password/alice=pw")
    c.add_kite_access("k." + DOMAIN, "ip/127.0.0.1")
    with pytest.raises(pk.PageKiteError, match="no such kite") as e:
        c.add_kite_access("typo." + DOMAIN, "ip/127.0.0.1")
    assert e.value.function == "pagekite_add_kite_access"
    with pytest.raises(pk.PageKiteError, match="password/ takes USER=PASSWORD"):
        c.add_kite_access("k." + DOMAIN, "password/alice")
    with pytest.raises(pk.PageKiteError, match="is not ip/ADDRESS or password/USER=PASSWORD"):
        c.add_kite_access("k." + DOMAIN, "+insecure")
