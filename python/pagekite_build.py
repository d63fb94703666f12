"""cffi build script for pagekite._pagekite (API / out-of-line mode).

The extension is compiled from the C sources of this checkout (c/src/*.c),
never from a system copy of libpagekite.  The C tree is looked up, in order:

1. $PAGEKITE_C_DIR (a directory holding src/ and include/);
2. ../c relative to this file (building from a git checkout, the usual
   ``pip install ./python`` from the repository root);
3. ./csrc relative to this file (an sdist: setup.py's sdist command copies
   c/src, c/include and lua/plugins there).

The default Lua plugins (lua/plugins/*.lua) go into the package as
pagekite/lua/plugins/ (setup.py's build_py), where the extension finds them.

The cdef comes from pagekite/_cdef.py, which spec/generate.py writes from
spec/pagekite.toml; it is loaded by path so that no other ``pagekite`` module
(Debian's pagekite.py, say) can be picked up instead.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import os
import subprocess
import sys
from typing import Dict, List, Optional, Tuple

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))


def _load_cdef():
    path = os.path.join(HERE, "pagekite", "_cdef.py")
    spec = importlib.util.spec_from_file_location("_pagekite_cdef_for_build", path)
    if spec is None or spec.loader is None:
        raise RuntimeError("cannot load %s" % path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def find_c_dir() -> str:
    """The directory holding the C tree (src/*.c and include/pagekite.h)."""
    candidates = []
    env = os.environ.get("PAGEKITE_C_DIR")
    if env:
        candidates.append(env)
    candidates.append(os.path.join(HERE, os.pardir, "c"))
    candidates.append(os.path.join(HERE, "csrc"))
    for cand in candidates:
        cand = os.path.abspath(cand)
        if (os.path.isfile(os.path.join(cand, "include", "pagekite.h"))
                and glob.glob(os.path.join(cand, "src", "*.c"))):
            return cand
    raise RuntimeError(
        "libpagekite C sources not found; looked in: %s (set PAGEKITE_C_DIR to the "
        "repository's c/ directory)" % ", ".join(os.path.abspath(c) for c in candidates))


def find_lua_plugin_dir() -> Optional[str]:
    """The directory holding the default Lua plugins (lua/plugins/*.lua) to
    ship inside the package, or None: $PAGEKITE_LUA_PLUGIN_DIR, ../lua/plugins
    (a checkout), ./csrc/lua/plugins (an sdist)."""
    candidates = []
    env = os.environ.get("PAGEKITE_LUA_PLUGIN_DIR")
    if env:
        candidates.append(env)
    candidates.append(os.path.join(HERE, os.pardir, "lua", "plugins"))
    candidates.append(os.path.join(HERE, "csrc", "lua", "plugins"))
    for cand in candidates:
        cand = os.path.abspath(cand)
        if glob.glob(os.path.join(cand, "*.lua")):
            return cand
    return None


# Where the installed package keeps the default Lua plugins, relative to the
# directory of the extension module (pagekite/): setup.py's build_py copies
# them there, and plugins_lua.c's default_plugin_dir() looks there (next to
# the library that contains it, found with dladdr), whatever the working
# directory.  A build used in place (pip install -e) uses the source copy.
PLUGIN_RELDIR = "lua/plugins"


def plugin_macros(plugin_dir: Optional[str]) -> List[Tuple[str, str]]:
    """The plugins_lua.c macros that locate the default plugins (see
    default_plugin_dir() there and CMakeLists.txt, which sets the same ones)."""
    def c_string(text: str) -> str:
        return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')

    return [("PK_LUA_PLUGIN_RELDIR", c_string(PLUGIN_RELDIR)),
            ("PK_LUA_BUILD_LIBDIR", c_string(os.path.join(HERE, "pagekite"))),
            ("PK_LUA_SOURCE_PLUGIN_DIR", c_string(plugin_dir or ""))]


_cdef = _load_cdef()
C_DIR = find_c_dir()
LUA_PLUGIN_DIR = find_lua_plugin_dir()


def _pkg_config(*args: str) -> Optional[List[str]]:
    try:
        out = subprocess.run(["pkg-config", *args], check=True, capture_output=True, text=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.split()


def _load_spec_sources() -> Dict:
    """The "sources" of pagekite/_spec.json: the one list of core C files that
    CMake and node-gyp build too (spec/generate.py writes it)."""
    with open(os.path.join(HERE, "pagekite", "_spec.json"), encoding="utf-8") as f:
        return json.load(f)["sources"]


def select_sources(c_dir: str, with_lua: Optional[bool] = None
                   ) -> Tuple[List[str], Dict[str, list]]:
    """The C files to compile, and extra build options (Lua), as CMakeLists.txt does.

    The core sources of _spec.json; then plugins_lua.c when Lua 5.4 is found
    by pkg-config (with_lua None: unless PAGEKITE_WITH_LUA=0; False: never;
    True: required), else plugins_none.c.
    """
    listed = _load_spec_sources()
    sources = [os.path.join(c_dir, "src", os.path.basename(f)) for f in listed["core"]]
    extra: Dict[str, list] = {"include_dirs": [], "libraries": [], "library_dirs": [],
                                   "define_macros": []}
    lua_c = os.path.join(c_dir, "src", os.path.basename(listed["plugins"]["lua"]))
    none_c = os.path.join(c_dir, "src", os.path.basename(listed["plugins"]["none"]))
    want_lua = {None: os.environ.get("PAGEKITE_WITH_LUA", "auto").lower(), False: "0",
                True: "1"}[with_lua]
    cflags = libs = None
    if os.path.isfile(lua_c) and want_lua not in ("0", "off", "no", "false"):
        cflags = _pkg_config("--cflags", "lua5.4")
        libs = _pkg_config("--libs", "lua5.4")
        if (cflags is None or libs is None) and want_lua in ("1", "on", "yes", "true"):
            raise RuntimeError("PAGEKITE_WITH_LUA=%s but pkg-config finds no lua5.4" % want_lua)
    if cflags is not None and libs is not None:
        sources.append(lua_c)
        extra["include_dirs"] = [f[2:] for f in cflags if f.startswith("-I")]
        extra["libraries"] = [f[2:] for f in libs if f.startswith("-l")]
        extra["library_dirs"] = [f[2:] for f in libs if f.startswith("-L")]
        extra["define_macros"] = [("PK_WITH_LUA", "1")] + plugin_macros(find_lua_plugin_dir())
    elif os.path.isfile(none_c):
        sources.append(none_c)
    return sources, extra


SOURCES, _EXTRA = select_sources(C_DIR)

# String #defines cannot be declared to cffi as constants; expose each one
# through a static const pointer so the Python layer reads the header's value.
STRING_CONSTANT_PREFIX = "_pkpy_str_"
_str_cdef = "".join("static const char *const %s%s;\n" % (STRING_CONSTANT_PREFIX, name)
                    for name in _cdef.CONSTANTS)
_str_src = "".join("static const char *const %s%s = %s;\n" % (STRING_CONSTANT_PREFIX, name, name)
                   for name in _cdef.CONSTANTS)

# Only the module init function is exported: the library's own pagekite_*
# symbols stay private to the extension, so they never interpose with (or are
# interposed by) a libpagekite.so loaded elsewhere in the same process.
_build_tmp = os.path.join(HERE, "build")
os.makedirs(_build_tmp, exist_ok=True)
VERSION_SCRIPT = os.path.join(_build_tmp, "_pagekite.map")
with open(VERSION_SCRIPT, "w", encoding="ascii") as f:
    f.write("{ global: PyInit__pagekite; local: *; };\n")

ffibuilder = FFI()
ffibuilder.cdef(_cdef.CDEF)
ffibuilder.cdef(_str_cdef)
ffibuilder.set_source(
    "pagekite._pagekite",
    '#include "pagekite.h"\n' + _str_src,
    sources=SOURCES,
    # Rebuild when a header, the plugins or this script change, not only a
    # .c file (setuptools reuses python/build/ otherwise).
    depends=sorted(glob.glob(os.path.join(C_DIR, "include", "*.h"))
                   + glob.glob(os.path.join(C_DIR, "src", "*.h"))
                   + [os.path.abspath(__file__), os.path.join(HERE, "pagekite", "_cdef.py")]),
    include_dirs=[os.path.join(C_DIR, "include"), os.path.join(C_DIR, "src")]
    + _EXTRA["include_dirs"],
    libraries=["uv", "ssl", "crypto", "z", "pthread"] + _EXTRA["libraries"],
    library_dirs=_EXTRA["library_dirs"],
    define_macros=[("_GNU_SOURCE", None), ("PK_BUILDING", None)] + _EXTRA["define_macros"],
    extra_compile_args=["-fvisibility=hidden", "-Wno-unused-parameter"],
    extra_link_args=["-Wl,--version-script=" + VERSION_SCRIPT]
    if sys.platform.startswith("linux") else [],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
