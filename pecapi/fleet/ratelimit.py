"""The account-wide gate: a rate (GCRA) and a cap on requests in flight, shared by every
process through one Lua script on Redis.

Rate: the generic cell rate algorithm, computed in the script on Redis's clock (``TIME``),
so the processes' clocks do not matter. A request starts only when it conforms *now* on
that clock (``tat``, the theoretical arrival time, then moves on by ``1 / rate``); else the
script says how long until it would, and the process asks again then. Reserving future
starts instead would let a process that stalls (a GC pause, a busy CPU) fire all its
reserved starts at once when it wakes: the account would see a burst. One coroutine per
process asks at a time, so the waiters of a process do not all poll Redis. Up to
``burst`` requests may start at once after a quiet period.

In flight: a sorted set of slots, scored by their expiry on Redis's clock. A slot is taken
only when fewer than ``max_in_flight`` unexpired ones remain; the process extends its slots
while it holds them (the :class:`~pecapi.fleet.leases.Keeper`), so the slots of a process
that died come back within ``ttl`` seconds.

:class:`FleetThrottle` is a :class:`~pecapi.transport.throttle.Throttle` (the pipeline's one
gate in front of the network): its local limits first, then the fleet's.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from types import TracebackType

from redis.asyncio import Redis

from pecapi.errors import ConfigurationError, CoordinationError
from pecapi.fleet.leases import Keeper
from pecapi.fleet.store import Store, text
from pecapi.transport.throttle import Throttle

__all__ = ["GATE", "FleetThrottle"]

logger = logging.getLogger("pecapi")

# KEYS[1] rate state (tat, ms), KEYS[2] slots (zset: member -> expiry ms).
# ARGV[1] interval ms (0: no rate), ARGV[2] burst tolerance ms, ARGV[3] cap (0: none),
# ARGV[4] slot member, ARGV[5] slot ttl ms.
# {1, "0", "ok"}: conforming, slot taken (when capped). {0, "ms", why}: nothing taken;
# "rate": conforming in that many ms; "full": the oldest slot expires in that many ms.
GATE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local cap = tonumber(ARGV[3])
local ttl = tonumber(ARGV[5])
if cap > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
  if not redis.call('ZSCORE', KEYS[2], ARGV[4]) and redis.call('ZCARD', KEYS[2]) >= cap then
    local first = redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')
    return {0, tostring(tonumber(first[2]) - now), "full"}
  end
end
local interval = tonumber(ARGV[1])
local tat = now
if interval > 0 then
  tat = math.max(tonumber(redis.call('GET', KEYS[1]) or '0'), now)
  local allow_at = tat - tonumber(ARGV[2])
  if now < allow_at then
    return {0, tostring(allow_at - now), "rate"}
  end
  tat = tat + interval
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now) + 1000)
end
if cap > 0 then
  redis.call('ZADD', KEYS[2], now + ttl, ARGV[4])
  redis.call('PEXPIRE', KEYS[2], math.ceil(ttl * 2))
end
return {1, "0", "ok"}
"""

# KEYS[1] slots; ARGV[1] ttl ms, then members: extended (those still there).
EXTEND_SLOTS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local n = 0
for i = 2, #ARGV do
  n = n + redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[1]), ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], math.ceil(tonumber(ARGV[1]) * 2))
