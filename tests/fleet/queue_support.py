"""What the queue's tests share: CSV files of registrations, and ``pecapi worker`` processes
(real ones, ``python -m pecapi worker``) pointed at the test's Redis and emulator."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from pecapi.cli import main
from pecapi.testing import DEFAULT_TOKEN
from tests.cli.conftest import PDF, Result, Run

HEADER = (
    "casella_pec,tipo_casella,tipo_cliente,nome_richiedente,cognome_richiedente,email,"
    "telefono,codice_fiscale_richiedente,data_nascita_richiedente,sesso_richiedente,"
    "nazione_nascita_richiedente,indirizzo_titolare,comune_titolare,cap_titolare,"
    "nazione_titolare,provincia_titolare,documenti"
)


def address(i: int, prefix: str = "fleet") -> str:
    return f"{prefix}{i:05d}@testcert.legalmail.it"


def row(name: str, tipo: str = "bronze", documents: str = "form.pdf") -> str:
    return (
        f"{name},{tipo},PV,Mario,Rossi,m@d.it,0548,RSSMRA82D11H501X,"
        f"11/04/1982,M,IT,via Verdi 20,Roma,00042,IT,RM,{documents}"
    )


def write_csv(folder: Path, rows: Sequence[str], name: str = "people.csv") -> Path:
    (folder / "form.pdf").write_bytes(PDF)
    path = folder / name
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def environment() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    env["OPENAPI_SANDBOX_TOKEN"] = DEFAULT_TOKEN
    for name in ("FORCE_COLOR", "COLUMNS", "OPENAPI_TOKEN", "PYTHONASYNCIODEBUG"):
        env.pop(name, None)
    return env


class Worker:
    """One ``pecapi worker`` process; ``lines`` collects its stdout JSON lines."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[dict[str, Any]] = []
        self.stderr = b""

    async def started(self, timeout: float = 30.0) -> None:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        assert line, "the worker ended before it started"
        event = json.loads(line)
        assert event["state"] == "started", event
        self.lines.append(event)

    async def wait(self, timeout: float = 60.0) -> int:
        out, err = await asyncio.wait_for(self.process.communicate(), timeout)
        self.stderr = err
        self.lines.extend(json.loads(line) for line in out.splitlines() if line.strip())
        code = self.process.returncode
        assert code is not None
        return code

    def signal(self, sig: signal.Signals) -> None:
        if self.process.returncode is None:
            self.process.send_signal(sig)


async def start_worker(redis_url: str, emulator_url: str, *options: str) -> Worker:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "pecapi", "--sandbox", "--base-url", emulator_url, "--json",
        "worker", "--queue", redis_url, *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=environment(),
    )  # fmt: skip
    worker = Worker(process)
    await worker.started()
    return worker


@asynccontextmanager
async def workers(
    redis_url: str, emulator_url: str, count: int, *options: str
) -> AsyncIterator[list[Worker]]:
    """``count`` workers, started at once; any still running at the end is killed."""
    started = await asyncio.gather(
        *(start_worker(redis_url, emulator_url, *options) for _ in range(count))
    )
    try:
        yield list(started)
    finally:
        for worker in started:
            if worker.process.returncode is None:
                worker.process.kill()
            await worker.process.wait()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``await run_cli(*argv)``: ``pecapi`` in a thread, its exit code and output."""

    async def run(*argv: str) -> Result:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run
