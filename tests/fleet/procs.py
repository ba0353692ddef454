"""What the fleet's tests run in other processes (``multiprocessing``, spawn context):
each function builds its own client and coordination, as a replica of a service would,
and talks to the test's emulator and redis-server over loopback."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any

from pecapi import PecClient, RetryPolicy
from pecapi.fleet import RedisCoordination
from pecapi.oauth import OAuthTokenProvider


def fleet(redis_url: str, **kwargs: Any) -> RedisCoordination:
    return RedisCoordination(redis_url, namespace="pecapi-test", **kwargs)


def many_lists(
    pec_url: str, redis_url: str, token: str, count: int, rate: float, cap: int | None
) -> int:
    """``count`` listings, all at once, through the fleet's limits; how many succeeded."""

    async def run() -> int:
        coordination = fleet(redis_url, rate_limit=rate, burst=1, max_in_flight=cap)
        async with PecClient(
            token, sandbox=True, base_url=pec_url, coordination=coordination
        ) as client:
            done = await asyncio.gather(*(client.mailboxes.list() for _ in range(count)))
        return len(done)

    return asyncio.run(run())


def many_lists_alone(pec_url: str, token: str, count: int, rate: float) -> int:
    """As :func:`many_lists` with the process's own rate limit only (no fleet)."""

    async def run() -> int:
        async with PecClient(token, sandbox=True, base_url=pec_url, rate_limit=rate) as client:
            done = await asyncio.gather(*(client.mailboxes.list() for _ in range(count)))
        return len(done)

    return asyncio.run(run())


def lists_with_oauth(
    pec_url: str, oauth_url: str, redis_url: str, email: str, key: str, scopes: list[str]
) -> int:
    """A few listings with the account's OAuth provider, the token shared by the fleet."""

    async def run() -> int:
        provider = OAuthTokenProvider(email, key, scopes=scopes, sandbox=True, base_url=oauth_url)
        async with (
            provider,
            PecClient(
                provider, sandbox=True, base_url=pec_url, coordination=fleet(redis_url)
            ) as client,
        ):
            done = await asyncio.gather(*(client.mailboxes.list() for _ in range(5)))
        return len(done)

    return asyncio.run(run())


def renew_when_told(
    pec_url: str, redis_url: str, token: str, box_id: str, go: Any, settle: float
) -> str:
    """Renew ``box_id`` once ``go`` (an Event) is set; the renewed mailbox's id."""

    async def run() -> str:
        policy = RetryPolicy(settle=settle, backoff=0.01, backoff_max=0.05)
        async with PecClient(
            token, sandbox=True, base_url=pec_url, retry=policy, coordination=fleet(redis_url)
        ) as client:
            await client.mailboxes.get(box_id)  # connected and warm before the race
            await asyncio.get_running_loop().run_in_executor(None, go.wait, 60)
            renewed = await client.mailboxes.renew(box_id)
        return renewed.id

    return asyncio.run(run())


def renew_without_fleet(pec_url: str, token: str, box_id: str, go: Any, settle: float) -> str:
    """As :func:`renew_when_told` with each process on its own (no coordination)."""

    async def run() -> str:
        policy = RetryPolicy(settle=settle, backoff=0.01, backoff_max=0.05)
        async with PecClient(token, sandbox=True, base_url=pec_url, retry=policy) as client:
            await client.mailboxes.get(box_id)
            await asyncio.get_running_loop().run_in_executor(None, go.wait, 60)
            renewed = await client.mailboxes.renew(box_id)
        return renewed.id

    return asyncio.run(run())


def hold_lease_forever(redis_url: str, name: str, ttl: float, held: Any) -> None:
    """Take the lease on ``name``, tell the parent, and wait to be killed."""

    async def run() -> None:
        coordination = fleet(redis_url, lease_ttl=ttl)
        async with coordination, coordination.lease(name):
            held.set()
            await asyncio.sleep(3600)

    asyncio.run(run())


def kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    time.sleep(0)


def lists_forever(pec_url: str, redis_url: str, token: str, cap: int, ttl: float) -> None:
    """``cap`` listings that the emulator holds: the fleet's slots, until killed."""

    async def run() -> None:
        coordination = fleet(redis_url, max_in_flight=cap, lease_ttl=ttl)
        async with PecClient(
            token, sandbox=True, base_url=pec_url, coordination=coordination
        ) as client:
            await asyncio.gather(*(client.mailboxes.list() for _ in range(cap)))

    asyncio.run(run())
