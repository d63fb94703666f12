"""Lua: the `pagekite` module for Lua 5.4 and the plugin host in libpagekite.

Module tests run `lua5.4` with LUA_CPATH at <build>/lua/pagekite.so.  Plugin
tests run <build>/lua/pk_plugin_driver (tests/lua/plugin_driver.c) as relay
and connector, with plugin scripts written here, in front of a Python origin
that reports the request headers it saw.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("PK_BUILD_DIR", ROOT / "build"))
LUA_DIR = BUILD / "lua"
MODULE = LUA_DIR / "pagekite.so"
DRIVER = LUA_DIR / "pk_plugin_driver"
LUA = shutil.which("lua5.4")

PK_LOG_LUA_INFO = 0x000800
PK_LOG_LUA_DEBUG = 0x008000
PK_LOG_NORMAL = 0x100000 | 0x010000 | 0x004000 | 0x000400 | 0x020000 | PK_LOG_LUA_INFO
SECRET = "lua-test-secret"
KITE = "demo.test"

needs_module = pytest.mark.skipif(not (LUA and MODULE.exists()),
                                  reason="lua5.4 or the built pagekite.so missing")
needs_driver = pytest.mark.skipif(not DRIVER.exists(),
                                  reason="pk_plugin_driver not built (library without Lua?)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout=15.0, step=0.05):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v:
            return v
        time.sleep(step)
    return pred()


# ---------------------------------------------------------------- origin


class Origin:
    """An HTTP origin on 127.0.0.1 answering JSON {path, headers}."""

    def __init__(self):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                hdrs = {k.lower(): v for k, v in self.headers.items()}
                seen.append((self.path, hdrs))
                body = json.dumps({"path": self.path, "headers": hdrs}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.close()


# ---------------------------------------------------------------- processes


class Proc:
    """A child whose stdout lines are collected by a thread (with the
    time.monotonic() each arrived at, in .stamps)."""

    def __init__(self, args, env=None, stdin=False):
        self.args = args
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                  text=True, env=env)
        self.lines: list[str] = []
        self.stamps: list[float] = []
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        for line in self.p.stdout:
            self.stamps.append(time.monotonic())
            self.lines.append(line.rstrip("\n"))

    def stamp(self, pattern):
        """When the first line matching pattern arrived."""
        rx = re.compile(pattern)
        return next(t for t, line in zip(list(self.stamps), list(self.lines)) if rx.search(line))

    def text(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, pattern, timeout=15.0):
        rx = re.compile(pattern)
        found = wait_until(lambda: next((l for l in list(self.lines) if rx.search(l)), None),
                           timeout)
        assert found, "%r not seen in output of %s:\n%s" % (pattern, self.args[:2], self.text())
        return found

    def stop(self, timeout=10.0):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
        self.t.join(5)
        return self.p.returncode


@pytest.fixture
def procs():
    started: list[Proc] = []

    def start(args, **kw):
        p = Proc(args, **kw)
        started.append(p)
        return p

    yield start
    codes = [(p.args[1], p.stop()) for p in reversed(started)]
    for p in started:  # sanitizer builds report here (PK_SANITIZE=ON)
        assert "Sanitizer" not in p.text(), p.text()
    assert all(rc == 0 for _, rc in codes), codes


def relay_args(port, plugins=(), settings=(), mask=PK_LOG_NORMAL, defaults=False):
    args = [str(DRIVER), "relay", "--listen", str(port), "--domain",
            "http,raw:*.test:%s" % SECRET, "--mask", hex(mask)]
    for s in settings:
        args += ["--setting", s]
    for p in plugins:
        args += ["--plugin", str(p)]
    if defaults:
        args.append("--defaults")
    return args


def connector_args(relay_port, origin_port, kite=KITE):
    return [str(DRIVER), "connector", "--frontend", "127.0.0.1:%d" % relay_port, "--kite",
            "http:%s:%s:%d" % (kite, SECRET, origin_port)]


@pytest.fixture
def fly(procs, origin, tmp_path):
    """fly(scripts={name: source}, settings=[...]) -> (relay Proc, relay port):
    a relay with those plugins and a connector flying demo.test to origin."""

    def start(scripts=None, settings=(), mask=PK_LOG_NORMAL, kite=KITE):
        paths = []
        for name, src in (scripts or {}).items():
            path = tmp_path / name
            path.write_text(src)
            paths.append(path)
        port = free_port()
        relay = procs(relay_args(port, paths, settings, mask))
        relay.wait_for(r"^ready$")
        conn = procs(connector_args(port, origin.port, kite))
        conn.wait_for(r"^status: flying$", 20)
        relay.wait_for(r"Kite .*%s" % re.escape(kite) + r"|status: flying", 10)
        return relay, port

    return start


def get(port, path="/", host=KITE, headers=None, timeout=10.0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": host, **(headers or {})})
        r = c.getresponse()
        return r.status, dict((k.lower(), v) for k, v in r.getheaders()), r.read()
    finally:
        c.close()


# ---------------------------------------------------------------- the module


def run_lua(code, timeout=30, stdin=None):
    env = dict(os.environ, LUA_CPATH="%s/?.so;;" % LUA_DIR)
    return subprocess.run([LUA, "-e", code], capture_output=True, text=True, env=env,
                          timeout=timeout, input=stdin)


@needs_module
def test_add_kite_public_port_name():
    """add_kite takes public_port, as Python and Node do; the old "port" still
    works, and giving both is an error."""
    r = run_lua(r"""
local pagekite = require "pagekite"
local c = pagekite.connector{app_id = "lua-names", max_kites = 4}
assert(c:add_kite{name = "a.test", secret = "s", origin_port = 80, public_port = 8080})
assert(c:add_kite{name = "b.test", secret = "s", origin_port = 80, port = 8081})
assert(c:add_kite{name = "c.test", secret = "s", origin_port = 80})
local ok, err = pcall(c.add_kite, c, {name = "d.test", secret = "s", origin_port = 80,
                                      public_port = 1, port = 2})
assert(not ok and err:find("public_port"), tostring(err))
for _, k in ipairs(c:kites()) do print(k.proto .. " " .. k.name) end
c:free()
""")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:3] == ["http-8080 a.test", "http-8081 b.test", "http c.test"], \
        r.stdout


@needs_module
def test_error_codes():
    """Failures return nil, message, code: the PK_E* code of pagekite_last_error_code()."""
    r = run_lua(r"""
local pagekite = require "pagekite"
local K = pagekite.constants
local function refused(want, ok, err, code)
  assert(ok == nil and type(err) == "string", tostring(err))
  assert(code == K[want], want .. " expected, got " .. tostring(code) .. ": " .. err)
  assert(pagekite.last_error_code() == code or code == K.PK_ESTATE or code == K.PK_EREJECTED)
  print("code " .. want .. ": " .. err)
