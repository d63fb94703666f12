"""setuptools glue: the cffi extension and an sdist that carries the C tree.

Metadata lives in pyproject.toml; this file only adds what pyproject cannot
say: ``cffi_modules`` (cffi's setuptools hook) and an sdist command that copies
../c/src and ../c/include into the sdist as csrc/, so that an sdist builds on
its own (pagekite_build.py looks there after ../c).
"""

import os
import shutil

from setuptools import setup
from setuptools.command.sdist import sdist as _sdist

HERE = os.path.dirname(os.path.abspath(__file__))


class sdist(_sdist):
    """sdist that includes the C sources of the checkout as csrc/."""

    def make_release_tree(self, base_dir, files):
        super().make_release_tree(base_dir, files)
        c_dir = os.environ.get("PAGEKITE_C_DIR") or os.path.join(HERE, os.pardir, "c")
        if not os.path.isdir(os.path.join(c_dir, "src")):
            c_dir = os.path.join(HERE, "csrc")  # building an sdist from an sdist
        for sub in ("src", "include"):
            dest = os.path.join(base_dir, "csrc", sub)
            if os.path.exists(dest):
                shutil.rmtree(dest)
            shutil.copytree(os.path.join(c_dir, sub), dest,
                            ignore=shutil.ignore_patterns("*.o", "*~"))


setup(
    cffi_modules=["pagekite_build.py:ffibuilder"],
    cmdclass={"sdist": sdist},
)
