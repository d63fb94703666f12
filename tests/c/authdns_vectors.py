#!/usr/bin/python3
"""Check authdns.c against pagekite.py's own code (not a re-implementation).

pagekite.py (the Debian package, importable by the system python3) is the
authority on --authdomain: its Config.GetDomainQuota picks the DNS suffix
and builds the name, LookupDomainQuota decodes the answer.  Here both run
with socket.gethostbyname_ex replaced by a fake that records the name asked
for and returns a chosen (hostname, aliases, addresses); authdns_tool runs
our functions on the same inputs and the results must agree.

Usage: authdns_vectors.py PATH/TO/authdns_tool
"""
import socket
import subprocess
import sys

TOOL = sys.argv[1] if len(sys.argv) > 1 else './authdns_tool'
FAILURES = []
CHECKS = 0

try:
    from pagekite import pk
except ImportError:
    print('pagekite.py is not importable (Debian package "pagekite"): cannot cross-check')
    sys.exit(1)


def tool(*args):
    out = subprocess.run([TOOL] + [str(a) for a in args], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, check=False)
    return out.returncode, out.stdout.decode().strip()


def check(cond, what):
    global CHECKS
    CHECKS += 1
    if not cond:
        FAILURES.append(what)
        print('FAIL: %s' % what)


ASKED = []
ANSWER = [None]


def fake_gethostbyname_ex(name):
    ASKED.append(name)
    return ANSWER[0]


socket.gethostbyname_ex = fake_gethostbyname_ex


def config(default=None, rules=()):
    c = pk.PageKite()
    c.server_protos = ['http', 'https', 'raw', 'websocket']
    c.server_ports = [80, 8080, pk.VIRTUAL_PN] if hasattr(pk, 'VIRTUAL_PN') else [80, 8080]
    c.server_raw_ports = [22, pk.VIRTUAL_PN] if hasattr(pk, 'VIRTUAL_PN') else [22]
    if default:
        c.auth_domain = default
    for r in rules:
        d, a = r.split(':')
        c.auth_domains[d.lower()] = a
    return c


def py_lookup(c, protoport, name, bsalt, token, sign):
    """The name pagekite.py resolves, or None when it resolves nothing."""
    del ASKED[:]
    ANSWER[0] = ('x', [], ['0.0.4.0'])
    c.GetDomainQuota(protoport, name, bsalt, token, sign, check_token=False)
    return ASKED[0] if ASKED else None


def test_names():
    rules = ('example.com:a.auth.net', 'deep.example.com:b.auth.net', 'Other.ORG:c.auth.net')
    cases = [
        ('http', 'x.example.com'), ('http', 'x.deep.example.com'), ('http', 'example.com'),
        ('http-8080', 'y.example.com'), ('raw-22', 'ssh.example.com'),
        ('https', '*.example.com'), ('http', 'a.other.org'), ('http', 'a.nowhere.org'),
        ('websocket', 'x.notexample.com'),
    ]
    tok = '0123456789abcdef0123456789abcdef0123'
    for default in (None, 'dflt.auth.net'):
        c = config(default, rules)
        for protoport, name in cases:
            want = py_lookup(c, protoport, name, 'salt1234', 't' + tok[1:], tok)
            rc, adom = tool('select', default or '-', name, *rules)
            check(rc == 0, 'select rc %r' % name)
            if adom == '-':
                check(want is None, 'not covered %s/%s, pagekite.py asks %s'
                      % (default, name, want))
                continue
            rc, got = tool('query', 'salt1234', 't' + tok[1:], tok, protoport, name, adom)
            check(rc == 0 and got == want, 'name %s %s: ours %s, pagekite.py %s'
                  % (protoport, name, got, want))


ANSWERS = [
    ('0.0.4.0', None), ('0.1.0.0', None), ('255.255.254.255', None), ('0.0.0.0', None),
    ('0.0.0.1', None), ('255.255.255.0', None), ('255.255.255.1', None),
    ('255.255.255.7', None), ('255.255.255.10', None),
    ('0.1.0.0', 'ok.0.1e.a.x.example'), ('0.1.0.0', 'ok-5-3c.0.1e.a.x'),
    ('255.255.255.1', 'bad-5-3c.0.1e.a.x'), ('255.255.255.1', 'bad-5.0.1e.a.x'),
    ('255.255.255.0', 'gone.0.0.0.x'), ('255.255.255.1', 'expired.0.0.0.x.y.z'),
    ('255.255.255.9', 'quota-a-1-more.1.2.3.x'), ('0.1.0.0', 'ABC.0.FF.Ab.x'),
    ('0.1.0.0', 'ok.0.1e.a'), ('0.1.0.0', 'ok.0.zz.a.x'), ('0.1.0.0', 'ok'),
]


def norm(t):
    quota, days, conns, ipc, ips, error = t
    return '%d %d %d %d %d %s' % (
        0 if quota is None else quota, -1 if days is None else days,
        -1 if conns is None else conns, -1 if ipc is None else ipc,
        -1 if ips is None else ips, error or '-')


def test_answers():
    c = config('auth.net')
    for ip, cname in ANSWERS:
        ANSWER[0] = (cname, ['the.query.'], [ip]) if cname else ('the.query.', [], [ip])
        try:
            want = norm(c.LookupDomainQuota('s', 't', 'g', 'http', 'a.com', 'auth.net'))
        except Exception:
            want = 'ERR'
        rc, got = tool('decode', ip, cname) if cname else tool('decode', ip)
        check(got == want, 'decode %s %s: ours %r, pagekite.py %r' % (ip, cname, got, want))


test_names()
test_answers()
print('%d checks, %d failures' % (CHECKS, len(FAILURES)))
sys.exit(1 if FAILURES or not CHECKS else 0)