end
assert(K.PK_OK == 0 and K.PK_EINVAL < 0 and K.PK_EUNSUPPORTED < 0)
refused("PK_EINVAL", pagekite.connector{max_conns = 0})
local c <close> = pagekite.connector{app_id = "t", max_kites = 2, max_conns = 4}
refused("PK_ESTATE", c:stop())
refused("PK_ESTATE", c:wait_until("flying", 0.1))
refused("PK_ENOTFOUND", c:kite_status("http", "nobody.test"))
refused("PK_EIO", c:load_lua_plugin("/nonexistent/plugin.lua"))
assert(c:add_kite{name = "k.test", secret = "s", origin_port = 80})
refused("PK_EEXIST", c:add_kite{name = "k.test", secret = "s", origin_port = 80})
assert(c:add_kite{name = "k2.test", secret = "s", origin_port = 80})
refused("PK_ELIMIT", c:add_kite{name = "k3.test", secret = "s", origin_port = 80})
refused("PK_EUNSUPPORTED", c:set_proxy("ftp://p.test:21"))
local r <close> = pagekite.relay{max_conns = 4}
refused("PK_EIO", r:set_tls("/nonexistent/c.pem", "/nonexistent/k.pem"))
print("done")
""")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "done" in r.stdout


@needs_module
def test_module_constants_and_failures():
    r = run_lua(r"""
local pagekite = require "pagekite"
local K = pagekite.constants
assert(K.PK_STATUS_FLYING == 40 and K.PK_LOG_LUA_INFO == 0x800 and K.PK_AS_FRONTEND_RELAY == 0x100)
assert(K.PK_KITE_STATUS_WAITING == 0 and K.PK_KITE_STATUS_FLYING == 1)
assert(K.PK_KITE_STATUS_REJECTED == 2 and K.PK_KITE_STATUS_DUPLICATE == 3)
assert(type(pagekite.version) == "string")
do
  local c <close> = pagekite.connector{app_id = "t", max_kites = 1, max_conns = 4}
  assert(tostring(c):match("connector %(stopped%)"))
  local ok, err = c:add_kite{proto = "http", name = "", secret = "s", origin_port = 80}
  assert(ok == nil and type(err) == "string" and #err > 0, "add_kite must fail")
  local ok2, err2 = c:load_lua_plugin("/nonexistent/plugin.lua")
  assert(ok2 == nil and err2:match("cannot read"), err2)
  local ok3, err3 = c:enable_lua_plugins(false, {"novalue"})
  assert(ok3 == nil and err3:match("is not name=value"), err3)
  assert(c:enable_lua_plugins(false, {web_ui = "off"}))
  local ok4, err4 = c:stop()
  assert(ok4 == nil and err4 == "not running")
  assert(c:add_kite{name = "k.test", secret = "s", origin_port = 80})
  local code, name = c:kite_status("http", "k.test")
  assert(code == K.PK_KITE_STATUS_WAITING and name == "waiting")
  assert(c:kite_reason("http", "k.test") == "")
  assert(c:get_kite_status("http", "k.test") == code and c:get_kite_reason("http", "k.test") == "")
  local kites = c:kites()
  assert(#kites == 1 and kites[1].proto == "http" and kites[1].name == "k.test"
         and kites[1].status == "waiting" and kites[1].reason == "")
  local nk, nkerr = c:kite_status("http", "nobody.test")
  assert(nk == nil and nkerr:match("no kite"), nkerr)
  local nr, nrerr = c:kite_reason("raw", "k.test")
  assert(nr == nil and nrerr:match("no kite"), nrerr)
  assert(not pcall(c.kite_status, c, "http"), "kite_status needs a name")
  assert(c:add_frontend_certname("relay.example.test"))
  local bc, bcerr = c:add_frontend_certname("not a name")
  assert(bc == nil and bcerr:match("invalid name"), bcerr)
  assert(not pcall(c.wait_until, c, "soaring", 1), "an unknown status name must raise")
  local w, werr = c:wait_until("flying", 0.1)
  assert(w == nil and werr:match("not running"), werr)
  local bad, berr = pagekite.connector{max_conns = 0}
  assert(bad == nil and berr:match("max_conns 0 is not"), berr)
end
local r = pagekite.relay{max_conns = 4}
r:free()
assert(tostring(r):match("freed"))
assert(not pcall(r.status, r), "a freed manager must raise")
print("module ok")
""")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "module ok" in r.stdout


@needs_module
def test_module_relay_and_connector_fly_a_kite(origin):
    port = free_port()
    code = r"""
local pagekite = require "pagekite"
local port, oport, secret = %d, %d, "%s"
local relay <close> = pagekite.relay{app_id = "lua-relay", max_conns = 16}
assert(relay:add_listener("127.0.0.1", port))
assert(relay:add_domain{protos = "http", pattern = "*.test", secret = secret})
assert(relay:start())
-- The relay has no certificate: no TLS (the default flags, PK_WITH_DEFAULTS, turn it on).
local conn <close> = pagekite.connector{app_id = "lua-conn", max_conns = 16,
                                        flags = pagekite.constants.PK_WITH_IPV4 |
                                                pagekite.constants.PK_WITH_IPV6}
assert(conn:add_kite{proto = "http", name = "demo.test", secret = secret,
                     origin_host = "127.0.0.1", origin_port = oport})
assert(conn:add_frontend("127.0.0.1", port))
assert(conn:start())
local deadline = os.time() + 20
while select(2, conn:status()) ~= "flying" and os.time() < deadline do conn:poll(1) end
print("status", select(2, conn:status()))
io.stdout:flush()
io.read("l")  -- the test fetches a page, then writes a line
local c = relay:counters()
print("relay bytes_in", c.bytes_in, "streams_total", c.streams_total)
print("kites_live", relay:counter("kites_live"))
assert(relay:stop() and conn:stop())
print("stopped")
""" % (port, origin.port, SECRET)
    env = dict(os.environ, LUA_CPATH="%s/?.so;;" % LUA_DIR)
    p = Proc([LUA, "-e", code], env=env, stdin=True)
    try:
        p.wait_for(r"^status\s+flying$", 25)
        status, _, body = get(port, "/hello-from-lua")
        assert status == 200
        assert json.loads(body)["path"] == "/hello-from-lua"
        p.p.stdin.write("done\n")
        p.p.stdin.flush()
        p.wait_for(r"^stopped$", 20)
        m = re.search(r"relay bytes_in\s+(\d+)\s+streams_total\s+(\d+)", p.text())
        assert m and int(m.group(1)) > 0 and int(m.group(2)) >= 1, p.text()
        assert re.search(r"kites_live\s+1", p.text()), p.text()
        assert p.p.wait(10) == 0, p.text()
    finally:
        p.stop()
    assert origin.seen and origin.seen[0][0] == "/hello-from-lua"


def _openssl(args, cwd):
    r = subprocess.run(["openssl"] + args, cwd=str(cwd), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    assert r.returncode == 0, "openssl %s failed:\n%s" % (" ".join(args), r.stdout.decode())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A throwaway CA and relay certificates it signed: both (relay.example.test
    and 127.0.0.1) and named (relay.example.test only)."""
    d = tmp_path_factory.mktemp("lua-pki")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "3",
                                     "-subj", "/CN=pagekite Lua binding test CA",
                                     "-addext", "basicConstraints=critical,CA:TRUE",
                                     "-addext", "keyUsage=critical,keyCertSign,cRLSign"], d)
    for label, san in (("both", "DNS:relay.example.test,IP:127.0.0.1"),
                       ("named", "DNS:relay.example.test")):
        _openssl(["req"] + ec + ["-keyout", label + ".key", "-out", label + ".csr",
                                 "-subj", "/CN=relay.example.test"], d)
        (d / (label + ".ext")).write_text("subjectAltName=%s\nbasicConstraints=CA:FALSE\n"
                                          "keyUsage=critical,digitalSignature\n"
                                          "extendedKeyUsage=serverAuth\n" % san)
        _openssl(["x509", "-req", "-in", label + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-CAcreateserial", "-out", label + ".pem", "-days", "3",
                  "-extfile", label + ".ext"], d)
    return d


