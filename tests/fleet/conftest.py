import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_configure(config):
    config.addinivalue_line("markers", "needs_authdomain: a fleet case that needs the relays' "
                            "--authdomain (xfail for pagekiter until it has one)")


def pytest_collection_modifyitems(config, items):
    """pagekiter + a case needing --authdomain: strict xfail (not run) while
    pagekiter has no --authdomain; once it has, the case runs for real."""
    import fleet as F
    has = None
    for item in items:
        cs = getattr(item, "callspec", None)
        if not item.get_closest_marker("needs_authdomain") or not cs or \
                cs.params.get("fleet") != "pagekiter":
            continue
        if has is None:
            has = F.pagekiter_has("--authdomain")
        if not has:
            item.add_marker(pytest.mark.xfail(
                strict=True, run=False,
                reason="our --authdomain not merged yet (pagekiter has no --authdomain)"))
