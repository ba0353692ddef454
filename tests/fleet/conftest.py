"""A real ``redis-server`` per test session, on loopback, for the fleet's tests.

Outside CI a missing binary skips these tests with the reason; ``.ci/run`` sets
``PECAPI_REQUIRE_REDIS=1``, and then a missing binary fails them instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator

import pytest

from pecapi.testing.redis_server import RedisServer, find_redis_server

REQUIRED = os.environ.get("PECAPI_REQUIRE_REDIS") == "1"


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if find_redis_server() is None:
        reason = "redis-server is not installed (apt-get install redis-server; .ci/run does)"
        if REQUIRED:
            pytest.fail(reason + ", and PECAPI_REQUIRE_REDIS=1")
        pytest.skip(reason)
    with RedisServer() as server:
        yield server


@pytest.fixture
async def redis_url(redis_server: RedisServer) -> AsyncIterator[str]:
    """The server's URL, emptied after the test (FLUSHALL): tests never see each other's keys."""
    yield redis_server.url
    import redis.asyncio as aioredis

    client = aioredis.from_url(redis_server.url)
    try:
        await client.flushall()
    finally:
        await client.aclose()
