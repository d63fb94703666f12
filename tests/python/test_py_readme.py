"""The examples of python/README.md run as written, against the installed package."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "python" / "README.md"


def python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), re.S)


def run_block(code, cwd):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=90, cwd=str(cwd))


def test_readme_example_runs(pk, tmp_path):
    text = README.read_text()
    section = text.split("## Example", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert code in python_blocks()
    (tmp_path / "hello.txt").write_text("served by the README example\n")
    r = run_block(code, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"^200 (\d+) bytes through the kite$", r.stdout, re.M)
    assert m, r.stdout + r.stderr
    assert int(m.group(1)) > 0
    assert "'kites_live': 1" in r.stdout


def test_readme_api_example_runs(pk, tmp_path):
    blocks = [b for b in python_blocks() if "from pagekite import api" in b]
    assert len(blocks) == 1
    r = run_block(blocks[0], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("True ")


def test_readme_warns_about_debian_pagekite(pk):
    text = README.read_text()
    assert "Debian" in text and "venv" in text and "pagekite.py" in text


def test_readme_quick_start_runs(pk, tmp_path):
    section = README.read_text().split("## Quick start", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    assert len(code.strip().splitlines()) <= 15  # it stays short
    r = run_block(code, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "True FLYING", r.stdout + r.stderr
