"""Service mode in a box: the connector flies through "pagekite.net" with TLS.

Issue "Connector in the field", items 1 + 2 ("the service in a box").  Every
test runs in a ServiceBox (servicebox.py): own network + mount namespace, a
private /etc/hosts that points the service's relay pool and DDNS names at
loopback, a throwaway CA whose relay certificate carries only the names the
real service presents, a tap in front of the relay that tells TLS tunnels
from plain ones, and a DDNS stand-in answering like up.pagekite.net.

What a connector in service mode must do (pagekite.py 1.5.2 and libpagekite
are the references; the selfcheck tests run pagekite.py, and our connector
with a certificate that also names the pool, in the same box to prove it):

* verify the relay's certificate against the service's names (pagekite.py
  common.py SERVICE_CERTS: frontends.b5p.us, pagekite.net, ...), not against
  the pool name it dialled (fe4_091c.b5p.us).  The test certificate says
  frontends.b5p.us + b5p.us, which every reading accepts;
* for a white-label domain D (pagekite.py --whitelabel=D, pagekitec -w D,
  pagekite_init_whitelabel), accept a certificate for fe.D + D (pagekite.py
  accepts D, libpagekite fe.D: the test certificate carries both);
* refuse any other certificate, saying which names were expected and which
  name was presented;
* say "relay does not speak TLS" when the relay answers a ClientHello with
  plain text or with the access-denied alert PageKite relays send when they
  cannot terminate TLS;
* use TLS with PK_WITH_DEFAULTS through the C API, also when the service is
  set up by hand (pagekite_init + pagekite_add_service_frontends);
* send the DDNS update to up.pagekite.net (dnsup.D) for the relay's address,
  signed like the references do (signToken length 100: 48 characters).

Needs root: unshare --net --mount, a bind mount over /etc/hosts in the new
mount namespace, nsenter.  Nothing is skipped when that is missing: the box
fails to start with a message saying so.
"""

import re
import time

import pytest

import harness
from servicebox import (DDNS_IP, RELAY_INNER_PORT, RELAY_IP, SERVICE_CERTS, SERVICE_PORT, BoxPKI,
                        ServiceBox, header_facts, pkpy_facts, service_hosts, whitelabel_hosts)

pytestmark = [pytest.mark.ours]

SECRET = harness.SECRET
KITE = "demo.pagekite.me"
WL_TLD = "example.org"
WL_KITE = "demo." + WL_TLD
SERVICE_CERT_NAMES = ["frontends.b5p.us", "b5p.us"]
WL_CERT_NAMES = ["fe." + WL_TLD, WL_TLD]
EVIL_NAMES = ["evil.example"]
FLY_TIMEOUT = 25.0


# ---------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return BoxPKI(tmp_path_factory.mktemp("box-pki"))


def make_box(group, tmp_path, hosts):
    box = ServiceBox(tmp_path / "box", hosts, group)
    group.add(box)          # added first: closed last, after what runs inside
    return box.start()


@pytest.fixture
def service_box(group, tmp_path):
    return make_box(group, tmp_path, service_hosts())


@pytest.fixture
def wl_box(group, tmp_path):
    return make_box(group, tmp_path, whitelabel_hosts(WL_TLD))


class Stack:
    pass


def start_stack(box, pki, kite, patterns, cert_label=None, cert_names=None, relay="ours",
                tls_endpoints=()):
    """origin + DDNS stand-in + relay on RELAY_INNER_PORT + tap on 443."""
    s = Stack()
    s.origin = box.origin(kite)
    s.ddns = box.ddns(SECRET, pki)
    s.cert = pki.issue(cert_label, cert_names) if cert_label else None
    if relay == "ours":
        s.relay = box.our_relay(patterns, SECRET, cert=s.cert)
    else:
        s.relay = box.pk_relay(patterns, SECRET,
                               tls_endpoints=[(d, s.cert) for d in tls_endpoints])
    s.tap = box.tap()
    return s


# ---------------------------------------------------------------- reporting

TLS_WORDS = re.compile(r"TLS|SSL|verif|certificate|cert |hostname|handshake|alert", re.I)


def tls_lines(proc, limit=12):
    lines = [ln for ln in proc.output().splitlines() if TLS_WORDS.search(ln)]
    return lines[-limit:]


