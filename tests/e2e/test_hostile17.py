"""Hostile review of the Internet-facing surfaces of issue 17 (SIGHUP reload
of domains and secrets, per-kite access rules), over real sockets on
loopback.  Each test is one attack shape that failed on the code as merged
(see the docstrings); the admin listener's finding is a C unit test
(tests/c/test_admin_render.c, route_reads_only_what_it_is_given), as are
the parts of the others that need no socket (tests/c/test_httpfwd.c
pinned_host, tests/c/test_acl.c kite_rule_parse).

Loopback only; every process is started here (through the group) and
stopped by PID; every loop and wait is bounded.
"""

import os
import socket
import time

import pytest

from harness import Kite, free_port

pytestmark = pytest.mark.ours


# ------------------------------------------------------- reload: domains
def _rc(path, domains):
    lines = ["isfrontend", "host = 127.0.0.1", "protos = http,https,raw,websocket"]
    lines += ["domain = http,https:%s:%s" % d for d in domains]
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def test_more_specific_domain_added_on_reload_drops_kite_of_the_old_secret(group, tmp_path):
    """A kite flies under the wildcard domain *.DOMAIN with secret OLD.  The
    operator hands shop.DOMAIN to someone else: SIGHUP with a new, more
    specific domain `shop.DOMAIN` and secret NEW.  From then on the domain
    table refuses OLD for that name (the most specific entry wins), so the
    live kite proved with OLD must go, as when a secret is replaced; before
    the fix only a replaced or removed entry made the relay re-check, and
    the old holder kept serving shop.DOMAIN until it reconnected."""
    from harness import DOMAIN, OurConnector
    from test_live_reload import hup_and_wait, start_pagekiter
    shop = "shop." + DOMAIN
    old, new = "h17-old-secret-0123456789", "h17-new-secret-0123456789"
    origin = group.origin(shop)
    port = free_port()
    rc = tmp_path / "relay.rc"
    _rc(rc, [("*." + DOMAIN, old)])
    proc = start_pagekiter(group, rc, port)
    group.add(OurConnector(group.logdir, "127.0.0.1:%d" % port,
                           [Kite("http", shop, origin.port, secret=old)])).start()
    from harness import wait_http, wait_not_served
    wait_http(shop, port, "/", 30)
    _rc(rc, [("*." + DOMAIN, old), (shop, new)])
    hup_and_wait(proc, "Reloaded")
    proc.wait_for("Kite http:%s dropped" % shop.replace(".", r"\."), 5,
                  what="the kite of the old secret dropped")
    assert wait_not_served(shop, port, "/", 5) != 200


# ------------------------------------------- secrets kept out of messages
LEAK = "h17TopSecretValue"


