"""One pipeline: spec/generate.py resolves the spec into spec/pagekite.json
(explicit nullability, enum groups, structs, per-binding names, the core C
sources) and every binding generator and build reads that, never the TOML
or doc text."""

from __future__ import annotations

import glob
import json
import re
import subprocess
import sys

import pytest

from pkspec_helpers import ROOT, _import, generate

JSON = ROOT / "spec" / "pagekite.json"
PY_JSON = ROOT / "python" / "pagekite" / "_spec.json"


@pytest.fixture(scope="module")
def model() -> dict:
    return json.loads(JSON.read_text())


def mutate(tmp_path, old: str, new: str):
    text = (ROOT / "spec" / "pagekite.toml").read_text()
    assert old in text, old
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new, 1))
    return bad


def test_json_is_generated_and_shipped_in_the_python_package(spec):
    files = generate.render(spec)
    assert "spec/pagekite.json" in files and "python/pagekite/_spec.json" in files
    assert JSON.read_text() == files["spec/pagekite.json"]
    assert PY_JSON.read_text() == JSON.read_text()
    pkg = (ROOT / "python" / "pyproject.toml").read_text()
    assert "_spec.json" in pkg


def test_json_has_every_function_with_explicit_nullability(spec, model):
    assert [f["c"] for f in model["functions"]] == [f["c"] for f in spec["functions"]]
    for fn in model["functions"]:
        for a in fn["args"]:
            assert isinstance(a["nullable"], bool), (fn["c"], a["name"])
            if a["type"] == "pagekite_mgr":  # every call takes a NULL manager
                assert a["nullable"] is True
            elif not a["type"].endswith("*"):
                assert a["nullable"] is False
    nullable = {(f["c"], a["name"]) for f in model["functions"] for a in f["args"] if a["nullable"]}
    assert ("pagekite_init", "dyndns_url") in nullable
    assert ("pagekite_add_relay_tls_endpoint", "key_file") in nullable
    # The heuristic ("NULL" in the doc) took cert_file as nullable: it is not.
    assert ("pagekite_add_relay_tls_endpoint", "cert_file") not in nullable
    assert ("pagekite_add_kite", "secret") not in nullable


@pytest.mark.parametrize("old, new, message", [
    # A doc that allows NULL without the flag.
    ('doc = "Dynamic DNS update URL (a format string), or NULL for none."\nnullable = true',
     'doc = "Dynamic DNS update URL (a format string), or NULL for none."',
     "mentions NULL but is not nullable"),
    # The flag without a doc that says what NULL means.
    ('doc = "Shared secret for these kites."', 'doc = "Shared secret for these kites."\n'
     'nullable = true', "nullable but its doc does not say"),
    # Only pointers can be NULL.
    ('name = "port"\ntype = "int"', 'name = "port"\ntype = "int"\nnullable = true',
     "only pointer arguments"),
])
def test_generator_refuses_nullability_that_disagrees_with_the_doc(tmp_path, old, new, message):
    with pytest.raises(generate.SpecError, match=message):
        generate.load(mutate(tmp_path, old, new))


def test_json_enum_groups(model):
    enums = {g["key"]: g.get("enum") for g in model["groups"]}
    assert enums["status"]["members"]["FLYING"] == 40
    assert list(enums["counter"]["members"]) == [
        "KITES_LIVE", "TUNNELS", "STREAMS", "BYTES_IN", "BYTES_OUT", "ERRORS",
        "STREAMS_TOTAL", "REJECTED"]
    assert enums["kite"]["members"] == {"WAITING": 0, "FLYING": 1, "REJECTED": 2,
                                       "DUPLICATE": 3}
    assert "VERSION" not in enums["event"]["members"]  # the struct version, not a kind
    assert enums["event"]["members"]["LOST"] == 6
    for g in model["groups"]:
        assert set(g["constants"]) <= {c["name"] for c in model["constants"]}


