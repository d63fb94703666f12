"""--authdomain=/path/to/app: pagekite.py's auth apps, over real sockets.

The relay hands each kite request no --domain signs to an external program,
speaking pagekite.py's protocol (pk.py's AuthApp and LookupDomainQuota,
manual.py's MAN_TUNNEL_AUTH):
    app --capabilities      -> words: SERVER, AUTH, ZK-AUTH
    app --auth NAME         -> {"secret": ..., "quota_kb": ..., ...} or {"error": ...}
    app --zk-auth QUERY     -> {"hostname": ..., "alias": ..., "ips": [...]}
    app --server            -> the same queries, one a line on stdin, one answer a line
AUTH_APP below is our own auth app, written for these tests from that
description: it reads its customers and its behaviour (hang, crash, garbage)
from authapp.json beside it on every query, so a test changes them live, and
logs what it was asked to authapp.log.  Every mode is tried: one process per
query or one --server child, --auth (the relay checks the signature) or
--zk-auth (the app does).

pagekite.py's own relay is run on the same app and the same kites
(test_pagekite_py_relay_same_inputs).  On Python 3 (Debian's pagekite)
its AuthApp reads the capabilities as bytes and compares them with str, so
it never sees SERVER or ZK-AUTH and always runs "app --auth NAME" once per
query; and an app answering {"error": ...} makes it raise, which fails
OPEN: it accepts a kite its app said is unknown.  We refuse that kite with
the app's error (doc/FLEET.md, "Auth apps").
"""
import hashlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from harness import (tunnel_request_head, PAGEKITER, PAGEKITE_PY, OurRelay, PkRelay, Kite, wait_http, wait_not_served,
                     http_request, free_port, require_executable)

pytestmark = pytest.mark.ours

DYN = "app.test"        # kites the auth app knows
STATIC = "static.test"  # kites with a static --domain secret
STATIC_SECRET = "static-secret-42"
TIMEOUT_S = 2           # PK_AUTHAPP_TIMEOUT_MS

AUTH_APP = r'''#!/usr/bin/env python3
"""A test auth app (pagekite.py's protocol): customers and behaviour from
authapp.json beside it, read on every query; what it is asked goes to
authapp.log."""
import hashlib, json, os, sys, time

HERE = os.path.dirname(os.path.abspath(__file__))
SELF = os.path.join(HERE, os.path.basename(__file__))


def conf():
    with open(os.path.join(HERE, "authapp.json")) as f:
        return json.load(f)


def log(*words):
    with open(os.path.join(HERE, "authapp.log"), "a") as f:
        f.write(" ".join(str(w) for w in words) + "\n")


def signed(secret, sign, payload):
    salt = sign[:8]
    return sign == salt + hashlib.sha1((secret + payload + salt).encode()).hexdigest()[:28]


def auth(name, c):
    cust = c["customers"].get(name)
    if cust is None:
        return {"error": "unknown-kite"}
    answer = {"secret": cust["secret"]}
    answer.update(cust.get("extra", {}))
    return answer


def zk_auth(query, c):
    # srand.token.sign.protoport.NAME.<this app's path>.
    suffix = "." + SELF + "."
    if not query.endswith(suffix):
        return {"hostname": query, "alias": "", "ips": ["255.255.255.1"]}
    srand, token, sign, protoport, name = query[:-len(suffix)].split(".", 4)
    name = name.replace("_any_", "*")
    cust = c["customers"].get(name)
    if cust is None:
        return {"hostname": query, "alias": "", "ips": ["255.255.255.0"]}
    if not signed(cust["secret"], sign, "%s:%s:%s:%s" % (protoport, name, srand, token)):
        return {"hostname": query, "alias": "", "ips": ["255.255.255.1"]}
    kb = cust.get("extra", {}).get("quota_kb", 1024)
    ip = ".".join(str((kb >> s) & 255) for s in (24, 16, 8, 0))
    x = cust.get("extra", {})
    if "quota_days" in x:
        cname = "ok-%x-%x.0.%x.%x.x" % (x["ips_per_sec-ips"], x["ips_per_sec-secs"],
                                         x["quota_days"], x["quota_conns"])
        return {"hostname": cname, "alias": [query], "ips": [ip]}
    return {"hostname": query, "alias": "", "ips": [ip]}


def answer(opt, arg, served):
    c = conf()
    log("query", os.getpid(), opt, arg)
    if c.get("hang"):
        time.sleep(3600)
    if c.get("garbage") is not None:
        return c["garbage"]
    if opt == "--zk-auth":
        return json.dumps(zk_auth(arg, c))
    return json.dumps(auth(arg, c))


def main(argv):
    if argv[1:] == ["--capabilities"]:
        caps = conf()["caps"]
        log("capabilities", os.getpid(), caps)
        print(caps)
        return 0
    if argv[1:] == ["--server"]:
        log("server", os.getpid())
        served = 0
        for line in sys.stdin:
            words = line.split()
            if len(words) != 2:
                log("bad line", repr(line))
                continue
            if conf().get("die_on_query"):
                log("crash", os.getpid())
                os._exit(7)
            print(answer(words[0], words[1], served), flush=True)
            served += 1
            if served >= conf().get("crash_after", 10 ** 9):
                log("crash", os.getpid())
                os._exit(7)
        log("server eof", os.getpid())
        if conf().get("stubborn"):  # ignores EOF and SIGTERM
            import signal
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(3600)
        return 0
    if len(argv) == 3 and argv[1] in ("--auth", "--zk-auth"):
        print(answer(argv[1], argv[2], 0))
        if conf().get("exit_status"):
            return conf()["exit_status"]
        return 0
    log("bad args", argv)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
'''


