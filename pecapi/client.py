"""``PecClient``: the session wrapper and the entry point to every operation."""

from __future__ import annotations

from collections.abc import AsyncIterable, Awaitable, Callable, Iterable, Mapping
from typing import Any, Protocol, TypeVar

import aiohttp
from yarl import URL

from pecapi.batch import Batch, BatchProgress
from pecapi.closing import AsyncClosing
from pecapi.errors import ConfigurationError, ValidationError
from pecapi.resources.account import Account
from pecapi.resources.comunica_pec import ComunicaPecRequests
from pecapi.resources.domains import Domains
from pecapi.resources.mailboxes import Mailboxes
from pecapi.transport.auth import TokenProvider, resolve_token, seal
from pecapi.transport.limits import ResponseLimits
from pecapi.transport.options import DEFAULT_TIMEOUT, RequestOptions, Timeout
from pecapi.transport.pending import NotApplied, PendingBook, PendingOutcome, TargetLocks
from pecapi.transport.pipeline import Pipeline
from pecapi.transport.requester import Requester
from pecapi.transport.retry import RetryPolicy
from pecapi.transport.throttle import Throttle
from pecapi.transport.urls import check_base_url

__all__ = ["PRODUCTION_URL", "SANDBOX_URL", "Coordination", "CoordinationParts", "PecClient"]

I = TypeVar("I")  # noqa: E741 (the input type)
R = TypeVar("R")
T = TypeVar("T")

PRODUCTION_URL = "https://pec.openapi.it"
SANDBOX_URL = "https://test.pec.openapi.it"


class CoordinationParts(Protocol):
    """What a :class:`Coordination` gives one client: its token provider, its gate in
    front of the network, its per-target locks and its book of pending outcomes."""

    @property
    def token(self) -> TokenProvider: ...

    @property
    def throttle(self) -> Throttle: ...

    @property
    def locks(self) -> TargetLocks: ...

    @property
    def pending(self) -> PendingBook: ...

    def attach(self, client: PecClient) -> None:
        """Called once the client is built (its reads settle other processes' outcomes)."""
        ...

    async def aclose(self) -> None:
        """The client is closing."""
        ...


class Coordination(Protocol):
    """Coordination of many processes on one account (``pecapi.fleet.RedisCoordination``)."""

    def bind(self, token: TokenProvider, throttle: Throttle) -> CoordinationParts:
        """The parts of one client, given its own token provider and local limits."""
        ...


