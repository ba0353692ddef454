"""SIGTERM and SIGINT in the middle of ``pecapi provision`` and ``pecapi demo``: a real
process, signalled while it works against the emulator, stops starting rows, finishes
those in flight, says what is left and how to resume; the resumed run completes and the
emulator's ledger shows nothing registered or charged twice."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shlex
import signal
import sys
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pecapi.cli import ExitCode
from pecapi.cli.stopping import Stop
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator
from pecapi.testing.ledger import RequestRecord

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
    # A row that was started finished: activated, or (when the signal came before its
    # check or registration was sent) "stopped", nothing sent; none is half done. Every
    # one is in the journal (its last record counts: "awaiting_activation" is written
    # just before the activation is sent).
    activated = {e["key"] for e in done if e["status"] == "activated"}
    assert {e["status"] for e in done} <= {"activated", "stopped"}
    assert summary["complete"] == len(activated) > 0
    assert summary["resume"] == shlex.join(["pecapi", *argv])
    journal = {r["key"]: r for r in journal_records(source)}
    assert sorted(journal) == sorted(e["key"] for e in done)
    assert {k for k, r in journal.items() if r["status"] == "activated"} == activated
    registered = {m["casella_pec"] for m in pec_emulator.mailboxes.values()}
    assert registered == activated
    assert {m["stato"] for m in pec_emulator.mailboxes.values()} == {"in_evasione"}

    pec_emulator.latency = 0
    command = shlex.split(summary["resume"])
    assert command[0] == "pecapi"
    again = await start(*command[1:])
    out, err = await asyncio.wait_for(again.communicate(), 60)
    assert again.returncode == ExitCode.OK, err.decode()
    rest = [validate(line) for line in out.decode().splitlines()]
    assert rest[-1]["statuses"] == {"skipped": len(activated), "activated": ROWS - len(activated)}
    assert len(pec_emulator.mailboxes) == ROWS
    assert len(pec_emulator.charges("register")) == ROWS
    assert_nothing_twice(pec_emulator)


HOLD = 8.0  # seconds one registration is held in flight: room for two signals


def held_registration(emulator: Emulator) -> RequestRecord | None:
    """The ``POST /pec`` the fault plan holds (its latency fault is applied)."""
    held = [r for r in emulator.requests if (r.method, r.path, r.fault) == ("POST", "/pec",
            "latency")]  # fmt: skip
    return held[0] if held else None


async def until(condition: Callable[[], bool]) -> None:
    async def poll() -> None:
        while not condition():  # noqa: ASYNC110  (nothing to wait on: poll)
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), 60)


async def test_a_second_signal_cancels_the_rows_in_flight(
    pec_emulator: Emulator, pec_server: RunningEmulator, tmp_path: Path
) -> None:
    source = _write(tmp_path, [_row(f"user{i:02d}") for i in range(ROWS)])
    argv = ["--sandbox", "--base-url", pec_server.url, "provision", str(source),
            "--concurrency", "3"]  # fmt: skip
    pec_emulator.latency = 0.02  # the run lasts long enough to be stopped in the middle
    # the 4th registration stays in flight (the API processes it after HOLD seconds,
    # whatever the client did meanwhile, as a real one may)
    pec_emulator.faults.nth(4, Fault.latency(HOLD), method="POST", path="/pec")
    proc = await start(*argv)
    await until(lambda: held_registration(pec_emulator) is not None)
    proc.send_signal(signal.SIGTERM)
    assert proc.stderr is not None
    note = await asyncio.wait_for(proc.stderr.readline(), 60)
    assert b"SIGTERM: finishing the rows in flight" in note
    held = held_registration(pec_emulator)
    assert held is not None and held.status is None  # still in flight: no answer yet
    proc.send_signal(signal.SIGTERM)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == ExitCode.TERMINATED, err.decode()
    assert b"Traceback" not in err
    text = out.decode()
    assert "cancelled in flight by SIGTERM: " in text and "not started of 30" in text
    resume = f"run again to resume: {shlex.join(['pecapi', *argv])}"
    assert resume in text
    # the held registration was cancelled, and journaled as pending (not done, not failed)
    journal = journal_records(source)
    pending = [r for r in journal if r["status"] == "pending"]
    assert pending and all("register: cancelled" in r["steps"] for r in pending)
    assert not any(r["complete"] for r in pending)
    complete = {r["key"] for r in journal if r["complete"]}
    for box in pec_emulator.mailboxes.values():
        if box["casella_pec"] in complete:
            assert box["stato"] == "in_evasione"

    # The API commits the held registration although its client is gone. The resumed
    # run settles it (a pending row waits for its settle window, a minute: the journal's
    # times are moved back as if the run were resumed later) and registers it no twice.
    await until(lambda: held.status is not None)
    assert held.status == 200
    earlier = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=5)
    lines = [json.dumps({**r, "at": earlier.isoformat()}) for r in journal]
    source.with_suffix(".journal.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    pec_emulator.latency = 0
    again = await start(*argv)
    out, err = await asyncio.wait_for(again.communicate(), 60)
    assert again.returncode == ExitCode.OK, err.decode()
    assert len(pec_emulator.mailboxes) == ROWS
    assert len(pec_emulator.charges("register")) == ROWS
    assert_nothing_twice(pec_emulator)


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="signals: main thread"
)
async def test_a_third_signal_does_not_cut_the_cancellation_short() -> None:
    # Stop itself, with real signals to this process: the second cancels the work once;
    # the third must not cancel its cleanup (the batch gathering its workers, the client
    # closing). Afterwards the handlers that were there before are back (asyncio.run's
    # SIGINT handler, in a real run).
    def before(signum: int, frame: object) -> None:  # pragma: no cover - never called
        raise AssertionError(f"signal {signum} reached the handler Stop replaced")

    previous = {sig: signal.signal(sig, before) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        stop = Stop()
        started, release, cleaned = asyncio.Event(), asyncio.Event(), asyncio.Event()

        async def work() -> None:
            started.set()
            try:
                await asyncio.Event().wait()  # in flight until cancelled
            except asyncio.CancelledError:
                await release.wait()  # the cleanup of a cancelled batch
                cleaned.set()
                raise

        async def signal_three_times() -> None:
            await started.wait()
            for n, sig in enumerate((signal.SIGTERM, signal.SIGINT, signal.SIGTERM), 1):
                os.kill(os.getpid(), sig)
                await until(lambda n=n: stop.received == n)  # type: ignore[misc]
            release.set()

        signalling = asyncio.ensure_future(signal_three_times())
        await stop.run(work())
        await signalling
        assert (stop.signal, stop.forced, stop.received) == ("SIGTERM", True, 3)
        assert cleaned.is_set()  # the third signal did not interrupt the cleanup
        assert stop.exit_code == ExitCode.TERMINATED
        assert signal.getsignal(signal.SIGINT) is before
        assert signal.getsignal(signal.SIGTERM) is before
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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
