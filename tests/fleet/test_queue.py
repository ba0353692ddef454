"""``pecapi provision FILE.csv --queue``: the rows go on the queue, ``pecapi worker``
processes do them, and the command follows the job (JSON lines, progress)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pecapi.cli.csvinput import read_csv
from pecapi.cli.exits import ExitCode
from pecapi.cli.queued import redact
from pecapi.fleet.journal_redis import connect
from pecapi.fleet.queue import CsvSource, ProvisionQueue, default_journal_name
from pecapi.testing import Emulator, RunningEmulator
from tests.cli.conftest import Run
from tests.fleet.queue_support import address, row, run_cli, workers, write_csv

__all__ = ["run_cli"]  # the fixture

WORKER = ("--lease", "3", "--settle", "1", "--concurrency", "8", "--retries", "12")


async def test_a_csv_on_the_queue_is_done_by_workers_and_followed(
    run_cli: Run,
    pec_server: RunningEmulator,
    pec_emulator: Emulator,
    redis_url: str,
    tmp_path: Path,
) -> None:
    rows = [row(address(i)) for i in range(30)]
    rows.insert(4, row(address(2)))  # the same address again: a duplicate
    rows.insert(9, row("bad@testcert.legalmail.it", tipo="platinum"))  # invalid
    source = write_csv(tmp_path, rows)
    async with workers(redis_url, pec_server.url, 2, *WORKER):
        result = await run_cli(
            "--json", "provision", str(source), "--queue", redis_url, "--chunk", "7"
        )
    events = [json.loads(line) for line in result.out.splitlines()]
    summary = events[-1]
    assert summary["event"] == "summary", result.err
    assert summary["statuses"] == {"activated": 30, "duplicate": 1, "invalid": 1}
    assert summary["total"] == 32 and summary["remaining"] == 0
    assert result.code == ExitCode.FAILURE  # the duplicate and the invalid row
    outcomes = [e for e in events if e["event"] == "outcome"]
    assert sorted(e["line"] for e in outcomes) == list(range(2, 34))  # each row once
    bad = next(e for e in outcomes if e["status"] == "invalid")
    assert bad["error"]["field"] == "tipo_casella" and bad["line"] == 11
    charged = [c.target_id for c in pec_emulator.charges(operation="register")]
    assert len(charged) == len(set(charged)) == 30
    assert all(m["stato"] == "in_evasione" for m in pec_emulator.mailboxes.values())

    # the same command again: a new job over the same journal skips what is done
    again = await _rerun(run_cli, pec_server, redis_url, source)
    assert again["statuses"] == {"skipped": 30, "duplicate": 1, "invalid": 1}
    assert len(pec_emulator.charges(operation="register")) == 30


async def _rerun(
    run_cli: Run, pec_server: RunningEmulator, redis_url: str, source: Path
) -> dict[str, Any]:
    async with workers(redis_url, pec_server.url, 1, *WORKER):
        result = await run_cli("--json", "provision", str(source), "--queue", redis_url)
    summary: dict[str, Any] = json.loads(result.out.splitlines()[-1])
    return summary


async def test_following_without_json_prints_problems_and_a_summary(
    run_cli: Run, pec_server: RunningEmulator, redis_url: str, tmp_path: Path
) -> None:
    rows = [row(address(i, "text")) for i in range(3)]
    rows.append(row("bad@testcert.legalmail.it", tipo="platinum"))
    source = write_csv(tmp_path, rows)
    async with workers(redis_url, pec_server.url, 1, *WORKER):
        result = await run_cli("provision", str(source), "--queue", redis_url)
    assert result.code == ExitCode.FAILURE
    assert "4 rows: 3 activated, 1 invalid" in result.out
    assert "line 5: bad@testcert.legalmail.it: invalid: tipo_casella" in result.err
    assert f"journal in Redis: {source.resolve()}" in result.out
    assert "run again to resume: pecapi provision" in result.out


def test_a_password_in_the_queue_url_is_never_printed() -> None:
    command = "pecapi provision p.csv --queue redis://:s3cret@queue.internal:6379/0"
    assert redact(command) == "pecapi provision p.csv --queue redis://:***@queue.internal:6379/0"
    assert "s3cret" not in redact("x rediss://user:s3cret@h/0 y")
    assert redact("--queue redis://queue.internal/0") == "--queue redis://queue.internal/0"
    # redis-py takes the last "@" of the authority: the password is "p@ss"
    assert redact("--queue redis://:p@ss@h:6379/0 x") == "--queue redis://:***@h:6379/0 x"
    assert redact("a redis://u:p@h/0 b redis://:q@h/1") == "a redis://u:***@h/0 b redis://:***@h/1"


async def test_a_second_submission_follows_the_unfinished_job(
    run_cli: Run, pec_server: RunningEmulator, redis_url: str, tmp_path: Path
) -> None:
    source = write_csv(tmp_path, [row(address(i, "twice")) for i in range(4)])
    # no worker yet: the job stays unfinished, and a second submission finds it

    table = read_csv(source, str(source), None)
    csv_source = CsvSource(table.source.header, table.source.delimiter, source.name, str(tmp_path))
    async with ProvisionQueue(redis_url) as queue:
        first = await queue.submit(csv_source, table.rows, journal=default_journal_name(source))
        second = await queue.submit(csv_source, table.rows, journal=default_journal_name(source))
    assert not first.attached and second.attached and second.id == first.id
    async with workers(redis_url, pec_server.url, 1, *WORKER):
        result = await run_cli("--json", "provision", str(source), "--queue", redis_url)
    summary = json.loads(result.out.splitlines()[-1])
    assert summary["job"] == first.id and summary["statuses"] == {"activated": 4}


async def test_workers_share_the_fleets_rate_limit(
    run_cli: Run,
    pec_server: RunningEmulator,
    pec_emulator: Emulator,
    redis_url: str,
    tmp_path: Path,
) -> None:
    """--rate-limit gives the workers pecapi.fleet's coordination: its keys are in the same
    Redis, beside the queue's (the limit itself is the coordination's to prove)."""
    source = write_csv(tmp_path, [row(address(i, "rated")) for i in range(5)])
    async with workers(redis_url, pec_server.url, 2, *WORKER, "--rate-limit", "50"):
        result = await run_cli("--json", "provision", str(source), "--queue", redis_url)
        redis = connect(redis_url)
        try:
            keys = {key.decode() async for key in redis.scan_iter("pecapi:*")}
        finally:
            await redis.aclose()
    assert json.loads(result.out.splitlines()[-1])["statuses"] == {"activated": 5}
    assert any(not key.startswith("pecapi:provision:") for key in keys), keys
    assert len(pec_emulator.charges(operation="register")) == 5