class PecClient(AsyncClosing):
    """Async client of the Openapi.it PEC API.

    ::

        async with PecClient(sandbox=True) as client:
            mailboxes = await client.mailboxes.list()

    ``token`` is a bearer token or a :class:`~pecapi.TokenProvider`; when omitted it
    comes from ``OPENAPI_SANDBOX_TOKEN`` (sandbox) or ``OPENAPI_TOKEN``. ``base_url``
    overrides the environment's URL (e.g. an emulator on loopback). ``session`` lets
    the client share an aiohttp session it will not close; pecapi turns off that
    session's silent re-send of idempotent requests (see README). ``timeout`` is the
    default for every call and ``retry`` the :class:`~pecapi.RetryPolicy` (default:
    ``RetryPolicy()``); ``options=`` on a call or :meth:`with_options` change them.
    ``max_in_flight`` caps the requests in flight and ``rate_limit`` their rate (per
    second), across every call of the client (the connection pool is sized to match).
    ``limits`` caps the size of the answers read (:class:`~pecapi.ResponseLimits`).
    ``coordination`` (``pecapi.fleet.RedisCoordination``) makes the client one of many
    processes on the account: one token, one rate limit, one paid write per mailbox at a
    time and the pending outcomes, shared through Redis (see the deployment guide).
    """

    __slots__ = (
        "_fleet",
        "_pipeline",
        "_requester",
        "_sandbox",
        "account",
        "comunica_pec",
        "domains",
        "mailboxes",
    )

    def __init__(
        self,
        token: str | TokenProvider | None = None,
        *,
        sandbox: bool = False,
        base_url: str | URL | None = None,
        timeout: Timeout | float = DEFAULT_TIMEOUT,
        session: aiohttp.ClientSession | None = None,
        retry: RetryPolicy | None = None,
        max_in_flight: int = 100,
        rate_limit: float | None = None,
        limits: ResponseLimits | None = None,
        coordination: Coordination | None = None,
    ) -> None:
        sealed = seal(token)  # first: the frames of an error's traceback keep their locals
        del token
        if session is not None and not isinstance(session, aiohttp.ClientSession):
            raise ConfigurationError("session must be an aiohttp.ClientSession")
        if limits is not None and not isinstance(limits, ResponseLimits):
            raise ConfigurationError("limits must be a pecapi.ResponseLimits")
        url = check_base_url(
            base_url if base_url is not None else (SANDBOX_URL if sandbox else PRODUCTION_URL)
        )
        if coordination is not None and not callable(getattr(coordination, "bind", None)):
            raise ConfigurationError("coordination must be a pecapi.fleet.RedisCoordination")
        self._sandbox = bool(sandbox)
        provider = resolve_token(sealed, sandbox=self._sandbox)
        throttle = Throttle(max_in_flight, rate_limit)
        self._fleet: CoordinationParts | None = None
        locks: TargetLocks | None = None
        pending: PendingBook | None = None
        if coordination is not None:
            # The fleet's token, gate, locks and book, around this client's own.
            fleet = self._fleet = coordination.bind(provider, throttle)
            provider, throttle = fleet.token, fleet.throttle
            locks, pending = fleet.locks, fleet.pending
        self._pipeline = Pipeline(
            base_url=url,
            token=provider,
            session=session,
            throttle=throttle,
            defaults=RequestOptions(
                timeout=Timeout.of(timeout) or DEFAULT_TIMEOUT, retry=retry or RetryPolicy()
            ),
            limits=limits,
            locks=locks,
            pending=pending,
        )
        self._requester = Requester(self._pipeline)
        self._bind()
        if self._fleet is not None:
            self._fleet.attach(self)

    def _bind(self) -> None:
        # Each namespace gets the requester, not the client: resources import no client.
        requester, sandbox = self._requester, self._sandbox
        self.domains = Domains(requester, sandbox=sandbox, map=self.map)
        self.mailboxes = Mailboxes(requester, sandbox=sandbox, map=self.map)
        self.comunica_pec = ComunicaPecRequests(requester, sandbox=sandbox, map=self.map)
        # The wallet is read from the token service with the token provider's
        # credentials (a fixed token has none: its auth holds no provider).
        # A fleet's shared token wraps the client's provider: the wallet is the provider's.
        provider = getattr(self._pipeline.auth, "provider", None)
        self.account = Account(getattr(provider, "wrapped", provider))

    # -- configuration -------------------------------------------------------------------

    @property
    def sandbox(self) -> bool:
        """True when the client follows the sandbox's rules (test domains)."""
        return self._sandbox

    @property
    def base_url(self) -> URL:
        return self._pipeline.base_url

    @property
    def closed(self) -> bool:
        return self._pipeline.closed

    @property
    def limits(self) -> ResponseLimits:
        """The largest answers this client reads (shared by its ``with_options`` copies)."""
        return self._pipeline.limits

    @property
    def retry_policy(self) -> RetryPolicy:
        """The retry policy calls of this client (or copy) use unless told otherwise."""
        return self._requester.defaults.retry or RetryPolicy()

    def with_options(
        self,
        *,
        timeout: Timeout | float | None = None,
        retry: RetryPolicy | None = None,
        extra_headers: Mapping[str, str] | None = None,
        extra_query: Mapping[str, str] | None = None,
    ) -> PecClient:
        """A client sharing this one's session and token, with other call defaults.

        ``extra_headers`` and ``extra_query`` are added to every request of the copy, to
        this client's own (see :class:`~pecapi.RequestOptions`). Closing either client
        closes the shared session.
        """
        options = RequestOptions(
            timeout=timeout, retry=retry, extra_headers=extra_headers, extra_query=extra_query
        )
        clone = object.__new__(PecClient)
        clone._sandbox = self._sandbox
        clone._fleet = self._fleet
        clone._pipeline = self._pipeline
        clone._requester = self._requester.with_options(options)  # merged here, once
        clone._bind()
        return clone

    def __repr__(self) -> str:
        if not hasattr(self, "_pipeline"):  # an __init__ that raised (a traceback's local)
            return "PecClient(<not initialised>)"
        state = "closed" if self.closed else "open"
        return f"PecClient(base_url={str(self.base_url)!r}, sandbox={self._sandbox}, {state})"

    def map(
        self,
        fn: Callable[[I], Awaitable[R]],
        inputs: Iterable[I] | AsyncIterable[I],
        *,
        concurrency: int = 50,
        total: int | None = None,
        on_progress: Callable[[BatchProgress], None] | None = None,
        stop_on_insufficient_credit: bool = True,
    ) -> Batch[I, R]:
        """Apply ``fn`` (any operation, e.g. ``client.mailboxes.renew``) to every input,
        ``concurrency`` at a time, yielding each :class:`~pecapi.BatchResult` as it
        completes. Requests still pass the client's ``max_in_flight``/``rate_limit``.
        After the first :class:`~pecapi.InsufficientCreditError` nothing more is sent: the
        inputs not started are :class:`~pecapi.BatchSkipped` (unless
        ``stop_on_insufficient_credit=False``)."""
        return Batch(
            fn,
            inputs,
            concurrency=concurrency,
            total=total,
            on_progress=on_progress,
            stop_on_insufficient_credit=stop_on_insufficient_credit,
        )

    # -- outcomes not known yet ----------------------------------------------------------

    def pending_outcomes(self) -> list[PendingOutcome[Any]]:
        """Writes of this client (and its ``with_options`` copies) whose calls gave up on
        them unsettled: those that raised :class:`~pecapi.OutcomeUnknownError`, and those
        cancelled while the write was in flight or being settled. A write whose call is
        still settling it is not listed. The next paid write on the same target settles
        them first."""
        return self._pipeline.pending.items()

    async def reconcile(self, pending: PendingOutcome[T]) -> T | None:
        """Settle ``pending``: watch the account until its settle window has passed.

        Returns the operation's result (e.g. the renewed :class:`~pecapi.Mailbox`) as soon
        as the change shows, or None when a read made after the window still shows no
        change: the write did not take effect and may be sent again. An outcome settled
        already (by another call on the same target) returns what that found at once.
        Raises :class:`~pecapi.OutcomeUnknownError` when the account cannot be read (try
        again later). Holds the target's lock, like the write itself did.
        """
        if not isinstance(pending, PendingOutcome):
            raise ValidationError("pending", "must be a pecapi.PendingOutcome")
        if pending.target is None:
            result = await pending.settle()
        else:
            async with self._pipeline.locks.hold(pending.target):
                result = await pending.settle()  # at once if settled meanwhile
        return None if isinstance(result, NotApplied) else result

    # -- lifecycle -----------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP session (only one the client created), and let go of the
        fleet's coordination (closed with its last client). Safe to call twice."""
        try:
            await self._pipeline.aclose()
        finally:
            if self._fleet is not None:
                await self._fleet.aclose()
