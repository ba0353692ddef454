"""Tokens from the Openapi.it OAuth service: scopes for the PEC API, and a renewing provider.

::

    provider = OAuthTokenProvider(
        "me@example.org", api_key, scopes=pec_scopes("mailboxes.list", sandbox=True),
        sandbox=True,
    )
    async with provider, PecClient(provider, sandbox=True) as client:
        ...

The service is the OAuth API v1 (``oauth.openapi.it``, sandbox ``test.oauth.openapi.it``):
``POST /token`` with HTTP Basic authentication (the account's e-mail and API key) and the
body ``{"scopes": [...], "ttl": seconds}`` answers ``{"token", "expire", "scopes", "success",
"message", "error"}``. A scope is ``METHOD:host/segment``, e.g.
``GET:test.pec.openapi.it/pec``, where the segment is the first segment of the path
(:mod:`pecapi.oauth_scopes`). The requests go through the request pipeline
(:mod:`pecapi.oauth_service`); the operation is declared in :mod:`pecapi.oauth_v1`.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import math
import os
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

import aiohttp
from yarl import URL

from pecapi.closing import AsyncClosing
from pecapi.errors import ClientClosedError, ConfigurationError, PecError
from pecapi.oauth_scopes import (
    PEC_HOSTS,
    PEC_OPERATIONS,
    PEC_SEGMENTS,
    all_pec_scopes,
    check_scopes,
    pec_scopes,
)
from pecapi.oauth_service import ONE_ATTEMPT, TokenService
from pecapi.oauth_v1 import CREATE_TOKEN, TokenAnswer
from pecapi.secret import Secret
from pecapi.transport.auth import basic_auth
from pecapi.transport.options import Timeout
from pecapi.transport.urls import check_base_url
from pecapi.wallet import V1_CREDIT, Wallet

__all__ = [
    "API_KEY_ENV",
    "EMAIL_ENV",
    "OAUTH_PRODUCTION_URL",
    "OAUTH_SANDBOX_URL",
    "PEC_HOSTS",
    "PEC_OPERATIONS",
    "PEC_SEGMENTS",
    "SANDBOX_API_KEY_ENV",
    "OAuthTokenProvider",
    "all_pec_scopes",
    "pec_scopes",
]

logger = logging.getLogger("pecapi")

OAUTH_PRODUCTION_URL = "https://oauth.openapi.it"
OAUTH_SANDBOX_URL = "https://test.oauth.openapi.it"

#: Environment variables the provider reads when ``email`` / ``api_key`` are not given.
EMAIL_ENV = "OPENAPI_EMAIL"
API_KEY_ENV = "OPENAPI_API_KEY"
SANDBOX_API_KEY_ENV = "OPENAPI_SANDBOX_API_KEY"

_DEFAULT_TTL = 24 * 3600
_MAX_TTL = 365 * 24 * 3600
_DEFAULT_RENEW_BEFORE = 300.0
# After a failed renewal while the current token is still valid: wait at most this long.
_RETRY_AFTER_FAILURE = 30.0


# -- the provider ----------------------------------------------------------------------


class _Issued:
    """One token the service created, and when to stop handing it out."""

    __slots__ = ("expires_at", "refresh_at", "secret")

    def __init__(self, secret: Secret, expires_at: float, refresh_at: float) -> None:
        self.secret = secret
        self.expires_at = expires_at
        self.refresh_at = refresh_at

    def __repr__(self) -> str:
        return f"_Issued(<redacted>, expires_at={self.expires_at})"


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


class OAuthTokenProvider(AsyncClosing):
    """A :class:`~pecapi.TokenProvider` that creates its tokens with the OAuth service.

    It creates one token with exactly ``scopes`` and a lifespan of ``ttl`` seconds, hands
    it to every request, and creates the next one ``renew_before`` seconds before it
    expires. Concurrent callers share one creation (a thousand first calls create one
    token). When the API answers 401, the client calls :meth:`token_rejected`; the token
    is dropped (once, however many requests report it) and the next call creates another.

    ``email`` and ``api_key`` default to ``OPENAPI_EMAIL`` and ``OPENAPI_SANDBOX_API_KEY``
    (sandbox) / ``OPENAPI_API_KEY`` (production). ``base_url`` replaces the service's URL
    (e.g. the emulator's, ``pecapi.testing.OAuthEmulator``). ``session`` is an aiohttp
    session to use and not close; otherwise the provider creates one and closes it in
    :meth:`aclose` (or ``async with``). ``timeout`` bounds each request to the service:
    seconds (opening the connection: at most 10 of them), or a :class:`~pecapi.Timeout`.
    ``clock`` returns unix seconds (tests inject one).

    The requests to the service go through pecapi's request pipeline: its User-Agent,
    its transport errors (``request_sent=False`` when the connection could not be
    opened), no silent re-send. One creation is one ``POST /token``: a failure is raised
    to the caller, whose own retry policy decides (see ``CREATE_TOKEN``).

    The API key and the tokens never appear in a repr, an exception or a log record.
    """

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
        email: str | None = None,
        api_key: str | None = None,
        *,
        scopes: Iterable[str],
        sandbox: bool = False,
        base_url: str | URL | None = None,
        ttl: int = _DEFAULT_TTL,
        renew_before: float = _DEFAULT_RENEW_BEFORE,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float | Timeout = 30.0,
    ) -> None:
        # The key is wrapped before anything can raise: the frames of a traceback keep
        # their locals, and error reporters record them.
        key = None if api_key is None else Secret(api_key)
        del api_key
        self._sandbox = bool(sandbox)
        self._scopes = check_scopes(scopes, self._sandbox)
        email = _credential(None if email is None else Secret(email), EMAIL_ENV, "email").reveal()
        if ":" in email:
            raise ConfigurationError("the email must not contain ':'")
        key_env = SANDBOX_API_KEY_ENV if self._sandbox else API_KEY_ENV
        key = _credential(key, key_env, "api_key")
        if isinstance(ttl, bool) or not isinstance(ttl, int) or not 60 <= ttl <= _MAX_TTL:
            raise ConfigurationError("ttl must be an int of seconds from 60 to one year")
        if isinstance(renew_before, bool) or not isinstance(renew_before, (int, float)):
            raise ConfigurationError("renew_before must be a number of seconds")
        if not 0 <= renew_before < ttl:
            raise ConfigurationError("renew_before must be at least 0 and less than ttl")
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError("session must be an aiohttp.ClientSession")
        limits = _timeout(timeout)
        default = OAUTH_SANDBOX_URL if self._sandbox else OAUTH_PRODUCTION_URL
        base = check_base_url(base_url if base_url is not None else default, secret="API key")
        self._email = email
        self._basic = basic_auth(email, key)
        del key
        self._ttl = ttl
        self._renew_before = float(renew_before)
        self._clock = clock
        self._closed = False
        self._current: _Issued | None = None
        self._pending: asyncio.Task[str] | None = None
        self._service = TokenService(
            base,
            self._basic,
            owner="OAuthTokenProvider",
            timeout=limits,
            session=session,
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
            return "OAuthTokenProvider(<not initialised>)"
        return (
            f"OAuthTokenProvider(email={self._email!r}, sandbox={self._sandbox}, "
            f"scopes={len(self._scopes)}, base_url={str(self._service.base_url)!r})"
        )

    __str__ = __repr__

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("token providers are not picklable")

    # -- the TokenProvider protocol ----------------------------------------------------------

    async def get_token(self) -> str:
        """The current token; created (once, whoever asks) when missing or about to expire."""
        if self._closed:
            raise ClientClosedError("this OAuthTokenProvider is closed")
        current = self._current
        if current is not None and self._clock() < current.refresh_at:
            return current.secret.reveal()
        pending = self._pending
        if pending is None:
            pending = self._pending = _detached(self._refresh())
            pending.add_done_callback(self._flight_done)
        # shield: a caller cancelled while waiting does not cancel the others' creation.
        return await asyncio.shield(pending)

    async def token_rejected(self, token: str) -> None:
        """The API refused ``token``: drop it if it is the current one (else: nothing)."""
        current = self._current
        if current is not None and current.secret.reveal() == token:
            self._current = None
            logger.debug("the API refused the OAuth token: the next request creates another")

    # -- the account (added by the OAuth v2 work) ------------------------------------------

    async def wallet(self) -> Wallet:
        """The account's wallet: ``GET /credit`` (HTTP Basic), credit in EUR."""
        if self._closed:
            raise ClientClosedError("this OAuthTokenProvider is closed")
        return await self._service.call(V1_CREDIT)

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop a creation in flight, forget the token, close an own session. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._current = None
        pending, self._pending = self._pending, None
        if pending is not None and not pending.done():
            pending.cancel()
            await asyncio.gather(pending, return_exceptions=True)
        await self._service.aclose()

    # -- internals -------------------------------------------------------------------------

    def _flight_done(self, task: asyncio.Task[str]) -> None:
        if self._pending is task:
            self._pending = None
        if not task.cancelled():
            task.exception()  # retrieved: the waiters got it (or nobody was left to)

    async def _refresh(self) -> str:
        previous = self._current
        try:
            issued = await self._create()
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
                return previous.secret.reveal()
            raise
        self._current = issued
        return issued.secret.reveal()

    async def _create(self) -> _Issued:
        if self._closed:
            raise ClientClosedError("this OAuthTokenProvider is closed")
        asked_at = self._clock()
        answer = await self._service.call(
            CREATE_TOKEN,
            json={"scopes": list(self._scopes), "ttl": self._ttl},
            retry=ONE_ATTEMPT,  # see CREATE_TOKEN
        )
        return self._issued(answer, asked_at)

    def _issued(self, answer: TokenAnswer, asked_at: float) -> _Issued:
        now = self._clock()
        latest = asked_at + self._ttl
        expire = answer.expire
        # Trust the service's expiry, but never beyond what was asked (clock skew).
        expires_at = min(expire, latest) if expire is not None and expire > now else latest
        lifetime = max(0.0, expires_at - now)
        refresh_at = expires_at - min(self._renew_before, lifetime / 2)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "created an OAuth token with %d scope(s), valid for %.0f s",
                len(self._scopes),
                lifetime,
            )
        return _Issued(answer.token, expires_at, refresh_at)
