"""Status and metrics through the Python binding: Manager.metrics(),
Manager.status_json() (pagekite_get_metrics / pagekite_get_status_json,
answered by the loop thread) and Manager.set_admin_listener(), with a
relay and a connector flying a kite in one process."""

from __future__ import annotations

import json
import socket
import threading

from prometheus_client.parser import text_string_to_metric_families

from pkpy_helpers import DOMAIN, SECRET, dump, free_port, plain_flags, wait_http


def samples(text):
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def admin_get(port, path):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body.decode()


def test_metrics_and_status_from_python(pk, managers, relay, origin):
    name = "metrics." + DOMAIN
    c = pk.Connector(app_id="py-metrics", flags=plain_flags(pk))
    managers.append(c)
    admin = free_port()
    c.set_admin_listener(None, admin)
    c.add_kite("http", name, SECRET, origin.port, origin_host="127.0.0.1")
    assert c.add_frontend("127.0.0.1", relay.port) >= 1
    # Before start: the configured kite, down, and no tunnel.
    doc = json.loads(c.status_json())
    assert doc["role"] == "connector" and doc["tunnels"] == []
    assert [(k["name"], k["state"]) for k in doc["kites"]] == [(name, "down")]
    c.start()
    assert c.wait_until(pk.Status.FLYING, 20), dump(c, relay)
    for _ in range(3):
        assert wait_http(relay.port, name, "/") == origin.index
    m = samples(c.metrics())
    assert m[("pagekite_kite_up", (("kite", name), ("port", "0"), ("proto", "http")))] == 1
    assert m[("pagekite_streams_opened_total", ())] >= 3
    r = samples(relay.metrics())
    assert r[("pagekite_kites_live", ())] == 1
    assert r[("pagekite_tunnel_received_bytes_total", ())] > 0
    rdoc = json.loads(relay.status_json())
    assert rdoc["role"] == "relay"
    assert [k["name"] for t in rdoc["tunnels"] for k in t["kites"]] == [name]
    # The connector's admin listener serves the same text.
    status, body = admin_get(admin, "/status.json")
    assert status == 200 and json.loads(body)["kites"][0]["state"] == "live"
    status, body = admin_get(admin, "/metrics")
    assert status == 200 and "pagekite_kite_up{" in body
    assert SECRET not in body and SECRET not in c.status_json()


def test_metrics_from_many_threads(pk, managers, relay):
    errors = []

    def reader():
        try:
            for _ in range(50):
                text = relay.metrics()
                assert text.endswith("\n") and "pagekite_tunnels " in text
                assert json.loads(relay.status_json())["role"] == "relay"
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_admin_listener_argument_errors(pk, managers):
    c = pk.Connector(app_id="py-metrics-bad")
    managers.append(c)
    for host, port in (("not-an-ip", 8080), (None, 70000), (None, -1)):
        try:
            c.set_admin_listener(host, port)
        except pk.PageKiteError as e:
            assert "pagekite_set_admin_listener" in str(e)
        else:
            raise AssertionError("accepted %r:%r" % (host, port))
