"""The verdict another process reached on an outcome reaches the process that made it.

Process A gives up on a renewal; process B adopts A's record, settles it and then renews.
A's own handle must then answer with B's verdict, never with A's own check against A's
old baseline (B's renewal would look like A's). Two coordinations in one test are two
processes: they share nothing but Redis.
"""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from pecapi import Mailbox, OutcomeUnknownError, RetryPolicy
from pecapi.fleet.pending_store import KEEP_FOR
from pecapi.testing import Emulator, Fault, samples
from tests.fleet.helpers import replica

GIVE_UP = RetryPolicy(settle=0.5, deadline=0.2, backoff=0.01, backoff_max=0.05)
PATIENT = RetryPolicy(settle=0.5, backoff=0.01, backoff_max=0.05)
RENEW = "/pec/*/rinnovo"


async def kept_verdicts(redis_url: str) -> dict[str, tuple[str, bool]]:
    """Each verdict kept: (verdict, whether it expires within the window and a week)."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    try:
        found: dict[str, tuple[str, bool]] = {}
        async for key in client.scan_iter(match="pecapi-test:settled:*"):
            ttl = await client.ttl(key)
            found[key] = (str(await client.get(key)), KEEP_FOR - 60 < ttl <= KEEP_FOR + 1)
        assert await client.keys("pecapi-test:pending:*") == []
        return found
    finally:
        await client.aclose()


async def test_a_renewal_another_process_found_not_applied_is_not_applied_here(
    redis_url: str,
) -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    # Not processed (an nginx 502 page): A cannot know that.
    emulator.faults.once(Fault.status(502, body="html"), method="GET", path=RENEW)
    async with (
        emulator.serve() as pec,
        replica(pec.url, redis_url, GIVE_UP) as a,
        replica(pec.url, redis_url, PATIENT) as b,
    ):
        with pytest.raises(OutcomeUnknownError) as info:
            await a.mailboxes.renew(box_id)
        handle = info.value.pending
        assert handle is not None
        # B settles A's renewal first (not applied, after its window), then renews.
        await b.mailboxes.renew(box_id)
        assert len(emulator.charges(operation="renewal", target_id=box_id)) == 1
        # B kept its verdict for A, for the window and a week: A's record is gone.
        verdicts = await kept_verdicts(redis_url)
        assert list(verdicts.values()) == [("not_applied", True)]
        # B's renewal is not A's.
        assert await a.reconcile(handle) is None
        assert handle.settled and handle.result is None
        assert a.pending_outcomes() == []
    assert emulator.count("GET", RENEW) == 2  # A's never resent


async def test_the_next_write_takes_the_verdict_of_the_earlier_one(redis_url: str) -> None:
    """A's next renewal settles A's earlier one first: with B's verdict, not A's check."""
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(Fault.status(502, body="html"), method="GET", path=RENEW)
    async with (
        emulator.serve() as pec,
        replica(pec.url, redis_url, GIVE_UP) as a,
        replica(pec.url, redis_url, PATIENT) as b,
    ):
        with pytest.raises(OutcomeUnknownError) as info:
            await a.mailboxes.renew(box_id)
        handle = info.value.pending
        assert handle is not None
        await b.mailboxes.renew(box_id)
        await a.mailboxes.renew(box_id)
        assert handle.settled and handle.result is None
    assert len(emulator.charges(operation="renewal", target_id=box_id)) == 2


async def test_a_renewal_another_process_found_applied_is_applied_here(redis_url: str) -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    # Committed 0.3 s after a 504: applied, but A's call gave up before it showed.
    emulator.faults.once(Fault.late(0.3), method="GET", path=RENEW)
    async with (
        emulator.serve() as pec,
        replica(pec.url, redis_url, GIVE_UP) as a,
        replica(pec.url, redis_url, PATIENT) as b,
    ):
        with pytest.raises(OutcomeUnknownError) as info:
            await a.mailboxes.renew(box_id)
        handle = info.value.pending
        assert handle is not None and not handle.settled
        await b.mailboxes.renew(box_id)
        mine = await a.reconcile(handle)
        assert isinstance(mine, Mailbox) and mine.id == box_id
    assert len(emulator.charges(operation="renewal", target_id=box_id)) == 2
    assert emulator.count("GET", RENEW) == 2


async def test_an_applied_verdict_stays_applied_when_the_change_no_longer_shows(
    redis_url: str,
) -> None:
    """A registration B found applied (a ``registrata`` mailbox at that address), then
    activated: A's own check (``registrata``) no longer finds it; A answers with the
    mailbox, never "not applied" (a registration sent again is refused, or paid twice)."""
    emulator = Emulator()
    address = "nuova.casella@testcert.legalmail.it"
    emulator.faults.once(Fault.late(0.3), method="POST", path="/pec")
    async with (
        emulator.serve() as pec,
        replica(pec.url, redis_url, GIVE_UP) as a,
        replica(pec.url, redis_url, PATIENT) as b,
    ):
        with pytest.raises(OutcomeUnknownError) as info:
            await a.mailboxes.register(samples.registration(address))
        handle = info.value.pending
        assert handle is not None
        (listed,) = await b._fleet._fleet.pending_outcomes(b)  # type: ignore[union-attr]
        registered = await b.reconcile(listed)
        assert isinstance(registered, Mailbox) and registered.id is not None
        boxes = emulator.resources.mailboxes
        boxes.activate(boxes[registered.id])  # the provider moves it on: "evasa"
        mine = await a.reconcile(handle)
        assert isinstance(mine, Mailbox) and mine.casella_pec == address
    assert len(emulator.charges(operation="register")) == 1
