"""The Pythonic layer: Connector and Relay managers, Status, PageKiteError."""

from __future__ import annotations

import asyncio
import enum
import os
import threading
import time
from typing import (Any, AsyncIterator, Callable, Dict, Iterator, List, Mapping, NamedTuple,
                    Optional, Sequence, Tuple, Union)

from ._enums import Counter, KiteStatus, Status  # generated from the spec
from ._errors import InvalidArgument, PageKiteError, WrongState
from ._pagekite import ffi, lib

__all__ = ["LIBRARY_VERSION_NUMBER", "Status", "KiteStatus", "KiteState", "Counter", "EventKind", "Event", "Connector",
           "Relay", "PageKiteError"]

StrPath = Union[str, "os.PathLike[str]"]

_INT_MIN, _INT_MAX = -(2 ** 31), 2 ** 31 - 1
_SEQ_MAX = 2 ** 63 - 1


LIBRARY_VERSION_NUMBER: int = lib.pagekite_version_number()
"""pagekite_version_number() of the loaded library (0xMMmmpp)."""


class KiteState(NamedTuple):
    """One kite of a :class:`Connector`, as :meth:`Connector.kites` reports it."""

    proto: str
    """The protocol as the kite is looked up: "http", or "http-8080" with a public port."""
    name: str
    status: KiteStatus
    reason: str
    """Why a relay refused it ("signature", "unknown", ...), or ""."""


class EventKind(enum.IntEnum):
    """Kinds of :class:`Event` (PK_EVENT_*)."""

    STATUS = lib.PK_EVENT_STATUS
    """The manager's status changed: code is the new :class:`Status`."""
    LOG = lib.PK_EVENT_LOG
    """A log line: text is the line, code its PK_LOG_* bits."""
    KITE = lib.PK_EVENT_KITE
    """A kite changed state: code is its :class:`KiteStatus`, proto and name
    say which, text why (a relay's reason)."""
    TUNNEL = lib.PK_EVENT_TUNNEL
    """A tunnel came up (code 1) or went down (code 0); name is the peer."""
    STREAMS = lib.PK_EVENT_STREAMS
    """The number of live streams changed: code is the new count."""
    LOST = lib.PK_EVENT_LOST
    """The reader was too slow: code events were dropped before this one."""
    EXIT = lib.PK_EVENT_EXIT
    """The manager stopped instead of ending the process
    (PK_WITHOUT_PROCESS_EXIT): code is the exit status it would have used,
    text why."""


class Event(NamedTuple):
    """One thing that happened in a manager (struct pagekite_event), as
    :meth:`Connector.next_events` and :meth:`Connector.events` return them.
    seq numbers events 1, 2, 3, ... per manager, with no gaps."""

    kind: Union[EventKind, int]
    """An :class:`EventKind` (a plain int for a kind newer than this module)."""
    seq: int
    time_ms: int
    """When it happened, in milliseconds since 1970-01-01 UTC."""
    code: int
    proto: str
    name: str
    text: str

    @property
    def status(self) -> Optional[Status]:
        """The new :class:`Status` of a STATUS event; None for other kinds."""
        if self.kind != EventKind.STATUS:
            return None
        try:
            return Status(self.code)
        except ValueError:
            return None


def _event(ev: Any) -> Event:
    try:
        kind: Union[EventKind, int] = EventKind(ev.kind)
    except ValueError:
        kind = int(ev.kind)

    def text(field: Any) -> str:
        return ffi.string(field).decode("utf-8", "replace")
    return Event(kind, int(ev.seq), int(ev.time_ms), int(ev.code), text(ev.proto),
                 text(ev.name), text(ev.text))


# ---------------------------------------------------------------- argument checks

def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be int, not %s" % (name, type(value).__name__))
    if not _INT_MIN <= value <= _INT_MAX:
        raise InvalidArgument("%s out of range: %d" % (name, value))
    return value


