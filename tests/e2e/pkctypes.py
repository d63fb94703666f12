"""A small ctypes wrapper over libpagekite.so.1 (C API: c/include/pagekite.h).

    lib = load()                      # raises OSError / AssertionError if unusable
    mgr = lib.pagekite_init(b"app", 5, 5, 25, None, flags, verbosity)
    ...

Every function of the header is declared with argtypes/restype when the
library exports it; lib.missing lists the ones it does not.  PageKite is a
thin object wrapper for the tests.
"""

import ctypes
import os
import time

# Status codes
PK_STATUS_STARTUP = 10
PK_STATUS_CONNECTING = 20
PK_STATUS_UPDATING_DNS = 30
PK_STATUS_FLYING = 40
PK_STATUS_PROBLEMS = 50
PK_STATUS_REJECTED = 60
PK_STATUS_NO_NETWORK = 90
STATUS_NAMES = {
    PK_STATUS_STARTUP: "STARTUP", PK_STATUS_CONNECTING: "CONNECTING",
    PK_STATUS_UPDATING_DNS: "UPDATING_DNS", PK_STATUS_FLYING: "FLYING",
    PK_STATUS_PROBLEMS: "PROBLEMS", PK_STATUS_REJECTED: "REJECTED",
    PK_STATUS_NO_NETWORK: "NO_NETWORK",
}

# Flags
PK_WITH_DEFAULTS = 0x8000
PK_WITHOUT_DEFAULTS = 0x4000
PK_WITH_SSL = 0x0001
PK_WITH_IPV4 = 0x0002
PK_WITH_IPV6 = 0x0004
PK_WITH_SERVICE_FRONTENDS = 0x0008
PK_WITHOUT_SERVICE_FRONTENDS = 0x0010
PK_WITH_DYNAMIC_FE_LIST = 0x0020
PK_WITH_FRONTEND_SNI = 0x0040
PK_AS_FRONTEND_RELAY = 0x0100

# Log masks
PK_LOG_ERROR = 0x100000
PK_LOG_MANAGER_ERROR = 0x010000
PK_LOG_MANAGER_INFO = 0x020000
PK_LOG_BE_CONNS = 0x004000
PK_LOG_TUNNEL_CONNS = 0x000400
PK_LOG_LUA_INFO = 0x000800
PK_LOG_NORMAL = (PK_LOG_ERROR | PK_LOG_MANAGER_ERROR | PK_LOG_BE_CONNS | PK_LOG_TUNNEL_CONNS
                 | PK_LOG_MANAGER_INFO | PK_LOG_LUA_INFO)
PK_LOG_ALL = 0xffff00

# Counters
PK_COUNTER_KITES_LIVE = 1
PK_COUNTER_TUNNELS = 2
PK_COUNTER_STREAMS = 3
PK_COUNTER_BYTES_IN = 4
PK_COUNTER_BYTES_OUT = 5
PK_COUNTER_ERRORS = 6
PK_COUNTER_STREAMS_TOTAL = 7
PK_COUNTER_REJECTED = 8

# TLS verification
PK_TLS_VERIFY_NONE = 0
PK_TLS_VERIFY_PEER = 1

MGR = ctypes.c_void_p
_s = ctypes.c_char_p
_i = ctypes.c_int

