"""`./run`'s usage: help is asked for, and a wrong stage name is refused
before anything is installed or built (issue 19, a newcomer's walk).

A fake `apt-get`, `dpkg`, `sudo` and `cmake` come first on PATH and record
every call: none may happen for a help request or a misspelt stage.
"""
import os
import subprocess

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
STAGES = sorted(f[len("stage_"):-len(".sh")] for f in os.listdir(os.path.join(ROOT, "tests", "install"))
                if f.startswith("stage_") and f.endswith(".sh"))

FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >>"$PK_FAKE_CALLS"
exit 1
"""


def run(tmp_path, *args):
    fake = tmp_path / "fakebin"
    fake.mkdir(exist_ok=True)
    for tool in ("apt-get", "dpkg", "sudo", "cmake"):
        (fake / tool).write_text(FAKE)
        (fake / tool).chmod(0o755)
    calls = tmp_path / "calls.log"
    build = tmp_path / "build"
    env = dict(os.environ, PATH=f"{fake}:{os.environ['PATH']}", PK_FAKE_CALLS=str(calls),
               PK_BUILD_DIR=str(build))
    p = subprocess.run([os.path.join(ROOT, "run"), *args], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=30)
    made = calls.read_text() if calls.exists() else ""
    return p, made, build.exists()


def test_help_goes_to_stdout_and_exits_0(tmp_path):
    for args in (["--help"], ["-h"], ["help"]):
        p, calls, built = run(tmp_path, *args)
        assert p.returncode == 0, (args, p)
        assert "usage: ./run" in p.stdout and "install-test" in p.stdout, (args, p.stdout)
        assert calls == "" and not built


def test_usage_lists_the_install_stages(tmp_path):
    p, _, _ = run(tmp_path, "--help")
    assert STAGES, "no tests/install/stage_*.sh"
    for s in STAGES:
        assert s in p.stdout, (s, p.stdout)


def test_no_command_is_bad_usage_on_stderr(tmp_path):
    p, calls, built = run(tmp_path)
    assert p.returncode == 2 and "usage: ./run" in p.stderr, p
    assert calls == "" and not built


def test_install_test_help_builds_nothing(tmp_path):
    p, calls, built = run(tmp_path, "install-test", "--help")
    assert p.returncode == 0, p
    assert "install-test" in p.stdout and all(s in p.stdout for s in STAGES), p.stdout
    assert calls == "" and not built, calls


def test_install_test_unknown_stage_refused_before_the_build(tmp_path):
    p, calls, built = run(tmp_path, "install-test", "pyhton")
    assert p.returncode == 2, p
    assert "pyhton" in p.stderr and all(s in p.stderr for s in STAGES), p.stderr
    assert calls == "" and not built, calls
