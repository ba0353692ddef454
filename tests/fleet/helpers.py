"""The emulator served with a record of when each request arrived and left, on the
server's clock: the fleet's limits are measured where the account sees them."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from aiohttp import web

from pecapi import PecClient, RetryPolicy
from pecapi.fleet import RedisCoordination
from pecapi.testing import DEFAULT_TOKEN, Emulator

T = TypeVar("T")

SPAWN = multiprocessing.get_context("spawn")


@dataclass
class ServerLog:
    """Arrival times (server's monotonic clock) and the most requests in flight at once."""

    arrivals: list[float] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0

    def most_in_window(self, seconds: float) -> int:
        """The most arrivals within any window of ``seconds``."""
        times = sorted(self.arrivals)
        most, first = 0, 0
        for last, moment in enumerate(times):
            while moment - times[first] >= seconds:
                first += 1
            most = max(most, last - first + 1)
        return most


@asynccontextmanager
async def recorded(emulator: Emulator) -> AsyncIterator[tuple[str, ServerLog]]:
    """Serve ``emulator`` on loopback, recording every request; yields (url, log)."""
    log = ServerLog()

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        log.arrivals.append(time.monotonic())
        log.in_flight += 1
        log.most_in_flight = max(log.most_in_flight, log.in_flight)
        try:
            return await handler(request)
        finally:
            log.in_flight -= 1

    app = emulator.app()
    app.middlewares.append(record)
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}", log
    finally:
        await runner.cleanup()


async def in_processes(calls: list[tuple[Callable[..., T], tuple[Any, ...]]]) -> list[T]:
    """Run each ``(function, args)`` in a process of its own (spawned), all at once, while
    this loop keeps serving the emulator."""
    loop = asyncio.get_running_loop()
    with ProcessPoolExecutor(len(calls), mp_context=SPAWN) as pool:
        futures = [loop.run_in_executor(pool, fn, *args) for fn, args in calls]
        return list(await asyncio.gather(*futures))


@asynccontextmanager
async def replica(url: str, redis_url: str, policy: RetryPolicy) -> AsyncIterator[PecClient]:
    """One process of a fleet: a client on its own coordination (two in one test are two
    processes: they share nothing but Redis)."""
    fleet = RedisCoordination(redis_url, namespace="pecapi-test")
    async with PecClient(
        DEFAULT_TOKEN, sandbox=True, base_url=url, retry=policy, coordination=fleet
    ) as client:
        yield client


def fleet_of(client: PecClient) -> RedisCoordination:
    fleet = client._fleet
    assert fleet is not None
    coordination = fleet._fleet  # type: ignore[attr-defined]
    assert isinstance(coordination, RedisCoordination)
    return coordination
