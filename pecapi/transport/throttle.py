"""Client-wide limits: requests in flight, and an optional rate (token bucket)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType

from pecapi.errors import ConfigurationError

__all__ = ["Throttle"]


class Throttle:
    """At most ``max_in_flight`` requests at once and, when ``rate`` is set, at most
    ``rate`` request starts per second on average (bursts of up to ``burst``).

    One throttle is shared by every call of a client, retries and reconciliation reads
    included: it is the single gate in front of the network.
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
        self._slots = asyncio.Semaphore(max_in_flight)
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

    async def __aenter__(self) -> None:
        await self._slots.acquire()
        if self.rate is not None:
            try:
                await self._take_token()
            except BaseException:
                self._slots.release()
                raise
        self._in_flight += 1

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._in_flight -= 1
        self._slots.release()
