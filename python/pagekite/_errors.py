"""The exception types of the package: PageKiteError and one subclass per
PK_E* code (pagekite_last_error_code()), mapped in one place (from_code)."""

from __future__ import annotations

from typing import Dict, Optional, Type

from ._cdef import INT_CONSTANTS


class PageKiteError(Exception):
    """A libpagekite call failed.

    ``reason`` is what pagekite_last_error() said on the calling thread right
    after the failing call (or a description of the misuse the Python layer
    caught itself, such as using a manager after it was freed); ``function`` is
    the C function that failed, when there is one; ``code`` is the PK_E* code
    (``pagekite.api.PK_E*``; each has a subclass below, which is what is raised).
    """

    code: Optional[int] = None

    def __init__(self, reason: str, function: Optional[str] = None,
                 code: Optional[int] = None) -> None:
        self.reason = reason
        self.function = function
        if code is not None:
            self.code = code
        super().__init__(reason if not function or reason.startswith(function)
                         else "%s: %s" % (function, reason))

    @staticmethod
    def from_code(code: int, reason: str, function: Optional[str] = None) -> "PageKiteError":
        """The exception for a PK_E* code: its subclass, else PageKiteError."""
        return _BY_CODE.get(code, PageKiteError)(reason, function, code)


class InvalidArgument(PageKiteError, ValueError):
    """PK_EINVAL: an argument was refused; the message names it and says why."""
    code = INT_CONSTANTS["PK_EINVAL"]


class WrongState(PageKiteError):
    """PK_ESTATE: not now (configuration after start, a relay call on a connector...)."""
    code = INT_CONSTANTS["PK_ESTATE"]


class NotFound(PageKiteError):
    """PK_ENOTFOUND: no such kite."""
    code = INT_CONSTANTS["PK_ENOTFOUND"]


class AlreadyExists(PageKiteError):
    """PK_EEXIST: a kite, TLS endpoint or port alias configured twice."""
    code = INT_CONSTANTS["PK_EEXIST"]


class OutOfMemory(PageKiteError):
    """PK_ENOMEM: out of memory or another system resource."""
    code = INT_CONSTANTS["PK_ENOMEM"]


class NetworkError(PageKiteError):
    """PK_ENETWORK: a name that does not resolve, a port that cannot be bound."""
    code = INT_CONSTANTS["PK_ENETWORK"]


class TLSError(PageKiteError):
    """PK_ETLS: a certificate or key that does not load, no usable TLS context."""
    code = INT_CONSTANTS["PK_ETLS"]


class Rejected(PageKiteError):
    """PK_EREJECTED: a relay refused a kite."""
    code = INT_CONSTANTS["PK_EREJECTED"]


class LimitReached(PageKiteError):
    """PK_ELIMIT: max_kites, max_frontends or another limit reached."""
    code = INT_CONSTANTS["PK_ELIMIT"]


class FileError(PageKiteError):
    """PK_EIO: a file could not be read."""
    code = INT_CONSTANTS["PK_EIO"]


class Unsupported(PageKiteError):
    """PK_EUNSUPPORTED: not supported by this build or library."""
    code = INT_CONSTANTS["PK_EUNSUPPORTED"]


ERRORS = (InvalidArgument, WrongState, NotFound, AlreadyExists, OutOfMemory, NetworkError,
          TLSError, Rejected, LimitReached, FileError, Unsupported)
_BY_CODE: Dict[int, Type[PageKiteError]] = {cls.code: cls for cls in ERRORS}  # type: ignore
