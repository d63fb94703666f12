"""Fixtures for tests/faults (helpers live in faultlib.py: the module name
conftest is taken by tests/e2e, so tests import from faultlib)."""
import pytest

from faultlib import HAVE_TOOLS, Origin, Procs


@pytest.fixture
def origin():
    o = Origin()
    yield o
    o.close()


@pytest.fixture
def procs(tmp_path):
    if not HAVE_TOOLS:
        pytest.skip("pagekitec/pagekiter not built (./run build)")
    ps = Procs(tmp_path)
    yield ps
    ps.close()
