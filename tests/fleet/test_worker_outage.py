"""A worker whose Redis refuses it (down, restarted without its password, ...) keeps
asking for items, but with pauses: not in a busy loop that burns a core and floods Redis;
stopped then, it leaves no socket open."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys

import pytest
import redis.asyncio as aioredis

from pecapi import PecClient
from pecapi.fleet.worker import ProvisionWorker
from pecapi.testing import DEFAULT_TOKEN, RunningEmulator
from pecapi.testing.redis_server import RedisServer


def _sockets_to(port: int) -> int:
    """This process's open TCP sockets to ``port`` on loopback, closed by the peer or not
    (Linux: /proc)."""
    mine = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            link = os.readlink(f"/proc/self/fd/{fd}")
            if link.startswith("socket:["):
                mine.add(link[len("socket:[") : -1])
    count = 0
    with open("/proc/self/net/tcp", encoding="ascii") as table:
        for line in list(table)[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[9] in mine:
                count += 1
    return count


async def _refused(admin: aioredis.Redis) -> int:
    stats = await admin.info("errorstats")
    found = stats.get("errorstat_NOAUTH", {})
    return int(found.get("count", 0)) if isinstance(found, dict) else 0


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts sockets in /proc")
async def test_a_worker_refused_by_redis_pauses_between_asks_and_closes_its_sockets(
    redis_server: RedisServer, pec_server: RunningEmulator
) -> None:
    del redis_server  # only its binary: this test breaks a Redis of its own
    with RedisServer() as server:
        admin = aioredis.from_url(server.url, decode_responses=True)
        async with PecClient(DEFAULT_TOKEN, sandbox=True, base_url=pec_server.url) as client:
            worker = ProvisionWorker(client, server.url, lease=3, items=2)
            running = asyncio.ensure_future(worker.run())
            try:
                for _ in range(1000):  # the worker waits on the queue, one ask per item slot
                    asks = [c for c in await admin.client_list() if c.get("cmd") == "blmove"]
                    if len(asks) == 2:
                        break
                    await asyncio.sleep(0.01)
                if running.done():
                    await running  # ended early: its error, not a count, fails the test
                # Every connection of the worker now fails: the next ones are refused.
                await admin.config_set("requirepass", "not-the-workers")
                await admin.client_kill_filter(_type="normal", skipme=True)
                start = await _refused(admin)
                for _ in range(1000):
                    if worker.dequeue_failures >= 2:
                        break
                    await asyncio.sleep(0.01)
                await asyncio.sleep(3.0)
                refused = await _refused(admin) - start
                # Counted by Redis: a few asks per second at most (a busy loop makes
                # thousands), and the worker still asks.
                assert 2 <= refused < 60, refused
                assert worker.dequeue_failures >= 2
            finally:
                worker.cancel()
                await asyncio.wait_for(running, 30)
            try:
                # Redis still refusing, the worker closed every socket it opened (those
                # Redis killed included): this process holds only the test's own
                assert _sockets_to(server.port) == 1
            finally:
                await admin.aclose()
