"""``python -m pagekite``: thin connector and relay command lines.

    python -m pagekite connect --frontend HOST:PORT [--tls] [-H] LPORT PROTO NAME PPORT SECRET
    python -m pagekite relay --ports 9080[,9081] --domain PROTOS:PATTERN:SECRET

Both print ``status: NAME`` to stdout (flushed) whenever the status changes
and new log lines to stderr, and run until SIGINT or SIGTERM.
"""

from __future__ import annotations

import argparse
import signal
import sys
from typing import List, Optional, Sequence, Tuple

from . import api
from ._errors import PageKiteError
from ._manager import Connector, EventKind, Relay, _Manager

LEVELS = [api.PK_LOG_ERRORS, api.PK_LOG_NORMAL, api.PK_LOG_DEBUG,  # type: ignore[attr-defined]
          api.PK_LOG_ALL]  # type: ignore[attr-defined]


def _host_port(text: str, default_host: Optional[str] = None) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep:
        if default_host is None:
            raise argparse.ArgumentTypeError("expected HOST:PORT, got %r" % text)
        host = default_host
    host = host.strip("[]")
    try:
        number = int(port)
    except ValueError:
        raise argparse.ArgumentTypeError("bad port in %r" % text) from None
    if not host or not 0 < number < 65536:
        raise argparse.ArgumentTypeError("bad HOST:PORT %r" % text)
    return host, number


def _domain(text: str) -> Tuple[str, str, str]:
    parts = text.split(":", 2)
    if len(parts) != 3 or not all(parts):
        raise argparse.ArgumentTypeError("expected PROTOS:PATTERN:SECRET, got %r" % text)
    return parts[0], parts[1], parts[2]


def _ports(text: str) -> List[int]:
    try:
        ports = [int(p) for p in text.split(",") if p]
    except ValueError:
        raise argparse.ArgumentTypeError("bad port list %r" % text) from None
    if not ports or not all(0 < p < 65536 for p in ports):
        raise argparse.ArgumentTypeError("bad port list %r" % text)
    return ports


class _Deprecated(argparse.Action):
    """An old option spelling: sets dest to const and says what to use instead."""

    def __init__(self, *args: object, new: str, **kwargs: object) -> None:
        self.new = new
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: Optional[str] = None) -> None:
        print("python -m pagekite: %s is deprecated: use %s" % (option_string, self.new),
              file=sys.stderr)
        setattr(namespace, self.dest, self.const)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m pagekite",
        description="Fly a kite (connect) or run a relay (relay) with libpagekite.",
        epilog="Both print 'status: NAME' on stdout when the status changes and log lines "
               "on stderr; stop them with Ctrl-C or SIGTERM.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def verbosity(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log (-v debug, -vv everything)")
        sp.add_argument("-q", "--quiet", action="count", default=0, help="errors only")

    c = sub.add_parser("connect", help="fly a kite through a relay",
                       description="Make a local server reachable through a PageKite relay.")
    c.add_argument("--frontend", "-f", action="append", required=True, metavar="HOST:PORT",
                   type=_host_port, help="relay to connect to (repeatable)")
    c.add_argument("--tls", action="store_true",
                   help="wrap the tunnel in TLS, verifying the relay's certificate (off by "
                        "default: a private relay without a certificate speaks plain TCP)")
    c.add_argument("--ssl", action=_Deprecated, nargs=0, dest="tls", const=True, new="--tls",
                   help=argparse.SUPPRESS)
    c.add_argument("--ca-file", metavar="PEM",
                   help="CA file to verify the relay with (implies --tls)")
    c.add_argument("--insecure", action="store_true",
                   help="do not verify the relay's certificate (implies --tls; testing only)")
    c.add_argument("--fe-certname", action="append", default=[], metavar="NAME",
                   help="also accept a relay certificate for NAME (repeatable)")
    c.add_argument("-H", "--no-forwarding-headers", dest="forwarding_headers",
                   action="store_false",
                   help="do not add X-Forwarded-For / X-Forwarded-Proto to HTTP requests "
                        "(they are added by default, as by pagekitec)")
    c.add_argument("--forwarding-headers", action=_Deprecated, nargs=0,
                   dest="forwarding_headers", const=True, new="nothing (the default)",
                   help=argparse.SUPPRESS)
    c.add_argument("lport", metavar="LPORT", type=lambda t: _host_port(t, "localhost"),
                   help="origin server: PORT or HOST:PORT")
    c.add_argument("proto", metavar="PROTO", help="http, https, raw or websocket")
    c.add_argument("name", metavar="NAME", help="kite name, e.g. blog.example.com")
    c.add_argument("pport", metavar="PPORT", type=int, help="public port (0: default)")
    c.add_argument("secret", metavar="SECRET", help="kite secret")
    verbosity(c)

    r = sub.add_parser("relay", help="run a front-end relay",
                       description="Accept tunnels from connectors and visitors for their kites.")
    r.add_argument("--ports", required=True, type=_ports, metavar="PORT[,PORT...]",
                   help="ports to listen on")
    r.add_argument("--listen", metavar="HOST", default=None,
                   help="address to bind (default: all)")
    r.add_argument("--domain", action="append", required=True, type=_domain,
                   metavar="PROTOS:PATTERN:SECRET",
                   help="accept these kites, e.g. http,raw:*.example.com:s3cret (repeatable)")
    r.add_argument("--tls-cert", metavar="PEM", help="certificate for TLS tunnels")
    r.add_argument("--tls-key", metavar="PEM", help="key for TLS tunnels")
    r.add_argument("--max-kites", type=int, default=64, help="most kites (default 64)")
    r.add_argument("--max-conns", type=int, default=1024, help="most connections (default 1024)")
    verbosity(r)
    return p


