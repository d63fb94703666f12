"""README.md's "Using the library" C example compiles and links as written
(issue 19: a newcomer pastes it into app.c and builds it)."""

from __future__ import annotations

import re
from pathlib import Path

from pkspec_helpers import need_tool, run

ROOT = Path(__file__).resolve().parents[2]


def readme_c_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Using the library", 1)[1]
    blocks = re.findall(r"```c\n(.*?)```", section, re.S)
    assert blocks, "no C block under README.md's 'Using the library'"
    return blocks[0]


def test_readme_c_example_is_a_whole_program(stub_lib, tmp_path):
    need_tool("gcc")
    src = tmp_path / "app.c"
    src.write_text(readme_c_example())
    exe = tmp_path / "app"
    r = run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I", str(ROOT / "c" / "include"),
             str(src), "-L", str(stub_lib.parent), "-l:" + stub_lib.name, "-o", str(exe)])
    assert r.returncode == 0, r.stdout + r.stderr
