"""The LuaRocks rockspec (lua/pagekite-VERSION-1.rockspec) in step with the tree.

The rockspec lists the C sources itself (LuaRocks' builtin backend has no
way to read spec/pagekite.json), so this checks it against the one list:
the core sources and the Lua plugin host of spec/pagekite.json, the module's
own sources, every default plugin of lua/plugins/, and the version of
CMakeLists.txt.  tests/install/stage_lua.sh builds and installs the rock.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LUA = shutil.which("lua5.4")

# Loads the rockspec as LuaRocks does (a Lua file of assignments) and prints
# the fields this test checks as JSON.
DUMP = r"""
local env = {}
local chunk = assert(loadfile(arg[1], "t", env))
chunk()
local function q(s) return '"' .. tostring(s):gsub('[%c"\\]', function(c)
  return string.format("\\u%04x", c:byte()) end) .. '"' end
local function list(t) local o = {} for i, v in ipairs(t or {}) do o[i] = q(v) end
  return "[" .. table.concat(o, ",") .. "]" end
local m = env.build.modules.pagekite
local inst = {}
for k, v in pairs(env.build.install and env.build.install.lua or {}) do inst[#inst + 1] = q(k) .. ":" .. q(v) end
local deps = {}
for k in pairs(env.external_dependencies or {}) do deps[#deps + 1] = q(k) end
print("{" .. table.concat({
  '"package":' .. q(env.package), '"version":' .. q(env.version),
  '"rockspec_format":' .. q(env.rockspec_format), '"type":' .. q(env.build.type),
  '"sources":' .. list(m.sources), '"defines":' .. list(m.defines),
  '"incdirs":' .. list(m.incdirs), '"libraries":' .. list(m.libraries),
  '"dependencies":' .. list(env.dependencies),
  '"external":[' .. table.concat(deps, ",") .. ']',
  '"install_lua":{' .. table.concat(inst, ",") .. '}'}, ",") .. "}")
"""


def project_version() -> str:
    text = (ROOT / "CMakeLists.txt").read_text()
    m = re.search(r"project\(libpagekite VERSION ([0-9.]+)", text)
    assert m, "no project VERSION in CMakeLists.txt"
    return m.group(1)


def rockspec_path() -> Path:
    return ROOT / "lua" / f"pagekite-{project_version()}-1.rockspec"


@pytest.fixture(scope="module")
def rock() -> dict:
    assert LUA, "lua5.4 not found (Debian: apt-get install lua5.4)"
    path = rockspec_path()
    assert path.is_file(), f"no rockspec for version {project_version()}: {path}"
    out = subprocess.run([LUA, "-e", DUMP, "-", str(path)], capture_output=True, text=True,
                         timeout=30)
    # lua5.4 -e CODE - FILE: "-" is the script (stdin), FILE is arg[1].
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_rockspec_is_the_only_one_and_named_for_the_version():
    specs = sorted(p.name for p in ROOT.glob("**/*.rockspec")
                   if not any(part.startswith(("build", ".", "node_modules")) for part in
                              p.relative_to(ROOT).parts))
    assert specs == [rockspec_path().name], specs


def test_rockspec_version_and_package(rock):
    assert rock["package"] == "pagekite"
    assert rock["version"] == f"{project_version()}-1"
    assert rock["rockspec_format"] == "3.0"
    assert rock["type"] == "builtin"
    assert any(d.replace(" ", "").startswith("lua>=5.4") for d in rock["dependencies"]), \
        rock["dependencies"]


def test_rockspec_sources_are_the_spec_list(rock):
    spec = json.loads((ROOT / "spec" / "pagekite.json").read_text())["sources"]
    want = ["pagekite.c", "pagekite_raw.c"] + ["../" + f for f in spec["core"]] + \
        ["../" + spec["plugins"]["lua"]]
    assert rock["sources"] == want
    for f in rock["sources"]:
        assert (ROOT / "lua" / f).is_file(), f


def test_rockspec_builds_the_lua_plugin_host(rock):
    defines = {d.split("=", 1)[0]: d.split("=", 1)[1] if "=" in d else None
               for d in rock["defines"]}
    assert defines.get("PK_WITH_LUA") == "1"
    assert "_GNU_SOURCE" in defines and "PK_BUILDING" in defines
    # The plugin host looks for the plugins relative to pagekite.so: from
    # <tree>/lib/lua/5.4/ to where build.install.lua puts them.
    assert defines["PK_LUA_PLUGIN_RELDIR"] == '"../../../share/lua/5.4/pagekite/plugins"'
    for name in ("PK_LUA_PLUGIN_DIR", "PK_LUA_BUILD_LIBDIR", "PK_LUA_SOURCE_PLUGIN_DIR"):
        assert name in defines, name
    assert set(rock["external"]) == {"LIBUV", "OPENSSL", "ZLIB"}
    assert {"uv", "ssl", "crypto", "z"} <= set(rock["libraries"])


def test_rockspec_installs_every_default_plugin(rock):
    plugins = sorted(p.name for p in (ROOT / "lua" / "plugins").glob("*.lua"))
    assert plugins, "no lua/plugins/*.lua"
    want = {f"pagekite.plugins.{p[:-4]}": f"plugins/{p}" for p in plugins}
    assert rock["install_lua"] == want
