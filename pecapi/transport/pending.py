"""Writes whose outcome is not known yet: how they are settled, the client's book of those
it gave up on, and the per-target locks that keep two paid writes on one mailbox from
being mistaken for each other."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from pecapi.errors import (
    ClientClosedError,
    ConfigurationError,
    OutcomeUnknownError,
    PecError,
    PecTimeoutError,
)

if TYPE_CHECKING:
    from pecapi.transport.retry import RetryPolicy

__all__ = [
    "ACTIVE_GUARD",
    "NOT_APPLIED",
    "NotApplied",
    "PendingBook",
    "PendingOutcome",
    "Reconciler",
    "TargetGuard",
    "TargetLocks",
    "check_guard",
    "outer_deadline",
]

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

logger = logging.getLogger("pecapi")


class Reconciler(Protocol[T_co]):
    """Finds out whether a write whose outcome is unknown took effect.

    ``prepare`` runs before the first attempt (e.g. to note the current expiry before a
    renewal), unless the reconciler has a ``prepares`` attribute that is False (nothing to
    note: one coroutine less per write); ``check`` returns the operation's result if the
    change is there, else None.
    """

    async def prepare(self) -> None: ...

    async def check(self) -> T_co | None: ...


class NotApplied:
    """The account showed no change after the whole settle window."""

    def __repr__(self) -> str:
        return "NOT_APPLIED"


NOT_APPLIED = NotApplied()

# The deadline of the call whose write is being settled, as (clock, moment): the reads
# that settle it are calls of their own, and must end by then too.
_OUTER: contextvars.ContextVar[tuple[Callable[[], float], float] | None] = contextvars.ContextVar(
    "pecapi_outer_deadline", default=None
)


def outer_deadline(clock: Callable[[], float]) -> float | None:
    """The deadline of the call this one serves (a settling read), on the same clock."""
    outer = _OUTER.get()
    return outer[1] if outer is not None and outer[0] is clock else None


class PendingOutcome(Generic[T]):
    """A write that may or may not have taken effect, and how to find out.

    Carried by :class:`~pecapi.OutcomeUnknownError` as ``.pending`` and listed by
    ``client.pending_outcomes()`` once its call has given up on it: the call raised, or
    was cancelled while the write was in flight or being settled. Settle it with
    ``await client.reconcile(pending)``: the operation's result if the change took
    effect, None if the account still shows no change once the settle window has
    passed, after which this write can no longer be charged.

    - ``operation``: e.g. ``"mailboxes.renew"``; ``target``: what it was about
      (``"pec/<id>"``, ``"register/<address>"``...);
    - ``cause``: the write's own error (None when it was cancelled in flight);
      ``cancelled``: the call was cancelled (in flight or while settling);
    - ``failed_at`` / ``settle_until``: the policy clock's time of the failure and the end
      of its settle window; ``settled``: whether it has been settled, and ``result`` what
      that found (None: not applied).

    It speaks for its own attempt only: a later attempt of the same call is a write of
    its own.
    """

    __slots__ = (
        "_book",
        "cancelled",
        "cause",
        "failed_at",
        "operation",
        "policy",
        "reconciler",
        "result",
        "settled",
        "target",
        "window",
    )

    def __init__(
        self,
        *,
        operation: str,
        target: str | None,
        cause: PecError | None,
        reconciler: Reconciler[T],
        policy: RetryPolicy,
        book: PendingBook | None = None,
    ) -> None:
        self.operation = operation
        self.target = target
        self.cause = cause
        self.cancelled = cause is None
        self.reconciler = reconciler
        # The policy of the call: its clock measures the window, its sleep waits.
        self.policy = policy
        self.failed_at = policy.clock()
        self.window = policy.settle
        self.settled = False
        self.result: T | None = None
        self._book = book

    @property
    def settle_until(self) -> float:
        return self.failed_at + self.window

    def give_up(self, *, cancelled: bool = False) -> None:
        """The call stops watching: keep it in the client's book for later."""
        self.cancelled = self.cancelled or cancelled
        if self._book is not None and not self.settled:
            self._book.add(self)

    def resolve_not_applied(self) -> None:
        """Settled elsewhere: a read after its window showed no change (another process
        of a fleet settled it, and pecapi.fleet passes that verdict on)."""
        self._resolve(None)

    def _resolve(self, result: T | None) -> None:
        self.settled = True
        self.result = result
        if self._book is not None:
            self._book.discard(self)

    async def settle(self, deadline: float | None = None) -> T | NotApplied:
        """Watch the account until the window ends (or ``deadline``, on the policy's clock).

        Returns the operation's result as soon as the change shows, :data:`NOT_APPLIED`
        when a read made after the window still shows none, and raises
        :class:`~pecapi.OutcomeUnknownError` when the deadline ends first or the reads
        fail at the end. The reads are bounded by ``deadline`` too.
        """
        if self.settled:
            return NOT_APPLIED if self.result is None else self.result
        policy, clock = self.policy, self.policy.clock
        stop_at = self.settle_until if deadline is None else min(self.settle_until, deadline)
        interval = self.window / 16
        # The reads are bounded by the call's deadline (not by the window: the last read
        # must be able to run after it).
        token = _OUTER.set((clock, deadline)) if deadline is not None else None
        try:
            while True:
                checked_at = clock()
                failure: PecError | None = None
                try:
                    done = await self.reconciler.check()
                except (ClientClosedError, ConfigurationError) as exc:
                    raise self.unknown(f"it cannot be checked ({exc})") from None
                except PecError as exc:
                    failure, done = exc, None
                if done is not None:
                    logger.info("%s: settled, the change had taken effect", self.operation)
                    self._resolve(done)
                    return done
                now = clock()
                if checked_at >= stop_at or (failure is not None and now >= stop_at):
                    if failure is None and checked_at >= self.settle_until:
                        self._resolve(None)
                        return NOT_APPLIED
                    if stop_at < self.settle_until:
                        raise self.unknown("the deadline ended before the settle window")
                    assert failure is not None
                    raise self.unknown(f"reading the account failed ({type(failure).__name__})")
                await policy.sleep(max(0.0, min(now + interval, stop_at) - now))
                interval = min(interval * 2, self.window / 4)
        finally:
            if token is not None:
                _OUTER.reset(token)

    def unknown(self, why: str) -> OutcomeUnknownError:
        """The error that hands this outcome to the caller."""
        cause = self.cause
        what = "it was cancelled" if cause is None else f"{type(cause).__name__}: {cause}"
        return OutcomeUnknownError(
            f"{self.operation}: outcome unknown: the request may have been processed "
            f"({what}), and {why}; settle it with client.reconcile(error.pending) before "
            "sending it again",
            cause=cause,
            pending=self,
        )

    def __repr__(self) -> str:
        why = "cancelled" if self.cancelled else type(self.cause).__name__
        state = "settled" if self.settled else "pending"
        return f"PendingOutcome({self.operation}, target={self.target!r}, {why}, {state})"