SIGNATURES = {
    # init
    "pagekite_init": (MGR, [_s, _i, _i, _i, _s, _i, _i]),
    "pagekite_init_pagekitenet": (MGR, [_s, _i, _i, _i, _i]),
    "pagekite_init_whitelabel": (MGR, [_s, _i, _i, _i, _i, _s]),
    "pagekite_add_kite": (_i, [MGR, _s, _s, _i, _s, _s, _i]),
    "pagekite_add_service_frontends": (_i, [MGR, _i]),
    "pagekite_add_whitelabel_frontends": (_i, [MGR, _i, _s]),
    "pagekite_lookup_and_add_frontend": (_i, [MGR, _s, _i, _i]),
    "pagekite_add_frontend": (_i, [MGR, _s, _i]),
    "pagekite_set_log_mask": (_i, [MGR, _i]),
    "pagekite_set_housekeeping_min_interval": (_i, [MGR, _i]),
    "pagekite_set_housekeeping_max_interval": (_i, [MGR, _i]),
    "pagekite_enable_http_forwarding_headers": (_i, [MGR, _i]),
    "pagekite_enable_fake_ping": (_i, [MGR, _i]),
    "pagekite_enable_watchdog": (_i, [MGR, _i]),
    "pagekite_enable_tick_timer": (_i, [MGR, _i]),
    "pagekite_set_conn_eviction_idle_s": (_i, [MGR, _i]),
    "pagekite_set_openssl_ciphers": (_i, [MGR, _s]),
    "pagekite_want_spare_frontends": (_i, [MGR, _i]),
    # lifecycle
    "pagekite_thread_start": (_i, [MGR]),
    "pagekite_thread_wait": (_i, [MGR]),
    "pagekite_thread_stop": (_i, [MGR]),
    "pagekite_free": (_i, [MGR]),
    "pagekite_get_status": (_i, [MGR]),
    "pagekite_get_log": (_s, [MGR]),
    "pagekite_poll": (_i, [MGR, _i]),
    "pagekite_tick": (_i, [MGR]),
    "pagekite_set_bail_on_errors": (_i, [MGR, _i]),
    "pagekite_perror": (None, [MGR, _s]),
    # additions
    "pagekite_set_tls_verify": (_i, [MGR, _i, _s]),
    "pagekite_add_relay_listener": (_i, [MGR, _s, _i]),
    "pagekite_add_relay_domain": (_i, [MGR, _s, _s, _s]),
    "pagekite_set_relay_tls": (_i, [MGR, _s, _s]),
    "pagekite_add_relay_tls_endpoint": (_i, [MGR, _s, _s, _s]),
    "pagekite_set_relay_tls_default": (_i, [MGR, _s]),
    "pagekite_set_relay_raw_ports": (_i, [MGR, _s]),
    "pagekite_add_relay_port_alias": (_i, [MGR, _i, _i]),
    "pagekite_set_relay_motd": (_i, [MGR, _s]),
    "pagekite_remove_relay_domain": (_i, [MGR, _s, _s]),
    "pagekite_remove_relay_tls_endpoint": (_i, [MGR, _s]),
    "pagekite_remove_kite": (_i, [MGR, _s, _s, _i]),
    "pagekite_remove_frontend": (_i, [MGR, _s, _i]),
    "pagekite_last_error_code": (_i, []),
    "pagekite_get_kite_status": (_i, [MGR, _s, _s]),
    "pagekite_set_rejection_url": (_i, [MGR, _s]),
    "pagekite_get_counter": (ctypes.c_longlong, [MGR, _i]),
    "pagekite_last_error": (_s, []),
    "pagekite_version_number": (_i, []),
}


def _b(value):
    if value is None or isinstance(value, bytes):
        return value
    return str(value).encode()


def load(path=None):
    """Load the library and declare every exported function of the header."""
    if path is None:
        build = os.environ.get("PK_BUILD_DIR", "/work/main/build")
        path = os.path.join(build, "libpagekite.so.1")
    lib = ctypes.CDLL(str(path))
    missing = []
    for name, (restype, argtypes) in SIGNATURES.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            missing.append(name)
            continue
        fn.restype = restype
        fn.argtypes = argtypes
    lib.missing = missing
    return lib