LUA_KITES_PRELUDE = r"""
local pagekite = require "pagekite"
local K = pagekite.constants
local PLAIN = K.PK_WITH_IPV4 | K.PK_WITH_IPV6  -- no PK_WITH_SSL: for relays without a certificate
io.stdout:setvbuf("line")
local function relay(port, cert, key)
  local r = pagekite.relay{app_id = "lua-relay", max_conns = 16}
  assert(r:add_listener("127.0.0.1", port))
  assert(r:add_domain("http", "*.test", "%s"))
  if cert then assert(r:set_tls(cert, key)) end
  assert(r:start())
  return r
end
local function connector(port, name, opts)
  opts = opts or {}
  local c = pagekite.connector{app_id = "lua-kites", max_frontends = 1, flags = opts.flags}
  assert(c:add_kite{name = name, secret = opts.secret or "%s", origin_host = "127.0.0.1",
                    origin_port = 9})
  assert(c:add_frontend(opts.host or "127.0.0.1", port))
  if opts.ca then assert(c:set_tls_verify(K.PK_TLS_VERIFY_PEER, opts.ca)) end
  for _, n in ipairs(opts.certnames or {}) do assert(c:add_frontend_certname(n)) end
  return c
end
local function log_has(c, text, seconds)
  for _ = 1, (seconds or 10) * 20 do
    if c:log():find(text, 1, true) then return true end
    c:poll(1)
  end
  return false
end
""" % (SECRET, SECRET)


@needs_module
def test_module_wait_until_returns_at_once_on_rejected():
    """A wrong secret and a name outside the relay's domains: wait_until("flying", 30)
    gives up within a second with nil, "rejected: ..."; kite_status / kite_reason say why."""
    port = free_port()
    code = LUA_KITES_PRELUDE + r"""
local r <close> = relay(%d)
for _, case in ipairs{{"wrong.test", "not-the-secret", "signature"},
                      {"kite.elsewhere", nil, "unknown"}} do
  local name, secret, why = case[1], case[2], case[3]
  local c <close> = connector(%d, name, {flags = PLAIN, secret = secret})
  assert(c:start())
  print("waiting " .. name)
  local ok, err = c:wait_until("flying", 30)
  print("returned " .. name)
  assert(ok == nil, "flew: " .. name)
  assert(err == ("rejected: a relay refused http:%%s rejected (%%s)"):format(name, why), err)
  local st, stname = c:status()
  assert(st == K.PK_STATUS_REJECTED and stname == "rejected")
  local ks, ksname = c:kite_status("http", name)
  assert(ks == K.PK_KITE_STATUS_REJECTED and ksname == "rejected")
  assert(c:kite_reason("http", name) == why)
  local k = c:kites()[1]
  assert(k.status == "rejected" and k.reason == why)
  assert(c:wait_until("rejected", 1))                         -- waiting for it still works
  assert(c:wait_until(K.PK_STATUS_REJECTED, 1))
  print("ok " .. name .. " " .. why)
end
""" % (port, port)
    env = dict(os.environ, LUA_CPATH="%s/?.so;;" % LUA_DIR)
    p = Proc([LUA, "-e", code], env=env)
    try:
        assert p.p.wait(60) == 0, p.text()
        p.t.join(5)
        for name in ("wrong.test", "kite.elsewhere"):
            took = p.stamp(r"^returned " + re.escape(name)) - p.stamp(r"^waiting " + re.escape(name))
            # The status turned REJECTED after start(): no later than "waiting" was printed,
            # or during the wait. Either way the wait returned less than this after it.
            assert took < 1.0, "wait_until returned %.2f s after it began" % took
        assert "ok wrong.test signature" in p.text() and "ok kite.elsewhere unknown" in p.text()
    finally:
        p.stop()


