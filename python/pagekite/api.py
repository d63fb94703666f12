"""Low-level API: one Python function per libpagekite C function.

Every function of the resolved spec (``pagekite/_spec.json``, which
spec/generate.py writes) is defined here under its
Python name (the C name without the ``pagekite_`` prefix) and, where that
differs, also under the seed's Java name (``addKite``, ``lookupAndAddFrontend``,
``threadStart``, ``getStatus``, ``getLog``, ...), as an alias of the same
function.

The functions are thin and keep C semantics: they return the C result and do
not raise on failure (check the documented failure value and call
:func:`last_error`).  Conversions:

* the manager (``pagekite_mgr``) is the opaque cffi pointer :func:`init`
  returned, or ``None`` for NULL;
* ``const char *`` arguments take ``str`` (UTF-8), ``bytes``, an
  ``os.PathLike`` or ``None`` (NULL); an embedded NUL raises ``ValueError``;
* ``char **`` arguments (NULL-terminated string lists) take a list or tuple
  of ``str`` or ``None``;
* ``int`` and ``long long`` arguments take ``int`` only (``TypeError``
  otherwise);
* ``pagekite_event *`` (:func:`next_events`) takes a cffi array,
  ``ffi.new("pagekite_event[]", n)`` with ``[0].version`` set to
  ``PK_EVENT_VERSION``, or ``None`` (NULL); :class:`pagekite.Connector` and
  :class:`pagekite.Relay` have ``next_events()`` / ``events()`` returning
  :class:`pagekite.Event` tuples instead;
* :func:`init` and friends return the manager or ``None`` (NULL);
* :func:`get_log` and :func:`last_error` return a copied ``str``
  (``get_log`` returns ``None`` on failure).

The GIL is released for the duration of every C call, so :func:`poll`,
:func:`thread_wait` and :func:`thread_stop` do not block other Python threads.
A manager passed here after :func:`free` is a dangling pointer, exactly as in
C: use :class:`pagekite.Connector` / :class:`pagekite.Relay` for a layer that
guards against that.

Every ``PK_*`` / ``PAGEKITE_NET_*`` constant of the header is a module
attribute too (integers read from the compiled header, strings as well).
"""

from __future__ import annotations

import inspect
import json
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple  # noqa: F401

from . import _cdef
from ._pagekite import ffi, lib

__all__: List[str] = []

_STRING_CONSTANT_PREFIX = "_pkpy_str_"  # see pagekite_build.py

# ---------------------------------------------------------------- constants

for _name in _cdef.INT_CONSTANTS:
    globals()[_name] = getattr(lib, _name)
    __all__.append(_name)
for _name in _cdef.CONSTANTS:
    globals()[_name] = ffi.string(getattr(lib, _STRING_CONSTANT_PREFIX + _name)).decode("utf-8")
    __all__.append(_name)

# ---------------------------------------------------------------- conversions

_MGR_TYPE = ffi.typeof("pagekite_mgr")


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _to_cstr(value: Any, name: str) -> Any:
    if value is None:
        return ffi.NULL
    if isinstance(value, str):
        data = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray)):
        data = bytes(value)
    elif isinstance(value, os.PathLike):
        data = os.fsencode(value)
    else:
        raise TypeError("%s must be str, bytes or None, not %s" % (name, type(value).__name__))
    if b"\0" in data:
        raise ValueError("%s: embedded null byte" % name)
    return data


def _to_strv(value: Any, name: str, keep: List[Any]) -> Any:
    """None -> NULL; a list/tuple of str -> a NULL-terminated char *[] (kept alive)."""
    if value is None:
        return ffi.NULL
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise TypeError("%s must be a list of str or None, not %s" % (name, type(value).__name__))
    items = []
    for i, item in enumerate(value):
        if item is None:
            raise TypeError("%s[%d] must be str, not None" % (name, i))
        items.append(ffi.new("char[]", _to_cstr(item, "%s[%d]" % (name, i))))
    keep.extend(items)
    array = ffi.new("char *[]", items + [ffi.NULL])
    keep.append(array)
    return array


def _to_int(value: Any, name: str) -> int:
    if not isinstance(value, int):
        raise TypeError("%s must be int, not %s" % (name, type(value).__name__))
    return value


_EVENT_PTR = ffi.typeof("pagekite_event *")


def _to_events(value: Any, name: str) -> Any:
    """None -> NULL; a cffi pagekite_event array (or pointer) as it is."""
    if value is None:
        return ffi.NULL
    if isinstance(value, ffi.CData) and ffi.typeof(value).kind in ("array", "pointer") \
            and ffi.typeof(value).item is _EVENT_PTR.item:
        return value
    raise TypeError("%s must be a cffi pagekite_event array or None, not %s"
                    % (name, type(value).__name__))


