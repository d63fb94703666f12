"""The fleet test (issue 18): three relays behind one DNS pool name, a real
PowerDNS server answering the relays' zero-knowledge auth lookups from a
customer table (contrib/fleet/pagekite-zk-auth-pipe) and taking the
connectors' DDNS updates (contrib/fleet/pagekite-ddns-endpoint, RFC 2136),
connectors and a client, each in its own network namespace.

Run alone (root; not part of the default run):  tests/fleet/run.sh
Each relay kind gets one fleet (module-scoped per kind); the tests of a
kind run in order, the later ones on what the earlier ones left (a killed
relay, a stopped DNS server).  doc/FLEET.md explains the design.
"""

import os
import re
import signal
import time

import pytest

import fleet as F

pytestmark = pytest.mark.timeout(240)

MISSING = F.missing_tools()
if os.geteuid() != 0 or MISSING:
    pytest.skip("the fleet test needs root and: %s (tests/fleet/run.sh installs them)"
                % (", ".join(MISSING) or "root"), allow_module_level=True)

KINDS = [pytest.param("pkpy", id="pkpy"), pytest.param("pagekiter", id="pagekiter")]
N_CONN = 4  # c1..c4 customers; c5 is the late one
CUSTOMERS = [("k%d.%s" % (k + 1, F.USERS), "s3cret-k%d-%s" % (k + 1, "x" * 8))
             for k in range(N_CONN)]
SPARE = ("spare.%s" % F.USERS, "s3cret-spare-kite")
FAILOVER_BOUND_S = 30  # asserted; the goal (5 s) is reported, see doc/FLEET.md
RESULTS = {}


def _term(signum, frame):
    raise KeyboardInterrupt("SIGTERM")  # unwinds through the fixture's finally


@pytest.fixture(scope="module", params=KINDS)
def fleet(request, tmp_path_factory):
    kind = request.param
    old_term = signal.signal(signal.SIGTERM, _term)
    f = F.Fleet(tmp_path_factory.mktemp("fleet-" + kind), kind, n_connectors=N_CONN + 1)
    try:
        for name, secret in CUSTOMERS + [SPARE]:
            f.add_customer(name, secret)
        f.build_network()
        f.start_dns()
        f.start_ddns()
        for i in range(3):
            # Relay 3 fails closed when the auth lookups fail; 1 and 2 open.
            f.start_relay(i, fail_closed=(i == 2))
        f.conns = {}
        yield f
    finally:
        if request.node.session.testsfailed and os.environ.get("PK_FLEET_VERBOSE"):
            print(f.logs())
        f.close()
        signal.signal(signal.SIGTERM, old_term)
        leftover = F.run(["ip", "netns", "list"]).stdout
        assert f.prefix not in leftover, leftover


def relay_of(f, kite):
    """The relay the DNS points the kite at (its DDNS record)."""
    return f.dig(kite)


def test_connectors_spread_over_the_pool_by_ping(fleet):
    """Connectors given only the pool name choose their nearest relay by
    ping (each is near a different one), fly, and publish it by DDNS."""
    f = fleet
    assert f.dig(F.POOL) == sorted(F.RELAY_IPS)
    for k, (name, secret) in enumerate(CUSTOMERS):
        f.conns[name] = f.start_connector(k, name, secret)
    deadline = time.monotonic() + 40
    chosen = {}
    while time.monotonic() < deadline and len(chosen) < N_CONN:
        for k, (name, _) in enumerate(CUSTOMERS):
            if name not in chosen and f.dig(name) == [F.RELAY_IPS[k % 3]] and \
                    (f.fetch(name) or "").strip() == "kite " + name:
                chosen[name] = F.RELAY_IPS[k % 3]
        time.sleep(0.3)
    assert len(chosen) == N_CONN, "DNS: %s\n%s" % (
        {n: f.dig(n) for n, _ in CUSTOMERS}, f.logs())
    assert len(set(chosen.values())) == 3  # spread over all three relays
    # A forged update (no secret) is refused and changes nothing.
    name = CUSTOMERS[0][0]
    r = f.sh("client", ["curl", "-s", "-m", "5", "http://%s:%d/?hostname=%s&myip=%s&sign=%s" % (
        F.DNS_IP, F.DDNS_PORT, name, F.CLIENT_IP, "0" * 48)])
    assert r.stdout.strip() == "badauth", r.stdout
    assert f.dig(name) == [chosen[name]]
    for name, _ in CUSTOMERS:  # pagekitec's ping verdicts in its log
        assert f.conns[name].alive


def test_a_spare_relay_carries_the_kite_too(fleet):
    """-n 1: the kite flies on its near relay and on a spare, and each of
    them answers for it."""
    f = fleet
    p = f.start_connector(N_CONN, SPARE[0], SPARE[1], spares=1)
    try:
        near = F.RELAY_IPS[N_CONN % 3]
        assert f.wait_fetch(SPARE[0], 20, via=near), f.logs()
        deadline = time.monotonic() + 20
        others = []
        while time.monotonic() < deadline and not others:
            others = [ip for ip in F.RELAY_IPS if ip != near and f.answers(SPARE[0], via=ip)]
            time.sleep(0.3)
        assert len(others) == 1, (others, p.output()[-3000:])
    finally:
        p.kill()


