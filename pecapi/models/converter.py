"""Lenient structuring of responses, strict unstructuring of requests.

Responses: ``""`` is "unset" (None); numbers and booleans sent as strings are read as
numbers and booleans; an enum value the schema does not list becomes a stand-in member;
``callback: false`` is None; PHP-style ``[]`` for an empty object is an empty mapping
(:mod:`pecapi.models.readers`). Fields the schema does not know are kept in the model's
``extra`` mapping, and so is the raw value of a known field that cannot be read at all (the
field itself is then None): decoding a response object never fails, but for a field the
model cannot do without (the ``id`` of a Mailbox or ComunicaPec: a TypeError or ValueError,
which callers report). Each answer model is decoded by a function generated for it on its
first decode (:mod:`pecapi.models.decoders`).

Unstructuring (request bodies, and ``pecapi.to_json`` of any model) goes through one cattrs
converter, made on first use (:func:`get_converter`), its hooks generated per model on
first use too: importing pecapi generates nothing. It writes the API's own forms: unset
fields (None, empty lists) are omitted, enums go as their values, dates as dd/mm/yyyy,
timestamps as unix seconds; an answer's ``extra`` is merged back into its object, so what
the API said and pecapi does not model survives a round trip.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from pecapi.models import readers
from pecapi.models.common import Callback, DomainCheck, Timestamps
from pecapi.models.comunica import ComunicaPec, ComunicaPecRequest, ComunicaPecSummary
from pecapi.models.decoders import DECODERS, decoder
from pecapi.models.enums import ApiEnum
from pecapi.models.mailbox import (
    Mailbox,
    MailboxRegistration,
    MailboxSummary,
    MailboxUser,
    MailboxUserInfo,
    UserTimestamps,
)
from pecapi.models.wire import format_date

if TYPE_CHECKING:
    import cattrs

__all__ = ["REQUEST_MODELS", "RESPONSE_MODELS", "get_converter", "structure", "unstructure"]

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
REQUEST_MODELS: tuple[type[Any], ...] = (
    Callback,
    MailboxRegistration,
    MailboxUser,
    ComunicaPecRequest,
)
_RESPONSE = frozenset(RESPONSE_MODELS)
_WRITTEN = frozenset((*REQUEST_MODELS, DomainCheck))


def structure(data: Any, cls: type[T]) -> T:
    """Decode a response object into ``cls`` (lenient; raises TypeError for a non-object)."""
    decode = DECODERS.get(cls)
    if decode is None:
        if cls not in _RESPONSE:
            return get_converter().structure(data, cls)
        decode = decoder(cls)
    result: T = decode(data)
    return result


def unstructure(obj: Any) -> dict[str, Any]:
    """The JSON object of a model: a request body, or an answer with its ``extra``."""
    body: dict[str, Any] = (_converter or get_converter()).unstructure(obj)
    return body


# -- the cattrs converter, made on first use ---------------------------------------------

_converter: cattrs.Converter | None = None
_converter_lock = threading.Lock()


def get_converter() -> cattrs.Converter:
    """The cattrs converter of pecapi's models: the answer models' decoders as its structure
    hooks, the lenient readers for scalars, and the API's forms for unstructuring."""
    global _converter
    if _converter is None:
        with _converter_lock:
            if _converter is None:
                _converter = _make_converter()
    return _converter


def _make_converter() -> cattrs.Converter:
    import cattrs
    from cattrs.gen import make_dict_unstructure_fn, override

    conv = cattrs.Converter(detailed_validation=False)

    def reader(read: Callable[[Any], Any]) -> Callable[[Any, Any], Any]:
        return lambda value, _: read(value)

    conv.register_structure_hook(str, reader(readers.read_str))
    conv.register_structure_hook(int, reader(readers.read_int))
    conv.register_structure_hook(bool, reader(readers.read_bool))
    conv.register_structure_hook(dt.date, reader(readers.read_date))
    conv.register_structure_hook(Callback, reader(readers.read_callback))
    conv.register_structure_hook_func(
        lambda t: t == Mapping[str, Any], reader(readers.read_mapping)
    )
    conv.register_structure_hook_func(
        lambda t: t == tuple[str, ...], reader(readers.read_str_tuple)
    )
    conv.register_structure_hook(ApiEnum, readers.read_enum)
    conv.register_structure_hook_factory(lambda t: t in _RESPONSE, lambda t: reader(decoder(t)))

    conv.register_unstructure_hook(dt.date, format_date)
    conv.register_unstructure_hook(ApiEnum, lambda e: e.value)

    def written(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
        return make_dict_unstructure_fn(cls, conv, _cattrs_omit_if_default=True)

    def answer(cls: type[Any]) -> Callable[[Any], dict[str, Any]]:
        known = make_dict_unstructure_fn(
            cls, conv, _cattrs_omit_if_default=True, extra=override(omit=True)
        )

        def hook(obj: Any) -> dict[str, Any]:
            body: dict[str, Any] = known(obj)
            # A known field set wins over an ``extra`` entry of the same name (extra holds
            # a known field's raw value only when that field could not be read: None).
            for key, value in obj.extra.items():
                if key not in body:
                    body[key] = conv.unstructure(value)
            return body

        return hook

    # Factories: each model's hook is generated on its first unstructure, not here.
    conv.register_unstructure_hook_factory(lambda t: t in _WRITTEN, written)
    conv.register_unstructure_hook_factory(lambda t: t in _RESPONSE, answer)
    return conv
