"""Decoders of the answer models: one generated Python function per model, written on the
first decode of that model (importing pecapi generates nothing).

A generated decoder reads each field with the reader of its kind (str, int, bool, date,
enum, nested model...), inlined for the common cases (a ``str`` that is a ``str``, an enum
value the schema lists, a date seen before), and stores it straight into a new instance:
no per-field dispatch, no keyword-argument call of a 50-field ``__init__``. It is what
cattrs' generated hooks and attrs' ``__init__`` run, with every lookup done once, when the
function is written, instead of on every value (:mod:`pecapi.models.decoder_source`).

Its behaviour is the reference path's, :func:`decode_reference`: per field, the reader of
its kind (:mod:`pecapi.models.readers`); a raw None keeps the field's default; a value
that cannot be read leaves the field None and is kept in ``extra``, with the fields the
model does not know. The generated code takes the common cases only: on anything else
(a value of an unexpected type, an unreadable one, a missing ``id``) the whole answer is
decoded again by the reference path, so the two cannot disagree on what the inlined code
does not handle. ``tests/test_decode_*.py`` check that they agree on what it does.
"""

from __future__ import annotations

import datetime as dt
import threading
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from pecapi.models import readers
from pecapi.models.common import Callback
from pecapi.models.decoder_source import FieldCode, write_decoder
from pecapi.models.enums import ApiEnum
from pecapi.readonly import ReadOnlyDict

__all__ = ["DECODERS", "Decoder", "ModelPlan", "decode_reference", "decoder", "model_plan"]

Decoder = Callable[[Any], Any]

#: The decoder of each answer model written so far (read without a lock: a dict lookup).
DECODERS: dict[type[Any], Decoder] = {}
_PLANS: dict[type[Any], ModelPlan] = {}
# Reentrant: writing Mailbox's decoder writes its nested models' first, under the lock.
_lock = threading.RLock()


def decoder(cls: type[Any]) -> Decoder:
    """The decoder of the answer model ``cls`` (an attrs class with an ``extra`` field,
    every field read leniently), written on first use."""
    found = DECODERS.get(cls)
    if found is not None:
        return found
    with _lock:
        found = DECODERS.get(cls)
        if found is None:
            found = DECODERS[cls] = write_decoder(model_plan(cls))
        return found


def decode_reference(data: Any, cls: type[Any]) -> Any:
    """``data`` decoded into ``cls`` one field at a time by the readers of
    :mod:`pecapi.models.readers`: what the generated decoders do, slowly."""
    if not isinstance(data, dict):
        raise TypeError(f"expected an object for {cls.__name__}, got {type(data).__name__}")
    return model_plan(cls).slow(data)


def model_plan(cls: type[Any]) -> ModelPlan:
    """How ``cls`` is read (made once per model)."""
    found = _PLANS.get(cls)
    if found is None:
        with _lock:
            found = _PLANS.get(cls)
            if found is None:
                found = _PLANS[cls] = ModelPlan(cls)
    return found


class ModelPlan:
    """What decoding one model takes: its fields and their readers, and the reference
    path (:meth:`slow`)."""

    def __init__(self, cls: type[Any]) -> None:
        attrs.resolve_types(cls)
        self.cls = cls
        self.fields = [f for f in attrs.fields(cls) if f.name != "extra"]
        self.known = frozenset(f.name for f in self.fields)
        self.code = {f.name: field_code(f.type, i) for i, f in enumerate(self.fields)}
        self.readers = {name: code.reader for name, code in self.code.items()}
        empty: Any = attrs.fields_dict(cls)["extra"].default
        self.empty_extra: Mapping[str, Any] = empty

    def slow(self, data: dict[str, Any]) -> Any:
        """The reference path: each field by its reader, the unreadable ones kept raw."""
        kwargs: dict[str, Any] = {}
        unreadable: dict[str, Any] = {}
        for name in self.known & data.keys():
            raw = data[name]
            if raw is None:
                continue
            try:
                kwargs[name] = self.readers[name](raw)
            except Exception:
                unreadable[name] = raw
        obj = self.cls(**kwargs)
        extra = unreadable
        unknown = data.keys() - self.known
        if unknown:
            extra.update((key, data[key]) for key in unknown)
        if extra:
            object.__setattr__(obj, "extra", ReadOnlyDict.adopt(extra))
        return obj


