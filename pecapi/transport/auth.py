"""How requests are authenticated, and how the credentials are kept out of sight.

Two layers:

- a :class:`TokenProvider` hands out the PEC API's bearer token (a fixed one,
  :class:`StaticToken`, or one that renews itself, e.g. the OAuth provider);
- an :class:`Auth` is what a :class:`~pecapi.transport.pipeline.Pipeline` asks before
  each attempt: the whole ``Authorization`` value, as a :class:`~pecapi.secret.Secret`.
  Each pipeline has one (``Bearer`` from the provider for the PEC API, HTTP ``Basic``
  e-mail and API key for the token service) and one exchange may bring its own (a
  refresh token as ``Bearer`` for one call).
"""

from __future__ import annotations

import asyncio
import base64
import os
from typing import Protocol, runtime_checkable

from pecapi.errors import (
    ConfigurationError,
    EventLoopError,
    PecApiError,
    PecError,
    ScrubbedCause,
    TokenError,
    TransportError,
)
from pecapi.secret import Secret
from pecapi.transport.transport_errors import raise_unchained

__all__ = [
    "SANDBOX_TOKEN_ENV",
    "TOKEN_ENV",
    "Auth",
    "BearerAuth",
    "RenewableTokenProvider",
    "StaticAuth",
    "StaticToken",
    "TokenProvider",
    "basic_auth",
    "bearer_auth",
    "resolve_token",
    "token_error",
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


# -- what a pipeline sends: the Authorization header ----------------------------------------


class Auth(Protocol):
    """How a pipeline authenticates an attempt: the whole ``Authorization`` value.

    The pipeline asks :meth:`authorization` before every attempt (retries included) and
    puts the value in the header as it is, after every other header (no caller's
    ``extra_headers`` can replace it). On a 401 it calls :meth:`refused` with the value
    it sent; True means that asking again may give one the server accepts, and the
    attempt is sent once more with it (once per attempt, and only if the value changed).
    """

    async def authorization(self) -> Secret:
        """The ``Authorization`` value of the next attempt. Whatever this raises, nothing
        was sent."""
        ...

    async def refused(self, authorization: Secret) -> bool:
        """The server answered 401 to ``authorization``: can a new one be had?"""
        ...


class StaticAuth:
    """One fixed ``Authorization`` value (HTTP Basic credentials, a refresh token, a
    static bearer token): never renewed, so a 401 is final."""

    __slots__ = ("_value",)

    def __init__(self, value: Secret | str) -> None:
        # Wrapped before anything can raise: a traceback's frames keep their locals.
        secret = value if isinstance(value, Secret) else Secret(value)
        del value
        if not isinstance(secret.reveal(), str):
            raise ConfigurationError("an Authorization value must be a string")
        self._value = secret

    @property
    def value(self) -> Secret:
        """The ``Authorization`` value (a pipeline sets it once on the session it owns)."""
        return self._value

    async def authorization(self) -> Secret:
        return self._value

    async def refused(self, authorization: Secret) -> bool:
        return False

    def __repr__(self) -> str:
        return "StaticAuth(<redacted>)"

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("credentials are not picklable")


class BearerAuth:
    """``Bearer`` and a :class:`TokenProvider`'s token, renewed on a 401 when the provider
    can (a :class:`RenewableTokenProvider`): the PEC API's authentication.

    A provider that fails (raises, or returns no string) makes a :class:`TokenError`
    saying that nothing was sent; see :func:`token_error`."""

    __slots__ = ("provider",)

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    async def authorization(self) -> Secret:
        # As its own step before an attempt: a failure here is a TokenError, which says
        # that nothing was sent to the PEC API.
        try:
            # No local of this frame (in the traceback of the error below) holds the token.
            return _bearer(await self.provider.get_token())
        except (asyncio.CancelledError, EventLoopError):
            raise
        except Exception as exc:
            error = token_error(exc)
        raise_unchained(error)  # outside the handler: see token_error

    async def refused(self, authorization: Secret) -> bool:
        rejected = getattr(self.provider, "token_rejected", None)
        if rejected is None:
            return False
        try:
            await rejected(authorization.reveal().removeprefix("Bearer "))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            error = token_error(exc)
        else:
            return True
        raise_unchained(error)  # the provider's frames held the token

    def __repr__(self) -> str:
        return f"BearerAuth({type(self.provider).__name__})"


def _bearer(token: object) -> Secret:
    if not isinstance(token, str):
        raise TypeError(f"get_token() returned {type(token).__name__}, not str")
    return Secret("Bearer " + token)


def basic_auth(user: str, password: Secret | str) -> StaticAuth:
    """HTTP Basic ``user:password`` (the token service's: the account's e-mail and API
    key). A :class:`~pecapi.ConfigurationError` names what is wrong, never the password."""
    if not isinstance(password, Secret):
        password = Secret(password)  # first: a traceback's frames keep their locals
    if not isinstance(user, str) or not user.strip():
        raise ConfigurationError("the user of HTTP Basic must be a non-empty string")
    if ":" in user or not user.isprintable():
        raise ConfigurationError(
            "the user of HTTP Basic must not contain ':' or control characters"
        )
    if not isinstance(password.reveal(), str) or not password.reveal():
        raise ConfigurationError("the password of HTTP Basic must be a non-empty string")
    if not password.reveal().isprintable():
        raise ConfigurationError("the password of HTTP Basic contains control characters")
    # One expression: no local of this frame holds the credential in plain text.
    return StaticAuth(
        Secret("Basic " + base64.b64encode(f"{user}:{password.reveal()}".encode()).decode("ascii"))
    )


def bearer_auth(token: Secret | str | TokenProvider) -> Auth:
    """``Bearer`` and ``token``: a fixed token (a :class:`Secret` or a string, e.g. a
    refresh token for one call, or a :class:`StaticToken`: the header is built once) or
    a provider's."""
    if isinstance(token, str):
        token = Secret(token)  # first: a traceback's frames keep their locals
    if isinstance(token, Secret):
        problem = _token_problem(token.reveal())
        if problem:
            raise ConfigurationError(problem)
        return StaticAuth(Secret("Bearer " + token.reveal()))
    if type(token) is StaticToken:  # not a subclass: its get_token could differ
        return StaticAuth(Secret("Bearer " + token._value.reveal()))
    if isinstance(token, TokenProvider):
        return BearerAuth(token)
    raise ConfigurationError(
        f"a bearer token must be a string or a TokenProvider, not {type(token).__name__}"
    )


def token_error(exc: Exception) -> TokenError:
    """The :class:`TokenError` for a provider's ``exc``. pecapi's own errors (the OAuth
    provider's) are chained as they are: they are scrubbed. Anything else is replaced by
    a :class:`ScrubbedCause` of its type alone: a provider's frames hold the token (it is
    ``token_rejected``'s argument) and its message may quote it.

    Never raise the result from inside the ``except`` block that caught ``exc``: use
    :func:`~pecapi.transport.transport_errors.raise_unchained` after it."""
    retryable = isinstance(exc, TransportError) or (
        isinstance(exc, PecApiError) and exc.status in (429, 500, 502, 503, 504)
    )
    if isinstance(exc, PecError):
        cause: BaseException = exc
        said = f"{type(exc).__name__}: {exc}"
    else:
        cause = ScrubbedCause.of(exc, keep_message=False)
        said = cause.type_name
    error = TokenError(
        f"no token from the token provider ({said}); nothing was sent to the PEC API",
        cause=cause,
        retryable=retryable,
    )
    error.__cause__ = cause
    return error
