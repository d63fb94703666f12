"""The exception type of the package."""

from __future__ import annotations

from typing import Optional


class PageKiteError(Exception):
    """A libpagekite call failed.

    ``reason`` is what pagekite_last_error() said on the calling thread right
    after the failing call (or a description of the misuse the Python layer
    caught itself, such as using a manager after it was freed); ``function`` is
    the C function that failed, when there is one.
    """

    def __init__(self, reason: str, function: Optional[str] = None) -> None:
        self.reason = reason
        self.function = function
        super().__init__(reason if not function or reason.startswith(function)
                         else "%s: %s" % (function, reason))
