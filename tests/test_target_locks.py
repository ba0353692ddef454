"""The per-target locks that keep two paid writes on one mailbox apart: a call cancelled
while it waits never goes on to write, even when the lock reaches it in the same turn."""

from __future__ import annotations

import asyncio

from pecapi.transport.pending import TargetLocks


async def test_a_waiter_cancelled_as_the_lock_reaches_it_does_not_write() -> None:
    locks = TargetLocks()
    sent: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("register/a@x.it", 10):
            await release.wait()

    async def writer() -> None:
        async with locks.hold("register/a@x.it", 10):  # a deadline: it waits with a bound
            sent.append("paid write sent")

    first = asyncio.ensure_future(holder())
    await asyncio.sleep(0)
    second = asyncio.ensure_future(writer())
    await asyncio.sleep(0)
    release.set()
    await asyncio.sleep(0)  # the holder lets go: the lock is handed to the writer...
    second.cancel()  # ... and in that same turn the writer's call is cancelled
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(outcomes[1], asyncio.CancelledError)
    assert sent == []
    assert len(locks) == 0  # nothing left held


async def test_a_fast_holder_and_waiters_take_turns() -> None:
    locks = TargetLocks()
    inside: list[int] = []
    order: list[int] = []

    async def waiter(n: int) -> None:
        async with locks.hold("pec/1", 5):
            inside.append(n)
            assert len(inside) == 1
            order.append(n)
            await asyncio.sleep(0)
            inside.remove(n)

    assert locks.enter_now("pec/1")
    assert not locks.enter_now("pec/1")  # held: the next one waits in hold()
    tasks = [asyncio.ensure_future(waiter(n)) for n in range(3)]
    await asyncio.sleep(0.01)
    assert order == []  # nobody got in while the first holds it
    locks.leave("pec/1")
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert len(locks) == 0
    assert locks.enter_now("pec/1")  # free again
    locks.leave("pec/1")


async def test_a_waiter_whose_wait_is_cancelled_from_outside_does_not_go_in() -> None:
    # As when a loop shutting down cancels every task, the waiter's internal one too.
    locks = TargetLocks()
    inside: list[str] = []
    release = asyncio.Event()

    async def holder() -> None:
        async with locks.hold("pec/1", 10):
            inside.append("holder")
            await release.wait()
            inside.remove("holder")

    async def writer() -> None:
        async with locks.hold("pec/1", 10):
            inside.append("writer")

    first = asyncio.ensure_future(holder())
    await asyncio.sleep(0)
    second = asyncio.ensure_future(writer())
    await asyncio.sleep(0.01)
    waits = [t for t in asyncio.all_tasks() if "Lock.acquire" in repr(t.get_coro())]
    assert len(waits) == 1
    waits[0].cancel()
    await asyncio.sleep(0.01)
    assert inside == ["holder"]  # the writer did not go in beside the holder
    release.set()
    outcomes = await asyncio.gather(first, second, return_exceptions=True)
    assert outcomes[0] is None
    assert isinstance(outcomes[1], asyncio.CancelledError)
    assert len(locks) == 0
