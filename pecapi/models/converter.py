"""The one cattrs converter: lenient structuring of responses, strict unstructuring of requests.

Responses: ``""`` is "unset" (None); numbers and booleans sent as strings are read as
numbers and booleans; an enum value the schema does not list becomes a stand-in member;
``callback: false`` is None; PHP-style ``[]`` for an empty object is an empty mapping.
Fields the schema does not know are kept in the model's ``extra`` mapping, and so is the
raw value of a known field that cannot be read at all (the field itself is then None):
decoding a response object never fails, but for a field the model cannot do without (the
``id`` of a Mailbox or ComunicaPec: a TypeError or ValueError, which callers report).

Unstructuring (request bodies, and ``pecapi.to_json`` of any model) writes the API's own
forms: unset fields (None, empty lists) are omitted, enums go as their values, dates as
dd/mm/yyyy, timestamps as unix seconds; an answer's ``extra`` is merged back into its
object, so what the API said and pecapi does not model survives a round trip.
"""

from __future__ import annotations

import datetime as dt
import types
import typing
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

from pecapi.models.common import Callback, DomainCheck, Timestamps
from pecapi.models.comunica import ComunicaPec, ComunicaPecRequest, ComunicaPecSummary
from pecapi.models.enums import ApiEnum
from pecapi.models.mailbox import (
    Mailbox,
    MailboxRegistration,
    MailboxSummary,
    MailboxUser,
    MailboxUserInfo,
    UserTimestamps,
)
from pecapi.models.wire import format_date, parse_wire_date

__all__ = ["REQUEST_MODELS", "RESPONSE_MODELS", "converter", "structure", "unstructure"]

T = TypeVar("T")

RESPONSE_MODELS: tuple[type[Any], ...] = (
    Timestamps,
    UserTimestamps,
    MailboxUserInfo,
    MailboxSummary,
    Mailbox,
    ComunicaPecSummary,
    ComunicaPec,
)
REQUEST_MODELS: tuple[type[Any], ...] = (  # nested ones first: hooks are bound when generated
    Callback,
    MailboxRegistration,
    MailboxUser,
    ComunicaPecRequest,
)

converter = cattrs.Converter(detailed_validation=False)


# -- lenient scalars ---------------------------------------------------------------------


# The scalar readers take None too, so an Optional field can use them directly.