class PageKite:
    """One manager; methods take str and return ints like the C API."""

    def __init__(self, lib, app_id="pk-e2e", max_kites=8, max_frontends=8, max_conns=64,
                 dyndns_url=None, flags=PK_WITHOUT_DEFAULTS | PK_WITH_IPV4
                 | PK_WITHOUT_SERVICE_FRONTENDS, verbosity=PK_LOG_NORMAL):
        self.lib = lib
        self.mgr = lib.pagekite_init(_b(app_id), max_kites, max_frontends, max_conns,
                                     _b(dyndns_url), flags, verbosity)
        if not self.mgr:
            raise AssertionError("pagekite_init returned NULL: %s" % self.last_error())
        self.started = False

    def last_error(self):
        err = self.lib.pagekite_last_error()
        return err.decode(errors="replace") if err else ""

    def add_kite(self, proto, kitename, pport, secret, backend, lport):
        return self.lib.pagekite_add_kite(self.mgr, _b(proto), _b(kitename), pport, _b(secret),
                                          _b(backend), lport)

    def lookup_and_add_frontend(self, domain, port, update_from_dns=0):
        return self.lib.pagekite_lookup_and_add_frontend(self.mgr, _b(domain), port,
                                                         update_from_dns)

    def add_frontend(self, domain, port):
        return self.lib.pagekite_add_frontend(self.mgr, _b(domain), port)

    def set_tls_verify(self, mode, ca_file=None):
        return self.lib.pagekite_set_tls_verify(self.mgr, mode, _b(ca_file))

    def enable_http_forwarding_headers(self, enable=True):
        return self.lib.pagekite_enable_http_forwarding_headers(self.mgr, 1 if enable else 0)

    def add_relay_listener(self, host, port):
        return self.lib.pagekite_add_relay_listener(self.mgr, _b(host), port)

    def add_relay_domain(self, protos, pattern, secret):
        return self.lib.pagekite_add_relay_domain(self.mgr, _b(protos), _b(pattern), _b(secret))

    def set_relay_tls(self, cert_file, key_file):
        return self.lib.pagekite_set_relay_tls(self.mgr, _b(cert_file), _b(key_file))

    def add_relay_tls_endpoint(self, name, cert_file, key_file=None):
        return self.lib.pagekite_add_relay_tls_endpoint(self.mgr, _b(name), _b(cert_file),
                                                        _b(key_file))

    def set_relay_tls_default(self, name):
        return self.lib.pagekite_set_relay_tls_default(self.mgr, _b(name))

    def set_relay_raw_ports(self, ports):
        return self.lib.pagekite_set_relay_raw_ports(self.mgr, _b(ports))

    def add_relay_port_alias(self, port, alias_of):
        return self.lib.pagekite_add_relay_port_alias(self.mgr, port, alias_of)

    def set_rejection_url(self, url):
        return self.lib.pagekite_set_rejection_url(self.mgr, _b(url))

    def set_relay_motd(self, motd):
        return self.lib.pagekite_set_relay_motd(self.mgr, _b(motd))

    def remove_relay_domain(self, protos, pattern):
        return self.lib.pagekite_remove_relay_domain(self.mgr, _b(protos), _b(pattern))

    def remove_relay_tls_endpoint(self, name):
        return self.lib.pagekite_remove_relay_tls_endpoint(self.mgr, _b(name))

    def remove_kite(self, proto, kitename, pport):
        return self.lib.pagekite_remove_kite(self.mgr, _b(proto), _b(kitename), pport)

    def remove_frontend(self, host, port):
        return self.lib.pagekite_remove_frontend(self.mgr, _b(host), port)

    def thread_start(self):
        rc = self.lib.pagekite_thread_start(self.mgr)
        if rc == 0:
            self.started = True
        return rc

    def thread_stop(self):
        rc = self.lib.pagekite_thread_stop(self.mgr)
        self.started = False
        return rc

    def free(self):
        mgr, self.mgr = self.mgr, None
        if not mgr:
            return 0
        return self.lib.pagekite_free(mgr)

    def close(self):
        """Best-effort stop + free (for teardown)."""
        if self.mgr:
            if self.started:
                self.thread_stop()
            self.free()

    def get_status(self):
        return self.lib.pagekite_get_status(self.mgr)

    def poll(self, timeout=1):
        return self.lib.pagekite_poll(self.mgr, timeout)

    def get_log(self):
        log = self.lib.pagekite_get_log(self.mgr)
        return log.decode(errors="replace") if log is not None else None

    def get_counter(self, counter):
        return self.lib.pagekite_get_counter(self.mgr, counter)

    def wait_status(self, wanted, timeout):
        """poll() until get_status() is in wanted; returns the history of statuses."""
        if isinstance(wanted, int):
            wanted = (wanted,)
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            st = self.get_status()
            if not seen or seen[-1] != st:
                seen.append(st)
            if st in wanted:
                return seen
            if time.monotonic() > deadline:
                raise AssertionError(
                    "status %s not reached within %.0f s; seen %s; last error %r\nlog:\n%s"
                    % ("/".join(STATUS_NAMES.get(w, str(w)) for w in wanted), timeout,
                       [STATUS_NAMES.get(s, s) for s in seen], self.last_error(),
                       "\n".join((self.get_log() or "").splitlines()[-30:])))
            if self.poll(1) != 0:
                time.sleep(0.1)   # poll failed: do not spin