def tap_summary(stack):
    conns = stack.tap.conns()
    if not conns:
        return "tap: no connection reached the relay port %d" % SERVICE_PORT
    out = []
    for c in conns[-3:]:
        if c.get("kind") == "tls":
            out.append("#%s TLS ClientHello, SNI %r" % (c.get("n", "?"), c.get("sni")))
        else:
            out.append("#%s %s %r" % (c.get("n", "?"), c.get("kind"),
                                      c.get("first_line", c.get("error"))))
    return "tap (connections to %s:%d): %s" % (RELAY_IP, SERVICE_PORT, "; ".join(out))


def explain(conn, stack, what):
    return ("%s\nconnector statuses: %s\nconnector TLS-related lines (last 4):\n  %s\n%s\n"
            "connector: %s; logs in %s"
            % (what, conn.statuses(), "\n  ".join(tls_lines(conn, 4)) or "(none)",
               tap_summary(stack), " ".join(conn.argv[conn.argv.index("--") + 1:]),
               conn.err_path))


def wait_flying(conn, stack, timeout=FLY_TIMEOUT):
    try:
        conn.wait_status("FLYING", timeout)
    except AssertionError:
        raise AssertionError(explain(
            conn, stack, "connector never reached FLYING within %.0f s through the boxed "
                         "service relay (certificate names %s, trusted CA)"
            % (timeout, stack.cert["names"] if stack.cert else None))) from None


def assert_served(box, stack, kite, conn):
    try:
        status, body = box.http(kite, RELAY_INNER_PORT, "/", timeout=15)
    except AssertionError as e:
        raise AssertionError(explain(conn, stack, "FLYING, but the kite is not served: %s"
                                     % e)) from None
    assert "Hello from %s" % kite in body, "wrong page through the relay: %r" % body[:200]


def assert_tunnel_used_tls(stack, conn):
    conns = stack.tap.conns()
    tls = [c for c in conns if c.get("kind") == "tls"]
    plain_tunnels = [c for c in conns if c.get("kind") == "plain" and
                     c.get("first_line", "").upper().startswith("CONNECT PAGEKITE:")]
    assert tls and not plain_tunnels, explain(
        conn, stack, "the tunnel did not use TLS: %d TLS connection(s), %d plain-text tunnel "
                     "request(s) reached the relay" % (len(tls), len(plain_tunnels)))


def assert_ddns_updated(stack, kite, timeout=15.0, strict=True):
    """A DDNS update for kite reached the up.pagekite.net stand-in, for the
    relay's address, signed with the kite secret.  strict: the signature has
    the reference form (signToken length 100: 48 characters, as pagekite.py
    and libpagekite send); otherwise a valid shorter prefix will do."""
    key = "sign_ok" if strict else "sign_truncated_ok"
    deadline = time.monotonic() + timeout
    while True:
        reqs = [r for r in stack.ddns.requests() if r.get("hostname") == kite]
        good = [r for r in reqs if r.get(key) and r.get("myip") == RELAY_IP]
        if good:
            return good
        if time.monotonic() > deadline:
            why = ""
            short = [r for r in reqs if r.get("sign_truncated_ok") and not r.get("sign_ok")]
            if short:
                why = ("; the signature is a valid prefix but only %d characters long: the "
                       "reference clients sign DDNS updates with signToken(length=100), "
                       "8 + 40 = 48 characters" % short[0]["sign_len"])
            raise AssertionError("no valid DDNS update for %s (myip %s, signed with the kite "
                                 "secret) reached the up.pagekite.net stand-in on %s within "
                                 "%.0f s%s; requests seen: %s"
                                 % (kite, RELAY_IP, DDNS_IP, timeout, why,
                                    stack.ddns.requests()))
        time.sleep(0.2)


