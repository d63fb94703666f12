"""pkfleet - the operator's side of a PageKite relay fleet run on DNS.

Shared by pagekite-zk-auth-pipe (a PowerDNS pipe backend answering the
relays' --authdomain queries) and pagekite-ddns-endpoint (the dynamic DNS
update service the connectors call).  Standard library only; no sockets
here, so that every rule below can be unit-tested on its own.

The customer table is a text file, one kite a line:

    # kite name               secret        [quota_kb [days [conns]]]
    alice.users.fleet.test    s3cret-alice  1048576
    *.bob.users.fleet.test    s3cret-bob

Blank lines and lines starting with '#' are ignored.  A name '*.domain'
covers every name under domain (pagekite.py asks for it as '_any_.domain').
The file is read again whenever it changes: a new customer is a new line,
with no relay or DNS server restart.
"""

import hashlib
import hmac
import os
import re
import time

# pagekite.py's common.py: an answer in 255.255.255.x is an error.
AUTH_ERR_USER_UNKNOWN = "255.255.255.0"
AUTH_ERR_INVALID = "255.255.255.1"
AUTH_QUOTA_MAX = 0xFFFFFEFF  # 255.255.254.255, the largest quota an address can say
DEFAULT_QUOTA_KB = 1048576   # 1 GB, when the table gives none
SIGN_WINDOW_S = 600          # pagekite.py's timestamped signatures: 10 minutes

_NAME_RE = re.compile(r"^(\*\.)?[a-z0-9_]([a-z0-9_-]{0,62})(\.[a-z0-9_]([a-z0-9_-]{0,62}))*$")
_HEX_RE = re.compile(r"^[0-9a-f]+$")


def sha1hex(s):
    return hashlib.sha1(s.encode("utf-8")).hexdigest()


def sign_token(token, secret, payload, timestamp=None, length=36):
    """pagekite.py's signToken() with a given token (re-signing it)."""
    if timestamp:
        tok = "t" + token[1:]
        ts = "%x" % int(timestamp / SIGN_WINDOW_S)
        return tok[0:8] + sha1hex(secret + payload + ts + tok[0:8])[0:length - 8]
    return token[0:8] + sha1hex(secret + payload + token[0:8])[0:length - 8]


def _eq(a, b):
    return hmac.compare_digest(a.encode(), b.encode())


def check_signature(sign, secret, payload, now=None, length=36):
    """pagekite.py's checkSignature(): a 't' signature is good for the
    current and the previous 10-minute window."""
    if not sign or len(sign) < 8 or not secret:
        return False
    if sign[0] == "t":
        now = time.time() if now is None else now
        return any(_eq(sign, sign_token(sign, secret, payload, now - w * SIGN_WINDOW_S, length))
                   for w in (0, 1))
    return _eq(sign, sign_token(sign, secret, payload, None, length))


class Customer:
    __slots__ = ("name", "secret", "quota_kb", "days", "conns")

    def __init__(self, name, secret, quota_kb=DEFAULT_QUOTA_KB, days=None, conns=None):
        self.name, self.secret = name, secret
        self.quota_kb, self.days, self.conns = quota_kb, days, conns


def parse_customers(text):
    """The table's text -> {name: Customer}.  Bad lines raise ValueError
    naming the line: an operator's typo must not silently lock a customer out."""
    table = {}
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        f = line.split()
        if len(f) < 2 or len(f) > 5:
            raise ValueError("customers line %d: expected NAME SECRET [QUOTA_KB [DAYS [CONNS]]]" % n)
        name = f[0].lower().rstrip(".")
        if not _NAME_RE.match(name) or len(name) > 253:
            raise ValueError("customers line %d: bad kite name %r" % (n, f[0]))
        try:
            nums = [int(x) for x in f[2:]]
        except ValueError:
            raise ValueError("customers line %d: quota, days and conns are integers" % n)
        if any(x < 0 for x in nums) or (nums and not 0 < nums[0] <= AUTH_QUOTA_MAX):
            raise ValueError("customers line %d: quota out of range" % n)
        table[name] = Customer(name, f[1], *nums)
    return table


class CustomerTable:
    """The table file, read again when its mtime or size changes.  A table
    that no longer parses keeps the last good one (and says so once)."""

    def __init__(self, path, log=None):
        self.path, self.log = path, log or (lambda msg: None)
        self._stamp, self._table = None, {}

    def get(self):
        try:
            st = os.stat(self.path)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if stamp != self._stamp:
                with open(self.path, encoding="utf-8") as f:
                    text = f.read(4 * 1024 * 1024)
                self._stamp = stamp
                self._table = parse_customers(text)
        except (OSError, ValueError) as e:
            self.log("customer table %s: %s (keeping the last good one)" % (self.path, e))
        return self._table

    def lookup(self, name):
        return find_customer(self.get(), name)


