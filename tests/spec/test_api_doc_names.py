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
import json
import re

import pytest

from pkspec_helpers import ROOT

API_MD = ROOT / "doc" / "API.md"
BINDINGS = ("java", "python", "node", "lua")


def _names(cell: str) -> list[str]:
    """The backticked names of a cell ("`m:tick`, `pagekite.raw.tick`")."""
    return re.findall(r"`([\w.:]+)`", cell)


def _table() -> dict[str, dict[str, list[str]]]:
    """C name -> {binding: [names]} from the "Names in each binding" table."""
    text = API_MD.read_text()
    start = text.index("## Names in each binding")
    rows = {}
    for line in text[start:].splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and re.fullmatch(r"`pagekite_\w+`", cells[0]):
            rows[cells[0].strip("`")] = {b: _names(c) for b, c in zip(BINDINGS, cells[1:5])}
    return rows


def _call_lines() -> dict[str, dict[str, list[str]]]:
    """C name -> {binding: [names]} from each call's "- Java: ..." line."""
    out = {}
    sections = re.split(r"^### ", API_MD.read_text(), flags=re.M)
    for sec in sections:
        head = sec.split("\n", 1)[0].strip()
        m = re.search(r"^- Java: `[^`]*?(\w+)\([^`]*`; Python: (.*?); Node: (.*?); Lua: (.*)$",
                      sec, re.M)
        if head.startswith("pagekite_") and m:
            out[head] = {"java": [m.group(1)], "python": _names(m.group(2)),
                         "node": _names(m.group(3)), "lua": _names(m.group(4))}
    return out


def _java_names() -> set[str]:
    return set(re.findall(r"^%rename\((\w+)\)", (ROOT / "bindings" / "swig" / "pagekite.i")
                          .read_text(), re.M))


def _python_names() -> set[str]:
    """The raw layer defines one function per entry of the resolved spec it
    ships (python/pagekite/_spec.json)."""
    assert "_spec.json" in (ROOT / "python" / "pagekite" / "api.py").read_text()
    model = json.loads((ROOT / "python" / "pagekite" / "_spec.json").read_text())
    return {fn["names"]["python"] if "names" in fn else fn["python"] for fn in model["functions"]}


def _node_names() -> set[str]:
    return set(re.findall(r'pkn_define\(env, exports, "(\w+)"',
                          (ROOT / "node" / "src" / "glue_generated.c").read_text()))


def _lua_names() -> set[str]:
    names: set[str] = set()
    for path in sorted((ROOT / "lua").glob("*.[ch]")):
        text = path.read_text()
        names |= set(re.findall(r'\{"(\w+)",\s*\w+\}', text))
        names |= set(re.findall(r'\{"(\w+)", "\w+", [01]\}', text))  # thin_methods
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
            for b, listed in names.items():
                assert listed, "%s: no %s name in the %s" % (c, b, where)
                for name in listed:
                    name = _raw_name(b, name)
                    if name:
                        out[b].setdefault(name, set()).add("%s (%s)" % (c, where))
    return out


def _raw_name(binding: str, name: str) -> str:
    """Python's and Node's raw names ("pagekite.api.add_kite", "binding.addKite")
    without the prefix; "" for their idiomatic names ("Connector.add_kite",
    "PageKiteError"), which tests/spec/test_idiomatic_coverage.py checks
    against the classes and exports."""
    for prefix in {"python": ("pagekite.api.",), "node": ("binding.",)}.get(binding, ()):
        if name.startswith(prefix):
            return name[len(prefix):]
    if binding in ("python", "node"):
        return ""
    return name


@pytest.mark.parametrize("binding", sorted(DEFINED))
def test_documented_names_exist(spec, binding):
    defined = DEFINED[binding]()
    assert len(defined) >= len(spec["functions"]) - 1
    documented = _documented(spec)[binding]
    missing = {name: sorted(where) for name, where in documented.items() if name not in defined}
    assert missing == {}, "doc/API.md names %s symbols that do not exist" % binding


def test_documented_lua_names_exist(spec):
    defined = _lua_names()
    assert {"add_kite", "connector", "last_error"} <= defined  # the scan finds what exists
    documented = _documented(spec)["lua"]
    # "m:tick", "pagekite.raw.tick", "pagekite.connector": the last part is
    # what lua/*.c registers.
    missing = sorted(name for name in documented if re.split(r"[.:]", name)[-1] not in defined)
    assert missing == [], "doc/API.md names Lua symbols lua/ does not register: %s" % (
        ", ".join(missing))


def test_the_doc_parsers_see_every_call(spec):
    """Both forms are parsed for every call, and a made-up name is not found."""
    table, lines = _table(), _call_lines()
    assert table["pagekite_add_kite"] == {
        "java": ["addKite"], "python": ["Connector.add_kite", "pagekite.api.add_kite"],
        "node": ["Connector.addKite", "binding.addKite"],
        "lua": ["m:add_kite", "pagekite.raw.add_kite"]}
    assert lines["pagekite_add_kite"] == table["pagekite_add_kite"]
    for binding, names in DEFINED.items():
        assert "no_such_call" not in names()