def never_flies(conn, stack, seconds):
    """Watch for `seconds`: the connector must not reach FLYING."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert "FLYING" not in conn.statuses(), explain(
            conn, stack, "connector FLYING through a relay whose certificate it must refuse")
        assert conn.alive or conn.popen.poll() in (100,), explain(
            conn, stack, "connector exited unexpectedly (rc %s)" % conn.popen.poll())
        time.sleep(0.2)


# ---------------------------------------------------------------- selfchecks of the box

@pytest.mark.selfcheck
def test_box_facts():
    """The names the box maps and the reference list match what is installed."""
    p, h = pkpy_facts(), header_facts()
    assert p["SERVICE_CERTS"] == SERVICE_CERTS, \
        "pagekite.py's SERVICE_CERTS changed: %r" % p["SERVICE_CERTS"]
    assert h["PAGEKITE_NET_FRONTEND_PORT"] == SERVICE_PORT == h["PAGEKITE_NET_WL_FRONTEND_PORT"]
    hosts = service_hosts()
    assert hosts[h["PAGEKITE_NET_V4FRONTENDS"]] == RELAY_IP
    assert hosts["up.pagekite.net"] == DDNS_IP
    assert whitelabel_hosts(WL_TLD)["dnsup." + WL_TLD] == DDNS_IP


@pytest.mark.selfcheck
@pytest.mark.interop
def test_box_pagekite_py_service_flies(service_box, pki):
    """pagekite.py --defaults, verifying against SERVICE_CERTS, flies through
    the boxed service (pagekite.py relay with the same certificate), and its
    DDNS update (TLS + CONNECT to up.pagekite.net) gets `good`."""
    box = service_box
    stack = start_stack(box, pki, KITE, ["*.pagekite.me"], "svc",
                        SERVICE_CERT_NAMES, relay="pk", tls_endpoints=["b5p.us"])
    conn = box.pk_connector(["--defaults", "--ca_certs=%s" % pki.ca],
                            [("http", KITE, stack.origin.port, SECRET)])
    assert_served(box, stack, KITE, conn)
    assert_ddns_updated(stack, KITE)
    # pagekite.py's own way in: plain "CONNECT b5p.us:443", then TLS inside.
    firsts = [c.get("first_line", "") for c in stack.tap.conns()]
    assert any(f.startswith("CONNECT b5p.us:443") for f in firsts), tap_summary(stack)


@pytest.mark.selfcheck
@pytest.mark.interop
def test_box_pagekite_py_whitelabel_flies(wl_box, pki):
    """pagekite.py --whitelabel=example.org flies with a fe.example.org /
    example.org certificate through the box."""
    box = wl_box
    stack = start_stack(box, pki, WL_KITE, ["*." + WL_TLD], "wl", WL_CERT_NAMES, relay="pk",
                        tls_endpoints=["fe." + WL_TLD])
    conn = box.pk_connector(["--whitelabel=%s" % WL_TLD, "--ca_certs=%s" % pki.ca],
                            [("http", WL_KITE, stack.origin.port, SECRET)])
    assert_served(box, stack, WL_KITE, conn)
    assert_ddns_updated(stack, WL_KITE)


@pytest.mark.selfcheck
@pytest.mark.interop
def test_box_pagekite_py_refuses_other_cert(service_box, pki):
    """The reference refuses an evil.example certificate in the same box."""
    box = service_box
    stack = start_stack(box, pki, KITE, ["*.pagekite.me"], "evil",
                        EVIL_NAMES, relay="pk", tls_endpoints=["b5p.us"])
    conn = box.pk_connector(["--defaults", "--ca_certs=%s" % pki.ca],
                            [("http", KITE, stack.origin.port, SECRET)])
    conn.wait_for(r"Cert not in|Would accept a certificate", 20, what="a certificate refusal")
    with pytest.raises(AssertionError):
        box.http(KITE, RELAY_INNER_PORT, "/", timeout=3)



@pytest.mark.selfcheck
@pytest.mark.parametrize("how", ["cli", "library"])
def test_box_ours_flies_when_cert_also_names_the_pool(service_box, pki, how):
    """The box carries our connector end to end (served kite, TLS seen by the
    tap, DDNS update accepted) when the relay certificate also names the pool
    our connector dials today.  Passes before and after the fix; if it fails,
    the box is broken, not the connector."""
    import pkctypes as pk
    box = service_box
    pool = header_facts()["PAGEKITE_NET_V4FRONTENDS"]
    stack = start_stack(box, pki, KITE, ["*.pagekite.me"], "svc+pool",
                        [pool] + SERVICE_CERT_NAMES)
    if how == "cli":
        conn = box.pagekitec(["--ca-file", pki.ca],
                             [("http", KITE, stack.origin.port, 0, SECRET)])
    else:
        conn = box.lib_connector("service", pki.ca, ("http", KITE, stack.origin.port, SECRET),
                                 flags=pk.PK_WITH_DEFAULTS)
    wait_flying(conn, stack)
    assert_served(box, stack, KITE, conn)
    assert_tunnel_used_tls(stack, conn)
    assert_ddns_updated(stack, KITE, strict=False)


# ---------------------------------------------------------------- (a) CLI, service mode

def test_a_pagekitec_service_mode_flies_over_verified_tls(service_box, pki):
    """pagekitec with no relay option (= the pagekite.net service), trusting
    the box CA, flies through a relay whose certificate says
    frontends.b5p.us / b5p.us; the tunnel is TLS; DDNS goes to the stand-in."""
    box = service_box
    stack = start_stack(box, pki, KITE, ["*.pagekite.me"], "svc", SERVICE_CERT_NAMES)
    conn = box.pagekitec(["--ca-file", pki.ca], [("http", KITE, stack.origin.port, 0, SECRET)])
    wait_flying(conn, stack)
    assert_served(box, stack, KITE, conn)
    assert_tunnel_used_tls(stack, conn)
    assert_ddns_updated(stack, KITE)


# ---------------------------------------------------------------- (b) C API, service mode

def test_b_library_pagekitenet_defaults_flies_over_verified_tls(service_box, pki):
    """pagekite_init_pagekitenet(..., PK_WITH_DEFAULTS, ...) +
    pagekite_set_tls_verify(PEER, box CA): flies over TLS through the boxed
    service relay."""
    import pkctypes as pk
    box = service_box
    stack = start_stack(box, pki, KITE, ["*.pagekite.me"], "svc", SERVICE_CERT_NAMES)
    conn = box.lib_connector("service", pki.ca, ("http", KITE, stack.origin.port, SECRET),
                             flags=pk.PK_WITH_DEFAULTS)
    wait_flying(conn, stack)
    assert_served(box, stack, KITE, conn)
    assert_tunnel_used_tls(stack, conn)
    assert_ddns_updated(stack, KITE)


def test_b2_library_init_defaults_with_service_frontends_uses_tls(service_box, pki):
    """pagekite_init(..., PAGEKITE_NET_DDNS, PK_WITH_DEFAULTS, ...) +
    pagekite_add_service_frontends(mgr, PK_WITH_DEFAULTS): the service set up
    by hand.  PK_WITH_DEFAULTS is "the recommended settings" and includes TLS
    (libpagekite's PK_DEFAULT_FLAGS = PK_WITH_SSL | IPV4 | IPV6 |
    DYNAMIC_FE_LIST | ...), so the tunnel must be TLS, verified against the
    service names."""
    import pkctypes as pk
    box = service_box
    stack = start_stack(box, pki, KITE, ["*.pagekite.me"], "svc", SERVICE_CERT_NAMES)
    conn = box.lib_connector("init", pki.ca, ("http", KITE, stack.origin.port, SECRET),
                             flags=pk.PK_WITH_DEFAULTS)
    deadline = time.monotonic() + FLY_TIMEOUT
    while not stack.tap.conns() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    assert_tunnel_used_tls(stack, conn)
    wait_flying(conn, stack)
    assert_served(box, stack, KITE, conn)
    assert_ddns_updated(stack, KITE)


# ---------------------------------------------------------------- (c) wrong certificate

@pytest.mark.parametrize("how", ["cli", "library"])
def test_c_other_certificate_refused_naming_expected_and_presented(service_box, pki, how):
    """A trusted certificate for evil.example is refused, and the error says
    which names were expected (the service's) and which was presented."""
    box = service_box
    stack = start_stack(box, pki, KITE, ["*.pagekite.me"], "evil", EVIL_NAMES)
    if how == "cli":
        conn = box.pagekitec(["--ca-file", pki.ca],
                             [("http", KITE, stack.origin.port, 0, SECRET)])
    else:
        conn = box.lib_connector("service", pki.ca, ("http", KITE, stack.origin.port, SECRET))
    # It must have tried: a TLS ClientHello reached the relay.
    deadline = time.monotonic() + 15
    while not any(c.get("kind") == "tls" for c in stack.tap.conns()):
        assert time.monotonic() < deadline, explain(conn, stack, "no TLS connection attempt")
        time.sleep(0.2)
    never_flies(conn, stack, 6.0)
    text = conn.output()
    lines = [ln for ln in text.splitlines()
             if "evil.example" in ln and "frontends.b5p.us" in ln]
    assert lines, explain(
        conn, stack, "the refusal does not name both the presented certificate name "
                     "(evil.example) and the expected service names (frontends.b5p.us, ...) "
                     "on one log line")


# ---------------------------------------------------------------- (d) white label

@pytest.mark.parametrize("how", ["cli", "library"])
def test_d_whitelabel_flies_with_fe_domain_certificate(wl_box, pki, how):
    """White label example.org (pagekitec -w example.org /
    pagekite_init_whitelabel(..., "example.org")): a relay certificate for
    fe.example.org / example.org is accepted, like pagekite.py
    --whitelabel=example.org accepts it (selfcheck above)."""
    import pkctypes as pk
    box = wl_box
    stack = start_stack(box, pki, WL_KITE, ["*." + WL_TLD], "wl", WL_CERT_NAMES)
    if how == "cli":
        conn = box.pagekitec(["-w", WL_TLD, "--ca-file", pki.ca],
                             [("http", WL_KITE, stack.origin.port, 0, SECRET)])
    else:
        conn = box.lib_connector("whitelabel", pki.ca, ("http", WL_KITE, stack.origin.port,
                                                        SECRET),
                                 tld=WL_TLD, flags=pk.PK_WITH_DEFAULTS)
    wait_flying(conn, stack)
    assert_served(box, stack, WL_KITE, conn)
    assert_tunnel_used_tls(stack, conn)
    assert_ddns_updated(stack, WL_KITE)


# ---------------------------------------------------------------- (e) plain-text relay

@pytest.mark.parametrize("relay", ["pagekiter", "plain-http"])
def test_e_tls_to_plain_relay_says_relay_does_not_speak_tls(service_box, pki, relay):
    """Service mode (TLS on) against a relay without TLS.  pagekiter without
    --tls-cert answers the ClientHello with a TLS access-denied alert (as
    pagekite.py's TLS_Unavailable() does); a plain HTTP server answers with
    text.  Either way the connector must log "relay does not speak TLS".
    (pagekite.py 1.5.2 as the plain relay is left out: on Python 3 it dies on
    a ClientHello it cannot route - TypeError in TLS_Unavailable/Send.)"""
    box = service_box
    s = Stack()
    s.cert = None
    s.origin = box.origin(KITE)
    s.ddns = box.ddns(SECRET)
    if relay == "plain-http":
        s.relay = box.plain_responder(RELAY_IP, SERVICE_PORT)
        s.tap = s.relay
    else:
        s.relay = box.our_relay(["*.pagekite.me"], SECRET)
        s.tap = box.tap()
    conn = box.pagekitec(["--ca-file", pki.ca], [("http", KITE, s.origin.port, 0, SECRET)])
    deadline = time.monotonic() + 15
    while not any(c.get("kind") == "tls" for c in s.tap.conns()):
        assert time.monotonic() < deadline, explain(conn, s, "no TLS ClientHello reached "
                                                             "the relay")
        time.sleep(0.2)
    try:
        conn.wait_for(r"(?i)relay does not speak TLS", 10,
                      what='"relay does not speak TLS"')
    except AssertionError:
        raise AssertionError(explain(
            conn, s, 'TLS to a plain-text relay (%s): no log line says "relay does not speak '
                     'TLS"' % relay)) from None
    assert "FLYING" not in conn.statuses()


# ---------------------------------------------------------------- (f) PK_WITH_DYNAMIC_FE_LIST

@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic", "static"])
def test_f_relay_name_resolving_later_is_used_only_with_dynamic_fe_list(group, tmp_path, pki,
                                                                        dynamic):
    """The service's relay name resolves to nothing when the connector
    starts, and to the boxed relay a few seconds later.  With
    PK_WITH_DYNAMIC_FE_LIST the name is kept and resolved again, so the kite
    flies; without it the name is dropped (libpagekite: add_null_records =
    flags & PK_WITH_DYNAMIC_FE_LIST) and no tunnel is ever attempted."""
    import pkctypes as pk
    pool = header_facts()["PAGEKITE_NET_V4FRONTENDS"]
    hosts = service_hosts()
    del hosts[pool]
    box = make_box(group, tmp_path, hosts)
    stack = start_stack(box, pki, KITE, ["*.pagekite.me"], "svc", SERVICE_CERT_NAMES)
    flags = pk.PK_WITH_SSL | pk.PK_WITH_IPV4 | (pk.PK_WITH_DYNAMIC_FE_LIST if dynamic else 0)
    conn = box.lib_connector("service", pki.ca, ("http", KITE, stack.origin.port, SECRET),
                             flags=flags)
    conn.wait_for(r"cannot resolve %s" % re.escape(pool), 15,
                  what="the first lookup of %s failing" % pool)
    never_flies(conn, stack, 2.0)
    box.map_name(pool, RELAY_IP)
    if dynamic:
        wait_flying(conn, stack)
        assert_served(box, stack, KITE, conn)
        assert_tunnel_used_tls(stack, conn)
    else:
        never_flies(conn, stack, 8.0)
        assert not stack.tap.conns(), explain(
            conn, stack, "without PK_WITH_DYNAMIC_FE_LIST the dropped relay name was dialled")


# ---------------------------------------------------------------- (g) PK_WITH_FRONTEND_SNI

def wl_connector(box, pki, stack, flags):
    return box.lib_connector("whitelabel", pki.ca, ("http", WL_KITE, stack.origin.port, SECRET),
                             tld=WL_TLD, flags=flags)


def tls_snis(stack, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snis = [c.get("sni") for c in stack.tap.conns() if c.get("kind") == "tls"]
        if snis:
            return snis
        time.sleep(0.2)
    return []


def test_g_whitelabel_accepts_service_certificate_without_frontend_sni(wl_box, pki):
    """Default white label (no PK_WITH_FRONTEND_SNI): the relay presents the
    service's certificate (frontends.b5p.us), which libpagekite accepts for a
    white label ("lets whitelabels use SSL even if they haven't got a cert on
    the pagekite.net relays"); SNI is the relay name dialled."""
    import pkctypes as pk
    stack = start_stack(wl_box, pki, WL_KITE, ["*." + WL_TLD], "svc", SERVICE_CERT_NAMES)
    conn = wl_connector(wl_box, pki, stack, pk.PK_WITH_DEFAULTS)
    wait_flying(conn, stack)
    assert_served(wl_box, stack, WL_KITE, conn)
    dialled = header_facts()["PAGEKITE_NET_WL_V4FRONTENDS"] % WL_TLD
    assert set(tls_snis(stack)) == {dialled}, explain(conn, stack, "SNI is not the dialled name")


def test_g_frontend_sni_refuses_service_certificate(wl_box, pki):
    """PK_WITH_FRONTEND_SNI: only the white label's own certificate will do;
    the service's is refused, and the ClientHello asked for fe.<domain>."""
    import pkctypes as pk
    stack = start_stack(wl_box, pki, WL_KITE, ["*." + WL_TLD], "svc", SERVICE_CERT_NAMES)
    conn = wl_connector(wl_box, pki, stack, pk.PK_WITH_DEFAULTS | pk.PK_WITH_FRONTEND_SNI)
    snis = tls_snis(stack)
    assert snis and set(snis) == {"fe." + WL_TLD}, explain(conn, stack, "SNI %r" % snis)
    never_flies(conn, stack, 6.0)
    lines = [ln for ln in conn.output().splitlines()
             if "frontends.b5p.us" in ln and "fe." + WL_TLD in ln]
    assert lines, explain(conn, stack, "no log line names the presented certificate "
                                       "(frontends.b5p.us) and the expected fe.%s" % WL_TLD)
    assert not any("pagekite.net" in ln.split("expected", 1)[-1] for ln in lines), lines


def test_g_frontend_sni_flies_with_own_certificate(wl_box, pki):
    """PK_WITH_FRONTEND_SNI with the white label's own certificate: flies, and
    every TLS ClientHello asked for fe.<domain>."""
    import pkctypes as pk
    stack = start_stack(wl_box, pki, WL_KITE, ["*." + WL_TLD], "wl", WL_CERT_NAMES)
    conn = wl_connector(wl_box, pki, stack, pk.PK_WITH_DEFAULTS | pk.PK_WITH_FRONTEND_SNI)
    wait_flying(conn, stack)
    assert_served(wl_box, stack, WL_KITE, conn)
    assert set(tls_snis(stack)) == {"fe." + WL_TLD}, explain(conn, stack, "SNI is not fe.D")
