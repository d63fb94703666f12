"""spec/ is the single source of the API: generated files are current, the
header compiles strictly, the spec covers the seed (PageKiteAPI.txt), and the
generated cffi cdef, SWIG interface and version script work."""

from __future__ import annotations

import os
import re
import shutil
import sys
import tomllib
from pathlib import Path

import pytest

from pkspec_helpers import INCLUDE, ROOT, _import, build_stub, check_exports, generate, need_tool, run

SEED = Path(os.environ.get("PK_SEED_API", ROOT.parent / "shared" / "seed" / "PageKiteAPI.txt"))
if not SEED.exists():
    SEED = Path("/work/shared/seed/PageKiteAPI.txt")
GEN = [sys.executable, str(ROOT / "spec" / "generate.py")]
STRICT = ["-Wall", "-Wextra", "-Werror", "-pedantic"]


def seed_text() -> str:
    if not SEED.exists():
        pytest.skip(f"seed API document not found at {SEED}")
    return SEED.read_text(encoding="utf-8")


def seed_functions() -> dict[str, str]:
    """Java name -> Java return type, from the seed's 'type name(...)' lines."""
    found = dict((name, rtype) for rtype, name in
                 re.findall(r"^(boolean|int|String|void)\s+(\w+)\(\.\.\.\)\s*$",
                            seed_text(), re.M))
    assert len(found) >= 25, f"seed parse found only {sorted(found)}"
    return found


def seed_constants() -> dict[str, str]:
    return dict(re.findall(r"^PageKiteAPI\.(PK_\w+)\s*=\s*(\S+)\s*$", seed_text(), re.M))


# ---------------------------------------------------------------- generation


def test_check_passes_on_tree():
    r = run(GEN + ["--check"])
    assert r.returncode == 0, r.stderr


