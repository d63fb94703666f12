#!/usr/bin/env python3
"""Check sign.c against an independent hashlib implementation.

The expected values are computed here from the definition of pagekite.py's
signToken()/checkSignature() (proto/proto.py), re-implemented with hashlib,
not by importing pagekite:

  signToken(token, secret, payload, timestamp):
    timestamp falsy:  token[0:8] + sha1hex(secret + payload + token[0:8])[0:28]
    otherwise:        tok = 't' + token[1:]
                      tok[0:8] + sha1hex(secret + payload + '%x' % int(timestamp/600)
                                         + tok[0:8])[0:28]
  checkSignature(sign, secret, payload):
    't' signatures are re-signed for the windows of now and now-600,
    anything else with its own 8-character prefix.

Usage: sign_vectors.py PATH/TO/sign_tool
"""
import hashlib
import re
import subprocess
import sys

TOOL = sys.argv[1] if len(sys.argv) > 1 else './sign_tool'
FAILURES = []
CHECKS = 0


def sha1hex(s):
    return hashlib.sha1(s.encode('utf-8')).hexdigest()


def window(ts):
    # int(timestamp/600) truncates toward zero; avoid float rounding.
    q = abs(ts) // 600
    return '%x' % (q if ts >= 0 else -q)


def py_sign(secret, payload, token, timestamp=0):
    if timestamp:
        tok = 't' + token[1:]
        return tok[0:8] + sha1hex(secret + payload + window(timestamp) + tok[0:8])[0:28]
    return token[0:8] + sha1hex(secret + payload + token[0:8])[0:28]


def py_check(sign, secret, payload, now):
    if not sign:
        return False
    if sign[0] == 't':
        return any(sign == py_sign(secret, payload, sign, now - w * 600) for w in (0, 1))
    return sign == py_sign(secret, payload, sign)


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


def c_sign(secret, payload, token, ts=0):
    rc, out = tool('sign', secret, payload, token if token is not None else '-', ts)
    check(rc == 0, 'sign rc for %r' % ((secret, payload, token, ts),))
    return out


def c_check(sign, secret, payload, now):
    rc, out = tool('check', sign, secret, payload, now)
    check(rc == 0 and out in ('0', '1'), 'check output %r' % out)
    return out == '1'


def test_sha1():
    for parts in ([], ['abc'], ['a', 'b', 'c'], ['', 'x', ''], ['secret', 'payload', 'abcdef12'],
                  ['The quick brown fox ', 'jumps over the lazy dog']):
        rc, out = tool('sha1', *parts)
        check(rc == 0 and out == sha1hex(''.join(parts)), 'sha1 %r -> %s' % (parts, out))
    # Known answer, independent of hashlib too.
    rc, out = tool('sha1', 'abc')
    check(out == 'a9993e364706816aba3e25717850c26c9cd0d89d', 'sha1(abc) known answer')


PLAIN = [
    ('s3cr3t', 'foo.example.com', 'abcdef0123456789'),
    ('s3cr3t', 'http:foo.example.com:abcdef01:', '0123456789abcdef0123456789abcdef0123'),
    ('another secret', '', '12345678'),
    ('x', 'a payload with spaces and : colons', 'deadbeefcafebabe'),
    ('', 'empty-secret', '00000000'),
]

TIMESTAMPS = [1, 599, 600, 601, 1199, 1200, 1234567, 1700000000, 1700000599, 4102444800]


def test_plain_tokens():
    for secret, payload, token in PLAIN:
        got = c_sign(secret, payload, token)
        want = py_sign(secret, payload, token)
        check(got == want, 'plain sign %r: %s != %s' % ((secret, payload, token), got, want))
        check(len(got) == 36, 'plain sign length')
        check(got[:8] == token[:8], 'plain sign keeps token prefix')


def test_timestamped_tokens():
    for secret, payload, token in PLAIN:
        for ts in TIMESTAMPS:
            got = c_sign(secret, payload, token, ts)
            want = py_sign(secret, payload, token, ts)
            check(got == want, 'ts sign %r@%d: %s != %s' % ((secret, payload, token), ts, got, want))
            check(got.startswith('t' + token[1:8]), 'ts sign prefix %s' % got)
    # 1700000400 starts window 0x2b3bb6; 1700001000 starts the next one.
    a = c_sign('k', 'p', 'abcdef01', 1700000400)
    b = c_sign('k', 'p', 'abcdef01', 1700000999)
    c = c_sign('k', 'p', 'abcdef01', 1700001000)
    check(a == b, 'same 600 s window gives same signature')
    check(a != c, 'next window gives a different signature')


