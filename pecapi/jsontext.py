"""Untrusted text read the one way pecapi reads it: JSON that cannot exhaust the stack or
the memory, and whole numbers in ASCII digits only.

Every reader of text pecapi did not write (the API's answers, the token service's,
callbacks, the CLI's files, the journal, the emulator's request bodies) goes through
:func:`loads` and :func:`whole_number`, so that a new reader cannot forget a case.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from typing import Any

__all__ = [
    "FAST_DUMPS",
    "FAST_LOADS",
    "MAX_DEPTH",
    "JsonError",
    "TooManyValues",
    "count_values",
    "dumps",
    "loads",
    "nested_deeper",
    "whole_number",
]

#: The deepest nesting of arrays and objects pecapi reads where it checks (callback
#: deliveries, the emulator's request bodies): room for the 100 levels of
#: ``callback.data`` that ``Callback.check`` lets through, inside the envelope, the object
#: and its callback; far from the parser's recursion limit (about 1000).
MAX_DEPTH = 128


def _orjson(name: str) -> Callable[..., Any]:
    """orjson's function ``name``, imported on first use, not with pecapi (loading it
    takes a noticeable part of ``import aiohttp``'s time); a ValueError where the
    ``speed`` extra is not installed (the standard library does the work then)."""
    try:
        import orjson
    except ImportError:
        raise ValueError("orjson is not installed") from None
    found: Callable[..., Any] = getattr(orjson, name)
    return found


def _first_fast(text: bytes) -> Any:
    """Stands for orjson's ``loads`` until the first parse, which sets FAST_LOADS."""
    global FAST_LOADS
    FAST_LOADS = None  # if the import fails
    FAST_LOADS = _orjson("loads")
    return FAST_LOADS(text)


#: orjson's ``loads`` when it is installed (the ``speed`` extra; imported at the first
#: parse), None where it is not. It reads an answer four times as fast as
#: ``json.loads``; :func:`loads` uses it only where it gives the very value
#: ``json.loads`` gives (see ``_fast``). Tests set it (None: the standard library).
FAST_LOADS: Callable[[bytes], Any] | None = _first_fast


def _first_dumps(value: Any) -> bytes:
    """Stands for orjson's ``dumps`` until the first body is encoded (see ``_first_fast``)."""
    global FAST_DUMPS
    FAST_DUMPS = None
    FAST_DUMPS = _orjson("dumps")
    encoded: bytes = FAST_DUMPS(value)
    return encoded


#: orjson's ``dumps`` when it is installed (imported at the first body), None where it is
#: not: what :func:`dumps` tries first. Tests set it (None: the standard library).
FAST_DUMPS: Callable[[Any], bytes] | None = _first_dumps


def dumps(value: Any) -> bytes:
    """``value`` as compact UTF-8 JSON (a request body): orjson's encoding when it is
    installed (about ten times as fast), else the standard library's. For what pecapi's
    models unstructure into (strings, integers, booleans, None, lists and dicts with string
    keys: no floats) both write the same bytes; what orjson refuses (an integer beyond 64
    bits, a key that is not a string) is written by the standard library. Not for other
    values: orjson writes NaN as null and encodes dataclasses, enums and datetimes, where
    the standard library raises."""
    fast = FAST_DUMPS
    if fast is not None:
        try:
            return fast(value)
        except (TypeError, ValueError):  # orjson.JSONEncodeError is a TypeError
            pass
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# orjson reads an integer beyond 64 bits as a float, where ``json.loads`` keeps it exact:
# text with a run of 19 digits (anywhere, strings included) goes to the standard library.
# 19, not 20: a negative integer of 19 digits may be below -2**63 (-9223372036854775809),
# which orjson reads as a float too; every 18-digit integer fits in 64 bits.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_RUN = b"0" * 19


class JsonError(ValueError):
    """The text is not JSON pecapi reads: malformed, not UTF-8, or nested too deeply.
    Its message never quotes the text (it may be an answer holding a secret)."""


class TooManyValues(JsonError):
    """The text holds more JSON values than the reader allows (``count`` > ``limit``)."""

    def __init__(self, count: int, limit: int) -> None:
        self.count = count
        self.limit = limit
        super().__init__(f"about {count} JSON values, more than the limit of {limit}")


def count_values(text: str | bytes) -> int:
    """An upper bound of the number of values ``text`` parses into, read at the speed of
    ``bytes.count``: one more than its commas and opening brackets (those inside strings
    are counted too, which only errs on the safe side)."""
    if isinstance(text, str):
        return text.count(",") + text.count("[") + text.count("{") + 1
    return text.count(b",") + text.count(b"[") + text.count(b"{") + 1


