"""Every spec function reaches the idiomatic layers, not only the raw ones.

Each [[functions]] entry of spec/pagekite.toml has an ``idiomatic`` table
(documented at the top of the spec) naming, per binding, the member of the
hand-written layer that wraps it: Python's Connector / Relay / _Manager
(python/pagekite/_manager.py) or a name the ``pagekite`` package exports;
Node's classes in node/index.js, declared in node/index.d.ts, or a name
index.js exports.  "raw" says only the raw layer has it (with a ``note``
saying what to use instead).  These tests fail when a function has no entry,
when the named member does not exist, when the layer never calls the
function, or when a function marked "raw" is wrapped after all.

The files are read as text (Python: its AST), so no build is needed.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from pkspec_helpers import ROOT

BINDINGS = ("python", "node")

PY_PKG = ROOT / "python" / "pagekite"
PY_CLASS_FILES = (PY_PKG / "_manager.py", PY_PKG / "_errors.py")
NODE_JS = ROOT / "node" / "index.js"
NODE_DTS = ROOT / "node" / "index.d.ts"
NODE_ADDON = ROOT / "node" / "src" / "addon.c"

# index.js reaches these through the addon's own bridge (node/src/addon.c:
# binding.start runs pagekite_thread_start and the event thread,
# binding.stop stops the thread and frees the manager), not the generated glue.
NODE_BRIDGE = {"pagekite_thread_start": "start", "pagekite_thread_stop": "stop",
               "pagekite_free": "stop"}


def _names(value) -> list[str]:
    return value if isinstance(value, list) else [value]


# ---------------------------------------------------------------- Python


def _py_classes() -> dict[str, tuple[list[str], set[str]]]:
    """class name -> (base names, members defined in its body)."""
    out = {}
    for path in PY_CLASS_FILES:
        for node in ast.parse(path.read_text()).body:
            if not isinstance(node, ast.ClassDef):
                continue
            members = set()
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    members.add(item.name)
                elif isinstance(item, ast.Assign):
                    members |= {t.id for t in item.targets if isinstance(t, ast.Name)}
                elif isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name):
                    members.add(item.target.id)
            bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
            out[node.name] = (bases, members)
    return out


def _py_exports() -> set[str]:
    """The names in pagekite/__init__.py's __all__."""
    for node in ast.parse((PY_PKG / "__init__.py").read_text()).body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                return set(ast.literal_eval(node.value))
    raise AssertionError("python/pagekite/__init__.py has no __all__")


def _has_member(classes, cls: str, member: str) -> bool:
    if cls not in classes:
        return False
    bases, members = classes[cls]
    return member in members or any(_has_member(classes, b, member) for b in bases)


def _py_source() -> str:
    return "\n".join(p.read_text() for p in (PY_PKG / "__init__.py",) + PY_CLASS_FILES)


def _py_calls(source: str, cname: str) -> bool:
    return re.search(r'(lib\.%s\b|"%s")' % (cname, cname), source) is not None


# ---------------------------------------------------------------- Node


def _js_classes(text: str, pattern: str) -> dict[str, tuple[list[str], set[str]]]:
    """Classes of index.js / index.d.ts: two-space-indented members up to the
    class's closing brace at column 0 (the files' layout)."""
    out = {}
    for m in re.finditer(pattern, text, re.M):
        body = text[m.end():text.index("\n}", m.end())]
        members = set(re.findall(r"^  (?:static |async |get |set |readonly )*(\w+)\s*[?(:<]",
                                 body, re.M))
        out[m.group(1)] = ([m.group(2)] if m.group(2) else [], members)
    return out


def _node_js_classes():
    return _js_classes(NODE_JS.read_text(), r"^class (\w+)(?: extends (\w+))? \{")


def _node_dts_classes():
    return _js_classes(NODE_DTS.read_text(),
                       r"^(?:export )?(?:declare )?class (\w+)(?: extends (\w+))? \{")


def _node_js_exports() -> set[str]:
    text = NODE_JS.read_text()
    m = re.search(r"^module\.exports = \{(.*?)^\};", text, re.M | re.S)
    assert m, "node/index.js has no module.exports = { ... };"
    return set(re.findall(r"^\s+(\w+)\s*[,:]", m.group(1), re.M))


def _node_dts_exports() -> set[str]:
    return set(re.findall(r"^export (?:declare )?(?:const|function|class) (\w+)",
                          NODE_DTS.read_text(), re.M))


def _node_calls(text: str, addon: str, fn: dict) -> bool:
    if re.search(r"\bbinding\.%s\(" % fn["node"], text):
        return True
    bridge = NODE_BRIDGE.get(fn["c"])
    return bool(bridge and re.search(r"\bbinding\.%s\(" % bridge, text)
                and "%s(" % fn["c"] in addon)


# ---------------------------------------------------------------- tests


