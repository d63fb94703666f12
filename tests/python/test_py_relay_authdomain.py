"""--authdomain through the Python binding (issue 18): Relay.add_authdomain
and set_authfail_closed.  Bad values raise PageKiteError saying why; a kite
the auth domain covers is challenged like any other, and one it does not
cover is refused as unknown.  (The DNS side: tests/e2e/test_authdomain.py.)"""

from __future__ import annotations

import socket

import pytest

from pkpy_helpers import DOMAIN, SECRET, free_port


def head(port: int, line: str) -> str:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(("CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite: %s\r\n\r\n" % line).encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                break
            data += chunk
        return data.decode("latin-1")


def test_bad_values_raise(pk, managers):
    r = pk.Relay(app_id="py-test-authdomain-bad")
    managers.append(r)
    for bad, why in (("a:b:c", "not SUFFIX or KITE-DOMAIN:SUFFIX"),
                     ("x.test:", "not SUFFIX or KITE-DOMAIN:SUFFIX"),
                     ("/nonexistent/bin/app", "auth app .* cannot be run"),
                     ("/tmp", "auth app .* cannot be run"),
                     ("bad..suffix", "not a DNS suffix")):
        with pytest.raises(pk.PageKiteError, match=why) as e:
            r.add_authdomain(bad)
        assert e.value.function == "pagekite_add_relay_authdomain"


def test_covered_kites_are_challenged(pk, managers):
    r = pk.Relay(app_id="py-test-authdomain")
    managers.append(r)
    r.port = free_port()
    r.add_listener("127.0.0.1", r.port)
    r.add_domain("http", "*." + DOMAIN, SECRET)
    r.add_authdomain("dyn.test:auth.test")
    r.set_authfail_closed(True)
    r.start()
    with pytest.raises(pk.PageKiteError):  # before start() only
        r.add_authdomain("auth2.test")
    covered = head(r.port, "http:a.dyn.test:abcdef01::")
    assert "X-PageKite-SignThis: http:a.dyn.test:abcdef01:" in covered, covered
    other = head(r.port, "http:a.elsewhere.test:abcdef01::")
    assert "X-PageKite-SignThis: http:a.elsewhere.test:abcdef01:" in other, other
    # signed for a name nobody covers: refused as unknown, the authority not asked
    token = other.split("X-PageKite-SignThis: http:a.elsewhere.test:abcdef01:")[1].split()[0]
    refused = head(r.port, "http:a.elsewhere.test:abcdef01:%s:%s" % (token, "0" * 36))
    assert "X-PageKite-Invalid-Why: http:a.elsewhere.test:abcdef01;unknown" in refused, refused
