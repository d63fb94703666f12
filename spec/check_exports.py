#!/usr/bin/env python3
"""Check that a built libpagekite exports exactly the spec's functions.

    python3 spec/check_exports.py build/libpagekite.so

Compares `nm -D --defined-only LIB` with the functions of spec/pagekite.toml
and exits 1, listing them, if a spec function is missing from the library or
the library exports anything else (an internal symbol leaking past the
version script).  Version-node symbols (PAGEKITE_1) are not functions and are
ignored.  Standard library only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tomllib
from pathlib import Path

SPEC = Path(__file__).resolve().parent / "pagekite.toml"


def spec_functions(spec_path: Path = SPEC) -> set[str]:
    with open(spec_path, "rb") as f:
        spec = tomllib.load(f)
    return {fn["c"] for fn in spec["functions"]}


def spec_version_node(spec_path: Path = SPEC) -> str:
    with open(spec_path, "rb") as f:
        return tomllib.load(f)["library"]["version_node"]


def exported_symbols(lib: Path, nm: str = "nm") -> dict[str, str]:
    """Defined dynamic symbols of lib: name (without @version) -> nm type."""
    out = subprocess.run([nm, "-D", "--defined-only", str(lib)],
                         check=True, capture_output=True, text=True).stdout
    syms: dict[str, str] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 2:
            continue
        kind, name = parts[-2], parts[-1]
        syms[name.split("@", 1)[0]] = kind
    return syms


def compare(lib: Path, spec_path: Path = SPEC, nm: str = "nm") -> tuple[set[str], set[str]]:
    """(missing, extra) symbol sets for lib against the spec."""
    want = spec_functions(spec_path)
    node = spec_version_node(spec_path)
    have = {name for name, kind in exported_symbols(lib, nm).items()
            if not (kind == "A" and name == node)}
    return want - have, have - want


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("lib", type=Path, help="path to libpagekite.so")
    ap.add_argument("--spec", type=Path, default=SPEC)
    ap.add_argument("--nm", default="nm")
    opts = ap.parse_args(argv)
    if not opts.lib.exists():
        print(f"check_exports: {opts.lib}: no such file", file=sys.stderr)
        return 2
    try:
        missing, extra = compare(opts.lib, opts.spec, opts.nm)
    except subprocess.CalledProcessError as e:
        print(f"check_exports: nm failed: {e.stderr.strip()}", file=sys.stderr)
        return 2
    for name in sorted(missing):
        print(f"missing: {name} (in spec, not exported)", file=sys.stderr)
    for name in sorted(extra):
        print(f"extra: {name} (exported, not in spec)", file=sys.stderr)
    if missing or extra:
        return 1
    print(f"check_exports: {opts.lib} exports exactly the {len(spec_functions(opts.spec))} "
          "spec functions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