def test_json_structs_and_names(model):
    (st,) = model["structs"]
    assert st["c"] == "pagekite_event" and st["version_constant"] == "PK_EVENT_VERSION"
    assert [f["name"] for f in st["fields"]][:2] == ["version", "kind"]
    fns = {f["c"]: f for f in model["functions"]}
    nev = fns["pagekite_next_events"]
    assert nev["args"][2]["out_array"] == {"struct": "pagekite_event", "count": "max"}
    assert fns["pagekite_add_kite"]["names"]["node"] == "addKite"
    for fn in model["functions"]:
        assert set(fn["names"]) == {"c", "java", "python", "node", "lua"}
        lua = fn["idiomatic"]["lua"]
        assert lua == "raw only" or re.fullmatch(r"(m:|pagekite\.)[a-z_]+", lua), (fn["c"], lua)


def test_spec_requires_a_lua_idiomatic_name(tmp_path):
    with pytest.raises(generate.SpecError, match="idiomatic"):
        generate.load(mutate(tmp_path, ', lua = "m:tick" }', " }"))


def test_json_core_sources_are_cmakes_selection(model):
    want = sorted(p.rsplit("/", 1)[1] for p in glob.glob(str(ROOT / "c" / "src" / "*.c"))
                  if not re.search(r"/plugins_[a-z]+\.c$", p))
    assert model["sources"]["core"] == ["c/src/" + f for f in want]
    assert model["sources"]["plugins"] == {"lua": "c/src/plugins_lua.c",
                                           "none": "c/src/plugins_none.c"}


def test_builds_take_the_core_sources_from_the_json(model):
    cmake = (ROOT / "CMakeLists.txt").read_text()
    assert "file(GLOB PK_SOURCES" not in cmake and "pagekite.json" in cmake
    gyp_lister = ROOT / "node" / "scripts" / "core-sources.js"
    out = subprocess.run(["node", str(gyp_lister)], capture_output=True, text=True,
                         cwd=ROOT / "node", check=True).stdout.split()
    assert out == ["../" + s for s in model["sources"]["core"]] + ["../c/src/plugins_none.c"]
    build = _import("pk_build_sources", ROOT / "python" / "pagekite_build.py")
    sources, _ = build.select_sources(str(ROOT / "c"), with_lua=False)
    assert [p.replace(str(ROOT) + "/", "") for p in map(str, sources)] == \
        model["sources"]["core"] + ["c/src/plugins_none.c"]


def test_node_glue_reads_the_json_not_the_toml():
    src = (ROOT / "node" / "generate_glue.py").read_text()
    assert "pagekite.json" in src and "tomllib" not in src and '"NULL" in' not in src
    r = subprocess.run([sys.executable, str(ROOT / "node" / "generate_glue.py"), "--check"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_node_raw_nullability_follows_the_json(model):
    dts = (ROOT / "node" / "binding.d.ts").read_text()
    assert re.search(r"addRelayTlsEndpoint\(mgr: [^,]+, name: string, certFile: string, "
                     r"keyFile: string \| null\)", dts), "cert_file is not nullable"


def test_python_call_table_reads_the_json_not_the_cdef():
    src = (ROOT / "python" / "pagekite" / "api.py").read_text()
    assert "_spec.json" in src and "_PROTO_RE" not in src and "re.compile" not in src


def test_name_tables_are_generated():
    names = (ROOT / "c" / "src" / "pk_names.h").read_text()
    assert "GENERATED" in names and 'X(PK_COUNTER_STREAMS_TOTAL, "STREAMS_TOTAL", ' \
        '"streams_total")' in names
    for path in ("c/tools/cli_common.h", "lua/pagekite.c", "c/src/plugins_lua.c"):
        text = (ROOT / path).read_text()
        assert '"streams_total"' not in text and "PK_COUNTER_NAMES" in text, path
    code = re.sub(r"/\*.*?\*/", "", (ROOT / "lua" / "pagekite.c").read_text(), flags=re.S)
    assert '"flying"' not in code and '"waiting"' not in code
    mgr = (ROOT / "python" / "pagekite" / "_manager.py").read_text()
    assert "STREAMS_TOTAL = " not in mgr and "FLYING = " not in mgr
