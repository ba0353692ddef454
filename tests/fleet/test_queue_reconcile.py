"""A row that a dead worker left ``registering`` (its registration may have been in
flight): the worker that takes it over waits out the settle window from that record and
reads the account before registering anything."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from pecapi.fleet.journal_redis import RedisJournal
from pecapi.fleet.queue import default_journal_name
from pecapi.journal import ProvisionOutcome
from pecapi.testing import Emulator, RunningEmulator
from tests.cli.conftest import Run
from tests.fleet.queue_support import address, row, run_cli, workers, write_csv

__all__ = ["run_cli"]  # the fixture

SETTLE = 3.0
WORKER = ("--lease", "3", "--settle", str(SETTLE), "--concurrency", "4")


async def _left_registering(redis_url: str, journal: str, key: str) -> None:
    """What a worker killed just after sending the registration leaves: ``registering``."""
    book = RedisJournal(redis_url, journal)
    try:
        intent = ProvisionOutcome(
            key=key, status="registering", line=2, steps=("check: available", "register: sent")
        )
        await book.write(intent, final=False)
    finally:
        await book.finish()


async def _provision(run_cli: Run, redis_url: str, source: Path) -> dict[str, Any]:
    result = await run_cli("--json", "provision", str(source), "--queue", redis_url)
    events = [json.loads(line) for line in result.out.splitlines()]
    assert events[-1]["event"] == "summary", result.err
    outcomes = [e for e in events if e["event"] == "outcome"]
    assert len(outcomes) == 1
    outcome: dict[str, Any] = outcomes[0]
    return outcome


async def test_a_late_commit_of_a_dead_workers_registration_is_taken_over(
    run_cli: Run,
    pec_server: RunningEmulator,
    pec_emulator: Emulator,
    redis_url: str,
    tmp_path: Path,
) -> None:
    key = address(1)
    source = write_csv(tmp_path, [row(key)])

    async def late_commit() -> None:
        # the API commits the dead worker's registration a second later: inside the
        # settle window, after a worker that did not wait would have found it free
        await asyncio.sleep(1.0)
        pec_emulator.seed_mailbox(key, stato="registrata")

    async with workers(redis_url, pec_server.url, 1, *WORKER):
        await _left_registering(redis_url, default_journal_name(source), key)
        committed = asyncio.ensure_future(late_commit())
        outcome = await _provision(run_cli, redis_url, source)
        await committed
    assert outcome["status"] == "activated", outcome
    assert "found on the account: registrata" in outcome["steps"]
    assert pec_emulator.count("POST", "/pec") == 0  # never registered again
    assert [m["casella_pec"] for m in pec_emulator.mailboxes.values()] == [key]


async def test_a_registration_that_never_arrived_is_sent_once_after_the_window(
    run_cli: Run,
    pec_server: RunningEmulator,
    pec_emulator: Emulator,
    redis_url: str,
    tmp_path: Path,
) -> None:
    key = address(2)
    source = write_csv(tmp_path, [row(key)])
    await _left_registering(redis_url, default_journal_name(source), key)
    async with workers(redis_url, pec_server.url, 1, *WORKER):
        outcome = await _provision(run_cli, redis_url, source)
    assert outcome["status"] == "activated", outcome
    assert "register: ok" in outcome["steps"]
    assert pec_emulator.count("POST", "/pec") == 1
    assert len(pec_emulator.charges(operation="register")) == 1
