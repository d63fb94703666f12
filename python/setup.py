"""setuptools glue: the cffi extension, the Lua plugins, and a self-contained sdist.

Metadata lives in pyproject.toml; this file only adds what pyproject cannot
say:

- ``cffi_modules`` (cffi's setuptools hook; pagekite_build.py compiles the C
  core into ``pagekite._pagekite``);
- a build_py that copies the default Lua plugins (../lua/plugins/*.lua, or
  csrc/lua/plugins in an sdist) into the package as pagekite/lua/plugins/,
  where the extension looks for them (pagekite_build.PLUGIN_RELDIR);
- an sdist command that copies ../c/src, ../c/include and ../lua/plugins into
  the sdist as csrc/, so that an sdist builds on its own, outside the
  repository (pagekite_build.py looks there after ../c).
"""

import glob
import importlib.util
import os
import shutil

from setuptools import setup
from setuptools.command.build_py import build_py as _build_py
from setuptools.command.sdist import sdist as _sdist

HERE = os.path.dirname(os.path.abspath(__file__))


def _build_script():
    """pagekite_build.py, loaded by path (it holds the source lookups)."""
    spec = importlib.util.spec_from_file_location("_pagekite_build_for_setup",
                                                  os.path.join(HERE, "pagekite_build.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class build_py(_build_py):
    """build_py that also installs the default Lua plugins into the package."""

    def run(self):
        super().run()
        if self.editable_mode:
            return  # an editable install runs the extension from python/pagekite
        build = _build_script()
        src = build.find_lua_plugin_dir()
        if src is None:
            raise RuntimeError("the default Lua plugins (lua/plugins/*.lua) are missing: looked "
                               "in $PAGEKITE_LUA_PLUGIN_DIR, ../lua/plugins and csrc/lua/plugins")
        dest = os.path.join(self.build_lib, "pagekite", *build.PLUGIN_RELDIR.split("/"))
        self.mkpath(dest)
        for f in sorted(glob.glob(os.path.join(src, "*.lua"))):
            self.copy_file(f, os.path.join(dest, os.path.basename(f)))


class sdist(_sdist):
    """sdist that carries the C sources and Lua plugins of the checkout as csrc/."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        build = _build_script()
        c_dir = build.C_DIR
        plugin_dir = build.find_lua_plugin_dir()
        if plugin_dir is None:
            raise RuntimeError("the default Lua plugins (lua/plugins/*.lua) are missing")
        for sub in ("src", "include"):
            dest = os.path.join(base_dir, "csrc", sub)
            if os.path.exists(dest):
                shutil.rmtree(dest)
            shutil.copytree(os.path.join(c_dir, sub), dest,
                            ignore=shutil.ignore_patterns("*.o", "*~", ".*"))
        dest = os.path.join(base_dir, "csrc", "lua", "plugins")
        if os.path.exists(dest):
            shutil.rmtree(dest)
        os.makedirs(dest)
        for f in sorted(glob.glob(os.path.join(plugin_dir, "*.lua"))):
            shutil.copy2(f, dest)


setup(
    cffi_modules=["pagekite_build.py:ffibuilder"],
    cmdclass={"build_py": build_py, "sdist": sdist},
)
