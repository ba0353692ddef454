"""The lenient readers of answer values, one per kind of field.

Each takes a value and returns what the field holds (None for None), or raises
(TypeError, ValueError) when the value cannot be read at all; the model decoder then keeps
the raw value in ``extra``. ``""`` is the
API's "unset" and reads as None; numbers and booleans sent as strings are read as numbers
and booleans; an enum value the schema does not list becomes a stand-in member;
``callback: false`` is None; PHP-style ``[]`` for an empty object is an empty mapping.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from pecapi.models.common import Callback
from pecapi.models.enums import ApiEnum, CallbackMethod
from pecapi.models.wire import parse_wire_date

__all__ = [
    "DATE_CACHE",
    "DATE_CACHE_SIZE",
    "MISSING",
    "read_bool",
    "read_callback",
    "read_date",
    "read_enum",
    "read_int",
    "read_mapping",
    "read_str",
    "read_str_tuple",
]


def read_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def read_int(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise TypeError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        return int(text) if text else None
    raise TypeError(f"expected an integer, got {type(value).__name__}")


_TRUE = frozenset({"true", "1", "yes", "si"})
_FALSE = frozenset({"false", "0", "no", ""})


def read_bool(value: Any) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False if text else None
    raise TypeError(f"expected a boolean, got {value!r}")


#: The dates read so far, by their wire text (``""`` -> None included). An account's
#: answers repeat the same few dates (expiry, activation, birth dates of a listing), and
#: parsing one costs more than the rest of its field. Bounded: when full it is emptied
#: and refilled, so hostile answers cannot grow it. Dates are immutable, so sharing one
#: object between answers is safe; only the text -> date parse is cached, never an answer.
DATE_CACHE: dict[str, dt.date | None] = {}
DATE_CACHE_SIZE = 512
#: What a lookup in the cache returns for a text not in it.
MISSING: Any = object()


def read_date(value: Any) -> dt.date | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"expected a dd/mm/yyyy string, got {type(value).__name__}")
    cached = DATE_CACHE.get(value, MISSING)
    if cached is not MISSING:
        return cached  # type: ignore[no-any-return]
    parsed = parse_wire_date(value.strip())  # a ValueError is not cached: raised each time
    if type(value) is str:  # a str subclass could hash and compare in its own way
        if len(DATE_CACHE) >= DATE_CACHE_SIZE:
            DATE_CACHE.clear()
        DATE_CACHE[value] = parsed
    return parsed


def read_enum(value: Any, enum_type: type[ApiEnum]) -> ApiEnum | None:
    if value is None:
        return None
    if isinstance(value, str):
        return enum_type.lenient(value) if value else None
    raise TypeError(f"expected a string, got {type(value).__name__}")


def read_mapping(value: Any) -> Mapping[str, Any]:
    if isinstance(value, dict):
        return value
    if value == []:  # PHP encodes an empty associative array as []
        return {}
    raise TypeError(f"expected an object, got {type(value).__name__}")


def read_str_tuple(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(map(str, value))
    raise TypeError(f"expected a list, got {type(value).__name__}")


def unfrozen(cls: type[Any]) -> type[Any] | None:
    """A subclass of the frozen attrs class ``cls`` without its ``__setattr__`` and
    ``__delattr__`` (both must go for the interpreter to store slots directly), whose
    instances can become ``cls``'s by ``__class__`` assignment (CPython allows it between
    classes of one layout; the subclass adds no slot); None where it is refused.

    Decoders fill an instance of it, then make it a ``cls``: one slot store per field,
    instead of calling each slot descriptor's ``__set__`` past the frozen ``__setattr__``
    (what attrs' own ``__init__`` does), about a twentieth of the cost."""
    subclass = type(
        f"_{cls.__name__}Decoding",
        (cls,),
        {
            "__slots__": (),
            "__setattr__": object.__setattr__,
            "__delattr__": object.__delattr__,
            "__module__": __name__,
        },
    )
    probe: Any = object.__new__(subclass)
    try:
        probe.__class__ = cls
    except TypeError:
        return None
    return subclass


_new = object.__new__
_methods = CallbackMethod._value2member_map_
_CallbackDecoding = unfrozen(Callback)


def read_callback(value: Any) -> Callback | None:
    """A callback as the API echoes it; false, ``""`` and ``[]`` are "none"."""
    if type(value) is not dict:  # (a dict is none of those: skip the comparisons)
        if value is None or value is False or value == "" or value == []:
            return None
        if not isinstance(value, dict):
            raise TypeError(f"expected a callback object, got {type(value).__name__}")
    data = value.get("data")
    if data is not None:
        data = read_mapping(data)
    url = value.get("url")
    method = value.get("method")
    if isinstance(method, str):
        # Callback's own converter, inlined: the known value as sent, else normalised.
        known: Any = _methods.get(method)
        method = known or CallbackMethod.lenient(method.strip().upper())
    else:
        method = None
    field = value.get("field")
    url = url if isinstance(url, str) else ""
    field = field if isinstance(field, str) else None
    # Built without Callback.__init__, whose only work here is the method converter (done
    # above): one callback per answer, and answers are decoded on every read.
    if _CallbackDecoding is None:
        return Callback(url=url, method=method, field=field, data=data)
    callback = _new(_CallbackDecoding)
    callback.url = url
    callback.method = method
    callback.field = field
    callback.data = data
    callback.__class__ = Callback
    return callback  # type: ignore[no-any-return]
