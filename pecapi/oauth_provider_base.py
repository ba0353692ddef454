"""What the OAuth token providers of v1 (:mod:`pecapi.oauth`) and v2
(:mod:`pecapi.oauth_v2`) share: :class:`RenewingProvider`.

A provider holds one token (:class:`Held`), hands it to every request and, when it is
missing or about to expire, makes the next one in a single flight that every caller
waits for. Each version says how the next token is made (``_next``): v1 creates one,
v2 renews it with its refresh token or creates one.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ClassVar

import aiohttp
from yarl import URL

from pecapi.closing import AsyncClosing
from pecapi.errors import ClientClosedError, ConfigurationError, PecError
from pecapi.oauth_scopes import check_scopes
from pecapi.oauth_service import TokenService
from pecapi.secret import Secret
from pecapi.transport.auth import StaticAuth, basic_auth
from pecapi.transport.options import Timeout
from pecapi.transport.transport_errors import raise_unchained
from pecapi.transport.urls import check_base_url

__all__ = [
    "API_KEY_ENV",
    "EMAIL_ENV",
    "SANDBOX_API_KEY_ENV",
    "Held",
    "RenewingProvider",
]

logger = logging.getLogger("pecapi")

#: Environment variables the providers read when ``email`` / ``api_key`` are not given.
EMAIL_ENV = "OPENAPI_EMAIL"
API_KEY_ENV = "OPENAPI_API_KEY"
SANDBOX_API_KEY_ENV = "OPENAPI_SANDBOX_API_KEY"

DEFAULT_TTL = 24 * 3600
MAX_TTL = 365 * 24 * 3600
DEFAULT_RENEW_BEFORE = 300.0
# After a failed renewal while the current token is still valid: wait at most this long.
_RETRY_AFTER_FAILURE = 30.0


class Held:
    """A token of a provider: the token, its refresh token (v2; None when there is none),
    when it expires and when to renew it."""

    __slots__ = ("expires_at", "refresh", "refresh_at", "token")

    def __init__(
        self, token: Secret, refresh: Secret | None, expires_at: float, refresh_at: float
    ) -> None:
        self.token = token
        self.refresh = refresh
        self.expires_at = expires_at
        self.refresh_at = refresh_at

    def __repr__(self) -> str:
        return f"Held(<redacted>, expires_at={self.expires_at})"


def _credential(value: Secret | None, env: str, what: str) -> Secret:
    """The credential given, else the environment's, checked. It travels as a
    :class:`Secret` (``repr`` redacted) so that no frame of a ConfigurationError's
    traceback holds it in plain text."""
    if value is None:
        value = Secret(os.environ.get(env, "").strip())
        if not value.reveal():
            raise ConfigurationError(f"no {what}: pass {what}=... or set {env} in the environment")
    problem = _credential_problem(value.reveal())
    if problem:
        raise ConfigurationError(f"the {what} {problem}")
    return Secret(value.reveal().strip())


def _credential_problem(value: object) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string"
    if any(not ch.isprintable() for ch in value):
        return "contains control characters"
    return None


def _timeout(value: float | Timeout) -> Timeout:
    if isinstance(value, Timeout):
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < math.inf:
        raise ConfigurationError("timeout must be a positive number of seconds or a Timeout")
    # As PecClient's: the whole request, and at most 10 s of it to open the connection.
    return Timeout(total=float(value), connect=min(10.0, float(value)))


def _detached(creation: Coroutine[Any, Any, str]) -> asyncio.Task[str]:
    """``creation`` as a task of a context of its own. It is shared by every caller that
    waits for it, so it must not run in the first one's: that caller's
    ``with_raw_response`` would list the token service's answer, and the deadline of the
    write it was settling would bound everyone's token."""
    return contextvars.Context().run(asyncio.ensure_future, creation)


def _being_cancelled() -> bool:
    """Whether the running task itself is being cancelled (3.11+; on 3.10 it cannot be
    told, and a flight cancelled by ``aclose`` is taken as the reason)."""
    task = asyncio.current_task()
    if task is None or sys.version_info < (3, 11):
        return False
    return task.cancelling() > 0