class PendingBook:
    """The outcomes one client gave up on (shared by its ``with_options`` copies)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[int, PendingOutcome[Any]] = {}

    def add(self, pending: PendingOutcome[Any]) -> None:
        self._items[id(pending)] = pending

    def discard(self, pending: PendingOutcome[Any]) -> None:
        self._items.pop(id(pending), None)

    def items(self) -> list[PendingOutcome[Any]]:
        return list(self._items.values())

    def for_target(self, target: str) -> list[PendingOutcome[Any]]:
        return [p for p in self._items.values() if p.target == target]

    def __len__(self) -> int:
        return len(self._items)


class TargetGuard(Protocol):
    """What a held target lock can be asked before each attempt of a write."""

    def check(self) -> None:
        """Raise (a :class:`~pecapi.PecError` whose request was not sent) when the target
        is no longer this holder's: a fleet's lease lost while the call waited."""
        ...


#: The guard of the write whose attempt runs in this context, and the task running it
#: (set by the retry loop around each attempt): checked again by the transport once the
#: throttle let the request go, just before it is sent (the wait for a fleet's in-flight
#: slot has no bound). Tasks started meanwhile (a token renewal) copy the context, and
#: are not that task: their requests are not the write's.
ACTIVE_GUARD: contextvars.ContextVar[tuple[TargetGuard, object] | None] = contextvars.ContextVar(
    "pecapi_active_guard", default=None
)


def check_guard(guard: TargetGuard) -> None:
    """``guard.check()``, its error raised with no implicit ``__context__``: on Python 3.10
    a coroutine can still see an earlier attempt's aiohttp exception (its request headers
    in its frames) as the one being handled (see transport_errors.raise_unchained)."""
    try:
        guard.check()
    except BaseException as error:
        error.__context__ = None
        raise


class _Entry:
    __slots__ = ("lock", "users")

    def __init__(self, lock: asyncio.Lock | None) -> None:
        # None: held by a caller that took it without waiting (``enter_now``), and nobody
        # has come to wait since; the first waiter makes the lock, held on that caller's
        # behalf.
        self.lock = lock
        self.users = 1


class TargetLocks:
    """One lock per target, created on demand and dropped when nobody holds or awaits it.

    Paid writes on the same mailbox (or registrations of the same address) run one at a
    time, so that each one's reconciliation sees its own change and not the other's.

    ``hold`` is the general way; ``enter_now``/``leave`` the pipeline's cheap one for a
    target nobody holds (most writes), without a lock object or a context manager.
    """

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: dict[str, _Entry] = {}

    def enter_now(self, target: str) -> bool:
        """Take ``target`` if nobody holds or awaits it (then ``leave`` it), else False.
        A subclass whose holding needs more than memory (a fleet's lease) says False."""
        if target in self._locks:
            return False
        self._locks[target] = _Entry(None)
        return True

    def leave(self, target: str) -> None:
        """Let go of a target taken with ``enter_now``."""
        entry = self._locks[target]
        self._drop(target, entry, entry.lock)

    def _drop(self, target: str, entry: _Entry, lock: asyncio.Lock | None) -> None:
        if lock is not None:
            lock.release()
        entry.users -= 1
        if entry.users == 0:
            del self._locks[target]

    @asynccontextmanager
    async def hold(
        self, target: str, timeout: float | None = None
    ) -> AsyncIterator[TargetGuard | None]:
        """Hold ``target``'s lock; waiting longer than ``timeout`` seconds raises
        :class:`~pecapi.PecTimeoutError` (nothing was sent). Yields the guard to check
        before each attempt (None: nothing to check, as in one process)."""
        entry = self._locks.get(target)
        fresh = entry is None
        if entry is None:
            lock = asyncio.Lock()
            entry = self._locks[target] = _Entry(lock)
        else:
            entry.users += 1
            existing = entry.lock
            if existing is None:
                # Held by an ``enter_now`` caller: its lock, taken for it (no wait).
                lock = entry.lock = asyncio.Lock()
                await lock.acquire()
            else:
                lock = existing
        try:
            # A lock made just now has no waiter: taken at once, without a task.
            await _acquire(lock, None if fresh else timeout, target)
        except BaseException:
            self._drop(target, entry, None)
            raise
        try:
            yield None
        finally:
            self._drop(target, entry, lock)

    def __len__(self) -> int:
        return len(self._locks)


async def _acquire(lock: asyncio.Lock, timeout: float | None, target: str) -> None:
    """Take ``lock`` within ``timeout`` seconds, or raise PecTimeoutError (nothing sent).

    Not ``asyncio.wait_for(lock.acquire(), timeout)``: on Python 3.10 and 3.11 it returns
    the lock, swallowing the cancellation, when the caller is cancelled in the very turn
    the lock is handed to it, and a cancelled call would then send its paid write."""
    if timeout is None:
        await lock.acquire()
        return
    acquiring = asyncio.ensure_future(lock.acquire())
    try:
        done, _ = await asyncio.wait((acquiring,), timeout=max(timeout, 0.0))
    except BaseException:  # cancelled, or closed (GeneratorExit)
        _abandon(lock, acquiring)
        raise
    if not done:
        _abandon(lock, acquiring)
        raise PecTimeoutError(
            f"the deadline passed while an earlier write on {target} was in progress",
            request_sent=False,
        )
    if acquiring.cancelled():
        # Cancelled from outside (a loop shutting down cancels every task): not held.
        raise asyncio.CancelledError


def _abandon(lock: asyncio.Lock, acquiring: asyncio.Future[Any]) -> None:
    """Give up an acquisition: a lock already handed to it is given back; a pending one
    is cancelled (asyncio.Lock then hands the lock to the next waiter, never to it)."""
    if not acquiring.done():
        acquiring.cancel()
    elif not acquiring.cancelled() and acquiring.exception() is None:
        lock.release()
