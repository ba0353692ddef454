"""Leases: one holder across the fleet, extended while held, lost when the holder dies."""

from __future__ import annotations

import asyncio

import pytest

from pecapi import PecTimeoutError
from pecapi.fleet import RedisCoordination

from .helpers import SPAWN
from .procs import hold_lease_forever, kill


def fleet(redis_url: str, ttl: float = 15.0) -> RedisCoordination:
    return RedisCoordination(redis_url, namespace="pecapi-test", lease_ttl=ttl)


async def test_a_lease_has_one_holder_in_the_fleet(redis_url: str) -> None:
    async with fleet(redis_url) as one, fleet(redis_url) as other:
        order: list[str] = []

        async def hold(coordination: RedisCoordination, name: str) -> None:
            async with coordination.lease("pec/1"):
                order.append(f"{name} in")
                await asyncio.sleep(0.05)
                order.append(f"{name} out")

        await asyncio.gather(hold(one, "a"), hold(other, "b"), hold(one, "c"))
    # Never two inside at once: each "in" is followed by its own "out".
    assert [entry.split()[1] for entry in order] == ["in", "out"] * 3
    assert all(order[i].split()[0] == order[i + 1].split()[0] for i in range(0, 6, 2))


async def test_waiting_past_the_timeout_raises_and_sends_nothing(redis_url: str) -> None:
    async with fleet(redis_url) as one, fleet(redis_url) as other, one.lease("pec/1"):
        with pytest.raises(PecTimeoutError) as info:
            async with other.lease("pec/1", timeout=0.1):
                pass
        assert info.value.request_sent is False


async def test_a_lease_outlives_its_ttl_while_held(redis_url: str) -> None:
    # ttl 2: a loaded machine's pauses of a second must not lose a live holder's lease
    async with fleet(redis_url, ttl=2.0) as one, fleet(redis_url, ttl=2.0) as other:
        async with one.lease("pec/1"):
            await asyncio.sleep(5.0)  # past its ttl: extended every third of it
            with pytest.raises(PecTimeoutError):
                async with other.lease("pec/1", timeout=0.2):
                    pass
        async with other.lease("pec/1", timeout=1.0):
            pass  # released at once when its holder lets go


async def test_the_lease_of_a_killed_holder_expires(redis_url: str) -> None:
    held = SPAWN.Event()
    # A ttl long enough that a loaded machine's pauses do not lose the live holder's lease.
    holder = SPAWN.Process(target=hold_lease_forever, args=(redis_url, "pec/42", 3.0, held))
    holder.start()
    try:
        assert await asyncio.get_running_loop().run_in_executor(None, held.wait, 60)
        async with fleet(redis_url, ttl=3.0) as other:
            with pytest.raises(PecTimeoutError):  # alive: held
                async with other.lease("pec/42", timeout=1.0):
                    pass
            assert holder.pid is not None
            kill(holder.pid)  # SIGKILL: nothing released
            async with other.lease("pec/42", timeout=20.0):
                pass  # taken once the dead holder's lease expired
    finally:
        holder.kill()
        holder.join(10)
    assert holder.exitcode == -9
