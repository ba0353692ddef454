"""The programs in examples/, run as users run them (a subprocess, configured by its
environment) against the emulator over loopback, judged by their effects: the emulator's
state and ledger, the services' HTTP answers, exit statuses. And each passes
``mypy --strict``.

The FastAPI example needs fastapi and uvicorn, which are no dependencies of pecapi: its
tests are skipped where they are not installed, unless PECAPI_EXAMPLES_REQUIRE_FASTAPI=1
(``.ci/docs`` installs them in its own environment and sets it, so CI runs them).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import importlib.util
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from mypy import api as mypy_api

from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator, make_pdf

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
FASTAPI_REQUIRED = os.environ.get("PECAPI_EXAMPLES_REQUIRE_FASTAPI") == "1"
HAVE_FASTAPI = all(importlib.util.find_spec(m) is not None for m in ("fastapi", "uvicorn"))
FREE = "anna.bianchi@testcert.legalmail.it"
TAKEN = "mario.rossi@testcert.legalmail.it"


def need_fastapi() -> None:
    if not HAVE_FASTAPI:
        if FASTAPI_REQUIRED:
            pytest.fail("PECAPI_EXAMPLES_REQUIRE_FASTAPI=1 but fastapi or uvicorn is missing")
        pytest.skip("fastapi and uvicorn are not installed (not dependencies of pecapi)")


def env_for(server: RunningEmulator, **extra: str) -> dict[str, str]:
    """The examples' configuration: this emulator, its token, nothing of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAPI_", "PECAPI_"))}
    env.update(
        OPENAPI_SANDBOX_TOKEN=DEFAULT_TOKEN,
        PECAPI_BASE_URL=server.url,
        PYTHONUNBUFFERED="1",
        PYTHONWARNINGS="default::ResourceWarning",  # an unclosed session says so on stderr
        **extra,
    )
    return env


class Program:
    """An example running in a subprocess, its stderr lines collected as they come."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.lines: list[str] = []
        self.stdout = ""
        self._finished = False
        self._reader = asyncio.ensure_future(self._read())

    async def _read(self) -> None:
        assert self.process.stderr is not None
        async for raw in self.process.stderr:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    @property
    def stderr(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, condition: Callable[[], bool], seconds: float = 30.0) -> None:
        """Poll ``condition``; fail (never hang) when the program exits or time runs out."""
        for _ in range(int(seconds / 0.05)):
            if condition():
                return
            if self.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"condition not met; the program said:\n{self.stderr}")

    async def stop(self) -> int:
        """SIGTERM, then the exit status (the program must stop within 30 s)."""
        if self.process.returncode is None:
            self.process.send_signal(signal.SIGTERM)
        return await self.finish()

    async def finish(self, seconds: float = 30.0) -> int:
        """Wait for the exit; its status (stdout is then in ``self.stdout``)."""
        if not self._finished:
            out, _ = await asyncio.wait_for(self._communicate(), seconds)
            self.stdout = out
            self._finished = True
        assert self.process.returncode is not None
        return self.process.returncode

    async def _communicate(self) -> tuple[str, None]:
        assert self.process.stdout is not None
        out = await self.process.stdout.read()
        await self._reader
        await self.process.wait()
        return out.decode("utf-8", "replace"), None


@contextlib.asynccontextmanager
async def run(script: str, *args: str, env: dict[str, str]) -> AsyncIterator[Program]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(EXAMPLES / script),
        *args,
        env=env,
        cwd=str(ROOT),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    program = Program(process)
    try:
        yield program
    finally:
        if process.returncode is None:
            process.kill()
        with contextlib.suppress(asyncio.TimeoutError, ProcessLookupError):
            await program.finish(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean(program: Program) -> None:
    """Nothing on stderr that says a resource leaked or an error escaped."""
    for bad in ("Traceback", "Unclosed", "was never awaited", "Task was destroyed"):
        assert bad not in program.stderr, program.stderr


# -- the two web services -------------------------------------------------------------------


async def exercise_service(program: Program, base: str, emulator: Emulator, box_id: str) -> None:
    """The same checks for both services: their routes, and pecapi's errors as HTTP."""
    async with aiohttp.ClientSession() as http:

        async def up() -> bool:
            try:
                async with http.get(f"{base}/mailboxes") as response:
                    return response.status == 200
            except aiohttp.ClientConnectionError:
                return False

        for _ in range(600):  # until it listens (it may take a few seconds to import)
            if await up():
                break
            if program.process.returncode is not None:
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError(f"the service never answered:\n{program.stderr}")
        assert program.process.returncode is None, program.stderr

        async def call(method: str, path: str) -> tuple[int, Any]:
            async with http.request(method, base + path) as response:
                return response.status, await response.json()

        status, listing = await call("GET", "/mailboxes")
        assert status == 200
        assert [(b["id"], b["casella_pec"], b["stato"]) for b in listing] == [
            (box_id, TAKEN, "evasa")
        ]
        assert await call("GET", f"/availability/{FREE}") == (
            200,
            {"casella_pec": FREE, "available": True},
        )
        assert await call("GET", f"/availability/{TAKEN}") == (
            200,
            {"casella_pec": TAKEN, "available": False},
        )

        before = dt.datetime.strptime(emulator.mailboxes[box_id]["data_scadenza"], "%d/%m/%Y")
        status, renewed = await call("POST", f"/mailboxes/{box_id}/renewal")
        assert status == 200, renewed
        assert renewed["id"] == box_id
        assert renewed["data_scadenza"] > before.date().isoformat()  # ISO dates sort as text
        assert len(emulator.charges("renewal", box_id)) == 1

        # a malformed id is the API's 400 (code 201), an unknown one its 404
        assert await call("POST", "/mailboxes/not-an-id/renewal") == (
            400,
            {"error": "Wrong id", "code": 201},
        )
        status, _ = await call("POST", f"/mailboxes/{'0' * 24}/renewal")
        assert status == 404
        # an address the client refuses before sending anything
        status, body = await call("GET", "/availability/not-an-address")
        assert (status, body["field"]) == (400, "pec")
        # the API down (every attempt of pecapi's retries): 502, not a traceback
        emulator.faults.rate(1.0, [Fault.status(503)], method="GET", path="/pec")
        status, body = await call("GET", "/mailboxes")
        assert (status, body) == (502, {"error": "ServerError"})
        emulator.faults.clear()
    assert len(emulator.charges("renewal")) == 1  # the refused renewals cost nothing


