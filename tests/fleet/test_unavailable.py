"""Without Redis: ``on_unavailable="fail"`` sends nothing and says so with a typed error;
``"local"`` goes on with the process's own limits and locks, and warns."""

from __future__ import annotations

import logging
import socket

import pytest

from pecapi import Mailbox, PecClient, PecError, ScrubbedCause
from pecapi.fleet import CoordinationError, RedisCoordination
from pecapi.fleet.store import OnUnavailable
from pecapi.testing import DEFAULT_TOKEN, Emulator
from pecapi.testing.redis_server import RedisServer


def nowhere() -> str:
    """A loopback port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def client(url: str, redis_url: str, on_unavailable: OnUnavailable) -> PecClient:
    fleet = RedisCoordination(
        redis_url,
        namespace="pecapi-test",
        rate_limit=100,
        on_unavailable=on_unavailable,
        timeout=0.5,
    )
    return PecClient(DEFAULT_TOKEN, sandbox=True, base_url=url, coordination=fleet)


async def test_without_redis_nothing_is_sent() -> None:
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    async with emulator.serve() as pec, client(pec.url, nowhere(), "fail") as c:
        with pytest.raises(CoordinationError) as info:
            await c.mailboxes.renew(box_id)
        with pytest.raises(CoordinationError):
            await c.mailboxes.list()
    assert isinstance(info.value, PecError)
    assert info.value.request_sent is False
    assert "nothing was sent" in str(info.value)
    assert isinstance(info.value.__cause__, ScrubbedCause)  # a copy, not redis-py's own
    assert info.value.__context__ is None
    assert emulator.requests == []
    assert emulator.charges() == []


async def test_redis_dying_midway_stops_the_paid_writes(redis_server: RedisServer) -> None:
    del redis_server  # only its binary (or the skip without it): this test stops its own
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    with RedisServer() as server:
        async with emulator.serve() as pec, client(pec.url, server.url, "fail") as c:
            await c.mailboxes.renew(box_id)
            sent = len(emulator.requests)
            server.stop()
            with pytest.raises(CoordinationError):
                await c.mailboxes.renew(box_id)
            assert len(emulator.requests) == sent
    assert len(emulator.charges(operation="renewal")) == 1


async def test_local_fallback_goes_on_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pecapi")
    emulator = Emulator()
    box_id = emulator.seed_mailbox("mario@testcert.legalmail.it", stato="evasa")
    async with emulator.serve() as pec, client(pec.url, nowhere(), "local") as c:
        renewed = await c.mailboxes.renew(box_id)
        assert isinstance(renewed, Mailbox)
        assert await c.mailboxes.list() != []
    assert len(emulator.charges(operation="renewal")) == 1
    assert "Redis is unavailable" in caplog.text and "falls back to local" in caplog.text
