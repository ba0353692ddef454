"""Running the ``pecapi`` command in-process, as a user would, against the emulator.

``main(argv)`` runs in a worker thread (it calls ``asyncio.run`` itself) while the test's
loop serves the emulator over real HTTP on loopback; stdout and stderr are captured.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import pytest

from pecapi.cli import main
from pecapi.testing import DEFAULT_TOKEN, RunningEmulator

PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
# DER PKCS#7 signedData header: SEQUENCE, then the OID 1.2.840.113549.1.7.2.
P7M = bytes.fromhex("308006092a864886f70d010702a0803080") + b"\x00" * 32
ESC = "\x1b"


@attrs.frozen
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


Run = Callable[..., Awaitable[Result]]


@pytest.fixture(autouse=True)
def cli_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean environment: the emulator's token for the sandbox, no forced colours."""
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", DEFAULT_TOKEN)
    for name in ("OPENAPI_TOKEN", "FORCE_COLOR", "COLUMNS", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Run:
    """``await run_cli(*argv)``: the exit code and what went to stdout and stderr."""

    async def run(*argv: str) -> Result:
        capsys.readouterr()
        code = await asyncio.to_thread(main, list(argv))
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def api(pec_server: RunningEmulator, run_cli: Run) -> Run:
    """``await api(*argv)``: a command pointed at the test's emulator (sandbox)."""

    async def run(*argv: str) -> Result:
        return await run_cli("--sandbox", "--base-url", pec_server.url, *argv)

    return run


@pytest.fixture
def files(tmp_path: Any) -> Any:
    (tmp_path / "form.pdf").write_bytes(PDF)
    (tmp_path / "id.pdf").write_bytes(PDF)
    (tmp_path / "procura.p7m").write_bytes(P7M)
    (tmp_path / "notes.txt").write_text("not a pdf")
    return tmp_path


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p and os.path.isdir(p))
    for name in ("FORCE_COLOR", "COLUMNS"):
        env.pop(name, None)
    return env
