"""Live reconfiguration (issue 17, item 1): change a running relay and a
running connector without dropping the tunnels that stay allowed.

* pagekiter: SIGHUP re-reads the same command line and rc files and applies
  the differences (domains, TLS endpoints and certificates, MOTD); an
  invalid new configuration is refused whole and the old one keeps running;
  SIGHUP never kills the process.
* The same through the C API in this process (ctypes): relay domains and
  TLS endpoints added, replaced and removed after pagekite_thread_start.

Every wait and every load loop is bounded in count and time.
"""

import hashlib
import http.client
import os
import signal
import socket
import ssl
import threading
import time

import pytest

import pkctypes as pk
from harness import (LIBPAGEKITE, PAGEKITER, Group, Kite, OurConnector, free_port,
                     http_request, port_accepts, require_executable, require_file, wait_http,
                     wait_not_served)
from origin import pattern_sha256
from servicebox import BoxPKI

DOMAIN = "example.test"
SECRET_A = "live-secret-a-0123456789"
SECRET_B = "live-secret-b-0123456789"
SECRET_D = "live-secret-d-0123456789"
SECRET_E = "live-secret-e-0123456789"
NAME_A, NAME_B, NAME_D, NAME_E = ("%s.%s" % (x, DOMAIN) for x in "abde")
TLS_NAME = "tls." + DOMAIN
LOAD_REQUESTS = 1000
LOAD_WORKERS = 8
LOAD_TIMEOUT = 120.0


@pytest.fixture
def group(tmp_path):
    g = Group(tmp_path)
    yield g
    g.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    p = BoxPKI(tmp_path_factory.mktemp("live-pki"))
    p.issue("old", [TLS_NAME])
    p.issue("new", [TLS_NAME])
    return p


