"""The proof: 4 worker processes provision 2,000 mailboxes under 30 % faults (late
processing among them) while one of them is killed with SIGKILL midway; every mailbox is
registered and charged exactly once, every row has one outcome, the journal is complete.

The emulator runs in the test's loop on loopback, its fault plan and its ledger the
test's; the workers are ``python -m pecapi worker`` processes; Redis is a private
``redis-server``.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter
from decimal import Decimal
from pathlib import Path

from pecapi.fleet.journal_redis import FleetKeys, RedisJournal, connect
from pecapi.fleet.queue import default_journal_name
from pecapi.testing import Emulator, Fault
from tests.cli.conftest import Run
from tests.fleet.queue_support import address, row, run_cli, workers, write_csv

__all__ = ["run_cli"]  # the fixture

ROWS = 2000
# What test_exactly_once throws at every paid kind: late commits (answered 504, dropped,
# or never answered until the commit), writes committed and not answered, errors.
FAULTS = [
    Fault.late(0.2),
    Fault.late(0.3, reply="drop"),
    Fault.late(0.8, reply="hang"),
    Fault.drop_after(),
    Fault.drop_before(),
    Fault.status(500),
    Fault.status(502, body="html"),
    Fault.status(503, body="html"),
    Fault.status(429, retry_after=0),
    Fault.truncated_body(),
    Fault.malformed_json(),
]
# Short waits (the emulator's lateness is under a second), a settle window longer than it.
WORKER = (
    "--lease", "3", "--settle", "1.5", "--concurrency", "24", "--items", "2", "--retries", "12",
)  # fmt: skip


async def _kill_midway(redis_url: str, journal: str, victim: asyncio.subprocess.Process) -> int:
    """SIGKILL ``victim`` once 30 % of the rows are done; the rows done then."""
    redis = connect(redis_url)
    keys = FleetKeys()
    try:
        while True:
            job = await redis.get(keys.current(journal))
            done = await redis.hlen(keys.done(job.decode())) if job else 0
            if done >= ROWS * 3 // 10:
                victim.send_signal(signal.SIGKILL)
                return int(done)
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()


async def test_four_workers_one_killed_every_mailbox_charged_once(
    run_cli: Run, redis_url: str, tmp_path: Path
) -> None:
    emulator = Emulator(credit=Decimal("10000000"), seed=5)
    source = write_csv(tmp_path, [row(address(i)) for i in range(ROWS)])
    journal = default_journal_name(source)
    async with emulator.serve() as server, workers(redis_url, server.url, 4, *WORKER) as fleet:
        emulator.faults.rate(0.3, FAULTS, seed=11)
        follow = asyncio.ensure_future(
            run_cli("--json", "provision", str(source), "--queue", redis_url, "--chunk", "50")
        )
        killed_at = await _kill_midway(redis_url, journal, fleet[0].process)
        result = await follow
        await emulator.drain_late()
        emulator.faults.clear()
        for worker in fleet[1:]:
            worker.signal(signal.SIGTERM)
        codes = [await worker.wait() for worker in fleet]

    assert codes == [-signal.SIGKILL, 0, 0, 0], [w.stderr[-2000:] for w in fleet]
    assert ROWS * 3 // 10 <= killed_at < ROWS
    faulted = emulator.faults.counts
    assert faulted["late"] >= 200 and faulted["drop_after"] >= 50, faulted

    events = [json.loads(line) for line in result.out.splitlines()]
    summary = events[-1]
    assert summary["event"] == "summary", result.err[-3000:]
    outcomes = [e for e in events if e["event"] == "outcome"]
    assert sorted(e["line"] for e in outcomes) == list(range(2, ROWS + 2))  # each row once
    assert summary["statuses"] == {"activated": ROWS}, summary
    assert result.code == 0

    # the ledger: one registration charged per address, every address registered
    per_mailbox = Counter(c.target_id for c in emulator.charges(operation="register"))
    assert len(per_mailbox) == ROWS and set(per_mailbox.values()) == {1}
    addresses = Counter(m["casella_pec"] for m in emulator.mailboxes.values())
    assert len(addresses) == ROWS and set(addresses.values()) == {1}
    assert all(m["stato"] == "in_evasione" for m in emulator.mailboxes.values())

    # the journal: every row complete, with the mailbox the account has for its address
    book = RedisJournal(redis_url, journal)
    try:
        records = await book.read()
    finally:
        await book.finish()
    assert len(records) == ROWS
    assert {r["status"] for r in records.values()} == {"activated"}
    by_address = {m["casella_pec"]: box_id for box_id, m in emulator.mailboxes.items()}
    assert all(r["mailbox_id"] == by_address[key] for key, r in records.items())
