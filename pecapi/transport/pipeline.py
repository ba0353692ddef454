"""The one request pipeline every operation goes through.

build URL (+ extra_query) -> auth and headers (+ extra_headers) -> send -> (retry /
reconcile: see ``attempt``) -> decode envelope -> model; each answer and the value decoded
from it are told to ``raw`` (for ``with_raw_response``).

The pipeline owns the aiohttp session: it creates it lazily inside the running loop,
closes only a session it created, and turns off aiohttp's silent re-send of GET, HEAD,
DELETE... on a dropped kept-alive connection (a renewal is a paid GET).
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

import aiohttp
from aiohttp.payload import BytesPayload, Payload
from yarl import URL

from pecapi import __version__
from pecapi.closing import check_loop
from pecapi.errors import (
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    EventLoopError,
    PecApiError,
    PecError,
    ScrubbedCause,
    TokenError,
    TransportError,
    safe_url,
)
from pecapi.secret import Secret
from pecapi.transport.auth import TokenProvider
from pecapi.transport.decode import api_error, decode_reply, retry_after_seconds
from pecapi.transport.endpoint import Effect, Endpoint, build_url
from pecapi.transport.exchange import (
    BodyFactory,
    Exchange,
    RawResponse,
    encode_json,
    json_body,
    no_body,
    where,
)
from pecapi.transport.extras import request_headers, request_query
from pecapi.transport.limits import ResponseLimits, read_error_body, read_limited
from pecapi.transport.options import DEFAULT_TIMEOUT, RequestOptions, Timeout
from pecapi.transport.pending import PendingBook, TargetLocks
from pecapi.transport.raw import answered, decoded
from pecapi.transport.retry import Call, Reconciler, RetryPolicy, run_with_policy
from pecapi.transport.throttle import Throttle
from pecapi.transport.transport_errors import raise_unchained, transport_error

__all__ = [
    "BodyFactory",
    "Exchange",
    "Pipeline",
    "RawResponse",
    "api_error",
    "decode_reply",
    "encode_json",
    "json_body",
    "retry_after_seconds",
]

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("pecapi")

USER_AGENT = (
    f"pecapi/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)

DEFAULT_RETRY = RetryPolicy()


class Pipeline:
    """Sends exchanges over one lazily created aiohttp session."""

    def __init__(
        self,
        *,
        base_url: URL,
        token: TokenProvider,
        session: aiohttp.ClientSession | None = None,
        throttle: Throttle | None = None,
        defaults: RequestOptions | None = None,
        limits: ResponseLimits | None = None,
    ) -> None:
        self.base_url = base_url
        self._token = token
        self._session = session
        self._owns_session = session is None
        self.throttle = throttle or Throttle(100)
        self._closed = False
        self.defaults = defaults or RequestOptions(timeout=DEFAULT_TIMEOUT)
        self.limits = limits or ResponseLimits()
        # The readers inflate compressed answers themselves, at most 64 KiB per step:
        # aiohttp before 3.14 inflates a whole network chunk at once (124 MiB from one
        # chunk of a gzip bomb, measured on 3.12.2). Hence ``auto_decompress=False`` and
        # an ``Accept-Encoding`` of only what limits.py inflates, in ``attempt``.
        self._read_answer = _read_all(self.limits)
        # State the resources share across every copy of a client (with_options).
        self.shared: dict[str, Any] = {}
        # Writes whose outcome is not settled yet, and one paid write per target at once.
        self.pending = PendingBook()
        self.locks = TargetLocks()
        if session is not None:
            _disable_silent_resend(session)
        elif not _CAN_STOP_RESEND:
            raise ConfigurationError(_OLD_AIOHTTP)

    # -- lifecycle -----------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise ClientClosedError("this PecClient is closed; create a new one")
        if self._session is None:
            # Created here, not in __init__, so that it binds to the loop that uses it.
            # Sized to the throttle: a request past the gate never waits for a connection.
            limit = self.throttle.max_in_flight
            connector = aiohttp.TCPConnector(limit=limit, limit_per_host=limit)
            session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT},
                auto_decompress=False,
            )
            _disable_silent_resend(session)  # before it is kept: never used unguarded
            self._session = session
        else:
            check_loop(self._session, "PecClient")
        return self._session

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        session, self._session = self._session, None
        if session is not None and self._owns_session:
            await session.close()

    # -- building ------------------------------------------------------------------------

    def exchange(
        self,
        endpoint: Endpoint[Any],
        *,
        params: Mapping[str, str] | None = None,
        query: Mapping[str, str] | None = None,
        body: BodyFactory = no_body,
        options: RequestOptions | None = None,
    ) -> Exchange:
        params = params or {}
        url = build_url(self.base_url, endpoint, params)
        merged = options.merged_over(self.defaults) if options is not None else self.defaults
        query = request_query(query, merged.extra_query)
        if query:
            url = url.with_query(query)
        return Exchange(endpoint, url, params, query, body, merged)

    # -- running -------------------------------------------------------------------------

    async def call(
        self,
        exchange: Exchange,
        reconciler: Reconciler[Any] | None = None,
        *,
        target: str | None = None,
    ) -> Any:
        """Send ``exchange`` and decode its JSON envelope with the endpoint's ``decode``."""
        return await self.send(
            exchange,
            self._read_answer,
            lambda raw: decode_reply(exchange, raw, self.limits),
            reconciler,
            target=target,
        )

    async def send(
        self,
        exchange: Exchange,
        read: Callable[[aiohttp.ClientResponse], Awaitable[R]],
        finish: Callable[[R], T],
        reconciler: Reconciler[T] | None = None,
        *,
        target: str | None = None,
    ) -> T:
        """Run ``exchange`` under its retry policy: each attempt sends, ``read``s the
        response and ``finish``es it into the result (raising the typed API errors).

        A write holds its ``target``'s lock (by default the endpoint's object, e.g.
        ``pec/<id>``) for the whole call, settling included.
        """
        endpoint = exchange.endpoint
        policy = exchange.options.retry or DEFAULT_RETRY

        async def once(time_left: float | None) -> T:
            # ``token`` is a Secret: this frame is in the traceback of every error below.
            token = await self._get_token()
            try:
                return decoded(
                    exchange, finish(await self.attempt(exchange, read, token, time_left))
                )
            except AuthenticationError:
                # A provider that can renew its token gets one chance per attempt: the
                # API refused the request before doing anything, so resending is safe.
                rejected = getattr(self._token, "token_rejected", None)
                if rejected is None:
                    raise
                try:
                    await rejected(token.reveal())
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    refused: TokenError | None = _token_error(exc)
                else:
                    refused = None
                if refused is not None:
                    raise_unchained(refused)  # the provider's frames held the token
                fresh = await self._get_token()
                if fresh == token:
                    raise
                return decoded(
                    exchange, finish(await self.attempt(exchange, read, fresh, time_left))
                )

        if endpoint.effect is Effect.READ:
            return await run_with_policy(Call(endpoint.name, Effect.READ), policy, once)
        call = Call(
            endpoint.name,
            endpoint.effect,
            reconciler=reconciler,
            book=self.pending,
            locks=self.locks,
            target=target or _default_target(exchange),
        )
        return await run_with_policy(call, policy, once)

    async def _get_token(self) -> Secret:
        """The token, as its own step before an attempt: a failure here is a
        :class:`TokenError`, which says that nothing was sent to the PEC API."""
        try:
            return Secret(await self._token.get_token())
        except (asyncio.CancelledError, EventLoopError):
            raise
        except Exception as exc:
            error = _token_error(exc)
        raise_unchained(error)  # outside the handler: see _token_error

    async def attempt(
        self,
        exchange: Exchange,
        read: Callable[[aiohttp.ClientResponse], Awaitable[R]],
        token: Secret,
        time_left: float | None = None,
    ) -> R:
        """One HTTP attempt: send, then ``read`` the response, with transport errors typed.

        This is the single place where a request leaves the process.
        """
        session = self.session()
        timeout = exchange.options.timeout or DEFAULT_TIMEOUT
        if time_left is not None and (timeout.total is None or time_left < timeout.total):
            timeout = Timeout(total=max(time_left, 0.001), connect=timeout.connect)
        # A payload object: its repr (what error reporters record of this frame's
        # locals) is its type, never the body (personal data, a signed callback URL).
        payload = _payload(exchange)
        started = time.perf_counter()
        try:
            async with (
                self.throttle,
                session.request(
                    exchange.method,
                    exchange.url,
                    # Built in the call: no local of this frame holds the plain token.
                    data=payload,
                    headers=request_headers(token, exchange, _content_type(payload)),
                    timeout=_client_timeout(timeout),
                    allow_redirects=False,
                    # A session passed in by the user may say otherwise: pecapi's error
                    # types and resend rules do not depend on its settings.
                    raise_for_status=False,
                    auto_decompress=False,  # inflated by limits.LimitedBody, bounded
                ) as response,
            ):
                result = await read(response)
                status = response.status
                answered(exchange, response)  # for with_raw_response
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # not TimeoutError on 3.10
            if isinstance(exc, PecError):  # PecTimeoutError is a TimeoutError too
                raise
            error = transport_error(exc, where(exchange), timeout.total)
        else:
            if logger.isEnabledFor(logging.DEBUG):
                logger.debug(
                    "%s %s -> %s in %.1f ms",
                    exchange.method,
                    safe_url(exchange.url),
                    status,
                    (time.perf_counter() - started) * 1000,
                )
            return result
        # Raised here, outside the handler, so that aiohttp's exception is not even the
        # implicit ``__context__``: it holds the request headers, and its traceback holds
        # aiohttp's frames, whose locals are those headers. ``transport_error`` chained a
        # scrubbed copy (its type and message) instead.
        raise_unchained(error)