def _read_str(value: Any, _: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value or None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _read_int(value: Any, _: Any) -> int | None:
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


def _read_bool(value: Any, _: Any) -> bool | None:
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


def _read_date(value: Any, _: Any) -> dt.date | None:
    if value is None:
        return None
    if isinstance(value, str):
        return parse_wire_date(value.strip())
    raise TypeError(f"expected a dd/mm/yyyy string, got {type(value).__name__}")


def _read_enum(value: Any, enum_type: type[ApiEnum]) -> ApiEnum | None:
    if value is None:
        return None
    if isinstance(value, str):
        return enum_type.lenient(value) if value else None
    raise TypeError(f"expected a string, got {type(value).__name__}")


def _read_mapping(value: Any, _: Any) -> Mapping[str, Any] | None:
    if isinstance(value, dict):
        return value
    if value == []:  # PHP encodes an empty associative array as []
        return {}
    raise TypeError(f"expected an object, got {type(value).__name__}")


def _read_str_tuple(value: Any, _: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(str(item) for item in value)
    raise TypeError(f"expected a list, got {type(value).__name__}")


def _read_callback(value: Any, _: Any) -> Callback | None:
    if value is None or value is False or value == "" or value == []:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"expected a callback object, got {type(value).__name__}")
    data = value.get("data")
    url = value.get("url")
    return Callback(
        url=url if isinstance(url, str) else "",
        method=value.get("method") if isinstance(value.get("method"), str) else None,
        field=value.get("field") if isinstance(value.get("field"), str) else None,
        data=_read_mapping(data, None) if data is not None else None,
    )


converter.register_structure_hook(str, _read_str)
converter.register_structure_hook(int, _read_int)
converter.register_structure_hook(bool, _read_bool)
converter.register_structure_hook(dt.date, _read_date)
converter.register_structure_hook_func(lambda t: t == Mapping[str, Any], _read_mapping)
converter.register_structure_hook_func(lambda t: t == tuple[str, ...], _read_str_tuple)
converter.register_structure_hook(Callback, _read_callback)
converter.register_structure_hook(ApiEnum, _read_enum)


def _is_optional(t: Any) -> bool:
    args = typing.get_args(t)
    return (
        typing.get_origin(t) in (typing.Union, types.UnionType)
        and len(args) == 2
        and type(None) in args
    )


def _optional_hook(t: Any) -> Callable[[Any, Any], Any]:
    # cattrs' own Optional handling looks the inner type up on every value; resolving it
    # once per field type makes decoding a mailbox about a quarter faster.
    inner = next(arg for arg in typing.get_args(t) if arg is not type(None))
    handler = converter.get_structure_hook(inner)
    if handler in _NONE_AWARE:
        return handler

    def hook(value: Any, _: Any) -> Any:
        return None if value is None else handler(value, inner)

    return hook


_NONE_AWARE = frozenset({_read_str, _read_int, _read_bool, _read_date, _read_callback})

# Registered before the model hooks below, which bind field hooks when generated.
converter.register_structure_hook_factory(_is_optional, _optional_hook)


# -- lenient models ----------------------------------------------------------------------


def _lenient_model_hook(cls: type[T]) -> Callable[[Any, Any], T]:
    """Structure ``cls`` from a dict, keeping unknown and unreadable fields in ``extra``."""
    fields = {f.name: f for f in attrs.fields(cls) if f.name != "extra"}  # type: ignore[arg-type]
    known = frozenset(fields)
    fast = make_dict_structure_fn(cls, converter, extra=override(omit=True))

    def slow(data: dict[str, Any]) -> tuple[T, dict[str, Any]]:
        kwargs: dict[str, Any] = {}
        unreadable: dict[str, Any] = {}
        for name in known & data.keys():
            raw = data[name]
            if raw is None:
                continue
            try:
                kwargs[name] = converter.structure(raw, fields[name].type)
            except Exception:
                unreadable[name] = raw
        return cls(**kwargs), unreadable

    def hook(data: Any, _: Any) -> T:
        if not isinstance(data, dict):
            raise TypeError(f"expected an object for {cls.__name__}, got {type(data).__name__}")
        extra: dict[str, Any] = {}
        try:
            obj = fast(data, cls)
        except Exception:
            obj, extra = slow(data)
        unknown = data.keys() - known
        if unknown:
            extra.update((key, data[key]) for key in unknown)
        if extra:
            object.__setattr__(obj, "extra", MappingProxyType(extra))
        return obj

    return hook


for _model in RESPONSE_MODELS:
    converter.register_structure_hook(_model, _lenient_model_hook(_model))


def structure(data: Any, cls: type[T]) -> T:
    """Decode a response object into ``cls`` (lenient; raises TypeError for a non-object)."""
    return converter.structure(data, cls)


# -- unstructuring: request bodies, and any model as JSON ---------------------------------

converter.register_unstructure_hook(dt.date, format_date)
converter.register_unstructure_hook(ApiEnum, lambda e: e.value)
# Request models (Callback first: hooks are bound when generated), then DomainCheck, then
# answers nested first.
for _model in (*REQUEST_MODELS, DomainCheck):
    converter.register_unstructure_hook(
        _model, make_dict_unstructure_fn(_model, converter, _cattrs_omit_if_default=True)
    )


def _answer_unstructure_hook(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
    known = make_dict_unstructure_fn(
        cls, converter, _cattrs_omit_if_default=True, extra=override(omit=True)
    )

    def hook(obj: Any) -> dict[str, Any]:
        body: dict[str, Any] = known(obj)
        # A known field set wins over an ``extra`` entry of the same name (extra holds a
        # known field's raw value only when that field could not be read, i.e. is None).
        for key, value in obj.extra.items():
            if key not in body:
                body[key] = converter.unstructure(value)
        return body

    return hook


for _model in RESPONSE_MODELS:
    converter.register_unstructure_hook(_model, _answer_unstructure_hook(_model))


def unstructure(obj: Any) -> dict[str, Any]:
    """The JSON object of a model: a request body, or an answer with its ``extra``."""
    body: dict[str, Any] = converter.unstructure(obj)
    return body