def sha1hex(s):
    return hashlib.sha1(s.encode()).hexdigest()


def sign_token(secret, payload, token=None):
    token = token or "%08x" % random.getrandbits(32)
    return token[:8] + sha1hex(secret + payload + token[:8])[:28]


class AuthApp:
    """The auth app in a directory of its own, with its config and log."""

    def __init__(self, tmp_path, caps):
        self.dir = tmp_path / "authapp"
        self.dir.mkdir()
        self.path = str(self.dir / "auth_app.py")
        with open(self.path, "w") as f:
            f.write(AUTH_APP)
        os.chmod(self.path, 0o755)
        self.conf = {"caps": caps, "customers": {}}
        self.save()

    def customer(self, name, secret, **extra):
        self.conf["customers"][name] = {"secret": secret, "extra": extra}
        self.save()

    def set(self, **kw):
        self.conf.update(kw)
        self.save()

    def save(self):
        tmp = str(self.dir / "authapp.json.tmp")
        with open(tmp, "w") as f:
            json.dump(self.conf, f)
        os.rename(tmp, str(self.dir / "authapp.json"))

    def log(self):
        try:
            with open(str(self.dir / "authapp.log")) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def server_pids(self):
        return re.findall(r"^server (\d+)$", self.log(), re.M)

    def queries(self, name=None):
        return [l for l in self.log().splitlines()
                if l.startswith("query ") and (name is None or name in l)]


MODES = {"auth": "AUTH", "server-auth": "SERVER AUTH", "zk": "ZK-AUTH",
         "server-zk": "SERVER ZK-AUTH"}


@pytest.fixture(params=sorted(MODES))
def mode(request):
    return request.param


@pytest.fixture
def app_in_mode(tmp_path, mode):
    return AuthApp(tmp_path, MODES[mode])


def start_relay(group, app, *extra):
    """Our relay on the app, once the app is ready: its capabilities known
    and (SERVER) its --server child reading, so that a loaded machine's
    slow interpreter start does not eat a first query's 2 s."""
    relay = group.add(OurRelay(group.logdir, pattern="*." + STATIC, secret=STATIC_SECRET,
                               extra_args=["--authdomain=%s:%s" % (DYN, app.path)] + list(extra)))
    relay.start()
    relay.proc.wait_for(r"Auth app .*auth_app\.py: .* \(asked with", 20)
    if "SERVER" in app.conf["caps"]:
        deadline = time.monotonic() + 20
        while not app.server_pids() and time.monotonic() < deadline:
            time.sleep(0.05)
    return relay


def kite(origin, label, secret):
    return Kite("http", "%s.%s" % (label, DYN), origin.port, 0, secret)


def handshake(port, line):
    """One old-style tunnel request: the relay's head."""
    return tunnel_request_head(port, [line], timeout=20)