def _payload(exchange: Exchange) -> Payload | None:
    body = exchange.body()
    if isinstance(body, bytes):  # an encoded JSON object (json_body)
        return BytesPayload(body, content_type="application/json")
    return body  # None, or a streamed payload with its own Content-Type


def _content_type(payload: Payload | None) -> str | None:
    return payload.content_type if payload is not None else None


def _client_timeout(timeout: Timeout) -> aiohttp.ClientTimeout:
    return aiohttp.ClientTimeout(total=timeout.total, connect=timeout.connect)


def _token_error(exc: Exception) -> TokenError:
    """The :class:`TokenError` for a provider's ``exc``. pecapi's own errors (the OAuth
    provider's) are chained as they are: they are scrubbed. Anything else is replaced by
    a :class:`ScrubbedCause` of its type alone: a provider's frames hold the token (it is
    ``token_rejected``'s argument) and its message may quote it."""
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


def _default_target(exchange: Exchange) -> str | None:
    """What a write is about: ``pec/<id>``, ``comunica_pec/<id>``; None for a creation."""
    id = exchange.params.get("id")
    if id is None:
        return None
    return exchange.endpoint.path.split("/", 2)[1] + "/" + id


_OLD_AIOHTTP = (
    f"aiohttp {aiohttp.__version__} silently re-sends dropped GET requests (a paid renewal "
    "among them) and cannot be told not to: pecapi needs aiohttp >= 3.11"
)
# aiohttp 3.11 added the switch, as an attribute every session sets in __init__.
_CAN_STOP_RESEND = "_retry_connection" in getattr(aiohttp.ClientSession, "ATTRS", ())


def _disable_silent_resend(session: aiohttp.ClientSession) -> None:
    # aiohttp re-sends a GET/HEAD/DELETE/... once when a kept-alive connection turns out
    # to be dead. The PEC API renews (and charges) on GET /pec/{id}/rinnovo, so that hidden
    # second request could charge twice: pecapi decides about every resend itself. An
    # aiohttp without the switch (before 3.11) cannot be made safe: refuse it.
    if not isinstance(getattr(session, "_retry_connection", None), bool):
        raise ConfigurationError(_OLD_AIOHTTP)
    session._retry_connection = False


def _read_all(
    limits: ResponseLimits,
) -> Callable[[aiohttp.ClientResponse], Awaitable[RawResponse]]:
    async def read(response: aiohttp.ClientResponse) -> RawResponse:
        if 200 <= response.status < 300:
            body = await read_limited(response, limits.json, setting="ResponseLimits.json")
        else:
            # Cut, not refused: the status says what went wrong (and whether to retry);
            # the body only adds the API's message.
            body = await read_error_body(response, limits)
        return RawResponse(response.status, dict(response.headers), body)

    return read
