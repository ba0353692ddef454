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

import logging
import time
from collections.abc import Callable, Iterable

import aiohttp
from yarl import URL

from pecapi.oauth_provider_base import (
    API_KEY_ENV,
    DEFAULT_RENEW_BEFORE,
    DEFAULT_TTL,
    EMAIL_ENV,
    SANDBOX_API_KEY_ENV,
    Held,
    RenewingProvider,
    _credential,  # noqa: F401  (kept importable from here)
    _detached,  # noqa: F401
    _timeout,  # noqa: F401
)
from pecapi.oauth_scopes import (
    PEC_HOSTS,
    PEC_OPERATIONS,
    PEC_SEGMENTS,
    all_pec_scopes,
    pec_scopes,
)
from pecapi.oauth_service import ONE_ATTEMPT
from pecapi.oauth_v1 import CREATE_TOKEN, TokenAnswer
from pecapi.secret import Secret
from pecapi.transport.options import Timeout
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


class OAuthTokenProvider(RenewingProvider):
    """A :class:`~pecapi.TokenProvider` that creates its tokens with the OAuth service.

    It creates one token with exactly ``scopes`` and a lifespan of ``ttl`` seconds, hands
    it to every request, and creates the next one ``renew_before`` seconds before it
    expires. Concurrent callers share one creation (a thousand first calls create one
    token). When the API answers 401, the client calls ``token_rejected()``; the token
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

    _OWNER = "OAuthTokenProvider"

    __slots__ = ()

    def __init__(
        self,
        email: str | None = None,
        api_key: str | None = None,
        *,
        scopes: Iterable[str],
        sandbox: bool = False,
        base_url: str | URL | None = None,
        ttl: int = DEFAULT_TTL,
        renew_before: float = DEFAULT_RENEW_BEFORE,
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float | Timeout = 30.0,
    ) -> None:
        # The key is wrapped before anything can raise: the frames of a traceback keep
        # their locals, and error reporters record them.
        key = None if api_key is None else Secret(api_key)
        del api_key
        super().__init__(
            email,
            key,
            scopes=scopes,
            sandbox=sandbox,
            base_url=base_url,
            urls=(OAUTH_PRODUCTION_URL, OAUTH_SANDBOX_URL),
            ttl=ttl,
            renew_before=renew_before,
            session=session,
            clock=clock,
            timeout=timeout,
        )

    # -- the account -----------------------------------------------------------------------

    async def wallet(self) -> Wallet:
        """The account's wallet: ``GET /credit`` (HTTP Basic), credit in EUR."""
        self._check_open()
        return await self._service.call(V1_CREDIT)

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop a creation in flight (its waiters get :class:`~pecapi.ClientClosedError`),
        forget the token, close an own session. Idempotent."""
        if not self._closed:
            await self._stop()

    # -- internals -------------------------------------------------------------------------

    async def _next(self, previous: Held | None) -> Held:
        """A new token: ``POST /token`` (v1 has no renewal)."""
        self._check_open()
        asked_at = self._clock()
        answer: TokenAnswer = await self._service.call(
            CREATE_TOKEN,
            json={"scopes": list(self._scopes), "ttl": self._ttl},
            retry=ONE_ATTEMPT,  # see CREATE_TOKEN
        )
        expires_at, refresh_at, lifetime = self._schedule(answer.expire, asked_at)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "created an OAuth token with %d scope(s), valid for %.0f s",
                len(self._scopes),
                lifetime,
            )
        return Held(answer.token, None, expires_at, refresh_at)
