"""A write checks its target's lease before each attempt: a lease lost while the call was
settling (another process took the target) stops the resend, and nothing more is sent."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from pecapi import CoordinationError, PecClient, RetryPolicy
from pecapi.fleet import RedisCoordination
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault
from tests.conftest import wait_until

TTL = 1.5  # the keeper extends every half second, and finds the lease gone
SETTLE = RetryPolicy(settle=2.5, backoff=0.01, backoff_max=0.05)


async def test_a_lease_lost_while_settling_stops_the_resend(redis_url: str) -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    # Never processed: the settle window shows no change, and the call would resend.
    emulator.faults.once(Fault.status(502, body="html"), method="GET", path="/pec/*/rinnovo")
    fleet = RedisCoordination(redis_url, namespace="pecapi-test", lease_ttl=TTL)
    redis = aioredis.from_url(redis_url)
    try:
        async with (
            emulator.serve() as pec,
            PecClient(
                DEFAULT_TOKEN, sandbox=True, base_url=pec.url, retry=SETTLE, coordination=fleet
            ) as client,
        ):
            renewal = asyncio.ensure_future(client.mailboxes.renew(box_id))
            await wait_until(lambda: emulator.count("GET", "/pec/*/rinnovo") == 1)
            # Another process takes the target (as after the lease expired under a
            # Redis outage or a frozen machine): the keeper finds it gone.
            key = fleet._leases.key_of(f"pec/{box_id}")
            assert await redis.get(key) is not None  # held by the call while it settles
            await redis.set(key, "another-process", px=60_000)
            with pytest.raises(CoordinationError, match=r"lease of pec/\.\.\. was lost"):
                await renewal
    finally:
        await redis.aclose()
    assert emulator.count("GET", "/pec/*/rinnovo") == 1  # not resent
    assert emulator.charges(operation="renewal") == []
