"""The built-in admin listener (pagekite_set_admin_listener; pagekiter and
pagekitec --admin): GET /metrics checked by real Prometheus parsers
(prometheus_client's and `promtool check metrics`), GET /status.json checked
against tests/e2e/status_schema.json, counters that follow live traffic,
refusals counted by reason, and the listener's own limits (404, 405, 431,
idle clients, at most 8 clients, off by default)."""
import hashlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import time

import jsonschema
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness import SECRET, Kite, free_port, http_request, kite_name, wait_http

pytestmark = [pytest.mark.ours]

SCHEMA = json.load(open(os.path.join(os.path.dirname(__file__), "status_schema.json")))


def fetch(port, request, timeout=10.0):
    """Send raw request bytes to the admin port; return (status, headers, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(request)
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def get(port, path):
    return fetch(port, b"GET %s HTTP/1.1\r\nHost: admin\r\n\r\n" % path.encode())


def metrics(port):
    """{(name, frozenset(labels)): value} from GET /metrics, parsed by
    prometheus_client; also runs promtool over the same text."""
    status, headers, body = get(port, "/metrics")
    assert status == 200, body
    assert headers["content-type"].startswith("text/plain; version=0.0.4")
    assert int(headers["content-length"]) == len(body)
    text = body.decode("utf-8")
    samples = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    promtool(text)
    return samples, text


def promtool(text):
    """`promtool check metrics` (Debian's prometheus package; ./run installs it)."""
    tool = shutil.which("promtool")
    assert tool, "promtool missing: apt-get install prometheus (./run installs it)"
    r = subprocess.run([tool, "check", "metrics"], input=text.encode(), capture_output=True,
                       timeout=30)
    assert r.returncode == 0, "promtool: %s %s" % (r.stdout.decode(), r.stderr.decode())
    assert not r.stdout.strip() and not r.stderr.strip(), \
        "promtool complains: %s %s" % (r.stdout.decode(), r.stderr.decode())


def status_json(port):
    status, headers, body = get(port, "/status.json")
    assert status == 200, body
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    jsonschema.validate(doc, SCHEMA)
    return doc


def value(samples, name, **labels):
    key = (name, frozenset(labels.items()))
    assert key in samples, "%s%r not in /metrics" % (name, labels)
    return samples[key]


def info_version(samples):
    (v,) = [dict(k[1]).get("version") for k in samples if k[0] == "pagekite_info"]
    assert v, "pagekite_info has no version label"
    return v


def wait_until(fn, timeout, what):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (last: %r)" % (what, last))


def listen_ports(pid):
    """Every TCP port the process listens on, from /proc."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                p = line.split()
                if p[3] == "0A" and p[9] in inodes:
                    ports.add(int(p[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
def admin_relay(group):
    port = free_port()
    relay = group.our_relay(extra_args=["--admin=%d" % port])
    wait_until(lambda: port in listen_ports(relay.proc.pid), 10, "the admin port")
    return relay, port


def test_admin_off_by_default(group):
    relay = group.our_relay()
    time.sleep(0.3)
    assert listen_ports(relay.proc.pid) == {relay.port}


def test_admin_on_loopback_by_default(admin_relay):
    relay, port = admin_relay
    pid = relay.proc.pid
    with open("/proc/net/tcp") as f:
        rows = [line.split() for line in f][1:]
    mine = [r for r in rows if r[3] == "0A" and int(r[1].rsplit(":", 1)[1], 16) == port]
    assert mine and all(r[1].split(":")[0] == "0100007F" for r in mine), mine
    assert port in listen_ports(pid)


def test_metrics_and_status_follow_traffic(admin_relay, group):
    relay, port = admin_relay
    before, _ = metrics(port)
    assert value(before, "pagekite_tunnels") == 0
    assert value(before, "pagekite_streams_opened_total") == 0
    origin = group.origin(kite_name("admin-m"))
    kite = Kite("http", origin.kite, origin.port, relay.port, SECRET)
    conn = group.our_connector(relay, [kite])
    conn.wait_serving(timeout=30)
    n = 20
    for _ in range(n):
        st, _h, body = http_request(relay.port, origin.kite, "GET", "/", timeout=10)
        assert st == 200 and body
    after, text = metrics(port)
    assert value(after, "pagekite_tunnels") == 1
    assert value(after, "pagekite_kites_live") == 1
    assert value(after, "pagekite_kite_up", kite=origin.kite, proto="http",
                 port=str(relay.port)) == 1
    assert value(after, "pagekite_streams_opened_total") >= n
    assert value(after, "pagekite_tunnel_received_bytes_total") > n * 100  # the answers
    assert value(after, "pagekite_tunnel_sent_bytes_total") > n * 30  # the requests
    assert value(after, "pagekite_info", role="relay", version=info_version(after)) == 1
    kl = dict(kite=origin.kite, proto="http", port=str(relay.port))
    assert value(after, "pagekite_kite_streams_opened_total", **kl) >= n
    assert value(after, "pagekite_kite_tunnel_received_bytes_total", **kl) > n * 100
    assert value(after, "pagekite_kite_tunnel_sent_bytes_total", **kl) > n * 30
    assert value(after, "pagekite_kite_tunnel_received_bytes_total", **kl) <= value(
        after, "pagekite_tunnel_received_bytes_total")
    assert SECRET not in text
    doc = status_json(port)
    assert doc["role"] == "relay" and doc["status"] == "FLYING"
    assert doc["totals"]["tunnels"] == 1 and doc["totals"]["streams_total"] >= n
    (t,) = doc["tunnels"]
    assert t["peer"] == "127.0.0.1" and t["peer_port"] > 0
    assert t["kites"] == [{"proto": "http", "name": origin.kite, "port": relay.port}]
    assert t["bytes_in"] > n * 100
    assert [k["name"] for k in doc["kites"]] == [origin.kite]
    assert doc["kites"][0]["tunnel"] == t["id"] and doc["kites"][0]["state"] == "live"
    assert SECRET not in json.dumps(doc)
    # More traffic: the counters only grow.
    http_request(relay.port, origin.kite, "GET", "/", timeout=10)
    again, _ = metrics(port)
    assert value(again, "pagekite_streams_opened_total") > value(
        after, "pagekite_streams_opened_total")
    # The connector goes: its tunnel and kite go from the status.
    conn.stop()
    wait_until(lambda: status_json(port)["tunnels"] == [], 10, "the tunnel to go")
    gone, _ = metrics(port)
    assert value(gone, "pagekite_kites_live") == 0
    # Its traffic stays counted (a counter never goes back).
    assert value(gone, "pagekite_kite_streams_opened_total", **kl) >= n + 1
    (traffic,) = status_json(port)["traffic"]
    assert traffic["name"] == origin.kite and traffic["streams_total"] >= n + 1


def sign(secret, payload, token=None):
    token = token or secrets.token_hex(4)
    return token[:8] + hashlib.sha1((secret + payload + token[:8]).encode()).hexdigest()[:28]


def handshake(port, line):
    req = ("CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite-Features: AddKites\r\n"
           "X-PageKite: %s\r\n\r\n" % line).encode()
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(req)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    return data.decode("latin-1")


def challenge_token(port, name, bsalt):
    head = handshake(port, "http:%s:%s::" % (name, bsalt))
    for line in head.split("\r\n"):
        if line.lower().startswith("x-pagekite-signthis:"):
            return line.split(":", 1)[1].strip().split(":")[3]
    raise AssertionError("no challenge: %r" % head)


def test_rejects_counted_by_reason(admin_relay):
    relay, port = admin_relay
    before, _ = metrics(port)
    for reason in ("kite_signature", "kite_replay", "kite_unknown", "no_kite", "bad_request"):
        assert value(before, "pagekite_rejects_total", reason=reason) == 0
    # A bad signature for a kite of the relay's domain.
    name = kite_name("admin-sig")
    bsalt = secrets.token_hex(18)
    token = challenge_token(relay.port, name, bsalt)
    payload = "http:%s:%s:%s" % (name, bsalt, token)
    head = handshake(relay.port, "%s:%s" % (payload, sign("not-the-secret", payload)))
    assert "signature" in head
    # A right answer, then the same answer again: a replay.
    name2 = kite_name("admin-replay")
    token = challenge_token(relay.port, name2, bsalt)
    payload = "http:%s:%s:%s" % (name2, bsalt, token)
    line = "%s:%s" % (payload, sign(SECRET, payload))
    assert "X-PageKite-OK" in handshake(relay.port, line)
    head = handshake(relay.port, line)
    assert "X-PageKite-Invalid-Why: http:%s:%s;signature" % (name2, bsalt) in head, head
    # A kite of a domain the relay does not serve, signed right.
    other = "x.not-served.test"
    token = challenge_token(relay.port, other, bsalt)
    payload = "http:%s:%s:%s" % (other, bsalt, token)
    head = handshake(relay.port, "%s:%s" % (payload, sign(SECRET, payload)))
    assert "unknown" in head
    # Visitors: one for a kite that is not here, one with garbage.
    st, _h, _b = http_request(relay.port, kite_name("admin-nobody"), "GET", "/", timeout=10)
    assert st == 503
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
    s.sendall(b"GARBAGE / HTTP/1.1\r\n\r\n")
    s.recv(4096)
    s.close()

    def moved():
        m, _ = metrics(port)
        return all(value(m, "pagekite_rejects_total", reason=r) >= 1
                   for r in ("kite_signature", "kite_replay", "kite_unknown", "no_kite",
                             "bad_request")) and m
    after = wait_until(moved, 10, "the reject counters")
    assert value(after, "pagekite_rejects_total", reason="kite_signature") == 1
    assert value(after, "pagekite_rejects_total", reason="kite_replay") == 1
    assert value(after, "pagekite_rejects_total", reason="kite_unknown") == 1
    assert value(after, "pagekite_rejects_total", reason="no_kite") == 1
    assert value(after, "pagekite_rejects_total", reason="plugin") == 0
    doc = status_json(port)
    assert doc["rejects"]["kite_signature"] == 1
    assert doc["totals"]["rejected"] == sum(doc["rejects"].values())


def test_admin_http_errors(admin_relay):
    _relay, port = admin_relay
    st, _h, _b = get(port, "/")
    assert st == 404
    st, _h, _b = get(port, "/metrics/../status.json")
    assert st == 404
    st, h, _b = fetch(port, b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n")
    assert st == 405 and h.get("allow") == "GET"
    st, _h, _b = fetch(port, b"DELETE /status.json HTTP/1.1\r\n\r\n")
    assert st == 405
    st, _h, _b = fetch(port, b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 5000 + b"\r\n\r\n")
    assert st == 431
    st, _h, _b = fetch(port, b"\x16\x03\x01\x00\x05hello\r\n\r\n")
    assert st == 400
    # The query string is ignored.
    st, _h, body = get(port, "/metrics?name[]=pagekite_tunnels")
    assert st == 200 and b"pagekite_tunnels" in body


def test_idle_and_excess_clients_closed(admin_relay):
    _relay, port = admin_relay
    idle = socket.create_connection(("127.0.0.1", port), timeout=15)
    idle.sendall(b"GET /metrics HTTP/1.1\r\n")  # never finishes its head
    t0 = time.monotonic()
    assert idle.recv(4096) == b""  # closed without an answer
    waited = time.monotonic() - t0
    assert 3.0 < waited < 10.0, waited
    idle.close()
    # Its slot comes back in the close callback, at the end of the loop turn
    # that hung up on it; connections accepted earlier in that turn would
    # still count it (seen once under ASan: the eighth holder was refused).
    time.sleep(0.5)
    # Eight clients hold every admin slot; a ninth is hung up on, and the
    # admin port answers again once they go.
    holders = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(8)]
    try:
        time.sleep(0.3)
        extra = socket.create_connection(("127.0.0.1", port), timeout=5)
        extra.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
        try:
            got = extra.recv(4096)
        except ConnectionResetError:
            got = b""
        assert got == b"", got[:100]
        extra.close()
    finally:
        for h in holders:
            h.close()

    def answers():
        try:
            return get(port, "/metrics")[0] == 200
        except ConnectionResetError:  # a slot not yet freed: refused
            return False
    wait_until(answers, 10, "the admin port to answer")


def test_bad_admin_values_refused(group):
    from harness import PAGEKITER
    for bad in ("--admin=", "--admin=notaport", "--admin=127.0.0.1:70000", "--admin=:80"):
        r = subprocess.run([PAGEKITER, "--listen=127.0.0.1", "--ports=%d" % free_port(),
                            "--domain=http:*.x.test:s3cret", bad], capture_output=True,
                           timeout=10)
        assert r.returncode == 2, (bad, r.returncode, r.stderr)
        assert b"--admin" in r.stderr
    # A port that is taken fails the start (exit 1), naming it.
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    tport = taken.getsockname()[1]
    try:
        r = subprocess.run([PAGEKITER, "--listen=127.0.0.1", "--ports=%d" % free_port(),
                            "--domain=http:*.x.test:s3cret", "--admin=%d" % tport],
                           capture_output=True, timeout=10)
        assert r.returncode == 1, (r.returncode, r.stderr)
        assert ("127.0.0.1:%d" % tport).encode() in r.stderr
    finally:
        taken.close()


def test_connector_admin(group):
    relay = group.our_relay()
    port = free_port()
    origin = group.origin(kite_name("admin-c"))
    kite = Kite("http", origin.kite, origin.port, relay.port, SECRET)
    refused = Kite("http", "x.not-served.test", origin.port, relay.port, SECRET)
    conn = group.our_connector(relay, [kite, refused], extra_args=["--admin=127.0.0.1:%d" % port])
    conn.wait_serving(timeout=30)
    for _ in range(5):
        assert http_request(relay.port, origin.kite, "GET", "/", timeout=10)[0] == 200

    def ready():
        m, text = metrics(port)
        return value(m, "pagekite_streams_opened_total") >= 5 and (m, text)
    m, text = wait_until(ready, 10, "the connector's counters")
    assert value(m, "pagekite_info", role="connector", version=info_version(m)) == 1
    assert value(m, "pagekite_kite_up", kite=origin.kite, proto="http",
                 port=str(relay.port)) == 1
    assert value(m, "pagekite_kite_up", kite="x.not-served.test", proto="http",
                 port=str(relay.port)) == 0
    assert value(m, "pagekite_tunnels") == 1
    kl = dict(kite=origin.kite, proto="http", port=str(relay.port))
    assert value(m, "pagekite_kite_streams_opened_total", **kl) >= 5
    assert value(m, "pagekite_kite_tunnel_received_bytes_total", **kl) > 5 * 30  # requests
    assert value(m, "pagekite_kite_tunnel_sent_bytes_total", **kl) > 5 * 100  # answers
    assert SECRET not in text
    doc = status_json(port)
    assert doc["role"] == "connector"
    states = {k["name"]: k["state"] for k in doc["kites"]}
    assert states == {origin.kite: "live", "x.not-served.test": "rejected"}
    (t,) = doc["tunnels"]
    assert t["peer"] == "127.0.0.1" and t["peer_port"] == relay.port
    assert SECRET not in json.dumps(doc)


def test_admin_from_rc_file(group, tmp_path):
    port = free_port()
    rc = tmp_path / "relay.rc"
    rc.write_text("admin = %d\n" % port)
    relay = group.our_relay(extra_args=["--optfile=%s" % rc])
    wait_until(lambda: port in listen_ports(relay.proc.pid), 10, "the admin port")
    doc = status_json(port)
    assert doc["role"] == "relay" and doc["status"] == "FLYING"


def test_pagekitec_Y_metrics_and_status_files(group, tmp_path):
    relay = group.our_relay()
    origin = group.origin(kite_name("admin-y"))
    files = {"metrics": tmp_path / "pagekitec.prom", "status": tmp_path / "pagekitec.json"}
    conns = {}
    for fmt, path in files.items():
        kite = Kite("http", kite_name("admin-y-" + fmt), origin.port, relay.port, SECRET)
        conns[fmt] = (kite, group.our_connector(relay, [kite],
                                                extra_args=["-Y", "%s:%s" % (fmt, path)]))
        conns[fmt][1].wait_serving(timeout=30, kite=kite)

    def prom_ready():
        if not files["metrics"].exists():
            return False
        text = files["metrics"].read_text()
        m = {(s.name, frozenset(s.labels.items())): s.value
             for fam in text_string_to_metric_families(text) for s in fam.samples}
        return m.get(("pagekite_kites_live", frozenset())) == 1 and (m, text)
    m, text = wait_until(prom_ready, 20, "the -Y metrics: file to show the live kite")
    kite = conns["metrics"][0]
    assert value(m, "pagekite_kite_up", kite=kite.name, proto="http", port=str(relay.port)) == 1
    promtool(text)
    assert SECRET not in text

    def json_ready():
        if not files["status"].exists() or not files["status"].read_text():
            return False
        doc = json.loads(files["status"].read_text())
        return doc["totals"]["kites_live"] == 1 and doc
    doc = wait_until(json_ready, 20, "the -Y status: file to show the live kite")
    jsonschema.validate(doc, SCHEMA)
    assert doc["role"] == "connector"
    assert [k["name"] for k in doc["kites"]] == [conns["status"][0].name]
    # A stopped connector leaves no stale numbers behind.
    for fmt, (_kite, conn) in conns.items():
        assert conn.stop() == 0
        assert not files[fmt].exists(), fmt
        assert not (tmp_path / (files[fmt].name + ".tmp")).exists()


def test_acl_refusals_counted(group):
    """--client_acl and --tunnel_acl refusals are counted as reason="acl"."""
    port = free_port()
    relay = group.our_relay(extra_args=["--admin=%d" % port,
                                        "--client_acl=deny:127\\.0\\.0\\.1",
                                        "--tunnel_acl=deny:127\\.0\\.0\\.1"])
    wait_until(lambda: port in listen_ports(relay.proc.pid), 10, "the admin port")
    st, _h, _b = http_request(relay.port, kite_name("admin-acl"), "GET", "/", timeout=10)
    assert st == 403
    head = handshake(relay.port, "http:%s:%s::" % (kite_name("admin-acl"), "ab" * 18))
    assert head.startswith("HTTP/1.0 403"), head

    def counted():
        m, _ = metrics(port)
        return value(m, "pagekite_rejects_total", reason="acl") == 2 and m
    m = wait_until(counted, 10, "two acl refusals")
    assert value(m, "pagekite_rejects_total", reason="no_kite") == 0
    assert status_json(port)["rejects"]["acl"] == 2


def test_ratelimit_and_kite_access_refusals_counted(group):
    """--ratelimit_ips on the relay (reason="ratelimit") and the connector's
    +password/ (reason="kite_auth") each counted where they refuse."""
    rport, cport = free_port(), free_port()
    relay = group.our_relay(extra_args=["--admin=%d" % rport, "--ratelimit_ips=1/600"])
    origin = group.origin(kite_name("admin-rl"))
    kite = Kite("http", origin.kite, origin.port, relay.port, SECRET)
    conn = group.our_connector(relay, [kite], ["--admin=%d" % cport,
                                               "--kite-access=%s:+password/alice=pw1" % kite.name])
    # wait_http's requests are one client (urllib's User-Agent): 401 from the
    # connector, as it asks for credentials.
    wait_http(kite.name, relay.port, "/", timeout=30, expect=401)
    st = http_request(relay.port, kite.name, headers={"User-Agent": "client-2"}, timeout=10)[0]
    assert st == 503  # a second client: over the relay's rate limit

    def counted():
        rm, _ = metrics(rport)
        cm, _ = metrics(cport)
        return (value(rm, "pagekite_rejects_total", reason="ratelimit") == 1 and
                value(cm, "pagekite_rejects_total", reason="kite_auth") >= 1 and (rm, cm))
    rm, cm = wait_until(counted, 10, "the ratelimit and kite_auth counts")
    assert value(cm, "pagekite_rejects_total", reason="kite_ip") == 0
    assert value(rm, "pagekite_rejects_total", reason="acl") == 0


def test_bad_proxy_header_counted(group):
    """A --proxy_protocol_from balancer that sends no PROXY header: the
    connection is closed and counted as reason="proxy_header"."""
    port = free_port()
    relay = group.our_relay(extra_args=["--admin=%d" % port,
                                        "--proxy_protocol_from=127.0.0.1/32"])
    wait_until(lambda: port in listen_ports(relay.proc.pid), 10, "the admin port")
    s = socket.create_connection(("127.0.0.1", relay.port), timeout=10)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x.example.test\r\n\r\n")
    try:
        assert s.recv(4096) == b""  # closed, no answer
    except ConnectionResetError:
        pass
    s.close()

    def counted():
        m, _ = metrics(port)
        return value(m, "pagekite_rejects_total", reason="proxy_header") == 1 and m
    m = wait_until(counted, 10, "the proxy_header count")
    assert value(m, "pagekite_rejects_total", reason="bad_request") == 0
