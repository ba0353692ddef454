"""Pieces shared by mailboxes and comunica_pec requests."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_plus

import attrs

from pecapi.errors import ValidationError
from pecapi.models.enums import CallbackMethod, CallbackMethodLiteral
from pecapi.models.wire import from_unix, nested_deeper_than
from pecapi.readonly import ReadOnlyDict

__all__ = ["EMPTY_EXTRA", "Callback", "DomainCheck", "Timestamps", "extra_field"]

EMPTY_EXTRA: Mapping[str, Any] = ReadOnlyDict({})


def extra_field() -> Any:
    """The ``extra`` field of every response model: fields the schema does not know."""
    return attrs.field(default=EMPTY_EXTRA, repr=False, eq=False, kw_only=True)


# -- redacting signatures in reprs ------------------------------------------------------------

# The query parameters whose values a Callback's repr hides: CallbackSigner's default name
# (pecapi_sig, spelt here: callback_signing imports this module), and the ``param`` of every
# CallbackSigner made in this process, which the signer adds itself (redact_query_param, in
# its __init__ and url()): a custom name is covered without anyone having to remember it.
# Only ever added to: a signer's URLs outlive it. The frozenset is replaced whole, under a
# lock so that two threads adding at once lose neither name; a repr reads it without the
# lock and sees the old set or the new one, never one half-built, from any thread or task.
_redacted_params: frozenset[str] = frozenset({"pecapi_sig"})
_redacted_lock = threading.Lock()


def redact_query_param(name: str) -> None:
    """Hide the value of the query parameter ``name`` in every :class:`Callback`'s repr
    (and in its validation errors) from now on: for a signature's parameter."""
    global _redacted_params
    if name in _redacted_params:  # the common case, called on every signed URL: no lock
        return
    with _redacted_lock:
        if name not in _redacted_params:
            _redacted_params = _redacted_params | {name}


def _url_repr(url: object) -> str:
    """``repr(url)`` with the value of each redacted query parameter as ``<redacted>``.

    Names are compared decoded (``x%5Fsig`` is ``x_sig``), as the receiver reads them."""
    if not isinstance(url, str):
        # A yarl.URL (what CallbackSigner.url takes) or anything else: its text, redacted
        # the same way, under its type's name; never its own repr.
        return f"{type(url).__name__}({_url_repr(str(url))})"
    head, mark, rest = url.partition("?")
    if not mark:
        return repr(url)
    query, hash_mark, fragment = rest.partition("#")
    names = _redacted_params
    pieces = []
    for piece in query.split("&"):
        name, equals, _value = piece.partition("=")
        if equals and unquote_plus(name) in names:
            piece = f"{name}=<redacted>"
        pieces.append(piece)
    return repr(f"{head}?{'&'.join(pieces)}{hash_mark}{fragment}")


def _to_callback_method(
    value: CallbackMethod | CallbackMethodLiteral | None,
) -> CallbackMethod | None:
    # Typed strictly (a typo is a type error); lenient at run time, since answers decode
    # through this too (any string the API sends); ``Callback.check`` is strict.
    if value is None or isinstance(value, CallbackMethod):
        return value
    return CallbackMethod.lenient(str(value).strip().upper())


@attrs.frozen(kw_only=True)
class Callback:
    """Where the API calls back when a registration or request changes state.

    ``method`` POST sends a form whose ``field`` (default ``data``) holds the JSON;
    JSON sends the JSON as the body. ``data`` is echoed back in every call.
    """

    # The repr hides a CallbackSigner's signature: it authenticates every delivery about
    # the mailbox, and reprs end up in logs and in error reporters' frame locals.
    url: str = attrs.field(repr=_url_repr)
    method: CallbackMethod | None = attrs.field(default=None, converter=_to_callback_method)
    field: str | None = None
    data: Mapping[str, Any] | None = None

    def check(self) -> None:
        """Raise :class:`ValidationError` if this callback cannot be sent."""
        if not isinstance(self.url, str) or not self.url.startswith(("https://", "http://")):
            raise ValidationError("callback.url", f"{_url_repr(self.url)} is not an http(s) URL")
        if self.method is not None and not self.method.known:
            raise ValidationError("callback.method", f"{self.method.value!r} is not POST or JSON")
        if self.field is not None and not self.field:
            raise ValidationError("callback.field", "must not be empty")
        if self.data is not None:
            if not isinstance(self.data, Mapping):
                raise ValidationError("callback.data", "must be a mapping")
            if nested_deeper_than(self.data, _MAX_DATA_DEPTH):
                raise ValidationError(
                    "callback.data", f"is nested deeper than {_MAX_DATA_DEPTH} levels"
                )
            try:
                json.dumps(self.data)
            except (TypeError, ValueError) as exc:
                raise ValidationError(
                    "callback.data", f"cannot be encoded as JSON: {exc}"
                ) from None


#: ``callback.data`` deeper than this is refused: encoding it recurses once per level, so
#: data that passes here at a shallow stack could still fail where the body is built.
_MAX_DATA_DEPTH = 100


@attrs.frozen(kw_only=True)
class Timestamps:
    """The ``timestamp`` object of a mailbox: unix seconds, with ``*_at`` datetimes (UTC)."""

    registrazione: int | None = None
    ultima_modifica: int | None = None
    evasione: int | None = None
    scadenza: int | None = None
    revoca: int | None = None
    extra: Mapping[str, Any] = extra_field()

    @property
    def registered_at(self) -> dt.datetime | None:
        return from_unix(self.registrazione)

    @property
    def modified_at(self) -> dt.datetime | None:
        return from_unix(self.ultima_modifica)

    @property
    def processed_at(self) -> dt.datetime | None:
        return from_unix(self.evasione)

    @property
    def expires_at(self) -> dt.datetime | None:
        return from_unix(self.scadenza)

    @property
    def revoked_at(self) -> dt.datetime | None:
        return from_unix(self.revoca)


@attrs.frozen(kw_only=True)
class DomainCheck:
    """Result of ``GET /domini_pec/{dominio}``: whether the domain is certified."""

    dominio: str
    certified: bool
    message: str | None = None