class RenewingProvider(AsyncClosing):
    """A token provider of the OAuth service: one token, shared, made again (once,
    whoever asks) when it is missing or about to expire. Subclasses say how in
    :meth:`_next` and name themselves in ``_OWNER``."""

    _OWNER: ClassVar[str] = "RenewingProvider"

    __slots__ = (
        "_basic",
        "_clock",
        "_closed",
        "_current",
        "_email",
        "_pending",
        "_renew_before",
        "_sandbox",
        "_scopes",
        "_service",
        "_ttl",
    )

    def __init__(
        self,
        email: str | None,
        key: Secret | None,
        *,
        scopes: Iterable[str],
        sandbox: bool,
        base_url: str | URL | None,
        urls: tuple[str, str],
        ttl: int,
        renew_before: float,
        session: aiohttp.ClientSession | None,
        clock: Callable[[], float],
        timeout: float | Timeout,
    ) -> None:
        """``key`` is already a Secret (the subclass wraps it before anything can raise:
        error reporters record the locals of a traceback's frames). ``urls``: the
        service's production and sandbox URLs."""
        self._sandbox = bool(sandbox)
        self._scopes = check_scopes(scopes, self._sandbox)
        email = _credential(None if email is None else Secret(email), EMAIL_ENV, "email").reveal()
        if ":" in email:
            raise ConfigurationError("the email must not contain ':'")
        key_env = SANDBOX_API_KEY_ENV if self._sandbox else API_KEY_ENV
        key = _credential(key, key_env, "api_key")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= MAX_TTL:
            raise ConfigurationError("ttl must be an int of seconds from 60 to one year")
        if isinstance(renew_before, bool) or not isinstance(renew_before, (int, float)):
            raise ConfigurationError("renew_before must be a number of seconds")
        if not 0 <= renew_before < ttl:
            raise ConfigurationError("renew_before must be at least 0 and less than ttl")
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError("session must be an aiohttp.ClientSession")
        limits = _timeout(timeout)
        default = urls[1] if self._sandbox else urls[0]
        base = check_base_url(base_url if base_url is not None else default, secret="API key")
        self._email = email
        self._basic: StaticAuth = basic_auth(email, key)
        del key
        self._ttl = ttl
        self._renew_before = float(renew_before)
        self._clock = clock
        self._closed = False
        self._current: Held | None = None
        self._pending: asyncio.Task[str] | None = None
        self._service = TokenService(
            base, self._basic, owner=self._OWNER, timeout=limits, session=session
        )

    # -- information -----------------------------------------------------------------------

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes every token is created with."""
        return self._scopes

    @property
    def sandbox(self) -> bool:
        return self._sandbox

    @property
    def expires_at(self) -> float | None:
        """Unix time at which the current token expires; None when there is none."""
        return self._current.expires_at if self._current is not None else None

    def __repr__(self) -> str:
        if not hasattr(self, "_service"):  # an __init__ that raised (a traceback's local)
            return f"{self._OWNER}(<not initialised>)"
        return (
            f"{self._OWNER}(email={self._email!r}, sandbox={self._sandbox}, "
            f"scopes={len(self._scopes)}, base_url={str(self._service.base_url)!r})"
        )

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("token providers are not picklable")

    # -- the TokenProvider protocol ----------------------------------------------------------

    async def get_token(self) -> str:
        """The current token; made (once, whoever asks) when missing or about to expire."""
        self._check_open()
        current = self._current
        if current is not None and self._clock() < current.refresh_at:
            return current.token.reveal()
        pending = self._pending
        if pending is None:
            pending = self._pending = _detached(self._renew())
            pending.add_done_callback(self._flight_done)
        try:
            # shield: a caller cancelled while waiting does not cancel the others' flight.
            return await asyncio.shield(pending)
        except asyncio.CancelledError:
            # The flight was cancelled by aclose(), not this caller: it is told the
            # provider closed. A caller that is itself being cancelled stays cancelled.
            if not (self._closed and pending.cancelled()) or _being_cancelled():
                raise
        raise_unchained(ClientClosedError(f"this {self._OWNER} is closed"))

    async def token_rejected(self, token: str) -> None:
        """The API refused ``token``: drop it if it is the current one (else: nothing).
        The next call makes another."""
        current = self._current
        if current is not None and current.token.reveal() == token:
            self._current = None
            logger.debug("the API refused the OAuth token: the next request creates another")

    # -- lifecycle -------------------------------------------------------------------------

    async def _stop(self) -> None:
        """Stop a flight in flight (its waiters get ClientClosedError), forget the token,
        close an own session."""
        self._closed = True
        self._current = None
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await self._service.aclose()

    # -- internals -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosedError(f"this {self._OWNER} is closed")

    def _flight_done(self, task: asyncio.Task[str]) -> None:
        if self._pending is task:
            self._pending = None
        if not task.cancelled():
            task.exception()  # retrieved: the waiters got it (or nobody was left to)

    async def _next(self, previous: Held | None) -> Held:
        """The next token (``previous``: the current one, None when there is none)."""
        raise NotImplementedError

    async def _renew(self) -> str:
        previous = self._current
        try:
            held = await self._next(previous)
        except ClientClosedError:  # closed meanwhile (or another event loop): no token
            raise
        except PecError as exc:
            now = self._clock()
            if previous is not None and self._current is previous and now < previous.expires_at:
                # Renewal failed but the token still works: keep it, try again soon.
                previous.refresh_at = now + min(
                    _RETRY_AFTER_FAILURE, (previous.expires_at - now) / 2
                )
                logger.warning(
                    "could not renew the OAuth token (%s); the current one is kept until %s",
                    type(exc).__name__,
                    time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(previous.expires_at)),
                )
                return previous.token.reveal()
            raise
        self._current = held
        return held.token.reveal()

    def _schedule(self, expire: float | None, asked_at: float) -> tuple[float, float, float]:
        """``(expires_at, refresh_at, lifetime)`` of a token the service says expires at
        ``expire``, asked for at ``asked_at``."""
        now = self._clock()
        latest = asked_at + self._ttl
        # Trust the service's expiry, but never beyond what was asked (clock skew).
        expires_at = min(expire, latest) if expire is not None and expire > now else latest
        lifetime = max(0.0, expires_at - now)
        refresh_at = expires_at - min(self._renew_before, lifetime / 2)
        return expires_at, refresh_at, lifetime
