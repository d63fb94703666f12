"""Which kite a relay routes a request to: exact names, wildcards, port-
specific kites and the "unknown" catch-all, with pagekite.py's precedence
(issue 15).  The same requests go through our relay and through pagekite.py's
own relay, with the same connectors (ours) behind them, and must reach the
same origins.

The kites (each origin's page names it):

    connector 1: http  exact.example.test       -> origin "exact"
                 http  exact.port.example.test  -> origin "exactport"
                 http  unknown                  -> origin "unknown"
    connector 2: http  *.example.test           -> origin "wild"
    connector 3: http-PORT *.port.example.test  -> origin "portwild"
                 (PORT: the relay's port, so it is a port-specific kite)

pagekite.py's relay refuses an exact kite as a duplicate when a wildcard
that covers it is already live (its duplicate check, pk.py AuthThread, looks
the name up with Tunnel(), wildcards included), though not the other way
round; ours only refuses the same (proto, port, name).  So connector 1 flies
first here, which both relays accept.
"""

import http.client
import re
import time

import pytest

from harness import SECRET, Group, Kite, OurRelay, PkRelay, http_request

pytestmark = [pytest.mark.interop, pytest.mark.ours]

UNKNOWN_DOMAIN = "unknown:%s" % SECRET


class RoutingPkRelay(PkRelay):
    """pagekite.py's relay, also taking a kite named "unknown"."""

    def argv(self):
        return super().argv() + ["--domain=http,https,raw:%s" % UNKNOWN_DOMAIN]


def start_relay(group, kind):
    if kind == "pkpy":
        return group.add(RoutingPkRelay(group.logdir)).start()
    extra = ["--domain=http,https,raw,websocket:%s" % UNKNOWN_DOMAIN]
    return group.add(OurRelay(group.logdir, extra_args=extra)).start()


def fly(group, relay, kites):
    """Start our connector with kites and wait until the relay took them all."""
    conn = group.our_connector(relay, kites)
    for k in kites:
        conn.proc.wait_for(r"Kite %s:%s is flying" % (k.proto, re.escape(k.name)), timeout=30,
                           what="kite %s:%s flying" % (k.proto, k.name))
    return conn


@pytest.fixture(scope="module", params=["ours", "pkpy"])
def stack(request, tmp_path_factory):
    group = Group(tmp_path_factory.mktemp("routing-" + request.param))
    try:
        origins = {name: group.origin(kite=name).port
                   for name in ("exact", "exactport", "unknown", "wild", "portwild")}
        relay = start_relay(group, request.param)
        fly(group, relay, [Kite("http", "exact.example.test", origins["exact"]),
                           Kite("http", "exact.port.example.test", origins["exactport"]),
                           Kite("http", "unknown", origins["unknown"])])
        fly(group, relay, [Kite("http", "*.example.test", origins["wild"])])
        fly(group, relay, [Kite("http", "*.port.example.test", origins["portwild"],
                                pport=relay.port)])
        yield relay
    finally:
        group.close()


def served_by(port, host, headers=None, timeout=5.0):
    """GET / with Host: host; the origin that answered, or what came instead."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, _h, body = http_request(port, host, headers=headers, timeout=5.0)
            m = re.search(rb"Hello from ([a-z]+)", body)
            got = m.group(1).decode() if status == 200 and m else "HTTP %d" % status
        except (OSError, http.client.HTTPException) as e:
            got = "%s: %s" % (type(e).__name__, e)
        # A routing answer is final; only refusals are retried, in case a
        # registration lags the connector's "flying" line by a moment.
        if not got.startswith("HTTP") or time.monotonic() > deadline:
            return got
        time.sleep(0.2)


CASES = [
    # (Host, origin): the exact name beats the wildcard that covers it
    ("exact.example.test", "exact"),
    ("EXACT.Example.TEST", "exact"),  # names are case-insensitive
    # a wildcard covers one or more labels
    ("foo.example.test", "wild"),
    ("a.b.example.test", "wild"),
    ("x.port.example.test", "portwild"),
    # a port-specific kite, even a wildcard, beats any port-less one
    ("exact.port.example.test", "portwild"),
    # nothing else matches: the catch-all.  "*.example.test" does not cover
    # example.test itself, and pagekite.py never tries a one-label wildcard.
    ("other.test", "unknown"),
    ("example.test", "unknown"),
    ("localhost", "unknown"),
]


@pytest.mark.parametrize("host,origin", CASES, ids=[c[0] for c in CASES])
def test_route(stack, host, origin):
    assert served_by(stack.port, host) == origin


def test_websocket_falls_back_to_http_wildcard(stack):
    """An Upgrade: websocket request goes to the http kite when there is no
    websocket kite (pagekite.py's relay here serves no websocket proto, so
    it reads it as http anyway; ours tries websocket, then http)."""
    hdrs = {"Upgrade": "websocket", "Connection": "Upgrade"}
    assert served_by(stack.port, "ws.example.test", headers=hdrs) == "wild"


@pytest.mark.parametrize("kind", ["ours", "pkpy"])
def test_exact_kite_under_a_live_wildcard(group, kind):
    """Where the relays differ (doc/CLI.md): with *.example.test live,
    pagekite.py refuses exact.example.test as a duplicate (its duplicate
    check looks the name up with wildcards); ours takes it, and it wins."""
    wild = group.origin(kite="wild")
    exact = group.origin(kite="exact")
    relay = start_relay(group, kind)
    fly(group, relay, [Kite("http", "*.example.test", wild.port)])
    conn = group.our_connector(relay, [Kite("http", "exact.example.test", exact.port)])
    if kind == "pkpy":
        conn.proc.wait_for(r"rejected by relay: duplicate", timeout=30, where="err")
        assert served_by(relay.port, "exact.example.test") == "wild"
    else:
        conn.proc.wait_for(r"Kite http:exact\.example\.test is flying", timeout=30)
        assert served_by(relay.port, "exact.example.test") == "exact"