def test_check_names_every_stale_file(tmp_path):
    r = run(GEN + ["--root", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    assert run(GEN + ["--check", "--root", str(tmp_path)]).returncode == 0
    header = tmp_path / "c" / "include" / "pagekite.h"
    header.write_text(header.read_text() + "/* hand edit */\n")
    (tmp_path / "c" / "libpagekite.map").unlink()
    r = run(GEN + ["--check", "--root", str(tmp_path)])
    assert r.returncode == 1
    assert "c/include/pagekite.h" in r.stderr and "c/libpagekite.map" in r.stderr
    assert "doc/API.md" not in r.stderr


def test_generation_is_deterministic(spec):
    assert generate.render(spec) == generate.render(generate.load())


@pytest.mark.parametrize("mutation, message", [
    (('value = 0x110000\nexpr', 'value = 0x110001\nexpr'), "expr gives"),
    (('when = "any_time"', 'when = "sometimes"'), "unknown when"),
    (('type = "long long"\ndoc = "The counter', 'type = "size_t"\ndoc = "The counter'),
     "unknown return type"),
    (('java = "addFrontend"', 'java = "addKite"'), "used twice"),
])
def test_generator_rejects_bad_specs(tmp_path, mutation, message):
    text = (ROOT / "spec" / "pagekite.toml").read_text()
    old, new = mutation
    assert old in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace(old, new, 1))
    with pytest.raises(generate.SpecError, match=message):
        generate.load(bad)


# ---------------------------------------------------------------- header


@pytest.mark.parametrize("compiler, flags", [
    ("gcc", ["-x", "c", "-std=c11", "-Wstrict-prototypes", "-Wmissing-prototypes"]),
    ("g++", ["-x", "c++", "-std=c++17"]),
])
def test_header_compiles_alone(tmp_path, compiler, flags):
    need_tool(compiler)
    src = tmp_path / "inc.c"
    src.write_text('#include "pagekite.h"\n#include "pagekite.h"\n'
                   "int main(void) { pagekite_mgr m = 0; return pagekite_get_status(m) == 0; }\n")
    r = run([compiler, *flags, *STRICT, f"-I{INCLUDE}", "-c", str(src), "-o",
             str(tmp_path / "inc.o")])
    assert r.returncode == 0, r.stderr


def test_header_values_equal_spec(tmp_path, spec):
    """Compile and run a program printing every constant through the header."""
    need_tool("gcc")
    body = []
    for c in spec["constants"]:
        fmt = "%s" if c["type"] == "string" else "%d"
        body.append(f'  printf("{c["name"]}={fmt}\\n", {c["name"]});')
    src = tmp_path / "vals.c"
    src.write_text('#include <stdio.h>\n#include "pagekite.h"\nint main(void) {\n'
                   + "\n".join(body) + "\n  return 0;\n}\n")
    exe = tmp_path / "vals"
    r = run(["gcc", "-std=c11", *STRICT, f"-I{INCLUDE}", "-o", str(exe),
             str(src)])
    assert r.returncode == 0, r.stderr
    got = dict(line.split("=", 1) for line in run([str(exe)]).stdout.splitlines())
    want = {c["name"]: str(c["value"]) for c in spec["constants"]}
    assert got == want


def test_header_declares_every_spec_function(spec):
    text = (INCLUDE / "pagekite.h").read_text()
    for fn in spec["functions"]:
        assert re.search(rf"^PK_EXPORT [^;(]*\b{fn['c']}\(", text, re.M), fn["c"]


# ---------------------------------------------------------------- seed coverage


def test_every_seed_function_has_a_spec_entry(spec):
    by_java = {fn["java"]: fn for fn in spec["functions"]}
    types = generate.types_of(spec)
    for name, rtype in seed_functions().items():
        assert name in by_java, f"seed function {name} missing from spec"
        fn = by_java[name]
        assert types[fn["returns"]["type"]]["java"] == rtype, name
        assert fn["since"] == "0.91", name


def test_additions_are_marked_0_92(spec):
    seed = set(seed_functions())
    for fn in spec["functions"]:
        if fn["java"] not in seed:
            assert fn["since"] == "0.92", fn["c"]


def test_seed_constants_have_seed_values(spec):
    consts = {c["name"]: c for c in spec["constants"]}
    seed = seed_constants()
    assert "PK_WITH_SSL" in seed and "PK_LOG_ALL" in seed
    for name, value in seed.items():
        assert name in consts, f"seed constant {name} missing from spec"
        if name == "PK_VERSION":
            assert consts[name]["value"] > value.strip('"'), "our version must be newer"
            continue
        assert consts[name]["value"] == int(value, 0), name


def test_binding_names_follow_the_rules(spec):
    for fn in spec["functions"]:
        base = fn["c"].removeprefix("pagekite_")
        assert fn["python"] == base and fn["lua"] == base, fn["c"]
        assert fn["node"] == fn["java"], fn["c"]
        assert re.fullmatch(r"[a-z][A-Za-z0-9]*", fn["java"]), fn["java"]


def test_api_doc_covers_everything(spec):
    doc = (ROOT / "doc" / "API.md").read_text()
    for fn in spec["functions"]:
        assert f"### {fn['c']}" in doc
        assert generate.java_signature(fn, spec) in doc
    for c in spec["constants"]:
        assert f"`{c['name']}`" in doc


# ---------------------------------------------------------------- version script


def test_map_exports_exactly_the_spec(spec):
    text = (ROOT / "c" / "libpagekite.map").read_text()
    names = set(re.findall(r"^\s+(pagekite_\w+);$", text, re.M))
    assert names == {fn["c"] for fn in spec["functions"]}
    assert re.search(r"local:\s*\*;", text)


def test_check_exports_accepts_the_stub(stub_lib):
    r = run([sys.executable, str(ROOT / "spec" / "check_exports.py"), str(stub_lib)])
    assert r.returncode == 0, r.stderr


def test_check_exports_reports_missing_and_extra(spec, tmp_path):
    lib = build_stub(spec, tmp_path / "leaky", version_script=False,
                     skip=("pagekite_tick",),
                     extra="PK_EXPORT int pk_leaked(void);\nint pk_leaked(void) { return 1; }")
    missing, extra = check_exports.compare(lib)
    assert missing == {"pagekite_tick"}
    assert extra == {"pk_leaked"}
    r = run([sys.executable, str(ROOT / "spec" / "check_exports.py"), str(lib)])
    assert r.returncode == 1
    assert "missing: pagekite_tick" in r.stderr and "extra: pk_leaked" in r.stderr


# ---------------------------------------------------------------- cffi


def test_cdef_module_matches_spec(spec):
    _cdef = _import("pk_cdef", ROOT / "python" / "pagekite" / "_cdef.py")
    strings = {c["name"]: c["value"] for c in spec["constants"] if c["type"] == "string"}
    ints = {c["name"]: c["value"] for c in spec["constants"] if c["type"] == "int"}
    assert _cdef.CONSTANTS == strings
    assert _cdef.INT_CONSTANTS == ints
    assert set(_cdef.FUNCTIONS.values()) == {fn["c"] for fn in spec["functions"]}
    assert "PK_VERSION " not in _cdef.CDEF  # strings are not cdef'd


def test_cdef_abi_mode_against_stub(spec, stub_lib):
    """The CDEF parses and, dlopen()ed, every function has the spec's arity."""
    cffi = pytest.importorskip("cffi")
    _cdef = _import("pk_cdef", ROOT / "python" / "pagekite" / "_cdef.py")
    ffi = cffi.FFI()
    ffi.cdef(_cdef.CDEF)
    lib = ffi.dlopen(str(stub_lib))
    for fn in spec["functions"]:
        t = ffi.typeof(getattr(lib, fn["c"]))
        assert t.kind == "function", fn["c"]
        assert len(t.args) == len(fn.get("args", [])), fn["c"]
    assert lib.pagekite_version_number() == _cdef.INT_CONSTANTS["PK_VERSION_NUMBER"]


def test_cdef_api_mode_against_stub(spec, stub_lib, tmp_path):
    """Build a cffi extension with the CDEF and the real header: cffi checks
    every declaration against pagekite.h at compile time."""
    cffi = pytest.importorskip("cffi")
    pytest.importorskip("setuptools")
    need_tool("gcc")
    _cdef = _import("pk_cdef", ROOT / "python" / "pagekite" / "_cdef.py")
    ffi = cffi.FFI()
    ffi.cdef(_cdef.CDEF)
    ffi.set_source("_pk_cdef_check", '#include "pagekite.h"', include_dirs=[str(INCLUDE)],
                   library_dirs=[str(stub_lib.parent)], libraries=["pagekite"],
                   extra_link_args=[f"-Wl,-rpath,{stub_lib.parent}"])
    out = ffi.compile(tmpdir=str(tmp_path), verbose=False)
    sys.path.insert(0, str(tmp_path))
    try:
        mod = __import__("_pk_cdef_check")
    finally:
        sys.path.pop(0)
    lib = mod.lib
    assert Path(out).exists()
    for name, value in _cdef.INT_CONSTANTS.items():
        assert getattr(lib, name) == value, name
    assert lib.pagekite_version_number() == lib.PK_VERSION_NUMBER
    assert lib.pagekite_get_status(mod.ffi.NULL) == -1
    assert mod.ffi.string(lib.pagekite_last_error()) == b"pagekite_get_status: no manager"


# ---------------------------------------------------------------- SWIG / Java


def test_swig_java_binding_over_stub(spec, stub_lib, tmp_path):
    """swig -> wrapper compiled -Werror -> javac -> PageKiteAPITest on the stub."""
    need_tool("swig", "javac", "java", "gcc")
    javac = Path(os.path.realpath(shutil.which("javac")))
    jdk = Path(os.environ.get("JAVA_HOME", javac.parent.parent))
    if not (jdk / "include" / "jni.h").exists():
        pytest.skip("jni.h not found (set JAVA_HOME)")
    gen = tmp_path / "java" / "net" / "pagekite" / "lib"
    gen.mkdir(parents=True)
    wrap = tmp_path / "pagekite_wrap.c"
    r = run(["swig", "-java", "-package", "net.pagekite.lib", "-outdir", str(gen), "-o",
             str(wrap), str(ROOT / "bindings" / "swig" / "pagekite.i")])
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in gen.iterdir()) == sorted(
        ["PageKiteAPI.java", "PageKiteAPIConstants.java", "PageKiteAPIJNI.java"]
        + ["%s.java" % st["c"] for st in spec.get("structs", [])])
    jni = tmp_path / "libpagekite_jni.so"
    r = run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
             f"-I{INCLUDE}", f"-I{jdk / 'include'}", f"-I{jdk / 'include' / 'linux'}",
             "-o", str(jni), str(wrap), f"-L{stub_lib.parent}", "-lpagekite",
             f"-Wl,-rpath,{stub_lib.parent}"])
    assert r.returncode == 0, r.stderr
    classes = tmp_path / "classes"
    test_src = ROOT / "bindings" / "java" / "test" / "PageKiteAPITest.java"
    # The hand-written loader the generated JNI class calls (bindings/CMakeLists.txt).
    loader = ROOT / "bindings" / "java" / "src" / "net" / "pagekite" / "lib" / "NativeLoader.java"
    r = run(["javac", "-d", str(classes), *map(str, gen.iterdir()), str(loader), str(test_src)])
    assert r.returncode == 0, r.stderr
    api = (gen / "PageKiteAPI.java").read_text()
    for fn in spec["functions"]:
        assert f"public static {generate.java_signature(fn, spec)}" in api, fn["java"]
    r = run(["java", f"-Djava.library.path={tmp_path}", "-cp", str(classes), "PageKiteAPITest"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 passed, 0 failed" in r.stdout


def test_spec_is_valid_toml():
    with open(ROOT / "spec" / "pagekite.toml", "rb") as f:
        data = tomllib.load(f)
    assert len(data["functions"]) >= 35  # the seed and our additions; grows over time