def signed_request(port, name, secret):
    """Challenge, then the head answering the signed request."""
    salt = "%08x" % random.getrandbits(32)
    head = handshake(port, "http:%s:%s::" % (name, salt))
    m = re.search(r"X-PageKite-SignThis: http:%s:%s:(\S+)" % (re.escape(name), salt), head)
    assert m, head
    token = m.group(1)
    sig = sign_token(secret, "http:%s:%s:%s" % (name, salt, token))
    return handshake(port, "http:%s:%s:%s:%s" % (name, salt, token, sig))


def zombies_of(pid):
    """Children of pid in state Z."""
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read()
        except OSError:
            continue
        fields = st[st.rindex(")") + 2:].split()
        if fields[0] == "Z" and int(fields[1]) == pid:
            out.append(int(d))
    return out


# ---------------------------------------------------------------- every mode

def test_kite_flies_with_our_connector(group, app_in_mode, mode):
    app = app_in_mode
    origin = group.origin()
    app.customer("alice." + DYN, "alice-secret")
    relay = start_relay(group, app)
    k = kite(origin, "alice", "alice-secret")
    group.our_connector(relay, [k])
    wait_http(k.name, relay.port, "/", 20)
    assert app.queries(k.name), app.log()
    opt = "--zk-auth" if "zk" in mode else "--auth"
    assert all((" %s " % opt) in q for q in app.queries()), app.log()
    if "zk" in mode:
        # pagekite.py's lookup name, the app's path in place of a DNS suffix
        q = app.queries(k.name)[0].split()[-1]
        labels = q[:-len(app.path) - 2].split(".")
        assert q.endswith("." + app.path + ".") and labels[3] == "http", q
        assert labels[1].startswith("t") and len(labels[2]) == 36, q
    else:
        assert app.queries(k.name)[0].split()[-1] == k.name
    relay.proc.wait_for(r"Auth app .*auth_app\.py: %s" % re.escape(MODES[mode]), 1)
    if mode.startswith("server"):
        assert len(app.server_pids()) == 1, app.log()


def test_kite_flies_with_pagekite_py_connector(group, app_in_mode, mode):
    require_executable(PAGEKITE_PY, "pagekite.py (Debian package pagekite)")
    app = app_in_mode
    origin = group.origin()
    app.customer("bob." + DYN, "bob-secret", quota_kb=2048, quota_days=30, quota_conns=10,
                 **{"ips_per_sec-ips": 5, "ips_per_sec-secs": 60})
    relay = start_relay(group, app)
    k = kite(origin, "bob", "bob-secret")
    conn = group.pk_connector(relay, [k])
    wait_http(k.name, relay.port, "/", 30)
    # the quotas the relay told it (X-PageKite-Quota, -QDays, -QConns, -IPsPerSec)
    conn.proc.wait_for(r"quota_bw=2048", 10)
    out = conn.proc.output()
    assert "quota_days=30" in out and "quota_conns=10" in out and "ips_per_sec=5/60" in out, out


def test_wrong_secret_and_unknown_kite_refused(group, app_in_mode, mode):
    app = app_in_mode
    origin = group.origin()
    app.customer("carol." + DYN, "carol-secret")
    relay = start_relay(group, app)
    wrong = kite(origin, "carol", "not-carols-secret")
    nobody = kite(origin, "nobody", "whatever")
    group.our_connector(relay, [wrong])
    group.our_connector(relay, [nobody])
    # --auth: the relay checks the signature ("signature", as pagekite.py)
    # and passes the app's error on; --zk-auth: 255.255.255.1 / .0 both say
    # "unauthorized"
    bad_sig, unknown = (("unauthorized", "unauthorized") if "zk" in mode
                        else ("signature", "unknown-kite"))
    relay.proc.wait_for(r"Rejected kite http:carol\.%s \(%s\)" % (re.escape(DYN), bad_sig), 20)
    relay.proc.wait_for(r"Rejected kite http:nobody\.%s \(%s\)" % (re.escape(DYN), unknown), 20)
    assert app.queries(wrong.name) and app.queries(nobody.name), app.log()
    assert wait_not_served(wrong.name, relay.port, "/", 2) != 200
    assert wait_not_served(nobody.name, relay.port, "/", 2) != 200
    assert "carol-secret" not in relay.proc.output()  # the secret is never logged
    # the connector is told why
    head = signed_request(relay.port, "nobody." + DYN, "whatever")
    assert "X-PageKite-Invalid-Why: http:nobody.%s:" % DYN in head, head
    assert re.search(r"X-PageKite-Invalid-Why: \S+;%s\r\n" % unknown, head), head