@pytest.mark.parametrize("line, names", [
    ("domain http:*.example.test:%s" % LEAK, "not an option"),
    ("domain:http:*.example.test:%s" % LEAK, "not an option"),
    (LEAK, "secrets.rc:1: not an option"),
    ("domain = http::%s" % LEAK, "empty PATTERN"),
    ("domain = http,:*.example.test:%s" % LEAK, "empty protocol"),
    ("domain = http:%s:%s" % ("x" * 300, LEAK), "too long"),
    ("domain = http:*.example.test %s" % LEAK, "invalid --domain"),
])
def test_secretsfile_errors_never_echo_the_secret(tmp_path, line, names):
    """--secretsfile exists to keep secrets out of ps, /proc and logs; a
    typo in it (a missing '=', an empty pattern, a space for the last ':')
    must be named by file and line without printing the secret.  Before
    the fix these messages quoted the whole --domain value (or the whole
    line), secret included: on stderr at start, and in the log (often
    world-readable) on a refused SIGHUP reload."""
    import subprocess
    from harness import PAGEKITER, require_executable
    require_executable(PAGEKITER, "pagekiter")
    sec = tmp_path / "secrets.rc"
    sec.write_text(line + "\n")
    os.chmod(sec, 0o600)
    r = subprocess.run([str(PAGEKITER), "--clean", "--isfrontend", "--host=127.0.0.1",
                        "--ports=%d" % free_port(), "--secretsfile=%s" % sec],
                       capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert names in out, out
    assert LEAK not in out, out


def test_reload_refusal_does_not_log_the_secret(group, tmp_path):
    """The same through SIGHUP: the refusal goes to the relay's log."""
    from test_live_reload import hup_and_wait, start_pagekiter
    port = free_port()
    sec = tmp_path / "secrets.rc"
    sec.write_text("domain = http:*.example.test:good-secret-0123456789\n")
    os.chmod(sec, 0o600)
    rc = tmp_path / "relay.rc"
    rc.write_text("isfrontend\nhost = 127.0.0.1\nsecretsfile = %s\n" % sec)
    proc = start_pagekiter(group, rc, port)
    sec.write_text("domain = http::%s\n" % LEAK)
    hup_and_wait(proc, "Reload refused")
    assert "empty PATTERN" in proc.output()
    assert LEAK not in proc.output()


def test_reload_at_the_domain_limit_can_rename_a_domain(group, tmp_path):
    """A relay with the full 64 domains; the rc file renames one of them
    (old-63 goes, new-63 comes) and SIGHUP.  The final table has 64
    entries, within the limit, so the reload must apply.  Before the fix
    the new entry was added before the old one was removed, so the 65th
    add failed ("too many domains (at most 64)") and the reload was
    refused whole, however often it was tried."""
    from harness import DOMAIN, wait_http
    from test_live_reload import hup_and_wait, start_pagekiter
    secret = "h17-limit-secret-0123456789"
    names = ["old-%d.%s" % (i, DOMAIN) for i in range(64)]
    port = free_port()
    rc = tmp_path / "relay.rc"
    _rc(rc, [(n, secret) for n in names])
    proc = start_pagekiter(group, rc, port)
    new = "new-63." + DOMAIN
    _rc(rc, [(n, secret) for n in names[:63]] + [(new, secret)])
    hup_and_wait(proc, "Reloaded the configuration: 64 domain(s)")
    assert "too many domains" not in proc.output()
    # And the renamed domain is the one in force: a connector for it flies.
    origin = group.origin(new)
    from harness import OurConnector
    group.add(OurConnector(group.logdir, "127.0.0.1:%d" % port,
                           [Kite("http", new, origin.port, secret=secret)])).start()
    wait_http(new, port, "/", 20)


# ------------------------------------------- kite access: one stream, many requests
def _read_response(s, deadline):
    """One HTTP/1.1 response with a Content-Length (or until close)."""
    buf = b""
    while b"\r\n\r\n" not in buf and time.monotonic() < deadline:
        d = s.recv(65536)
        if not d:
            return buf
        buf += d
    head, _, body = buf.partition(b"\r\n\r\n")
    n = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            n = int(v.strip())
    while (n is None or len(body) < n) and time.monotonic() < deadline:
        d = s.recv(65536)
        if not d:
            break
        body += d
    return head + b"\r\n\r\n" + body


@pytest.mark.parametrize("second", ["host", "absolute"])
def test_password_kite_not_reachable_through_another_kites_stream(group, second):
    """Two kites of one connector on one origin (one web server, two
    virtual hosts): open.DOMAIN, and secret.DOMAIN with +password.  The
    access rules are checked on a stream's first request only, so a
    visitor opened a stream to open.DOMAIN and then, on the same
    keep-alive connection, asked for secret.DOMAIN (a second request with
    that Host, or an absolute-form target http://secret.DOMAIN/ that the
    origin must prefer over Host): the connector forwarded it without
    credentials.  Each request of a stream must name the stream's host;
    others get 421 Misdirected Request and the stream ends."""
    from harness import DOMAIN, OurConnector, wait_http
    relay = group.our_relay()
    open_name, secret_name = "open-h17." + DOMAIN, "secret-h17." + DOMAIN
    origin = group.origin(open_name)
    kites = [Kite("http", open_name, origin.port, relay.port),
             Kite("http", secret_name, origin.port, relay.port)]
    group.add(OurConnector(group.logdir, relay.frontend, kites,
                           ["--kite-access=%s:+password/alice=pw-h17" % secret_name])).start()
    wait_http(open_name, relay.port, "/", 30)
    wait_http(secret_name, relay.port, "/", 30, expect=401)
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
    deadline = time.monotonic() + 15
    try:
        s.sendall(b"GET /headers HTTP/1.1\r\nHost: %s\r\n\r\n" % open_name.encode())
        first = _read_response(s, deadline)
        assert first.startswith(b"HTTP/1.1 200"), first[:200]
        if second == "host":
            s.sendall(b"GET /headers HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                      % secret_name.encode())
        else:
            s.sendall(b"GET http://%s/headers HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                      % (secret_name.encode(), open_name.encode()))
        got = _read_response(s, deadline)
    finally:
        s.close()
    if second == "host":
        assert b'"host": "%s"' % secret_name.encode() not in got, got[:400]
    assert not got.startswith(b"HTTP/1.1 200"), got[:400]
    assert got.startswith(b"HTTP/1.1 421") or got == b"", got[:400]
