"""pagekiter takes pagekite.py's front-end command line and configuration files.

The command lines are those of pagekite.py's README (section 2.3 "Running
your own front-end relay", 2.9 TLS endpoints, 2.10 "Unix/Linux systems
integration") and of issue 15, with only the ports, the listen address, the
names and the file paths replaced by throwaway ones.  Each test starts the
relay, sees it listen, flies a kite through it (our pagekitec) and fetches a
page or echoes raw bytes, then stops it.

Also: the same options in pagekite.rc files (--optfile/-o, --optdir, the
syntax of pk.py's ConfigureFromFile), libpagekite's own pagekiter command
line (`pagekiter -p PORT PROTO NAME SECRET`), the one-line "not supported"
message and exit code 3 for every other pagekite.py flag, clear messages
(exit 2) for bad values, --logfile, --daemonize, --pidfile and --runas.
"""

import os
import pwd
import signal
import socket
import ssl
import subprocess
import time
import urllib.parse
from pathlib import Path

import pytest

from harness import (DOMAIN, PAGEKITER, SECRET, Kite, Proc, _openssl, free_port, http_request,
                     port_accepts, require_executable, wait_http, wait_raw)
from test_relay_handshake import handshake

pytestmark = [pytest.mark.ours]

EXIT_USAGE, EXIT_UNSUPPORTED = 2, 3


# ---------------------------------------------------------------- helpers

def run_relay(args, timeout=10, cwd=None):
    """Runs pagekiter to completion (for errors); returns CompletedProcess."""
    require_executable(PAGEKITER, "pagekiter")
    return subprocess.run([str(PAGEKITER)] + [str(a) for a in args], capture_output=True,
                          text=True, timeout=timeout, stdin=subprocess.DEVNULL, cwd=cwd)


def start_relay(group, args, ports, name="pagekiter", timeout=15.0):
    """Starts pagekiter with args and waits until it accepts on every port."""
    require_executable(PAGEKITER, "pagekiter")
    proc = group.add(Proc(name, [PAGEKITER] + [str(a) for a in args], group.logdir))
    deadline = time.monotonic() + timeout
    for port in ports:
        while not port_accepts(port):
            if not proc.alive:
                raise AssertionError("pagekiter exited (rc %s) before listening on %d\n%s"
                                     % (proc.popen.poll(), port, proc.tail()))
            if time.monotonic() > deadline:
                raise AssertionError("pagekiter not listening on %d\n%s" % (port, proc.tail()))
            time.sleep(0.05)
    return proc


def fly(group, port, kites):
    return group.our_connector("127.0.0.1:%d" % port, kites)


def make_pem(directory, cn, combined=True):
    """A self-signed certificate for cn; returns the PEM path (key + cert when
    combined, as pagekite.py's --tls_endpoint wants) and the cert path."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    base = cn.replace("*", "wild")
    _openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
              "-nodes", "-keyout", base + ".key", "-out", base + ".crt", "-days", "2",
              "-subj", "/CN=" + cn, "-addext", "subjectAltName=DNS:" + cn], d)
    cert = d / (base + ".crt")
    if not combined:
        return d / (base + ".key"), cert
    pem = d / (base + ".pem")
    pem.write_text((d / (base + ".key")).read_text() + cert.read_text())
    return pem, cert


def tls_get(port, sni, host, cafile, timeout=5.0):
    """GET / over TLS to 127.0.0.1:port with SNI sni; returns (status, peer CN)."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    ctx.check_hostname = False
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=sni) as s:
            cn = dict(x[0] for x in s.getpeercert()["subject"])["commonName"]
            s.sendall(("GET / HTTP/1.0\r\nHost: %s\r\n\r\n" % host).encode())
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
    return int(data.split(b" ", 2)[1]), cn