@needs_module
def test_module_tls_by_default_and_certnames(pki):
    """Connectors default to PK_WITH_DEFAULTS: TLS, verified.  A relay with a
    certificate for another name flies with add_frontend_certname."""
    port, plain_port, named_port = free_port(), free_port(), free_port()
    code = LUA_KITES_PRELUDE + r"""
local d = "%s"
local tls_relay <close> = relay(%d, d .. "/both.pem", d .. "/both.key")
local plain_relay <close> = relay(%d)
local named_relay <close> = relay(%d, d .. "/named.pem", d .. "/named.key")

do -- the defaults, the CA trusted: flies over TLS
  local c <close> = connector(%d, "tls.test", {ca = d .. "/ca.pem"})
  assert(c:start())
  assert(c:wait_until("flying", 20))
  assert(c:log():find("with TLS", 1, true), c:log())
  assert(select(2, c:kite_status("http", "tls.test")) == "flying")
  print("tls ok")
end
do -- the defaults, the CA not trusted: verification fails
  local c <close> = connector(%d, "untrusted.test")
  assert(c:start())
  assert(log_has(c, "certificate verify failed"), c:log())
  assert(select(2, c:kite_status("http", "untrusted.test")) == "waiting")
  print("untrusted ok")
end
do -- the defaults against a plain relay
  local c <close> = connector(%d, "noplain.test")
  assert(c:start())
  assert(log_has(c, "the relay does not speak TLS"), c:log())
  print("plain ok")
end
do -- a certificate for relay.example.test only, dialled as 127.0.0.1
  local c <close> = connector(%d, "certname.test", {ca = d .. "/ca.pem"})
  assert(c:start())
  assert(log_has(c, "the relay's certificate is for relay.example.test; expected one of: 127.0.0.1"),
         c:log())
  assert(select(2, c:status()) ~= "flying")
  local ok <close> = connector(%d, "certname.test", {ca = d .. "/ca.pem",
                                                     certnames = {"relay.example.test"}})
  assert(ok:start())
  assert(ok:wait_until("flying", 20))
  print("certname ok")
end
do -- dialled by name: the refusal names the certificate's names and the expected ones
  local c <close> = connector(%d, "byname.test", {ca = d .. "/ca.pem", host = "localhost",
                                                  certnames = {"other.example.test"}})
  assert(c:start())
  assert(log_has(c, "the relay's certificate is for relay.example.test; " ..
                    "expected one of: localhost, other.example.test"), c:log())
  print("mismatch ok")
end
""" % (pki, port, plain_port, named_port, port, port, plain_port, named_port, named_port,
       named_port)
    r = run_lua(code, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    for marker in ("tls ok", "untrusted ok", "plain ok", "certname ok", "mismatch ok"):
        assert marker in r.stdout, r.stdout + r.stderr


def _der(pem_path) -> bytes:
    import ssl
    text = Path(pem_path).read_text()
    end = "-----END CERTIFICATE-----"
    return ssl.PEM_cert_to_DER_cert(text[:text.index(end) + len(end)] + "\n")


def _served_cert(port, sni, ca) -> bytes:
    """The certificate the relay presents for sni (None: no SNI), verified against ca."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile=str(ca))
    ctx.check_hostname = sni is not None
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as tls:
            return tls.getpeercert(binary_form=True)


@needs_module
def test_module_relay_tls_endpoints_raw_ports_alias_motd(pki):
    """add_tls_endpoint (one PEM with the key: key nil), set_tls_default,
    set_raw_ports, add_port_alias, set_motd: nil, err with the library's
    message for bad values and after start(); each name's certificate served."""
    one, two = "one.test", "two.test"
    for label, name in (("one", one), ("two", two)):
        _openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                  "-keyout", label + ".key", "-out", label + ".csr", "-subj", "/CN=" + name], pki)
        (pki / (label + ".ext")).write_text("subjectAltName=DNS:%s\n" % name)
        _openssl(["x509", "-req", "-in", label + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                  "-CAcreateserial", "-out", label + ".pem", "-days", "3",
                  "-extfile", label + ".ext"], pki)
    (pki / "two-combined.pem").write_text((pki / "two.pem").read_text() +
                                          (pki / "two.key").read_text())
    port = free_port()
    code = r"""
local pagekite = require "pagekite"
io.stdout:setvbuf("line")
local d, port = "%s", %d
local r <close> = pagekite.relay{app_id = "lua-endpoints", max_conns = 16}
local function refused(what, pattern, ok, err)
  assert(ok == nil and type(err) == "string" and err:find(pattern), what .. ": " .. tostring(err))
  print("refused " .. what .. ": " .. err)
end
assert(r:add_listener("127.0.0.1", port))
assert(r:add_tls_endpoint("one.test", d .. "/one.pem", d .. "/one.key") == true)
assert(r:add_tls_endpoint("two.test", d .. "/two-combined.pem") == true)
-- the same name again: its certificate is replaced (rotation)
assert(r:add_tls_endpoint("ONE.test", d .. "/one.pem", d .. "/one.key") == true)
refused("missing file", "missing%%.pem", r:add_tls_endpoint("three.test", d .. "/missing.pem"))
refused("key not in file", "cannot load", r:add_tls_endpoint("three.test", d .. "/one.pem", nil))
assert(not pcall(r.add_tls_endpoint, r, "x.test"), "a certificate file is required")
assert(r:set_tls_default("one.test") and r:set_tls_default(nil) and r:set_tls_default("two.test"))
refused("bad default", "not a valid name", r:set_tls_default("bad name"))
assert(r:set_raw_ports("22,2222") and r:set_raw_ports(nil) and r:set_raw_ports("virtual"))
refused("raw ports", [[expected ports %%(1%%-65535%%) and/or "virtual".*'bogus']],
        r:set_raw_ports("bogus"))
assert(r:add_port_alias(8443, 443))
refused("alias 0", "is not 1%%-65535", r:add_port_alias(0, 80))
refused("alias to itself", "is not 1%%-65535", r:add_port_alias(80, 80))
refused("alias twice", "aliased already", r:add_port_alias(8443, 444))
assert(not pcall(r.add_port_alias, r, 8080), "alias_of is required")
assert(r:set_motd("Welcome.\nBe nice.") and r:set_motd(string.rep("x", 1024)) and r:set_motd(nil))
refused("long motd", "1025 bytes, at most 1024", r:set_motd(string.rep("x", 1025)))
refused("control character", "control character", r:set_motd("bell\a"))
assert(r:start())
print("started")
io.read("l")  -- the test checks the certificates, then writes a line
for what, call in pairs{
  raw = function() return r:set_raw_ports("virtual") end,
  alias = function() return r:add_port_alias(port, 80) end} do
  refused(what .. " after start", "only allowed before", call())
end
-- at any time: endpoints, the default name, the MOTD, domains
assert(r:add_tls_endpoint("late.test", d .. "/one.pem", d .. "/one.key") == true)
assert(r:remove_tls_endpoint("late.test") == true)
refused("endpoint removed twice", "has no endpoint", r:remove_tls_endpoint("late.test"))
assert(r:set_tls_default("one.test") and r:set_motd("late"))
assert(r:add_domain("http", "late.test", "s"))
assert(r:remove_domain("http", "late.test") == true)
refused("domain removed twice", "no domain", r:remove_domain("http", "late.test"))
assert(r:stop())
print("done")
""" % (pki, port)
    env = dict(os.environ, LUA_CPATH="%s/?.so;;" % LUA_DIR)
    p = Proc([LUA, "-e", code], env=env, stdin=True)
    try:
        p.wait_for(r"^started$", 20)
        assert _served_cert(port, one, pki / "ca.pem") == _der(pki / "one.pem")
        assert _served_cert(port, two, pki / "ca.pem") == _der(pki / "two.pem")
        assert _served_cert(port, None, pki / "ca.pem") == _der(pki / "two.pem")
        p.p.stdin.write("go\n")
        p.p.stdin.flush()
        p.wait_for(r"^done$", 20)
        assert p.p.wait(10) == 0, p.text()
    finally:
        p.stop()
    text = p.text()
    assert len(re.findall(r"^refused .* after start: .*only allowed before", text, re.M)) == 2, text
    assert "refused endpoint removed twice: " in text and "refused domain removed twice: " in text
    assert "refused raw ports: pagekite_set_relay_raw_ports: ports: expected ports" in text, text


# ---------------------------------------------------------------- plugins


@needs_driver
def test_plugin_reject_gives_status_and_body(fly):
    relay, port = fly({"deny.lua": r"""
pk.on_stream(function(s)
  if s.path == "/private" then
    return {reject = 451, reason = "Unavailable For Legal Reasons",
            body = "<p>not here</p>", headers = {["X-Denied-By"] = "deny.lua"}}
  end
end)
"""})
    status, hdrs, body = get(port, "/private")
    assert status == 451
    assert body == b"<p>not here</p>"
    assert hdrs.get("x-denied-by") == "deny.lua"
    status, _, body = get(port, "/public")
    assert status == 200 and json.loads(body)["path"] == "/public"


@needs_driver
def test_plugin_rewrite_headers_reach_the_origin(fly, origin):
    relay, port = fly({"rewrite.lua": r"""
pk.on_stream(function(s)
  return {add_headers = {["X-Plugin"] = s.proto .. " " .. s.kite .. " " .. s.method},
          del_headers = {"X-Secret"}}
end)
"""})
    status, _, body = get(port, "/r", headers={"X-Secret": "hush", "X-Keep": "1"})
    assert status == 200
    seen = json.loads(body)["headers"]
    assert seen.get("x-plugin") == "http demo.test GET"
    assert "x-secret" not in seen
    assert seen.get("x-keep") == "1"


@needs_driver
def test_runaway_script_is_cut_off_and_traffic_continues(fly):
    relay, port = fly({"runaway.lua": r"""
pk.on_stream(function(s)
  if s.path == "/spin" then
    -- pcall must not let the script swallow the budget error
    while true do pcall(function() while true do end end) end
  end
end)
"""})
    t0 = time.monotonic()
    status, _, body = get(port, "/spin", timeout=20)
    assert time.monotonic() - t0 < 10
    assert status == 200 and json.loads(body)["path"] == "/spin"
    relay.wait_for(r"runaway\.lua: on_stream failed: .*instruction budget")
    relay.wait_for(r"runaway\.lua: on_stream hook disabled")
    for i in range(3):
        assert get(port, "/after%d" % i)[0] == 200


@needs_driver
def test_script_error_disables_only_that_hook(fly):
    relay, port = fly({
        "broken.lua": r"""
local n = 0
pk.on_tick(function() n = n + 1; pk.log_info("tick", n) end)
pk.on_stream(function(s) error("boom in on_stream") end)
""",
        "good.lua": r"""
pk.on_stream(function(s) return {add_headers = {["X-Good"] = "yes"}} end)
"""})
    for i in range(3):
        status, _, body = get(port, "/e%d" % i)
        assert status == 200
        assert json.loads(body)["headers"].get("x-good") == "yes"
    relay.wait_for(r"broken\.lua: on_stream failed: .*boom in on_stream")
    text = relay.text()
    assert len(re.findall(r"boom in on_stream", text)) == 1, text
    assert "broken.lua: on_stream hook disabled" in text
    # The same script's other hook still runs after the failure.
    last = max(int(n) for n in re.findall(r"broken\.lua: tick (\d+)", text))
    relay.wait_for(r"broken\.lua: tick %d\b" % (last + 1), 10)
    assert "good.lua: on_stream hook disabled" not in relay.text()


