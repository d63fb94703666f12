"""Fuzz smoke test: tests/fuzz/run_ci.sh must exit 0 (no target crashed).

Skipped only when clang (with libFuzzer) is missing; CI installs clang-14 and
libclang-rt-14-dev.  Also replays the regression inputs (crashes found
earlier, fixed in c/src) against the strict build with no ignorelist.
"""
import glob
import os
import shutil
import subprocess

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
BUILD = os.environ.get("PK_BUILD_DIR", os.path.join(ROOT, "build"))
CLANG = shutil.which("clang-14") or shutil.which("clang")

needs_clang = pytest.mark.skipif(
    CLANG is None, reason="clang not installed (Debian: clang-14 libclang-rt-14-dev)")


@needs_clang
def test_fuzz_smoke_run_ci():
    # 6 s a target in the default run (11 targets, two at a time); the long
    # campaign is tests/fuzz/run_long.sh.
    env = dict(os.environ, FUZZ_SECONDS=os.environ.get("FUZZ_SECONDS", "6"))
    p = subprocess.run([os.path.join(HERE, "run_ci.sh")], env=env, capture_output=True,
                       text=True, timeout=600)
    print(p.stdout[-4000:], p.stderr[-4000:])
    if p.returncode == 3:
        pytest.fail("fuzz targets did not build (clang without libFuzzer? "
                    "install libclang-rt-14-dev):\n" + p.stderr[-2000:])
    assert p.returncode == 0, p.stdout[-4000:]
    # Every target reported, each with some executions.
    for t in ("frame", "chunk", "http_head", "classify", "tunnel", "httpfwd", "session",
              "handshake", "proxy", "proxyproto", "authapp"):
        assert "fuzz_%s: ok" % t in p.stdout


@needs_clang
def test_regression_inputs_strict():
    strict = os.path.join(BUILD, "fuzz", "fuzz_tunnel_strict")
    if not os.access(strict, os.X_OK):
        subprocess.run([os.path.join(HERE, "build.sh")], check=True, capture_output=True,
                       timeout=600)
    inputs = sorted(glob.glob(os.path.join(HERE, "corpus", "tunnel", "regress-*")))
    assert inputs, "no regression inputs"
    p = subprocess.run([strict] + inputs, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
