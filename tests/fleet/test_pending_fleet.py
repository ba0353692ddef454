"""Outcomes left unsettled by one process are seen and settled by the others, never
resent blindly. Two coordinations in one test are two processes: they share nothing but
Redis."""

from __future__ import annotations

import pytest

from pecapi import Mailbox, OutcomeUnknownError, RetryPolicy
from pecapi.testing import Emulator, Fault, samples
from tests.fleet.helpers import fleet_of, replica

LATE = 1.0  # the renewal is committed this long after its 504
GIVE_UP = RetryPolicy(settle=4.0, deadline=0.4, backoff=0.01, backoff_max=0.05)
PATIENT = RetryPolicy(settle=4.0, backoff=0.01, backoff_max=0.05)


async def test_a_write_settles_another_process_s_pending_outcome_first(redis_url: str) -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(Fault.late(LATE), method="GET", path="/pec/*/rinnovo")
    async with (
        emulator.serve() as pec,
        replica(pec.url, redis_url, GIVE_UP) as a,
        replica(pec.url, redis_url, PATIENT) as b,
    ):
        with pytest.raises(OutcomeUnknownError) as info:
            await a.mailboxes.renew(box_id)
        assert info.value.pending is not None
        listed = await fleet_of(b).pending_outcomes(b)
        assert [(p.operation, p.target, p.settled) for p in listed] == [
            ("mailboxes.renew", f"pec/{box_id}", False)
        ]
        # b's renewal waits for a's to show (it reads the account), then sends its own.
        renewed = await b.mailboxes.renew(box_id)
        assert isinstance(renewed, Mailbox) and renewed.id == box_id
        assert emulator.count("GET", "/pec/*/rinnovo") == 2  # a's was never resent
        assert len(emulator.charges(operation="renewal", target_id=box_id)) == 2
        assert await fleet_of(b).pending_outcomes(b) == []  # settled, for the whole fleet
        # a still has its own, and settles it by reading too.
        mine = await a.reconcile(info.value.pending)
        assert isinstance(mine, Mailbox)
        assert emulator.count("GET", "/pec/*/rinnovo") == 2


async def test_another_process_reconciles_a_listed_outcome(redis_url: str) -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(Fault.late(LATE), method="GET", path="/pec/*/rinnovo")
    async with (
        emulator.serve() as pec,
        replica(pec.url, redis_url, GIVE_UP) as a,
        replica(pec.url, redis_url, PATIENT) as b,
    ):
        with pytest.raises(OutcomeUnknownError):
            await a.mailboxes.renew(box_id)
        (pending,) = await fleet_of(b).pending_outcomes(b)
        assert "another process" in str(pending.cause)  # its type only, recorded
        renewed = await b.reconcile(pending)
        assert isinstance(renewed, Mailbox) and renewed.id == box_id
        assert pending.settled
        assert await fleet_of(a).pending_outcomes(a) == a.pending_outcomes()  # a's own only
        assert await fleet_of(b).pending_outcomes(b) == []
    assert emulator.count("GET", "/pec/*/rinnovo") == 1
    assert len(emulator.charges(operation="renewal", target_id=box_id)) == 1


async def test_a_write_that_failed_unprocessed_is_not_applied_for_the_fleet(
    redis_url: str,
) -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(Fault.status(502, body="html"), method="GET", path="/pec/*/rinnovo")
    short = RetryPolicy(settle=0.5, deadline=0.2, backoff=0.01, backoff_max=0.05)
    async with (
        emulator.serve() as pec,
        replica(pec.url, redis_url, short) as a,
        replica(pec.url, redis_url, PATIENT) as b,
    ):
        with pytest.raises(OutcomeUnknownError):
            await a.mailboxes.renew(box_id)
        (pending,) = await fleet_of(b).pending_outcomes(b)
        assert await b.reconcile(pending) is None  # its window passed with no change
        assert await fleet_of(b).pending_outcomes(b) == []
    assert emulator.charges(operation="renewal") == []


async def test_an_outcome_another_process_cannot_check_is_waited_out(redis_url: str) -> None:
    """A type change's check is its own call's: another process waits its window out
    before writing on the mailbox, and leaves its record to the process that made it."""
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(Fault.status(502, body="html"), method="PATCH", path="/pec/*/*")
    short = RetryPolicy(settle=1.0, deadline=0.2, backoff=0.01, backoff_max=0.05)
    async with (
        emulator.serve() as pec,
        replica(pec.url, redis_url, short) as a,
        replica(pec.url, redis_url, PATIENT) as b,
    ):
        with pytest.raises(OutcomeUnknownError) as info:
            await a.mailboxes.change_type(box_id, "GOLD")
        (listed,) = await fleet_of(b).pending_outcomes(b)
        with pytest.raises(OutcomeUnknownError, match="another process"):
            await b.reconcile(listed)
        changes = emulator.count("PATCH", "/pec/*/*")
        renewed = await b.mailboxes.renew(box_id)  # after a's window: it cannot land now
        assert renewed.id == box_id
        assert emulator.count("PATCH", "/pec/*/*") == changes  # a's never resent
        assert len(await fleet_of(b).pending_outcomes(b)) == 1  # a's, for a to settle
        assert info.value.pending is not None
        assert await a.reconcile(info.value.pending) is None  # a's own check: not applied
        assert await fleet_of(b).pending_outcomes(b) == []


async def test_another_process_finds_a_registration_left_unknown(redis_url: str) -> None:
    """A registration's check (is the address taken, by a mailbox still ``registrata``?)
    is rebuilt from its target in the other process."""
    emulator = Emulator()
    address = "nuova.casella@testcert.legalmail.it"
    emulator.faults.once(Fault.late(LATE), method="POST", path="/pec")
    async with (
        emulator.serve() as pec,
        replica(pec.url, redis_url, GIVE_UP) as a,
        replica(pec.url, redis_url, PATIENT) as b,
    ):
        with pytest.raises(OutcomeUnknownError):
            await a.mailboxes.register(samples.registration(address))
        (pending,) = await fleet_of(b).pending_outcomes(b)
        assert (pending.operation, pending.target) == ("mailboxes.register", f"register/{address}")
        registered = await b.reconcile(pending)  # waits for the late commit to show
        assert isinstance(registered, Mailbox) and registered.casella_pec == address
        assert await fleet_of(b).pending_outcomes(b) == []
    assert emulator.count("POST", "/pec") == 1
    assert len(emulator.charges(operation="register")) == 1