class _Stop(Exception):
    pass


def _raise_stop(signum: int, frame: object) -> None:
    raise _Stop()


def _run(pk: _Manager) -> int:
    """Start, then report status changes and log lines, from the manager's
    events (Manager.events), until a signal."""
    old = signal.signal(signal.SIGTERM, _raise_stop)
    try:
        last_status = pk.status
        print("status: %s" % last_status.name, flush=True)
        pk.start()
        for ev in pk.events():
            if ev.kind in (EventKind.LOG, EventKind.LOST):
                print("%d t=%d %s" % (ev.seq, ev.time_ms // 1000, ev.text), file=sys.stderr,
                      flush=True)
            # Status changes may be among the events lost.
            status = pk.status if ev.kind == EventKind.LOST else ev.status
            if status is not None and status != last_status:
                print("status: %s" % status.name, flush=True)
                last_status = status
        return 0
    except (KeyboardInterrupt, _Stop):
        return 0
    finally:
        signal.signal(signal.SIGTERM, old)
        pk.close()


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = _parser().parse_args(argv)
    level = LEVELS[max(0, min(3, 1 + args.verbose - args.quiet))]
    try:
        if args.command == "connect":
            # As pagekitec with --frontend: TLS only when asked for (PK_WITH_DEFAULTS
            # would turn it on, and a pagekiter without a certificate is plain).
            tls = bool(args.tls or args.ca_file or args.insecure or args.fe_certname)
            flags = (api.PK_WITH_IPV4 | api.PK_WITH_IPV6  # type: ignore[attr-defined]
                     | (api.PK_WITH_SSL if tls else 0))  # type: ignore[attr-defined]
            pk: _Manager = Connector("pagekite-py", max_kites=1,
                                     max_frontends=max(4, len(args.frontend)),
                                     max_conns=256, flags=flags, verbosity=level)
            try:
                if tls:
                    pk.set_tls_verify(not args.insecure, args.ca_file)  # type: ignore
                for name in args.fe_certname:
                    pk.add_frontend_certname(name)  # type: ignore[attr-defined]
                pk.enable_http_forwarding_headers(args.forwarding_headers)
                origin_host, origin_port = args.lport
                pk.add_kite(args.proto, args.name, args.secret, origin_port,  # type: ignore
                            public_port=args.pport, origin_host=origin_host)
                for host, port in args.frontend:
                    pk.add_frontend(host, port)  # type: ignore[attr-defined]
            except BaseException:
                pk.close()
                raise
        else:
            if bool(args.tls_cert) != bool(args.tls_key):
                print("python -m pagekite relay: --tls-cert and --tls-key go together",
                      file=sys.stderr)
                return 2
            pk = Relay("pagekite-py-relay", max_kites=args.max_kites,
                       max_listeners=max(8, len(args.ports)), max_conns=args.max_conns,
                       verbosity=level)
            try:
                for port in args.ports:
                    pk.add_listener(args.listen, port)  # type: ignore[attr-defined]
                for protos, pattern, secret in args.domain:
                    pk.add_domain(protos, pattern, secret)  # type: ignore[attr-defined]
                if args.tls_cert:
                    pk.set_tls(args.tls_cert, args.tls_key)  # type: ignore[attr-defined]
            except BaseException:
                pk.close()
                raise
        return _run(pk)
    except PageKiteError as e:
        print("python -m pagekite %s: %s" % (args.command, e), file=sys.stderr)
        return 1
