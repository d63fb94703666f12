"""A short, bounded chaos slice for CI (tests/chaos/chaos.py; README.md there).

Two runs, plain and TLS, of about 40 s each against the binaries in
PK_BUILD_DIR (default /work/main/build; CI points it at its ASan + UBSan
build).  Each run must end without a finding: no crash, no sanitizer report,
no hang (relay /ping and every kite served again after the faults stop), no
corrupted bytes on a completed request, bounded RSS, exit 0 on SIGTERM.

Environment: PK_CHAOS_SECONDS (default 40), PK_CHAOS_SEED (default: 101 for
plain, 202 for TLS, so a CI failure is reproducible), PK_E2E_SKIP_MISSING=1
to skip instead of fail when the binaries are missing.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CHAOS = HERE / "chaos.py"
BUILD = Path(os.environ.get("PK_BUILD_DIR", str(ROOT / "build")))
SECONDS = float(os.environ.get("PK_CHAOS_SECONDS", "40"))
SKIP_MISSING = os.environ.get("PK_E2E_SKIP_MISSING", "") not in ("", "0")


def _tools():
    missing = [str(BUILD / b) for b in ("pagekiter", "pagekitec")
               if not os.access(BUILD / b, os.X_OK)]
    if missing:
        msg = "not built: %s (build first, or set PK_BUILD_DIR)" % ", ".join(missing)
        if SKIP_MISSING:
            pytest.skip(msg)
        pytest.fail(msg, pytrace=False)


@pytest.mark.timeout(SECONDS + 240)
@pytest.mark.parametrize("mode,seed", [("plain", 101), ("tls", 202)])
def test_chaos_slice(mode, seed, tmp_path):
    _tools()
    seed = int(os.environ.get("PK_CHAOS_SEED") or seed)
    summary_path = tmp_path / "summary.json"
    argv = [sys.executable, str(CHAOS), "--seed", str(seed), "--seconds", str(SECONDS),
            "--" + mode, "--build", str(BUILD), "--out", str(tmp_path / "runs"),
            "--json", str(summary_path), "--storm-min", "8", "--storm-max", "12",
            "--calm-timeout", "25"]
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=SECONDS + 220)
    out = r.stdout.decode(errors="replace")
    print(out[-4000:])
    assert summary_path.exists(), "chaos.py wrote no summary (rc %d):\n%s" % (r.returncode,
                                                                             out[-4000:])
    s = json.loads(summary_path.read_text())
    if s["findings"]:
        lines = []
        for f in s["findings"]:
            lines.append("[%s] %s (x%d, %s, t=%.1f)\n%s" % (
                f["kind"], f["what"], f["count"], f["phase"], f["t"], f["detail"][:2500]))
        pytest.fail("chaos %s seed %d: %d finding(s); rerun: python3 %s --seed %d --%s "
                    "--seconds %g --build %s\nlogs: %s\n\n%s"
                    % (mode, seed, len(s["findings"]), CHAOS, seed, mode, SECONDS, BUILD,
                       s["logdir"], "\n\n".join(lines)), pytrace=False)
    assert r.returncode == 0, out[-4000:]
    # the run did something: faults were applied and requests were verified
    assert s["executions"] >= 50, "only %d executions" % s["executions"]
    assert s["requests"].get("ok", 0) >= 10, "only %s verified requests" % s["requests"]
    assert s["cycles"] >= 1
    for name, (rc, _took) in s["exits"].items():
        assert rc == 0, "%s exit %s on SIGTERM" % (name, rc)
