"""Flags named after the API's fields, generated from the request models.

``mailboxes register``, ``mailboxes add-user`` and ``comunica-pec create`` take one flag
per field of their body (``casella_pec`` -> ``--casella-pec``), plus ``--from-json FILE``
with a JSON object using the API's field names; flags given on the command line win over
the file. The nested ``callback`` object is ``--callback-url``, ``--callback-method``,
``--callback-field`` and ``--callback-data JSON`` (or ``"callback": {...}`` in the file).
Values are checked by the models themselves, so a bad one is a ``ValidationError`` naming
the API field, raised before anything is sent.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import attrs

from pecapi.errors import ValidationError
from pecapi.jsontext import JsonError, loads
from pecapi.models.common import Callback
from pecapi.models.enums import ApiEnum, CallbackMethod

__all__ = ["add_model_flags", "build_model"]

T = TypeVar("T")

_PREFIX = "body_"
_CALLBACK_FLAGS = ("url", "method", "field", "data")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _members(tp: Any) -> tuple[Any, ...]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return tuple(a for a in typing.get_args(tp) if a is not type(None))
    return (tp,)


def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _kind(tp: Any) -> Any:
    """The one non-None type of a field (``X | None`` -> ``X``)."""
    members = _members(tp)
    return members[0] if len(members) == 1 else tp


def add_model_flags(parser: argparse.ArgumentParser, cls: type[Any], what: str) -> None:
    """One flag per field of ``cls`` (an attrs request model), and ``--from-json``."""
    parser.add_argument(
        "--from-json",
        metavar="FILE",
        help=f"a JSON object with the fields of {what} ('-': stdin); flags override it",
    )
    hints = _hints(cls)
    group = parser.add_argument_group(f"fields of {what} (the API's names)")
    for field in attrs.fields(cls):
        kind = _kind(hints[field.name])
        required = field.default is attrs.NOTHING
        note = "required" if required else "optional"
        dest = _PREFIX + field.name
        if kind is Callback:
            _add_callback_flags(group)
        elif kind is bool:
            group.add_argument(
                _flag(field.name),
                dest=dest,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=f"{field.name} ({note})",
            )
        elif isinstance(kind, type) and issubclass(kind, ApiEnum):
            values = ", ".join(m.value for m in kind)
            group.add_argument(
                _flag(field.name), dest=dest, metavar="VALUE", help=f"{note}: one of {values}"
            )
        elif kind is dt.date:
            group.add_argument(
                _flag(field.name), dest=dest, metavar="DD/MM/YYYY", help=f"{field.name} ({note})"
            )
        else:
            group.add_argument(
                _flag(field.name), dest=dest, metavar="TEXT", help=f"{field.name} ({note})"
            )


def _add_callback_flags(group: argparse._ArgumentGroup) -> None:
    methods = ", ".join(m.value for m in CallbackMethod)
    group.add_argument(
        "--callback-url",
        dest=_PREFIX + "callback_url",
        metavar="URL",
        help="callback.url: called when the state changes (optional)",
    )
    group.add_argument(
        "--callback-method",
        dest=_PREFIX + "callback_method",
        metavar="VALUE",
        help=f"callback.method: one of {methods}",
    )
    group.add_argument(
        "--callback-field",
        dest=_PREFIX + "callback_field",
        metavar="NAME",
        help="callback.field: form field holding the JSON (method POST)",
    )
    group.add_argument(
        "--callback-data",
        dest=_PREFIX + "callback_data",
        metavar="JSON",
        help="callback.data: a JSON object echoed back in every callback",
    )


def _read_json_object(source: str, what: str) -> dict[str, Any]:
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValidationError("from_json", f"cannot read {source!r}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValidationError("from_json", f"{source!r} is not UTF-8 text") from None
    try:
        data = loads(text)
    except JsonError as exc:
        raise ValidationError("from_json", f"{source!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError("from_json", f"{source!r} must hold a JSON object of {what}")
    return data


def _callback(value: Any) -> Callback:
    if not isinstance(value, Mapping):
        raise ValidationError("callback", "must be an object with url, method, field, data")
    unknown = sorted(set(value) - set(_CALLBACK_FLAGS))
    if unknown:
        raise ValidationError(f"callback.{unknown[0]}", "is not a field of callback")
    url = value.get("url")
    if not isinstance(url, str) or not url:
        raise ValidationError("callback.url", "is required when a callback is given")
    method = value.get("method")
    if method is not None and not isinstance(method, str):
        raise ValidationError("callback.method", "must be a string")
    data = value.get("data")
    if isinstance(data, str):
        try:
            data = loads(data)
        except JsonError as exc:
            raise ValidationError("callback.data", f"is not valid JSON: {exc}") from None
    if data is not None and not isinstance(data, dict):
        raise ValidationError("callback.data", "must be a JSON object")
    # lenient here, as in an answer: check() names an unknown method
    known = None if method is None else CallbackMethod.lenient(method.strip().upper())
    callback = Callback(url=url, method=known, field=value.get("field"), data=data)
    callback.check()
    return callback


def build_model(cls: type[T], args: argparse.Namespace, what: str) -> T:
    """An instance of ``cls`` from ``--from-json`` and the field flags (flags win)."""
    names = [f.name for f in attrs.fields(cls)]  # type: ignore[arg-type]
    values: dict[str, Any] = {}
    if args.from_json is not None:
        data = _read_json_object(args.from_json, what)
        unknown = sorted(set(data) - set(names))
        if unknown:
            raise ValidationError(unknown[0], f"is not a field of {what}")
        values.update(data)
    callback_flags = {
        key: getattr(args, _PREFIX + "callback_" + key, None) for key in _CALLBACK_FLAGS
    }
    for name in names:
        value = getattr(args, _PREFIX + name, None)
        if value is not None:
            values[name] = value
    if "callback" in names and any(v is not None for v in callback_flags.values()):
        merged = dict(values.get("callback") or {})
        merged.update((k, v) for k, v in callback_flags.items() if v is not None)
        values["callback"] = merged
    if values.get("callback") is not None:
        values["callback"] = _callback(values["callback"])
    for field in attrs.fields(cls):  # type: ignore[arg-type]
        if field.default is attrs.NOTHING and values.get(field.name) is None:
            raise ValidationError(
                field.name, f"is required: give {_flag(field.name)} or put it in --from-json"
            )
    values = {k: v for k, v in values.items() if v is not None}
    return cls(**values)
