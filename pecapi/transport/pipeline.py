"""The one request pipeline every operation goes through.

build URL (+ extra_query) -> auth and headers (+ extra_headers) -> send (attempt.py) ->
retry / settle / reconcile (retry.py) -> decode envelope -> model; each answer and the
value decoded from it are told to ``raw`` (for ``with_raw_response``).

The pipeline owns the aiohttp session: it creates it lazily inside the running loop,
closes only a session it created, and turns off aiohttp's silent re-send of GET, HEAD,
DELETE... on a dropped kept-alive connection (a renewal is a paid GET): session.py.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from functools import partial
from typing import Any, TypeVar

import aiohttp
from yarl import URL

from pecapi.closing import check_loop
from pecapi.errors import (
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    PecError,
    PecTimeoutError,
)
from pecapi.secret import Secret
from pecapi.transport.attempt import send_once
from pecapi.transport.auth import Auth, StaticAuth, TokenProvider, bearer_auth
from pecapi.transport.decode import (
    AnswerDecoder,
)
from pecapi.transport.download import Destination, PdfReader
from pecapi.transport.endpoint import Answer, Effect, Endpoint, build_url
from pecapi.transport.exchange import (
    BodyFactory,
    Exchange,
    no_body,
)
from pecapi.transport.extras import (
    client_timeout,
    request_query,
)
from pecapi.transport.limits import ResponseLimits, json_reader
from pecapi.transport.options import DEFAULT_TIMEOUT, RequestOptions, Timeout
from pecapi.transport.pending import PendingBook, TargetLocks
from pecapi.transport.raw import decoded, recording
from pecapi.transport.retry import (
    Call,
    Reconciler,
    RetryPolicy,
    call_deadline,
    cancelled_in_flight,
    first_read_retry,
    prepared,
    resume_read,
    resume_write,
    run_with_policy,
    settle_earlier,
)
from pecapi.transport.session import CAN_STOP_RESEND as _CAN_STOP_RESEND
from pecapi.transport.session import OLD_AIOHTTP as _OLD_AIOHTTP
from pecapi.transport.session import disable_silent_resend as _disable_silent_resend
from pecapi.transport.session import new_session
from pecapi.transport.shared import SharedReads
from pecapi.transport.throttle import Throttle
from pecapi.transport.transport_errors import ErrorWording

__all__ = ["DEFAULT_RETRY", "PEC_API", "Pipeline"]

T = TypeVar("T")
R = TypeVar("R")

logger = logging.getLogger("pecapi")

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
        locks: TargetLocks | None = None,
        pending: PendingBook | None = None,
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
        self._read_answer = json_reader(self.limits)
        # A fixed Authorization (StaticAuth) goes out as a header of the session pecapi
        # creates, set once (session()); a user's session never gets it, and a provider's
        # token is asked for before each attempt.
        self._session_auth = False
        # The aiohttp timeout of the last Timeout seen: the defaults' on almost every call.
        self._timeout: tuple[Timeout, aiohttp.ClientTimeout] | None = None
        # The reads concurrent reconciliations share, across every copy of a client
        # (with_options): see shared.py.
        self.reads = SharedReads()
        # Writes whose outcome is not settled yet, and one paid write per target at once
        # (in this process, or across a fleet's: pecapi.fleet passes its own).
        self.pending = pending if pending is not None else PendingBook()
        self.locks = locks if locks is not None else TargetLocks()
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
            static = self.auth if type(self.auth) is StaticAuth else None
            self._session = new_session(self.throttle.max_in_flight, static)
            self._session_auth = static is not None
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

    def call(
        self,
        exchange: Exchange,
        reconciler: Reconciler[Any] | None = None,
        *,
        target: str | None = None,
        dest: Destination | None = None,
    ) -> Coroutine[Any, Any, Any]:
        """Send ``exchange`` and read its answer as its endpoint declares (``answer``):
        a JSON envelope decoded with the endpoint's ``decode``, or a PDF document,
        streamed by a :class:`~pecapi.transport.download.PdfReader` (its bytes, or with
        ``dest`` the path written).

        Not a coroutine function: it returns the coroutine of the path the call takes (one
        coroutine less per call), and refuses a bad ``dest`` when called."""
        if exchange.endpoint.answer is Answer.PDF:
            reader = PdfReader(exchange, self.limits, dest)  # refuses a bad dest: not sent
            return self.send(exchange, reader.read, reader.finish, reconciler, target=target)
        if dest is not None:
            raise ConfigurationError(f"{exchange.endpoint.name} answers JSON, not a document")
        if exchange.endpoint.effect is not Effect.READ:
            return self._write(exchange, reconciler, target)
        return self._read(exchange)

    def _decoder(self, exchange: Exchange) -> AnswerDecoder:
        # Asked when the call runs (in the awaiting task's context): with_raw_response
        # and with_raw_json record the calls made inside them.
        recorder = recording()
        if recorder is not None:
            recorder.claim(exchange)
        return AnswerDecoder(exchange, self.limits, recorder)

    async def _read(self, exchange: Exchange) -> Any:
        """A read (most calls): its first attempt is made here, without the retry loop's
        objects and coroutines; a retry goes on in that loop (resume_read), which decides
        exactly as run_with_policy would have from the start."""
        finish = self._decoder(exchange)
        endpoint = exchange.endpoint
        policy = exchange.options.retry or DEFAULT_RETRY
        deadline = call_deadline(policy)
        left = None if deadline is None else deadline - policy.clock()
        attempts = 0
        if left is None or left > 0:
            try:
                return await self._once(exchange, self._read_answer, finish, left)
            except PecError as error:
                delay = first_read_retry(policy, endpoint.name, error, deadline)
                if delay is None:
                    raise
            await policy.sleep(delay)
            attempts = 1
        once = partial(self._once, exchange, self._read_answer, finish)
        return await resume_read(endpoint.name, policy, once, deadline, attempts)

    async def _write(
        self, exchange: Exchange, reconciler: Reconciler[Any] | None, target: str | None
    ) -> Any:
        """A write answering a JSON envelope. When its target is free in this process (most
        writes: a batch registers distinct addresses), its first attempt is made here under
        ``TargetLocks.enter_now``, without the context manager and the loop's coroutines;
        a failure goes on in the loop (resume_write) with the same decisions, and a busy
        target (or a fleet's lease) takes ``send``'s general path."""
        finish = self._decoder(exchange)
        endpoint = exchange.endpoint
        target = target or _default_target(exchange)
        locks = self.locks
        if target is None or not locks.enter_now(target):
            return await self.send(exchange, self._read_answer, finish, reconciler, target=target)
        try:
            policy = exchange.options.retry or DEFAULT_RETRY
            deadline = call_deadline(policy)
            call = Call(
                endpoint.name,
                endpoint.effect,
                reconciler=reconciler,
                book=self.pending,
                locks=locks,
                target=target,
            )
            if self.pending:
                await settle_earlier(call, policy, deadline)
            checked = reconciler if policy.reconcile else None
            if checked is not None and getattr(checked, "prepares", True):
                checked = await prepared(call, policy)
            left = None if deadline is None else deadline - policy.clock()
            if left is not None and left <= 0:
                raise PecTimeoutError(
                    f"{endpoint.name}: the deadline has passed", request_sent=False
                )
            try:
                return await self._once(exchange, self._read_answer, finish, left)
            except asyncio.CancelledError:
                cancelled_in_flight(call, policy, checked)
                raise
            except PecError as exc:
                error = exc
            once = partial(self._once, exchange, self._read_answer, finish)
            resumed = resume_write(call, policy, once, deadline, checked, error)
            del error  # raised, it would hold this frame, and this frame it: a cycle
            return await resumed
        finally:
            locks.leave(target)

    async def _once(
        self,
        exchange: Exchange,
        read: Callable[[aiohttp.ClientResponse], Awaitable[R]],
        finish: Callable[[R], T],
        time_left: float | None,
        auth: Auth | None = None,
    ) -> T:
        """One attempt of any call: authorize, send, ``read`` the response and ``finish``
        it into the result (raising the typed API errors). ``auth`` replaces the
        pipeline's authentication (``send(..., auth=)``)."""
        authenticator = self.auth if auth is None else auth
        # ``sent`` is a Secret: this frame is in the traceback of every error below.
        # Asked for as its own step: whatever fails there, nothing was sent. None: the
        # session carries the pipeline's own (fixed) Authorization.
        sent = None if auth is None and self._session_auth else await authenticator.authorization()
        try:
            value = finish(await self.attempt(exchange, read, sent, time_left))
        except AuthenticationError:
            # An authorization that can be renewed (the PEC API's token provider) gets
            # one chance per attempt: the API refused the request before doing anything,
            # so resending is safe. ``refused`` raises a TokenError without chaining the
            # provider's (its frames held the token).
            if sent is None or not await authenticator.refused(sent):
                raise
            fresh = await authenticator.authorization()
            if fresh == sent:
                raise
            value = finish(await self.attempt(exchange, read, fresh, time_left))
        return decoded(exchange, value)

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
        once = partial(self._once, exchange, read, finish, auth=auth)
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

    def attempt(
        self,
        exchange: Exchange,
        read: Callable[[aiohttp.ClientResponse], Awaitable[R]],
        authorization: Secret | None,
        time_left: float | None = None,
    ) -> Coroutine[Any, Any, R]:
        """One HTTP attempt: send, then ``read`` the response, with transport errors typed.
        ``authorization`` is the whole ``Authorization`` value (see ``Auth``); None when
        the session carries it.

        Not a coroutine function: it returns :func:`~pecapi.transport.attempt.send_once`'s
        coroutine (the single place where a request leaves the process), with this
        pipeline's session, throttle and the attempt's timeout.
        """
        session = self.session()
        timeout = exchange.options.timeout or DEFAULT_TIMEOUT
        if time_left is not None and (timeout.total is None or time_left < timeout.total):
            timeout = Timeout(total=max(time_left, 0.001), connect=timeout.connect)
        cached = self._timeout
        if cached is not None and cached[0] is timeout:
            aiohttp_timeout = cached[1]
        else:
            aiohttp_timeout = client_timeout(timeout)
            self._timeout = (timeout, aiohttp_timeout)
        return send_once(
            session, self.throttle, exchange, read, authorization, timeout.total,
            aiohttp_timeout, self.wording, self.base_url,
        )  # fmt: skip


def _default_target(exchange: Exchange) -> str | None:
    """What a write is about: ``pec/<id>``, ``comunica_pec/<id>``; None for a creation."""
    id = exchange.params.get("id")
    if id is None:
        return None
    return exchange.endpoint.path.split("/", 2)[1] + "/" + id
