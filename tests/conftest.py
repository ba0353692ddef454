"""Shared fixtures: the emulator on loopback and a client pointed at it."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pecapi import ComunicaPecRequest, MailboxRegistration, PecClient, RetryPolicy
from pecapi.testing import DEFAULT_TOKEN, Emulator, RunningEmulator, samples

pytest_plugins = ["pecapi.testing.pytest_plugin"]

SPEC_PATH = Path(__file__).parent / "data" / "pec.openapi.json"

PDF_BYTES = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
# DER PKCS#7 signedData header: SEQUENCE, then the OID 1.2.840.113549.1.7.2.
P7M_BYTES = bytes.fromhex("308006092a864886f70d010702a0803080") + b"\x00" * 32


@pytest.fixture(scope="session")
def spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as fh:
        data: dict[str, Any] = json.load(fh)
    return data


class FakeTime:
    """A clock that only moves when pecapi sleeps: windows and deadlines without waiting."""

    def __init__(self) -> None:
        self.now = 0.0
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


async def wait_until(condition: Callable[[], bool], *, seconds: float = 10.0) -> None:
    """Poll ``condition`` until it holds; fail (never hang) after ``seconds``."""
    for _ in range(int(seconds / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"still not true after {seconds}s")


async def no_sleep(seconds: float) -> None:
    """Retry waits in tests: yield to the loop, never sleep real seconds."""
    await asyncio.sleep(0)


# settle=0: the emulator commits before it answers unless a test asks for late faults.
FAST_RETRY = RetryPolicy(max_attempts=4, sleep=no_sleep, settle=0)


@pytest.fixture
async def client(pec_server: RunningEmulator) -> AsyncIterator[PecClient]:
    async with PecClient(
        DEFAULT_TOKEN, sandbox=True, base_url=pec_server.url, retry=FAST_RETRY
    ) as c:
        yield c


@pytest.fixture
def raw_client(client: PecClient) -> PecClient:
    """The same client trying every call exactly once: faults surface as errors."""
    return client.with_options(retry=RetryPolicy.never())


@pytest.fixture
def emulator(pec_server: RunningEmulator) -> Emulator:
    return pec_server.emulator


def make_registration(
    casella_pec: str = "mario.rossi@testcert.legalmail.it", **overrides: Any
) -> MailboxRegistration:
    return samples.registration(casella_pec, **overrides)


def make_comunica_request(**overrides: Any) -> ComunicaPecRequest:
    return samples.comunica_request(**overrides)


@pytest.fixture
def registration() -> Callable[..., MailboxRegistration]:
    return make_registration


@asynccontextmanager
async def serve_app(app: web.Application, *, inflate: bool = True) -> AsyncIterator[str]:
    """``app`` on a free loopback port while the block runs; its base URL. ``inflate``
    False: served as the README advises for callbacks (``auto_decompress=False``: the
    server does not inflate request bodies itself)."""
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=0.5,
        auto_decompress=inflate,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()
