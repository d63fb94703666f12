"""Real outgoing proxies on 127.0.0.1 for tests: context managers.

    with tinyproxy() as p:                      # HTTP CONNECT, no auth
    with tinyproxy("joe", "s3cret") as p:       # HTTP CONNECT, BasicAuth
    with danted() as p:                         # SOCKS5, no auth (dante)
    with microsocks() as p:                     # SOCKS5, no auth
    with microsocks("joe", "s3cret") as p:      # SOCKS5, RFC 1929 user/pass
    with socks5(user, password) as p:           # danted without, microsocks with

Each yields a Proxy: a (host, port, user, password) tuple (user and
password None when there is no auth) with .scheme ("http" or "socks5"),
.url(scheme=None) -> "http://joe:s3cret@127.0.0.1:40123" and .log (the
daemon's log file).

Each proxy gets a free port and a temp dir holding its own config and log,
runs in the foreground, and is stopped by its PID at exit (SIGTERM, then
SIGKILL after a bounded wait); danted forks helper processes, and those
(recorded by PID while it runs) are stopped the same way if they outlive
it.  Every wait is bounded.

Debian packages: tinyproxy, dante-server, microsocks.  dante's username
method checks system users, so the user/password SOCKS5 proxy is
microsocks.  Nothing here allows CONNECT only to some ports: tinyproxy's
config has no ConnectPort line, which lets CONNECT reach any port.

Run `python3 tests/e2e/proxies.py` to start each once and print it.
"""

import collections
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse

HOST = "127.0.0.1"
START_TIMEOUT = 10.0   # seconds until the port must accept
STOP_TIMEOUT = 5.0     # seconds between SIGTERM and SIGKILL
START_TRIES = 3        # a free port can be taken before the daemon binds it

PACKAGES = {"tinyproxy": "tinyproxy", "danted": "dante-server", "microsocks": "microsocks"}


class ProxyError(RuntimeError):
    pass


class Proxy(collections.namedtuple("Proxy", "host port user password")):
    """(host, port, user, password) plus .scheme, .log and .url()."""

    def url(self, scheme=None):
        auth = ""
        if self.user is not None:
            auth = urllib.parse.quote(self.user, safe="")
            if self.password is not None:
                auth += ":" + urllib.parse.quote(self.password, safe="")
            auth += "@"
        return "%s://%s%s:%d" % (scheme or self.scheme, auth, self.host, self.port)


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def port_accepts(port, timeout=0.5):
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def find_program(name):
    """The daemon's path (Debian puts them in /usr/sbin or /usr/bin)."""
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        path = os.path.join(d, name)
        if os.access(path, os.X_OK):
            return path
    path = shutil.which(name)
    if path:
        return path
    raise ProxyError("%s not found (apt-get install -y %s)" % (name, PACKAGES[name]))


def log_tail(path, n=2000):
    try:
        with open(path, "rb") as f:
            return f.read()[-n:].decode("utf-8", "replace")
    except OSError:
        return ""


def _children(pid):
    """PIDs whose parent is pid (from /proc)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces, so split after ')'
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def _alive(pid, comm):
    """pid still runs program comm (and is not a zombie)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return False
    name = stat[stat.find("(") + 1:stat.rfind(")")]
    state = stat.rsplit(")", 1)[-1].split()[0]
    return name == comm[:15] and state != "Z"


def _stop(pid, comm):
    """SIGTERM pid if it still runs comm; SIGKILL after STOP_TIMEOUT."""
    if not _alive(pid, comm):
        return
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < deadline and _alive(pid, comm):
        time.sleep(0.05)
    if _alive(pid, comm):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _stop_tree(proc, comm, kids):
    """Stop a daemon that forks helpers (danted): the helpers first, so that
    the daemon reaps them (an orphan would stay a zombie where PID 1 does not
    reap), then the daemon; helpers that outlive it are stopped by PID."""
    for _ in range(3):
        now = [k for k in _children(proc.pid) if _alive(k, comm)]
        if not now:
            break
        kids.update(now)
        for kid in now:
            _stop(kid, comm)
        deadline = time.monotonic() + STOP_TIMEOUT
        while time.monotonic() < deadline and any(os.path.exists("/proc/%d" % k) for k in now):
            time.sleep(0.05)
    _stop(proc.pid, comm)
    try:
        proc.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        pass
    for kid in sorted(kids):
        _stop(kid, comm)


