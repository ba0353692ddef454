"""Where the bearer token comes from, and how it is kept out of sight."""

from __future__ import annotations

import os
from typing import Protocol, runtime_checkable

from pecapi.errors import ConfigurationError
from pecapi.secret import Secret

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

    def __init__(self, value: str | Secret) -> None:
        # Wrapped before anything can raise: a traceback's frames keep their locals.
        secret = value if isinstance(value, Secret) else Secret(value)
        del value
        problem = _token_problem(secret.reveal())
        if problem:
            raise ConfigurationError(problem)
        self._value = secret

    async def get_token(self) -> str:
        return self._value.reveal()

    def __repr__(self) -> str:
        return "StaticToken(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("tokens are not picklable")


def _token_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "the token must be a non-empty string"
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        # Would corrupt (or inject into) the Authorization header.
        return "the token contains whitespace or control characters"
    return None


def seal(token: str | Secret | TokenProvider | None) -> Secret | TokenProvider | None:
    """``token`` with a plain string wrapped: the first thing a constructor taking a
    token does, so that no frame of a later error holds it in plain text."""
    return Secret(token) if isinstance(token, str) else token


def resolve_token(token: str | Secret | TokenProvider | None, *, sandbox: bool) -> TokenProvider:
    """The token provider for a client: the argument, else the environment."""
    token = seal(token)
    if token is None:
        name = SANDBOX_TOKEN_ENV if sandbox else TOKEN_ENV
        found = Secret(os.environ.get(name, "").strip())
        if not found.reveal():
            raise ConfigurationError(f"no token: pass token=... or set {name} in the environment")
        return StaticToken(found)
    if isinstance(token, Secret):
        return StaticToken(token)
    if isinstance(token, TokenProvider):
        return token
    raise ConfigurationError(
        f"token must be a string or a TokenProvider, not {type(token).__name__}"
    )