def _to_mgr(value: Any, name: str) -> Any:
    if value is None:
        return ffi.NULL
    if isinstance(value, ffi.CData) and ffi.typeof(value) is _MGR_TYPE:
        return value
    raise TypeError("%s must be a manager returned by init() (or None), not %s"
                    % (name, type(value).__name__))


def _from_mgr(value: Any) -> Any:
    return None if value == ffi.NULL else value


def _from_cstr(value: Any) -> Optional[str]:
    if value == ffi.NULL:
        return None
    return ffi.string(value).decode("utf-8", "replace")


# C type -> (Python annotation, argument converter)
_ARG_TYPES: Dict[str, Tuple[Any, Callable[[Any, str], Any]]] = {
    "pagekite_mgr": ("Optional[Manager]", _to_mgr),
    "const char *": ("Optional[str]", _to_cstr),
    "char *": ("Optional[str]", _to_cstr),
    "char * *": ("Optional[Sequence[str]]", _to_strv),
    "int": ("int", _to_int),
    "long long": ("int", _to_int),
    "pagekite_event *": ("Any", _to_events),
}
# C return type -> (Python annotation, result converter)
_RET_TYPES: Dict[str, Tuple[Any, Callable[[Any], Any]]] = {
    "pagekite_mgr": ("Optional[Manager]", _from_mgr),
    "const char *": ("Optional[str]", _from_cstr),
    "char *": ("Optional[str]", _from_cstr),
    "int": ("int", int),
    "long long": ("int", int),
    "void": ("None", lambda r: None),
}

Manager = Any
"""Type of the opaque manager handle (a cffi ``pagekite_mgr`` pointer)."""

def _load_spec() -> Dict[str, Any]:
    """pagekite/_spec.json: the resolved spec (spec/generate.py writes it)."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "_spec.json"),
              encoding="utf-8") as f:
        return json.load(f)


def _norm(ctype: str) -> str:
    """'const char*' / 'const char *' -> 'const char *'."""
    return " ".join(ctype.replace("*", " * ").split())


def _make_function(pyname: str, cname: str, ret: str, args: List[Tuple[str, str]]) -> Callable:
    cfunc = getattr(lib, cname)
    ret = _norm(ret)
    if ret not in _RET_TYPES:
        raise RuntimeError("%s: unsupported return type %r" % (cname, ret))
    ret_ann, ret_conv = _RET_TYPES[ret]
    convs = []
    params = []
    for ctype, aname in args:
        ctype = _norm(ctype)
        if ctype not in _ARG_TYPES:
            raise RuntimeError("%s: unsupported argument type %r" % (cname, ctype))
        ann, conv = _ARG_TYPES[ctype]
        convs.append((aname, conv))
        params.append(inspect.Parameter(aname, inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                        annotation=ann))
    sig = inspect.Signature(params, return_annotation=ret_ann)
    nargs = len(convs)

    def function(*args: Any, **kwargs: Any) -> Any:
        if kwargs or len(args) != nargs:
            try:
                bound = sig.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError("%s(): %s" % (pyname, e)) from None
            args = tuple(bound.args)
        keep: List[Any] = []  # owned buffers must outlive the C call
        cargs = [conv(value, aname, keep) if conv is _to_strv else conv(value, aname)
                 for (aname, conv), value in zip(convs, args)]
        result = ret_conv(cfunc(*cargs))
        del keep
        return result

    function.__name__ = pyname
    function.__qualname__ = pyname
    function.__module__ = __name__
    function.__signature__ = sig  # type: ignore[attr-defined]
    c_args = ", ".join("%s%s%s" % (t, "" if t.endswith("*") else " ", n) for t, n in args)
    function.__doc__ = ("Call %s(%s) -> %s.\n\nSee the C reference (pagekite.h, doc/API.md) for "
                        "the semantics; Java name: %s." % (cname, c_args or "void", ret,
                                                           _camel(pyname)))
    return function


JAVA_NAMES: Dict[str, str] = {}
"""Java (seed PageKiteAPI) name -> Python name, for names that differ."""

for _spec_fn in _load_spec()["functions"]:
    _pyname, _cname = _spec_fn["names"]["python"], _spec_fn["c"]
    _fn = _make_function(_pyname, _cname, _spec_fn["returns"]["type"],
                         [(a["type"], a["name"]) for a in _spec_fn["args"]])
    globals()[_pyname] = _fn
    __all__.append(_pyname)
    _java = _camel(_pyname)
    if _java != _pyname:
        globals()[_java] = _fn
        JAVA_NAMES[_java] = _pyname
        __all__.append(_java)

del _name, _spec_fn, _pyname, _cname, _fn, _java


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
