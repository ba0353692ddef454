"""A process killed (SIGKILL) while its renewal is on the wire leaves no pending record,
and its lease expires before its settle window ends. The next holder of the mailbox's
lease finds the dead holder's in-flight mark and waits out that window before its own
write: the dead process's late commit cannot be taken for the next process's renewal."""

from __future__ import annotations

import asyncio
from typing import Any

from pecapi import PecClient, RetryPolicy
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault

from .helpers import SPAWN, in_processes
from .procs import fleet, kill, renew_when_told
from .test_renew_race import wait_for_gets

LATE = 2.0  # the emulator commits the killed process's renewal this long after receiving it
SETTLE = 3.0
TTL = 1.0  # the killed process's lease expires this long after it died, before LATE


def renew_then_die(pec_url: str, redis_url: str, token: str, box_id: str, go: Any) -> None:
    """Renew ``box_id`` once ``go`` is set, with a short lease; the test kills it meanwhile."""

    async def run() -> None:
        policy = RetryPolicy(settle=SETTLE, backoff=0.01, backoff_max=0.05)
        coordination = fleet(redis_url, lease_ttl=TTL)
        async with PecClient(
            token, sandbox=True, base_url=pec_url, retry=policy, coordination=coordination
        ) as client:
            await client.mailboxes.get(box_id)  # connected and warm
            await asyncio.get_running_loop().run_in_executor(None, go.wait, 60)
            await client.mailboxes.renew(box_id)

    asyncio.run(run())


async def test_a_renewal_killed_on_the_wire_is_waited_out(redis_url: str) -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    before = emulator.mailboxes[box_id]["timestamp"]["scadenza"]
    # The first renewal is held unanswered and committed LATE seconds after it arrived.
    emulator.faults.once(Fault.late(LATE, reply="hang"), method="GET", path="/pec/*/rinnovo")
    manager = SPAWN.Manager()
    try:
        first_go, second_go = manager.Event(), manager.Event()
        async with emulator.serve() as pec:
            dying = SPAWN.Process(
                target=renew_then_die, args=(pec.url, redis_url, DEFAULT_TOKEN, box_id, first_go)
            )
            dying.start()
            try:
                second = (
                    renew_when_told,
                    (pec.url, redis_url, DEFAULT_TOKEN, box_id, second_go, SETTLE),
                )
                renewing = asyncio.ensure_future(in_processes([second]))
                await wait_for_gets(emulator, 2)  # both processes up and warm
                first_go.set()
                await wait_for_renewals(emulator, 1)
                assert dying.pid is not None
                kill(dying.pid)  # SIGKILL while its renewal is held: nothing recorded
                # The second process's own answer is lost too (not processed), so it
                # settles its renewal by reading the account.
                emulator.faults.once(
                    Fault.status(502, body="html"), method="GET", path="/pec/*/rinnovo"
                )
                second_go.set()
                results = await renewing
                await emulator.drain_late()
            finally:
                dying.kill()
                dying.join(10)
    finally:
        manager.shutdown()
    assert dying.exitcode == -9
    assert results == [box_id]
    assert emulator.faults.counts["late"] == 1
    # The dead process's renewal (committed late) and the second process's: both charged.
    assert len(emulator.charges(operation="renewal", target_id=box_id)) == 2
    after = emulator.mailboxes[box_id]["timestamp"]["scadenza"]
    assert after - before >= 2 * 365 * 86400
    # The killed one, the second's lost one, and its resend once settled as not applied.
    assert emulator.count("GET", "/pec/*/rinnovo") == 3


async def wait_for_renewals(emulator: Emulator, count: int) -> None:
    for _ in range(6000):
        if emulator.count("GET", "/pec/*/rinnovo") >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the renewal was not sent")
