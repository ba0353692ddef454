"""The account's wallet: its credit (EUR), read from the token service.

The PEC API charges its paid operations (registering, renewing, upgrading a mailbox...) to
the account's wallet, which the PEC API itself does not show. The token service does,
with the same credentials that make tokens (HTTP Basic: the account's e-mail and API key):

- OAuth v1 (``oauth.openapi.it``): ``GET /credit`` answers ``{"data": {"credit": 423.38},
  "success": true, ...}``;
- OAuth v2 (``oauth.openapi.com``): ``GET /wallet`` answers ``{"data": {"credit": 125.5,
  "createdAt": "...", "updatedAt": "..."}}`` and ``GET /wallet/transactions`` the debits
  and top-ups, newest first.

Read it with ``await client.account.wallet()`` (a client given an OAuth provider) or
``await provider.wallet()``. The answers are read leniently: a credit sent as a string,
a timestamp as unix seconds or without its offset (taken as UTC), an unreadable
timestamp (None, its raw value kept in ``extra``), fields this model does not know
(kept in ``extra``). A credit that is missing or not a number makes the answer unusable.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Protocol, runtime_checkable

import attrs

from pecapi.readonly import ReadOnlyDict
from pecapi.transport.endpoint import Effect, Endpoint, Reply

__all__ = [
    "V1_CREDIT",
    "V2_TRANSACTIONS",
    "V2_WALLET",
    "Wallet",
    "WalletSource",
    "WalletTransaction",
    "decode_wallet",
]

_EMPTY: Mapping[str, Any] = ReadOnlyDict({})


def _frozen_extra(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return ReadOnlyDict(value) if value else _EMPTY


@attrs.frozen(kw_only=True)
class Wallet:
    """The account's wallet: ``credit`` in EUR, as exact decimal figures.

    ``created_at`` and ``updated_at`` (aware datetimes, UTC when the answer gives no
    offset) are given by OAuth v2 only; None otherwise. ``extra`` holds what the answer
    said that this model does not read (and the raw value of an unreadable timestamp).
    """

    credit: Decimal
    created_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    extra: Mapping[str, Any] = attrs.field(
        default=_EMPTY, converter=_frozen_extra, repr=False, eq=False
    )


@attrs.frozen(kw_only=True)
class WalletTransaction:
    """One movement of the wallet (OAuth v2's ``GET /wallet/transactions``): ``amount``
    in EUR, negative for a debit, positive for a top-up."""

    id: str
    amount: Decimal
    created_at: dt.datetime | None = None
    description: str | None = None
    extra: Mapping[str, Any] = attrs.field(
        default=_EMPTY, converter=_frozen_extra, repr=False, eq=False
    )


@runtime_checkable
class WalletSource(Protocol):
    """Anything that can read the account's wallet: the OAuth providers
    (:class:`~pecapi.OAuthTokenProvider`, :class:`~pecapi.OAuthV2TokenProvider`), whose
    credentials the token service asks for. ``client.account.wallet()`` uses the
    client's token provider when it is one."""

    async def wallet(self) -> Wallet:
        """The wallet as the token service shows it now."""
        ...


# -- lenient readers ------------------------------------------------------------------------


def amount(value: Any) -> Decimal:
    """A sum of money read from JSON: a number, or a string holding one (``"12,50"``
    too). A float keeps the figures it was written with (``125.5`` -> ``Decimal("125.5")``,
    not the float's binary expansion). ValueError/TypeError otherwise."""
    if isinstance(value, bool):
        raise TypeError("expected an amount, got a boolean")
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("an amount must be a finite number")
        return Decimal(repr(value))
    if isinstance(value, str):
        text = value.strip().replace(",", ".")
        try:
            found = Decimal(text)
        except InvalidOperation:
            raise ValueError("expected an amount") from None
        if not found.is_finite():
            raise ValueError("an amount must be a finite number")
        return found
    raise TypeError(f"expected an amount, got {type(value).__name__}")


def timestamp(value: Any) -> dt.datetime | None:
    """An ISO 8601 date-time (``Z`` or an offset; none: UTC) or unix seconds, as an aware
    datetime; None when it is absent or empty. ValueError/TypeError when unreadable."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise TypeError("expected a timestamp, got a boolean")
    if isinstance(value, (int, float)):
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):  # fromisoformat reads "Z" only from Python 3.11
            text = text[:-1] + "+00:00"
        found = dt.datetime.fromisoformat(text)
        return found if found.tzinfo is not None else found.replace(tzinfo=dt.timezone.utc)
    raise TypeError(f"expected a timestamp, got {type(value).__name__}")


def _object(payload: Any, key: str) -> dict[str, Any]:
    """The object holding ``key``: the answer's ``data``, or the answer itself."""
    if isinstance(payload, dict):
        data = payload.get("data")
        if isinstance(data, list) and len(data) == 1:
            data = data[0]
        if isinstance(data, dict) and key in data:
            return data
        if key in payload:
            return payload
    raise ValueError(f"no {key} in the answer")


def _times(
    found: Mapping[str, Any], names: Mapping[str, str], extra: dict[str, Any]
) -> dict[str, dt.datetime | None]:
    out: dict[str, dt.datetime | None] = {}
    for wire, attr in names.items():
        try:
            out[attr] = timestamp(found.get(wire))
        except (TypeError, ValueError, OverflowError, OSError):
            out[attr] = None
            extra[wire] = found[wire]
    return out


_WALLET_FIELDS = {"credit", "createdAt", "updatedAt"}


def decode_wallet(payload: Any) -> Wallet:
    """A :class:`Wallet` of a ``GET /credit`` (v1) or ``GET /wallet`` (v2) answer: the
    object in its ``data`` (or the answer itself, if it holds ``credit``).

    Raises ValueError/TypeError when there is no credit or it is not an amount."""
    found = _object(payload, "credit")
    extra = {k: v for k, v in found.items() if k not in _WALLET_FIELDS}
    times = _times(found, {"createdAt": "created_at", "updatedAt": "updated_at"}, extra)
    return Wallet(credit=amount(found["credit"]), **times, extra=extra)


_TRANSACTION_FIELDS = {"id", "amount", "createdAt", "description"}


def decode_transaction(item: Any) -> WalletTransaction:
    if not isinstance(item, dict):
        raise TypeError(f"expected a transaction object, got {type(item).__name__}")
    extra = {k: v for k, v in item.items() if k not in _TRANSACTION_FIELDS}
    times = _times(item, {"createdAt": "created_at"}, extra)
    ident = item.get("id")
    if isinstance(ident, (int, float)) and not isinstance(ident, bool):
        ident = str(ident)
    if not isinstance(ident, str) or not ident:
        raise ValueError("a transaction without an id")
    description = item.get("description")
    if description is not None and not isinstance(description, str):
        extra["description"] = description
        description = None
    return WalletTransaction(
        id=ident, amount=amount(item.get("amount")), **times, description=description, extra=extra
    )


def _wallet(reply: Reply) -> Wallet:
    return decode_wallet(reply.data)


def _transactions(reply: Reply) -> list[WalletTransaction]:
    data = reply.data.get("data") if isinstance(reply.data, dict) else reply.data
    if data is None:
        return []
    if not isinstance(data, list):
        raise TypeError(f"expected a list of transactions, got {type(data).__name__}")
    return [decode_transaction(item) for item in data]


#: OAuth v1 ``GET /credit``: the account's remaining credit.
V1_CREDIT: Endpoint[Wallet] = Endpoint(
    name="oauth.credit", method="GET", path="/credit", effect=Effect.READ, decode=_wallet
)
#: OAuth v2 ``GET /wallet``: the credit, and when the wallet was created and last changed.
V2_WALLET: Endpoint[Wallet] = Endpoint(
    name="oauth2.wallet", method="GET", path="/wallet", effect=Effect.READ, decode=_wallet
)
#: OAuth v2 ``GET /wallet/transactions`` (``skip``, ``limit`` <= 100): newest first.
V2_TRANSACTIONS: Endpoint[list[WalletTransaction]] = Endpoint(
    name="oauth2.wallet_transactions",
    method="GET",
    path="/wallet/transactions",
    effect=Effect.READ,
    decode=_transactions,
)
