"""The installed package finds its own Lua plugins (issue 19 item 3).

The wheel carries lua/plugins/*.lua inside the ``pagekite`` package and the
extension looks for its default plugins next to itself, so a relay built by
the installed package loads web_ui.lua / access.lua whatever the current
directory is (before: "lua/plugins" relative to the working directory, which
only worked when run from the repository root).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pkpy_helpers import free_port

# Runs in a child whose working directory is outside the repository.
CHILD = r"""
import json, sys, time, urllib.request
import pagekite
ui, port = int(sys.argv[1]), int(sys.argv[2])
with pagekite.Relay(app_id="py-test-plugindir") as r:
    r.add_listener("127.0.0.1", port)
    r.add_domain("http", "*.plugindir.test", "s3cret")
    r.enable_lua_plugins(True, ["web_ui=127.0.0.1:%d" % ui,
                                "access.allow=*.plugindir.test:127.0.0.1"])
    r.start()
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/status.json" % ui, timeout=2) as f:
                body = json.load(f)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    print(json.dumps({"status_keys": sorted(body)}))
"""


def test_package_carries_its_lua_plugins(pk):
    """The default plugins are data files of the installed package."""
    here = Path(pk.__file__).resolve().parent
    for name in ("web_ui.lua", "access.lua"):
        f = here / "lua" / "plugins" / name
        assert f.is_file(), "%s is not installed with the package" % f
        assert f.read_text(encoding="utf-8").startswith("-- %s" % name)


def test_default_plugins_load_outside_the_repository(pk, tmp_path):
    """web_ui (and access) load as default plugins with the working directory
    outside the repository, and the web UI answers /status.json."""
    ui, port = free_port(), free_port()
    p = subprocess.run([sys.executable, "-c", CHILD, str(ui), str(port)], cwd=str(tmp_path),
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr[-2000:]
    keys = json.loads(p.stdout.strip().splitlines()[-1])["status_keys"]
    assert keys, p.stdout