return n
"""


class FleetThrottle(Throttle):
    """The pipeline's gate (a ``Throttle``) for one process of a fleet: its own
    limits (``max_in_flight``, ``rate``, as the client's), then the fleet's:
    ``fleet_rate`` requests per second (bursts of ``fleet_burst``) and
    ``fleet_max_in_flight`` at once, account-wide.

    With ``on_unavailable="local"`` an unreachable Redis leaves the process's own limits
    (logged); with ``"fail"`` (default) the request raises
    :class:`~pecapi.CoordinationError` and is not sent.

    It keeps its local limits itself rather than through the base class, and offers both
    ways the pipeline may enter a gate: ``async with`` and ``enter``/``leave``.
    """

    def __init__(
        self,
        max_in_flight: int,
        rate: float | None = None,
        burst: int | None = None,
        *,
        store: Store,
        keeper: Keeper,
        fleet_rate: float | None = None,
        fleet_burst: int | None = None,
        fleet_max_in_flight: int | None = None,
    ) -> None:
        super().__init__(max_in_flight, rate, burst)  # checks them, sets the attributes
        if fleet_rate is not None and (
            isinstance(fleet_rate, bool)
            or not isinstance(fleet_rate, (int, float))
            or fleet_rate <= 0
        ):
            raise ConfigurationError("rate_limit must be a positive number of requests per second")
        if fleet_max_in_flight is not None and (
            isinstance(fleet_max_in_flight, bool)
            or not isinstance(fleet_max_in_flight, int)
            or fleet_max_in_flight < 1
        ):
            raise ConfigurationError("max_in_flight must be an int >= 1")
        if fleet_burst is not None and (
            isinstance(fleet_burst, bool) or not isinstance(fleet_burst, int) or fleet_burst < 1
        ):
            raise ConfigurationError("burst must be an int >= 1")
        self.fleet_rate: float | None = None if fleet_rate is None else float(fleet_rate)
        self.fleet_burst: int = max(1, fleet_burst or int(self.fleet_rate or 1))
        self.fleet_max_in_flight: int | None = fleet_max_in_flight
        self._store = store
        self._keeper = keeper
        self._local = asyncio.Semaphore(max_in_flight)
        self._local_tat = 0.0
        self._entered = 0
        self._prefix = secrets.token_hex(8)
        self._count = 0
        # This process's slots in the fleet's set: all alike, so a request leaving
        # releases any one of them (in a task: leaving is synchronous).
        self._held: list[str] = []
        self._asking: asyncio.Lock | None = None
        self._to_release: list[str] = []
        self._releasing: asyncio.Task[None] | None = None

    @property
    def in_flight(self) -> int:
        return self._entered

    def enter_now(self) -> bool:
        """Never at once: the fleet's gate is asked over the network."""
        return False

    async def enter(self) -> None:
        await self._local.acquire()
        try:
            if self.rate is not None:
                await self._local_rate(self.rate)
            await self._enter_fleet()
        except BaseException:
            self._local.release()
            raise
        self._entered += 1

    def leave(self) -> None:
        self._entered -= 1
        self._local.release()
        if self._held:
            self._to_release.append(self._held.pop())
            if self._releasing is None or self._releasing.done():
                self._releasing = asyncio.ensure_future(self._release_all())

    async def __aenter__(self) -> None:
        await self.enter()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.leave()

    async def aclose(self) -> None:
        """Wait for the slots being released."""
        task, self._releasing = self._releasing, None
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def _local_rate(self, rate: float) -> None:
        # GCRA, as the fleet's: reserve the next start, sleep until it.
        interval = 1.0 / rate
        now = time.monotonic()
        start = max(now, self._local_tat - interval * (self.burst - 1))
        self._local_tat = max(self._local_tat, start) + interval
        if start > now:
            await asyncio.sleep(start - now)

    async def _enter_fleet(self) -> None:
        if self.fleet_rate is None and self.fleet_max_in_flight is None:
            return
        if self._asking is None:
            self._asking = asyncio.Lock()
        interval = 0.0 if self.fleet_rate is None else 1000.0 / self.fleet_rate
        tolerance = interval * (self.fleet_burst - 1)
        self._count += 1
        member = f"{self._prefix}:{self._count}"
        script = self._store.script("gate", GATE)
        keys = [self._store.key("rate"), self._store.key("inflight")]
        args = [
            repr(interval),
            repr(tolerance),
            str(self.fleet_max_in_flight or 0),
            member,
            str(int(self._keeper.ttl * 1000)),
        ]
        async with self._asking:  # the process's waiters ask Redis one at a time
            pause = 0.005
            while True:
                try:
                    answer = await self._store.run(
                        "the fleet's rate limit", lambda _: script(keys, args)
                    )
                except CoordinationError as exc:
                    self._store.fallback(exc, "the rate limit")
                    return
                if int(answer[0]) == 1:
                    break
                wait = max(float(answer[1]), 0.5) / 1000
                if text(answer[2]) == "full":
                    # Polled, growing: a slot comes back when a request ends anywhere.
                    wait = min(pause, wait)
                    pause = min(pause * 2, 0.1)
                # Just past the moment it conforms: Redis's clock, not ours, decides.
                await asyncio.sleep(wait + random.uniform(0, 0.002))
        if self.fleet_max_in_flight is not None:
            self._held.append(member)
            self._keeper.add_keeper(self._extend)

    async def _release_all(self) -> None:
        slots = self._store.key("inflight")
        while self._to_release:
            members, self._to_release = self._to_release, []

            async def release(r: Redis, members: list[str] = members) -> object:
                return await r.zrem(slots, *members)

            try:
                await self._store.run("releasing slots", release)
            except CoordinationError as exc:
                logger.debug("pecapi.fleet: %d slots expire by themselves (%s)", len(members), exc)

    async def _extend(self) -> bool:
        held = list(self._held)
        if not held:
            return False
        script = self._store.script("slots-extend", EXTEND_SLOTS)
        ttl = str(int(self._keeper.ttl * 1000))
        keys = [self._store.key("inflight")]
        await self._store.run("extending slots", lambda _: script(keys, [ttl, *held]))
        return True
