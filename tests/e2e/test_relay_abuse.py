"""Our relay under abuse, and its TLS/duplicate handling, over loopback.

Self-contained: starts pagekiter, pagekitec and a threaded origin itself.
"""
import concurrent.futures as cf
import http.client
import http.server
import os
import random
import socket
import ssl
import subprocess
import threading
import time

import pytest

import pkloop
from pkloop import BUILD, free_port, get, stop

SECRET = "abuse-secret-123"
pytestmark = pytest.mark.ours




class Origin(http.server.ThreadingHTTPServer):
    daemon_threads = True


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are two writes

    def do_GET(self):
        body = ("ok:" + self.path).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        xff = ",".join(self.headers.get_all("X-Forwarded-For") or [])
        body = f"ok:{self.path} xff={xff} body={data.decode()}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *a):
        pass


@pytest.fixture
def origin():
    srv = Origin(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def start(argv, tmp_path, name):
    return pkloop.start(argv, tmp_path / f"{name}.log")






def wait_ok(port, host, timeout=15):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            st, _ = get(port, host, timeout=2)
            if st == 200:
                return True
        except OSError:
            pass
        time.sleep(0.1)
    return False


def rss_kb(pid, field="VmHWM"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return -1


@pytest.fixture
def flying(tmp_path, origin):
    port = free_port()
    relay = start([f"{BUILD}/pagekiter", "--listen=127.0.0.1", f"--ports={port}", "-c", "2000",
                   f"--domain=http,https,raw:*.abuse.test:{SECRET}"], tmp_path, "relay")
    conn = start([f"{BUILD}/pagekitec", "-c", "256", "--frontend", f"127.0.0.1:{port}",
                  str(origin), "http", "site.abuse.test", "0", SECRET], tmp_path, "connector")
    try:
        assert wait_ok(port, "site.abuse.test"), (tmp_path / "relay.log").read_text()[-2000:]
        yield port, relay, conn
    finally:
        assert stop(conn) == 0
        assert stop(relay) == 0


REAL_WORKERS, REAL_PER_WORKER = 16, 625  # 10,000 real requests


def test_garbage_and_slowloris_do_not_hurt_live_kite(flying):
    port, relay, conn = flying
    stop_flag = threading.Event()
    slow = []
    # 200 slowloris connections: a request head that never completes.
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET / HTTP/1.1\r\nHost: site.abuse.test\r\nX-Slow: ")
        slow.append(s)

    def garbage(i):
        rnd = random.Random(i)
        kind = i % 4
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=5)
            if kind == 0:
                s.sendall(bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 600))))
            elif kind == 1:
                s.sendall(b"CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite: http:site.abuse.test:"
                          + b"x" * 36 + b":" + b"t" * 36 + b":" + b"0" * 36 + b"\r\n\r\n")
            elif kind == 2:
                s.sendall(b"CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite: ::::\r\nX-PageKite: "
                          + b"A" * 2000 + b"\r\n\r\n")
            else:
                s.sendall(b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"B" * 20000 + b"\r\n\r\n")
            s.settimeout(1)
            try:
                s.recv(4096)
            except OSError:
                pass
            s.close()
            return True
        except OSError:
            return False

    def real(worker):
        """REAL_PER_WORKER requests on one keep-alive connection; counts the good ones."""
        good = 0
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            for j in range(REAL_PER_WORKER):
                path = f"/r{worker}-{j}"
                c.request("GET", path, headers={"Host": "site.abuse.test"})
                r = c.getresponse()
                good += r.status == 200 and r.read() == f"ok:{path}".encode()
        except (OSError, http.client.HTTPException):
            pass
        finally:
            c.close()
        return good

    t0 = time.time()
    with cf.ThreadPoolExecutor(32) as ex:
        g = [ex.submit(garbage, i) for i in range(1000)]
        r = [ex.submit(real, w) for w in range(REAL_WORKERS)]
        ok = sum(f.result() for f in r)
        for f in g:
            f.result()
    stop_flag.set()
    hwm = rss_kb(relay.pid)
    chwm = rss_kb(conn.pid)
    for s in slow:
        s.close()
    print(f"abuse: {ok} real requests in {time.time() - t0:.1f} s with 1000 garbage handshakes "
          f"and 200 slowloris; relay VmHWM {hwm} kB, connector VmHWM {chwm} kB")
    assert ok == REAL_WORKERS * REAL_PER_WORKER
    assert relay.poll() is None and conn.poll() is None
    assert 0 < hwm < 150 * 1024 and 0 < chwm < 150 * 1024
    # The kite still works after the storm.
    assert get(port, "site.abuse.test")[0] == 200


def test_oversized_head_gets_431(flying):
    port, _, _ = flying
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: site.abuse.test\r\n" + b"X-A: " + b"a" * 40000 + b"\r\n\r\n")
    data = s.recv(100)
    s.close()
    assert data.startswith(b"HTTP/1.1 431")


def test_unknown_sni_gets_tls_alert(flying):
    port, _, _ = flying
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with pytest.raises(ssl.SSLError):
        with ctx.wrap_socket(raw, server_hostname="nobody.abuse.test") as s:
            s.recv(10)


def test_unknown_kite_503_and_ping(flying):
    port, _, _ = flying
    st, body = get(port, "nobody.abuse.test")
    assert st == 503 and b"nobody.abuse.test" in body
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/ping", headers={"Host": "ping.pagekite"})
    r = c.getresponse()
    assert r.status == 503 and r.getheader("X-PageKite-UUID")


