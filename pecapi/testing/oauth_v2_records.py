"""The records and the JSON of the OAuth v2 emulator: the tokens it issued, the checks of
the bodies of ``POST``/``PATCH /tokens``, its answers (``TokenDetail``, ``Wallet``,
``WalletTransaction``, ``UserScope``) and every error it answers (:data:`ERRORS_V2`)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Literal

from .ledger import Charge
from .oauth_http import failure
from .replies import JSON_HEADERS, Reply

__all__ = ["ERRORS_V2", "IssuedTokenV2", "Refusal", "V2Error"]

MAX_TTL = 365 * 24 * 3600
#: A token and a refresh token: 24 hexadecimal digits, as the specification's examples.
TOKEN_FORMAT = re.compile(r"[0-9a-fA-F]{24}")
# METHOD:host/endpoint, e.g. GET:test.pec.openapi.it/pec
SCOPE_FORMAT = re.compile(r"([A-Z]+|\*):([A-Za-z0-9.-]+)/(\S*)")

TokenState = Literal["active", "renewed", "deleted"]


@dataclass(frozen=True)
class V2Error:
    """One error of the service: its HTTP status, ``error`` code and message, and the
    operations ("METHOD /template" of the specification) that answer it. ``documented``:
    the specification's example where the operation documents the status, else the
    emulator's choice."""

    status: int
    code: int
    message: str
    operations: tuple[str, ...]
    documented: bool

    def reply(self, headers: Mapping[str, str] = JSON_HEADERS, /, **values: str) -> Reply:
        return failure(self.status, self.code, self.message.format(**values), headers)


class Refusal(Exception):
    """A request refused with an error of the service (raised by the body checks)."""

    def __init__(self, error: V2Error, **values: str) -> None:
        super().__init__(error.message.format(**values))
        self.error = error
        self.values = values

    def reply(self) -> Reply:
        return self.error.reply(**self.values)


_CREATE, _UPDATE, _DETAIL, _DELETE = (
    "POST /tokens",
    "PATCH /tokens/{token}",
    "GET /tokens/{token}",
    "DELETE /tokens/{token}",
)
_PAGED = ("GET /tokens", "GET /wallet/transactions")
#: The operations of the specification the emulator serves.
EMULATED = (
    _CREATE,
    "GET /tokens",
    _DETAIL,
    _UPDATE,
    _DELETE,
    "GET /scopes",
    "GET /wallet",
    "GET /wallet/transactions",
)

UNAUTHORIZED = V2Error(401, 140, "Unauthorized", EMULATED, documented=True)
REFRESH_REFUSED = V2Error(401, 130, "Unauthorized", (_UPDATE,), documented=True)
MISSING_SCOPES = V2Error(422, 70, "missing scopes array", (_CREATE,), documented=True)
SCOPES_FORMAT = V2Error(422, 80, "invalid scopes format", (_CREATE,), documented=True)
INVALID_SCOPES = V2Error(
    422, 90, "Invalid scopes specified or API not enabled", (_CREATE,), documented=True
)
UPDATE_SCOPES_FORMAT = V2Error(422, 100, "invalid scopes format", (_UPDATE,), documented=True)
UPDATE_INVALID_SCOPES = V2Error(
    422, 110, "Invalid scopes specified or API not enabled", (_UPDATE,), documented=True
)
INVALID_FIELD = V2Error(422, 85, "invalid {field}", (_CREATE, _UPDATE), documented=False)
BAD_TOKEN_FORMAT = V2Error(422, 60, "Invalid Token Format", (_DETAIL,), documented=True)
DETAIL_NOT_FOUND = V2Error(404, 120, "Not Found", (_DETAIL,), documented=True)
UPDATE_ID_REQUIRED = V2Error(400, 150, "Token ID is required", (_UPDATE,), documented=True)
UPDATE_NOT_FOUND = V2Error(404, 160, "Not Found", (_UPDATE,), documented=True)
DELETE_ID_REQUIRED = V2Error(400, 170, "Token ID is required", (_DELETE,), documented=True)
DELETE_NOT_FOUND = V2Error(404, 180, "Not Found", (_DELETE,), documented=True)
# 190 "Query error" is the error log example's code for a 400 of a bad query.
QUERY_ERROR = V2Error(400, 190, "Query error: {detail}", _PAGED, documented=False)
BAD_JSON = V2Error(
    400, 400, "invalid JSON body: a JSON object is required", (_CREATE, _UPDATE), False
)
TOO_LARGE = V2Error(413, 413, "request body too large", (_CREATE, _UPDATE), documented=False)
# Requests that match no operation of the specification (or one not emulated).
NOT_FOUND = V2Error(404, 404, "resource not found", (), documented=False)
METHOD_NOT_ALLOWED = V2Error(405, 405, "method not allowed", (), documented=False)

#: Every error the OAuth v2 emulator answers.
ERRORS_V2: tuple[V2Error, ...] = (
    UNAUTHORIZED,
    REFRESH_REFUSED,
    MISSING_SCOPES,
    SCOPES_FORMAT,
    INVALID_SCOPES,
    UPDATE_SCOPES_FORMAT,
    UPDATE_INVALID_SCOPES,
    INVALID_FIELD,
    BAD_TOKEN_FORMAT,
    DETAIL_NOT_FOUND,
    UPDATE_ID_REQUIRED,
    UPDATE_NOT_FOUND,
    DELETE_ID_REQUIRED,
    DELETE_NOT_FOUND,
    QUERY_ERROR,
    BAD_JSON,
    TOO_LARGE,
    NOT_FOUND,
    METHOD_NOT_ALLOWED,
)