def find_customer(table, name):
    """The customer for a kite name: the exact name, else the nearest
    '*.parent' entry ('_any_' is how pagekite.py spells a '*' kite)."""
    name = name.lower().rstrip(".")
    if name.startswith("_any_."):
        name = "*." + name[6:]
    if name in table:
        return table[name]
    parts = name.split(".")
    for i in range(1, len(parts)):
        c = table.get("*." + ".".join(parts[i:]))
        if c:
            return c
    return None


# ---- zero-knowledge auth (pagekite.py's --authdomain) ----

def quota_address(kb):
    kb = max(1, min(int(kb), AUTH_QUOTA_MAX))
    return "%d.%d.%d.%d" % ((kb >> 24) & 255, (kb >> 16) & 255, (kb >> 8) & 255, kb & 255)


def split_auth_query(qname, authdomain):
    """'srand.token.sign.protoport.kite.name.AUTHDOMAIN' -> the five parts,
    or None when qname is not such a query (the zone apex, a typo...)."""
    q = qname.lower().rstrip(".")
    suffix = "." + authdomain.lower().strip(".")
    if not q.endswith(suffix):
        return None
    labels = q[:-len(suffix)].split(".")
    if len(labels) < 5:
        return None
    srand, token, sign, protoport = labels[:4]
    domain = ".".join(labels[4:])
    if not sign or not _HEX_RE.match(sign[1:] if sign[0] == "t" else sign):
        return None
    if not re.match(r"^[a-z0-9]+(-[0-9]+)?$", protoport):
        return None
    return srand, token, sign, protoport, domain


def zk_answer(table, qname, authdomain, now=None, unknown=AUTH_ERR_INVALID):
    """The A record for one auth query: the quota in KB as an address, or
    255.255.255.1 for a bad signature.  None when qname is not an auth
    query.  The relay never sees the secret: it learns only whether the
    connector's signature was good.

    A kite not in the table gets `unknown`: 255.255.255.1 by default, since
    pagekite.py (1.5.2) reads 255.255.255.0 ("user unknown") as "fall
    through to local checks" and returns quota -1 -- which lets the kite
    fly.  Pass AUTH_ERR_USER_UNKNOWN only for relays that must then accept
    unknown kites."""
    parts = split_auth_query(qname, authdomain)
    if parts is None:
        return None
    srand, token, sign, protoport, domain = parts
    c = find_customer(table, domain)
    if c is None:
        return unknown
    # pagekite.py's IsSignatureValid(): proto:domain:srand:token.  The
    # domain is as the connector named it, '*' kites as '_any_' in DNS.
    payload_domain = "*" + domain[5:] if domain.startswith("_any_.") else domain
    payload = "%s:%s:%s:%s" % (protoport, payload_domain, srand, token)
    if not check_signature(sign, c.secret, payload, now):
        return AUTH_ERR_INVALID
    return quota_address(c.quota_kb)


# ---- dynamic DNS (pagekite.net's update URL) ----

def ddns_check(table, hostname, myip, sign):
    """Check a DDNS update as pagekite.net does: sign is signToken(secret,
    'hostname:myip', length=100), a salt and a whole SHA-1.  Returns
    (addresses, None) or (None, dyndns2 error word)."""
    hostname = (hostname or "").lower().rstrip(".")
    c = find_customer(table, hostname) if hostname else None
    if c is None or hostname.startswith("*"):
        return None, "nohost"
    if not check_signature(sign or "", c.secret, "%s:%s" % (hostname, myip or ""), length=100):
        return None, "badauth"
    addrs = [a for a in (myip or "").split(",") if a]
    if not addrs or len(addrs) > 8 or not all(_is_ipv4(a) or _is_ipv6(a) for a in addrs):
        return None, "notfqdn" if not addrs else "badip"
    return addrs, None


def _is_ipv4(a):
    p = a.split(".")
    return len(p) == 4 and all(x.isdigit() and len(x) <= 3 and int(x) < 256 for x in p)


def _is_ipv6(a):
    import ipaddress
    try:
        return isinstance(ipaddress.ip_address(a), ipaddress.IPv6Address)
    except ValueError:
        return False