def test_quota_headers_in_the_answer(group, app_in_mode, mode):
    app = app_in_mode
    app.customer("dave." + DYN, "dave-secret", quota_kb=4096, quota_days=7, quota_conns=3,
                 **{"ips_per_sec-ips": 2, "ips_per_sec-secs": 10})
    relay = start_relay(group, app)
    head = signed_request(relay.port, "dave." + DYN, "dave-secret")
    assert "X-PageKite-OK: http:dave.%s:" % DYN in head, head
    assert "X-PageKite-Quota: 4096\r\n" in head, head
    assert "X-PageKite-QDays: 7\r\n" in head and "X-PageKite-QConns: 3\r\n" in head, head
    assert "X-PageKite-IPsPerSec: 2/10\r\n" in head, head


# ------------------------------------------------------- --auth details

@pytest.mark.parametrize("extra,why", [({"quota_kb": 0, "reason": "noquota"}, "noquota"),
                                       ({"quota_kb": 0}, "quota"),
                                       ({"quota_kb": None, "error": "expired"}, "expired")])
def test_auth_quota_zero_refused_with_its_reason(group, tmp_path, extra, why):
    app = AuthApp(tmp_path, "AUTH")
    app.customer("erin." + DYN, "erin-secret", **extra)
    relay = start_relay(group, app)
    head = signed_request(relay.port, "erin." + DYN, "erin-secret")
    assert re.search(r"X-PageKite-Invalid-Why: \S+;%s\r\n" % why, head), head


def test_auth_no_quota_flies_without_a_quota_header(group, tmp_path):
    app = AuthApp(tmp_path, "AUTH")
    app.customer("fay." + DYN, "fay-secret")
    relay = start_relay(group, app)
    head = signed_request(relay.port, "fay." + DYN, "fay-secret")
    assert "X-PageKite-OK: http:fay.%s:" % DYN in head and "X-PageKite-Quota" not in head, head


# ------------------------------------------------------------- failures

@pytest.mark.parametrize("closed", [False, True], ids=["fail-open", "fail-closed"])
def test_hung_app_times_out_and_flying_kites_keep_serving(group, tmp_path, closed):
    app = AuthApp(tmp_path, "SERVER AUTH")
    origin = group.origin()
    app.customer("gina." + DYN, "gina-secret")
    app.customer("hank." + DYN, "hank-secret")
    relay = start_relay(group, app, *(["--authfail_closed"] if closed else []))
    gina = kite(origin, "gina", "gina-secret")
    group.our_connector(relay, [gina])
    wait_http(gina.name, relay.port, "/", 20)
    app.set(hang=True)
    hank = kite(origin, "hank", "hank-secret")
    t0 = time.monotonic()
    group.our_connector(relay, [hank])
    relay.proc.wait_for(r"Asking auth app .* about kite http:hank", 10)
    # while the app hangs, the flying kite and a static kite are served
    static = Kite("http", "s." + STATIC, origin.port, 0, STATIC_SECRET)
    group.our_connector(relay, [static])
    wait_http(static.name, relay.port, "/", 10)
    for _ in range(10):
        assert http_request(relay.port, gina.name, timeout=3)[0] == 200
    relay.proc.wait_for(r"Auth lookup failed for http:hank\.%s \(auth app .*: no answer within "
                        r"%d ms\): %s" % (re.escape(DYN), TIMEOUT_S * 1000,
                                          "fail-closed" if closed else "fail-open"), 15)
    waited = time.monotonic() - t0
    assert TIMEOUT_S - 1 <= waited <= 2 * TIMEOUT_S + 3, waited
    # the hung server is killed and another started
    relay.proc.wait_for(r"--server \(pid \d+\): no answer within %d ms; restarting" %
                        (TIMEOUT_S * 1000), 5)
    if closed:
        relay.proc.wait_for(r"Rejected kite http:hank\.%s \(unauthorized\)" % re.escape(DYN), 10)
        assert wait_not_served(hank.name, relay.port, "/", 2) != 200
    else:
        wait_http(hank.name, relay.port, "/", 10)
    assert http_request(relay.port, gina.name, timeout=3)[0] == 200
    assert relay.proc.alive


