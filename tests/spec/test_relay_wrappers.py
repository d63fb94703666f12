"""Every relay configuration call of the spec is wrapped by the hand-written
layers too (Python's Relay, Node's Relay, the Lua module's methods), not only
by the generated ones.  pagekite_set_relay_duplicates is not wrapped yet in
Python and Node.  Lua methods call C directly or name the raw function they
go through (lua/pagekite.c's thin_methods)."""

from __future__ import annotations

import pytest

from pkspec_helpers import ROOT

NOT_WRAPPED = {
    "python/pagekite/_manager.py": {"pagekite_set_relay_duplicates"},
    "node/index.js": {"pagekite_set_relay_duplicates"},
    "lua/pagekite.c": set(),
}

WRAPPERS = {
    "python/pagekite/_manager.py": lambda fn, text: '"%s"' % fn["c"] in text,
    "node/index.js": lambda fn, text: "binding.%s(" % fn["node"] in text,
    "lua/pagekite.c": lambda fn, text: "%s(" % fn["c"] in text or ', "%s", ' % fn["lua"] in text,
}


@pytest.mark.parametrize("path", sorted(WRAPPERS))
def test_every_relay_call_is_wrapped(spec, path):
    text = (ROOT / path).read_text()
    relay_calls = [fn for fn in spec["functions"] if "_relay_" in fn["c"]]
    assert len(relay_calls) >= 9
    missing = [fn["c"] for fn in relay_calls
               if fn["c"] not in NOT_WRAPPED[path] and not WRAPPERS[path](fn, text)]
    assert missing == [], "%s does not call %s" % (path, ", ".join(missing))
    for c in NOT_WRAPPED[path]:  # once wrapped, take it off the list
        fn = next(f for f in spec["functions"] if f["c"] == c)
        assert not WRAPPERS[path](fn, text), "%s wraps %s now: update NOT_WRAPPED" % (path, c)