def peer_cert_sha256(port, sni, timeout=10.0):
    """SHA-256 of the certificate the relay on port shows for sni."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        with ctx.wrap_socket(s, server_hostname=sni) as t:
            return hashlib.sha256(t.getpeercert(binary_form=True)).hexdigest()


def pem_sha256(path):
    der = ssl.PEM_cert_to_DER_cert(open(path).read().split("-----END CERTIFICATE-----")[0]
                                   + "-----END CERTIFICATE-----\n")
    return hashlib.sha256(der).hexdigest()


class Load:
    """LOAD_REQUESTS GETs spread over names, LOAD_WORKERS threads, each
    request bounded by its own timeout; the whole by LOAD_TIMEOUT."""

    def __init__(self, port, names, total=LOAD_REQUESTS, size=2000):
        self.port, self.names, self.total, self.size = port, list(names), total, size
        self.want = pattern_sha256(size)
        self.done = 0
        self.errors = []
        self.lock = threading.Lock()
        self.next = 0
        self.threads = [threading.Thread(target=self._worker, daemon=True)
                        for _ in range(LOAD_WORKERS)]
        self.deadline = time.monotonic() + LOAD_TIMEOUT

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _take(self):
        with self.lock:
            if self.next >= self.total or time.monotonic() > self.deadline:
                return None
            self.next += 1
            return self.next - 1

    def _worker(self):
        while True:
            i = self._take()
            if i is None:
                return
            host = self.names[i % len(self.names)]
            err = None
            try:
                status, _h, body = http_request(self.port, host, "GET", "/bytes/%d" % self.size,
                                                timeout=20)
                if status != 200:
                    err = "#%d %s: HTTP %d %r" % (i, host, status, body[:80])
                elif hashlib.sha256(body).hexdigest() != self.want:
                    err = "#%d %s: wrong body (%d bytes)" % (i, host, len(body))
            except (OSError, http.client.HTTPException) as e:
                err = "#%d %s: %s: %s" % (i, host, type(e).__name__, e)
            with self.lock:
                self.done += 1
                if err:
                    self.errors.append(err)

    def wait_some(self, n, timeout=60.0):
        deadline = time.monotonic() + timeout
        while self.done < n:
            assert time.monotonic() < deadline, "load: only %d requests in %.0f s" % (
                self.done, timeout)
            time.sleep(0.02)

    def join(self):
        for t in self.threads:
            t.join(max(1.0, self.deadline - time.monotonic() + 30))
        assert not any(t.is_alive() for t in self.threads), "load did not finish in time"
        return self


def write_rc(path, domains, endpoint_pem=None, motd=None):
    lines = ["isfrontend", "host = 127.0.0.1", "protos = http,https,raw,websocket"]
    lines += ["domain = http,https:%s:%s" % (name, secret) for name, secret in domains]
    if endpoint_pem:
        lines.append("tls_endpoint = %s:%s" % (TLS_NAME, endpoint_pem))
    if motd:
        lines.append("motd = %s" % motd)
    tmp = str(path) + ".tmp"
    with open(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    os.replace(tmp, path)


def start_pagekiter(group, rc, port):
    from harness import Proc
    require_executable(PAGEKITER, "pagekiter")
    proc = Proc("pagekiter", [PAGEKITER, "--clean", "--optfile=%s" % rc, "--ports=%d" % port],
                group.logdir)

    class Handle:
        def stop(self):
            return proc.stop()
    group.add(Handle())
    deadline = time.monotonic() + 20
    while not port_accepts(port):
        assert proc.alive, "pagekiter exited: %s\n%s" % (proc.popen.poll(), proc.tail())
        assert time.monotonic() < deadline, "pagekiter not listening\n" + proc.tail()
        time.sleep(0.05)
    return proc


def connector(group, port, name, secret, origin_port):
    return group.add(OurConnector(group.logdir, "127.0.0.1:%d" % port,
                                  [Kite("http", name, origin_port, secret=secret)])).start()


def hup_and_wait(proc, pattern, timeout=10.0):
    before = proc.output().count("Reloaded") + proc.output().count("Reload refused")
    os.kill(proc.pid, signal.SIGHUP)
    deadline = time.monotonic() + timeout
    while True:
        out = proc.output()
        if out.count("Reloaded") + out.count("Reload refused") > before:
            break
        assert proc.alive, "pagekiter died on SIGHUP (rc %s)\n%s" % (proc.popen.poll(),
                                                                     proc.tail())
        assert time.monotonic() < deadline, "no reload line after SIGHUP\n" + proc.tail()
        time.sleep(0.05)
    assert pattern in proc.output(), "%r not in the log\n%s" % (pattern, proc.tail())


# ---------------------------------------------------------------- pagekiter

def test_sighup_does_not_kill_pagekiter_without_logfile(group, tmp_path):
    """Without --logfile, SIGHUP used to end pagekiter (exit 129)."""
    port = free_port()
    rc = tmp_path / "relay.rc"
    write_rc(rc, [(NAME_A, SECRET_A)])
    proc = start_pagekiter(group, rc, port)
    for _ in range(2):
        hup_and_wait(proc, "Reloaded")
    time.sleep(0.3)
    assert proc.alive, "pagekiter exited with %s on SIGHUP" % proc.popen.poll()
    assert port_accepts(port)
    assert proc.stop() == 0, proc.tail()  # a clean stop (no leak report under ASan)


def test_sighup_refuses_an_invalid_config_whole(group, tmp_path):
    """A new configuration with a bad value is refused with the reason; the
    old one keeps serving (kite A stays up, the added B is not taken)."""
    origin = group.origin(NAME_A)
    port = free_port()
    rc = tmp_path / "relay.rc"
    write_rc(rc, [(NAME_A, SECRET_A)])
    proc = start_pagekiter(group, rc, port)
    ca = connector(group, port, NAME_A, SECRET_A, origin.port)
    wait_http(NAME_A, port, "/", 20)
    with open(rc, "a") as f:
        f.write("domain = http:%s:%s\nports = notaport\n" % (NAME_B, SECRET_B))
    hup_and_wait(proc, "Reload refused")
    assert "notaport" in proc.output()
    assert proc.alive
    assert http_request(port, NAME_A)[0] == 200
    cb = connector(group, port, NAME_B, SECRET_B, origin.port)
    cb.proc.wait_for("REJECTED", 15, what="kite B refused: its domain was not applied")
    # A restart-only change is logged and left; the rest applies.
    write_rc(rc, [(NAME_A, SECRET_A), (NAME_B, SECRET_B)])
    with open(rc, "a") as f:
        f.write("ports = %d\n" % free_port())
    hup_and_wait(proc, "Reloaded")
    assert "needs a restart: --ports" in proc.output(), proc.tail()
    # A fresh connector for B (the refused one would only ask again after
    # its back-off): B is taken now.
    cb.stop()
    connector(group, port, NAME_B, SECRET_B, origin.port)
    wait_http(NAME_B, port, "/", 15)
    assert ca.proc.alive
    assert proc.stop() == 0, proc.tail()


def test_sighup_reload_under_load(group, tmp_path, pki):
    """The issue's test: SIGHUP while 1,000 requests run through two live
    kites: a domain added (its new connector flies within 1 s), one removed
    (its tunnel closes with a reason), the TLS certificate rotated (new
    handshakes see the new one): 0 failed requests on the kites that stay."""
    origin = group.origin(NAME_A)
    port = free_port()
    rc = tmp_path / "relay.rc"
    pem = tmp_path / "tls.pem"
    pem.write_text(open(pki.issued["old"]["pem"]).read())
    keep = [(NAME_A, SECRET_A), (NAME_B, SECRET_B)]
    write_rc(rc, keep + [(NAME_D, SECRET_D)], endpoint_pem=pem)
    proc = start_pagekiter(group, rc, port)
    assert peer_cert_sha256(port, TLS_NAME) == pem_sha256(pki.issued["old"]["cert"])
    ca = connector(group, port, NAME_A, SECRET_A, origin.port)
    cb = connector(group, port, NAME_B, SECRET_B, origin.port)
    cd = connector(group, port, NAME_D, SECRET_D, origin.port)
    for name in (NAME_A, NAME_B, NAME_D):
        wait_http(name, port, "/", 30)

    load = Load(port, [NAME_A, NAME_B]).start()
    load.wait_some(50)
    pem.write_text(open(pki.issued["new"]["pem"]).read())  # same path, new certificate
    write_rc(rc, keep + [(NAME_E, SECRET_E)], endpoint_pem=pem)
    hup_and_wait(proc, "Reloaded")
    assert load.done < LOAD_REQUESTS, "the load ended before the reload: not a live test"

    t0 = time.monotonic()
    connector(group, port, NAME_E, SECRET_E, origin.port)
    wait_http(NAME_E, port, "/", 5)
    assert time.monotonic() - t0 < 1.0 + 0.5, "the added domain's connector took %.2f s" % (
        time.monotonic() - t0)
    proc.wait_for("domain removed", 5, what="the removed kite's reason in the relay log")
    wait_not_served(NAME_D, port, "/", 5)
    assert peer_cert_sha256(port, TLS_NAME) == pem_sha256(pki.issued["new"]["cert"])

    load.join()
    assert load.done == LOAD_REQUESTS, "only %d of %d requests ran" % (load.done, LOAD_REQUESTS)
    assert load.errors == [], "%d failed: %s" % (len(load.errors), load.errors[:5])
    assert ca.proc.alive and cb.proc.alive and cd.proc.alive
    # The removed kite's tunnel was closed: its connector saw it go.
    cd.proc.wait_for("REJECTED|CONNECTING|PROBLEMS", 15, what="kite D's connector lost it")
    assert proc.stop() == 0, proc.tail()


def test_unit_reload_is_sighup(group, tmp_path):
    """contrib/pagekiter.service's ExecReload= is a SIGHUP to the main
    process, which reloads (run here as systemd would run it, with $MAINPID
    set to the relay's pid)."""
    import shlex
    import subprocess
    from pathlib import Path
    unit = Path(__file__).resolve().parents[2] / "contrib" / "pagekiter.service"
    reload = [l.split("=", 1)[1] for l in unit.read_text().splitlines()
              if l.startswith("ExecReload=")]
    assert reload == ["/bin/kill -HUP $MAINPID"], reload
    port = free_port()
    rc = tmp_path / "relay.rc"
    write_rc(rc, [(NAME_A, SECRET_A)])
    proc = start_pagekiter(group, rc, port)
    before = proc.output().count("Reloaded")
    argv = [a.replace("$MAINPID", str(proc.pid)) for a in shlex.split(reload[0])]
    assert subprocess.run(argv, timeout=10).returncode == 0
    proc.wait_for("Reloaded the configuration", 10)
    assert proc.output().count("Reloaded") == before + 1 and proc.alive
    assert proc.stop() == 0, proc.tail()


# ---------------------------------------------------------------- the C API, in-process

@pytest.fixture(scope="module")
def lib():
    require_file(LIBPAGEKITE, "libpagekite.so.1")
    lib = pk.load(LIBPAGEKITE)
    needed = [n for n in ("pagekite_remove_relay_domain", "pagekite_remove_relay_tls_endpoint")
              if n in lib.missing]
    assert not needed, "libpagekite.so.1 does not export %s" % needed
    return lib


class LibRelay:
    """Our relay through the C API, in this process, with no stream lines in
    its log (so the ring buffer keeps the reconfiguration lines)."""

    def __init__(self, lib, domains, tls=None):
        self.port = free_port()
        self.m = pk.PageKite(lib, app_id="live", max_kites=16, max_frontends=4, max_conns=128,
                             flags=pk.PK_AS_FRONTEND_RELAY | pk.PK_WITHOUT_DEFAULTS
                             | pk.PK_WITH_IPV4 | pk.PK_WITHOUT_SERVICE_FRONTENDS,
                             verbosity=pk.PK_LOG_ERROR | pk.PK_LOG_MANAGER_ERROR
                             | pk.PK_LOG_MANAGER_INFO | pk.PK_LOG_TUNNEL_CONNS)
        calls = [self.m.add_relay_listener("127.0.0.1", self.port)]
        calls += [self.m.add_relay_domain("http,https", name, secret) for name, secret in domains]
        if tls:
            calls.append(self.m.add_relay_tls_endpoint(TLS_NAME, tls, None))
        assert all(c == 0 for c in calls), (calls, self.m.last_error())
        assert self.m.thread_start() == 0, self.m.last_error()
        deadline = time.monotonic() + 10
        while not port_accepts(self.port):
            assert time.monotonic() < deadline, "our relay not listening"
            time.sleep(0.05)
        self.log = ""

    def read_log(self):
        """The log so far (pagekite_get_log hands out each line once)."""
        self.log += self.m.get_log() or ""
        return self.log

    def wait_log(self, text, timeout=5.0):
        deadline = time.monotonic() + timeout
        while text not in self.read_log():
            assert time.monotonic() < deadline, "%r not in the log:\n%s" % (text, self.log[-3000:])
            time.sleep(0.05)

    def stop(self):
        self.m.close()


def test_api_reconfigure_relay_under_load(group, lib, pki, tmp_path):
    """The same as the SIGHUP test through the API, from this (non-loop)
    thread while 1,000 requests run: a domain added after start flies a new
    connector within 1 s, one removed drops its tunnel with the reason, a
    re-added pattern with the same secret drops nothing, the endpoint's
    certificate is replaced and then removed (the catch-all set after start
    takes over): 0 failed requests on the kites that stay."""
    origin = group.origin(NAME_A)
    relay = group.add(LibRelay(lib, [(NAME_A, SECRET_A), (NAME_B, SECRET_B), (NAME_D, SECRET_D)],
                               tls=pki.issued["old"]["pem"]))
    port, m = relay.port, relay.m
    assert peer_cert_sha256(port, TLS_NAME) == pem_sha256(pki.issued["old"]["cert"])
    for name, secret in ((NAME_A, SECRET_A), (NAME_B, SECRET_B), (NAME_D, SECRET_D)):
        connector(group, port, name, secret, origin.port)
    for name in (NAME_A, NAME_B, NAME_D):
        wait_http(name, port, "/", 30)

    load = Load(port, [NAME_A, NAME_B]).start()
    load.wait_some(50)
    assert m.add_relay_domain("http,https", NAME_A, SECRET_A) == 0  # same secret: stays
    assert m.add_relay_domain("http,https", NAME_E, SECRET_E) == 0, m.last_error()
    t0 = time.monotonic()
    connector(group, port, NAME_E, SECRET_E, origin.port)
    wait_http(NAME_E, port, "/", 5)
    took = time.monotonic() - t0
    assert took < 1.5, "the added domain's connector took %.2f s" % took

    assert m.remove_relay_domain("http,https", NAME_D) == 0, m.last_error()
    relay.wait_log("Kite http:%s dropped: domain removed" % NAME_D)
    relay.wait_log("domain removed: no kite left")
    wait_not_served(NAME_D, port, "/", 5)
    assert m.remove_relay_domain("http,https", NAME_D) == -1
    assert lib.pagekite_last_error_code() == -3  # PK_ENOTFOUND

    # A TLS session made before the rotation: it keeps its certificate and
    # still works after its endpoint is replaced and then removed.
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    before = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                             server_hostname=TLS_NAME)
    old_cert = hashlib.sha256(before.getpeercert(binary_form=True)).hexdigest()
    assert old_cert == pem_sha256(pki.issued["old"]["cert"])
    assert m.add_relay_tls_endpoint(TLS_NAME, pki.issued["new"]["pem"], None) == 0
    assert peer_cert_sha256(port, TLS_NAME) == pem_sha256(pki.issued["new"]["cert"])
    assert m.add_relay_tls_endpoint(TLS_NAME, "/nonexistent.pem", None) == -1
    assert peer_cert_sha256(port, TLS_NAME) == pem_sha256(pki.issued["new"]["cert"])
    assert m.set_relay_tls(pki.issued["old"]["cert"], pki.issued["old"]["key"]) == 0
    assert m.remove_relay_tls_endpoint(TLS_NAME) == 0, m.last_error()
    assert peer_cert_sha256(port, TLS_NAME) == pem_sha256(pki.issued["old"]["cert"])
    # The old session still speaks: a request for a name without a kite
    # gets the relay's 503 page through it.
    before.sendall(("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % TLS_NAME).encode())
    head = before.recv(200)
    before.close()
    assert head.startswith(b"HTTP/1.1 503") or head.startswith(b"HTTP/1.0 503"), head
    assert m.set_relay_motd("after start") == 0
    assert load.done < LOAD_REQUESTS, "the load ended before the last change: not a live test"

    load.join()
    assert load.done == LOAD_REQUESTS, "only %d of %d requests ran" % (load.done, LOAD_REQUESTS)
    assert load.errors == [], "%d failed: %s" % (len(load.errors), load.errors[:5])
    assert "dropped" not in relay.read_log().replace(
        "Kite http:%s dropped" % NAME_D, "").replace("1 kite(s) dropped", ""), relay.log[-2000:]
    for name in (NAME_A, NAME_B, NAME_E):
        assert http_request(port, name)[0] == 200

    # A new secret for a live pattern drops the kites that proved the old one.
    assert m.add_relay_domain("http,https", NAME_B, "a-new-secret-for-b") == 0
    relay.wait_log("Kite http:%s dropped" % NAME_B)
    wait_not_served(NAME_B, port, "/", 5)
    assert http_request(port, NAME_A)[0] == 200


# ---------------------------------------------------------------- the connector, in-process

def lib_connector(lib, relays, kites, origin_port):
    m = pk.PageKite(lib, app_id="live-conn", max_kites=8, max_frontends=4, max_conns=64,
                    verbosity=pk.PK_LOG_ERROR | pk.PK_LOG_MANAGER_ERROR
                    | pk.PK_LOG_MANAGER_INFO | pk.PK_LOG_TUNNEL_CONNS)
    for name, secret in kites:
        assert m.add_kite("http", name, 0, secret, "127.0.0.1", origin_port) == 0, m.last_error()
    for r in relays:
        assert m.add_frontend("127.0.0.1", r.port) >= 1, m.last_error()
    return m


class Closer:
    def __init__(self, m):
        self.m = m

    def stop(self):
        self.m.close()


def test_api_connector_remove_and_add_kites_while_running(group, lib):
    """Remove one kite of two while 1,000 requests run through the other:
    0 failed; the removed one is no longer served (our "unavailable" answer:
    the wire cannot drop one kite of a shared tunnel).  A kite added while
    running flies on the live tunnel (AddKites), the first still untouched."""
    origin = group.origin(NAME_A)
    relay = group.our_relay(pattern="*." + DOMAIN, secret=SECRET_A)
    m = lib_connector(lib, [relay], [(NAME_A, SECRET_A), (NAME_B, SECRET_A)], origin.port)
    group.add(Closer(m))
    assert m.thread_start() == 0, m.last_error()
    m.wait_status(pk.PK_STATUS_FLYING, 20)
    wait_http(NAME_A, relay.port, "/", 20)
    wait_http(NAME_B, relay.port, "/", 20)
    tunnels = m.get_counter(pk.PK_COUNTER_TUNNELS)

    load = Load(relay.port, [NAME_A]).start()
    load.wait_some(50)
    assert m.remove_kite("http", NAME_B, 0) == 0, m.last_error()
    assert m.remove_kite("http", NAME_B, 0) == -1
    assert lib.pagekite_last_error_code() == -3  # PK_ENOTFOUND
    status = wait_not_served(NAME_B, relay.port, "/", 5)
    assert status in (None, 502, 503), status
    assert lib.pagekite_get_kite_status(m.mgr, b"http", NAME_B.encode()) == -1

    assert m.add_kite("http", NAME_E, 0, SECRET_A, "127.0.0.1", origin.port) == 0, m.last_error()
    wait_http(NAME_E, relay.port, "/", 5)
    assert load.done < LOAD_REQUESTS, "the load ended before the last change: not a live test"
    load.join()
    assert load.done == LOAD_REQUESTS
    assert load.errors == [], "%d failed: %s" % (len(load.errors), load.errors[:5])
    assert m.get_counter(pk.PK_COUNTER_TUNNELS) == tunnels, "the shared tunnel was remade"

    # The last kite of a tunnel: removing it closes the tunnel, so the relay
    # drops it at once.
    assert m.remove_kite("http", NAME_A, 0) == 0
    assert m.remove_kite("http", NAME_E, 0) == 0
    relay.proc.wait_for("Kite http:%s is down" % NAME_A, 10, what="the relay dropped kite A")
    wait_not_served(NAME_A, relay.port, "/", 5)


def test_api_connector_remove_and_add_frontend(group, lib):
    """Two relays, one tunnel: removing the relay in use closes that tunnel
    only and the kite flies through the other; a relay added while running
    takes over when the last one is removed."""
    origin = group.origin(NAME_A)
    r1 = group.our_relay(pattern="*." + DOMAIN, secret=SECRET_A)
    r2 = group.our_relay(pattern="*." + DOMAIN, secret=SECRET_A)
    m = lib_connector(lib, [r1, r2], [(NAME_A, SECRET_A)], origin.port)
    group.add(Closer(m))
    assert m.thread_start() == 0, m.last_error()
    m.wait_status(pk.PK_STATUS_FLYING, 20)
    deadline = time.monotonic() + 20
    while True:
        served = [r for r in (r1, r2) if http_request(r.port, NAME_A)[0] == 200]
        if served:
            break
        assert time.monotonic() < deadline, "kite A not served by either relay"
        time.sleep(0.2)
    first = served[0]
    other = r2 if first is r1 else r1
    assert m.remove_frontend("127.0.0.1", first.port) == 0, m.last_error()
    assert m.remove_frontend("127.0.0.1", first.port) == -1
    wait_http(NAME_A, other.port, "/", 15)
    wait_not_served(NAME_A, first.port, "/", 10)

    # A relay added while running: used once the one in use goes.
    assert m.add_frontend("127.0.0.1", first.port) >= 1, m.last_error()
    assert m.add_frontend("127.0.0.1", first.port) == -1  # there already
    time.sleep(1.0)
    assert http_request(first.port, NAME_A)[0] != 200, "a new tunnel was made needlessly"
    assert m.remove_frontend("127.0.0.1", other.port) == 0
    wait_http(NAME_A, first.port, "/", 15)


def test_sighup_admin_change_needs_a_restart(group, tmp_path):
    """--admin (the /metrics listener) is bound at start: a changed `admin =`
    line is named in the 'needs a restart' line, and the old listener keeps
    answering, instead of the change being dropped without a word."""
    port, admin1, admin2 = free_port(), free_port(), free_port()
    rc = tmp_path / "relay.rc"
    write_rc(rc, [(NAME_A, SECRET_A)])
    with open(rc, "a") as f:
        f.write("admin = %d\n" % admin1)
    proc = start_pagekiter(group, rc, port)
    assert port_accepts(admin1)
    write_rc(rc, [(NAME_A, SECRET_A)])
    with open(rc, "a") as f:
        f.write("admin = %d\n" % admin2)
    hup_and_wait(proc, "Reloaded")
    assert "needs a restart: --admin" in proc.output(), proc.tail()
    assert port_accepts(admin1) and not port_accepts(admin2)
