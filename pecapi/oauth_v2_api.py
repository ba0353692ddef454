"""The OAuth API v2's token operations and answers (``oauth.openapi.com``), sent by
:class:`~pecapi.oauth_service.TokenService`:

- ``POST /tokens`` (HTTP Basic: e-mail and API key) with ``{"scopes", "ttl", "name"}``
  creates a token and its refresh token;
- ``PATCH /tokens/{token}`` with the *refresh token* as ``Bearer`` renews it: a new token
  and a new refresh token with the same scopes; the old token is deleted;
- ``DELETE /tokens/{token}`` (HTTP Basic) deletes one.

The three answer a ``TokenDetail`` (``token``, ``refreshToken``, ``expireAt``,
``scopes``...), bare as the specification's schema has it or in ``data``.

The token is its own identifier: ``PATCH`` and ``DELETE`` carry it in their path. The
path parameters are therefore given as a :class:`PathSecret` (its ``repr`` redacted,
as error reporters record the locals of a traceback's frames), and :func:`scrub` takes
the token out of the errors of such a call (their message and ``url`` name the URL).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from pecapi.errors import PecApiError, PecError, RateLimitError, TransportError
from pecapi.oauth_provider_base import Held
from pecapi.oauth_service import TokenService, UnusableAnswer
from pecapi.oauth_v1 import number, token_object, valid_token
from pecapi.secret import Secret
from pecapi.transport.auth import Auth
from pecapi.transport.endpoint import Effect, Endpoint, Reply
from pecapi.transport.retry import RetryPolicy
from pecapi.transport.transport_errors import raise_unchained

__all__ = [
    "CREATE_TOKENS",
    "DELETE_TOKEN",
    "HIDDEN",
    "REFRESH_TOKEN",
    "Held",
    "PathSecret",
    "TokenDetail",
    "on_token",
    "scrub",
    "transient",
]

T = TypeVar("T")

#: What a token in a URL or a message is replaced with.
HIDDEN = "<redacted>"


class TokenDetail:
    """A token the service created or renewed, as its answer says: the token and the
    refresh token (wrapped at once; the refresh token None when the answer has none),
    ``expire_at`` (unix seconds; None when missing or unreadable) and the ``scopes``
    (None when not listed)."""

    __slots__ = ("expire_at", "refresh", "scopes", "token")

    def __init__(
        self,
        token: Secret,
        refresh: Secret | None,
        expire_at: float | None,
        scopes: tuple[str, ...] | None,
    ) -> None:
        self.token = token
        self.refresh = refresh
        self.expire_at = expire_at
        self.scopes = scopes

    def __repr__(self) -> str:
        return f"TokenDetail(<redacted>, expire_at={self.expire_at})"


def _expiry(value: Any) -> float | None:
    """``expireAt``: an ISO 8601 date-time (``2025-12-19T10:00:00Z``), or unix seconds."""
    found = number(value)
    if found is not None:
        return found
    if not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):  # fromisoformat reads "Z" only from Python 3.11
        text = text[:-1] + "+00:00"
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def _token_detail(reply: Reply) -> TokenDetail:
    found = token_object(reply.data)
    if found is None or not valid_token(found["token"]):
        raise UnusableAnswer("has no usable token")
    refresh = found.get("refreshToken")
    if not isinstance(refresh, str) or not valid_token(refresh):
        refresh = None  # renewed by creating another token instead
    scopes = found.get("scopes")
    listed = tuple(s for s in scopes if isinstance(s, str)) if isinstance(scopes, list) else None
    return TokenDetail(
        Secret(found["token"]),
        None if refresh is None else Secret(refresh),
        _expiry(found.get("expireAt", found.get("expire"))),
        listed,
    )


def _deleted(reply: Reply) -> None:
    return None


#: ``POST /tokens``: creates a token with the body's scopes and ttl.
#:
#: Declared a READ for how it may be resent, not for what it does, as v1's ``POST
#: /token`` (``pecapi.oauth_v1.CREATE_TOKEN``): a resend can only create a second token,
#: which costs nothing and expires by itself, so a lost answer never needs settling. It
#: is sent once per creation (``ONE_ATTEMPT``): its callers retry (a PEC call on a
#: retryable TokenError, the provider's renewal backoff).
CREATE_TOKENS: Endpoint[TokenDetail] = Endpoint(
    name="oauth2.create_token",
    method="POST",
    path="/tokens",
    effect=Effect.READ,
    decode=_token_detail,
)

#: ``PATCH /tokens/{token}`` with the refresh token as ``Bearer``: a new token and refresh
#: token with the same scopes; the old token is deleted.
#:
#: A READ for its resends too: after a lost answer the renewal may have happened (the old
#: token deleted, the refresh token used up), and a resend is then refused, which makes
#: the provider create a new token; nothing needs settling. Sent once (``ONE_ATTEMPT``),
#: like a creation.
REFRESH_TOKEN: Endpoint[TokenDetail] = Endpoint(
    name="oauth2.refresh_token",
    method="PATCH",
    path="/tokens/{token}",
    effect=Effect.READ,
    decode=_token_detail,
)

#: ``DELETE /tokens/{token}``: deletes a token (revocation).
#:
#: A READ for its resends: deleting again what is deleted is answered 404, which the
#: provider takes as done; so transport errors and 5xx are retried like a read.
DELETE_TOKEN: Endpoint[None] = Endpoint(
    name="oauth2.delete_token",
    method="DELETE",
    path="/tokens/{token}",
    effect=Effect.READ,
    decode=_deleted,
)


class PathSecret(Mapping[str, str]):
    """Path parameters that are secrets (``{"token": Secret}``), for
    ``TokenService.call(params=...)``: the pipeline reads the values, and the ``repr``
    (what error reporters record of a frame's locals) never shows them."""

    __slots__ = ("_items",)

    def __init__(self, **items: Secret) -> None:
        self._items = items

    def __getitem__(self, key: str) -> str:
        return self._items[key].reveal()

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return "PathSecret(" + ", ".join(f"{k}={HIDDEN}" for k in self._items) + ")"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("secrets are not picklable")


def scrub(error: PecError, secret: Secret) -> PecError:
    """``error`` with ``secret`` (as it is, and as it appears in a URL's path) replaced by
    ``<redacted>`` in its message and in every attribute, walking into dicts, lists and
    tuples (``url``, ``message``, the envelope in ``body``, ``headers``).

    The errors of a call whose path holds a token name its URL, and the service's
    envelope may echo the token (``"token 1a2b... not found"``). The error's
    ``__cause__`` is a :class:`~pecapi.ScrubbedCause` without message."""
    value = secret.reveal()
    forms = {value, quote(value, safe="")} - {""}
    for name, attribute in list(vars(error).items()):
        setattr(error, name, _clean(attribute, forms))
    error.args = tuple(_clean(a, forms) for a in error.args)
    return error


def _clean(value: Any, forms: set[str], depth: int = 0) -> Any:
    """``value`` with every form of the secret replaced; containers rebuilt (as dicts,
    lists, tuples: a header multidict becomes a dict). Past a depth no answer of the
    service reaches, a container is dropped rather than kept unread."""
    if isinstance(value, str):
        for form in forms:
            value = value.replace(form, HIDDEN)
        return value
    if not isinstance(value, Mapping) and type(value) not in (list, tuple):
        return value
    if depth >= 20:
        return None
    if isinstance(value, Mapping):
        return {_clean(k, forms, depth + 1): _clean(v, forms, depth + 1) for k, v in value.items()}
    items = [_clean(item, forms, depth + 1) for item in value]
    return items if isinstance(value, list) else tuple(items)


async def on_token(
    service: TokenService,
    endpoint: Endpoint[T],
    token: Secret,
    *,
    json: Any = None,
    auth: Auth | None = None,
    retry: RetryPolicy | None = None,
) -> T:
    """``service.call(endpoint)`` on ``/tokens/{token}``; its errors :func:`scrub`-bed."""
    try:
        return await service.call(
            endpoint, params=PathSecret(token=token), json=json, auth=auth, retry=retry
        )
    except PecError as exc:
        error = scrub(exc, token)
    raise_unchained(error)  # outside the handler: no __context__


def transient(exc: PecError) -> bool:
    """The service could not be reached or was busy: asking again later may work."""
    if isinstance(exc, (TransportError, RateLimitError)):
        return True
    return isinstance(exc, PecApiError) and exc.status >= 500
