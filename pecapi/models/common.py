"""Pieces shared by mailboxes and comunica_pec requests."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import attrs

from pecapi.errors import ValidationError
from pecapi.models.enums import CallbackMethod
from pecapi.models.wire import from_unix, nested_deeper_than

# The value of the query parameter CallbackSigner adds (pecapi_sig, its default name).
_SIGNATURE = re.compile(r"([?&]pecapi_sig=)[^&#]*")

__all__ = ["EMPTY_EXTRA", "Callback", "DomainCheck", "Timestamps", "extra_field"]

EMPTY_EXTRA: Mapping[str, Any] = MappingProxyType({})


def extra_field() -> Any:
    """The ``extra`` field of every response model: fields the schema does not know."""
    return attrs.field(default=EMPTY_EXTRA, repr=False, eq=False, kw_only=True)


def _to_callback_method(value: CallbackMethod | str | None) -> CallbackMethod | None:
    # Lenient here (responses decode through this too); ``Callback.check`` is strict.
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
    url: str = attrs.field(repr=lambda url: repr(_SIGNATURE.sub(r"\1<redacted>", url)))
    method: CallbackMethod | None = attrs.field(default=None, converter=_to_callback_method)
    field: str | None = None
    data: Mapping[str, Any] | None = None

    def check(self) -> None:
        """Raise :class:`ValidationError` if this callback cannot be sent."""
        if not isinstance(self.url, str) or not self.url.startswith(("https://", "http://")):
            raise ValidationError("callback.url", f"{self.url!r} is not an http(s) URL")
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
