"""Fixtures for the Python-binding tests (tests/python).

These tests exercise the INSTALLED package (``pip install ./python`` into the
venv that runs pytest; ``./run test`` does that).  The ``pk`` fixture imports
it and fails every test clearly - it never skips - when ``pagekite`` is not
importable, resolves to Debian's pagekite.py module, or is the uninstalled
source tree.  Test modules must not import pagekite at module level (a
collection error would stop the other suites too): they take ``pk``.

Everything runs on 127.0.0.1 and every wait is bounded.
"""

from __future__ import annotations

import importlib
import sys
import sysconfig
from pathlib import Path

import pytest

from pkpy_helpers import DOMAIN, PKI, RELAY_CERT_NAME, SECRET, Origin, free_port

REPO = Path(__file__).resolve().parents[2]
SOURCE_PACKAGE = REPO / "python" / "pagekite"


def _installed_pagekite():
    """Import pagekite and explain precisely what is wrong with it, if anything."""
    how = ("install it into this interpreter's environment: %s -m pip install %s"
           % (sys.executable, REPO / "python"))
    try:
        module = importlib.import_module("pagekite")
    except ImportError as e:
        return None, "cannot import pagekite (%s); %s" % (e, how)
    where = Path(getattr(module, "__file__", "") or "").resolve()
    if "dist-packages" in where.parts or not hasattr(module, "Connector"):
        return None, ("'import pagekite' found %s, which is Debian's pagekite.py (the reference "
                      "implementation), not these bindings; run the tests in a venv and %s"
                      % (where, how))
    if SOURCE_PACKAGE.resolve() in where.parents:
        return None, ("'import pagekite' found the source tree %s instead of the installed "
                      "package; run pytest from another directory and %s" % (where, how))
    site_dirs = {Path(sysconfig.get_paths()[k]).resolve() for k in ("purelib", "platlib")}
    if not any(d in where.parents for d in site_dirs):
        return None, ("'import pagekite' found %s, outside this interpreter's site-packages "
                      "(%s); %s" % (where, ", ".join(map(str, sorted(site_dirs))), how))
    try:
        importlib.import_module("pagekite._pagekite")
    except ImportError as e:
        return None, "pagekite's compiled extension is missing (%s); %s" % (e, how)
    return module, None


@pytest.fixture(scope="session")
def pk():
    """The installed pagekite package (fails the test if it is not usable)."""
    module, problem = _installed_pagekite()
    if problem:
        pytest.fail(problem, pytrace=False)
    return module


@pytest.fixture
def origin(tmp_path):
    o = Origin(tmp_path / "origin")
    yield o
    o.close()


@pytest.fixture
def managers(pk):
    """Factory list: everything appended is closed at teardown."""
    made = []
    yield made
    for m in reversed(made):
        m.close()


@pytest.fixture
def relay(pk, managers):
    """A running Python Relay on 127.0.0.1 accepting http,raw kites under
    *.example.test signed with SECRET; .port is its port."""
    r = pk.Relay(app_id="py-test-relay")
    managers.append(r)
    r.port = free_port()
    r.add_listener("127.0.0.1", r.port)
    r.add_domain("http,raw", "*." + DOMAIN, SECRET)
    r.start()
    return r


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A throwaway CA (.ca) with two relay certificates signed by it:
    .both for relay.example.test and 127.0.0.1, .named for relay.example.test only."""
    p = PKI(tmp_path_factory.mktemp("pki"))
    p.both = p.cert("both", "DNS:%s,IP:127.0.0.1" % RELAY_CERT_NAME)
    p.named = p.cert("named", "DNS:%s" % RELAY_CERT_NAME)
    return p


@pytest.fixture
def tls_relay(pk, managers, pki):
    """tls_relay(cert=pki.both) -> a running Python Relay on 127.0.0.1 like
    ``relay``, but with TLS-wrapped tunnels (pagekite_set_relay_tls)."""
    def make(cert=None):
        certfile, keyfile = cert or pki.both
        r = pk.Relay(app_id="py-test-tls-relay")
        managers.append(r)
        r.port = free_port()
        r.add_listener("127.0.0.1", r.port)
        r.add_domain("http,raw", "*." + DOMAIN, SECRET)
        r.set_tls(certfile, keyfile)
        r.start()
        return r
    return make
