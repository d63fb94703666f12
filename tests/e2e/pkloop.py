"""Small loopback helpers shared by the self-contained e2e test files."""
import http.client
import os
import socket
import subprocess

BUILD = os.environ.get("PK_BUILD_DIR", os.path.join(os.path.dirname(__file__), "..", "..", "build"))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def start(argv, logpath):
    """Start a process with stdout+stderr in logpath."""
    out = open(logpath, "w")
    return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)


def stop(p):
    """SIGTERM, then SIGKILL after 10 s; returns the exit code."""
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    return p.returncode


def get(port, host, path="/", timeout=5):
    """GET through the relay at 127.0.0.1:port with the kite's Host header."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": host})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()