def test_hung_one_shot_app_is_killed(group, tmp_path):
    app = AuthApp(tmp_path, "AUTH")
    origin = group.origin()
    app.set(hang=True)
    relay = start_relay(group, app, "--authfail_closed")
    k = kite(origin, "ivan", "ivan-secret")
    group.our_connector(relay, [k])
    relay.proc.wait_for(r"Rejected kite http:ivan\.%s \(unauthorized\)" % re.escape(DYN), 20)
    pids = [int(l.split()[1]) for l in app.queries("ivan")]
    assert pids, app.log()
    time.sleep(0.5)
    for pid in pids:  # killed and reaped: no process, no zombie
        assert not os.path.exists("/proc/%d" % pid), "the hung app is still there"
    assert zombies_of(relay.proc.pid) == []


def test_crashed_server_is_restarted(group, tmp_path):
    app = AuthApp(tmp_path, "SERVER AUTH")
    origin = group.origin()
    for n in ("jack", "kate", "liam"):
        app.customer("%s.%s" % (n, DYN), n + "-secret")
    app.set(crash_after=1)
    relay = start_relay(group, app)
    kites = []
    for n in ("jack", "kate", "liam"):
        k = kite(origin, n, n + "-secret")
        kites.append(k)
        group.our_connector(relay, [k])
        wait_http(k.name, relay.port, "/", 20)
    # each answer then a crash: a new server for each kite, restarted with backoff
    # (its stdout's EOF or its exit, whichever the relay sees first)
    relay.proc.wait_for(r"--server \(pid \d+\): it (exited with status 7|closed its stdout); "
                        r"restarting it in \d+ ms", 5)
    assert len(set(app.server_pids())) >= 3, app.log()
    for k in kites:
        assert http_request(relay.port, k.name, timeout=3)[0] == 200
    time.sleep(0.5)
    assert zombies_of(relay.proc.pid) == []


def test_crash_fails_the_query_it_held(group, tmp_path):
    """A server that dies holding a query: that query fails (here closed),
    at once, not at the timeout."""
    app = AuthApp(tmp_path, "SERVER AUTH")
    app.customer("mia." + DYN, "mia-secret")
    app.set(die_on_query=True)  # exits on reading its first query, no answer
    relay = start_relay(group, app, "--authfail_closed")
    t0 = time.monotonic()
    head = signed_request(relay.port, "mia." + DYN, "mia-secret")
    assert re.search(r"X-PageKite-Invalid-Why: \S+;unauthorized\r\n", head), head
    assert time.monotonic() - t0 < TIMEOUT_S, head
    relay.proc.wait_for(r"Auth lookup failed for http:mia\.%s \(auth app .*: it (exited with "
                        r"status 7|closed its stdout)\): fail-closed" % re.escape(DYN), 5)


@pytest.mark.parametrize("caps", ["AUTH", "SERVER AUTH"])
def test_malformed_and_oversized_answers_fail_the_query(group, tmp_path, caps):
    app = AuthApp(tmp_path, caps)
    app.customer("nina." + DYN, "nina-secret")
    # a malformed answer holding a secret: refused (fail-closed), never logged
    app.set(garbage='{"secret": "hunter2-secret", "quota_kb": "lots"}')
    relay = start_relay(group, app, "--authfail_closed")
    head = signed_request(relay.port, "nina." + DYN, "nina-secret")
    assert re.search(r"X-PageKite-Invalid-Why: \S+;unauthorized\r\n", head), head
    relay.proc.wait_for(r"malformed --auth answer \(\"quota_kb\" is not an integer\)", 5)
    app.set(garbage="x" * 10000)
    head = signed_request(relay.port, "nina." + DYN, "nina-secret")
    assert re.search(r"X-PageKite-Invalid-Why: \S+;unauthorized\r\n", head), head
    relay.proc.wait_for(r"an answer over 4096 bytes", 5)
    app.set(garbage="not json at all")
    head = signed_request(relay.port, "nina." + DYN, "nina-secret")
    relay.proc.wait_for(r"malformed --auth answer \(not a JSON object\)", 5)
    app.set(garbage=None)
    head = signed_request(relay.port, "nina." + DYN, "nina-secret")
    assert "X-PageKite-OK: http:nina.%s:" % DYN in head, head
    out = relay.proc.output()
    assert "hunter2" not in out and "nina-secret" not in out and "xxxxxxxx" not in out


