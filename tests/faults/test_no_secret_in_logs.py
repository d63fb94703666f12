"""Secrets never appear in logs, even at maximum verbosity (-vv).

Relay and connectors run with -vv (PK_LOG_ALL) and a distinctive secret;
traffic goes through, a connector with a wrong secret is rejected, and then
every byte either tool wrote (stdout, stderr, the -Y status file) is searched
for the secret, in plain and in a few encodings.
"""
import base64
import binascii
import os

from faultlib import KITE, PAGEKITEC, free_port, http_get, serving, wait_port, wait_until

SECRET = "Zq7-SECRET-do-not-log-4f1c9e"
WRONG = "Wx9-WRONG-SECRET-do-not-log-77aa"


def forms(secret):
    b = secret.encode()
    return {secret, secret.lower(), secret.upper(), binascii.hexlify(b).decode(),
            base64.b64encode(b).decode().rstrip("="), secret[:16]}


def test_no_secret_in_logs(procs, origin, tmp_path):
    port = free_port()
    relay = procs.relay(port, extra=["-vv"], secret=SECRET)
    assert wait_port(port)
    status = tmp_path / "status.json"
    conn = procs.connector(port, origin.port, extra=["-vv", "-Y", str(status)], secret=SECRET)
    assert serving(port), conn.output()
    for i in range(5):
        st, _, body, _ = http_get(port, "/ok-%d" % i)
        assert st == 200
    # A connector with the wrong secret: the rejection path logs too.
    bad = procs.start("pagekitec-wrong", [PAGEKITEC, "--frontend", "127.0.0.1:%d" % port, "-vv",
                                          "127.0.0.1:%d" % origin.port, "http",
                                          "other.example.test", "0", WRONG])
    assert wait_until(lambda: "REJECTED" in bad.statuses() or "rejected" in bad.output(), 10), \
        bad.output()
    for p in procs.items:
        p.stop()
    texts = {"relay": relay.output(), "connector": conn.output(), "wrong": bad.output()}
    if status.exists():
        texts["status file"] = status.read_text()
    # The logs are really at full verbosity (so the check means something).
    assert len(texts["relay"].splitlines()) > 10 and len(texts["connector"].splitlines()) > 10
    assert "Stream" in texts["connector"]
    for name, text in texts.items():
        for f in forms(SECRET) | forms(WRONG):
            assert f not in text, "secret (%r) found in %s output" % (f, name)
    # And it is in what the test passed (so the grep is not vacuous).
    assert SECRET in " ".join(relay.argv) and WRONG in " ".join(bad.argv)
    assert os.path.getsize(relay.logpath) > 0
