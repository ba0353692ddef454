"""``RedisCoordination``: what a client needs to act as one of many processes on one
account, through one Redis.

::

    fleet = RedisCoordination("redis://redis:6379/0", namespace="pecapi:acme", rate_limit=10)
    async with PecClient(provider, coordination=fleet) as client:
        ...

Each client bound to it (``PecClient(coordination=...)``) gets the fleet's token
(:class:`~pecapi.fleet.tokens.FleetToken`), gate (:class:`~pecapi.fleet.ratelimit.FleetThrottle`),
target locks (:class:`~pecapi.fleet.leases.FleetLocks`) and pending book
(:class:`~pecapi.fleet.pending_store.FleetPendingBook`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import redis.asyncio as aioredis

from pecapi.closing import AsyncClosing
from pecapi.errors import ConfigurationError, ValidationError
from pecapi.fleet.leases import FleetLocks, Keeper, Lease, Leases
from pecapi.fleet.pending_store import FleetPendingBook
from pecapi.fleet.ratelimit import FleetThrottle
from pecapi.fleet.store import OnUnavailable, Store
from pecapi.fleet.tokens import FleetToken
from pecapi.transport.auth import StaticToken, TokenProvider
from pecapi.transport.pending import PendingOutcome
from pecapi.transport.throttle import Throttle

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = ["FleetParts", "RedisCoordination"]


class FleetParts:
    """What one client gets from a :class:`RedisCoordination` (see ``bind``)."""

    __slots__ = ("_closed", "_fleet", "locks", "pending", "throttle", "token")

    def __init__(
        self,
        fleet: RedisCoordination,
        token: TokenProvider,
        throttle: FleetThrottle,
        locks: FleetLocks,
        pending: FleetPendingBook,
    ) -> None:
        self._fleet = fleet
        self._closed = False
        self.token: TokenProvider = token
        self.throttle: FleetThrottle = throttle
        self.locks: FleetLocks = locks
        self.pending: FleetPendingBook = pending

    def attach(self, client: PecClient) -> None:
        """The client whose reads settle the outcomes other processes left pending."""
        self.pending.attach(client)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                await self.throttle.aclose()
            finally:
                await self._fleet._release()


class RedisCoordination(AsyncClosing):
    """Coordination of every process using one Openapi account, through Redis.

    - ``url``: ``redis://`` / ``rediss://`` / ``unix://``, or a ``redis.asyncio.Redis``
      you own (not closed here; use ``decode_responses=True``);
    - ``namespace``: the prefix of every key: one per account (and environment);
    - ``rate_limit`` (requests per second, bursts of ``burst``) and ``max_in_flight``:
      the account's limits, shared by every process (None: none; each client's own
      ``rate_limit`` / ``max_in_flight`` still apply in its process);
    - ``lease_ttl``: seconds after which a dead process's leases (one paid write per
      mailbox) and in-flight slots come back; a live holder extends them;
    - ``on_unavailable``: ``"fail"`` (default): without Redis nothing is sent, every call
      raises :class:`~pecapi.CoordinationError`; ``"local"``: per-process limits, locks,
      token and pending outcomes, with a warning logged;
    - ``token_identity``: names the account and scopes of a token provider pecapi cannot
      read them from (the OAuth providers need none);
    - ``timeout``: seconds a Redis command (or the wait for one of the ``max_connections``
      connections of this process) may take before Redis counts as unavailable.

    One coordination may serve several clients of one event loop; it is closed with the
    last of them (or ``aclose()``).
    """

    __slots__ = (
        "_bound",
        "_keeper",
        "_leases",
        "burst",
        "max_in_flight",
        "rate_limit",
        "store",
        "token_identity",
    )

    def __init__(
        self,
        url: str | aioredis.Redis,
        *,
        namespace: str,
        rate_limit: float | None = None,
        burst: int | None = None,
        max_in_flight: int | None = None,
        lease_ttl: float = 15.0,
        on_unavailable: OnUnavailable = "fail",
        token_identity: str | None = None,
        timeout: float = 2.0,
        max_connections: int = 50,
    ) -> None:
        if isinstance(lease_ttl, bool) or not isinstance(lease_ttl, (int, float)):
            raise ConfigurationError("lease_ttl must be a number of seconds")
        if not 1.0 <= lease_ttl <= 3600:
            raise ConfigurationError("lease_ttl must be from 1 to 3600 seconds")
        self.store: Store = Store(
            url,
            namespace=namespace,
            on_unavailable=on_unavailable,
            timeout=timeout,
            max_connections=max_connections,
        )
        self.rate_limit: float | None = rate_limit
        self.burst: int | None = burst
        self.max_in_flight: int | None = max_in_flight
        self.token_identity: str | None = token_identity
        self._keeper = Keeper(self.store, float(lease_ttl))
        self._leases = Leases(self.store, self._keeper)
        self._bound = 0
        # Checked here, before any client is built on it.
        FleetThrottle(1, store=self.store, keeper=self._keeper, fleet_rate=rate_limit,
                      fleet_burst=burst, fleet_max_in_flight=max_in_flight)  # fmt: skip

    @property
    def namespace(self) -> str:
        return self.store.namespace

    @property
    def on_unavailable(self) -> OnUnavailable:
        return self.store.on_unavailable

    def __repr__(self) -> str:
        return (
            f"RedisCoordination(namespace={self.namespace!r}, rate_limit={self.rate_limit}, "
            f"max_in_flight={self.max_in_flight}, on_unavailable={self.on_unavailable!r})"
        )

    def __reduce__(self) -> str | tuple[object, ...]:
        raise TypeError("a RedisCoordination is not picklable: make one per process")

    # -- what a client gets ------------------------------------------------------------------

    def bind(self, token: TokenProvider, throttle: Throttle) -> FleetParts:
        """The parts of one client: its token (shared when it is a provider that makes
        tokens; a fixed token is used as it is), gate (``throttle``'s local limits, then
        the fleet's), target locks and pending book."""
        shared: TokenProvider = token
        if not isinstance(token, StaticToken):
            shared = FleetToken(
                token, store=self.store, leases=self._leases, identity=self.token_identity
            )
        gate = FleetThrottle(
            throttle.max_in_flight,
            throttle.rate,
            throttle.burst if throttle.rate is not None else None,
            store=self.store,
            keeper=self._keeper,
            fleet_rate=self.rate_limit,
            fleet_burst=self.burst,
            fleet_max_in_flight=self.max_in_flight,
        )
        book = FleetPendingBook(self.store)
        locks = FleetLocks(self.store, self._leases, book)
        self._bound += 1
        return FleetParts(self, shared, gate, locks, book)

    # -- for other parts of pecapi.fleet (the job queue) -----------------------------------

    def key(self, *parts: str) -> str:
        """A key in this coordination's namespace."""
        return self.store.key(*parts)

    def redis(self) -> aioredis.Redis:
        """The Redis client of this coordination, in the running loop."""
        return self.store.client()

    @asynccontextmanager
    async def lease(self, name: str, timeout: float | None = None) -> AsyncIterator[Lease]:
        """Hold the fleet-wide lease on ``name`` (any string) while the block runs: extended
        while held, expired ``lease_ttl`` seconds after its process died. Waiting longer
        than ``timeout`` raises :class:`~pecapi.PecTimeoutError`; no Redis,
        :class:`~pecapi.CoordinationError`."""
        async with self._leases.hold(name, timeout) as held:
            yield held

    async def pending_outcomes(self, client: PecClient) -> list[PendingOutcome[Any]]:
        """Every outcome left unsettled by any process of the fleet (and ``client``'s own).
        ``await client.reconcile(p)`` settles one with ``client``'s reads; one another
        process cannot check raises :class:`~pecapi.OutcomeUnknownError`."""
        book = getattr(client._pipeline, "pending", None)
        if not isinstance(book, FleetPendingBook):
            raise ValidationError("client", "is not bound to this coordination")
        return await book.outcomes(client)

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Stop extending leases and close the Redis client (one made here). The clients
        bound to it close it themselves when the last of them closes."""
        self._bound = 0
        await self._stop()

    async def _release(self) -> None:
        self._bound = max(0, self._bound - 1)
        if self._bound == 0:
            await self._stop()

    async def _stop(self) -> None:
        await self._keeper.aclose()
        await self.store.aclose()
