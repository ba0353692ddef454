"""Models to and from JSON: ``to_json(model)`` and ``from_json(Model, data)``.

The JSON form is the API's own, one form for everything: the API's (Italian) field
names, enums as their values, dates as ``dd/mm/yyyy``, timestamps as unix seconds, and
unset fields (None, empty lists) left out. So ``to_json(registration)`` is the body
``mailboxes.register`` sends, ``to_json(mailbox)`` is what the API answered (the fields
the schema does not know, kept in ``extra``, merged back in), and ``from_json`` reads
either the way pecapi reads the API.

``from_json`` reads answers (:class:`~pecapi.Mailbox`, :class:`~pecapi.ComunicaPec`...)
leniently, exactly like an API answer: it does not fail on an unknown or unreadable
field, which lands in ``extra``. It reads what you send (:class:`~pecapi.MailboxRegistration`,
:class:`~pecapi.ComunicaPecRequest`, :class:`~pecapi.MailboxUser`, :class:`~pecapi.Callback`)
strictly: an unknown key, a missing required key or a value of the wrong type raises
:class:`~pecapi.ValidationError` naming the field (``callback.url``), and a ``callback``
may be given in the API's own form, ``{"url", "method", "field", "data"}``.
:class:`~pecapi.DomainCheck`, which pecapi builds itself, is read strictly too.
"""

from __future__ import annotations

import datetime as dt
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

import attrs

from pecapi.errors import ValidationError
from pecapi.models.common import Callback, DomainCheck
from pecapi.models.converter import REQUEST_MODELS, RESPONSE_MODELS, structure, unstructure

__all__ = ["JSON_MODELS", "from_json", "to_json"]

T = TypeVar("T")

_STRICT: tuple[type[Any], ...] = (*REQUEST_MODELS, DomainCheck)
#: Every model ``to_json`` and ``from_json`` take.
JSON_MODELS: frozenset[type[Any]] = frozenset((*RESPONSE_MODELS, *_STRICT))


def to_json(model: object) -> dict[str, Any]:
    """``model`` as a JSON-ready dict (``json.dumps`` takes it as it is), in the API's
    own form; see the module's docstring. A :class:`~pecapi.Callback` goes with its URL
    whole, a signature included: do not hand it to whoever must not call it."""
    if type(model) not in JSON_MODELS:
        raise ValidationError(None, f"to_json takes a pecapi model, not {type(model).__name__}")
    return unstructure(model)


def from_json(cls: type[T], data: Mapping[str, Any]) -> T:
    """A ``cls`` from its JSON object ``data`` (a mapping, e.g. from ``json.loads``):
    leniently for answers, strictly for requests (see the module's docstring). Raises
    :class:`~pecapi.ValidationError` only."""
    if not isinstance(cls, type) or cls not in JSON_MODELS:
        name = getattr(cls, "__name__", repr(cls))
        raise ValidationError(None, f"from_json takes a pecapi model class, not {name}")
    if cls in _STRICT:
        return _strict(cls, data, "callback." if cls is Callback else "")
    if not isinstance(data, Mapping):
        raise ValidationError(None, f"must be a JSON object, not {_kind(data)}")
    try:
        return structure(dict(data), cls)
    except (TypeError, ValueError, RecursionError) as exc:
        # Only what an answer cannot do without fails: a Mailbox's or ComunicaPec's id.
        required = [n for n, (f, _) in _fields(cls).items() if f.default is attrs.NOTHING]
        field = required[0] if len(required) == 1 else None
        reason = f"a {cls.__name__} needs it ({exc})" if field else str(exc)
        raise ValidationError(field, reason) from None


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


# -- strict reading --------------------------------------------------------------------


_FIELDS: dict[type[Any], dict[str, tuple[attrs.Attribute[Any], Any]]] = {}


def _fields(cls: type[Any]) -> dict[str, tuple[attrs.Attribute[Any], Any]]:
    """Each field of ``cls`` with its type, None dropped from an Optional."""
    fields = _FIELDS.get(cls)
    if fields is None:
        hints = typing.get_type_hints(cls)
        fields = {}
        for field in attrs.fields(cls):
            kind = hints[field.name]
            args = [arg for arg in typing.get_args(kind) if arg is not type(None)]
            fields[field.name] = (field, args[0] if len(args) == 1 else kind)
        _FIELDS[cls] = fields
    return fields


def _strict(cls: type[T], data: Any, prefix: str) -> T:
    where = prefix[:-1] or None
    if not isinstance(data, Mapping):
        raise ValidationError(where, f"must be a JSON object, not {_kind(data)}")
    fields = _fields(cls)
    for key in data:
        if key not in fields:
            # Reported before a missing key: a misspelt key is both, and this says which.
            raise ValidationError(f"{prefix}{key}", f"is not a field of {cls.__name__}")
    for name, (field, _) in fields.items():
        if field.default is attrs.NOTHING and data.get(name) is None:
            raise ValidationError(f"{prefix}{name}", "is required")
    kwargs = {name: _value(fields[name][1], value, prefix + name) for name, value in data.items()}
    try:
        # The model's own checks run here: enums, dates, addresses, blank strings...
        obj = cls(**kwargs)
        if isinstance(obj, Callback):
            obj.check()  # a Callback alone is not checked when made (answers hold them)
    except ValidationError:
        raise
    except (TypeError, ValueError, AttributeError) as exc:
        raise ValidationError(where, f"cannot be read as {cls.__name__}: {exc}") from None
    return obj


def _value(kind: Any, value: Any, path: str) -> Any:
    """``value`` checked against the JSON type of the field's ``kind``; enums and dates
    are parsed by the model's converters, which name the field themselves."""
    if value is None:
        return None
    if kind is Callback:
        return value if isinstance(value, Callback) else _strict(Callback, value, path + ".")
    if kind is bool:
        expected, ok = "true or false", isinstance(value, bool)
    elif isinstance(kind, type) and issubclass(kind, str):  # str and the API's enums
        expected, ok = "a string", isinstance(value, str)
    elif kind is dt.date:
        expected, ok = "a dd/mm/yyyy string", isinstance(value, (str, dt.date))
    elif typing.get_origin(kind) is Mapping or kind is Mapping:
        expected, ok = "a JSON object", isinstance(value, Mapping)
    else:
        expected, ok = "", True
    if not ok:
        raise ValidationError(path, f"must be {expected}, not {_kind(value)}")
    return value