@pytest.mark.needs_authdomain
def test_new_customer_flies_on_any_relay_without_restart(fleet):
    f = fleet
    name, secret = "late.%s" % F.USERS, "s3cret-late-customer"
    # Not a customer yet: every relay refuses it.
    p = f.start_connector(N_CONN, name, secret, frontend=F.RELAY_IPS[0])
    assert p_wait(p, r"(?i)reject|refused|denied|unauthori[sz]ed|sign", 20), p.output()[-2000:]
    assert not f.answers(name, via=F.RELAY_IPS[0])
    p.kill()
    f.add_customer(name, secret)  # one new line; no relay restarted or reconfigured
    for i, ip in enumerate(F.RELAY_IPS):
        p = f.start_connector(N_CONN, name, secret, frontend=ip)
        assert f.wait_fetch(name, 20, via=ip), "relay %d:\n%s" % (i + 1, f.logs())
        p.kill()
    for i in range(3):
        assert all(x.alive for x in f.relays[i]), "a relay restarted"


def p_wait(p, pattern, timeout):
    deadline = time.monotonic() + timeout
    rx = re.compile(pattern, re.M)
    while time.monotonic() < deadline:
        if rx.search(p.output()):
            return True
        if not p.alive:
            return bool(rx.search(p.output()))
        time.sleep(0.2)
    return False


def test_killing_a_relay_moves_its_kites(fleet):
    """Kill relay 1: its connectors move to the others, DDNS points their
    names there, and the kites answer by name again within N seconds."""
    f = fleet
    moved = [name for k, (name, _) in enumerate(CUSTOMERS) if k % 3 == 0]
    stayed = [name for k, (name, _) in enumerate(CUSTOMERS) if k % 3 != 0]
    for name, _ in CUSTOMERS:
        assert f.wait_fetch(name, 20), "%s does not fly before the kill\n%s" % (name, f.logs())
    t0 = time.monotonic()
    f.kill_relay(0)
    back = {}
    deadline = t0 + FAILOVER_BOUND_S
    while time.monotonic() < deadline and len(back) < len(moved):
        for name in moved:
            if name in back:
                continue
            ips = f.dig(name)
            if ips and F.RELAY_IPS[0] not in ips and \
                    (f.fetch(name, timeout=3) or "").strip() == "kite " + name:
                back[name] = time.monotonic() - t0
        time.sleep(0.1)
    n = max(back.values()) if len(back) == len(moved) else None
    RESULTS[(f.kind, "failover_s")] = n
    print("\nFLEET %s: failover N = %s s (kites %s)" % (
        f.kind, "%.2f" % n if n is not None else "> %d" % FAILOVER_BOUND_S, back))
    assert n is not None, "not back in %d s: %s\n%s" % (FAILOVER_BOUND_S, back, f.logs())
    for name in stayed:  # the others never noticed
        assert (f.fetch(name) or "").strip() == "kite " + name


STAY_S = 35  # longer than the connector's 30 s penalty on a relay that failed


def test_moved_kites_stay_on_a_live_relay(fleet):
    """After the failover the moved kites stay where they are: the
    connector must not 'migrate' back to the dead relay on the ping it
    measured before the relay died (it did, every 30 s, each time a
    short outage)."""
    f = fleet
    moved = [(k, name) for k, (name, _) in enumerate(CUSTOMERS) if k % 3 == 0]
    marks = {name: len(f.conns[name].output()) for _, name in moved}
    deadline = time.monotonic() + STAY_S
    misses = []
    while time.monotonic() < deadline:
        for _, name in moved:
            if not f.answers(name):
                misses.append((round(STAY_S - (deadline - time.monotonic()), 1), name))
        time.sleep(0.5)
    for _, name in moved:
        later = f.conns[name].output()[marks[name]:]
        assert "Migrating" not in later, later[-2000:]
        assert F.RELAY_IPS[0] not in f.dig(name)
    assert not misses, misses


@pytest.mark.needs_authdomain
def test_auth_server_down_fail_open_and_closed(fleet):
    f = fleet
    name, secret = "walkin.%s" % F.USERS, "s3cret-walkin"
    f.add_customer(name, secret)
    f.stop_dns()
    assert f.dig(F.POOL) == []  # the DNS server is down
    # Flying kites keep flying (reached by address: names do not resolve now).
    for k, (kite, _) in enumerate(CUSTOMERS):
        if k % 3 != 0:
            assert f.wait_fetch(kite, 5, via=F.RELAY_IPS[k % 3]), f.logs()
    # A new kite: relay 2 fails open (flies), relay 3 fails closed (refused).
    p = f.start_connector(N_CONN, name, secret, frontend=F.RELAY_IPS[1])
    assert f.wait_fetch(name, 25, via=F.RELAY_IPS[1]), f.logs()
    p.kill()
    p = f.start_connector(N_CONN, name, secret, frontend=F.RELAY_IPS[2])
    assert p_wait(p, r"(?i)reject|refused|denied|unauthori[sz]ed", 25), p.output()[-2000:]
    assert not f.answers(name, via=F.RELAY_IPS[2])
    p.kill()