@needs_driver
@pytest.mark.parametrize("mask, info, debug", [
    (PK_LOG_NORMAL, True, False),
    (PK_LOG_NORMAL & ~PK_LOG_LUA_INFO, False, False),
    (PK_LOG_NORMAL | PK_LOG_LUA_DEBUG, True, True),
])
def test_log_lines_follow_the_mask(procs, tmp_path, mask, info, debug):
    script = tmp_path / "talk.lua"
    script.write_text('pk.log_info("info line", 42)\npk.log_debug("debug line")\n'
                      'pk.log_info("loaded marker")\n')
    relay = procs(relay_args(free_port(), [script], mask=mask))
    relay.wait_for(r"^ready$")
    relay.wait_for(r"Lua plugin talk\.lua loaded|^status:")
    time.sleep(0.3)
    assert relay.stop() == 0
    text = relay.text()
    assert ("lua talk.lua: info line 42" in text) == info, text
    assert ("lua talk.lua: debug line" in text) == debug, text


@needs_driver
def test_sandbox_and_unsafe(procs, tmp_path):
    script = tmp_path / "probe.lua"
    script.write_text(r"""
local w_ok = pcall(io.open, "%s", "w")
pk.log_info("probe",
  os.execute == nil, io.popen == nil, w_ok == false, loadfile == nil, dofile == nil,
  package.cpath == "", package.loadlib == nil, debug.sethook == nil,
  pcall(load, string.dump(function() end)) and select(2, load(string.dump(function() end))) ~= nil)
""" % (tmp_path / "written-by-lua"))
    relay = procs(relay_args(free_port(), [script]))
    relay.wait_for(r"lua probe\.lua: probe")
    assert "lua probe.lua: probe true true true true true true true true true" in relay.text()
    relay.stop()
    unsafe = procs(relay_args(free_port(), [script], settings=["unsafe=1"]))
    unsafe.wait_for(r"lua probe\.lua: probe")
    assert "lua probe.lua: probe false false" in unsafe.text()
    assert (tmp_path / "written-by-lua").exists()


@needs_driver
def test_web_ui_status_json_and_metrics(fly):
    ui = free_port()
    relay, port = fly(settings=["web_ui=127.0.0.1:%d" % ui])
    relay.wait_for(r"web UI on http://127\.0\.0\.1:%d/" % ui)
    assert get(port, "/through")[0] == 200
    status, hdrs, body = get(ui, "/status.json", host="localhost")
    assert status == 200 and hdrs["content-type"] == "application/json"
    st = json.loads(body)
    assert st["role"] == "relay" and st["status"] == "flying"
    assert {"name": KITE, "proto": "http", "port": 0, "state": "live"} in st["kites"]
    assert st["counters"]["tunnels"] == 1 and st["counters"]["streams_total"] >= 1
    status, hdrs, body = get(ui, "/metrics", host="localhost")
    assert status == 200 and hdrs["content-type"].startswith("text/plain")
    text = body.decode()
    for name in ("pagekite_kites_live 1", "pagekite_tunnels 1", "pagekite_streams ",
                 "pagekite_bytes_in_total ", "pagekite_bytes_out_total ",
                 "pagekite_errors_total ", "# TYPE pagekite_bytes_in_total counter",
                 'pagekite_kite_up{proto="http",kite="demo.test",port="0"} 1'):
        assert name in text, text
    assert int(re.search(r"^pagekite_bytes_in_total (\d+)$", text, re.M).group(1)) > 0
    status, hdrs, body = get(ui, "/", host="localhost")
    assert status == 200 and b"<h1>PageKite relay" in body and b"demo.test" in body
    assert get(ui, "/nope", host="localhost")[0] == 404
    # the request head is bounded
    status, _, _ = get(ui, "/status.json", host="localhost", headers={"X-Big": "a" * 9000})
    assert status == 431


@needs_driver
def test_access_allow_list_gives_403(fly):
    relay, port = fly(settings=["access.allow=%s:10.0.0.0/8,192.168.1.1" % KITE,
                                "access.allow=*.other:127.0.0.1"])
    status, _, body = get(port, "/")
    assert status == 403 and b"403 Forbidden" in body
    relay.wait_for(r"access: %s denied for 127\.0\.0\.1" % re.escape(KITE))


@needs_driver
def test_access_allow_list_admits_listed_address(fly):
    relay, port = fly(settings=["access.allow=*.test:::1,127.0.0.0/8"])
    assert get(port, "/")[0] == 200


@needs_driver
def test_access_basic_auth_gives_401(fly, origin):
    import base64
    relay, port = fly(settings=["access.auth=%s:alice:s3cr:et" % KITE])
    status, hdrs, _ = get(port, "/")
    assert status == 401
    assert hdrs.get("www-authenticate") == 'Basic realm="%s"' % KITE
    bad = base64.b64encode(b"alice:wrong").decode()
    assert get(port, "/", headers={"Authorization": "Basic " + bad})[0] == 401
    good = base64.b64encode(b"alice:s3cr:et").decode()
    status, _, body = get(port, "/in", headers={"Authorization": "Basic " + good})
    assert status == 200
    assert "authorization" not in json.loads(body)["headers"]
    assert [p for p, _ in origin.seen] == ["/in"]


@needs_driver
def test_readme_plugin_example_runs_as_written(fly):
    readme = (Path(__file__).resolve().parents[2] / "lua" / "README.md").read_text()
    src = re.search(r"```lua\n(-- example_plugin\.lua\n.*?)```", readme, re.S).group(1)
    relay, port = fly({"example_plugin.lua": src})
    status, _, body = get(port, "/admin")
    assert status == 403 and body == b"no admin through the tunnel\n"
    status, _, body = get(port, "/page")
    assert status == 200
    assert json.loads(body)["headers"].get("x-seen-by-plugin") == "example"
    relay.wait_for(r"request for demo\.test/page", 10)


