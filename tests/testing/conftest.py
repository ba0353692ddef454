"""Fixtures of the emulator's own tests: real HTTP over loopback with a raw aiohttp session."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from pecapi.testing import DEFAULT_TOKEN, Emulator, RunningEmulator

# The plugin's fixtures (pec_emulator, pec_server) come from `pytest_plugins` in the
# top-level conftest.


@dataclass
class Resp:
    status: int
    raw: bytes
    headers: Any
    json: Any

    @property
    def data(self) -> Any:
        assert self.json is not None, self.raw[:200]
        return self.json["data"]


class Api:
    """A thin helper over a raw ClientSession: one call -> a Resp (body fully read)."""

    def __init__(self, session: aiohttp.ClientSession, server: RunningEmulator) -> None:
        self.session = session
        self.server = server
        self.emu = server.emulator

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        token: str | None = DEFAULT_TOKEN,
        data: bytes | None = None,
    ) -> Resp:
        headers = {} if token is None else {"Authorization": f"Bearer {token}"}
        kwargs: dict[str, Any] = {"headers": headers}
        if data is not None:
            kwargs["data"] = data
            headers["Content-Type"] = "application/json"
        elif body is not None:
            kwargs["json"] = body
        async with self.session.request(method, self.server.url + path, **kwargs) as r:
            raw = await r.read()
            parsed = json.loads(raw) if r.content_type == "application/json" and raw else None
            return Resp(r.status, raw, r.headers, parsed)

    async def ok(self, method: str, path: str, body: Any = None) -> Any:
        resp = await self.call(method, path, body)
        assert resp.status == 200, resp.raw[:300]
        assert resp.json["success"] is True
        # the 2xx schemas type `error` as an integer: a success answer leaves it out
        assert set(resp.json) == {"data", "success", "message"}, resp.json
        return resp.data

    async def fails(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        status: int,
        code: int | None,
        message: str | None = None,
        token: str | None = DEFAULT_TOKEN,
    ) -> Resp:
        resp = await self.call(method, path, body, token=token)
        assert resp.status == status, resp.raw[:300]
        assert resp.headers["Content-Type"].startswith("application/json")
        assert set(resp.json) == {"data", "success", "message", "error"}
        assert resp.json["success"] is False
        assert resp.json["data"] is None
        assert resp.json["error"] == code, resp.json
        if message is not None:
            assert resp.json["message"] == message
        return resp


@pytest.fixture
def emu() -> Emulator:
    return Emulator(seed=1)


@pytest.fixture
async def server(emu: Emulator) -> AsyncIterator[RunningEmulator]:
    async with emu.serve() as running:
        yield running


@pytest.fixture
async def api(server: RunningEmulator) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        yield Api(session, server)
