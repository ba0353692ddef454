"""Leases: a lock on a key across the fleet that expires if its holder dies.

A lease is a Redis key holding its owner's random id, set with ``NX`` and a time to live;
while it is held, a keeper task of the process extends it every third of that time, so a
live holder keeps it however long its call takes, and a process killed with SIGKILL loses
it ``ttl`` seconds later. Only the owner extends or deletes it (compare-and-set scripts).

:class:`FleetLocks` is the pipeline's per-target lock (``pec/<id>``, ``register/<address>``)
made fleet-wide: the local :class:`~pecapi.transport.pending.TargetLocks` first (the
coroutines of one process queue in memory, not on Redis), then the target's lease.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from pecapi.errors import CoordinationError, PecTimeoutError
from pecapi.fleet.lua import ACQUIRE, EXTEND, RELEASE
from pecapi.fleet.store import Store, digest
from pecapi.transport.pending import TargetGuard, TargetLocks

if TYPE_CHECKING:
    from pecapi.fleet.pending_store import FleetPendingBook

__all__ = ["FleetLocks", "Keeper", "Lease", "LeaseGuard", "Leases"]

logger = logging.getLogger("pecapi")


class Lease:
    """One held lease (``RedisCoordination.lease``): its Redis key, its owner's random id,
    whether it was ``lost`` (found expired or taken while held), and ``kept_at``: the
    ``time.monotonic()`` at which the request that last set its time to live was sent (it
    lasts at least ``ttl`` from then)."""

    __slots__ = ("kept_at", "key", "lost", "owner")

    def __init__(self, key: str, owner: str) -> None:
        self.key: str = key
        self.owner: str = owner
        self.lost: bool = False
        self.kept_at: float = time.monotonic()

    def __repr__(self) -> str:
        return f"Lease({self.key!r}{', lost' if self.lost else ''})"


class Keeper:
    """Extends the leases a process holds, every ``ttl / 3`` seconds, while it holds any.

    One task per fleet, started by the first lease and ending when the last one is
    released (or at ``aclose``). Slots of the in-flight cap are kept the same way
    (:mod:`pecapi.fleet.ratelimit` registers a callback).
    """

    __slots__ = ("_extra", "_leases", "_store", "_task", "ttl")

    def __init__(self, store: Store, ttl: float) -> None:
        self._store = store
        self.ttl: float = ttl
        self._leases: dict[str, Lease] = {}
        self._extra: list[Any] = []  # callables: async () -> bool (True: still holding)
        self._task: asyncio.Task[None] | None = None

    def hold(self, lease: Lease) -> None:
        self._leases[lease.owner] = lease
        self._start()

    def drop(self, lease: Lease) -> None:
        self._leases.pop(lease.owner, None)

    def add_keeper(self, keep: Any) -> None:
        """``keep``: ``async () -> bool``, called each round; the task runs while any is True."""
        if keep not in self._extra:
            self._extra.append(keep)
        self._start()

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 3)
            try:
                if not await self._round():
                    return
            except Exception:
                # Never ended by a surprise: the leases held would expire under calls
                # still writing, and another process would take their targets.
                logger.exception("pecapi.fleet: extending leases failed; trying again")

    async def _round(self) -> bool:
        """Extend what is held; False once nothing is."""
        busy = False
        for keep in list(self._extra):
            try:
                busy = await keep() or busy
            except CoordinationError as exc:
                busy = True
                logger.warning("pecapi.fleet: cannot extend in-flight slots (%s)", exc)
        leases = list(self._leases.values())
        if not leases and not busy:
            return False
        if leases:
            await self._extend(leases)
        return True

    async def _extend(self, leases: list[Lease]) -> None:
        script = self._store.script("lease-extend", EXTEND)
        ttl = str(int(self.ttl * 1000))
        sent_at = time.monotonic()
        try:
            kept = await self._store.run(
                "extending leases",
                lambda _: script(
                    keys=[x.key for x in leases], args=[ttl, *(x.owner for x in leases)]
                ),
            )
        except CoordinationError as exc:
            logger.warning("pecapi.fleet: cannot extend %d leases (%s)", len(leases), exc)
            return
        for lease, ok in zip(leases, kept, strict=False):
            if int(ok):
                lease.kept_at = sent_at
            elif not lease.lost and lease.owner in self._leases:
                lease.lost = True
                logger.warning("pecapi.fleet: the lease %s expired while held", lease.key)

    async def aclose(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class Leases:
    """Acquires and releases leases in one namespace (``<ns>:lease:<hash of the key>``)."""

    __slots__ = ("_keeper", "_store")

    def __init__(self, store: Store, keeper: Keeper) -> None:
        self._store = store
        self._keeper = keeper

    @property
    def ttl(self) -> float:
        return self._keeper.ttl

    def key_of(self, name: str) -> str:
        return self._store.key("lease", digest(name))

    async def try_acquire(self, name: str) -> Lease | None:
        """The lease on ``name`` if it is free now, else None."""
        lease = Lease(self.key_of(name), secrets.token_hex(16))
        taken, _ = await self._attempt(lease)
        return lease if taken else None

    async def acquire(self, name: str, timeout: float | None = None) -> Lease:
        """Wait for the lease on ``name``; longer than ``timeout`` seconds raises
        :class:`~pecapi.PecTimeoutError` (nothing was sent)."""
        lease = Lease(self.key_of(name), secrets.token_hex(16))
        give_up = None if timeout is None else time.monotonic() + max(timeout, 0.0)
        pause = 0.005
        while True:
            taken, left_ms = await self._attempt(lease)
            if taken:
                return lease
            now = time.monotonic()
            if give_up is not None and now >= give_up:
                raise PecTimeoutError(
                    "the deadline passed while another process held the lease of an "
                    "earlier write on the same target",
                    request_sent=False,
                )
            # Polled, with growing jittered pauses: a released lease is taken within
            # some tens of milliseconds, and waiters do not hammer Redis.
            wait = min(pause, max(left_ms, 1) / 1000)
            if give_up is not None:
                wait = min(wait, give_up - now)
            await asyncio.sleep(random.uniform(wait / 2, wait))
            pause = min(pause * 2, 0.2)

    async def _attempt(self, lease: Lease) -> tuple[bool, int]:
        script = self._store.script("lease-acquire", ACQUIRE)
        ttl = str(int(self._keeper.ttl * 1000))
        lease.kept_at = time.monotonic()
        answer = await self._store.run(
            "taking a lease", lambda _: script(keys=[lease.key], args=[lease.owner, ttl])
        )
        taken = int(answer[0]) == 1
        if taken:
            self._keeper.hold(lease)
        return taken, int(answer[1])

    async def release(self, lease: Lease) -> None:
        self._keeper.drop(lease)
        script = self._store.script("lease-release", RELEASE)
        try:
            await self._store.run(
                "releasing a lease", lambda _: script(keys=[lease.key], args=[lease.owner])
            )
        except CoordinationError as exc:
            # It expires by itself within its ttl.
            logger.warning("pecapi.fleet: cannot release %s (%s)", lease.key, exc)

    @asynccontextmanager
    async def hold(self, name: str, timeout: float | None = None) -> AsyncIterator[Lease]:
        lease = await self.acquire(name, timeout)
        try:
            yield lease
        finally:
            await self.release(lease)


class FleetLocks(TargetLocks):
    """The pipeline's target locks across the fleet: the local lock, then the lease.

    Under the lease, outcomes other processes left pending on the target are settled
    first, and this process's own are written to Redis when it lets go
    (:class:`~pecapi.fleet.pending_store.FleetPendingBook`).
    """

    __slots__ = ("_book", "_leases", "_store")

    def __init__(self, store: Store, leases: Leases, book: FleetPendingBook) -> None:
        super().__init__()
        self._store = store
        self._leases = leases
        self._book = book

    def enter_now(self, target: str) -> bool:
        return False  # a lease is taken on Redis: always the general path (hold)

    @asynccontextmanager
    async def hold(
        self, target: str, timeout: float | None = None
    ) -> AsyncIterator[TargetGuard | None]:
        started = time.monotonic()
        async with super().hold(target, timeout):
            left = None if timeout is None else timeout - (time.monotonic() - started)
            lease: Lease | None = None
            try:
                lease = await self._leases.acquire(target, left)
            except CoordinationError as exc:
                self._store.fallback(exc, f"the lease of {_kind(target)}")
            if lease is None:
                yield None  # on_unavailable="local": the local lock alone
                return
            try:
                left = None if timeout is None else timeout - (time.monotonic() - started)
                await self._book.settle_foreign(target, left, lease.owner)
                yield LeaseGuard(lease, self._leases.ttl, self._store, target)
            finally:
                try:
                    await self._book.sync(target, lease.owner)
                except CoordinationError as exc:
                    # Not raised over the call's own outcome (an OutcomeUnknownError's
                    # handle): the outcomes stay in this process's book.
                    logger.warning(
                        "pecapi.fleet: cannot record pending outcomes of %s (%s)",
                        _kind(target),
                        exc,
                    )
                finally:
                    await self._leases.release(lease)


class LeaseGuard:
    """Checked before each attempt of a write under a lease (by the retry loop, and by
    the transport just before the request leaves): a lease found lost, or not extended
    for two thirds of its time to live (Redis away, the event loop stalled, the machine
    frozen), may be another process's by now, and a write sent then could be mistaken
    for that process's (or it for ours). With ``on_unavailable="local"`` a lease not
    extended only warns until its time to live has certainly passed."""

    __slots__ = ("_lease", "_store", "_target", "_ttl")

    def __init__(self, lease: Lease, ttl: float, store: Store, target: str) -> None:
        self._lease = lease
        self._ttl = ttl
        self._store = store
        self._target = target

    def check(self) -> None:
        lease = self._lease
        if lease.lost:
            raise CoordinationError(
                f"the lease of {_kind(self._target)} was lost while the call held it "
                "(another process may be writing on it): nothing more was sent"
            )
        unkept = time.monotonic() - lease.kept_at
        if unkept > self._ttl * 2 / 3:
            error = CoordinationError(
                f"the lease of {_kind(self._target)} was not extended for {unkept:.1f} s "
                f"(lease_ttl {self._ttl:g} s): nothing more was sent"
            )
            if unkept > self._ttl:
                # Expired for certain: another process may hold the target, whatever
                # on_unavailable says (it falls back where there is no lease at all).
                raise error
            self._store.fallback(error, f"the lease of {_kind(self._target)}")


def _kind(target: str) -> str:
    # The kind of target, never the address or id itself (personal data in a log).
    return target.split("/", 1)[0] + "/..."