def test_check_windows():
    now = 1700000123
    secret, payload, token = 's3cr3t', 'http:foo.example.com:abcdef01:', 'abcdef0123456789'
    at_now = c_sign(secret, payload, token, now)
    at_prev = c_sign(secret, payload, token, now - 600)
    at_old = c_sign(secret, payload, token, now - 1200)
    at_next = c_sign(secret, payload, token, now + 600)
    check(c_check(at_now, secret, payload, now), 'window now accepted')
    check(c_check(at_prev, secret, payload, now), 'window now-600 accepted')
    check(not c_check(at_old, secret, payload, now), 'window now-1200 rejected')
    check(not c_check(at_next, secret, payload, now), 'future window rejected')
    check(not c_check(at_now, 'wrong', payload, now), 'wrong secret rejected')
    check(not c_check(at_now, secret, payload + 'x', now), 'wrong payload rejected')
    # Every offset agrees with the reference definition.
    for off in range(-1900, 700, 37):
        sig = c_sign(secret, payload, token, now + off)
        want = py_check(sig, secret, payload, now)
        check(c_check(sig, secret, payload, now) == want,
              'check at offset %d expected %s' % (off, want))


def test_check_plain_and_tampering():
    secret, payload = 's3cr3t', 'foo.example.com'
    sig = c_sign(secret, payload, 'abcdef0123456789')
    check(c_check(sig, secret, payload, 1700000000), 'plain signature accepted')
    check(c_check(sig, secret, payload, 0), 'plain signature ignores time')
    check(not c_check(sig, secret + '!', payload, 1700000000), 'plain wrong secret rejected')
    check(not c_check(sig, secret, 'bar.example.com', 1700000000), 'plain wrong payload rejected')
    for i in (0, 7, 8, 20, 35):
        ch = '0' if sig[i] != '0' else '1'
        bad = sig[:i] + ch + sig[i + 1:]
        check(not c_check(bad, secret, payload, 1700000000), 'tampered char %d rejected' % i)
    check(not c_check(sig[:35], secret, payload, 1700000000), 'short signature rejected')
    check(not c_check(sig + '0', secret, payload, 1700000000), 'long signature rejected')
    check(not c_check('', secret, payload, 1700000000), 'empty signature rejected')
    check(not c_check('t', secret, payload, 1700000000), 'one-char t signature rejected')


def test_random_tokens():
    hex36 = re.compile(r'^[0-9a-f]{36}$')
    seen = set()
    for _ in range(5):
        got = c_sign('s3cr3t', 'salt-payload', None)
        check(hex36.match(got) is not None, 'random token is 36 hex chars: %r' % got)
        check(got == py_sign('s3cr3t', 'salt-payload', got), 'random token self-consistent')
        check(c_check(got, 's3cr3t', 'salt-payload', 1700000000), 'random token verifies')
        seen.add(got)
    check(len(seen) == 5, 'random tokens differ')
    got = c_sign('s3cr3t', 'p', None, 1700000000)
    check(re.match(r'^t[0-9a-f]{35}$', got) is not None, 'random ts token shape %r' % got)
    check(got == py_sign('s3cr3t', 'p', got, 1700000000), 'random ts token matches formula')
    check(c_check(got, 's3cr3t', 'p', 1700000000 + 300), 'random ts token verifies')


def test_random_hex():
    for n in (0, 1, 7, 8, 36, 40, 101):
        rc, out = tool('randhex', n)
        check(rc == 0 and re.match(r'^[0-9a-f]{%d}$' % n, out) is not None,
              'randhex %d -> %r' % (n, out))
    outs = {tool('randhex', 36)[1] for _ in range(4)}
    check(len(outs) == 4, 'randhex outputs differ')


def test_bad_input():
    rc, out = tool('sign', 'k', 'p', 'short', 0)
    check(rc != 0 and out == 'ERR', 'token shorter than 8 chars rejected')


def main():
    for t in (test_sha1, test_plain_tokens, test_timestamped_tokens, test_check_windows,
              test_check_plain_and_tampering, test_random_tokens, test_random_hex,
              test_bad_input):
        before = len(FAILURES)
        t()
        print('%s %s' % ('ok  ' if len(FAILURES) == before else 'FAIL', t.__name__))
    print('%d checks, %d failures' % (CHECKS, len(FAILURES)))
    return 1 if FAILURES or CHECKS == 0 else 0


if __name__ == '__main__':
    sys.exit(main())
