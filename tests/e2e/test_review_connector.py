"""Security regressions for the connector (pagekitec), from the code review.

Real loopback sockets only.  Each test names its review finding:

  1c  a bogus TLS record on an open TLS tunnel (relay -> connector)
  2   in-band X-PageKite-SignThis on a tunnel opened without AddKites (and
      the same reconnect-while-parsing bug reached with the challenge in the
      response head followed by more bytes)
  8   client-supplied X-Forwarded-For reaching the origin (keep-alive
      rewriting loses track of request boundaries), request smuggling
  10  client-caused pool exhaustion counting toward bail-on-errors (-B)

The processes come from harness.py (PK_BUILD_DIR picks the build; with the
ASan build, a sanitizer report in stderr fails the test).  The relay peers
that misbehave on purpose are in fake_relay.py.
"""

import re
import select
import socket
import struct
import threading
import time

import pytest

import harness
from fake_relay import FakeRelay, Forwarder, noop, ok_head
from harness import OurConnector, Kite, kite_name, wait_http

pytestmark = pytest.mark.ours

SANITIZER_RE = re.compile(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
                          r"UndefinedBehaviorSanitizer|AddressSanitizer:DEADLYSIGNAL")


# ---------------------------------------------------------------- helpers

def sanitizer_report(proc):
    """The sanitizer lines in a process's stderr ('' when clean)."""
    err = proc.stderr()
    m = SANITIZER_RE.search(err)
    return err[max(0, m.start() - 200):m.start() + 3000] if m else ""


def assert_alive_and_clean(proc, what):
    assert proc.alive, "%s: %s died (rc %s)\n%s" % (what, proc.name, proc.popen.poll(),
                                                     proc.tail(60))
    report = sanitizer_report(proc)
    assert not report, "%s: sanitizer report from %s:\n%s" % (what, proc.name, report)


def stop_clean(proc, what):
    """SIGTERM; the tool must exit 0 (clean stop) with no sanitizer report
    (with ASAN_OPTIONS=detect_leaks=1 this includes leaks)."""
    assert_alive_and_clean(proc, what)
    rc = proc.stop(timeout=10)
    report = sanitizer_report(proc)
    assert not report, "%s: sanitizer report from %s at exit:\n%s" % (what, proc.name, report)
    assert rc == 0, "%s: %s exited %s after SIGTERM\n%s" % (what, proc.name, rc, proc.tail(60))


def start_connector(group, frontend, kites, extra_args=()):
    # -v: the tunnel log lines help when a test fails.
    if isinstance(frontend, harness.Relay):
        frontend = frontend.frontend
    return group.add(OurConnector(group.logdir, frontend, kites, ["-v"] + list(extra_args))
                     ).start()


