"""``pecapi provision`` when the run ends early: a startup that fails (a refused token, no
connection) is one error with its exit code, not one per row; a signal during the
startup sends no paid registration."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import pytest

from pecapi.cli.exits import ExitCode
from pecapi.testing import Emulator, Fault, RunningEmulator

from .conftest import Run
from .test_csv_input import _write
from .test_json_lines import validate
from .test_provision import _row
from .test_signals import start


async def test_a_refused_token_is_one_error_and_exit_3(
    run_cli: Run,
    pec_server: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", "not-the-token")
    source = _write(tmp_path, [_row(f"user{i}") for i in range(5)])
    result = await run_cli("--sandbox", "--base-url", pec_server.url, "--json", "provision",
                           str(source))  # fmt: skip
    assert result.code == ExitCode.API_ERROR
    assert result.out == ""  # no outcome line, no summary
    [line] = result.err.splitlines()
    error = validate(line)
    assert (error["event"], error["status"], error["exit_code"]) == ("error", 401, 3)
    assert "not-the-token" not in result.err
    methods = [(r.method, r.path) for r in pec_server.emulator.requests]
    assert methods == [("GET", "/pec")]


async def test_no_connection_at_startup_is_one_error_and_exit_4(
    run_cli: Run, pec_server: RunningEmulator, tmp_path: Path
) -> None:
    pec_server.emulator.faults.next(10, Fault.drop_before(), method="GET", path="/pec")
    source = _write(tmp_path, [_row(f"user{i}") for i in range(5)])
    result = await run_cli("--sandbox", "--base-url", pec_server.url, "--json", "--retries", "0",
                           "provision", str(source))  # fmt: skip
    assert result.code == ExitCode.TRANSPORT_ERROR, result.err
    assert result.out == ""
    [line] = result.err.splitlines()
    error = validate(line)
    assert (error["event"], error["exit_code"]) == ("error", 4)
    assert pec_server.emulator.count("POST", "/pec") == 0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_a_signal_during_the_startup_listing_registers_nothing(
    pec_emulator: Emulator, pec_server: RunningEmulator, tmp_path: Path
) -> None:
    """SIGTERM while the account is being listed (held): no row had started, none starts:
    no availability check, no registration; the summary says every row is left."""
    source = _write(tmp_path, [_row(f"user{i:02d}") for i in range(6)])
    pec_emulator.faults.once(Fault.latency(1.0), method="GET", path="/pec")
    proc = await start("--sandbox", "--base-url", pec_server.url, "--json", "provision",
                       str(source), "--concurrency", "3")  # fmt: skip

    async def listing() -> None:
        while pec_emulator.count("GET", "/pec") < 1:  # noqa: ASYNC110 (the log has no event)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(listing(), 60)
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitCode.TERMINATED, err.decode()
    [summary] = [json.loads(line) for line in out.decode().splitlines()]
    assert summary["event"] == "summary" and summary["interrupted"] == "SIGTERM"
    assert (summary["complete"], summary["remaining"]) == (0, 6)
    assert [(r.method, r.path) for r in pec_emulator.requests] == [("GET", "/pec")]
    assert pec_emulator.ledger == []