@needs_module
def test_module_next_events_10000_in_order_and_poll():
    """m:next_events() over pagekite_next_events: 10,000 log lines (a config
    call after start() fails and logs one) arrive in order without gaps; a
    slow reader gets one "lost" event; m:poll() says whether events came."""
    r = run_lua(r"""
local pagekite = require "pagekite"
local K = pagekite.constants
local c <close> = pagekite.connector{app_id = "ev", max_kites = 1, max_conns = 4,
                                     flags = K.PK_WITH_IPV4 | K.PK_WITH_IPV6}
assert(c:set_log_mask(K.PK_LOG_ERRORS))
assert(c:start())
local function log_one(i)
  assert(c:add_frontend_certname("n" .. i .. ".test") == nil) -- before start only
end
local got, after = {}, 0
local function drain()
  repeat
    local evs = assert(c:next_events(after, 512, 0))
    for _, ev in ipairs(evs) do got[#got + 1] = ev; after = ev.seq end
  until #evs == 0
end
for i = 1, 10000 do
  log_one(i)
  if i % 200 == 0 then drain() end
end
drain()
local ours = 0
for i, ev in ipairs(got) do
  assert(ev.seq == got[1].seq + i - 1, "gap or reorder at " .. i)
  assert(ev.kind ~= "lost")
  if ev.kind == "log" and ev.text:match("^pagekite_add_frontend_certname") then
    ours = ours + 1
    assert(ev.code & K.PK_LOG_MANAGER_ERROR ~= 0 and ev.time_ms > 0)
  end
end
assert(ours == 10000, "log events: " .. ours)
for i = 1, 600 do log_one(i) end
local slow = assert(c:next_events(after, 4, 0))
assert(slow[1].kind == "lost" and slow[1].code > 0 and slow[2].seq == slow[1].seq + 1)
assert(slow[1].code == slow[2].seq - after - 1)
assert(c:poll(0) == true, "events since the last poll")
assert(c:poll(0) == false, "none since")
assert(c:poll(0.2) == false)
log_one(0)
assert(c:poll(5) == true)
assert(not pcall(c.next_events, c, 0, 0), "max 0 raises")
local e, err = c:next_events(-1, 1, 0)
assert(e == nil and err:match("after"), err)
print("events ok", #got)
""", timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "events ok" in r.stdout


# ---------------------------------------------------------------- the whole API


SPEC_JSON = ROOT / "spec" / "pagekite.json"


def spec_model() -> dict:
    return json.loads(SPEC_JSON.read_text())


def lua_value(v) -> str:
    return json.dumps(v) if isinstance(v, str) else str(v)


def test_raw_layer_is_generated_from_the_json():
    """lua/pagekite_raw.c is what lua/generate_raw.py makes of spec/pagekite.json."""
    r = subprocess.run(["python3", str(ROOT / "lua" / "generate_raw.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    raw = (ROOT / "lua" / "pagekite_raw.c").read_text()
    for fn in spec_model()["functions"]:
        assert "%s(" % fn["c"] in raw, fn["c"]


@needs_module
def test_every_spec_function_and_constant_is_reachable_from_lua():
    """Generated coverage: pagekite.raw has every spec function (and nothing
    else), pagekite.raw and pagekite.constants every constant with the
    spec's value, and each idiomatic name the spec gives exists."""
    model = spec_model()
    checks = ["local pagekite = require 'pagekite'", "local R, K = pagekite.raw, pagekite.constants",
              "local m <close> = pagekite.relay{max_conns = 4}", "local missing = {}",
              "local function need(ok, what) if not ok then missing[#missing + 1] = what end end",
              "local n = 0",
              "for k, v in pairs(R) do if type(v) == 'function' then n = n + 1 end end",
              "print('raw functions ' .. n)"]
    for fn in model["functions"]:
        name = fn["names"]["lua"]
        checks.append("need(type(R.%s) == 'function', 'raw.%s')" % (name, name))
        idiom = fn["idiomatic"]["lua"]
        if idiom.startswith("m:"):
            checks.append("need(type(m.%s) == 'function', '%s')" % (idiom[2:], idiom))
        elif idiom.startswith("pagekite."):
            checks.append("need(type(%s) == 'function', '%s')" % (idiom, idiom))
    for c in model["constants"]:
        v = lua_value(c["value"])
        checks.append("need(R.%s == %s and K.%s == %s, '%s')" % (c["name"], v, c["name"], v,
                                                                 c["name"]))
    checks.append("print('missing: ' .. table.concat(missing, ' '))")
    r = run_lua("\n".join(checks))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "raw functions %d\n" % len(model["functions"]) in r.stdout, r.stdout
    assert "missing: \n" in r.stdout, r.stdout


def null_manager_call(fn: dict) -> str:
    """raw.NAME(nil, ...) with valid values for the other arguments."""
    args = []
    for a in fn["args"]:
        if "out_array" in a:
            continue
        args.append({"pagekite_mgr": "nil", "int": "1", "long long": "0",
                     "const char *": "'x'", "char **": "{}"}[a["type"]])
    return "pagekite.raw.%s(%s)" % (fn["names"]["lua"], ", ".join(args))


@needs_module
def test_raw_calls_with_a_null_manager_return_the_failure_values():
    model = spec_model()
    lines = ["local pagekite = require 'pagekite'", "local K = pagekite.constants",
             "local function code() return pagekite.raw.last_error_code() end"]
    count = 0
    for fn in model["functions"]:
        if not fn["takes_mgr"]:
            continue
        call, rtype = null_manager_call(fn), fn["returns"]["type"]
        if rtype == "void":  # pagekite_perror: prints, resets the error
            lines.append("assert(select('#', %s) == 0)" % call)
            continue
        count += 1
        failure = fn["returns"]["failure"]
        assert failure.startswith(("-1", "nonzero", "NULL")), (fn["c"], failure)
        want = ("r == nil" if failure.startswith("NULL") else
                "math.type(r) == 'integer' and r ~= 0" if failure.startswith("nonzero") else
                "r == -1")
        lines += ["do local r = %s" % call,
                  "  assert(%s, '%s: ' .. tostring(r))" % (want, fn["c"]),
                  "  assert(code() == K.PK_EINVAL, '%s: code ' .. code()) end" % fn["c"]]
    lines.append("print('null ok')")
    r = run_lua("\n".join(lines))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "null ok" in r.stdout
    assert count >= 40


@needs_module
def test_raw_layer_checks_lua_types_and_runs_a_manager():
    r = run_lua(r"""
local pagekite = require "pagekite"
local R, K = pagekite.raw, pagekite.raw
assert(not pcall(R.add_kite, nil, "http", nil, 0, "s", "localhost", 80), "nil for a non-nullable string")
assert(not pcall(R.set_log_mask, nil, 2^40), "out of int range")
assert(not pcall(R.set_log_mask, {}, 1), "not a manager")
assert(not pcall(R.next_events, nil, 0, 0, 0), "max 0")
assert(R.set_proxy(nil, nil) == -1, "nullable string takes nil")
assert(R.status_name(K.PK_STATUS_FLYING) == "FLYING" and R.status_name(7) == "UNKNOWN")
assert(R.version_number() == K.PK_VERSION_NUMBER)
assert(R.init("", 1, 1, 0, nil, 0, 0) == nil and R.last_error():match("max_conns"))
local m = assert(R.init("raw", 2, 1, 4, nil, K.PK_WITH_IPV4, 0))
assert(tostring(m):match("stopped"))
assert(R.add_kite(m, "http", "raw.test", 0, "s", "localhost", 80) == 0)
assert(R.add_kite(m, "http", "raw.test", 0, "s", "localhost", 80) == -1)
assert(R.last_error_code() == K.PK_EEXIST)
assert(R.get_kite_status(m, "http", "raw.test") == K.PK_KITE_STATUS_WAITING)
assert(R.get_kite_reason(m, "http", "raw.test") == "")
assert(R.enable_lua_plugins(m, 0, {"web_ui=off"}) == 0)
assert(R.thread_start(m) == 0 and tostring(m):match("running"))
assert(R.get_status(m) >= K.PK_STATUS_STARTUP)
local evs = R.next_events(m, 0, 16, 1000)
assert(type(evs) == "table" and #evs >= 1 and evs[1].version == K.PK_EVENT_VERSION
       and type(evs[1].kind) == "number" and evs[1].seq == 1)
assert(R.poll(m, 0) >= 0)
assert(R.get_counter(m, K.PK_COUNTER_TUNNELS) == 0)
assert(type(R.get_log(m)) == "string")
assert(R.thread_stop(m) == 0 and tostring(m):match("stopped"))
assert(R.free(m) == 0 and tostring(m):match("freed"))
assert(R.get_status(m) == -1, "a freed manager object is NULL to the raw layer")
assert(not pcall(m.status, m), "and raises in the idiomatic layer")
print("raw ok")
""")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "raw ok" in r.stdout


@needs_module
def test_new_idiomatic_methods_call_through_the_raw_layer():
    r = run_lua(r"""
local pagekite = require "pagekite"
local K = pagekite.constants
local rl <close> = pagekite.relay{max_conns = 4}
assert(rl:set_duplicates(true) and rl:set_duplicates(0))
local c <close> = pagekite.connector{max_kites = 1, max_conns = 4, flags = K.PK_WITH_IPV4}
assert(c:enable_watchdog(false) and c:enable_fake_ping(true) and c:enable_tick_timer(true))
assert(c:enable_http_forwarding_headers(true) and c:set_bail_on_errors(0))
assert(c:set_housekeeping_min_interval(5) and c:set_housekeeping_max_interval(60))
assert(c:set_conn_eviction_idle(30) and c:want_spare_frontends(0))
assert(c:set_openssl_ciphers("HIGH"))
local ok, err, code = c:set_duplicates(true)
assert(ok == nil and err:match("relay") and code < 0, tostring(err))
assert(not pcall(c.set_log_mask, c, "x"), "wrong types raise")
local ok2, err2, code2 = c:wait()
assert(ok2 == nil and type(err2) == "string" and code2 < 0, "wait before start fails")
assert(c:start())
assert(c:stop())
print("thin ok")
""")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "thin ok" in r.stdout


@needs_module
def test_every_lua_name_in_the_api_doc_exists():
    doc = (ROOT / "doc" / "API.md").read_text()
    lua_parts = re.findall(r"; Lua: (.*)$", doc, re.M)
    lua_parts += [row.split("|")[5] for row in doc.split("## Names in each binding")[1]
                  .splitlines() if row.startswith("| `pagekite_")]
    names = sorted(set(re.findall(r"`(pagekite\.raw\.\w+|pagekite\.\w+|m:\w+)`",
                                  " ".join(lua_parts))))
    assert len(names) > 60, names
    lines = ["local pagekite = require 'pagekite'", "local m <close> = pagekite.relay{max_conns = 4}",
             "local missing = {}"]
    for n in names:
        expr = "m." + n[2:] if n.startswith("m:") else n
        lines.append("if type(%s) ~= 'function' then missing[#missing + 1] = %r end" % (expr, n))
    lines.append("print('missing: ' .. table.concat(missing, ' '))")
    r = run_lua("\n".join(lines))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "missing: \n" in r.stdout, r.stdout


@needs_module
def test_module_metrics_status_json_and_admin_listener():
    port, admin = free_port(), free_port()
    code = r"""
local pagekite = require "pagekite"
local port, admin = %d, %d
local relay <close> = pagekite.relay{app_id = "lua-metrics", max_conns = 16}
assert(relay:add_listener("127.0.0.1", port))
assert(relay:add_domain{protos = "http", pattern = "*.test", secret = "s3cret-lua"})
local ok, err = relay:set_admin_listener("not-an-ip", admin)
print("bad host", ok, err)
assert(relay:set_admin_listener(nil, admin))
assert(relay:start())
local m = assert(relay:metrics())
print("metrics tunnels", m:match("\npagekite_tunnels (%%d+)\n"))
local j = assert(relay:status_json())
print("json role", j:match('"role": "(%%a+)"'))
print("secret shown", (m .. j):find("s3cret-lua", 1, true) ~= nil)
io.stdout:flush()
io.read("l")
assert(relay:stop())
print("stopped")
""" % (port, admin)
    env = dict(os.environ, LUA_CPATH="%s/?.so;;" % LUA_DIR)
    p = Proc([LUA, "-e", code], env=env, stdin=True)
    try:
        p.wait_for(r"^secret shown\s+false$", 20)
        text = p.text()
        assert re.search(r"^bad host\s+nil\s+pagekite_set_admin_listener: 'not-an-ip'", text,
                         re.M), text
        assert re.search(r"^metrics tunnels\s+0$", text, re.M), text
        assert re.search(r"^json role\s+relay$", text, re.M), text
        c = http.client.HTTPConnection("127.0.0.1", admin, timeout=10)
        c.request("GET", "/metrics")
        r = c.getresponse()
        body = r.read().decode()
        c.close()
        assert r.status == 200 and "pagekite_kites_live 0" in body, body
        p.p.stdin.write("done\n")
        p.p.stdin.flush()
        p.wait_for(r"^stopped$", 20)
        assert p.p.wait(10) == 0, p.text()
    finally:
        p.stop()


# ---------------------------------------------------------------- fail closed (issue 17)


def _start_fails(args, pattern, env=None, timeout=20):
    """Runs the driver; it must exit 1 with an error matching pattern, and
    never print "ready" (never serve)."""
    p = Proc(args, env=env)
    try:
        rc = p.p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.stop()
        raise AssertionError("driver kept running (it served):\n" + p.text())
    p.t.join(5)
    assert rc == 1, (rc, p.text())
    assert "ready" not in p.lines, p.text()
    assert re.search(pattern, p.text()), p.text()
    return p


@needs_driver
def test_access_setting_without_its_plugin_refuses_service(tmp_path):
    # The reported bug: access.auth with no access.lua in the plugin dir
    # started anyway and let visitors in without credentials (200).
    empty = tmp_path / "plugins"
    empty.mkdir()
    port = free_port()
    args = relay_args(port, settings=["access.auth=%s:alice:secretpw" % KITE,
                                      "plugin_dir=%s" % empty])
    _start_fails(args, r"error: .*access\.lua.*(No such file|cannot)")
    # Nothing listens: a visitor cannot get through.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


@needs_driver
def test_defaults_without_plugins_refuse_service(tmp_path):
    empty = tmp_path / "plugins"
    empty.mkdir()
    args = relay_args(free_port(), settings=["plugin_dir=%s" % empty], defaults=True)
    _start_fails(args, r"error: .*web_ui\.lua")


@needs_driver
def test_plugin_that_fails_to_load_refuses_service(tmp_path):
    bad = tmp_path / "bad.lua"
    bad.write_text("this is not lua (\n")
    _start_fails(relay_args(free_port(), plugins=[bad]), r"error: .*bad\.lua")
    boom = tmp_path / "boom.lua"
    boom.write_text("error('refusing on purpose')\n")
    _start_fails(relay_args(free_port(), plugins=[boom]), r"error: .*boom\.lua.*refusing on purpose")


@needs_driver
def test_installed_library_uses_installed_plugins(tmp_path, origin, procs):
    # The plugin dir comes from where the library is installed, not from the
    # source tree it was built in: install, mark the installed access.lua,
    # and see the mark in the log.
    prefix = tmp_path / "prefix"
    subprocess.run(["cmake", "--install", str(BUILD), "--prefix", str(prefix)],
                   check=True, capture_output=True)
    libdir = next(d for d in prefix.glob("lib*") if list(d.glob("libpagekite.so*")))
    installed = prefix / "share" / "libpagekite" / "lua" / "plugins" / "access.lua"
    assert installed.exists()
    installed.write_text(installed.read_text() + '\npk.log_info("access: installed copy")\n')
    env = dict(os.environ, LD_LIBRARY_PATH=str(libdir))
    port = free_port()
    relay = procs(relay_args(port, settings=["access.auth=%s:alice:secretpw" % KITE]), env=env)
    relay.wait_for(r"^ready$")
    relay.wait_for(r"access: installed copy")
    conn = procs(connector_args(port, origin.port), env=env)
    conn.wait_for(r"^status: flying$", 20)
    status, hdrs, _ = get(port, "/")
    assert status == 401


@needs_module
def test_module_relay_access_rules():
    """add_client_acl / add_tunnel_acl / add_ratelimit_ips / set_require_tls:
    true, or nil and the library's reason; visitors from 127.0.0.2 refused
    (403) where 127.0.0.1 reaches routing (503: no such kite)."""
    port = free_port()
    code = r"""
local pagekite = require "pagekite"
io.stdout:setvbuf("line")
local r <close> = pagekite.relay{app_id = "lua-acl", max_conns = 16}
assert(r:add_listener("127.0.0.1", %d))
assert(r:add_domain("http", "*.test", "s3cret"))
local function refused(what, pattern, ok, err)
  assert(ok == nil and type(err) == "string" and err:find(pattern), what .. ": " .. tostring(err))
  print("refused " .. what)
end
assert(r:add_client_acl("allow:127\\.0\\.0\\.1") == true)
assert(r:add_tunnel_acl("allow:localhost") == true)
assert(r:add_ratelimit_ips("a.test:5/60") == true)
refused("python regexp", "Python regexp syntax", r:add_client_acl("deny:\\d"))
refused("bad policy", "policy is not allow or deny", r:add_tunnel_acl("maybe:.*"))
refused("bad limit", "IPS/SECONDS", r:add_ratelimit_ips("5"))
assert(r:set_require_tls(false) == true)
assert(r:start())
print("started")
io.read("l")
assert(r:stop())
print("done")
""" % port
    env = dict(os.environ, LUA_CPATH="%s/?.so;;" % LUA_DIR)
    p = Proc([LUA, "-e", code], env=env, stdin=True)
    try:
        p.wait_for(r"^started$", 20)
        for src, want in (("127.0.0.1", 503), ("127.0.0.2", 403)):
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=(src, 0))
            c.request("GET", "/", headers={"Host": "nokite.test"})
            assert c.getresponse().status == want, src
            c.close()
        p.p.stdin.write("\n")
        p.p.stdin.flush()
        p.wait_for(r"^done$", 20)
    finally:
        rc = p.stop()
    assert rc == 0, p.text()
    assert p.text().count("refused ") == 3, p.text()


@needs_module
def test_module_connector_kite_access():
    r = run_lua(r"""
local pagekite = require "pagekite"
local c <close> = pagekite.connector{app_id = "lua-kite-access"}
assert(c:add_kite{name = "k.test", secret = "s3cret", origin_port = 9})
assert(c:add_kite_access("k.test", 0, "+password/alice=pw") == true)
assert(c:add_kite_access("k.test", 0, "ip/127.0.0.1") == true)
local ok, err = c:add_kite_access("typo.test", 0, "ip/127.0.0.1")
assert(ok == nil and err:find("no such kite"), tostring(err))
ok, err = c:add_kite_access("k.test", 0, "password/alice")
assert(ok == nil and err:find("USER=PASSWORD"), tostring(err))
print("ok")
""")
    assert r.returncode == 0 and r.stdout.strip() == "ok", (r.stdout, r.stderr)


@needs_module
def test_module_proxy_protocol_methods():
    """m:set_kite_proxy_protocol (connector, any time) and m:add_proxy_source
    (relay): true, or nil and the library's message; the origin of a raw kite
    gets the v2 header, then none once set back to 0."""
    import struct
    got = []
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    oport = srv.getsockname()[1]

    def serve():
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                data = b""
                try:
                    while b"hello\n" not in data and len(data) < 4096:
                        d = c.recv(4096)
                        if not d:
                            break
                        data += d
                    got.append(data)
                    c.sendall(b"ok\n")
                except OSError:
                    pass
    threading.Thread(target=serve, daemon=True).start()
    port = free_port()
    code = r"""
local pagekite = require "pagekite"
local K = pagekite.constants
io.stdout:setvbuf("line")
local port, oport, secret = %d, %d, "%s"
local function refused(what, pattern, ok, err)
  assert(ok == nil and type(err) == "string" and err:find(pattern), what .. ": " .. tostring(err))
  print("refused " .. what .. ": " .. err)
end
local r <close> = pagekite.relay{app_id = "lua-pp", max_conns = 16}
assert(r:add_listener("127.0.0.1", port))
assert(r:add_domain("raw", "*.test", secret))
assert(r:set_raw_ports("virtual"))
assert(r:add_proxy_source("10.0.0.0/8") == true)
refused("bad source", "prefix length 33 is over 32", r:add_proxy_source("10.0.0.0/33"))
assert(r:start())
local c <close> = pagekite.connector{app_id = "lua-pp", max_frontends = 1,
                                     flags = K.PK_WITH_IPV4 | K.PK_WITH_IPV6}
assert(c:add_kite{proto = "raw", name = "pp.test", secret = secret, origin_host = "127.0.0.1",
                  origin_port = oport, public_port = port})
assert(c:add_frontend("127.0.0.1", port))
assert(c:start())
assert(c:set_kite_proxy_protocol("raw", "pp.test", 2) == true)
refused("version 3", "version 3 is not 0", c:set_kite_proxy_protocol("raw", "pp.test", 3))
refused("no kite", "no kite raw:nope", c:set_kite_proxy_protocol("raw", "nope", 1))
local deadline = os.time() + 20
while select(2, c:status()) ~= "flying" and os.time() < deadline do c:poll(1) end
print("flying")
io.read("l")
assert(c:set_kite_proxy_protocol("raw", "pp.test", 0))
print("off")
io.read("l")
assert(c:stop() and r:stop())
print("done")
""" % (port, oport, SECRET)

    def hello():
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                s.sendall(b"CONNECT pp.test:%d HTTP/1.1\r\n\r\n" % port)
                head = b""
                while b"\r\n\r\n" not in head:
                    d = s.recv(1)
                    if not d:
                        break
                    head += d
                if b" 200 " in head:
                    s.sendall(b"hello\n")
                    if s.recv(16) == b"ok\n":
                        return s.getsockname()[1]
            time.sleep(0.2)
        raise AssertionError("raw kite never answered")

    env = dict(os.environ, LUA_CPATH="%s/?.so;;" % LUA_DIR)
    p = Proc([LUA, "-e", code], env=env, stdin=True)
    try:
        p.wait_for(r"^flying$", 25)
        sport = hello()
        assert got[-1] == (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + socket.inet_aton("127.0.0.1") * 2
                           + struct.pack("!HH", sport, port) + b"hello\n"), got[-1:]
        p.p.stdin.write("go\n")
        p.p.stdin.flush()
        p.wait_for(r"^off$", 10)
        hello()
        assert got[-1] == b"hello\n"
        p.p.stdin.write("go\n")
        p.p.stdin.flush()
        p.wait_for(r"^done$", 20)
        assert p.p.wait(10) == 0, p.text()
    finally:
        p.stop()
        srv.close()
    assert "refused no kite: pagekite_set_kite_proxy_protocol: no kite raw:nope" in p.text(), p.text()
