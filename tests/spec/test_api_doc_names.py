"""Every binding name doc/API.md gives exists in that binding.

doc/API.md names each call in every binding twice: in its "Names in each
binding" table and on the call's own "- Java: ...; Python: ...; Node: ...;
Lua: ..." line.  Each name is looked up where the binding defines it:
Java in the SWIG interface (%rename), Python in the raw layer's call table
(python/pagekite/_cdef.py FUNCTIONS, which api.py defines one function
for), Node in the generated addon glue (node/src/glue_generated.c), Lua in
what the Lua module registers (luaL_Reg entries and lua_setfield of C
functions in lua/*.c).  The files are read as text, so no build is needed.
"""

from __future__ import annotations

import ast
import re

import pytest

from pkspec_helpers import ROOT

API_MD = ROOT / "doc" / "API.md"
BINDINGS = ("java", "python", "node", "lua")


def _table() -> dict[str, dict[str, str]]:
    """C name -> {binding: name} from the "Names in each binding" table."""
    text = API_MD.read_text()
    start = text.index("## Names in each binding")
    rows = {}
    for line in text[start:].splitlines():
        m = re.match(r"^\| `(pagekite_\w+)` \| `(\w+)` \| `(\w+)` \| `(\w+)` \| `(\w+)` \|", line)
        if m:
            rows[m.group(1)] = dict(zip(BINDINGS, m.groups()[1:]))
    return rows


def _call_lines() -> dict[str, dict[str, str]]:
    """C name -> {binding: name} from each call's "- Java: ..." line."""
    out = {}
    sections = re.split(r"^### ", API_MD.read_text(), flags=re.M)
    for sec in sections:
        head = sec.split("\n", 1)[0].strip()
        m = re.search(r"^- Java: `[^`]*?(\w+)\([^`]*`; Python: `(\w+)`; Node: `(\w+)`; "
                      r"Lua: `(\w+)`$", sec, re.M)
        if head.startswith("pagekite_") and m:
            out[head] = dict(zip(BINDINGS, m.groups()))
    return out


def _java_names() -> set[str]:
    return set(re.findall(r"^%rename\((\w+)\)", (ROOT / "bindings" / "swig" / "pagekite.i")
                          .read_text(), re.M))


def _python_names() -> set[str]:
    assert "_cdef.FUNCTIONS" in (ROOT / "python" / "pagekite" / "api.py").read_text()
    for node in ast.parse((ROOT / "python" / "pagekite" / "_cdef.py").read_text()).body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "FUNCTIONS" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("python/pagekite/_cdef.py has no FUNCTIONS table")


def _node_names() -> set[str]:
    return set(re.findall(r'pkn_define\(env, exports, "(\w+)"',
                          (ROOT / "node" / "src" / "glue_generated.c").read_text()))


def _lua_names() -> set[str]:
    names: set[str] = set()
    for path in sorted((ROOT / "lua").glob("*.[ch]")):
        text = path.read_text()
        names |= set(re.findall(r'\{"(\w+)",\s*\w+\}', text))
        names |= set(re.findall(r'lua_pushcfunction\(L, \w+\);\s*lua_setfield\(L, -2, "(\w+)"\)',
                                text))
    return names


DEFINED = {"java": _java_names, "python": _python_names, "node": _node_names}


def _documented(spec) -> dict[str, dict[str, set[str]]]:
    """binding -> documented name -> where API.md says it."""
    table, lines = _table(), _call_lines()
    functions = [fn["c"] for fn in spec["functions"]]
    assert sorted(table) == sorted(functions), "the table lists other calls than the spec"
    assert sorted(lines) == sorted(functions), "calls without a '- Java: ...' line"
    out: dict[str, dict[str, set[str]]] = {b: {} for b in BINDINGS}
    for where, rows in (("table", table), ("call line", lines)):
        for c, names in rows.items():
            for b, name in names.items():
                out[b].setdefault(name, set()).add("%s (%s)" % (c, where))
    return out


@pytest.mark.parametrize("binding", sorted(DEFINED))
def test_documented_names_exist(spec, binding):
    defined = DEFINED[binding]()
    assert len(defined) >= len(spec["functions"]) - 1
    documented = _documented(spec)[binding]
    missing = {name: sorted(where) for name, where in documented.items() if name not in defined}
    assert missing == {}, "doc/API.md names %s symbols that do not exist" % binding


@pytest.mark.xfail(strict=True, reason="Lua raw layer: gen16")
def test_documented_lua_names_exist(spec):
    defined = _lua_names()
    assert {"add_kite", "connector", "last_error"} <= defined  # the scan finds what exists
    documented = _documented(spec)["lua"]
    missing = sorted(name for name in documented if name not in defined)
    assert missing == [], "doc/API.md names Lua symbols lua/ does not register: %s" % (
        ", ".join(missing))


def test_the_doc_parsers_see_every_call(spec):
    """Both forms are parsed for every call, and a made-up name is not found."""
    table, lines = _table(), _call_lines()
    assert table["pagekite_add_kite"] == {"java": "addKite", "python": "add_kite",
                                          "node": "addKite", "lua": "add_kite"}
    assert lines["pagekite_add_kite"] == table["pagekite_add_kite"]
    for binding, names in DEFINED.items():
        assert "no_such_call" not in names()
