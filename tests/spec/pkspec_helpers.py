"""Helpers for the spec tests: the generator modules and a stub libpagekite.

The stub is a tiny C implementation of every spec function, generated here
from the spec, that follows the documented contract for a NULL manager (fail
with the failure value, record a last error).  It lets the binding and
export checks run before (or without) the real core library.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INCLUDE = ROOT / "c" / "include"


def _import(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


generate = _import("pk_generate", ROOT / "spec" / "generate.py")
check_exports = _import("pk_check_exports", ROOT / "spec" / "check_exports.py")


def need_tool(*names: str) -> None:
    for n in names:
        if shutil.which(n) is None:
            pytest.skip(f"{n} not installed")


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def stub_source(spec: dict, skip: tuple[str, ...] = (), extra: str = "") -> str:
    """C source implementing the spec's functions (minus skip) as a stub."""
    lines = [
        '#include "pagekite.h"',
        "#include <stdio.h>",
        "#include <stdlib.h>",
        "struct pagekite_manager { int status; char log[64]; };",
        "static _Thread_local const char *pk_err = \"\";",
        "/* Internal helper: must not be exported (visibility + version script). */",
        "int pk_internal_helper(void);",
        "int pk_internal_helper(void) { return 42; }",
        extra,
    ]
    for fn in spec["functions"]:
        if fn["c"] in skip:
            continue
        sig = generate.c_signature(fn, "PK_EXPORT ")
        sig[-1] = sig[-1].removesuffix(";")
        lines += sig
        lines.append("{")
        args = fn.get("args", [])
        for a in args:
            lines.append(f"  (void){a['name']};")
        rtype = fn["returns"]["type"]
        fail = {"int": "-1", "long long": "-1", "char *": "NULL", "pagekite_mgr": "NULL",
                "const char *": '""', "void": ""}[rtype]
        if args and args[0]["type"] == "pagekite_mgr" and fn["c"] != "pagekite_perror":
            lines.append(f'  if (mgr == NULL) {{ pk_err = "{fn["c"]}: no manager"; return {fail}; }}')
        c = fn["c"]
        if fn.get("role") == "constructor":
            lines.append("  pagekite_mgr m = calloc(1, sizeof *m);")
            lines.append("  if (m) m->status = PK_STATUS_STARTUP;")
            lines.append("  return m;")
        elif fn.get("role") == "destructor":
            lines.append("  free(mgr); return 0;")
        elif c == "pagekite_get_status":
            lines.append("  return mgr->status;")
        elif c == "pagekite_get_log":
            lines.append('  snprintf(mgr->log, sizeof mgr->log, "stub log\\n"); return mgr->log;')
        elif c == "pagekite_get_kite_reason":  # a kite with no reason yet
            lines.append('  mgr->log[0] = 0; return mgr->log;')
        elif c == "pagekite_last_error":
            lines.append("  return pk_err;")
        elif c == "pagekite_last_error_code":  # every stub failure is a NULL manager
            lines.append("  return pk_err[0] ? PK_EINVAL : PK_OK;")
        elif c == "pagekite_version_number":
            lines.append("  return PK_VERSION_NUMBER;")
        elif c == "pagekite_perror":
            lines.append('  fprintf(stderr, "%s: %s\\n", prefix ? prefix : "", pk_err);')
        elif rtype != "void":
            lines.append("  return 0;")
        lines.append("}")
    return "\n".join(lines) + "\n"


def build_stub(spec: dict, out_dir: Path, *, version_script: bool = True,
               skip: tuple[str, ...] = (), extra: str = "") -> Path:
    """Compile the stub into out_dir/libpagekite.so.  Its soname differs from
    the real library's, so a process that already loaded the real
    libpagekite.so.1 (the e2e ctypes tests) still binds to the stub."""
    need_tool("gcc")
    out_dir.mkdir(parents=True, exist_ok=True)
    src = out_dir / "stub.c"
    src.write_text(stub_source(spec, skip, extra))
    lib = out_dir / "libpagekite.so"
    cmd = ["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-fPIC", "-shared",
           "-fvisibility=hidden", f"-I{INCLUDE}", "-Wl,-soname,libpagekite-stub.so.1",
           "-o", str(lib), str(src)]
    if version_script:
        cmd.insert(-3, f"-Wl,--version-script={ROOT / 'c' / 'libpagekite.map'}")
    r = run(cmd)
    assert r.returncode == 0, r.stderr
    alias = out_dir / "libpagekite-stub.so.1"
    if not alias.exists():
        alias.symlink_to(lib.name)
    return lib