def _seconds(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("%s must be a number, not %s" % (name, type(value).__name__))
    if value < 0:
        raise PageKiteError("%s must be >= 0" % name)
    return float(value)


def _bool(value: Any, name: str) -> int:
    if not isinstance(value, (bool, int)):
        raise TypeError("%s must be bool, not %s" % (name, type(value).__name__))
    return 1 if value else 0


def _str(value: Any, name: str, nullable: bool = False, path: bool = False) -> Any:
    if value is None and nullable:
        return ffi.NULL
    if path and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if path and isinstance(value, bytes):
        data = value
    elif isinstance(value, str):
        data = value.encode("utf-8")
    else:
        raise TypeError("%s must be str%s, not %s" % (
            name, " or None" if nullable else "", type(value).__name__))
    if b"\0" in data:
        raise InvalidArgument("%s contains a NUL character" % name)
    return data


def _str_check(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise TypeError("%s must be str, not %s" % (name, type(value).__name__))
    return value


def _last_error() -> str:
    return ffi.string(lib.pagekite_last_error()).decode("utf-8", "replace")


def _failure(function: str) -> PageKiteError:
    """The exception for the call that just failed on this thread (by its code)."""
    return PageKiteError.from_code(lib.pagekite_last_error_code(), _last_error(), function)


# ---------------------------------------------------------------- managers

_CONFIGURING, _STARTING, _RUNNING, _STOPPING, _STOPPED = range(5)

# The longest single wait for events inside events(), wait_until() and
# statuses(): how soon they notice that the manager stopped or was closed
# (close() waits for calls inside C to return).
_EVENT_SLICE_S = 0.1


class _Manager:
    """What Connector and Relay share: lifecycle, status, log, counters.

    Thread safety: every method may be called from any thread.  The manager
    pointer is guarded so that it is never used after :meth:`close` freed it
    (calls then raise :class:`PageKiteError`); no Python lock is held while a C
    call runs, and the GIL is released during C calls, so a thread blocked in
    :meth:`poll` or :meth:`stop` does not hold up the others.
    """

    _ROLE_FLAGS = 0
    _KIND = "manager"

    def __init__(self, app_id: str, max_kites: int, max_frontends: int, max_conns: int,
                 flags: int, verbosity: int, dyndns_url: Optional[str],
                 start_on_enter: bool) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._mgr: Any = None
        self._busy = 0
        self._state = _CONFIGURING
        self._closing = False
        self._log_lock = threading.Lock()
        self._start_on_enter = bool(start_on_enter)
        flags = _int(flags, "flags") | self._ROLE_FLAGS
        mgr = lib.pagekite_init(_str(app_id, "app_id"), _int(max_kites, "max_kites"),
                                _int(max_frontends, "max_frontends"),
                                _int(max_conns, "max_conns"),
                                _str(dyndns_url, "dyndns_url", nullable=True), flags,
                                _int(verbosity, "verbosity"))
        if mgr == ffi.NULL:
            raise _failure("pagekite_init")
        self._mgr = mgr

    # -- plumbing

    def _enter(self) -> Any:
        with self._cond:
            if self._mgr is None:
                raise WrongState("this %s has been closed (freed)" % self._KIND)
            self._busy += 1
            return self._mgr

    def _leave(self) -> None:
        with self._cond:
            self._busy -= 1
            if self._busy == 0:
                self._cond.notify_all()

    def _call(self, cname: str, *args: Any, check: Optional[Callable[[Any], bool]] = None) -> Any:
        """Call lib.<cname>(mgr, *args); raise PageKiteError on its failure value."""
        mgr = self._enter()
        try:
            result = getattr(lib, cname)(mgr, *args)
            failed = (result < 0) if check is None else not check(result)
            if failed:
                raise _failure(cname)
            return result
        finally:
            self._leave()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` has freed the manager."""
        with self._cond:
            return self._mgr is None

    @property
    def running(self) -> bool:
        """True between a successful :meth:`start` and :meth:`stop`."""
        with self._cond:
            return self._state in (_RUNNING, _STOPPING) and self._mgr is not None

    # -- configuration shared by both roles

    def set_log_mask(self, mask: int) -> None:
        """Choose what is logged (a mask of ``api.PK_LOG_*`` bits)."""
        self._call("pagekite_set_log_mask", _int(mask, "mask"))

    def enable_http_forwarding_headers(self, enable: bool = True) -> None:
        """Add X-Forwarded-For / X-Forwarded-Proto to HTTP requests to origins."""
        self._call("pagekite_enable_http_forwarding_headers", _bool(enable, "enable"))

    def set_housekeeping_interval(self, minimum: Optional[int] = None,
                                  maximum: Optional[int] = None) -> None:
        """Bound the interval between housekeeping runs, in seconds."""
        if minimum is not None:
            self._call("pagekite_set_housekeeping_min_interval", _int(minimum, "minimum"))
        if maximum is not None:
            self._call("pagekite_set_housekeeping_max_interval", _int(maximum, "maximum"))

    def enable_lua_plugins(self, enable_defaults: bool = True,
                           settings: Union[Mapping[str, str], Sequence[str], None] = None) -> None:
        """Experimental: host Lua plugins (see pagekite_enable_lua_plugins).

        settings: a mapping name -> value or a sequence of "name=value".
        Raises PageKiteError when the library was built without Lua.
        """
        items: List[str]
        if settings is None:
            items = []
        elif isinstance(settings, Mapping):
            items = ["%s=%s" % (_str_check(k, "settings key"), _str_check(v, "settings value"))
                     for k, v in settings.items()]
        elif isinstance(settings, (list, tuple)):
            items = [_str_check(v, "settings item") for v in settings]
        else:
            raise TypeError("settings must be a mapping or a list of str, not %s"
                            % type(settings).__name__)
        keep = [ffi.new("char[]", _str(v, "settings item")) for v in items]
        array = ffi.new("char *[]", keep + [ffi.NULL]) if settings is not None else ffi.NULL
        self._call("pagekite_enable_lua_plugins", _bool(enable_defaults, "enable_defaults"), array)

    def load_lua_plugin(self, path: StrPath) -> None:
        """Experimental: run the Lua script at path when the manager starts."""
        self._call("pagekite_load_lua_plugin", _str(path, "path", path=True))

    def enable_fake_ping(self, enable: bool = True) -> None:
        """Randomize relay ping times (a testing aid)."""
        self._call("pagekite_enable_fake_ping", _bool(enable, "enable"))

    def enable_watchdog(self, enable: bool = True) -> None:
        """Abort the process (for a core dump) if the event loop hangs.  Before start()."""
        self._call("pagekite_enable_watchdog", _bool(enable, "enable"))

    def enable_tick_timer(self, enable: bool = True) -> None:
        """Turn the internal tick timer on or off (off: call :meth:`tick` yourself)."""
        self._call("pagekite_enable_tick_timer", _bool(enable, "enable"))

    def tick(self) -> None:
        """Run the internal tick now (a running manager only)."""
        self._call("pagekite_tick")

    def set_conn_eviction_idle(self, seconds: int) -> None:
        """Let new connections evict ones idle for this many seconds (0: never)."""
        self._call("pagekite_set_conn_eviction_idle_s", _int(seconds, "seconds"))

    def set_openssl_ciphers(self, ciphers: str) -> None:
        """The OpenSSL cipher list for TLS."""
        self._call("pagekite_set_openssl_ciphers", _str(ciphers, "ciphers"))

    def set_bail_on_errors(self, errors: int) -> None:
        """Exit the process (code 100) after errors*10 problems; 0 disables."""
        self._call("pagekite_set_bail_on_errors", _int(errors, "errors"))

    # -- lifecycle

    def start(self) -> "_Manager":
        """Start the master thread (configure first).  Returns self."""
        with self._cond:
            if self._mgr is None:
                raise WrongState("this %s has been closed (freed)" % self._KIND)
            if self._state != _CONFIGURING:
                raise WrongState("this %s was already started (a manager runs once)"
                                 % self._KIND, "pagekite_thread_start")
            self._state = _STARTING
        try:
            self._call("pagekite_thread_start", check=lambda r: r == 0)
        except BaseException:
            with self._cond:
                self._state = _CONFIGURING
            raise
        with self._cond:
            self._state = _RUNNING
        return self

    def stop(self) -> None:
        """Stop the master thread and wait for it (idempotent).

        Closes every tunnel and connection.  A stopped manager cannot be
        started again; :meth:`close` it and create a new one.
        """
        with self._cond:
            if self._mgr is None:
                raise WrongState("this %s has been closed (freed)" % self._KIND)
        self._stop()

    def _stop(self) -> None:
        with self._cond:
            while self._state == _STARTING or self._state == _STOPPING:
                self._cond.wait(0.1)
            if self._state != _RUNNING:
                if self._state == _CONFIGURING:
                    self._state = _STOPPED
                return
            self._state = _STOPPING
        try:
            self._call("pagekite_thread_stop", check=lambda r: r == 0)
        finally:
            with self._cond:
                self._state = _STOPPED
                self._cond.notify_all()

    def close(self) -> None:
        """Stop (if running) and free the manager.  Idempotent.

        Afterwards every method raises :class:`PageKiteError`.
        """
        with self._cond:
            if self._mgr is None or self._closing:
                while self._mgr is not None:
                    self._cond.wait(0.1)
                return
            self._closing = True
        try:
            self._stop()
        finally:
            with self._cond:
                mgr, self._mgr = self._mgr, None
                # Calls already inside C finish quickly once the thread has
                # stopped (poll returns at once); wait for them to leave.
                while self._busy:
                    self._cond.wait(0.1)
                self._cond.notify_all()
            lib.pagekite_free(mgr)

    free = close

    def __enter__(self) -> "_Manager":
        if self._start_on_enter:
            with self._cond:
                configuring = self._state == _CONFIGURING
            if configuring:
                self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            if getattr(self, "_mgr", None) is not None:
                self.close()
        except Exception:  # noqa: BLE001 - never raise from a finalizer
            pass

    def __repr__(self) -> str:
        if self.closed:
            return "<pagekite.%s closed>" % type(self).__name__
        try:
            status = self.status.name
        except PageKiteError:
            status = "?"
        return "<pagekite.%s %s%s>" % (type(self).__name__, status,
                                       "" if self.running else " (not running)")

    # -- monitoring

    @property
    def status(self) -> Status:
        """The manager's current :class:`Status`."""
        value = self._call("pagekite_get_status")
        try:
            return Status(value)
        except ValueError:
            raise PageKiteError("unknown status code %d" % value, "pagekite_get_status") from None

    @property
    def log(self) -> List[str]:
        """The in-memory log, oldest line first (a copy)."""
        mgr = self._enter()
        try:
            with self._log_lock:  # the C buffer is overwritten by the next call
                raw = lib.pagekite_get_log(mgr)
                if raw == ffi.NULL:
                    raise _failure("pagekite_get_log")
                text = ffi.string(raw).decode("utf-8", "replace")
        finally:
            self._leave()
        return [line for line in text.split("\n") if line]

    def poll(self, timeout: float = 1.0) -> None:
        """Sleep until something happens (status, log, traffic) or timeout s.

        The C call counts whole seconds, so a fractional timeout is rounded
        up.  Other Python threads keep running meanwhile.
        """
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be a number, not %s" % type(timeout).__name__)
        if timeout < 0:
            raise InvalidArgument("timeout must be >= 0")
        seconds = int(timeout) if float(timeout).is_integer() else int(timeout) + 1
        self._call("pagekite_poll", min(seconds, _INT_MAX))

    def next_events(self, after: int = 0, max: int = 64, timeout: float = 0.0) -> List[Event]:
        """The events numbered after ``after`` (at most max, oldest first),
        waiting up to timeout s for a first one; [] on timeout.

        Pass the seq of the last event you got as ``after`` next time (0:
        the oldest event still kept).  A reader more than 512 events behind
        gets one :attr:`EventKind.LOST` event first, saying how many it
        missed; continue after its seq.  Any thread may call it, and several
        readers may each keep their own ``after``.  The GIL is released
        while it waits; :meth:`close` waits for a call in progress, so keep
        timeouts short where another thread may close the manager.
        """
        if isinstance(after, bool) or not isinstance(after, int):
            raise TypeError("after must be int, not %s" % type(after).__name__)
        if not 0 <= after <= _SEQ_MAX:
            raise PageKiteError("after must be 0 or a seq, not %d" % after)
        count = _int(max, "max")
        wait_ms = min(int(-(-_seconds(timeout, "timeout") * 1000 // 1)), _INT_MAX)
        buf = ffi.new("pagekite_event[]", count if count > 0 else 1)
        buf[0].version = lib.PK_EVENT_VERSION
        n = self._call("pagekite_next_events", after, buf, count, wait_ms)
        return [_event(buf[i]) for i in range(n)]

    def events(self, after: int = 0, timeout: Optional[float] = None) -> Iterator[Event]:
        """Iterate over the manager's :class:`Event` objects, in order, from
        the one after ``after`` (0: the oldest still kept).

        Blocks for the next event; ends when timeout s pass without one
        (None: never), or once the manager was stopped (:meth:`stop`) and
        every event before that was yielded, or when it is closed.  Events
        are never skipped silently: a reader that falls more than 512 events
        behind gets an :attr:`EventKind.LOST` event.
        """
        limit = None if timeout is None else _seconds(timeout, "timeout")
        quiet_since = time.monotonic()
        while True:
            wait = _EVENT_SLICE_S
            if limit is not None:
                wait = max(0.0, min(wait, quiet_since + limit - time.monotonic()))
            try:
                batch = self.next_events(after, 64, wait)
            except PageKiteError:
                if self.closed:
                    return
                raise
            for ev in batch:
                after = ev.seq
                yield ev
            if batch:
                quiet_since = time.monotonic()
            elif self._ended(_STOPPED) or (
                    limit is not None and time.monotonic() - quiet_since >= limit):
                return

    def _ended(self, *states: int) -> bool:
        with self._cond:
            return self._mgr is None or self._state in states

    def _newest_seq(self) -> int:
        """The seq of the newest event so far (0 if none): wait after it."""
        after = 0
        while True:
            batch = self.next_events(after, 512, 0)
            if not batch:
                return after
            after = batch[-1].seq

    def _status_after(self, ev: Event) -> Optional[Status]:
        """The status an event tells of: a STATUS event's, or after a LOST
        event (status events may be among those missed) the current one."""
        if ev.kind == EventKind.LOST:
            return self.status
        return ev.status

    def wait_until(self, status: Union[Status, int], timeout: float) -> bool:
        """Wait (at most timeout s) until the status equals status.

        Returns True if it did, False on timeout - and False at once when
        the manager's status becomes :attr:`Status.REJECTED` while waiting
        for another status: a relay refused a kite, which waiting out the
        timeout would not change (the connector asks again only after a
        back-off).  Tell the two apart with :attr:`status`; a
        :class:`Connector`'s :meth:`~Connector.kites` and
        :meth:`~Connector.kite_reason` say which kite was refused and why.

        It waits for the manager's STATUS events (:meth:`next_events`) after
        the newest one at the call, so a change is seen as soon as it
        happens, including one between the first status check and the wait.
        """
        want = Status(status) if not isinstance(status, Status) else status
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            raise TypeError("timeout must be a number, not %s" % type(timeout).__name__)
        deadline = time.monotonic() + timeout
        after = self._newest_seq()
        seen = [self.status]
        while True:
            for current in seen:
                if current == want:
                    return True
                if current == Status.REJECTED:
                    return False
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            batch = self.next_events(after, 64, min(left, _EVENT_SLICE_S))
            after = batch[-1].seq if batch else after
            seen = [s for s in map(self._status_after, batch) if s is not None]

    def counter(self, which: Union[Counter, int]) -> int:
        """One counter (a :class:`Counter` or ``PK_COUNTER_*`` value)."""
        return int(self._call("pagekite_get_counter", _int(int(which) if isinstance(which, Counter)
                                                           else which, "counter")))

    def counters(self) -> Dict[str, int]:
        """All counters, by lower-case name (``kites_live``, ``bytes_in``, ...)."""
        return {c.name.lower(): self.counter(c) for c in Counter}

    def set_admin_listener(self, host: Optional[str], port: int) -> None:
        """Serve GET /metrics and GET /status.json on host:port (host None:
        127.0.0.1; port 0: off).  Before start()."""
        self._call("pagekite_set_admin_listener", _str(host, "host", nullable=True),
                   _int(port, "port"))

    def _admin_text(self, cname: str) -> str:
        mgr = self._enter()
        try:
            with self._log_lock:  # the C buffer is overwritten by the next call
                raw = getattr(lib, cname)(mgr)
                if raw == ffi.NULL:
                    raise _failure(cname)
                return ffi.string(raw).decode("utf-8", "replace")
        finally:
            self._leave()

    def metrics(self) -> str:
        """The metrics in the Prometheus text format 0.0.4 (what GET /metrics
        of the admin listener serves)."""
        return self._admin_text("pagekite_get_metrics")

    def status_json(self) -> str:
        """The status as JSON text (what GET /status.json serves):
        ``json.loads`` it for a dict."""
        return self._admin_text("pagekite_get_status_json")

    async def statuses(self, poll_interval: float = _EVENT_SLICE_S) -> AsyncIterator[Status]:
        """Async iterator over status changes: ``async for s in pk.statuses()``.

        Yields the current status first, then each new one, from the
        manager's STATUS events; ends when the manager is not running (not
        started, stopped or closed).  The waits for events run in the event
        loop's default executor, at most poll_interval s each (how soon the
        end is noticed); a change is yielded as soon as it happens.
        """
        cap = _seconds(poll_interval, "poll_interval")
        loop = asyncio.get_running_loop()
        try:
            after = self._newest_seq()
            last = self.status
        except PageKiteError:
            return
        yield last
        while True:
            try:
                batch = await loop.run_in_executor(None, self.next_events, after, 64, cap)
                changes = [self._status_after(ev) for ev in batch]
            except PageKiteError:
                return
            after = batch[-1].seq if batch else after
            for current in changes:
                if current is not None and current != last:
                    last = current
                    yield current
            if not batch and self._ended(_CONFIGURING, _STOPPING, _STOPPED):
                return


class Connector(_Manager):
    """A PageKite connector: flies kites through front-end relays.

    Configure with :meth:`add_kite` and :meth:`add_frontend`, then
    :meth:`start`; watch :attr:`status`; :meth:`close` (or leave the ``with``
    block) to stop and free it.  With ``start_on_enter=True`` entering the
    ``with`` block starts it.
    """

    _KIND = "connector"

    def __init__(self, app_id: str = "pagekite-py", max_kites: int = 8, max_frontends: int = 4,
                 max_conns: int = 1024, flags: int = lib.PK_WITH_DEFAULTS, verbosity: int = 0,
                 dyndns_url: Optional[str] = None, *, start_on_enter: bool = False) -> None:
        super().__init__(app_id, max_kites, max_frontends, max_conns, flags, verbosity,
                         dyndns_url, start_on_enter)
        self._kites: List[Tuple[str, str]] = []  # (proto[-port], name) as added
        self._reason_lock = threading.Lock()

    def add_kite(self, proto: str, name: str, secret: str, origin_port: int,
                 public_port: int = 0, origin_host: str = "localhost") -> None:
        """Serve kite ``name`` (protocol ``proto``: http, https, raw, websocket)
        from origin_host:origin_port, proving ownership with ``secret``.  At
        any time: after start() the kite is asked for on the live tunnels."""
        self._call("pagekite_add_kite", _str(proto, "proto"), _str(name, "name"),
                   _int(public_port, "public_port"), _str(secret, "secret"),
                   _str(origin_host, "origin_host"), _int(origin_port, "origin_port"))
        self._kites.append((proto if not public_port else "%s-%d" % (proto, public_port), name))

    def remove_kite(self, proto: str, name: str, public_port: int = 0) -> None:
        """Stop serving a kite added with add_kite(), at any time, without a
        restart (its tunnel closes if it carried nothing else; PageKiteError
        NOT_FOUND if there is no such kite)."""
        self._call("pagekite_remove_kite", _str(proto, "proto"), _str(name, "name"),
                   _int(public_port, "public_port"))
        key = (proto if not public_port else "%s-%d" % (proto, public_port), name)
        if key in self._kites:
            self._kites.remove(key)

    def add_kite_access(self, name: str, rule: str, public_port: int = 0) -> None:
        """An access rule for kite ``name``, pagekite.py's kite flags:
        "ip/1.2.3.4" or "ip/1.2.3" (only those addresses), or
        "password/USER=PASS" (HTTP basic auth).  Add the kite first; a rule
        that cannot apply raises.  Before start()."""
        self._call("pagekite_add_kite_access", _str(name, "name"),
                   _int(public_port, "public_port"), _str(rule, "rule"))

    def add_frontend(self, host: str, port: int, update_from_dns: bool = True) -> int:
        """Use the relay(s) that host resolves to; returns how many addresses.
        At any time: after start() they join the candidates."""
        return int(self._call("pagekite_lookup_and_add_frontend", _str(host, "host"),
                              _int(port, "port"), _bool(update_from_dns, "update_from_dns")))

    def remove_frontend(self, host: str, port: int) -> None:
        """Forget a relay added with add_frontend(), at any time: its tunnels
        close and the kites fly through the other relays."""
        self._call("pagekite_remove_frontend", _str(host, "host"), _int(port, "port"))

    def add_service_frontends(self, flags: int = lib.PK_WITH_DEFAULTS) -> int:
        """Use the pagekite.net service's relay pool; returns how many relays."""
        return int(self._call("pagekite_add_service_frontends", _int(flags, "flags")))

    def add_whitelabel_frontends(self, whitelabel_tld: str,
                                 flags: int = lib.PK_WITH_DEFAULTS) -> int:
        """Use the relays of a white-label domain of the service; returns how many."""
        return int(self._call("pagekite_add_whitelabel_frontends", _int(flags, "flags"),
                              _str(whitelabel_tld, "whitelabel_tld")))

    def want_spare_frontends(self, spares: int) -> None:
        """Stay connected to this many spare relays."""
        self._call("pagekite_want_spare_frontends", _int(spares, "spares"))

    def set_tls_verify(self, verify: bool = True, ca_file: Optional[StrPath] = None) -> None:
        """Verify relay certificates (against ca_file or the system store), or not."""
        self._call("pagekite_set_tls_verify",
                   lib.PK_TLS_VERIFY_PEER if _bool(verify, "verify") else lib.PK_TLS_VERIFY_NONE,
                   _str(ca_file, "ca_file", nullable=True, path=True))

    def add_frontend_certname(self, name: str) -> None:
        """Also accept a relay certificate issued for name (pagekite.py's
        --fe_certname); "" forgets the names added so far.  Before start()."""
        self._call("pagekite_add_frontend_certname", _str(name, "name"))

    def set_proxy(self, url: Optional[str]) -> None:
        """Reach relays (and DDNS) through an outgoing proxy:
        http://[user:pass@]host[:port] (CONNECT), socks5://... or
        socks5h://...; None or "" for none.  Before start()."""
        self._call("pagekite_set_proxy", _str(url, "url", nullable=True))

    def set_rejection_url(self, url: Optional[str]) -> None:
        """Frame url in the 503 page sent when an origin is down
        (libpagekite's rejection URL); None or "" for a plain page."""
        self._call("pagekite_set_rejection_url", _str(url, "url", nullable=True))

    def set_kite_proxy_protocol(self, proto: str, name: str, version: int) -> None:
        """Send each stream of a kite to its origin behind a PROXY protocol
        header (pagekite.py's +proxyproto): version 1 (text), 2 (binary) or
        0 (none), carrying the visitor's address the relay reports.  For
        streams opened after the call; any time, any thread."""
        self._call("pagekite_set_kite_proxy_protocol", _str(proto, "proto"), _str(name, "name"),
                   _int(version, "version"))

    def kite_status(self, proto: str, name: str) -> KiteStatus:
        """One kite's :class:`KiteStatus` (WAITING, FLYING, REJECTED, DUPLICATE).

        proto and name as given to :meth:`add_kite`; proto may carry the
        public port ("http-8080") to tell kites of one name apart.  Raises
        :class:`PageKiteError` for a kite that was never added.
        """
        value = self._call("pagekite_get_kite_status", _str(proto, "proto"), _str(name, "name"))
        try:
            return KiteStatus(value)
        except ValueError:
            raise PageKiteError("unknown kite status code %d" % value,
                                "pagekite_get_kite_status") from None

    def kite_reason(self, proto: str, name: str) -> str:
        """Why a relay refused a kite, in the relay's word: "signature" (wrong
        secret), "unknown" (no domain of the relay takes the name), "port",
        "proto", "quota", "duplicate", "invalid" (no reason given); "" while
        nothing was refused.  Raises :class:`PageKiteError` for a kite that
        was never added."""
        cproto, cname = _str(proto, "proto"), _str(name, "name")
        mgr = self._enter()
        try:
            with self._reason_lock:  # the C buffer is overwritten by the next call
                raw = lib.pagekite_get_kite_reason(mgr, cproto, cname)
                if raw == ffi.NULL:
                    raise _failure("pagekite_get_kite_reason")
                return ffi.string(raw).decode("utf-8", "replace")
        finally:
            self._leave()

    def kites(self) -> List[KiteState]:
        """Every kite added with :meth:`add_kite`, in order, with its current
        status and reason (see :meth:`kite_status`, :meth:`kite_reason`)."""
        return [KiteState(proto, name, self.kite_status(proto, name),
                          self.kite_reason(proto, name)) for proto, name in self._kites]


class Relay(_Manager):
    """A PageKite front-end relay (PK_AS_FRONTEND_RELAY).

    Configure with :meth:`add_listener`, :meth:`add_domain` and optionally
    :meth:`set_tls`, :meth:`add_tls_endpoint`, :meth:`set_tls_default`,
    :meth:`set_raw_ports`, :meth:`add_port_alias` and :meth:`set_motd`, then
    :meth:`start`.  ``max_listeners`` is the relay's use
    of libpagekite's max_frontends limit.
    """

    _ROLE_FLAGS = lib.PK_AS_FRONTEND_RELAY
    _KIND = "relay"

    def __init__(self, app_id: str = "pagekite-py-relay", max_kites: int = 16,
                 max_listeners: int = 8, max_conns: int = 2000, flags: int = 0,
                 verbosity: int = 0, *, start_on_enter: bool = False) -> None:
        super().__init__(app_id, max_kites, max_listeners, max_conns, flags, verbosity, None,
                         start_on_enter)

    def add_listener(self, host: Optional[str], port: int) -> None:
        """Listen on host:port (host None: all addresses) for tunnels and visitors."""
        self._call("pagekite_add_relay_listener", _str(host, "host", nullable=True),
                   _int(port, "port"))

    def add_domain(self, protos: str, pattern: str, secret: str) -> None:
        """Accept kites matching pattern ("name" or "*.domain") for the
        comma-separated protos, signed with secret.  At any time; the same
        protos and pattern again replace the secret (live kites that proved
        the old one are dropped)."""
        self._call("pagekite_add_relay_domain", _str(protos, "protos"), _str(pattern, "pattern"),
                   _str(secret, "secret"))

    def remove_domain(self, protos: str, pattern: str) -> None:
        """Stop accepting kites of a domain added with add_domain() (same
        protos and pattern), at any time: live kites it no longer allows are
        dropped, tunnels left without a kite closed."""
        self._call("pagekite_remove_relay_domain", _str(protos, "protos"),
                   _str(pattern, "pattern"))

    def set_duplicates(self, allow: bool = True) -> None:
        """Accept every correctly signed tunnel for a kite that already flies
        and share its new streams between them in turn (False, the default:
        a second tunnel is refused as a duplicate).  Before start()."""
        self._call("pagekite_set_relay_duplicates", _bool(allow, "allow"))

    def set_tls(self, cert: StrPath, key: StrPath) -> None:
        """PEM certificate chain and key: the catch-all for TLS the relay terminates
        (tunnels and HTTPS for names without their own endpoint).  At any
        time: again rotates it (new handshakes get the new one)."""
        self._call("pagekite_set_relay_tls", _str(cert, "cert", path=True),
                   _str(key, "key", path=True))

    def add_tls_endpoint(self, name: str, cert: StrPath, key: Optional[StrPath] = None) -> None:
        """Terminate TLS for name ("host" or "*.domain") with this PEM
        certificate chain and key (key None: the key is in cert), when no
        https kite takes the name (pagekite.py's --tls_endpoint).  The files
        are read now.  At any time: a name that has one gets the new
        certificate (rotation)."""
        self._call("pagekite_add_relay_tls_endpoint", _str(name, "name"),
                   _str(cert, "cert", path=True), _str(key, "key", nullable=True, path=True))

    def remove_tls_endpoint(self, name: str) -> None:
        """Forget the certificate of name (as added), at any time."""
        self._call("pagekite_remove_relay_tls_endpoint", _str(name, "name"))

    def set_tls_default(self, name: Optional[str]) -> None:
        """The name assumed for TLS clients that send no SNI (pagekite.py's
        --tls_default); None or "" for none.  At any time."""
        self._call("pagekite_set_relay_tls_default", _str(name, "name", nullable=True))

    def set_raw_ports(self, ports: Union[str, Sequence[Union[int, str]], None]) -> None:
        """Ports raw kites may claim besides the listening ones (pagekite.py's
        --rawports): "22,2222", "virtual" (any port), or a list such as
        [22, "virtual"]; None or "" for none.  Before start()."""
        if isinstance(ports, (list, tuple)):
            for p in ports:
                if isinstance(p, bool) or not isinstance(p, (int, str)):
                    raise TypeError("ports items must be int or str, not %s" % type(p).__name__)
            ports = ",".join(str(p) for p in ports)
        self._call("pagekite_set_relay_raw_ports", _str(ports, "ports", nullable=True))

    def add_port_alias(self, port: int, alias_of: int) -> None:
        """Route visitors on listening port as if they came to alias_of, and
        accept kites for alias_of (pagekite.py's --portalias).  Before start()."""
        self._call("pagekite_add_relay_port_alias", _int(port, "port"), _int(alias_of, "alias_of"))

    def add_proxy_source(self, cidr: str) -> None:
        """A load balancer in front of the relay ("10.0.0.0/8", "::1"):
        connections from it must start with a PROXY protocol v1/v2 header,
        whose client address then stands for the connection.  Before start()."""
        self._call("pagekite_add_relay_proxy_source", _str(cidr, "cidr"))

    def set_motd(self, motd: Optional[str]) -> None:
        """A message of the day sent to connectors (pagekite.py's --motd):
        at most 1024 bytes of printable text; None or "" for none.  At any
        time (for the tunnels made after)."""
        self._call("pagekite_set_relay_motd", _str(motd, "motd", nullable=True))

    def add_client_acl(self, rule: str) -> None:
        """A visitor access rule, "allow:REGEXP" or "deny:REGEXP" (pagekite.py's
        --client_acl): checked in order, the first match decides, no match is
        refused.  A rule that cannot apply raises.  Before start()."""
        self._call("pagekite_add_relay_client_acl", _str(rule, "rule"))

    def add_tunnel_acl(self, rule: str) -> None:
        """The same for connectors opening tunnels (pagekite.py's --tunnel_acl).
        Before start()."""
        self._call("pagekite_add_relay_tunnel_acl", _str(rule, "rule"))

    def set_require_tls(self, require: bool = True) -> None:
        """Accept tunnels only inside TLS (start() fails without a certificate).
        Before start()."""
        self._call("pagekite_set_relay_require_tls", _bool(require, "require"))

    def add_authdomain(self, spec: str) -> None:
        """DNS-based kite authentication, pagekite.py's --authdomain:
        "SUFFIX" (the default) or "KITE-DOMAIN:SUFFIX".  Kites no domain
        signs are vouched for by the DNS authority of SUFFIX (the relay never
        sees their secrets).  Before start()."""
        self._call("pagekite_add_relay_authdomain", _str(spec, "spec"))

    def set_authfail_closed(self, closed: bool = True) -> None:
        """Refuse kites when the auth domain cannot be asked (pagekite.py's
        --authfail_closed); the default accepts them.  Before start()."""
        self._call("pagekite_set_relay_authfail_closed", _bool(closed, "closed"))

    def add_ratelimit_ips(self, limit: str) -> None:
        """At most IPS new clients per SECONDS on a tunnel: "IPS/SECONDS" or
        "KITE:IPS/SECONDS" (pagekite.py's --ratelimit_ips).  Before start()."""
        self._call("pagekite_add_relay_ratelimit_ips", _str(limit, "limit"))
