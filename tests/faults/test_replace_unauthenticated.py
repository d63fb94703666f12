"""X-PageKite-Replace must not let an unauthenticated peer kill a tunnel.

The relay hands every connector a session id (X-PageKite-SessionID) in the
clear on a plain tunnel.  A handshake that carries X-PageKite-Replace with that
id and no valid kite should not tear down the connector's live tunnel.
"""
import re
import socket
import time

import pytest

from faultlib import free_port, serving, wait_port
from test_relay_faults import RstProxy


class SniffProxy(RstProxy):
    """RstProxy that also keeps the relay->connector bytes."""

    def __init__(self, target):
        self.seen = bytearray()
        super().__init__(target)

    def _pump(self, src, dst):
        try:
            while True:
                d = src.recv(65536)
                if not d:
                    break
                if len(self.seen) < 65536:
                    self.seen += d
                dst.sendall(d)
        except OSError:
            pass


def test_replace_without_kites_does_not_kill_tunnel(procs, origin):
    port = free_port()
    relay = procs.relay(port)
    assert wait_port(port)
    proxy = SniffProxy(port)
    try:
        conn = procs.connector(proxy.port, origin.port)
        assert serving(port), conn.output()
        m = re.search(rb"X-PageKite-SessionID: ([^\r\n]+)", bytes(proxy.seen))
        assert m, bytes(proxy.seen[:400])
        session = m.group(1).decode()
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(("CONNECT PageKite:1 HTTP/1.0\r\nX-PageKite-Version: 1.5\r\n"
                   "X-PageKite-Replace: %s\r\n\r\n" % session).encode())
        try:
            s.recv(4096)
        except OSError:
            pass
        s.close()
        time.sleep(0.5)
        relay_log = relay.output()
        assert "replaced by a new tunnel" not in relay_log, relay_log[-1500:]
        assert "is down" not in relay_log, relay_log[-1500:]
    finally:
        proxy.close()