def wait_until(pred, timeout, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ---------------------------------------------------------------- recording origin

class RecordingOrigin:
    """A keep-alive HTTP/1.1 origin that records every request it parses.

    It parses pipelined requests itself (the stdlib server does not read
    chunked bodies): the body is framed by Transfer-Encoding: chunked if
    present, else by the FIRST Content-Length (as lenient servers do), else
    empty.  Header lines without a colon are ignored (kept in .junk).
      /hang...   recorded, then held open until release() (at most 30 s)
      anything   200 "ok <path>", connection kept alive
    Each record: dict(method, path, headers [(name, value)], body, conn, junk).
    """

    def __init__(self):
        self.requests = []
        self.cond = threading.Condition()
        self._release = threading.Event()
        self._stop = threading.Event()
        self._socks = []
        self._next_conn = 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept_loop, daemon=True).start()

    # -- records
    def reset(self):
        with self.cond:
            self.requests.clear()

    def snapshot(self):
        with self.cond:
            return list(self.requests)

    def wait_path(self, path, timeout):
        """The first record for path, waiting up to timeout (None if none)."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.requests:
                    if r["path"] == path:
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)

    def release(self):
        self._release.set()

    # -- server
    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self._next_conn += 1
            self._socks.append(c)
            threading.Thread(target=self._serve, args=(c, self._next_conn), daemon=True).start()

    def _serve(self, c, cid):
        c.settimeout(30)
        reader = _Reader(c)
        try:
            while not self._stop.is_set():
                head = reader.until(b"\r\n\r\n", 1 << 20)
                if head is None:
                    return
                lines = head.split(b"\r\n")
                parts = lines[0].decode("latin-1").split(" ")
                if len(parts) < 2:
                    return
                headers, junk = [], []
                for ln in lines[1:]:
                    if b":" in ln:
                        k, _, v = ln.partition(b":")
                        headers.append((k.strip().decode("latin-1"), v.strip().decode("latin-1")))
                    else:
                        junk.append(ln)
                te = [v for k, v in headers if k.lower() == "transfer-encoding"]
                cl = [v for k, v in headers if k.lower() == "content-length"]
                if te and "chunked" in te[0].lower():
                    body = reader.chunked()
                elif cl:
                    body = reader.exactly(int(cl[0]))
                else:
                    body = b""
                rec = dict(method=parts[0], path=parts[1], headers=headers, body=body,
                           conn=cid, junk=junk)
                with self.cond:
                    self.requests.append(rec)
                    self.cond.notify_all()
                if parts[1].startswith("/hang"):
                    self._release.wait(30)
                    return
                out = b"ok " + parts[1].encode("latin-1")
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                          b"Content-Length: %d\r\n\r\n%s" % (len(out), out))
        except (OSError, ValueError, ConnectionError):
            return
        finally:
            try:
                c.close()
            except OSError:
                pass

    def stop(self):
        self._stop.set()
        self._release.set()
        try:
            self.sock.close()
        except OSError:
            pass
        for c in list(self._socks):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()


class _Reader:
    """Buffered reads from a socket for the origin's parser."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("eof")
        self.buf += d

    def until(self, sep, limit):
        """Bytes before sep (sep consumed); None on a clean EOF between requests."""
        while sep not in self.buf:
            if len(self.buf) > limit:
                raise ValueError("head too long")
            try:
                self._fill()
            except ConnectionError:
                if self.buf:
                    raise
                return None
        out, _, self.buf = self.buf.partition(sep)
        return out

    def exactly(self, n):
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def chunked(self):
        body = b""
        while True:
            line = self.until(b"\r\n", 4096)
            if line is None:
                raise ConnectionError("eof in chunked body")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while self.until(b"\r\n", 65536):  # trailer fields, up to the blank line
                    pass
                return body
            body += self.exactly(size)
            if self.exactly(2) != b"\r\n":
                raise ValueError("bad chunk end")


# ---------------------------------------------------------------- HTTP client side

def read_responses(sock, want, timeout=5.0):
    """Read up to `want` Content-Length-framed responses.

    Returns (responses, ended) where responses is a list of (status, body)
    and ended says whether the connection was closed (EOF/reset) by the peer."""
    sock.settimeout(0.2)
    deadline = time.monotonic() + timeout
    buf, out = b"", []
    while len(out) < want:
        while b"\r\n\r\n" in buf:
            head, _, rest = buf.partition(b"\r\n\r\n")
            m = re.search(rb"(?im)^content-length:\s*(\d+)\s*$", head)
            n = int(m.group(1)) if m else 0
            if len(rest) < n:
                break
            status = int(head.split(b" ", 2)[1])
            out.append((status, rest[:n]))
            buf = rest[n:]
            if len(out) >= want:
                return out, False
        if time.monotonic() > deadline:
            return out, False
        try:
            d = sock.recv(65536)
        except socket.timeout:
            continue
        except OSError:
            return out, True
        if not d:
            return out, True
        buf += d
    return out, False


def collect_first_status(socks, timeout, open_ok=0):
    """Status code of the first response on each socket (None: closed or no
    answer), waiting until at most open_ok sockets are still unanswered."""
    statuses = {}
    bufs = {s: b"" for s in socks}
    deadline = time.monotonic() + timeout
    while len(bufs) > open_ok and time.monotonic() < deadline:
        ready, _, _ = select.select(list(bufs), [], [], 0.1)
        for s in ready:
            try:
                d = s.recv(4096)
            except OSError:
                d = b""
            bufs[s] += d
            if not d or b"\r\n" in bufs[s]:
                m = re.match(rb"HTTP/1\.[01] (\d{3})", bufs.pop(s))
                statuses[s] = int(m.group(1)) if m else None
    return [statuses.get(s) for s in socks]


