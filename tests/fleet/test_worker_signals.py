"""``pecapi worker`` and SIGTERM: it drains (what is in flight finishes, nothing new is
sent), puts the rest back on the queue, and exits 0; another worker finishes the job."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path

from pecapi.cli.csvinput import read_csv
from pecapi.cli.exits import exit_code_for
from pecapi.errors import CoordinationError
from pecapi.fleet.journal_redis import RedisJournal
from pecapi.fleet.queue import CsvSource, ProvisionQueue, default_journal_name
from pecapi.testing import Emulator
from tests.cli.conftest import closed_port
from tests.fleet.queue_support import address, environment, row, start_worker, write_csv

__all__ = ["closed_port"]  # the fixture

ROWS = 40
WORKER = ("--lease", "3", "--settle", "1", "--concurrency", "4", "--items", "2")


async def test_sigterm_drains_the_worker_and_another_finishes_the_job(
    redis_url: str, tmp_path: Path
) -> None:
    emulator = Emulator(credit=Decimal("100000"), latency=0.05)
    source = write_csv(tmp_path, [row(address(i, "drain")) for i in range(ROWS)])
    table = read_csv(source, str(source), None)
    csv_source = CsvSource(table.source.header, table.source.delimiter, source.name, str(tmp_path))
    journal = default_journal_name(source)
    async with emulator.serve() as server, ProvisionQueue(redis_url) as queue:
        first = await start_worker(redis_url, server.url, *WORKER)
        job = await queue.submit(csv_source, table.rows, journal=journal, chunk=10)
        seen = 0
        async with contextlib.aclosing(queue.follow(job.id, block=0.05)) as follow:
            async for _ in follow:
                seen += 1
                if seen == 8:
                    break
        first.signal(signal.SIGTERM)
        code = await first.wait(timeout=30)
        stopped = first.lines[-1]
        state = await queue.state(job.id)
        assert code == 0, first.stderr.decode()[-3000:]
        assert b"Traceback" not in first.stderr, first.stderr.decode()[-3000:]
        assert stopped["state"] == "stopped" and stopped["interrupted"] == "SIGTERM"
        assert 8 <= stopped["rows"] == state.done < ROWS  # drained, not finished
        assert set(state.statuses) == {"activated"}  # what it started, it finished
        book = RedisJournal(redis_url, journal)
        records = await book.read()
        await book.finish()
        # nothing left half done: every row it touched is settled in the journal
        assert {r["status"] for r in records.values()} == {"activated"}
        assert len(records) == state.done

        second = await start_worker(redis_url, server.url, *WORKER)
        outcomes = [record async for record in queue.follow(job.id)]
        second.signal(signal.SIGTERM)
        assert await second.wait(timeout=30) == 0
    assert sorted(o["line"] for o in outcomes) == list(range(2, ROWS + 2))
    assert Counter(o["status"] for o in outcomes) == {"activated": ROWS}
    per_mailbox = Counter(c.target_id for c in emulator.charges(operation="register"))
    assert len(per_mailbox) == ROWS and set(per_mailbox.values()) == {1}


async def test_a_worker_without_redis_fails_with_a_configuration_error(
    tmp_path: Path, closed_port: int
) -> None:
    emulator = Emulator()
    async with emulator.serve() as server:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pecapi", "--sandbox", "--base-url", server.url, "--json",
            "worker", "--queue", f"redis://127.0.0.1:{closed_port}/0",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=environment(),
        )  # fmt: skip
        _, err = await asyncio.wait_for(process.communicate(), 60)
    error = json.loads(err.splitlines()[-1])
    assert error["event"] == "error" and error["type"] == "CoordinationError", err.decode()
    assert "cannot reach the queue's Redis" in error["message"]
    assert process.returncode == error["exit_code"] == exit_code_for(CoordinationError("x"))
    assert b"Traceback" not in err