def test_one_shot_app_failing_exit_status_fails_open(group, tmp_path):
    """pagekite.py's check_output raises on a non-zero exit: a lookup failure."""
    app = AuthApp(tmp_path, "AUTH")
    origin = group.origin()
    app.set(exit_status=3)
    relay = start_relay(group, app)
    k = kite(origin, "olga", "any-secret")
    group.our_connector(relay, [k])
    wait_http(k.name, relay.port, "/", 20)
    relay.proc.wait_for(r"Auth lookup failed for http:olga\.%s \(auth app .*: exited with "
                        r"status 3\): fail-open" % re.escape(DYN), 5)


def test_shutdown_ends_the_server_child(group, tmp_path):
    app = AuthApp(tmp_path, "SERVER AUTH")
    relay = start_relay(group, app)
    deadline = time.monotonic() + 10
    while not app.server_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    pids = [int(p) for p in app.server_pids()]
    assert pids, app.log()
    assert os.path.exists("/proc/%d" % pids[0])
    relay.stop()
    assert relay.proc.popen.returncode == 0, relay.proc.tail()
    assert not os.path.exists("/proc/%d" % pids[0]), "the --server child outlived the relay"
    assert "server eof %d" % pids[0] in app.log()  # told by EOF on its stdin


def test_shutdown_kills_a_stubborn_server_child(group, tmp_path):
    """A server that ignores EOF and SIGTERM: SIGKILL, reaped, and the
    relay still exits within its grace time."""
    app = AuthApp(tmp_path, "SERVER AUTH")
    app.set(stubborn=True)
    relay = start_relay(group, app)
    deadline = time.monotonic() + 10
    while not app.server_pids() and time.monotonic() < deadline:
        time.sleep(0.05)
    pid = int(app.server_pids()[0])
    t0 = time.monotonic()
    relay.stop()
    assert time.monotonic() - t0 < 4, "the relay took too long to stop"
    assert relay.proc.popen.returncode == 0, relay.proc.tail()
    assert not os.path.exists("/proc/%d" % pid), "the --server child outlived the relay"
    assert "server eof %d" % pid in app.log()


def test_bad_app_paths_are_refused():
    for path, why in (("/nonexistent/auth_app", "cannot be run"),
                      ("/tmp", "cannot be run"),
                      ("x.test:/bin/with space", "space or control character")):
        r = subprocess.run([str(PAGEKITER), "--ports=%d" % free_port(), "--listen=127.0.0.1",
                            "--authdomain=" + path], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=20, text=True)
        assert r.returncode not in (0, 3) and why in r.stderr, (path, r.returncode, r.stderr)


# ---------------------------------------------- pagekite.py's relay, same app

class PkAppRelay(PkRelay):
    def __init__(self, logdir, app_path, extra_args=()):
        super().__init__(logdir, pattern="*." + STATIC, secret=STATIC_SECRET)
        self.extra_args = ["--authdomain=%s:%s" % (DYN, app_path)] + list(extra_args)

    def argv(self):
        return super().argv() + self.extra_args


