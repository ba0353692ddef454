"""Tokens from Openapi's OAuth service v2 (``oauth.openapi.com``, the service of the
accounts made on openapi.com): :class:`OAuthV2TokenProvider`. v1 (``oauth.openapi.it``,
older accounts) is :mod:`pecapi.oauth`; :mod:`pecapi.oauth_choice` picks one. The
operations are declared in :mod:`pecapi.oauth_v2_api`, the wallet's in
:mod:`pecapi.wallet`; the requests go through :mod:`pecapi.oauth_service`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiohttp
from yarl import URL

from pecapi.errors import (
    ClientClosedError,
    ConfigurationError,
    NotFoundError,
    PecError,
    TransportError,
)
from pecapi.oauth_provider_base import (
    DEFAULT_RENEW_BEFORE,
    DEFAULT_TTL,
    Held,
    RenewingProvider,
)
from pecapi.oauth_service import ONE_ATTEMPT
from pecapi.oauth_v2_api import (
    CREATE_TOKENS,
    DELETE_TOKEN,
    REFRESH_TOKEN,
    TokenDetail,
    on_token,
    transient,
)
from pecapi.secret import Secret
from pecapi.transport.auth import bearer_auth
from pecapi.transport.options import Timeout
from pecapi.transport.transport_errors import raise_unchained
from pecapi.wallet import V2_TRANSACTIONS, V2_WALLET, Wallet, WalletTransaction

__all__ = ["OAUTH_V2_PRODUCTION_URL", "OAUTH_V2_SANDBOX_URL", "OAuthV2TokenProvider"]

logger = logging.getLogger("pecapi")

OAUTH_V2_PRODUCTION_URL = "https://oauth.openapi.com"
OAUTH_V2_SANDBOX_URL = "https://test.oauth.openapi.com"


class OAuthV2TokenProvider(RenewingProvider):
    """A :class:`~pecapi.TokenProvider` that creates and renews its tokens with the OAuth
    service v2 (``oauth.openapi.com``, sandbox ``test.oauth.openapi.com``).

    It creates one token with exactly ``scopes`` and a lifespan of ``ttl`` seconds
    (``POST /tokens``, HTTP Basic), hands it to every request, and ``renew_before``
    seconds before it expires renews it with its refresh token (``PATCH /tokens/{token}``,
    the refresh token as ``Bearer``: a new token and refresh token, the old token
    deleted). When the service refuses the renewal (a used or expired refresh token, a
    deleted token: any 4xx), it creates a new token instead. Concurrent callers share one
    creation or renewal (a thousand first calls make one ``POST``). When the PEC API
    answers 401, the client calls ``token_rejected()``: the token is dropped (once,
    however many requests report it) and the next call creates another. A renewal that
    fails for a transient reason (unreachable, 429, 5xx) while the token is still valid
    keeps it and is tried again within 30 s.

    :meth:`revoke` deletes the tokens it made (``DELETE /tokens/{token}``);
    ``aclose(revoke=True)`` does so before closing. By default closing sends nothing and
    the tokens expire after ``ttl``. :meth:`wallet` reads the account's wallet.

    ``email`` and ``api_key`` default to ``OPENAPI_EMAIL`` and
    ``OPENAPI_SANDBOX_API_KEY`` (sandbox) / ``OPENAPI_API_KEY`` (production).
    ``base_url`` replaces the service's URL (e.g. the emulator's,
    ``pecapi.testing.OAuthV2Emulator``). ``name`` is the tokens' name in the account's
    console (None: none). ``session`` is an aiohttp session to use and not close;
    otherwise the provider creates one and closes it in :meth:`aclose`. ``timeout``
    bounds each request to the service: seconds (opening the connection: at most 10 of
    them), or a :class:`~pecapi.Timeout`. ``clock`` returns unix seconds (tests inject one).

    The API key, the tokens and the refresh tokens never appear in a repr, an exception,
    a traceback's locals or a log record (``PATCH`` and ``DELETE`` carry a token in their
    path: their errors show ``/tokens/<redacted>``).
    """

    _OWNER = "OAuthV2TokenProvider"

    __slots__ = ("_name", "_owned")

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
        name: str | None = "pecapi",
        session: aiohttp.ClientSession | None = None,
        clock: Callable[[], float] = time.time,
        timeout: float | Timeout = 30.0,
    ) -> None:
        # The key is wrapped before anything can raise: the frames of a traceback keep
        # their locals, and error reporters record them.
        key = None if api_key is None else Secret(api_key)
        del api_key
        if name is not None and (not isinstance(name, str) or not name.isprintable()):
            raise ConfigurationError("name must be a printable string, or None")
        super().__init__(
            email,
            key,
            scopes=scopes,
            sandbox=sandbox,
            base_url=base_url,
            urls=(OAUTH_V2_PRODUCTION_URL, OAUTH_V2_SANDBOX_URL),
            ttl=ttl,
            renew_before=renew_before,
            session=session,
            clock=clock,
            timeout=timeout,
        )
        self._name = name or None
        # The tokens made here that may still be valid: what revoke() deletes.
        self._owned: list[Held] = []

    # -- the account -----------------------------------------------------------------------

    async def wallet(self) -> Wallet:
        """The account's wallet: ``GET /wallet`` (HTTP Basic), credit in EUR."""
        self._check_open()
        return await self._service.call(V2_WALLET)

    async def wallet_transactions(
        self, *, skip: int = 0, limit: int = 100
    ) -> list[WalletTransaction]:
        """The wallet's movements, newest first: ``GET /wallet/transactions`` (``skip``,
        ``limit`` from 1 to 100)."""
        for field, value, low in (("skip", skip, 0), ("limit", limit, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigurationError(f"{field} must be an int of at least {low}")
        if limit > 100:
            raise ConfigurationError("limit must be at most 100")
        self._check_open()
        query = {"skip": str(skip), "limit": str(limit)}
        return await self._service.call(V2_TRANSACTIONS, query=query)

    # -- revocation and lifecycle ------------------------------------------------------------

    async def revoke(self) -> int:
        """Delete every token this provider made that may still be valid (``DELETE
        /tokens/{token}`` each) and forget the current one; return how many the service
        deleted (one it no longer knows, answered 404, is not counted). A ``DELETE``
        whose answer was lost is sent again; if the first one had deleted the token,
        the second is answered 404 and that token is not counted either: the count is
        a lower bound.

        A creation or renewal in flight is waited for first, so that its token is
        deleted too. The provider stays usable: the next call creates a new token. If a
        deletion fails, the others are still tried, the failed ones are kept for the next
        :meth:`revoke`, and the first error is raised.
        """
        self._check_open()
        pending = self._pending
        if pending is not None and not pending.done():
            with contextlib.suppress(Exception):  # its callers got its error
                await asyncio.shield(pending)
        self._current = None
        owned, self._owned = self._owned, []
        deleted = 0
        failed: list[Held] = []
        error: PecError | None = None
        for held in owned:
            try:
                deleted += await self._delete(held.token)
            except PecError as exc:  # scrubbed by _delete
                failed.append(held)
                error = error or exc
        self._owned[:0] = failed
        if error is not None:
            # Not a bare raise: on 3.10 this coroutine may still see a caught aiohttp
            # error as the one being handled, and make it the error's __context__ (its
            # frames hold the response, whose repr names /tokens/{token}).
            raise_unchained(error)
        if deleted:
            logger.debug("revoked %d OAuth token(s)", deleted)
        return deleted

    async def aclose(self, *, revoke: bool = False) -> None:
        """Stop a renewal in flight, forget the token, close an own session. With
        ``revoke=True``, first delete the tokens made here (see :meth:`revoke`; its
        error, if any, is raised after closing). Idempotent: closed, it does nothing."""
        if self._closed:
            return
        try:
            if revoke:
                await self.revoke()
        finally:
            await self._stop()

    # -- internals ---------------------------------------------------------------------------

    async def _next(self, previous: Held | None) -> Held:
        """The next token: ``previous`` renewed with its refresh token, or a new one."""
        if previous is not None and previous.refresh is not None:
            try:
                return await self._refresh(previous)
            except PecError as exc:
                if isinstance(exc, TransportError) and exc.request_sent:
                    # The answer was lost: the service may have renewed it (the old token
                    # deleted, its refresh token used up, the new one never seen: an
                    # orphan nobody can revoke, left to expire after its ttl). The old
                    # token is dropped, not kept "until expiry": the next call creates a
                    # new one. (It stays in _owned: revoke() tries it, a 404 is harmless.)
                    if self._current is previous:
                        self._current = None
                    logger.info("the answer of a renewal was lost: the next call creates a token")
                    raise
                if transient(exc) or isinstance(exc, ClientClosedError):
                    raise
                # Refused (a used or expired refresh token, a deleted token) or an answer
                # without a usable token: the old token may be gone; make a new one.
                logger.info(
                    "the OAuth service did not renew the token (%s): creating a new one",
                    type(exc).__name__,
                )
        return await self._create()

    async def _create(self) -> Held:
        self._check_open()
        asked_at = self._clock()
        body: dict[str, Any] = {"scopes": list(self._scopes), "ttl": self._ttl}
        if self._name is not None:
            body["name"] = self._name
        detail = await self._service.call(CREATE_TOKENS, json=body, retry=ONE_ATTEMPT)
        return self._keep(detail, asked_at, "created")

    async def _refresh(self, previous: Held) -> Held:
        self._check_open()
        assert previous.refresh is not None
        asked_at = self._clock()
        detail = await on_token(
            self._service,
            REFRESH_TOKEN,
            previous.token,
            json={"ttl": self._ttl},
            auth=bearer_auth(previous.refresh),
            retry=ONE_ATTEMPT,  # see REFRESH_TOKEN
        )
        # The service deleted the old token: nothing left to revoke of it.
        self._owned = [h for h in self._owned if h is not previous]
        return self._keep(detail, asked_at, "renewed")

    async def _delete(self, token: Secret) -> int:
        try:
            await on_token(self._service, DELETE_TOKEN, token)
        except NotFoundError:  # deleted already, renewed, or expired
            return 0
        return 1

    def _keep(self, detail: TokenDetail, asked_at: float, how: str) -> Held:
        now = self._clock()
        expires_at, refresh_at, lifetime = self._schedule(detail.expire_at, asked_at)
        held = Held(detail.token, detail.refresh, expires_at, refresh_at)
        # Tokens past their expiry are dead: no need to revoke them.
        self._owned = [h for h in self._owned if h.expires_at > now]
        self._owned.append(held)
        if detail.scopes is not None and set(detail.scopes) != set(self._scopes):
            logger.warning(
                "the OAuth service %s a token with %d scope(s), not the %d asked",
                how,
                len(detail.scopes),
                len(self._scopes),
            )
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug(
                "%s an OAuth v2 token with %d scope(s), valid for %.0f s",
                how,
                len(self._scopes),
                lifetime,
            )
        return held
