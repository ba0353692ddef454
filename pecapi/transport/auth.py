"""Where the bearer token comes from, and how it is kept out of sight."""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

from pecapi.errors import ConfigurationError

__all__ = [
    "SANDBOX_TOKEN_ENV",
    "TOKEN_ENV",
    "RenewableTokenProvider",
    "StaticToken",
    "TokenProvider",
    "resolve_token",
]

TOKEN_ENV = "OPENAPI_TOKEN"
SANDBOX_TOKEN_ENV = "OPENAPI_SANDBOX_TOKEN"


@runtime_checkable
class TokenProvider(Protocol):
    """Anything that can hand out a valid bearer token, e.g. one that renews it."""

    async def get_token(self) -> str:
        """A token valid now."""
        ...


@runtime_checkable
class RenewableTokenProvider(TokenProvider, Protocol):
    """A provider that can replace a token the API refused (e.g. revoked or expired early).

    On a 401 the request pipeline calls :meth:`token_rejected` with the token it sent,
    then asks :meth:`get_token` again and retries the request once. ``token_rejected``
    must be cheap and idempotent: many requests may report the same token at once, and
    only the first report of the *current* token should lead to a new one.
    """

    async def token_rejected(self, token: str) -> None:
        """``token`` was answered 401: do not hand it out again."""
        ...


class StaticToken:
    """A fixed token. Its repr never shows the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str) or not value.strip():
            raise ConfigurationError("the token must be a non-empty string")
        if any(ch.isspace() or not ch.isprintable() for ch in value):
            # Would corrupt (or inject into) the Authorization header.
            raise ConfigurationError("the token contains whitespace or control characters")
        self._value = value

    async def get_token(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("tokens are not picklable")


def resolve_token(token: str | TokenProvider | None, *, sandbox: bool) -> TokenProvider:
    """The token provider for a client: the argument, else the environment."""
    if token is None:
        name = SANDBOX_TOKEN_ENV if sandbox else TOKEN_ENV
        value = os.environ.get(name, "").strip()
        if not value:
            raise ConfigurationError(f"no token: pass token=... or set {name} in the environment")
        return StaticToken(value)
    if isinstance(token, str):
        return StaticToken(token)
    if isinstance(token, TokenProvider):
        return token
    raise ConfigurationError(
        f"token must be a string or a TokenProvider, not {type(token).__name__}"
    )
