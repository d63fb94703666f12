"""Runs bench/scale.py --smoke: small sizes, a correctness check only (speed
and memory are never asserted).  Every authenticated kite request, every held
tunnel and every routed sample request is counted by scale.py; it exits 1 on
any failure, and the JSON must hold figures for each part."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_scale_smoke(tmp_path):
    out = tmp_path / "scale.json"
    try:
        r = subprocess.run([sys.executable, str(ROOT / "bench" / "scale.py"), "--smoke",
                            "--json", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=90)
    except subprocess.TimeoutExpired as e:
        pytest.fail("bench/scale.py --smoke ran over 90 s:\n%s"
                    % (e.stdout or b"").decode(errors="replace")[-4000:])
    text = r.stdout.decode(errors="replace")
    assert r.returncode == 0, "scale.py --smoke exited %d:\n%s" % (r.returncode, text[-6000:])
    doc = json.loads(out.read_text())
    assert doc["failures"] == [], text[-4000:]
    auth = doc["auth"]
    # Our relay and pagekite.py's both authenticated kites, cold and warm.
    for relay in ("ours:static", "pk"):
        for cache in ("cold", "warm"):
            row = auth[relay][cache]
            assert row["ok"] > 0 and row["failed"] == 0, (relay, cache, row)
            assert row["per_s"] > 0
    tun = doc["tunnels"]
    for relay in ("ours", "pk"):
        row = tun[relay]
        assert row["held"] == row["wanted"] > 0, (relay, row)
        # Requests routed through a sample of the held tunnels came back.
        assert row["routed_ok"] == row["routed_tried"] > 0, (relay, row)
        assert row["rss_after_kib"] >= row["rss_before_kib"] > 0
    # rathole is optional: either figures or a printed reason, never silence.
    rh = tun.get("rathole", {})
    assert rh.get("skipped") or rh.get("held") == rh.get("wanted"), rh
    routing = doc["routing"]
    assert {row["kites"] for row in routing["rows"]} >= {10, 100000}
    assert all(row["found_pct"] == (0 if row["lookup"] == "miss" else 100)
               for row in routing["rows"]), routing
    assert routing["ratio_100k_over_10"]["exact hit"] > 0


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_scale_smoke_authdomain(tmp_path):
    """The --authdomain rows (DNS responder, auth apps in both modes), ours
    and pagekite.py's: every OK carried the authority's quota, no failure.
    Needs root (a private resolv.conf through unshare -m), as
    tests/e2e/test_authdomain.py does."""
    import os
    import shutil
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.fail("needs root and unshare(1) for a private resolv.conf", pytrace=False)
    out = tmp_path / "scale.json"
    try:
        r = subprocess.run([sys.executable, str(ROOT / "bench" / "scale.py"), "--smoke",
                            "--parts", "authdomain", "--relays", "ours,pk", "--json", str(out)],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=130)
    except subprocess.TimeoutExpired as e:
        pytest.fail("bench/scale.py --smoke --parts authdomain ran over 130 s:\n%s"
                    % (e.stdout or b"").decode(errors="replace")[-4000:])
    text = r.stdout.decode(errors="replace")
    assert r.returncode == 0, "scale.py exited %d:\n%s" % (r.returncode, text[-6000:])
    doc = json.loads(out.read_text())
    assert doc["failures"] == [], text[-4000:]
    auth = doc["auth"]
    for relay in ("ours:dns", "pk:dns", "ours:app-server", "ours:app-oneshot", "pk:app"):
        for cache in ("cold", "warm"):
            row = auth[relay][cache]
            assert row["ok"] > 0 and row["failed"] == 0, (relay, cache, row)
    assert doc["auth_baseline"] == {"ours:dns": "pk:dns", "ours:app-server": "pk:app",
                                    "ours:app-oneshot": "pk:app"}