def wait_tls_get(port, sni, host, cafile, timeout=20.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            status, cn = tls_get(port, sni, host, cafile)
            if status == 200:
                return cn
            last = "HTTP %d" % status
        except (OSError, ssl.SSLError, ValueError, IndexError) as e:
            last = "%s: %s" % (type(e).__name__, e)
        time.sleep(0.2)
    raise AssertionError("TLS GET %s via %d: no 200 within %.0f s; last %s"
                         % (host, port, timeout, last))


def ports(n):
    out = []
    while len(out) < n:
        p = free_port()
        if p not in out:
            out.append(p)
    return out


def uid_of(pid):
    for line in Path("/proc/%d/status" % pid).read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError("no Uid line for pid %d" % pid)


def wait_file(path, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError("%s not written within %.0f s" % (path, timeout))


def stop_pid(pid, timeout=5.0):
    """SIGTERM the daemon we started (its pid from our --pidfile) and wait."""
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    return False


# ------------------------------------------- the README's front-end examples

def test_readme_single_domain(group, origin):
    """README 2.3: --isfrontend --ports=80,443 --protos=http,https
    --domain=http,https:YOURNAME:YOURSECRET."""
    p1, p2 = ports(2)
    name = "yourname." + DOMAIN
    start_relay(group, ["--isfrontend", "--ports=%d,%d" % (p1, p2), "--protos=http,https",
                        "--domain=http,https:%s:%s" % (name, SECRET)], [p1, p2])
    fly(group, p1, [Kite("http", name, origin.port)])
    wait_http(name, p1)
    wait_http(name, p2)


def test_readme_wildcards_two_domains(group, origin):
    """README 2.3: two wildcard --domain lines, three ports."""
    p1, p2, p3 = ports(3)
    start_relay(group, ["--isfrontend", "--ports=%d,%d,%d" % (p1, p2, p3),
                        "--protos=http,https",
                        "--domain=http,https:*.%s:%s" % (DOMAIN, SECRET),
                        "--domain=http,https:*.other.test:OTHERSECRET"], [p1, p2, p3])
    fly(group, p3, [Kite("http", "a." + DOMAIN, origin.port),
                    Kite("http", "b.other.test", origin.port, secret="OTHERSECRET")])
    wait_http("a." + DOMAIN, p1)
    wait_http("b.other.test", p2)


def test_readme_runas_nobody(group, origin):
    """README 2.3: --runas=nobody:nogroup drops root after binding."""
    if os.geteuid() != 0:
        pytest.fail("--runas needs the tests to run as root", pytrace=False)
    p1, p2 = ports(2)
    name = "yourname." + DOMAIN
    proc = start_relay(group, ["--isfrontend", "--runas=nobody:nogroup",
                               "--ports=%d,%d" % (p1, p2), "--protos=http,https",
                               "--domain=http,https:%s:%s" % (name, SECRET)], [p1, p2])
    fly(group, p1, [Kite("http", name, origin.port)])
    wait_http(name, p2)
    assert uid_of(proc.pid) == pwd.getpwnam("nobody").pw_uid


def test_readme_tls_endpoints(group, origin, tmp_path):
    """README 2.9: --tls_endpoint for the relay's name and for *.domain, with
    --domain=http:*.domain:SECRET: https://foo.domain/ is terminated at the
    relay with the wildcard certificate and served by the http kite."""
    p1, p2 = ports(2)
    fe_pem, _ = make_pem(tmp_path / "pki", "frontend." + DOMAIN)
    wild_pem, wild_crt = make_pem(tmp_path / "pki", "*." + DOMAIN)
    start_relay(group, ["--isfrontend", "--ports=%d,%d" % (p1, p2), "--protos=http,https",
                        "--tls_endpoint=frontend.%s:%s" % (DOMAIN, fe_pem),
                        "--tls_endpoint=*.%s:%s" % (DOMAIN, wild_pem),
                        "--domain=http:*.%s:%s" % (DOMAIN, SECRET)], [p1, p2])
    name = "foo." + DOMAIN
    fly(group, p1, [Kite("http", name, origin.port)])
    wait_http(name, p1)
    assert wait_tls_get(p2, name, name, wild_crt) == "*." + DOMAIN


def test_readme_production_daemon(group, origin, tmp_path):
    """README 2.10: --runas --pidfile --logfile=syslog --daemonize --isfrontend
    --host --ports --protos and two --domain lines.  The command returns once
    the daemon listens; the daemon's pid is in the pid file."""
    p1, p2 = ports(2)
    pidfile = tmp_path / "pagekite.pid"
    r = run_relay(["--runas=nobody:nogroup", "--pidfile=%s" % pidfile, "--logfile=syslog",
                   "--daemonize", "--isfrontend", "--host=127.0.0.1",
                   "--ports=%d,%d" % (p1, p2), "--protos=http,https",
                   "--domain=http,https:*.%s:%s" % (DOMAIN, SECRET),
                   "--domain=http,https:*.other.test:%s" % SECRET])
    assert r.returncode == 0, r.stderr
    pid = int(wait_file(pidfile))
    try:
        assert port_accepts(p1) and port_accepts(p2)
        fly(group, p2, [Kite("http", "www." + DOMAIN, origin.port)])
        wait_http("www." + DOMAIN, p1)
        assert uid_of(pid) == pwd.getpwnam("nobody").pw_uid
    finally:
        assert stop_pid(pid), "daemon did not stop on SIGTERM"


def issue_args(p, pem, sni_default):
    return ["--isfrontend", "--host=127.0.0.1", "--ports=%d,%d,%d" % tuple(p),
            "--protos=http,https,raw", "--rawports=virtual",
            "--domain=http,https,raw:*.%s:%s" % (DOMAIN, SECRET),
            "--tls_endpoint=%s:%s" % (sni_default, pem), "--tls_default=%s" % sni_default]


def test_issue_command_line(group, origin, tmp_path):
    """Issue 15's command line (with --daemonize and --clean): http and a raw
    kite on a virtual port (SSH's 22) through HTTP CONNECT, and a TLS client
    without SNI gets the --tls_default name's certificate."""
    p = ports(3)
    pem, crt = make_pem(tmp_path / "pki", DOMAIN)
    pidfile = tmp_path / "relay.pid"
    r = run_relay(issue_args(p, pem, DOMAIN) + ["--daemonize", "--clean",
                                                "--pidfile=%s" % pidfile])
    assert r.returncode == 0, r.stderr
    pid = int(wait_file(pidfile))
    try:
        echo = group.echo()
        fly(group, p[0], [Kite("http", "www." + DOMAIN, origin.port),
                          Kite("raw", "ssh." + DOMAIN, echo.port, pport=22)])
        wait_http("www." + DOMAIN, p[2])
        wait_raw("ssh." + DOMAIN, p[1], 22)
        ctx = ssl.create_default_context(cafile=str(crt))
        ctx.check_hostname = False
        with socket.create_connection(("127.0.0.1", p[0]), timeout=5) as raw:
            with ctx.wrap_socket(raw) as s:  # no SNI
                assert dict(x[0] for x in s.getpeercert()["subject"])["commonName"] == DOMAIN
    finally:
        assert stop_pid(pid)


# ---------------------------------------------------------------- rc files

RC_TEMPLATE = """\
###[ Current settings for pagekite.py v1.5. ]#########
#
# A front-end relay, written as pagekite.py --settings writes options.

isfrontend
host = 127.0.0.1
ports   =   {p0},{p1}
protos = http,https,raw
rawports = virtual
--domain = http,https,raw : *.{domain} : {secret}

tls_endpoint = {domain}:{pem}
tls_default = {domain}
nullui
END
ports = this-line-is-after-END-and-ignored
"""


def test_optfile(group, origin, tmp_path):
    """--clean --optfile=FILE with pagekite.rc syntax (comments, `key = value`,
    spaces around ':' and '=', a leading `--`, END) serves like the command
    line; -o FILE is the same."""
    p = ports(2)
    pem, _ = make_pem(tmp_path / "pki", DOMAIN)
    rc = tmp_path / "relay.rc"
    rc.write_text(RC_TEMPLATE.format(p0=p[0], p1=p[1], domain=DOMAIN, secret=SECRET, pem=pem))
    start_relay(group, ["--clean", "--optfile=%s" % rc], p)
    echo = group.echo()
    fly(group, p[0], [Kite("http", "www." + DOMAIN, origin.port),
                      Kite("raw", "ssh." + DOMAIN, echo.port, pport=22)])
    wait_http("www." + DOMAIN, p[1])
    wait_raw("ssh." + DOMAIN, p[1], 22)
    group.close()
    start_relay(group, ["-o", rc], p, name="pagekiter-o")


def test_optdir(group, origin, tmp_path):
    """--optdir=DIR reads DIR/*.rc in order (hidden files and *.rc.sample
    skipped), like /etc/pagekite.d; an rc file may include another (optfile)."""
    p1 = free_port()
    d = tmp_path / "pagekite.d"
    d.mkdir()
    (d / "10_frontend.rc").write_text("isfrontend\nhost=127.0.0.1\nports=%d\n" % p1)
    (d / "20_protos.rc").write_text("protos = http\n")
    (d / "30_domains.rc").write_text("optfile = %s\n" % (tmp_path / "domains.cfg"))
    (tmp_path / "domains.cfg").write_text("domain = http:*.%s:%s\n" % (DOMAIN, SECRET))
    (d / "80_sshd.rc.sample").write_text("this is not an option\n")
    (d / ".hidden.rc").write_text("this is not an option either\n")
    start_relay(group, ["--clean", "--optdir=%s" % d], [p1])
    fly(group, p1, [Kite("http", "www." + DOMAIN, origin.port)])
    wait_http("www." + DOMAIN, p1)


def test_optdir_order(tmp_path):
    """Files are read in name order: the later --protos decides whether the
    https domain of 20_*.rc is valid (it is not: 30_*.rc narrows --protos)."""
    d = tmp_path / "conf"
    d.mkdir()
    (d / "30_protos.rc").write_text("protos = http\n")
    (d / "10_ports.rc").write_text("ports = %d\n" % free_port())
    (d / "20_domain.rc").write_text("domain = https:*.%s:%s\n" % (DOMAIN, SECRET))
    r = run_relay(["--optdir", d])
    assert r.returncode == EXIT_USAGE
    assert "not in --protos" in r.stderr


def test_rc_error_names_file_and_line(tmp_path):
    rc = tmp_path / "bad.rc"
    rc.write_text("# comment\n\nports = 80,eighty\n")
    r = run_relay(["--optfile=%s" % rc])
    assert r.returncode == EXIT_USAGE
    assert "%s:3:" % rc in r.stderr and "eighty" in r.stderr


def test_rc_include_loop(tmp_path):
    rc = tmp_path / "loop.rc"
    rc.write_text("optfile = %s\n" % rc)
    r = run_relay(["--optfile=%s" % rc])
    assert r.returncode == EXIT_USAGE
    assert "nested too deep" in r.stderr


# ------------------------------------------------ libpagekite's pagekiter

def test_libpagekite_command_line(group, origin):
    """libpagekite's pagekiter: [-q -v -W -I -k N -p PORT] PROTO NAME SECRET ..."""
    p1 = free_port()
    name = "lib." + DOMAIN
    start_relay(group, ["-W", "-k", "10", "-p", p1, "http", name, SECRET,
                        "raw", "ssh." + DOMAIN, SECRET], [p1])
    fly(group, p1, [Kite("http", name, origin.port)])
    wait_http(name, p1)


def test_libpagekite_insecure_flag(group, origin):
    """-I before a PROTO is libpagekite's "no TLS" (pagekiter has none without
    certificates), not pagekite.py's -I PIDFILE."""
    p1 = free_port()
    name = "lib." + DOMAIN
    start_relay(group, ["-p", p1, "-I", "http", name, SECRET], [p1])
    fly(group, p1, [Kite("http", name, origin.port)])
    wait_http(name, p1)


def test_libpagekite_bad_triples():
    r = run_relay(["-p", "9443", "http", "a." + DOMAIN])
    assert r.returncode == EXIT_USAGE
    assert "PROTO NAME SECRET" in r.stderr


# ---------------------------------------------------------------- not supported

UNSUPPORTED = [
    "--frontend=relay.example.test:443", "--frontends=1:fe.example.test:443",
    "--nofrontend=1.2.3.4:443", "--service_on=http:a.example.test:localhost:80:S",
    "--service_off=http:a.example.test:localhost:80:S", "--backend=http:a:localhost:80:S",
    "--define_backend=http:a:localhost:80:S", "--service_cfg=a:insecure:True",
    "--be_config=a:insecure:True", "--kitename=a.example.test", "--kitesecret=S",
    "--defaults", "--whitelabel=example.test", "--whitelabels=example.test",
    "--fe_certname=x", "--fe_nocertcheck", "--ca_certs=/etc/ssl/certs/ca.pem",
    "--dyndns=x", "-D", "--keepalive=30", "--all", "-a", "--new", "-N", "--noprobes",
    "--proxy=socks5:h:1", "--socksify=h:1", "--torify=h:1", "--noproxy",
    "--local=80", "--insecure", "--signup", "--list", "--add", "--only", "--disable",
    "--remove", "--save", "--savefile=x", "-S", "--shell", "--friendly",
    "--controlpanel", "--controlpass", "--httpd=localhost:1", "-H", "--httppass=x", "-X",
    "--pemfile=x", "-P", "--selfsign", "--webpath=a:/:public:/tmp", "--remoteui",
    "--uiport=1", "--noisfrontend", "--max_read_bytes=1024",
    "--select_loop_min_ms=5", "--accept_acl_file=x", "--overload=10", "--overload_cpu=0.5", "--overload_mem=0.5",
    "--overload_file=x", "--upgradeinfo=a;b;c;d;e", "--noupgradeinfo", "--register=x",
    "--tls_legacy", "--nozchunks", "--sslzlib", "--wschunks", "--buffers=10",
    "--debugio", "--watch=1", "--loglevel=debug", "--watchdog=10",
    "--nopyopenssl", "--nossl", "--settings", "--logfile=memory",
    "--errorurl=www.example.test:http://errors.example.test/",
    "--protos=http,irc", "-4",
    "--reloadfile=x", "--autosave", "--noautosave", "--webroot=x", "--webaccess=x",
    "--webindexes=x", "--delete_backend=x", "-o",
]


def unsupported_argv(flag):
    base = ["--isfrontend", "--ports=%d" % free_port(), "--domain=http:*.%s:%s" % (DOMAIN, SECRET)]
    if flag == "-o":
        return base + ["-o", "luaplugin.setting=1"]
    if flag in ("-D", "-H", "-X", "-P", "-S", "-A"):
        return base + [flag, "x"]
    return base + [flag]


@pytest.mark.parametrize("flag", UNSUPPORTED)
def test_unsupported_flag(flag):
    """Every other pagekite.py flag: one line "not supported: FLAG (why)", exit 3."""
    r = run_relay(unsupported_argv(flag))
    lines = r.stderr.splitlines()
    assert r.returncode == EXIT_UNSUPPORTED, (flag, r.returncode, r.stderr)
    assert len(lines) == 1, r.stderr
    shown = flag.split("=", 1)[0]
    assert lines[0].startswith("pagekiter: not supported: %s" % shown), lines[0]
    assert lines[0].endswith(")") and " (" in lines[0], lines[0]


def test_unsupported_in_rc_file(tmp_path):
    rc = tmp_path / "pk.rc"
    rc.write_text("isfrontend\nservice_on = http:@kitename : localhost:80 : @kitesecret\n")
    r = run_relay(["--clean", "--optfile", rc])
    assert r.returncode == EXIT_UNSUPPORTED
    assert "%s:2: not supported: --service_on (" % rc in r.stderr
    assert "connector" in r.stderr


# ---------------------------------------------------------------- bad values

def bad(tmp_path):
    missing = tmp_path / "missing.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    dom = "--domain=http:*.%s:%s" % (DOMAIN, SECRET)
    return [
        (["--ports=80,99999", dom], "invalid port '99999'"),
        (["--ports=8080", "--protos=http", "--domain=http,raw:a.%s:S" % DOMAIN],
         "protocol 'raw' in --domain for 'a.example.test' is not in --protos"),
        (["--ports=8080", dom, "--tls_endpoint=a.example.test:%s" % missing], str(missing)),
        (["--ports=8080", dom, "--tls_endpoint=a.example.test:%s" % garbage],
         "%s: no PEM certificate" % garbage),
        (["--ports=8080", dom, "--tls_endpoint=%s" % garbage], "NAME:PEMFILE"),
        (["--ports=8080", dom, "--rawports=22,virtul"], "invalid --rawports"),
        (["--ports=8080", dom, "--portalias=8081:80"], "port 8081 is not in --ports"),
        (["--ports=8080", dom, "--portalias=8080"], "PORT:ALIAS"),
        (["--ports=8080", dom, "--motd=%s" % missing], str(missing)),
        (["--ports=8080", dom, "--runas=no-such-user-here"], "unknown user 'no-such-user-here'"),
        (["--ports=8080", dom, "--runas=nobody:no-such-group"], "unknown group 'no-such-group'"),
        (["--ports=8080", dom, "--optfile=%s" % missing], str(missing)),
        (["--ports=8080", dom, "--optdir=%s" % missing], str(missing)),
        (["--ports=8080", dom, "--errorurl=ftp://x/"], "--errorurl"),
        (["--ports=8080", dom, "--logfile=%s" % (tmp_path / "no" / "dir.log")], "dir.log"),
        (["--ports=8080", dom, "--tls_default=bad name"], "--tls_default"),
        (["--ports=8080", dom, "--isfrontend=yes"], "takes no value"),
        (["--ports=8080", dom, "--nosuchflag"], "unknown option '--nosuchflag'"),
    ]


def test_bad_values(tmp_path):
    """Each bad value: exit 2 and a message that names the value or file."""
    failures = []
    for args, want in bad(tmp_path):
        r = run_relay(args)
        if r.returncode != EXIT_USAGE or want not in r.stderr:
            failures.append("%s -> rc %s: %s (wanted %r)" % (args, r.returncode,
                                                              r.stderr.strip(), want))
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- the rest

def test_logfile(group, origin, tmp_path):
    """--logfile=FILE: the log goes there (appended), not to stderr."""
    p1 = free_port()
    log = tmp_path / "relay.log"
    log.write_text("old line\n")
    proc = start_relay(group, ["--isfrontend", "--host=127.0.0.1", "--ports=%d" % p1,
                               "--domain=http:*.%s:%s" % (DOMAIN, SECRET),
                               "--logfile=%s" % log], [p1])
    name = "www." + DOMAIN
    fly(group, p1, [Kite("http", name, origin.port)])
    wait_http(name, p1)
    deadline = time.monotonic() + 10
    while "Relay listening on 127.0.0.1:%d" % p1 not in log.read_text():
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)
    assert log.read_text().startswith("old line\n")
    assert "Relay listening" not in proc.stderr()


def test_logfile_stdio(group):
    p1 = free_port()
    proc = start_relay(group, ["--isfrontend", "--host=127.0.0.1", "--ports=%d" % p1,
                               "--domain=http:*.%s:%s" % (DOMAIN, SECRET),
                               "--logfile=stdio"], [p1])
    proc.wait_for(r"Relay listening on 127\.0\.0\.1:%d" % p1, 10, where="out")
    assert "Relay listening" not in proc.stderr()


def relay_motd(port, name):
    """The motd=... of X-PageKite-Misc in the answer to a tunnel request."""
    _status, headers = handshake(port, ["http:%s:abcdef12::" % name])
    misc = [v for k, v in headers if k == "X-PageKite-Misc"]
    assert misc and misc[0].startswith("motd="), headers
    return urllib.parse.unquote_plus(misc[0][len("motd="):])


def test_motd_sent_stripped(group, tmp_path):
    """--motd=FILE: the file's text, stripped as pagekite.py does, goes to
    connectors in X-PageKite-Misc: motd=... (URL-encoded)."""
    p1 = free_port()
    motd = tmp_path / "motd.txt"
    motd.write_text("\n  Welcome to the test relay.\r\nSecond line.  \n\n")
    start_relay(group, ["--isfrontend", "--ports=%d" % p1, "--motd=%s" % motd,
                        "--domain=http:*.%s:%s" % (DOMAIN, SECRET)], [p1])
    assert relay_motd(p1, "www." + DOMAIN) == "Welcome to the test relay.\nSecond line."


def test_motd_capped(group, tmp_path):
    p1 = free_port()
    motd = tmp_path / "motd.txt"
    motd.write_text("x" * 5000)
    start_relay(group, ["--isfrontend", "--ports=%d" % p1, "--motd=%s" % motd,
                        "--domain=http:*.%s:%s" % (DOMAIN, SECRET)], [p1])
    assert relay_motd(p1, "www." + DOMAIN) == "x" * 1024


def test_portalias(group, origin):
    """--portalias=PORT:80: a kite for port 80 is accepted and served on PORT."""
    p1 = free_port()
    start_relay(group, ["--isfrontend", "--ports=%d" % p1, "--portalias=%d:80" % p1,
                        "--domain=http:*.%s:%s" % (DOMAIN, SECRET)], [p1])
    fly(group, p1, [Kite("http", "www." + DOMAIN, origin.port, pport=80)])
    wait_http("www." + DOMAIN, p1)


def test_default_port_80_with_isfrontend():
    """pagekite.py listens on port 80 when --ports is not given; so does
    pagekiter with --isfrontend.  Port 80 is held here, so the relay fails
    and its message names 127.0.0.1:80."""
    blocker = socket.socket()
    try:
        blocker.bind(("127.0.0.1", 80))
        blocker.listen(1)
    except OSError:
        pass  # taken already (or no root): the relay cannot bind it either
    try:
        r = run_relay(["--isfrontend", "--host=127.0.0.1",
                       "--domain=http:*.%s:%s" % (DOMAIN, SECRET)])
    finally:
        blocker.close()
    assert r.returncode == 1, r.stderr
    assert "127.0.0.1:80" in r.stderr


def test_help_lists_both_spellings_and_exit_codes():
    r = run_relay(["--help"])
    assert r.returncode == 0
    for word in ("--isfrontend", "--host", "--listen", "--tls_endpoint", "--tls-cert",
                 "--optfile", "--optdir", "--rawports", "not supported", "PROTO NAME SECRET"):
        assert word in r.stdout, word
    assert "3  " in r.stdout or "3 " in r.stdout


def test_errorurl_frames_the_relay_503(group):
    """--errorurl=URL: the relay's 503 for a kite that is not here frames the
    URL (where=FE, domain=the name asked for), as pagekite.py's."""
    p1 = free_port()
    start_relay(group, ["--isfrontend", "--ports=%d" % p1,
                        "--errorurl=https://errors.example.test/offline/",
                        "--domain=http:*.%s:%s" % (DOMAIN, SECRET)], [p1])
    status, _h, body = http_request(p1, "nokite." + DOMAIN)
    assert status == 503
    assert (b"src='https://errors.example.test/offline/?&amp;where=FE" in body
            and b"domain=nokite." + DOMAIN.encode() in body), body[:300]


def test_domain_with_a_port(group, origin):
    """--domain=http-8080:NAME:SECRET (pagekite.py's protoport form) signs
    kites for port 8080 only, before a plain http entry for the same name."""
    p1 = free_port()
    relay = start_relay(group, ["--isfrontend", "--ports=%d" % p1, "--portalias=%d:8080" % p1,
                                "--domain=http-8080:*.%s:port-secret-8080" % DOMAIN,
                                "--domain=http:*.%s:%s" % (DOMAIN, SECRET)], [p1])
    fly(group, p1, [Kite("http", "p8080." + DOMAIN, origin.port, pport=8080,
                         secret="port-secret-8080")])
    wait_http("p8080." + DOMAIN, p1)
    fly(group, p1, [Kite("http", "wrong." + DOMAIN, origin.port, pport=8080, secret=SECRET)])
    relay.wait_for(r"Rejected kite http-8080:wrong\.", 20)
