"""Writes whose outcome is not known yet, and the per-target locks that keep two paid
writes on one mailbox from being mistaken for each other."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from pecapi.errors import PecError
    from pecapi.transport.retry import Reconciler, RetryPolicy

__all__ = ["PendingBook", "PendingOutcome", "TargetLocks"]

T = TypeVar("T")


class PendingOutcome(Generic[T]):
    """A write that may or may not have taken effect, and how to find out.

    Carried by :class:`~pecapi.OutcomeUnknownError` as ``.pending`` and listed by
    ``client.pending_outcomes()`` (a call cancelled while its write was in flight or
    being settled leaves one there). Settle it with ``await client.reconcile(pending)``:
    the operation's result if the change took effect, None if the account still shows no
    change once the settle window has passed (then, and only then, sending the write
    again cannot charge twice).

    - ``operation``: e.g. ``"mailboxes.renew"``; ``target``: what it was about
      (``"pec/<id>"``, ``"register/<address>"``...);
    - ``cause``: the write's own error (None when the call was cancelled: ``cancelled``);
    - ``failed_at`` / ``settle_until``: the policy clock's time of the failure and the end
      of its settle window; ``settled``: whether it has been settled.
    """

    __slots__ = (
        "_book",
        "cancelled",
        "cause",
        "failed_at",
        "operation",
        "policy",
        "reconciler",
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
        cancelled: bool,
        reconciler: Reconciler[T] | None,
        policy: RetryPolicy,
        book: PendingBook | None = None,
    ) -> None:
        self.operation = operation
        self.target = target
        self.cause = cause
        self.cancelled = cancelled
        self.reconciler = reconciler
        # The policy of the call: its clock measures the window, its sleep waits.
        self.policy = policy
        self.failed_at = policy.clock()
        self.window = policy.settle
        self.settled = False
        self._book = book

    @property
    def settle_until(self) -> float:
        return self.failed_at + self.window

    def resolve(self) -> None:
        """Mark it settled and drop it from its client's book."""
        self.settled = True
        if self._book is not None:
            self._book.discard(self)

    def __repr__(self) -> str:
        why = "cancelled" if self.cancelled else type(self.cause).__name__
        state = "settled" if self.settled else "pending"
        return f"PendingOutcome({self.operation}, target={self.target!r}, {why}, {state})"


class PendingBook:
    """The unsettled outcomes of one client (shared by its ``with_options`` copies)."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        self._items: dict[int, PendingOutcome[Any]] = {}

    def add(self, pending: PendingOutcome[Any]) -> None:
        self._items[id(pending)] = pending

    def discard(self, pending: PendingOutcome[Any]) -> None:
        self._items.pop(id(pending), None)

    def items(self) -> list[PendingOutcome[Any]]:
        return list(self._items.values())

    def __len__(self) -> int:
        return len(self._items)


class TargetLocks:
    """One lock per target, created on demand and dropped when nobody holds or awaits it.

    Paid writes on the same mailbox (or registrations of the same address) run one at a
    time, so that each one's reconciliation sees its own change and not the other's.
    """

    __slots__ = ("_locks",)

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, list[int]]] = {}

    @asynccontextmanager
    async def hold(self, target: str) -> AsyncIterator[None]:
        entry = self._locks.get(target)
        if entry is None:
            entry = (asyncio.Lock(), [0])
            self._locks[target] = entry
        lock, users = entry
        users[0] += 1
        try:
            async with lock:
                yield
        finally:
            users[0] -= 1
            if users[0] == 0:
                del self._locks[target]

    def __len__(self) -> int:
        return len(self._locks)