async def test_aiohttp_service(pec_server: RunningEmulator, pec_emulator: Emulator) -> None:
    box_id = pec_emulator.seed_mailbox(TAKEN, stato="evasa")
    port = free_port()
    env = env_for(pec_server, PORT=str(port))
    async with run("aiohttp_service.py", env=env) as program:
        await exercise_service(program, f"http://127.0.0.1:{port}", pec_emulator, box_id)
        assert await program.stop() == 0, program.stderr
    clean(program)


async def test_fastapi_service(pec_server: RunningEmulator, pec_emulator: Emulator) -> None:
    need_fastapi()
    box_id = pec_emulator.seed_mailbox(TAKEN, stato="evasa")
    port = free_port()
    env = env_for(pec_server, PORT=str(port))
    async with run("fastapi_service.py", env=env) as program:
        await exercise_service(program, f"http://127.0.0.1:{port}", pec_emulator, box_id)
        # uvicorn shuts down gracefully, then re-raises the signal: "killed by SIGTERM"
        assert await program.stop() in (0, -signal.SIGTERM), program.stderr
    assert "Application shutdown complete" in program.stderr  # the lifespan closed the client
    clean(program)


def load(script: str) -> Any:
    """An example imported as a module (its ``__main__`` block does not run)."""
    spec = importlib.util.spec_from_file_location(f"example_{script[:-3]}", EXAMPLES / script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def test_aiohttp_service_closes_its_client_on_cleanup(
    pec_server: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in env_for(pec_server).items():
        monkeypatch.setenv(name, value)
    example = load("aiohttp_service.py")
    app = example.create_app()
    runner = web.AppRunner(app)
    await runner.setup()  # startup: cleanup_ctx makes the client
    client = app[example.CLIENT]
    assert await client.mailboxes.list() == []  # its session is open
    await runner.cleanup()
    assert client.closed


async def test_fastapi_service_closes_its_client_with_its_lifespan(
    pec_server: RunningEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_fastapi()
    for name, value in env_for(pec_server).items():
        monkeypatch.setenv(name, value)
    example = load("fastapi_service.py")
    async with example.lifespan(example.app) as state:
        client = state["pec"]
        assert await client.mailboxes.list() == []
    assert client.closed


async def test_services_refuse_to_start_without_a_token(pec_server: RunningEmulator) -> None:
    env = env_for(pec_server, PORT=str(free_port()))
    del env["OPENAPI_SANDBOX_TOKEN"]
    async with run("aiohttp_service.py", env=env) as program:
        assert await program.finish() != 0
    assert "OPENAPI_SANDBOX_TOKEN" in program.stderr


# -- the provisioning script ------------------------------------------------------------------

HEADER = (
    "casella_pec,tipo_casella,tipo_cliente,nome_richiedente,cognome_richiedente,email,"
    "telefono,codice_fiscale_richiedente,data_nascita_richiedente,sesso_richiedente,"
    "nazione_nascita_richiedente,indirizzo_titolare,comune_titolare,cap_titolare,"
    "nazione_titolare,provincia_titolare,documenti"
)
PERSON = (
    "PV,Mario,Rossi,mario@example.org,0548798569,RSSMRA82D11H501X,11/04/1982,M,IT,"
    "via Verdi 20,Roma,00042,IT,RM"
)


def write_csv(folder: Path) -> Path:
    (folder / "form-signed.pdf").write_bytes(make_pdf("modulo firmato"))
    (folder / "id-card.pdf").write_bytes(make_pdf("carta d'identità"))
    rows = [
        f"uno@testcert.legalmail.it,BRONZE,{PERSON},form-signed.pdf;id-card.pdf",  # activated
        f"due@testcert.legalmail.it,gold,{PERSON},",  # registered
        f"{TAKEN},BRONZE,{PERSON},",  # existing: already on the account
        f"tre@testcert.legalmail.it,PLATINUM,{PERSON},",  # invalid: no such type
    ]
    path = folder / "people.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    return path


def outcomes(stdout: str) -> dict[str, str]:
    return {line.split("\t")[0]: line.split("\t")[1] for line in stdout.splitlines()}


async def test_provision_batch(
    pec_server: RunningEmulator, pec_emulator: Emulator, tmp_path: Path
) -> None:
    taken_id = pec_emulator.seed_mailbox(TAKEN, stato="evasa")
    csv_path = write_csv(tmp_path)
    journal = tmp_path / "people.jsonl"
    async with run("provision_batch.py", str(csv_path), str(journal), env=env_for(pec_server)) as p:
        status = await p.finish(60)
    assert status == 1, p.stderr  # the invalid row is not done
    assert outcomes(p.stdout) == {
        "uno@testcert.legalmail.it": "activated",
        "due@testcert.legalmail.it": "registered",
        TAKEN: "existing",
        "tre@testcert.legalmail.it": "invalid",
    }
    assert "4/4 done" in p.stderr
    registered = {c.target_id for c in pec_emulator.charges("register")}
    assert len(registered) == 2
    assert taken_id not in registered
    states = {
        pec_emulator.mailboxes[i]["casella_pec"]: pec_emulator.mailboxes[i]["stato"]
        for i in registered
    }
    assert states == {
        "uno@testcert.legalmail.it": "in_evasione",
        "due@testcert.legalmail.it": "registrata",
    }
    # 4 outcomes, and uno's registration journaled before its activation
    assert len(journal.read_text(encoding="utf-8").splitlines()) == 5

    # Again with the same journal: what is done is skipped, nothing is paid twice.
    async with run("provision_batch.py", str(csv_path), str(journal), env=env_for(pec_server)) as p:
        status = await p.finish(60)
    assert status == 1, p.stderr
    assert sorted(outcomes(p.stdout).values()) == ["invalid", "skipped", "skipped", "skipped"]
    assert len(pec_emulator.charges("register")) == 2
    assert len(pec_emulator.charges()) == 2
    clean(p)


async def test_provision_batch_refuses_a_bad_file_before_sending(
    pec_server: RunningEmulator, pec_emulator: Emulator, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("casella_pec,colour\nx@testcert.legalmail.it,blue\n", encoding="utf-8")
    for path in (bad, tmp_path / "missing.csv"):
        async with run("provision_batch.py", str(path), env=env_for(pec_server)) as p:
            assert await p.finish(60) == 2
        assert str(path) in p.stderr
    assert len(pec_emulator.requests) == 0
    assert len(pec_emulator.ledger) == 0


# -- the worker --------------------------------------------------------------------------------


def expiring(emulator: Emulator, address: str, days: int, stato: str = "evasa") -> str:
    """A mailbox whose expiry is ``days`` from now."""
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=days)
    return emulator.seed_mailbox(
        address,
        stato=stato,
        data_scadenza=when.strftime("%d/%m/%Y"),
        timestamp={"scadenza": int(when.timestamp())},
    )


async def test_worker_renews_what_expires_soon_once(
    pec_server: RunningEmulator, pec_emulator: Emulator
) -> None:
    soon = expiring(pec_emulator, "presto@testcert.legalmail.it", 5)
    sooner = expiring(pec_emulator, "prestissimo@testcert.legalmail.it", 1)
    later = expiring(pec_emulator, "tardi@testcert.legalmail.it", 200)
    revoked = expiring(pec_emulator, "revocata@testcert.legalmail.it", 3, stato="revocata")
    # Renewals slower than a scan: later scans find the mailboxes still due, mid-renewal.
    pec_emulator.faults.rate(1.0, [Fault.latency(0.5)], method="GET", path="/pec/*/rinnovo")
    env = env_for(
        pec_server, PECAPI_SCAN_INTERVAL="0.1", PECAPI_RENEW_WITHIN_DAYS="30", PECAPI_WORKERS="2"
    )
    async with run("worker_bot.py", env=env) as bot:
        await bot.wait_for(lambda: len(pec_emulator.charges("renewal")) >= 2)
        scans = pec_emulator.count("GET", "/pec")
        # several more scans: a renewed mailbox is not due any more, none is renewed twice
        await bot.wait_for(lambda: pec_emulator.count("GET", "/pec") >= scans + 5)
        assert await bot.stop() == 0, bot.stderr
    renewed = sorted(c.target_id for c in pec_emulator.charges("renewal"))
    assert renewed == sorted([soon, sooner])
    assert later not in renewed and revoked not in renewed
    assert "stopped" in bot.stderr
    clean(bot)


async def test_worker_finishes_the_renewal_in_flight_on_sigterm(
    pec_server: RunningEmulator, pec_emulator: Emulator
) -> None:
    box_id = expiring(pec_emulator, "presto@testcert.legalmail.it", 5)
    pec_emulator.faults.once(Fault.latency(1.0), method="GET", path="/pec/*/rinnovo")
    env = env_for(pec_server, PECAPI_SCAN_INTERVAL="0.1", PECAPI_WORKERS="1")
    async with run("worker_bot.py", env=env) as bot:
        await bot.wait_for(lambda: f"renewing {box_id}" in bot.stderr)
        assert not pec_emulator.charges("renewal")  # still in flight
        assert await bot.stop() == 0, bot.stderr
    stopping = bot.stderr.index("stopping")
    assert bot.stderr.index(f"renewed {box_id}") > stopping  # finished after the signal
    assert len(pec_emulator.charges("renewal", box_id)) == 1
    clean(bot)


# -- types ---------------------------------------------------------------------------------


def test_examples_pass_mypy_strict(tmp_path: Path) -> None:
    files = sorted(EXAMPLES.glob("*.py"))
    assert {f.name for f in files} >= {
        "aiohttp_service.py",
        "fastapi_service.py",
        "provision_batch.py",
        "worker_bot.py",
    }
    if not HAVE_FASTAPI:
        if FASTAPI_REQUIRED:
            pytest.fail("PECAPI_EXAMPLES_REQUIRE_FASTAPI=1 but fastapi or uvicorn is missing")
        files = [f for f in files if f.name != "fastapi_service.py"]  # its imports are unknown
    stdout, stderr, status = mypy_api.run(
        [
            "--strict",
            "--config-file",
            str(ROOT / "pyproject.toml"),
            "--cache-dir",
            str(tmp_path / "mypy"),
            *map(str, files),
        ]
    )
    assert status == 0, stdout + stderr
