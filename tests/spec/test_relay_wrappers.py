"""Every relay configuration call of the spec is wrapped by the hand-written
layers too (Python's Relay, Node's Relay, the Lua module's methods), not only
by the generated ones.  pagekite_set_relay_duplicates is not wrapped yet."""

from __future__ import annotations

import pytest

from pkspec_helpers import ROOT

NOT_WRAPPED = {"pagekite_set_relay_duplicates"}

WRAPPERS = {
    "python/pagekite/_manager.py": lambda fn: '"%s"' % fn["c"],
    "node/index.js": lambda fn: "binding.%s(" % fn["node"],
    "lua/pagekite.c": lambda fn: "%s(" % fn["c"],
}


@pytest.mark.parametrize("path", sorted(WRAPPERS))
def test_every_relay_call_is_wrapped(spec, path):
    text = (ROOT / path).read_text()
    relay_calls = [fn for fn in spec["functions"] if "_relay_" in fn["c"]]
    assert len(relay_calls) >= 9
    missing = [fn["c"] for fn in relay_calls
               if fn["c"] not in NOT_WRAPPED and WRAPPERS[path](fn) not in text]
    assert missing == [], "%s does not call %s" % (path, ", ".join(missing))
    for c in NOT_WRAPPED:  # once wrapped, take it off the list
        fn = next(f for f in spec["functions"] if f["c"] == c)
        assert WRAPPERS[path](fn) not in text, "%s wraps %s now: update NOT_WRAPPED" % (path, c)
