"""pagekite.api: every generated function and constant is reachable and right."""

from __future__ import annotations

import importlib
import inspect
import re

import pytest


@pytest.fixture(scope="module")
def cdef(pk):
    return importlib.import_module("pagekite._cdef")


def camel(name):
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def c_prototypes(cdef_text):
    """C name -> list of argument names, parsed independently of pagekite.api."""
    out = {}
    for m in re.finditer(r"\b(pagekite_\w+)\(([^)]*)\);", cdef_text):
        args = [] if m.group(2).strip() in ("", "void") else \
            [re.findall(r"\w+", a)[-1] for a in m.group(2).split(",")]
        out[m.group(1)] = args
    return out


def test_every_function_reachable(pk, cdef):
    protos = c_prototypes(cdef.CDEF)
    assert len(cdef.FUNCTIONS) >= 35
    for pyname, cname in cdef.FUNCTIONS.items():
        fn = getattr(pk.api, pyname, None)
        assert callable(fn), "pagekite.api.%s (%s) missing" % (pyname, cname)
        assert cname in fn.__doc__, pyname
        params = list(inspect.signature(fn).parameters)
        assert params == protos[cname], "%s: signature %s != C %s" % (pyname, params,
                                                                       protos[cname])
        # and the C function itself is compiled into the extension
        assert callable(getattr(pk.api.lib, cname))


def test_java_aliases(pk, cdef):
    seed = ["init", "initPagekitenet", "initWhitelabel", "addKite", "addServiceFrontends",
            "addWhitelabelFrontends", "lookupAndAddFrontend", "addFrontend", "setLogMask",
            "setHousekeepingMinInterval", "setHousekeepingMaxInterval",
            "enableHttpForwardingHeaders", "enableFakePing", "enableWatchdog",
            "enableTickTimer", "setConnEvictionIdleS", "setOpensslCiphers",
            "wantSpareFrontends", "threadStart", "threadWait", "threadStop", "free",
            "getStatus", "getLog", "poll", "tick", "setBailOnErrors"]
    for name in seed:
        assert callable(getattr(pk.api, name, None)), "Java alias %s missing" % name
    for pyname in cdef.FUNCTIONS:
        assert getattr(pk.api, camel(pyname)) is getattr(pk.api, pyname)


def test_int_constants_match(pk, cdef):
    for name, value in cdef.INT_CONSTANTS.items():
        assert getattr(pk.api, name) == value, name
        # the api value comes from the compiled header, the table from the spec
        assert getattr(pk.api.lib, name) == value, name


def test_string_constants_match(pk, cdef):
    for name, value in cdef.CONSTANTS.items():
        got = getattr(pk.api, name)
        assert isinstance(got, str) and got == value, name
    assert pk.LIBRARY_VERSION == cdef.CONSTANTS["PK_VERSION"]


def test_version_number(pk, cdef):
    assert pk.api.version_number() == cdef.INT_CONSTANTS["PK_VERSION_NUMBER"]
    assert pk.api.versionNumber() == pk.api.PK_VERSION_NUMBER
    assert pk.__version__ == cdef.VERSION


def test_status_and_counter_enums(pk):
    assert {s.name: int(s) for s in pk.Status} == {
        "STARTUP": pk.api.PK_STATUS_STARTUP, "CONNECTING": pk.api.PK_STATUS_CONNECTING,
        "UPDATING_DNS": pk.api.PK_STATUS_UPDATING_DNS, "FLYING": pk.api.PK_STATUS_FLYING,
        "PROBLEMS": pk.api.PK_STATUS_PROBLEMS, "REJECTED": pk.api.PK_STATUS_REJECTED,
        "NO_NETWORK": pk.api.PK_STATUS_NO_NETWORK}
    for c in pk.Counter:
        assert int(c) == getattr(pk.api, "PK_COUNTER_" + c.name)


def test_low_level_roundtrip(pk):
    api = pk.api
    mgr = api.init("py-api", 2, 2, 16, None, api.PK_WITH_DEFAULTS, 0)
    assert mgr is not None
    try:
        assert api.get_status(mgr) == api.PK_STATUS_STARTUP
        assert api.addKite(mgr, "http", "lowlevel.example.test", 0, "s3cret", "localhost",
                           8000) == 0
        assert api.add_kite(mgr, "http", "bad name", 0, "s3cret", "localhost", 8000) == -1
        assert api.last_error() != ""
        assert api.set_log_mask(mgr, api.PK_LOG_ALL) == 0
        assert api.get_counter(mgr, api.PK_COUNTER_KITES_LIVE) == 0
        assert api.get_counter(mgr, 12345) == -1
        log = api.getLog(mgr)
        assert isinstance(log, str) and "py-api" in log
        # poll before start: documented failure value
        assert api.poll(mgr, 0) == -1
    finally:
        assert api.free(mgr) == 0


def test_struct_array_argument(pk):
    """pagekite_event * (an out-array): a cffi pagekite_event[] or TypeError;
    long long arguments take ints."""
    api = pk.api
    from pagekite._pagekite import ffi
    mgr = api.init("py-events", 2, 2, 16, None, api.PK_WITH_DEFAULTS, 0)
    try:
        api.set_log_mask(mgr, api.PK_LOG_ALL)
        api.add_kite(mgr, "http", "ev.example.test", 0, "s3cret", "localhost", 8000)
        ev = ffi.new("pagekite_event[]", 8)
        ev[0].version = api.PK_EVENT_VERSION
        n = api.next_events(mgr, 0, ev, 8, 0)
        assert n >= 1
        assert [ev[i].seq for i in range(n)] == list(range(ev[0].seq, ev[0].seq + n))
        assert any(ev[i].kind == api.PK_EVENT_LOG
                   and b"ev.example.test" in ffi.string(ev[i].text) for i in range(n))
        with pytest.raises(TypeError):
            api.next_events(mgr, 0, [ev[0]], 8, 0)
        with pytest.raises(TypeError):
            api.next_events(mgr, "0", ev, 8, 0)
    finally:
        assert api.free(mgr) == 0


def test_null_manager_fails_cleanly(pk):
    api = pk.api
    assert api.get_status(None) == -1
    assert "NULL" in api.last_error()
    assert api.get_log(None) is None
    assert api.thread_start(None) != 0
    assert api.free(None) == -1
    assert api.init("x", 1, 0, 16, None, 0, 0) is None  # a connector needs a frontend
    assert "max_frontends 0" in api.last_error()


def test_string_list_argument(pk):
    """char ** (NULL-terminated list) arguments: list of str or None, else TypeError."""
    api = pk.api
    mgr = api.init("py-strv", 1, 1, 16, None, api.PK_WITH_DEFAULTS, 0)
    try:
        rv = api.enable_lua_plugins(mgr, 0, ["web_ui=off", "lua_budget=1000"])
        assert rv in (0, -1)  # -1: library built without Lua
        if rv == -1:
            assert "Lua" in api.last_error()
        assert api.enableLuaPlugins(mgr, 0, None) == rv
        with pytest.raises(TypeError):
            api.enable_lua_plugins(mgr, 0, "web_ui=off")
        with pytest.raises(TypeError):
            api.enable_lua_plugins(mgr, 0, ["ok=1", 5])
    finally:
        api.free(mgr)
    with pk.Connector() as c:
        with pytest.raises(TypeError):
            c.enable_lua_plugins(True, {"web_ui": 1})
        try:
            c.enable_lua_plugins(False, {"web_ui": "off"})
        except pk.PageKiteError as e:
            assert "Lua" in str(e)