def _no_constant(name: str) -> Any:
    # NaN and Infinity are not JSON (RFC 8259); Python's parser accepts them by default.
    raise JsonError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 reads as inf
        raise JsonError(f"a number out of range ({text[:20]})")
    return value


def loads(
    text: str | bytes,
    *,
    max_values: int | None = None,
    max_depth: int | None = None,
    constants: bool = True,
) -> Any:
    """The JSON value of ``text``, or a :class:`JsonError`.

    ``max_values`` bounds the memory the parsed value can take *before* parsing: parsed,
    ``[],[],...`` takes some 27 times its size (an empty list is 72 bytes), so a byte
    limit alone lets a 60 MiB answer take 1.6 GB. ``max_depth`` refuses a value nested
    deeper (the parser itself fails only near the interpreter's recursion limit, with a
    ``RecursionError``, which is reported as a :class:`JsonError` too). ``constants``
    False refuses ``NaN``, ``Infinity`` and numbers out of the float range (``1e999``).
    """
    # Each value takes a byte at least: text shorter than the limit is not counted.
    if max_values is not None and len(text) >= max_values:
        count = count_values(text)
        if count > max_values:
            raise TooManyValues(count, max_values)
    fast = FAST_LOADS
    value = _fast(fast, text) if constants and fast is not None else _NO_VALUE
    if value is _NO_VALUE:
        value = _standard(text, constants, max_depth)
    if max_depth is not None and nested_deeper(value, max_depth):
        raise JsonError(f"nested deeper than {max_depth} levels")
    return value


# What _fast returns when orjson does not give json.loads's value (a value can be None).
_NO_VALUE: Any = object()


def _fast(fast: Callable[[bytes], Any], text: str | bytes) -> Any:
    """orjson's value of ``text``, when it is certainly ``json.loads``'s: bytes without a
    run of 19 digits. Anything orjson refuses (NaN, a lone surrogate, UTF-16, nesting past
    its 1024 levels, broken JSON) goes to the standard library, which accepts it or words
    the error the one way pecapi words it."""
    if type(text) is not bytes or _LONG_RUN in text.translate(_DIGITS_TO_ZERO):
        return _NO_VALUE
    try:
        return fast(text)
    except ValueError:  # orjson.JSONDecodeError; its message may quote the text
        return _NO_VALUE


def _standard(text: str | bytes, constants: bool, max_depth: int | None) -> Any:
    constant: Callable[[str], Any] | None = None if constants else _no_constant
    number: Callable[[str], Any] | None = None if constants else _finite
    problem: JsonError | None = None
    try:
        return json.loads(text, parse_constant=constant, parse_float=number)
    except RecursionError:
        deeper = f"{max_depth} levels" if max_depth is not None else "the parser's stack"
        problem = JsonError(f"nested deeper than {deeper}")
    except JsonError as exc:  # from the hooks
        problem = JsonError(str(exc))
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, an int too long
        problem = JsonError(_reason(exc))
    # Raised here, outside the handlers: chained, the parser's exception (a
    # JSONDecodeError keeps the whole document in .doc) would live as long as ours.
    raise problem


def _reason(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        # Its message, without the document it keeps in .doc.
        return f"{exc.msg} at line {exc.lineno} column {exc.colno}"
    if isinstance(exc, UnicodeDecodeError):
        return "not UTF-8 text"
    return "not valid JSON"


def nested_deeper(value: Any, depth: int) -> bool:
    """Whether ``value`` (JSON-like: mappings, lists, tuples) has containers nested more
    than ``depth`` levels deep (``value`` itself, if a container, is level 1).

    Iterative: a value just under the parser's limit must not exhaust the stack here."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, Mapping):
            children: Any = item.values()
        elif isinstance(item, (list, tuple)):
            children = item
        else:
            continue
        if level > depth:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def whole_number(text: str, *, signed: bool = False, max_digits: int = 18) -> int | None:
    """``text`` as an int when it is ASCII digits (with a leading ``-``/``+`` when
    ``signed``), surrounding spaces allowed; else None.

    ASCII only: ``str.isdigit`` accepts "²" and "①" (``int()`` refuses them) and "٣"
    (``int()`` takes it); ``int()`` also takes "1_000", and refuses over 4300 digits with
    an error of its own. No number pecapi reads has 19 digits."""
    number = text.strip()
    digits = number[1:] if signed and number[:1] in ("-", "+") else number
    if not (digits.isascii() and digits.isdigit()) or len(digits) > max_digits:
        return None
    return int(number)
