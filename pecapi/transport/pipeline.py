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

from pecapi._version import __version__
from pecapi.closing import check_loop
from pecapi.errors import (
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    PecError,
    safe_url,
)
from pecapi.secret import Secret
from pecapi.transport.auth import Auth, TokenProvider, bearer_auth
from pecapi.transport.decode import api_error, decode_reply, retry_after_seconds
from pecapi.transport.download import Destination, PdfReader
from pecapi.transport.endpoint import Answer, Effect, Endpoint, build_url
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
from pecapi.transport.shared import SharedReads
from pecapi.transport.throttle import Throttle
from pecapi.transport.transport_errors import ErrorWording, raise_unchained, transport_error

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

#: The User-Agent of every request pecapi sends, to the PEC API and to the token service.
USER_AGENT = (
    f"pecapi/{__version__} aiohttp/{aiohttp.__version__} python/{platform.python_version()}"
)

DEFAULT_RETRY = RetryPolicy()

#: How the PEC API's pipeline words its errors (the token service's: oauth_service.py).
PEC_API = ErrorWording()


class Pipeline:
    """Sends exchanges over one lazily created aiohttp session.

    ``auth`` authenticates every attempt (an exchange may bring its own: ``send(...,
    auth=)``); ``token=`` is the PEC API's shorthand for ``auth=bearer_auth(token)``.
    ``wording`` names the service and the pipeline's holder in its errors.
    """

    def __init__(
        self,
        *,
        base_url: URL,
        token: TokenProvider | None = None,
        auth: Auth | None = None,
        session: aiohttp.ClientSession | None = None,
        throttle: Throttle | None = None,
        defaults: RequestOptions | None = None,
        limits: ResponseLimits | None = None,
        wording: ErrorWording = PEC_API,
    ) -> None:
        if auth is None and token is not None:
            auth = bearer_auth(token)
        elif auth is None or token is not None:
            raise ConfigurationError("a Pipeline needs exactly one of token= and auth=")
        self.auth: Auth = auth
        self.base_url = base_url
        self.wording = wording
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
        # The reads concurrent reconciliations share, across every copy of a client
        # (with_options): see shared.py.
        self.reads = SharedReads()
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
            raise ClientClosedError(f"this {self.wording.owner} is closed; create a new one")
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
            check_loop(self._session, self.wording.owner)
        return self._session

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.reads.aclose()  # before the session: a listing still uses it
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
        """The exchange of one call. ``options`` are its effective options, merged once
        over its client's defaults by the :class:`~pecapi.transport.requester.Requester`
        (not merged again here); None: this pipeline's ``defaults``."""
        params = params or {}
        url = build_url(self.base_url, endpoint, params)
        merged = options if options is not None else self.defaults
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
        dest: Destination | None = None,
    ) -> Any:
        """Send ``exchange`` and read its answer as its endpoint declares (``answer``):
        a JSON envelope decoded with the endpoint's ``decode``, or a PDF document,
        streamed by a :class:`~pecapi.transport.download.PdfReader` (its bytes, or with
        ``dest`` the path written)."""
        if exchange.endpoint.answer is Answer.PDF:
            reader = PdfReader(exchange, self.limits, dest)  # refuses a bad dest: not sent
            return await self.send(exchange, reader.read, reader.finish, reconciler, target=target)
        if dest is not None:
            raise ConfigurationError(f"{exchange.endpoint.name} answers JSON, not a document")
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
        auth: Auth | None = None,
    ) -> T:
        """Run ``exchange`` under its retry policy: each attempt sends, ``read``s the
        response and ``finish``es it into the result (raising the typed API errors).

        A write holds its ``target``'s lock (by default the endpoint's object, e.g.
        ``pec/<id>``) for the whole call, settling included. ``auth`` replaces the
        pipeline's authentication for this call (a refresh token as ``Bearer``).
        """
        endpoint = exchange.endpoint
        policy = exchange.options.retry or DEFAULT_RETRY
        authenticator = self.auth if auth is None else auth

        async def once(time_left: float | None) -> T:
            # ``sent`` is a Secret: this frame is in the traceback of every error below.
            # Asked for as its own step: whatever fails there, nothing was sent.
            sent = await authenticator.authorization()
            try:
                return decoded(
                    exchange, finish(await self.attempt(exchange, read, sent, time_left))
                )
            except AuthenticationError:
                # An authorization that can be renewed (the PEC API's token provider)
                # gets one chance per attempt: the API refused the request before doing
                # anything, so resending is safe. ``refused`` raises a TokenError
                # without chaining the provider's (its frames held the token).
                if not await authenticator.refused(sent):
                    raise
                fresh = await authenticator.authorization()
                if fresh == sent:
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

    async def attempt(
        self,
        exchange: Exchange,
        read: Callable[[aiohttp.ClientResponse], Awaitable[R]],
        authorization: Secret,
        time_left: float | None = None,
    ) -> R:
        """One HTTP attempt: send, then ``read`` the response, with transport errors typed.
        ``authorization`` is the whole ``Authorization`` value (see ``Auth``).

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
        # Its repr names the URL (``/tokens/{token}`` holds a token): dropped before this
        # frame ends (``finally``), so no error raised through here keeps it in a local.
        response: aiohttp.ClientResponse | None = None
        try:
            async with (
                self.throttle,
                session.request(
                    exchange.method,
                    exchange.url,
                    # Built in the call: no local of this frame holds the plain token.
                    data=payload,
                    headers=request_headers(authorization, exchange, _content_type(payload)),
                    timeout=_client_timeout(timeout),
                    allow_redirects=False,
                    # A session passed in by the user may say otherwise: pecapi's error
                    # types and resend rules do not depend on its settings.
                    raise_for_status=False,
                    auto_decompress=False,  # inflated by limits.LimitedBody, bounded
                ) as response,
            ):
                # Told before the body is read: an answer whose body cannot be read (cut,
                # too large, undecodable) is reported by with_raw_response all the same.
                answered(exchange, response)
                result = await read(response)
                status = response.status
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:  # not TimeoutError on 3.10
            if isinstance(exc, PecError):  # PecTimeoutError is a TimeoutError too
                raise
            wording = self.wording
            error = transport_error(
                exc, where(exchange), timeout.total, wording.service, quote=wording.quote
            )
        else:
            if logger.isEnabledFor(logging.DEBUG):
                # The token service (quote=False) has tokens in some of its paths (OAuth
                # v2's /tokens/{token}): its requests are logged by the path's template.
                shown = (
                    safe_url(exchange.url)
                    if self.wording.quote
                    else f"{safe_url(self.base_url).rstrip('/')}{exchange.endpoint.path}"
                )
                logger.debug(
                    "%s %s -> %s in %.1f ms",
                    exchange.method,
                    shown,
                    status,
                    (time.perf_counter() - started) * 1000,
                )
            return result
        finally:
            response = None
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
