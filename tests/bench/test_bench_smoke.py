"""Runs the benchmark suite in smoke mode: every transfer is checked by sha256
(downloads, uploads, keep-alive requests, many streams) through every setup
(direct, ours, pagekite.py, ours behind pagekite.py, ours with TLS); speed is
never asserted.  bench/run.py exits non-zero on any failed check."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_bench_smoke(tmp_path):
    out = tmp_path / "smoke.json"
    try:
        r = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--smoke",
                            "--json", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=240)
    except subprocess.TimeoutExpired as e:
        pytest.fail("bench/run.py --smoke ran over 240 s:\n%s"
                    % (e.stdout or b"").decode(errors="replace")[-4000:])
    text = r.stdout.decode(errors="replace")
    assert r.returncode == 0, "bench/run.py --smoke exited %d:\n%s" % (r.returncode, text[-6000:])
    doc = json.loads(out.read_text())
    assert doc["failures"] == []
    # Every setup produced results (none was skipped silently).
    for setup in ("direct", "ours", "pk", "ours@pk", "ours-tls"):
        assert setup in doc["results"], "no results for %s:\n%s" % (setup, text[-3000:])
    assert doc["results"]["ours"]["many_failures"] == 0
