"""One rate limit and one in-flight cap for the account, whatever the number of processes:
measured on the emulator's side (when requests arrive, how many are in it at once)."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from pecapi import PecClient
from pecapi.fleet import RedisCoordination
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault

from .helpers import SPAWN, in_processes, recorded
from .procs import kill, lists_forever, many_lists, many_lists_alone

PROCESSES = 3
EACH = 30
RATE = 40.0  # requests per second, for the whole account
WINDOW = 0.5
# GCRA with a burst of 1: at most RATE * WINDOW + 1 starts in any window; 2 more for the
# loopback's jitter between a start and its arrival.
MOST_PER_WINDOW = int(RATE * WINDOW) + 1 + 2


async def test_processes_share_one_rate_limit(redis_url: str) -> None:
    emulator = Emulator()
    async with recorded(emulator) as (url, log):
        done = await in_processes(
            [(many_lists, (url, redis_url, DEFAULT_TOKEN, EACH, RATE, None))] * PROCESSES
        )
    assert done == [EACH] * PROCESSES
    assert len(log.arrivals) == PROCESSES * EACH
    # Each process alone at RATE would put 3 * RATE * WINDOW = 60 in a window.
    assert log.most_in_window(WINDOW) <= MOST_PER_WINDOW
    spread = max(log.arrivals) - min(log.arrivals)
    assert (len(log.arrivals) - 1) / spread <= RATE * 1.1  # the account's overall rate


async def test_without_the_fleet_the_account_sees_each_process_s_rate() -> None:
    """The measure above can fail: each process at RATE on its own is PROCESSES x RATE."""
    emulator = Emulator()
    async with recorded(emulator) as (url, log):
        await in_processes([(many_lists_alone, (url, DEFAULT_TOKEN, EACH, RATE))] * PROCESSES)
    assert log.most_in_window(WINDOW) > MOST_PER_WINDOW


async def test_processes_share_one_in_flight_cap(redis_url: str) -> None:
    emulator = Emulator(latency=0.05)
    async with recorded(emulator) as (url, log):
        done = await in_processes(
            [(many_lists, (url, redis_url, DEFAULT_TOKEN, 12, 1000.0, 2))] * PROCESSES
        )
    assert done == [12] * PROCESSES
    assert log.most_in_flight <= 2  # each process alone would have 12 in flight
    assert log.most_in_flight == 2  # and the cap is used, not just a queue of one


async def test_the_slots_of_a_killed_process_come_back(redis_url: str) -> None:
    emulator = Emulator()
    # The dying process's two requests are held by the emulator (never answered in time).
    emulator.faults.next(2, Fault.latency(60), method="GET", path="/pec")
    async with emulator.serve() as pec:
        holder = SPAWN.Process(
            target=lists_forever, args=(pec.url, redis_url, DEFAULT_TOKEN, 2, 1.5)
        )
        holder.start()
        try:
            for _ in range(6000):
                if emulator.count("GET", "/pec") == 2:
                    break
                await asyncio.sleep(0.01)
            store = aioredis.from_url(redis_url)
            try:
                assert await store.zcard("pecapi-test:inflight") == 2  # the cap, all taken
            finally:
                await store.aclose()
            assert holder.pid is not None
            kill(holder.pid)
            fleet = RedisCoordination(
                redis_url, namespace="pecapi-test", max_in_flight=2, lease_ttl=1.5
            )
            async with PecClient(
                DEFAULT_TOKEN, sandbox=True, base_url=pec.url, coordination=fleet
            ) as client:
                # Gets a slot once the dead process's expire (no longer extended).
                assert await asyncio.wait_for(client.mailboxes.list(), 20) == []
        finally:
            holder.kill()
            holder.join(10)
    assert emulator.count("GET", "/pec") == 3