@dataclass(eq=False)
class IssuedTokenV2:
    """A token the OAuth v2 emulator issued (created, or renewed from another one). Its
    value and refresh token are left out of ``repr``.

    ``state`` is ``"active"`` until the token is deleted (``"deleted"``) or renewed with
    its refresh token (``"renewed"``: a new token replaced it). Times are unix seconds on
    the PEC emulator's clock; an active token whose ``expire_at`` has passed is expired.
    """

    token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    scopes: tuple[str, ...]
    ttl: int
    created_at: int
    expire_at: int
    updated_at: int
    name: str | None = None
    limits: dict[str, Any] | None = None
    #: ``"created"`` by ``POST /tokens``, or ``"renewed"`` by ``PATCH`` with a refresh token
    origin: Literal["created", "renewed"] = "created"
    state: TokenState = "active"


# --- body checks ----------------------------------------------------------------------------

_LIMIT_TYPES: Mapping[str, tuple[type, ...]] = {
    "totalRequests": (int,),
    "walletRequests": (int,),
    "subscriptionRequests": (int,),
    "walletAmount": (int, float),
    "ip": (list,),
}


def scopes_of(
    value: object, known: Collection[str], *, bad_format: V2Error, unknown: V2Error
) -> tuple[str, ...]:
    """The scopes asked, exactly (duplicates dropped, order kept); a :class:`Refusal`
    when one is not ``METHOD:host/endpoint`` or not a scope of the account."""
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise Refusal(bad_format)
    if any(SCOPE_FORMAT.fullmatch(s) is None for s in value):
        raise Refusal(bad_format)
    if any(s not in known for s in value):
        raise Refusal(unknown)
    return tuple(dict.fromkeys(value))


def ttl_of(value: object, default: int) -> int:
    """A ttl in seconds: 0 or negative (or none) is ``default``, as the specification says;
    over one year is one year. Not an integer: a :class:`Refusal`."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise Refusal(INVALID_FIELD, field="ttl: an integer number of seconds")
    if value <= 0:
        return default
    return min(value, MAX_TTL)


def name_of(body: Mapping[str, Any], default: str | None) -> str | None:
    value = body.get("name", default)
    if value is not None and not isinstance(value, str):
        raise Refusal(INVALID_FIELD, field="name: a string")
    return value


def _limit_ok(key: object, item: object) -> bool:
    types = _LIMIT_TYPES.get(key) if isinstance(key, str) else None
    if types is None or isinstance(item, bool) or not isinstance(item, types):
        return False
    return not isinstance(item, list) or all(isinstance(ip, str) for ip in item)


def limits_of(body: Mapping[str, Any], default: dict[str, Any] | None) -> dict[str, Any] | None:
    """A ``TokenLimits`` object (kept and answered back; the emulator does not enforce it)."""
    value = body.get("limits", default)
    if value is None:
        return None
    ok = isinstance(value, dict) and all(_limit_ok(key, item) for key, item in value.items())
    if not ok:
        raise Refusal(INVALID_FIELD, field="limits: a TokenLimits object")
    return dict(value)


# --- answers --------------------------------------------------------------------------------


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(int(ts), timezone.utc)


def iso_z(ts: float) -> str:
    """``2025-11-19T10:00:00Z``: the form of the examples of ``TokenDetail``."""
    return _utc(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_offset(ts: float) -> str:
    """``2025-01-15T10:00:00+00:00``: the form of the examples of the wallet."""
    return _utc(ts).isoformat()


def token_detail(record: IssuedTokenV2, *, with_refresh: bool) -> dict[str, Any]:
    """A ``TokenDetail``; the refresh token only in the answers that issue or renew it."""
    detail: dict[str, Any] = {"token": record.token}
    if record.name is not None:
        detail["name"] = record.name
    detail.update(
        createdAt=iso_z(record.created_at),
        expireAt=iso_z(record.expire_at),
        updatedAt=iso_z(record.updated_at),
        scopes=list(record.scopes),
    )
    if with_refresh:
        detail["refreshToken"] = record.refresh_token
    if record.limits is not None:
        detail["limits"] = record.limits
    return detail


def scope_id(scope: str) -> str:
    """A stable 24-hex-digit id of a scope."""
    return hashlib.sha256(f"pecapi.testing/scope/{scope}".encode()).hexdigest()[:24]


def user_scope(scope: str) -> dict[str, Any]:
    """A ``UserScope`` of the account (every scope it knows is enabled)."""
    match = SCOPE_FORMAT.fullmatch(scope)
    assert match is not None  # the known scopes are checked when the emulator is built
    method, domain, endpoint = match.groups()
    return {
        "id": scope_id(scope),
        "scope": scope,
        "method": method,
        "endpoint": endpoint,
        "domain": domain,
        "enabled": True,
    }


def wallet(credit: Decimal, created: float, updated: float) -> dict[str, Any]:
    """A ``Wallet``: ``credit`` as a JSON number."""
    return {
        "credit": float(credit),
        "createdAt": iso_offset(created),
        "updatedAt": iso_offset(updated),
    }


def transaction(index: int, charge: Charge, host: str) -> dict[str, Any]:
    """The ``WalletTransaction`` of the ``index``-th charge of the ledger: a debit, so a
    negative amount; its id is stable (the same charge has the same id on every read)."""
    digest = hashlib.sha256(f"pecapi.testing/txn/{index}".encode()).hexdigest()[:24]
    return {
        "id": f"txn_{digest}",
        "amount": -float(charge.amount),
        "createdAt": iso_offset(charge.at),
        "description": f"API usage - {host} ({charge.operation})",
    }
