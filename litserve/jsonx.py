"""JSON with orjson's speed and Python's ``json`` exactness.

orjson is fast but differs from Python's ``json`` (which upstream LitServe uses) in two
ways that change what a user's hooks see:

* ``orjson.loads`` reads an integer that does not fit 64 bits as a float (a 25-digit id
  loses its last digits) and refuses ``NaN``, ``Infinity``, ``-Infinity`` and numbers
  beyond the double range (``1e400``), all of which ``json.loads`` accepts;
* ``orjson.dumps`` refuses integers beyond 64 bits.

``loads`` and ``dumps`` keep orjson wherever it is exact and fall back to Python only
when a cheap check says it may not be:

============  ==========================================  ==============================
function      fast path (orjson)                           fallback (Python ``json``)
============  ==========================================  ==============================
``loads``     no run of 19+ digits in the text             a run of 19+ digits (an integer
                                                           that may exceed 64 bits), or
                                                           orjson refused the text
``dumps``     orjson wrote it                              orjson refused it: ints beyond
                                                           64 bits are written exactly,
                                                           everything else as orjson does
============  ==========================================  ==============================

So ``loads`` accepts exactly what ``json.loads`` accepts (and returns the same values),
and raises ``orjson.JSONDecodeError`` (a ``ValueError``) otherwise; the interpreter's
limit on integer digits (``sys.get_int_max_str_digits()``, 4300 by default) applies, as
it does to ``json.loads``.  ``dumps`` writes what orjson writes (NumPy arrays and scalars
natively, ``NaN`` and infinities as ``null``), plus integers of any size and strings
holding lone surrogates (which ``json.loads`` can produce), and raises ``TypeError``
(``orjson.JSONEncodeError``) for what it cannot write.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError
JSONEncodeError = orjson.JSONEncodeError

_OPTS = orjson.OPT_SERIALIZE_NUMPY
# The shortest integer orjson cannot hold (beyond [-2**63, 2**64)) has 19 digits.  A regex
# finds a run of them fastest in a few bytes; beyond that (it costs ~10 ns a byte) mapping
# every digit to "0" and searching for 19 of them is ten times faster.
_LONG_DIGITS = re.compile(rb"[0-9]{19}")
_REGEX_MAX = 64
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= i <= 0x39 else 0x20 for i in range(256))
_ZEROS = b"0" * 19
_INT_MIN, _INT_END = -(2**63), 2**64
_MAX_DEPTH = 255  # orjson's own nesting limit for dumps

Default = Callable[[Any], Any]


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Parse JSON the way ``json.loads`` does, at orjson's speed when that is exact."""
    small = len(data) <= _REGEX_MAX  # (inlined: this is every request's path)
    if _LONG_DIGITS.search(data) if small else _long_digit_run(data):
        return _python_loads(data, None)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return _python_loads(data, exc)


def _long_digit_run(data: bytes | bytearray | memoryview) -> bool:
    """Does ``data`` hold 19 digits in a row (an integer orjson may not hold exactly)?"""
    raw = data if isinstance(data, bytes) else bytes(data)
    return _ZEROS in raw.translate(_DIGITS_AS_ZERO)


def _python_loads(data: bytes | bytearray | memoryview, refused: JSONDecodeError | None
                  ) -> Any:
    """``json.loads``; its errors raised as ``JSONDecodeError`` (orjson's own when it
    refused the text first, as its messages are the more precise)."""
    try:
        return json.loads(str(data, "utf-8"))
    except UnicodeDecodeError as exc:
        raise refused or JSONDecodeError(f"not valid UTF-8 ({exc.reason})", "", exc.start
                                         ) from None
    except json.JSONDecodeError as exc:
        raise refused or JSONDecodeError(exc.msg, exc.doc, exc.pos) from None
    except (ValueError, RecursionError) as exc:  # too many digits, or nested too deep
        raise JSONDecodeError(str(exc) or type(exc).__name__, "", 0) from None


def dumps(obj: Any, default: Default | None = None) -> bytes:
    """``obj`` as JSON bytes (see the module doc); ``default`` converts what JSON has no
    type for, as in orjson (it may be called twice for one object when orjson refused)."""
    try:
        return orjson.dumps(obj, default=default, option=_OPTS)
    except orjson.JSONEncodeError:
        return orjson.dumps(_exact(obj, default, 0), option=_OPTS)


def _exact(obj: Any, default: Default | None, depth: int) -> Any:
    """``obj`` with every integer beyond 64 bits (and every string orjson cannot encode)
    replaced by its JSON text, and what ``default`` converts converted."""
    if depth > _MAX_DEPTH:
        raise JSONEncodeError(f"nested deeper than {_MAX_DEPTH} levels (or a cycle)")
    if isinstance(obj, str):
        return obj if obj.isascii() else _text(obj)
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj if _INT_MIN <= obj < _INT_END else orjson.Fragment(str(int(obj)))
    if isinstance(obj, dict):
        return {k: _exact(v, default, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_exact(v, default, depth + 1) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return _exact(fields, default, depth + 1)
    try:
        orjson.dumps(obj, option=_OPTS)  # floats, None, datetimes, NumPy, ...: as they are
        return obj
    except orjson.JSONEncodeError:
        if default is None:
            raise
    try:
        converted = default(obj)
    except Exception as exc:  # as orjson reports a failing default
        raise JSONEncodeError(f"Type is not JSON serializable: {type(obj).__name__}") from exc
    return _exact(converted, default, depth + 1)


def _text(s: str) -> Any:
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:  # a lone surrogate: write it escaped, as json.dumps does
        return orjson.Fragment(json.dumps(s).encode())