@contextlib.contextmanager
def _daemon(name, scheme, user, password, write_config):
    """Start program name with the argv write_config(tmpdir, port) returns,
    wait for its port, yield a Proxy, stop it by PID."""
    prog = find_program(name)
    tmp = tempfile.mkdtemp(prefix="pk-proxy-%s-" % name)
    os.chmod(tmp, 0o755)   # daemons that drop privileges read their config here
    log = os.path.join(tmp, "%s.log" % name)
    proc = None
    kids = set()
    try:
        for attempt in range(START_TRIES):
            port = free_port()
            argv = write_config(tmp, port, prog, log)
            out = open(os.path.join(tmp, "%s.out" % name), "ab")
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, cwd=tmp)
            out.close()
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and proc.poll() is None and not port_accepts(port):
                time.sleep(0.05)
            if proc.poll() is None and port_accepts(port):
                break
            _stop(proc.pid, os.path.basename(prog))
            proc.wait(timeout=STOP_TIMEOUT)
            proc = None
        if proc is None:
            raise ProxyError("%s did not start on 127.0.0.1 (%d tries):\n%s\n%s" % (
                name, START_TRIES, log_tail(os.path.join(tmp, "%s.out" % name)), log_tail(log)))
        kids.update(_children(proc.pid))
        p = Proxy(HOST, port, user, password)
        p.scheme = scheme
        p.log = log
        p.pid = proc.pid
        yield p
    finally:
        if proc is not None:
            _stop_tree(proc, os.path.basename(prog), kids)
        shutil.rmtree(tmp, ignore_errors=True)


def _check_auth(user, password):
    if (user is None) != (password is None):
        raise ValueError("give both user and password, or neither")


# ---------------------------------------------------------------- tinyproxy

def tinyproxy(user=None, password=None):
    """HTTP proxy (CONNECT to any port); BasicAuth when user is given."""
    _check_auth(user, password)
    for s in (user, password):
        if s is not None and (not s or any(c in s for c in " \t\r\n\"#:")):
            raise ValueError("tinyproxy's BasicAuth wants plain words: %r" % s)

    def config(tmp, port, prog, log):
        lines = [
            "Port %d" % port,
            "Listen %s" % HOST,
            "Timeout 60",
            "MaxClients 50",
            "LogFile \"%s\"" % log,
            "LogLevel Info",
            "Allow 127.0.0.1",
            "DisableViaHeader Yes",
            # No ConnectPort line: CONNECT may reach any port.
        ]
        if user is not None:
            lines.append("BasicAuth %s %s" % (user, password))
        if os.geteuid() == 0:
            # tinyproxy will not run as root: it drops to nobody, who must
            # be able to write its log.
            lines += ["User nobody", "Group nogroup"]
            open(log, "a").close()
            os.chmod(log, 0o666)
        path = os.path.join(tmp, "tinyproxy.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return [prog, "-d", "-c", path]

    return _daemon("tinyproxy", "http", user, password, config)


# ---------------------------------------------------------------- dante

def danted():
    """SOCKS5 without authentication (Debian's dante-server)."""

    def config(tmp, port, prog, log):
        path = os.path.join(tmp, "danted.conf")
        with open(path, "w") as f:
            f.write("""\
logoutput: %(log)s
internal: %(host)s port = %(port)d
external: %(host)s
clientmethod: none
socksmethod: none
user.privileged: %(me)s
user.unprivileged: %(me)s
client pass { from: 127.0.0.0/8 to: 0.0.0.0/0 }
socks pass { from: 127.0.0.0/8 to: 0.0.0.0/0 command: connect }
""" % {"log": log, "host": HOST, "port": port, "me": _user_name()})
        return [prog, "-f", path, "-N", "1", "-p", os.path.join(tmp, "danted.pid")]

    return _daemon("danted", "socks5", None, None, config)


def _user_name():
    import pwd
    return pwd.getpwuid(os.geteuid()).pw_name


# ---------------------------------------------------------------- microsocks

def microsocks(user=None, password=None):
    """SOCKS5; RFC 1929 username/password when user is given."""
    _check_auth(user, password)

    def config(tmp, port, prog, log):
        argv = [prog, "-i", HOST, "-p", str(port)]
        if user is not None:
            argv += ["-u", user, "-P", password]
        with open(os.path.join(tmp, "microsocks.args"), "w") as f:
            f.write(" ".join(argv[1:3] + argv[3:5]) + "\n")   # never the password
        return argv

    return _daemon("microsocks", "socks5", user, password, config)


def socks5(user=None, password=None):
    """A SOCKS5 proxy: danted without auth, microsocks with user/password."""
    return danted() if user is None else microsocks(user, password)


if __name__ == "__main__":
    for make in (lambda: tinyproxy(), lambda: tinyproxy("joe", "s3cret"), lambda: danted(),
                 lambda: microsocks(), lambda: microsocks("joe", "s3cret")):
        with make() as p:
            print(p.url(), "pid", p.pid)
