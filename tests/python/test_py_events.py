"""Manager.events() / next_events() over pagekite_next_events (issue 16).

The log lines are driven from Python: a configuration call made after
start() fails and logs one MANAGER_ERROR line, so a loop of failing
add_frontend_certname() calls (before start() only; add_kite() works at any
time now) is a cheap, bounded source of log events."""

from __future__ import annotations

import threading
import time

import pytest

from pkpy_helpers import DOMAIN, SECRET, dump, plain_flags

N_LOGGED = 10_000


def started_connector(pk, managers):
    c = pk.Connector(app_id="py-events", max_frontends=1, flags=plain_flags(pk))
    managers.append(c)
    c.set_log_mask(pk.api.PK_LOG_ERRORS)
    c.start()
    return c


def log_one(pk, c, i):
    """One failing call, so one PK_EVENT_LOG line naming i."""
    with pytest.raises(pk.PageKiteError):
        c.add_frontend_certname("n%d.example.test" % i)


class Reader(threading.Thread):
    """Collects every event of c.events() until told to stop."""

    def __init__(self, c):
        super().__init__(daemon=True)
        self.c, self.got, self.done = c, [], threading.Event()
        self.moved = threading.Condition()

    def run(self):
        for ev in self.c.events(timeout=0.05):
            with self.moved:
                self.got.append(ev)
                self.moved.notify_all()
        while not self.done.is_set():  # timeout ended the iterator: go on
            for ev in self.c.events(after=self.got[-1].seq if self.got else 0, timeout=0.05):
                with self.moved:
                    self.got.append(ev)
                    self.moved.notify_all()

    def wait_logged(self, count, timeout=10.0):
        def seen():
            return sum(1 for e in self.got if e.text.startswith("pagekite_add_frontend_certname")) >= count
        with self.moved:
            return self.moved.wait_for(seen, timeout)


def test_10000_log_events_in_order_without_gaps(pk, managers):
    c = started_connector(pk, managers)
    reader = Reader(c)
    reader.start()
    for i in range(N_LOGGED):
        log_one(pk, c, i)
        if i % 200 == 199:  # the ring keeps 512: let the reader keep up
            assert reader.wait_logged(i + 1), dump(c)
    assert reader.wait_logged(N_LOGGED), dump(c)
    reader.done.set()
    reader.join(5)
    got = reader.got
    assert all(isinstance(e, pk.Event) and isinstance(e.kind, pk.EventKind) for e in got)
    seqs = [e.seq for e in got]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap or reorder in seq"
    assert not [e for e in got if e.kind == pk.EventKind.LOST]
    logged = [e for e in got if e.kind == pk.EventKind.LOG and "pagekite_add_frontend_certname" in e.text]
    assert len(logged) == N_LOGGED
    assert all(("only allowed before" in e.text) for e in logged), logged[0]
    assert all(e.code & pk.api.PK_LOG_MANAGER_ERROR for e in logged)
    times = [e.time_ms for e in got]
    assert times == sorted(times) and abs(times[-1] / 1000 - time.time()) < 60


def test_status_events_are_typed(pk, managers):
    c = started_connector(pk, managers)
    evs = []
    for ev in c.events(timeout=5):
        evs.append(ev)
        if ev.kind == pk.EventKind.STATUS:
            break
    status = [e for e in evs if e.kind == pk.EventKind.STATUS]
    assert status, evs
    assert isinstance(status[0].status, pk.Status)
    assert status[0].code == int(status[0].status)
    log = [e for e in evs if e.kind == pk.EventKind.LOG]
    assert log and all(e.status is None for e in log)


def test_slow_reader_gets_one_lost_event(pk, managers):
    c = started_connector(pk, managers)
    first = c.next_events(0, 1, 0)[0].seq
    for i in range(600):
        log_one(pk, c, i)
    evs = c.next_events(first, 4, 0)
    assert evs[0].kind == pk.EventKind.LOST, evs
    assert evs[0].code == evs[1].seq - first - 1 and evs[0].code > 0
    assert evs[1].seq == evs[0].seq + 1


def test_next_events_waits_up_to_its_timeout(pk, managers):
    c = pk.Connector(app_id="py-events-idle", max_frontends=1, flags=plain_flags(pk))
    managers.append(c)  # not started: only the calls below make events
    evs = c.next_events(0, 512, 0)
    last = evs[-1].seq
    t0 = time.monotonic()
    assert c.next_events(last, 8, 0.2) == []
    assert 0.15 < time.monotonic() - t0 < 2
    timer = threading.Timer(0.1, c.add_kite, ("http", "late.example.test", SECRET, 80))
    timer.start()
    t0 = time.monotonic()
    got = c.next_events(last, 8, 5)
    timer.join()
    assert time.monotonic() - t0 < 2
    assert [e.seq for e in got] == [last + 1] and "late.example.test" in got[0].text


def test_events_iterator_ends_after_stop(pk, managers):
    c = started_connector(pk, managers)
    log_one(pk, c, 7)
    c.stop()
    t0 = time.monotonic()
    evs = list(c.events())  # no timeout: ends because the manager stopped
    assert time.monotonic() - t0 < 5
    assert evs and evs[-1].seq > evs[0].seq
    assert any(e.text.startswith("pagekite_add_frontend_certname") for e in evs), evs


def test_next_events_argument_checks(pk, managers):
    c = started_connector(pk, managers)
    with pytest.raises(pk.PageKiteError):
        c.next_events(0, 0, 0)
    with pytest.raises(pk.PageKiteError):
        c.next_events(-1, 1, 0)
    with pytest.raises(TypeError):
        c.next_events(0, 1, "1")
    with pytest.raises(pk.PageKiteError):
        c.next_events(0, 1, -1)


def test_bail_without_process_exit_stops_with_exit_event(pk, managers, relay):
    """PK_WITHOUT_PROCESS_EXIT: bail-on-errors (a rejected kite weighs ten
    faults, so 1 trips at once) keeps this process alive, posts
    EventKind.EXIT with the exit status it would have used, and the master
    thread ends by itself."""
    c = pk.Connector(app_id="py-exit", max_frontends=1,
                     flags=plain_flags(pk) | pk.api.PK_WITHOUT_PROCESS_EXIT)
    managers.append(c)
    c.add_frontend("127.0.0.1", relay.port, update_from_dns=False)
    c.add_kite("http", "bail." + DOMAIN, "wrong-" + SECRET, 9)
    c.set_bail_on_errors(1)
    c.start()
    ev = next((e for e in c.events(timeout=15) if e.kind == pk.EventKind.EXIT), None)
    assert ev is not None, dump(c, relay)
    assert ev.code == 100 and "too many errors" in ev.text, ev
    assert c.wait_until(pk.Status.REJECTED, 5), dump(c, relay)
