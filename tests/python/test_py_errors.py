"""Typed errors: each PK_E* code raises its PageKiteError subclass with .code."""

from __future__ import annotations

import socket

import pytest


def _raises(pk, cls, code, call, *words):
    """call() must raise exactly cls (a PageKiteError) with .code and words."""
    with pytest.raises(cls) as e:
        call()
    assert type(e.value) is cls
    assert isinstance(e.value, pk.PageKiteError)
    assert e.value.code == code
    for w in words:
        assert w in str(e.value), (w, str(e.value))
    return e.value


def test_classes_and_codes(pk):
    api = pk.api
    want = {api.PK_EINVAL: pk.InvalidArgument, api.PK_ESTATE: pk.WrongState,
            api.PK_ENOTFOUND: pk.NotFound, api.PK_EEXIST: pk.AlreadyExists,
            api.PK_ENOMEM: pk.OutOfMemory, api.PK_ENETWORK: pk.NetworkError,
            api.PK_ETLS: pk.TLSError, api.PK_EREJECTED: pk.Rejected,
            api.PK_ELIMIT: pk.LimitReached, api.PK_EIO: pk.FileError,
            api.PK_EUNSUPPORTED: pk.Unsupported}
    for code, cls in want.items():
        assert cls.code == code and issubclass(cls, pk.PageKiteError)
        err = pk.PageKiteError.from_code(code, "why", "pagekite_x")
        assert type(err) is cls and err.code == code and err.function == "pagekite_x"
    assert issubclass(pk.InvalidArgument, ValueError)
    assert type(pk.PageKiteError.from_code(-999, "new")) is pk.PageKiteError


def test_library_codes_reach_their_class(pk):
    api = pk.api
    _raises(pk, pk.InvalidArgument, api.PK_EINVAL, lambda: pk.Connector(max_conns=0),
            "max_conns 0")
    with pk.Relay(max_kites=1, max_listeners=1) as r:
        _raises(pk, pk.InvalidArgument, api.PK_EINVAL, lambda: r.add_listener("127.0.0.1", 70000),
                "port 70000 is not 0-65535")
        _raises(pk, pk.FileError, api.PK_EIO,
                lambda: r.set_tls("/nonexistent/c.pem", "/nonexistent/k.pem"), "/nonexistent/c.pem")
        r.add_port_alias(8080, 80)
        _raises(pk, pk.AlreadyExists, api.PK_EEXIST, lambda: r.add_port_alias(8080, 81), "8080")
    with pk.Connector(max_kites=1) as c:
        _raises(pk, pk.WrongState, api.PK_ESTATE, lambda: c.poll(1), "pagekite_poll")
        _raises(pk, pk.NotFound, api.PK_ENOTFOUND, lambda: c.kite_status("http", "nobody.test"),
                "nobody.test")
        c.add_kite("http", "a.example.test", "s", 8000)
        _raises(pk, pk.LimitReached, api.PK_ELIMIT,
                lambda: c.add_kite("http", "b.example.test", "s", 8000), "max_kites")
        _raises(pk, pk.Unsupported, api.PK_EUNSUPPORTED, lambda: c.set_proxy("ftp://p.test:21"),
                "ftp")


def test_network_and_tls(pk, tmp_path):
    api = pk.api
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        r = pk.Relay(max_kites=1, max_listeners=1)
        r.add_listener("127.0.0.1", busy.getsockname()[1])
        _raises(pk, pk.NetworkError, api.PK_ENETWORK, r.start, "cannot listen")
        r.close()
    finally:
        busy.close()
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    with pk.Relay(max_kites=1, max_listeners=1) as r:
        _raises(pk, pk.TLSError, api.PK_ETLS, lambda: r.set_tls(str(junk), str(junk)), str(junk))


def test_python_layer_errors_are_typed(pk):
    c = pk.Connector(max_kites=1)
    _raises(pk, pk.InvalidArgument, pk.api.PK_EINVAL,
            lambda: c.add_kite("http", "nul\0.example.test", "s", 8000), "NUL")
    c.close()
    _raises(pk, pk.WrongState, pk.api.PK_ESTATE, lambda: c.set_log_mask(0), "closed")
