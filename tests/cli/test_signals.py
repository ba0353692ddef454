"""SIGTERM and SIGINT in the middle of ``pecapi provision`` and ``pecapi demo``: a real
process, signalled while it works against the emulator, stops starting rows, finishes
those in flight, says what is left and how to resume; the resumed run completes and the
emulator's ledger shows nothing registered or charged twice."""

from __future__ import annotations

import asyncio
import json
import shlex
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from pecapi.cli import ExitCode
from pecapi.testing import DEFAULT_TOKEN, Emulator, RunningEmulator

from .conftest import subprocess_env
from .test_csv_input import _write
from .test_json_lines import validate
from .test_provision import _row

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

CODES = {signal.SIGINT: ExitCode.INTERRUPTED, signal.SIGTERM: ExitCode.TERMINATED}
ROWS = 30


async def start(*argv: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi", *argv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**subprocess_env(), "OPENAPI_SANDBOX_TOKEN": DEFAULT_TOKEN},
    )  # fmt: skip


async def registrations_reach(emulator: Emulator, n: int) -> None:
    async def poll() -> None:
        # the emulator's request log has no event to wait on: poll it
        while emulator.count("POST", "/pec") < n:  # noqa: ASYNC110
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 60)


def journal_records(source: Path) -> list[dict[str, Any]]:
    text = source.with_suffix(".journal.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines()]


def assert_nothing_twice(emulator: Emulator) -> None:
    charged = Counter((c.operation, c.target_id) for c in emulator.ledger)
    assert charged and max(charged.values()) == 1, charged
    addresses = [m["casella_pec"] for m in emulator.mailboxes.values()]
    assert len(addresses) == len(set(addresses))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_provision_stops_on_a_signal_then_resumes(
    pec_emulator: Emulator, pec_server: RunningEmulator, tmp_path: Path, sig: signal.Signals
) -> None:
    source = _write(tmp_path, [_row(f"user{i:02d}") for i in range(ROWS)])
    argv = ["--sandbox", "--base-url", pec_server.url, "--json", "provision", str(source),
            "--concurrency", "3"]  # fmt: skip
    pec_emulator.latency = 0.02  # the run lasts long enough to be stopped in the middle
    proc = await start(*argv)
    await registrations_reach(pec_emulator, 4)
    proc.send_signal(sig)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == CODES[sig], err.decode()
    assert err.decode() == ""  # under --json stderr is for an error object only
    result_lines = out.decode()
    outcomes = [validate(line) for line in result_lines.splitlines()]
    *done, summary = outcomes
    assert summary["event"] == "summary"
    assert (summary["interrupted"], summary["exit_code"]) == (sig.name, CODES[sig])
    assert summary["remaining"] > 0 and summary["total"] == ROWS
    assert summary["complete"] == len(done) == sum(e["status"] == "activated" for e in done)
    assert summary["resume"] == shlex.join(["pecapi", *argv])
    # Every row that was started finished and is in the journal; none is half done.
    journal = journal_records(source)
    assert sorted(r["key"] for r in journal) == sorted(e["key"] for e in done)
    registered = {m["casella_pec"] for m in pec_emulator.mailboxes.values()}
    assert registered == {e["key"] for e in done}
    assert {m["stato"] for m in pec_emulator.mailboxes.values()} == {"in_evasione"}

    pec_emulator.latency = 0
    command = shlex.split(summary["resume"])
    assert command[0] == "pecapi"
    again = await start(*command[1:])
    out, err = await asyncio.wait_for(again.communicate(), 60)
    assert again.returncode == ExitCode.OK, err.decode()
    rest = [validate(line) for line in out.decode().splitlines()]
    assert rest[-1]["statuses"] == {"skipped": len(done), "activated": ROWS - len(done)}
    assert len(pec_emulator.mailboxes) == ROWS
    assert len(pec_emulator.charges("register")) == ROWS
    assert_nothing_twice(pec_emulator)


async def test_a_second_signal_cancels_the_rows_in_flight(
    pec_emulator: Emulator, pec_server: RunningEmulator, tmp_path: Path
) -> None:
    source = _write(tmp_path, [_row(f"user{i:02d}") for i in range(ROWS)])
    proc = await start("--sandbox", "--base-url", pec_server.url, "provision", str(source),
                       "--concurrency", "3")  # fmt: skip
    await registrations_reach(pec_emulator, 2)
    pec_emulator.latency = 3.0  # what is in flight now stays in flight for a while
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    note = await asyncio.wait_for(proc.stderr.readline(), 60)
    assert b"SIGTERM: finishing the rows in flight" in note
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitCode.TERMINATED, err.decode()
    assert b"Traceback" not in err
    text = out.decode()
    assert "by SIGTERM: " in text and "not started of 30" in text
    assert f"run again to resume: pecapi --sandbox --base-url {pec_server.url} provision" in text
    assert_nothing_twice(pec_emulator)
    # the cancelled rows are not finished: the journal holds no "done" lie for them
    complete = {r["key"] for r in journal_records(source) if r["complete"]}
    for box in pec_emulator.mailboxes.values():
        if box["casella_pec"] in complete:
            assert box["stato"] == "in_evasione"


async def test_demo_stops_on_sigterm() -> None:
    proc = await start("demo", "--count", "3000", "--concurrency", "4", "--json")
    assert proc.stdout is not None
    for _ in range(8):  # a few mailboxes done: the demo is well under way
        validate((await asyncio.wait_for(proc.stdout.readline(), 60)).decode())
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitCode.TERMINATED, err.decode()
    lines = out.decode().splitlines()
    summary = validate(lines[-1])
    assert summary["event"] == "summary" and summary["interrupted"] == "SIGTERM"
    assert summary["complete"] >= 8 and summary["remaining"] > 0
    assert summary["total"] == 3000 and summary["exit_code"] == ExitCode.TERMINATED
    assert summary["mailboxes_on_account"] == summary["complete"]
