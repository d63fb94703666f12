"""Our pagekitec behind our pagekiter: the shared checks plus relay-side
behaviour (unknown kite, duplicates, TLS tunnels) and clean shutdown."""

import time

import pytest

from checks import ConnectorChecks
from harness import SECRET, WRONG_SECRET, Kite, http_request, kite_name, wait_http

pytestmark = [pytest.mark.ours]


class TestPagekitecBehindPagekiter(ConnectorChecks):
    relay_kind = "ours"
    label = "ours"
    concurrency = 200
    restart_bound_s = 5.0

    def test_unknown_kite_503(self, stack):
        status, _h, body = http_request(stack.port, kite_name("nobody-here"), "GET", "/",
                                        timeout=10)
        assert status == 503, "unknown kite: HTTP %d %r" % (status, body[:200])
        assert body, "the 503 answer should carry a page"

    def test_kite_of_other_domain_refused(self, stack, group):
        # The relay only accepts *.example.test: another domain is refused
        # even with the right secret.
        kite = Kite("http", "demo.other.test", stack.origin.port, stack.relay.port, SECRET)
        conn = group.our_connector(stack.relay, [kite])
        conn.proc.wait_status("REJECTED", timeout=15)
        assert "FLYING" not in conn.proc.statuses()

    def test_duplicate_kite_refused(self, stack, group):
        # A second connector asking for the kite the stack already flies.
        dup = Kite("http", stack.http_kite.name, stack.origin.port, stack.relay.port, SECRET)
        conn = group.our_connector(stack.relay, [dup])
        status = conn.proc.wait_status(["REJECTED", "PROBLEMS"], timeout=15)
        time.sleep(1.0)
        assert "FLYING" not in conn.proc.statuses(), \
            "duplicate connector flies (statuses %s)" % conn.proc.statuses()
        assert status in ("REJECTED", "PROBLEMS")
        # The first connector still serves the kite.
        wait_http(stack.host, stack.port, "/", timeout=10)
        assert "FLYING" in stack.connector.proc.statuses()

    def test_sigterm_exits_zero(self, stack, group):
        origin = group.origin(kite_name("ours-term"))
        kite = Kite("http", origin.kite, origin.port, stack.relay.port, SECRET)
        conn = group.our_connector(stack.relay, [kite])
        conn.wait_serving(timeout=30)
        rc = conn.proc.stop(timeout=10)
        assert rc == 0, "pagekitec exit code on SIGTERM: %s" % rc

    def test_relay_sigterm_exits_zero(self, group):
        relay = group.our_relay()
        rc = relay.proc.stop(timeout=10)
        assert rc == 0, "pagekiter exit code on SIGTERM: %s" % rc


class TestTlsTunnels:
    """Tunnels wrapped in TLS to our relay, verified against a test CA."""

    def _stack(self, group, cert, key, connector_args):
        origin = group.origin(kite_name("tls"))
        relay = group.our_relay(tls_cert=cert, tls_key=key)
        kite = Kite("http", origin.kite, origin.port, relay.port, SECRET)
        conn = group.our_connector(relay, [kite], connector_args)
        return relay, conn, kite

    def test_verified_tls_flies(self, group, tls_pki):
        relay, conn, kite = self._stack(group, tls_pki.relay_cert, tls_pki.relay_key,
                                        ["--tls", "--ca-file", str(tls_pki.ca)])
        conn.wait_serving(timeout=30)
        conn.proc.wait_status("FLYING", timeout=5)
        status, _h, body = http_request(relay.port, kite.name, "GET", "/", timeout=10)
        assert status == 200 and kite.name.encode() in body

    def test_untrusted_cert_refused(self, group, tls_pki):
        relay, conn, kite = self._stack(group, tls_pki.self_cert, tls_pki.self_key,
                                        ["--tls", "--ca-file", str(tls_pki.ca)])
        deadline = time.monotonic() + 8
        while time.monotonic() < deadline and conn.proc.alive:
            assert "FLYING" not in conn.proc.statuses(), \
                "connector flies to a relay whose certificate it must not trust"
            time.sleep(0.2)
        assert "FLYING" not in conn.proc.statuses()
        status, _h, _b = http_request(relay.port, kite.name, "GET", "/", timeout=10)
        assert status != 200, "kite served through an untrusted TLS tunnel"

    def test_untrusted_cert_insecure_flies(self, group, tls_pki):
        # Control for the test above: the same relay works with --insecure.
        relay, conn, kite = self._stack(group, tls_pki.self_cert, tls_pki.self_key,
                                        ["--tls", "--insecure"])
        conn.wait_serving(timeout=30)
        assert http_request(relay.port, kite.name, "GET", "/", timeout=10)[0] == 200


def test_wrong_secret_refused_by_relay_with_other_secret(group):
    # Relay configured with another secret: our connector with SECRET is refused.
    origin = group.origin(kite_name("ours-ws"))
    relay = group.our_relay(secret=WRONG_SECRET)
    kite = Kite("http", origin.kite, origin.port, relay.port, SECRET)
    conn = group.our_connector(relay, [kite])
    conn.proc.wait_status("REJECTED", timeout=15)
    assert "FLYING" not in conn.proc.statuses()