# -- what each kind of field takes ---------------------------------------------------------


def _unwrap_optional(t: Any) -> Any:
    if typing.get_origin(t) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return t


def _item_of(t: Any) -> Any:
    """X for ``tuple[X, ...]``, else None."""
    if typing.get_origin(t) is tuple:
        args = typing.get_args(t)
        if len(args) == 2 and args[1] is Ellipsis:
            return args[0]
    return None


def _is_model(t: Any) -> bool:
    return isinstance(t, type) and attrs.has(t) and "extra" in attrs.fields_dict(t)


# The inlined readers, for a value that is not None, in ``{v}``; ``{i}`` is the field's
# index. Each leaves the field's value in ``{v}``, or raises (the reference path then reads
# the answer). An unhashable value makes a lookup raise TypeError: that is the same.
_STR = """\
if {v}.__class__ is str:
    if not {v}:
        {v} = None
else:
    {v} = _read_str({v})"""
_BOOL = """\
if {v}.__class__ is not bool:
    {v} = _read_bool({v})"""
_INT = """\
if {v}.__class__ is not int:
    {v} = _read_int({v})"""
_DATE = """\
w = _dates({v}, _MISSING) if {v}.__class__ is str else _MISSING
{v} = w if w is not _MISSING else _read_date({v})"""
_ENUM = """\
w = _members{i}({v})
{v} = w if w is not None else _read_enum({v}, _enum{i})"""
_STR_TUPLE = """\
if {v}.__class__ is list:
    {v} = tuple(map(str, {v}))
else:
    {v} = _read_str_tuple({v})"""
_MODEL = "{v} = _decode{i}({v})"
_MODEL_TUPLE = """\
if {v}.__class__ is list:
    {v} = tuple(map(_decode{i}, {v}))
else:
    {v} = _read_models{i}({v})"""


def field_code(t: Any, i: int) -> FieldCode:
    """How a field of type ``t`` (the ``i``-th of its model) is read."""
    inner = _unwrap_optional(t)
    item = _item_of(inner)
    if inner is str:
        return FieldCode(readers.read_str, _STR, {})
    if inner is bool:  # before int: a bool is an int
        return FieldCode(readers.read_bool, _BOOL, {})
    if inner is int:
        return FieldCode(readers.read_int, _INT, {})
    if inner is dt.date:
        return FieldCode(readers.read_date, _DATE, {})
    if isinstance(inner, type) and issubclass(inner, ApiEnum):
        enum_type: type[ApiEnum] = inner

        def read_enum(value: Any) -> Any:
            return readers.read_enum(value, enum_type)

        names = {f"_members{i}": inner._value2member_map_.get, f"_enum{i}": inner}
        return FieldCode(read_enum, _ENUM, names)
    if inner is Callback:
        return FieldCode(readers.read_callback, "{v} = _read_callback({v})", {})
    if inner == Mapping[str, Any]:
        return FieldCode(readers.read_mapping, "{v} = _read_mapping({v})", {})
    if item is str:
        return FieldCode(readers.read_str_tuple, _STR_TUPLE, {})
    if _is_model(inner):
        nested = decoder(inner)
        return FieldCode(nested, _MODEL, {f"_decode{i}": nested})
    if item is not None and _is_model(item):
        element = decoder(item)

        def read_models(value: Any) -> tuple[Any, ...]:
            # As cattrs reads a tuple[X, ...]: any iterable, item by item.
            return tuple(element(one) for one in value)

        names = {f"_decode{i}": element, f"_read_models{i}": read_models}
        return FieldCode(read_models, _MODEL_TUPLE, names)
    raise TypeError(f"no reader for a field of type {t!r}")
