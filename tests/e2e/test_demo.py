"""The README's main job: `./run demo` serves http://demo.localhost:PORT/."""
import os
import signal
import subprocess
import time

import pytest

from pkloop import BUILD, free_port, get

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
pytestmark = pytest.mark.ours


def test_run_demo_serves_the_page_and_stops_cleanly(tmp_path):
    port = free_port()
    env = dict(os.environ, PORT=str(port), PK_BUILD_DIR=os.path.abspath(BUILD))
    log = open(tmp_path / "demo.log", "w")
    p = subprocess.Popen([os.path.join(ROOT, "run"), "demo"], cwd=ROOT, env=env, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 120  # includes a (no-op or incremental) build
        text = ""
        while time.time() < deadline and f"http://demo.localhost:{port}/" not in text:
            assert p.poll() is None, (tmp_path / "demo.log").read_text()
            time.sleep(0.2)
            text = (tmp_path / "demo.log").read_text()
        assert f"http://demo.localhost:{port}/" in text
        body = b""
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                status, body = get(port, f"demo.localhost:{port}", timeout=2)
                if status == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        assert b"It flies!" in body
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C does in a terminal
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert p.returncode == 0, (tmp_path / "demo.log").read_text()
    # Nothing of the demo is left behind.
    left = subprocess.run(["pgrep", "-f", f"ports={port}"], capture_output=True, text=True).stdout
    assert left.strip() == ""
