"""Reads that concurrent reconciliations share: :class:`SharedReads` and its listings.

A reconciliation that must find a created object lists the account (``GET /pec``). A
batch with many dropped registrations would list it once per registration; sharing one
listing taken after every such failure lists it a few times instead.

Owner: the client's ``Pipeline`` (``pipeline.reads``), so one
client and all its ``with_options`` copies share them. A listing is shared only by calls
whose effective :class:`~pecapi.RequestOptions` are equal: it is read with those options
(timeout, retry, extra headers and query), never with those of another call.

A shared listing belongs to none of its callers: its task runs in an empty
:class:`contextvars.Context`, so it inherits neither the ``with_raw_response`` recorder
of the call that started it (its answers are in no caller's ``RawResult``) nor that
call's deadline (each waiter stops waiting at its own).
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Coroutine, Hashable
from typing import Any, Generic, TypeVar

from pecapi.errors import PecTimeoutError

__all__ = ["FreshListing", "SharedReads"]

T = TypeVar("T")

# Distinct option sets kept per listing: past this, finished listings are forgotten,
# oldest first (calls that each send a header of their own share nothing anyway).
_KEPT = 16


class FreshListing(Generic[T]):
    """One listing per key (the effective options of the calls), shared by concurrent
    reconciliations.

    A reconciliation needs a listing taken after its own write failed; a listing that
    started at or after that moment answers every such request. The listing runs as a
    task of its own, shielded from any one waiter's cancellation, and is cancelled when
    its last waiter leaves: nothing is left running behind a cancelled batch.
    """

    def __init__(self) -> None:
        self._by_key: dict[Hashable, _Listing[T]] = {}

    async def newer_than(
        self,
        moment: float,
        key: Hashable,
        fetch: Callable[[], Coroutine[Any, Any, T]],
        *,
        time_left: float | None = None,
        operation: str = "listing",
    ) -> T:
        """A listing for ``key`` started at or after ``moment`` (``time.monotonic()``):
        a running or finished one, else one started now with ``fetch()``. ``time_left``:
        how long this caller waits (its deadline), in seconds."""
        if time_left is not None and time_left <= 0:
            # Checked before anything starts: a listing nobody waits for is not begun.
            raise PecTimeoutError(f"{operation}: the deadline has passed", request_sent=False)
        current = self._by_key.get(key)
        if current is None or current.started < moment or _failed(current.task):
            current = _Listing(_detached(fetch()))
            self._keep(key, current)
        current.waiters += 1
        try:
            if time_left is None:
                return await asyncio.shield(current.task)
            # Not wait_for: on 3.10 and 3.11 it can swallow this caller's cancellation
            # when the listing ends in the same turn (a cancelled settle would go on,
            # and could resend). asyncio.wait never cancels the listing itself.
            done, _ = await asyncio.wait((current.task,), timeout=time_left)
            if done:
                return current.task.result()
            raise PecTimeoutError(f"{operation}: the deadline has passed", request_sent=False)
        except BaseException:
            if current.waiters == 1 and not current.task.done():
                current.task.cancel()
                if self._by_key.get(key) is current:
                    del self._by_key[key]  # nobody joins a listing that is being cancelled
            raise
        finally:
            current.waiters -= 1

    def cancel(self) -> list[asyncio.Task[T]]:
        """Cancel every running listing (their client is closing); return their tasks."""
        running = [listing.task for listing in self._by_key.values() if not listing.task.done()]
        self._by_key.clear()
        for task in running:
            task.cancel()
        return running

    def _keep(self, key: Hashable, listing: _Listing[T]) -> None:
        self._by_key.pop(key, None)  # re-inserted last: the dict's order is the age
        self._by_key[key] = listing
        for old in [k for k, v in self._by_key.items() if v.task.done()]:
            if len(self._by_key) <= _KEPT:
                break
            del self._by_key[old]


def _detached(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    # ``create_task(context=...)`` is 3.11+; a task copies the context it is created in,
    # so creating it inside an empty one does the same on 3.10.
    loop = asyncio.get_running_loop()
    return contextvars.Context().run(loop.create_task, coro)


class _Listing(Generic[T]):
    __slots__ = ("started", "task", "waiters")

    def __init__(self, task: asyncio.Task[T]) -> None:
        self.started = time.monotonic()
        self.task = task
        self.waiters = 0
        # Its error reaches the waiters through the shield; a listing whose waiters were
        # all cancelled must not log "exception was never retrieved".
        task.add_done_callback(_retrieve)


def _retrieve(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _failed(future: asyncio.Future[Any]) -> bool:
    return future.done() and (future.cancelled() or future.exception() is not None)


class SharedReads:
    """The reads that concurrent reconciliations of one client share, by operation.

    Held by the client's ``Pipeline`` (``pipeline.reads``): every ``with_options`` copy
    of a client shares it. Resources reach it through
    :meth:`Requester.shared_read <pecapi.transport.requester.Requester.shared_read>`.
    """

    __slots__ = ("_listings",)

    def __init__(self) -> None:
        self._listings: dict[str, FreshListing[Any]] = {}

    def listing(self, operation: str) -> FreshListing[Any]:
        """The shared listings of ``operation`` (e.g. ``"mailboxes.list"``)."""
        listing = self._listings.get(operation)
        if listing is None:
            listing = self._listings[operation] = FreshListing()
        return listing

    async def aclose(self) -> None:
        """Cancel the running listings and wait for them to end: none outlives its
        client (``Pipeline.aclose``)."""
        running = [task for listing in self._listings.values() for task in listing.cancel()]
        if running:
            await asyncio.gather(*running, return_exceptions=True)

    def __repr__(self) -> str:
        return f"SharedReads({sorted(self._listings)})"
