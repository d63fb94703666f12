"""Fixtures for the spec tests (helpers live in pkspec_helpers.py)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pkspec_helpers import build_stub, generate  # noqa: E402


@pytest.fixture(scope="session")
def spec() -> dict:
    return generate.load()


@pytest.fixture(scope="session")
def stub_lib(spec, tmp_path_factory) -> Path:
    """The stub library, with libpagekite.so.1 (its soname) beside it."""
    lib = build_stub(spec, tmp_path_factory.mktemp("stub"))
    (lib.parent / "libpagekite.so.1").symlink_to(lib.name)
    return lib
