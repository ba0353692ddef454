"""Client-wide limits: requests in flight, and an optional rate (token bucket)."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType

from pecapi.errors import ConfigurationError

__all__ = ["Throttle"]


class Throttle:
    """At most ``max_in_flight`` requests at once and, when ``rate`` is set, at most
    ``rate`` request starts per second on average (bursts of up to ``burst``).

    One throttle is shared by every call of a client, retries and reconciliation reads
    included: it is the single gate in front of the network. Enter it with ``async
    with``; the pipeline first tries :meth:`enter_now` (then :meth:`leave`), which takes a
    free slot without a coroutine when no rate applies.
    """

    def __init__(
        self,
        max_in_flight: int,
        rate: float | None = None,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if isinstance(max_in_flight, bool) or not isinstance(max_in_flight, int):
            raise ConfigurationError("max_in_flight must be an int")
        if max_in_flight < 1:
            raise ConfigurationError("max_in_flight must be at least 1")
        if rate is not None and (isinstance(rate, bool) or rate <= 0):
            raise ConfigurationError("rate must be a positive number of requests per second")
        self.max_in_flight = max_in_flight
        self.rate = float(rate) if rate is not None else None
        self.burst = max(1, burst if burst is not None else int(self.rate or 1))
        # The slots: a count and a queue of waiters, first come first served (what
        # asyncio.Semaphore does, with a synchronous fast path: enter_now).
        self._free = max_in_flight
        self._waiters: deque[asyncio.Future[None]] = deque()
        # A subclass with its own gate (__aenter__) is always entered with ``async with``.
        self._plain = type(self).__aenter__ is Throttle.__aenter__
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(self.burst)
        self._stamp = clock()
        self._bucket = asyncio.Lock()
        self._in_flight = 0

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self._in_flight

    async def _take_token(self) -> None:
        assert self.rate is not None
        async with self._bucket:  # one waiter at a time keeps the order fair
            while True:
                now = self._clock()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1 - 1e-9:  # float sums of waits land a hair short of 1
                    self._tokens = max(0.0, self._tokens - 1)
                    return
                await self._sleep((1 - self._tokens) / self.rate)

    def enter_now(self) -> bool:
        """Take a slot if that needs no waiting (a free slot, nobody queued, no rate, not
        a subclass with a gate of its own): True, and :meth:`leave` gives it back.
        False: nothing taken, enter with ``async with``."""
        if self._free > 0 and self.rate is None and self._plain and not self._waiters:
            self._free -= 1
            self._in_flight += 1
            return True
        return False

    def leave(self) -> None:
        """Give back a slot taken by :meth:`enter_now`."""
        self._in_flight -= 1
        self._give_back()

    async def _take_slot(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give_back()  # handed a slot, then cancelled: pass it on
            raise
        finally:
            if not waiter.done():
                self._waiters.remove(waiter)

    def _give_back(self) -> None:
        # Straight to the first waiter still waiting: the slot never looks free to a
        # newcomer in between (first come, first served).
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    async def __aenter__(self) -> None:
        await self._take_slot()
        if self.rate is not None:
            try:
                await self._take_token()
            except BaseException:
                self._give_back()
                raise
        self._in_flight += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._in_flight -= 1
        self._give_back()
