"""A write checks its target's lease before each attempt: a lease lost while the call was
settling (another process took the target) stops the resend, and nothing more is sent."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from pecapi import CoordinationError, PecClient, RetryPolicy
from pecapi.fleet import RedisCoordination
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, samples
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


async def test_a_lease_lost_while_waiting_for_a_slot_stops_the_request(redis_url: str) -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(Fault.latency(1.5), method="GET", path=f"/pec/{box_id}")
    fleet = RedisCoordination(redis_url, namespace="pecapi-test", lease_ttl=TTL)
    redis = aioredis.from_url(redis_url)
    address = "nuova@testcert.legalmail.it"
    try:
        async with (
            emulator.serve() as pec,
            PecClient(
                DEFAULT_TOKEN,
                sandbox=True,
                base_url=pec.url,
                retry=SETTLE,
                coordination=fleet,
                max_in_flight=1,
            ) as client,
        ):
            # A slow read holds the only slot; the registration takes its lease, passes
            # the check before its attempt, and waits for the slot.
            reading = asyncio.ensure_future(client.mailboxes.get(box_id))
            await wait_until(lambda: emulator.count("GET", f"/pec/{box_id}") == 1)
            registering = asyncio.ensure_future(
                client.mailboxes.register(samples.registration(address))
            )
            key = fleet._leases.key_of(f"register/{address}")
            for _ in range(500):
                if await redis.get(key) is not None:
                    break
                await asyncio.sleep(0.01)
            await redis.set(key, "another-process", px=60_000)  # taken while it waits
            with pytest.raises(CoordinationError, match=r"lease of register/\.\.\. was lost"):
                await registering
            assert (await reading).id == box_id
    finally:
        await redis.aclose()
    assert emulator.count("POST", "/pec") == 0  # checked again once the slot came: not sent
    assert emulator.charges() == []


@pytest.mark.parametrize("on_unavailable", ["fail", "local"])
async def test_a_lease_not_extended_stops_writes(redis_url: str, on_unavailable: str) -> None:
    from pecapi.fleet.leases import Lease, LeaseGuard

    fleet = RedisCoordination(
        redis_url,
        namespace="pecapi-test",
        lease_ttl=3.0,
        on_unavailable=on_unavailable,  # type: ignore[arg-type]
    )
    try:
        lease = Lease("pecapi-test:lease:x", "me")
        guard = LeaseGuard(lease, 3.0, fleet.store, "pec/1")
        guard.check()  # just extended
        lease.kept_at -= 2.5  # not extended for 2.5 s of 3 (Redis away, a stall)
        if on_unavailable == "fail":
            with pytest.raises(CoordinationError, match="not extended"):
                guard.check()
        else:
            guard.check()  # falling back to local: a warning while it may still hold
        lease.kept_at -= 1.0  # 3.5 s: expired for certain, whatever the fallback
        with pytest.raises(CoordinationError, match="not extended"):
            guard.check()
    finally:
        await fleet.aclose()
