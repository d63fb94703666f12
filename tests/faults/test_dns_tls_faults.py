"""Frontend name that does not resolve; TLS handshake failure; untrusted cert."""
import subprocess
import time

from faultlib import free_port, serving, wait_port, wait_until

# A label longer than 63 bytes: the C library refuses the name without
# sending any DNS query, so the test stays on loopback.
BAD_NAME = "x" * 64 + ".invalid"


def test_frontend_name_does_not_resolve(procs, origin):
    port = free_port()
    conn = procs.connector(port, origin.port, frontend="%s:%d" % (BAD_NAME, port))
    time.sleep(4)
    out = conn.output()
    assert conn.alive(), out
    assert "FLYING" not in conn.statuses(), out
    assert "DNS lookup for relay" in out and "failed" in out, out
    # It keeps trying without crashing or spinning: a handful of attempts.
    attempts = out.count("DNS lookup for relay")
    assert 1 <= attempts <= 40, attempts


def make_cert(d, name):
    key, crt = d / (name + ".key"), d / (name + ".pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    return crt, key


def never_flying(conn, secs=4):
    time.sleep(secs)
    return "FLYING" not in conn.statuses()


def test_tls_to_plain_relay_fails_cleanly(procs, origin):
    """--tls against a relay that speaks plain TCP: the handshake fails."""
    port = free_port()
    relay = procs.relay(port)
    assert wait_port(port)
    conn = procs.connector(port, origin.port, extra=["--insecure"])
    assert never_flying(conn), conn.output()
    out = conn.output().lower()
    assert conn.alive() and relay.alive()
    assert "tls" in out or "ssl" in out or "handshake" in out, conn.output()


def test_untrusted_relay_certificate(procs, origin, tmp_path):
    crt, key = make_cert(tmp_path, "relay")
    other, _ = make_cert(tmp_path, "other-ca")
    port = free_port()
    relay = procs.relay(port, extra=["--tls-cert=%s" % crt, "--tls-key=%s" % key])
    assert wait_port(port)
    conn = procs.connector(port, origin.port, extra=["--ca-file", str(other)])
    assert never_flying(conn), conn.output()
    out = conn.output()
    assert conn.alive() and relay.alive()
    assert "certificate" in out.lower() and "verif" in out.lower(), out
    # Control: the same relay with its own certificate as CA does fly, so the
    # failure above is the trust check and nothing else.
    good = procs.connector(port, origin.port, extra=["--ca-file", str(crt)])
    assert wait_until(lambda: "FLYING" in good.statuses(), 10), good.output()
    assert serving(port), good.output()
    assert "FLYING" not in conn.statuses()