def test_duplicate_kite_refused(flying, tmp_path, origin):
    port, _, _ = flying
    dup = start([f"{BUILD}/pagekitec", "--frontend", f"127.0.0.1:{port}",
                 str(origin), "http", "site.abuse.test", "0", SECRET], tmp_path, "dup")
    try:
        deadline = time.time() + 15
        text = ""
        while time.time() < deadline:
            text = (tmp_path / "dup.log").read_text()
            if "duplicate" in text:
                break
            time.sleep(0.2)
        assert "duplicate" in text
        assert "status: FLYING" not in text
        assert get(port, "site.abuse.test")[0] == 200
    finally:
        stop(dup)


def test_wrong_secret_refused(flying, tmp_path, origin):
    port, _, _ = flying
    bad = start([f"{BUILD}/pagekitec", "--frontend", f"127.0.0.1:{port}",
                 str(origin), "http", "other.abuse.test", "0", "not-the-secret"], tmp_path, "bad")
    try:
        deadline = time.time() + 15
        text = ""
        while time.time() < deadline:
            text = (tmp_path / "bad.log").read_text()
            if "status: REJECTED" in text:
                break
            time.sleep(0.2)
        assert "status: REJECTED" in text
        assert get(port, "other.abuse.test")[0] == 503
    finally:
        stop(bad)


def _tls_origin(tmp_path, name):
    key, crt = tmp_path / f"{name}.key", tmp_path / f"{name}.crt"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", f"/CN={name}", "-addext", f"subjectAltName=DNS:{name}",
                    "-keyout", str(key), "-out", str(crt)], check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(crt), str(key))
    srv = socket.create_server(("127.0.0.1", 0))
    srv.settimeout(0.5)
    done = threading.Event()

    def serve():
        while not done.is_set():
            try:
                c, _ = srv.accept()
            except OSError:
                continue
            try:
                with ctx.wrap_socket(c, server_side=True) as s:
                    s.settimeout(5)
                    data = s.recv(100)
                    s.sendall(f"{name} got {data.decode(errors='replace')}".encode())
            except (OSError, ssl.SSLError):
                pass
    threading.Thread(target=serve, daemon=True).start()
    return srv.getsockname()[1], crt, done, srv


def test_tls_passthrough_by_sni_two_kites_one_port(tmp_path):
    port = free_port()
    a_port, a_crt, a_done, a_srv = _tls_origin(tmp_path, "a.abuse.test")
    b_port, b_crt, b_done, b_srv = _tls_origin(tmp_path, "b.abuse.test")
    relay = start([f"{BUILD}/pagekiter", "--listen=127.0.0.1", f"--ports={port}",
                   f"--domain=https:*.abuse.test:{SECRET}"], tmp_path, "relay")
    conn = start([f"{BUILD}/pagekitec", "--frontend", f"127.0.0.1:{port}",
                  str(a_port), "https", "a.abuse.test", "0", SECRET,
                  str(b_port), "https", "b.abuse.test", "0", SECRET], tmp_path, "connector")
    try:
        deadline = time.time() + 15
        while time.time() < deadline and "status: FLYING" not in (tmp_path / "connector.log").read_text():
            time.sleep(0.1)
        for name, crt in (("a.abuse.test", a_crt), ("b.abuse.test", b_crt)):
            ctx = ssl.create_default_context(cafile=str(crt))
            with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
                # The relay never decrypts: the client verifies the origin's own cert.
                with ctx.wrap_socket(raw, server_hostname=name) as s:
                    s.sendall(b"hello")
                    assert s.recv(100) == f"{name} got hello".encode()
    finally:
        a_done.set(), b_done.set()
        a_srv.close(), b_srv.close()
        assert stop(conn) == 0
        assert stop(relay) == 0


def test_pipelined_requests_with_forwarding_headers(tmp_path, origin):
    """200 pipelined requests on one connection, each rewritten (forwarding
    headers are on by default in pagekitec; -H turns them off)."""
    port = free_port()
    relay = start([f"{BUILD}/pagekiter", "--listen=127.0.0.1", f"--ports={port}",
                   f"--domain=http:*.abuse.test:{SECRET}"], tmp_path, "relay")
    conn = start([f"{BUILD}/pagekitec", "--frontend", f"127.0.0.1:{port}",
                  str(origin), "http", "pipe.abuse.test", "0", SECRET], tmp_path, "connector")
    try:
        assert wait_ok(port, "pipe.abuse.test")
        # Bodies in between: the rewriter must skip them by Content-Length.
        reqs = b"".join(b"POST /p%d HTTP/1.1\r\nHost: pipe.abuse.test\r\nContent-Length: 6\r\n"
                        b"X-Forwarded-For: 6.6.6.6\r\n\r\nGET /x" % i for i in range(200))
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(reqs)
        buf = b""
        deadline = time.time() + 20
        while b"ok:/p199 " not in buf and time.time() < deadline:
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
        s.close()
        assert buf.count(b"HTTP/1.1 200") == 200
        assert b"ok:/p0 xff=127.0.0.1 body=GET /x" in buf
        assert b"ok:/p199 xff=127.0.0.1 body=GET /x" in buf
        assert buf.count(b"xff=127.0.0.1 body=GET /x") == 200  # every request, client's XFF dropped
    finally:
        assert stop(conn) == 0
        assert stop(relay) == 0
