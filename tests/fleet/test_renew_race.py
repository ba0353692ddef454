"""Two processes renew the same mailbox at once, one of them meeting a fault: with the
fleet's lease on the mailbox each reconciliation sees its own change only, so both
renewals are applied and charged and both calls return the renewed mailbox."""

from __future__ import annotations

import asyncio

import pytest

from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault

from .helpers import SPAWN, in_processes
from .procs import renew_when_told

LATE = 0.3  # the emulator commits a late-faulted renewal this long after its 504
SETTLE = 1.5


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(Fault.late(LATE), id="late-504-committed"),
        pytest.param(Fault.status(502, body="html"), id="502-not-processed"),
    ],
)
async def test_two_processes_renew_one_mailbox(redis_url: str, fault: Fault) -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    before = emulator.mailboxes[box_id]["timestamp"]["scadenza"]
    emulator.faults.once(fault, method="GET", path="/pec/*/rinnovo")
    go = SPAWN.Manager()
    try:
        event = go.Event()
        async with emulator.serve() as pec:
            call = (renew_when_told, (pec.url, redis_url, DEFAULT_TOKEN, box_id, event, SETTLE))
            racing = asyncio.ensure_future(in_processes([call, call]))
            await asyncio.sleep(0)
            # Both processes are up and connected before the race starts.
            await wait_for_gets(emulator, 2)
            event.set()
            results = await racing
            await emulator.drain_late()
    finally:
        go.shutdown()
    assert results == [box_id, box_id]
    assert emulator.faults.counts[fault.kind] == 1
    assert len(emulator.charges(operation="renewal", target_id=box_id)) == 2
    after = emulator.mailboxes[box_id]["timestamp"]["scadenza"]
    # Two years on (each process on its own: both calls return, one renewal is charged).
    assert after - before >= 2 * 365 * 86400
    assert emulator.count("GET", "/pec/*/rinnovo") == (2 if fault.kind == "late" else 3)


async def wait_for_gets(emulator: Emulator, count: int) -> None:
    for _ in range(6000):
        if emulator.count("GET", "/pec/*") - emulator.count("GET", "/pec/*/*") >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the processes did not start")
