"""pagekite: Python bindings for libpagekite (reborn), on cffi.

Two layers:

* :mod:`pagekite.api` - one function per C function (``api.init``,
  ``api.add_kite``, ...; the seed's Java names ``addKite``, ``threadStart``,
  ... are aliases), C semantics, plus every ``PK_*`` constant;
* this module - :class:`Connector` and :class:`Relay` managers (context
  managers, exceptions instead of error codes, guarded against use after free),
  :class:`Status`, :class:`KiteStatus`, :class:`Counter` and :class:`PageKiteError`.

Example::

    import pagekite
    with pagekite.Connector() as pk:
        pk.add_kite("http", "blog.example.com", "s3cret", origin_port=8080)
        pk.add_frontend("relay.example.com", 443)
        pk.start()
        pk.wait_until(pagekite.Status.FLYING, timeout=30)

Note: Debian's ``pagekite`` package (pagekite.py) installs an unrelated
top-level ``pagekite`` module for the system Python; install this package in
a virtual environment.
"""

from __future__ import annotations

try:
    from ._pagekite import ffi as _ffi, lib as _lib
except ImportError as _e:  # pragma: no cover - only for broken installs
    raise ImportError(
        "pagekite: the compiled extension pagekite._pagekite is missing (%s). Install the "
        "package (pip install ./python from the libpagekite repository) instead of importing "
        "it from the source tree." % _e) from _e

from . import api
from ._cdef import VERSION as _SPEC_VERSION
from ._errors import (AlreadyExists, FileError, InvalidArgument, LimitReached, NetworkError,
                      NotFound, OutOfMemory, PageKiteError, Rejected, TLSError, Unsupported,
                      WrongState)
from ._manager import (LIBRARY_VERSION_NUMBER, Connector, Counter, Event, EventKind,
                       KiteState, KiteStatus, Relay, Status)

__version__ = _SPEC_VERSION
LIBRARY_VERSION: str = api.PK_VERSION  # type: ignore[attr-defined]
"""libpagekite's version string (PK_VERSION of the compiled library)."""

__all__ = ["api", "Connector", "Relay", "Status", "KiteStatus", "KiteState", "Counter",
           "EventKind", "Event", "PageKiteError", "InvalidArgument", "WrongState", "NotFound",
           "AlreadyExists", "OutOfMemory", "NetworkError", "TLSError", "Rejected",
           "LimitReached", "FileError", "Unsupported", "LIBRARY_VERSION", "LIBRARY_VERSION_NUMBER",
           "__version__"]