def client(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def values(rec, name):
    return [v for k, v in rec["headers"] if k.lower() == name.lower()]


def forwarded(rec):
    """(X-Forwarded-For values, X-Forwarded-Proto values) the origin saw."""
    return values(rec, "X-Forwarded-For"), values(rec, "X-Forwarded-Proto")


FORGED = "6.6.6.6"
RELAY_VIEW = (["127.0.0.1"], ["http"])   # what the relay tells the connector


def forged_get(path, name):
    """A GET carrying the client's own (forged) X-Forwarded-For/-Proto."""
    return ("GET %s HTTP/1.1\r\nHost: %s\r\nX-Forwarded-For: %s\r\n"
            "X-Forwarded-Proto: https\r\n\r\n" % (path, name, FORGED)).encode()


def assert_no_forged(origin):
    """No request that reached the origin carries the client's forged XFF/XFP."""
    for rec in origin.snapshot():
        xff, xfp = forwarded(rec)
        assert FORGED not in " ".join(xff) and "https" not in xfp, \
            "origin saw a client-supplied X-Forwarded-* on %s %s: XFF=%r XFP=%r" \
            % (rec["method"], rec["path"], xff, xfp)


# ---------------------------------------------------------------- stacks

@pytest.fixture
def xff_stack(group):
    """Relay + connector (forwarding headers on, the default) + recording
    origin, serving; the origin's records are cleared before the test."""
    origin = group.add(RecordingOrigin())
    relay = group.our_relay()
    name = kite_name("xff")
    conn = start_connector(group, relay, [Kite("http", name, origin.port)])
    conn.wait_serving(timeout=20)
    origin.reset()
    return relay, conn, origin, name


# ================================================================ finding 8

def test_8e_keepalive_requests_each_get_relay_xff(xff_stack):
    """Finding 8 (e), positive control: on one keep-alive connection every
    request gets the relay's view (XFF 127.0.0.1, XFP http), and a client's
    own X-Forwarded-* on a plain GET is replaced.  Passes on the baseline."""
    relay, conn, origin, name = xff_stack
    s = client(relay.port)
    try:
        for i in range(3):
            if i == 1:
                s.sendall(forged_get("/e1", name))
            else:
                s.sendall(("GET /e%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, name)).encode())
            got, _ = read_responses(s, 1)
            assert got and got[0] == (200, b"ok /e%d" % i), got
    finally:
        s.close()
    recs = origin.snapshot()
    assert [r["path"] for r in recs] == ["/e0", "/e1", "/e2"]
    assert len({r["conn"] for r in recs}) == 1, "keep-alive was not kept to the origin"
    for r in recs:
        assert forwarded(r) == RELAY_VIEW, (r["path"], forwarded(r))
    stop_clean(conn.proc, "connector")


def test_8a_chunked_body_then_pipelined_forged_xff(xff_stack):
    """Finding 8 (a): after a chunked request the connector stopped parsing
    (http_state 2, pass-through) so the next request on the connection went
    to the origin unrewritten, carrying the client's forged X-Forwarded-For.
    The chunk data looks like a request head on purpose: it must arrive
    untouched (no headers inserted into a body)."""
    relay, conn, origin, name = xff_stack
    inner = ("GET /inner HTTP/1.1\r\nHost: %s\r\nX-Forwarded-For: %s\r\n\r\n" % (name, FORGED)
             ).encode()
    body = b"hello " + inner
    req1 = (b"POST /a1 HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n"
            % name.encode() + b"6\r\nhello \r\n%x\r\n%s\r\n0\r\n\r\n" % (len(inner), inner))
    req2 = forged_get("/a2", name)
    s = client(relay.port)
    try:
        s.sendall(req1 + req2)  # pipelined: one write
        got, _ = read_responses(s, 2, timeout=8)
    finally:
        s.close()
    a1 = origin.wait_path("/a1", 2)
    a2 = origin.wait_path("/a2", 2)
    assert a1 is not None, "chunked request never reached the origin: %r" % origin.snapshot()
    assert a1["body"] == body, "chunked body changed on the way: %r" % a1["body"]
    assert forwarded(a1) == RELAY_VIEW, forwarded(a1)
    assert origin.wait_path("/inner", 0) is None, "a body was parsed as a request"
    assert a2 is not None, "pipelined request after the chunked one was lost (%r)" % got
    assert forwarded(a2) == RELAY_VIEW, \
        "origin saw XFF=%r XFP=%r for the pipelined request (want the relay's view %r)" \
        % (forwarded(a2) + (RELAY_VIEW,))
    assert got == [(200, b"ok /a1"), (200, b"ok /a2")], got
    stop_clean(conn.proc, "connector")


@pytest.mark.parametrize("timing", ["after_response", "pipelined"])
def test_8b_upgrade_refused_then_forged_xff(xff_stack, timing):
    """Finding 8 (b): a request with "Upgrade: foo" switched the connector to
    pass-through for good, although the origin answered a plain 200 (no 101)
    and the connection stayed HTTP: the next request's forged X-Forwarded-For
    reached the origin.  after_response: the next request is sent once the
    200 arrived; pipelined: in the same write."""
    relay, conn, origin, name = xff_stack
    req1 = ("GET /b1 HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n"
            % name).encode()
    req2 = forged_get("/b2", name)
    s = client(relay.port)
    try:
        if timing == "pipelined":
            s.sendall(req1 + req2)
            got, _ = read_responses(s, 2, timeout=5)
        else:
            s.sendall(req1)
            got, _ = read_responses(s, 1)
            assert got == [(200, b"ok /b1")], got
            s.sendall(req2)
            more, _ = read_responses(s, 1)
            got += more
    finally:
        s.close()
    b1 = origin.wait_path("/b1", 2)
    assert b1 is not None and forwarded(b1) == RELAY_VIEW, b1
    origin.wait_path("/b2", 1)
    assert_no_forged(origin)
    b2 = origin.wait_path("/b2", 0)
    if b2 is not None:
        assert forwarded(b2) == RELAY_VIEW, forwarded(b2)
    stop_clean(conn.proc, "connector")


@pytest.mark.parametrize("bad", ["no_colon", "overlong"])
def test_8c_unparsable_head_then_forged_xff(xff_stack, bad):
    """Finding 8 (c): a head the connector's parser refuses (a header line
    without a colon; a head longer than its 32 KiB buffer) switched it to
    pass-through, and the pipelined request after it reached the origin with
    the client's forged X-Forwarded-For.  The relay only parses the first
    head, so the bad one is the second request on a keep-alive connection.
    Accepted: the connection is refused with an error, or the request after
    the bad one carries the relay's view."""
    relay, conn, origin, name = xff_stack
    if bad == "no_colon":
        req2 = "GET /c2 HTTP/1.1\r\nHost: %s\r\nThisLineHasNoColon\r\n\r\n" % name
    else:
        req2 = "GET /c2 HTTP/1.1\r\nHost: %s\r\nX-Long: %s\r\n\r\n" % (name, "a" * 40000)
    req3 = forged_get("/c3", name)
    s = client(relay.port)
    try:
        s.sendall(("GET /c1 HTTP/1.1\r\nHost: %s\r\n\r\n" % name).encode())
        got, _ = read_responses(s, 1)
        assert got == [(200, b"ok /c1")], got
        s.sendall(req2.encode() + req3)
        read_responses(s, 2, timeout=5)
    finally:
        s.close()
    origin.wait_path("/c3", 1)
    assert_no_forged(origin)
    c3 = origin.wait_path("/c3", 0)
    if c3 is not None:
        assert forwarded(c3) == RELAY_VIEW, forwarded(c3)
    stop_clean(conn.proc, "connector")


SMUGGLED = "GET /smuggled HTTP/1.1\r\nHost: %s\r\n\r\n"


@pytest.mark.parametrize("position", ["first", "second"])
@pytest.mark.parametrize("kind", ["two_content_lengths", "content_length_and_chunked"])
def test_8d_ambiguous_body_length_is_refused(xff_stack, kind, position):
    """Finding 8 (d): a request whose body length is ambiguous must be
    refused (400 or the connection closed) and never reach the origin.
    Today the connector takes the LAST Content-Length (the origin the first)
    and treats the "body" as the next request, inserting X-Forwarded-For into
    it; with Content-Length + Transfer-Encoding it forwards verbatim.
    first: the request opens the client connection (the relay parses that
    head); second: it follows a normal keep-alive request (only the
    connector sees it)."""
    relay, conn, origin, name = xff_stack
    smuggled = (SMUGGLED % name).encode()
    if kind == "two_content_lengths":
        bad = (b"POST /d HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\nContent-Length: 0\r\n\r\n"
               % (name.encode(), len(smuggled)) + smuggled)
    else:
        bad = (b"POST /d HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n" % (name.encode(), 5 + len(smuggled))
               + smuggled)
    s = client(relay.port)
    try:
        if position == "second":
            s.sendall(("GET /d0 HTTP/1.1\r\nHost: %s\r\n\r\n" % name).encode())
            got, _ = read_responses(s, 1)
            assert got == [(200, b"ok /d0")], got
        s.sendall(bad)
        got, ended = read_responses(s, 1, timeout=5)
    finally:
        s.close()
    origin.wait_path("/d", 1)
    seen = [(r["path"], r["body"][:80]) for r in origin.snapshot() if r["path"] != "/d0"]
    assert not seen, "ambiguous request reached the origin: %r (client got %r)" % (seen, got)
    assert (got and got[0][0] == 400) or (not got and ended), \
        "want 400 or a closed connection, got %r (closed: %s)" % (got, ended)
    stop_clean(conn.proc, "connector")


# ================================================================ finding 10

def test_10_client_pool_exhaustion_does_not_trigger_bail(group):
    """Finding 10: with -B, errors logged because clients filled the
    connector's pool (-c) counted toward bail-on-errors, so anyone able to
    open ~60 connections to a kite made pagekitec exit 100.  Correct: the
    excess streams get 503, the connector keeps running and serves again."""
    origin = group.add(RecordingOrigin())
    relay = group.our_relay()
    name = kite_name("bail")
    conn = start_connector(group, relay, [Kite("http", name, origin.port)],
                           ["-c", "2", "-B", "1"])
    conn.wait_serving(timeout=20)
    socks = []
    try:
        for i in range(60):
            s = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
            s.sendall(("GET /hang%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (i, name)).encode())
            socks.append(s)
        # The streams beyond -c are refused with a 503 from the connector;
        # two stay open at the origin.  Collect answers for up to 3 s.
        statuses = collect_first_status(socks, timeout=3.0, open_ok=2)
        time.sleep(0.5)
        assert conn.proc.alive, "pagekitec exited (rc %s) after %d client connections " \
            "(-B 1); statuses %r\n%s" % (conn.proc.popen.poll(), len(socks), statuses,
                                          conn.proc.tail(20))
        assert 503 in statuses, "no stream was refused with -c 2: %r" % statuses
    finally:
        origin.release()
        for s in socks:
            s.close()
    status, body = wait_http(name, relay.port, "/after", timeout=10)
    assert body == b"ok /after"
    stop_clean(conn.proc, "connector")


# ================================================================ finding 1c

def test_1c_bogus_tls_record_after_handshake(group, tls_pki):
    """Finding 1c: one bogus TLS record from the relay side on an open TLS
    tunnel.  Today the read error closes the connection under the tunnel
    without telling it: pagekitec aborts, or reports FLYING on a dead tunnel
    for ~30 s and crashes on its first PING.  Correct: no crash, the tunnel
    is noticed broken within a few seconds (status leaves FLYING or the
    connector reconnects) and the kite serves again within ~10 s."""
    origin = group.add(RecordingOrigin())
    relay = group.our_relay(tls_cert=tls_pki.relay_cert, tls_key=tls_pki.relay_key)
    fwd = group.add(Forwarder(relay.port))
    name = kite_name("tls1c")
    conn = start_connector(group, "127.0.0.1:%d" % fwd.port, [Kite("http", name, origin.port)],
                           ["--tls", "--ca-file", str(tls_pki.ca)])
    conn.proc.wait_status("FLYING", 20)
    wait_http(name, relay.port, "/", timeout=15)   # clients go to the relay directly
    time.sleep(0.3)                                 # quiet tunnel: inject on a record boundary
    n_status, n_conns = len(conn.proc.statuses()), fwd.count
    # A bogus application-data record.  The connector's reaction (a TLS
    # alert) is kept from the relay, so only the connector's handling of the
    # error is tested here, not the relay's.
    fwd.inject_to_client(b"\x17\x03\x03\x00\x05hello", mute_upstream=True)
    noticed = wait_until(lambda: not conn.proc.alive or fwd.count > n_conns
                         or len(conn.proc.statuses()) > n_status, 5)
    assert_alive_and_clean(conn.proc, "after a bogus TLS record")
    assert noticed, "connector still reports %r 5 s after its TLS tunnel broke " \
        "(no reconnect)\n%s" % (conn.proc.statuses()[-1:], conn.proc.tail(20))
    status, body = wait_http(name, relay.port, "/again", timeout=10)
    assert body == b"ok /again"
    assert_alive_and_clean(conn.proc, "after recovering")
    stop_clean(conn.proc, "connector")


# ================================================================ finding 2 and the fake relay

KITE2 = kite_name("fake")
TOKEN = "t" + "0123456789abcdef" * 2 + "012"   # 36 characters, like a relay's token


def answer_ok(rc, features=()):
    """Accept every kite of the handshake (a relay that checks nothing)."""
    rc.send(ok_head(rc.kites, session="fake-%d" % rc.index, features=features))


def sign_this(rc):
    """An in-band challenge (NOOP chunk) for the first kite the connector asked for."""
    k = rc.kites[0]
    return noop([("X-PageKite-SignThis", "%s:%s:%s:%s" % (k.proto, k.name, k.bsalt, TOKEN))])


def http_stream(rc, sid, path="/"):
    return rc.stream_chunk(sid, "http", KITE2,
                           ("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n"
                            % (path, KITE2)).encode())


def well_behaved(rc):
    """Later connections: accept and stay quiet (pings unanswered, fine here)."""
    answer_ok(rc)


@pytest.fixture
def fake_stack(group):
    """start(first_script): a FakeRelay whose first connection runs
    first_script and later ones are accepted quietly, plus a pagekitec
    flying one kite to the recording origin through it."""
    def start(first_script, later=well_behaved):
        origin = group.add(RecordingOrigin())
        relay = group.add(FakeRelay([first_script, later]))
        conn = start_connector(group, relay.frontend, [Kite("http", KITE2, origin.port)])
        return relay, conn, origin
    return start


def stream_round_trip(rc, sid, timeout=5.0):
    """Open stream sid on fake-relay connection rc (as a relay does for a
    client) and collect what the connector sends back for it: the origin's
    answer to GET /via-fake-<sid>, or b"" if the tunnel does not work."""
    path = "/via-fake-%d" % sid
    rc.send(http_stream(rc, sid, path))
    got = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            ch = rc.read_chunk(timeout=max(0.05, deadline - time.monotonic()))
        except (TimeoutError, OSError, ValueError):
            break
        if ch is None:
            break
        hdrs, data = ch
        if hdrs.get("SID") == str(sid) and "EOF" not in hdrs:
            got += data
            if b"ok " + path.encode() in got:
                break
    return got


def assert_survives(relay, conn, what, settle=2.0):
    """The connector is alive, sanitizer-clean and FLYING (again); every
    connection it made starts with a proper tunnel request; a stream opened
    on its current tunnel reaches the origin and comes back, and nothing
    arrives there for streams that tunnel never opened."""
    time.sleep(settle)
    assert_alive_and_clean(conn.proc, what)
    ok = wait_until(lambda: conn.proc.statuses()[-1:] == ["FLYING"] or not conn.proc.alive, 10)
    assert_alive_and_clean(conn.proc, what)
    assert ok, "%s: connector not FLYING again (statuses %r, relay errors %r)" \
        % (what, conn.proc.statuses(), relay.errors)
    for rc in relay.conns:
        assert rc.head.startswith(b"CONNECT PageKite:1 "), \
            "%s: connection #%d did not start with the tunnel request: %r" \
            % (what, rc.index, rc.head[:120])
    live = relay.conns[-1]   # the connector's current tunnel
    got = stream_round_trip(live, 1000 + live.index)
    assert_alive_and_clean(conn.proc, what)
    assert b"HTTP/1.1 200" in got, \
        "%s: a stream on tunnel #%d did not reach the origin (got %r)\n%s" \
        % (what, live.index, got[:200], conn.proc.tail(20))
    assert not live.foreign, "%s: tunnel #%d got data for streams opened elsewhere: %r" \
        % (what, live.index, live.foreign)


# Scripts for the first connection: accept the kite WITHOUT offering
# AddKites, then send X-PageKite-SignThis in-band.

def _separate(rc):
    answer_ok(rc)
    time.sleep(0.5)                # the tunnel is open and the kite flies
    rc.send(sign_this(rc))


def _back_to_back(rc):
    answer_ok(rc)
    time.sleep(0.5)
    rc.send(sign_this(rc) * 3)


def _then_data(rc):
    answer_ok(rc)
    time.sleep(0.5)
    rc.send(sign_this(rc) + http_stream(rc, 1))


def _same_write_then_data(rc):
    rc.send(ok_head(rc.kites, session="fake-0") + sign_this(rc) + http_stream(rc, 1))


def _same_write_then_probe(rc):
    # A "probe" stream is answered synchronously, while parsing.
    rc.send(ok_head(rc.kites, session="fake-0") + sign_this(rc)
            + rc.stream_chunk(1, "probe", KITE2, b"x"))


def _in_head_then_probe(rc):
    # The classic old-relay challenge (SignThis in the response head, no
    # kite OK yet), with a chunk right behind the head in the same write.
    k = rc.kites[0]
    rc.send(ok_head([], session="fake-0",
                    extra=["X-PageKite-SignThis: %s:%s:%s:%s" % (k.proto, k.name, k.bsalt, TOKEN)])
            + rc.stream_chunk(1, "probe", KITE2, b"x"))


@pytest.mark.parametrize("script", [_separate, _back_to_back, _then_data, _same_write_then_data,
                                    _same_write_then_probe, _in_head_then_probe],
                         ids=["separate", "back_to_back", "then_data", "same_write_then_data",
                              "same_write_then_probe", "in_head_then_probe"])
def test_2_in_band_sign_this_without_addkites(fake_stack, script):
    """Finding 2: a relay that did not offer AddKites sends an in-band
    X-PageKite-SignThis.  The connector kills the tunnel and reconnects
    while still inside the loop parsing that tunnel's bytes; the new tunnel
    reuses the slot, so
      - separate / back_to_back / then_data (tunnel open, in-place read):
        memmove with a negative size (ASan: negative-size-param; release:
        SIGSEGV, or the new tunnel's inlen wraps and it never works);
      - same_write_*: the rest of the old tunnel's bytes are parsed as the
        new tunnel's: a stream opened on the old connection is answered on
        the new one, and a probe's answer is written before the new
        connection's CONNECT request;
      - in_head_then_probe: the same with the challenge in the response
        head (the normal old-relay flow) and a chunk behind it.
    Correct: no crash; the connector ignores the challenge or reconnects
    with signatures (and stops reading the old tunnel), and flies again."""
    relay, conn, _origin = fake_stack(script)
    assert relay.wait_conns(1, 15), "connector never connected to the fake relay"
    assert_survives(relay, conn, "in-band SignThis without AddKites (%s)" % script.__name__)
    # If it reconnected, the new request must carry the signed challenge.
    if len(relay.conns) > 1:
        lines = relay.conns[1].kites
        assert lines and lines[0].fsalt == TOKEN, lines
    stop_clean(conn.proc, "connector")


# ---------------------------------------------------------------- found by the chaos runs

class _SlowOrigin:
    """Answers each request after `delay` s (a 101 for an Upgrade), then
    reads until EOF and records when it came (None: never)."""

    def __init__(self, delay=1.0):
        self.delay = delay
        self.eof_after = []
        self.ls = socket.create_server(("127.0.0.1", 0))
        self.port = self.ls.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                c, _ = self.ls.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        c.settimeout(30)
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                d = c.recv(4096)
                if not d:
                    return
                buf += d
            time.sleep(self.delay)
            upgrade = b"upgrade:" in buf.lower()
            c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      b"Connection: Upgrade\r\n\r\n" if upgrade else
                      b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            t0 = time.monotonic()
            while c.recv(4096):
                pass
            self.eof_after.append(time.monotonic() - t0)
        except OSError:
            self.eof_after.append(-1.0)
        finally:
            c.close()

    def close(self):
        self.ls.close()


@pytest.mark.parametrize("upgrade", [False, True], ids=["plain", "upgrade"])
def test_chaos1_client_reset_with_held_bytes_ends_the_stream(group, upgrade):
    """Chaos finding 1 (a regression of the new rewriter, caught by
    tests/chaos before it shipped): a client that resets while the
    forwarding-header rewriter still holds some of its bytes (an unfinished next head, or bytes
    behind an Upgrade waiting for the origin's answer) left the stream and
    its origin connection open until the 300 s half-closed reaper: after EOF
    "W" the connector stopped reading the origin, so the held bytes were never
    released.  The origin must see the connector's EOF within seconds."""
    origin = _SlowOrigin(delay=1.0)
    try:
        relay = group.our_relay()
        name = kite_name("held")
        start_connector(group, relay, [Kite("http", name, origin.port, relay.port)])
        wait_http(name, relay.port, "/", timeout=20)
        origin.eof_after.clear()
        head = ("GET /x HTTP/1.1\r\nHost: %s\r\n" % name
                + ("Upgrade: websocket\r\nConnection: Upgrade\r\n" if upgrade else "") + "\r\n")
        c = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        c.sendall(head.encode() + b"\x81\x05hello")  # 7 bytes that are no complete head
        time.sleep(0.3)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()  # RST
        assert wait_until(lambda: origin.eof_after, 8), \
            "the origin never saw the connector close (stream kept open)"
    finally:
        origin.close()


def test_chaos3_websocket_kite_gets_forwarding_headers(group):
    """Chaos finding 3: websocket kites passed the client's X-Forwarded-For /
    -Proto to the origin unchanged (only http kites were rewritten)."""
    seen = []

    def serve(c):
        buf = b""
        while b"\r\n\r\n" not in buf:
            d = c.recv(4096)
            if not d:
                return
            buf += d
        seen.append(buf)
        c.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  b"Connection: Upgrade\r\n\r\n")
        time.sleep(0.5)
        c.close()

    ls = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=lambda: [serve(ls.accept()[0]) for _ in range(1)], daemon=True).start()
    try:
        relay = group.our_relay()
        name = kite_name("wsx")
        conn = start_connector(group, relay,
                               [Kite("websocket", name, ls.getsockname()[1], relay.port)])
        conn.proc.wait_status("FLYING", timeout=20)
        c = socket.create_connection(("127.0.0.1", relay.port), timeout=5)
        c.sendall(("GET /ws HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\r\n" % name).encode())
        assert c.recv(4096).startswith(b"HTTP/1.1 101")
        c.close()
        assert seen, "the origin got no request"
        head = seen[0].decode(errors="replace").lower()
        assert "x-forwarded-for: 6.6.6.6" not in head, head
        assert head.count("x-forwarded-for: 127.0.0.1") == 1, head
        assert head.count("x-forwarded-proto: http\r\n") == 1, head
    finally:
        ls.close()