def test_every_function_has_an_idiomatic_entry(spec):
    problems = []
    for fn in spec["functions"]:
        entry = fn.get("idiomatic")
        if not isinstance(entry, dict):
            problems.append("%s: no idiomatic = { python = ..., node = ... }" % fn["c"])
            continue
        for b in BINDINGS:
            value = entry.get(b)
            if not (isinstance(value, str) and value) and not (
                    isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
                problems.append("%s: idiomatic.%s must be a name, a list of names or \"raw\""
                                % (fn["c"], b))
            elif isinstance(value, list) and "raw" in value:
                problems.append("%s: idiomatic.%s: \"raw\" stands alone" % (fn["c"], b))
        unknown = set(entry) - set(BINDINGS) - {"note", "lua"}  # lua: test_pipeline.py
        if unknown:
            problems.append("%s: idiomatic has unknown keys %s" % (fn["c"], sorted(unknown)))
        if "raw" in [entry.get(b) for b in BINDINGS] and not entry.get("note"):
            problems.append("%s: \"raw\" needs a note saying what to use instead" % fn["c"])
    assert problems == []


def _entries(spec, binding):
    for fn in spec["functions"]:
        entry = fn.get("idiomatic")
        if isinstance(entry, dict) and entry.get(binding):
            yield fn, entry[binding]


def test_python_layer_has_every_function(spec):
    classes, exports, source = _py_classes(), _py_exports(), _py_source()
    assert {"Connector", "Relay", "_Manager", "PageKiteError"} <= set(classes)
    missing, not_called, wrapped = [], [], []
    entries = list(_entries(spec, "python"))
    assert len(entries) == len(spec["functions"]), "functions without idiomatic.python"
    for fn, value in entries:
        if value == "raw":
            if _py_calls(source, fn["c"]):
                wrapped.append(fn["c"])
            continue
        for name in _names(value):
            cls, _, member = name.rpartition(".")
            ok = _has_member(classes, cls, member) if cls else name in exports
            if not ok:
                missing.append("%s (%s)" % (name, fn["c"]))
        if not _py_calls(source, fn["c"]):
            not_called.append(fn["c"])
    assert missing == [], "named in spec idiomatic.python but not in the Python layer"
    assert not_called == [], "the Python layer never calls these"
    assert wrapped == [], "marked raw for Python but wrapped: name the wrapper in the spec"


def test_node_layer_has_every_function(spec):
    js, addon = NODE_JS.read_text(), NODE_ADDON.read_text()
    js_classes, dts_classes = _node_js_classes(), _node_dts_classes()
    js_exports, dts_exports = _node_js_exports(), _node_dts_exports()
    assert {"Manager", "Connector", "Relay", "PageKiteError"} <= set(js_classes)
    assert {"Manager", "Connector", "Relay", "PageKiteError"} <= set(dts_classes)
    missing_js, missing_dts, not_called, wrapped = [], [], [], []
    entries = list(_entries(spec, "node"))
    assert len(entries) == len(spec["functions"]), "functions without idiomatic.node"
    for fn, value in entries:
        if value == "raw":
            if _node_calls(js, addon, fn):
                wrapped.append(fn["c"])
            continue
        for name in _names(value):
            cls, _, member = name.rpartition(".")
            if cls:
                in_js = _has_member(js_classes, cls, member)
                in_dts = _has_member(dts_classes, cls, member)
            else:
                in_js, in_dts = name in js_exports, name in dts_exports
            if not in_js:
                missing_js.append("%s (%s)" % (name, fn["c"]))
            if not in_dts:
                missing_dts.append("%s (%s)" % (name, fn["c"]))
        if not _node_calls(js, addon, fn):
            not_called.append(fn["c"])
    assert missing_js == [], "named in spec idiomatic.node but not in node/index.js"
    assert missing_dts == [], "named in spec idiomatic.node but not declared in node/index.d.ts"
    assert not_called == [], "node/index.js never calls these"
    assert wrapped == [], "marked raw for Node but wrapped: name the wrapper in the spec"


def test_the_checks_see_a_missing_member(spec):
    """The parsers above find what exists and nothing more (so the tests can fail)."""
    py, js, dts = _py_classes(), _node_js_classes(), _node_dts_classes()
    assert _has_member(py, "Connector", "start") and _has_member(py, "Relay", "add_domain")
    assert not _has_member(py, "Connector", "add_domain")
    assert _has_member(js, "Connector", "setLogMask") and not _has_member(js, "Relay", "addKite")
    assert _has_member(dts, "Relay", "addDomain") and not _has_member(dts, "Connector", "setMotd")
    assert "Connector" in _py_exports() and "Connector" in _node_js_exports()
    assert not _py_calls("lib.pagekite_add_frontend_certname(", "pagekite_add_frontend")


def test_lua_wraps_every_relay_call(spec):
    """Every relay call has a Lua method (not only pagekite.raw), registered
    in lua/pagekite.c (the rest of Lua's coverage: tests/spec/test_pipeline.py
    and tests/lua)."""
    text = (ROOT / "lua" / "pagekite.c").read_text()
    relay = [fn for fn in spec["functions"] if "_relay_" in fn["c"]]
    assert len(relay) >= 9
    missing = []
    for fn in relay:
        name = (fn.get("idiomatic") or {}).get("lua", "")
        if not name.startswith("m:") or '{"%s", ' % name[2:] not in text:
            missing.append("%s (%r)" % (fn["c"], name))
    assert missing == [], "no Lua method for %s" % ", ".join(missing)