@pytest.mark.parametrize("caps", ["AUTH", "SERVER AUTH"])
def test_pagekite_py_relay_same_inputs(group, tmp_path, caps):
    """pagekite.py's relay on the same app and kites.  Agreement: the good
    kite flies, the wrong secret is refused.  Where it differs (Python 3):
    it never starts a --server child (capabilities read as bytes), and it
    ACCEPTS the kite its app calls unknown (fail-open on {"error"}), which
    our relay refuses (test_wrong_secret_and_unknown_kite_refused)."""
    require_executable(PAGEKITE_PY, "pagekite.py (Debian package pagekite)")
    app = AuthApp(tmp_path, caps)
    origin = group.origin()
    app.customer("pat." + DYN, "pat-secret", quota_kb=2048)
    app.customer("quin." + DYN, "quin-secret")
    relay = group.add(PkAppRelay(group.logdir, app.path)).start()
    good = kite(origin, "pat", "pat-secret")
    wrong = kite(origin, "quin", "not-quins-secret")
    nobody = kite(origin, "rex", "whatever")
    group.our_connector(relay, [good])
    group.our_connector(relay, [wrong])
    group.our_connector(relay, [nobody])
    wait_http(good.name, relay.port, "/", 30)
    assert wait_not_served(wrong.name, relay.port, "/", 3) != 200
    # pagekite.py's Python 3 bug: the unknown kite flies
    wait_http(nobody.name, relay.port, "/", 30)
    relay.proc.wait_for(r"Quota lookup failed: Auth app provided no secret", 5)
    assert app.queries(good.name) and app.queries(wrong.name) and app.queries(nobody.name)
    assert app.server_pids() == [], "pagekite.py on Python 3 never runs --server"


# ------------------------------------------------------- bounds and leaks

def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def wait_fds(pid, want, timeout=5.0):
    deadline = time.monotonic() + timeout
    while fd_count(pid) != want and time.monotonic() < deadline:
        time.sleep(0.1)
    return fd_count(pid)


def test_one_shot_processes_bounded_and_queries_timed(group, tmp_path):
    """8 kite requests at once to a hung one-shot app: at most 4 app
    processes run (PK_AUTHAPP_ACTIVE); the 4 still waiting fail at their
    deadline without ever starting one; all 8 answered (fail-closed) within
    the 2 s, the hung ones killed."""
    import concurrent.futures
    app = AuthApp(tmp_path, "AUTH")
    for i in range(8):
        app.customer("n%d.%s" % (i, DYN), "secret-%d" % i)
    relay = start_relay(group, app, "--authfail_closed")
    relay.proc.wait_for(r"Auth app .*: AUTH \(asked with --auth, one process per query\)", 10)
    app.set(hang=True)
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as ex:
        heads = list(ex.map(lambda i: signed_request(relay.port, "n%d.%s" % (i, DYN),
                                                     "secret-%d" % i), range(8)))
    took = time.monotonic() - t0
    for h in heads:
        assert re.search(r"X-PageKite-Invalid-Why: \S+;unauthorized\r\n", h), h
    assert took < TIMEOUT_S + 3, took
    assert len(app.queries()) == 4, app.log()
    time.sleep(0.5)
    for line in app.queries():
        assert not os.path.exists("/proc/%s" % line.split()[1]), "a hung app still runs"
    assert zombies_of(relay.proc.pid) == []


@pytest.mark.parametrize("caps", ["AUTH", "SERVER AUTH"])
def test_no_fd_leak(group, tmp_path, caps):
    """Answers, malformed answers, hangs and (server) restarts: the relay's
    open descriptors come back to where they were."""
    app = AuthApp(tmp_path, caps)
    app.customer("oz." + DYN, "oz-secret")
    relay = start_relay(group, app, "--authfail_closed")
    relay.proc.wait_for(r"Auth app .*: %s \(asked" % caps, 10)
    if "SERVER" in caps:
        relay.proc.wait_for(r"--server started", 10)
    time.sleep(0.3)
    base = fd_count(relay.proc.pid)
    crash = {"die_on_query": True} if "SERVER" in caps else {"exit_status": 3}
    for behaviour in ({}, {"garbage": "nope"}, {"garbage": "y" * 9000}, {"hang": True}, crash,
                      {}):
        settings = dict(hang=False, garbage=None, die_on_query=False, exit_status=0)
        settings.update(behaviour)
        app.set(**settings)
        head = signed_request(relay.port, "oz." + DYN, "oz-secret")
        ok = not behaviour
        assert ("X-PageKite-OK: http:oz.%s:" % DYN in head) == ok, (behaviour, head)
    if "SERVER" in caps:
        # killed for the oversized answer, the hang and the crash: restarted
        assert len(app.server_pids()) >= 4, app.log()
        time.sleep(0.5)  # the last restart settles
    assert wait_fds(relay.proc.pid, base) == base, (base, os.listdir("/proc/%d/fd"
                                                                    % relay.proc.pid))
    assert zombies_of(relay.proc.pid) == []
