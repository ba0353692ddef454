"""How long a worker taking over a row left unsettled waits before reading the account.

A ``registering`` record is journaled once, before the first send; the register call may
send again much later (a settle window that ended "not applied" is followed by a resend),
until its worker stopped. A ``pending`` record is journaled once its call gave up:
nothing was sent after it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from pecapi import PecClient, RetryPolicy
from pecapi.fleet.journal_redis import RedisJournal
from pecapi.fleet.queue_run import AccountListing, QueueRun
from pecapi.journal import ProvisionOutcome
from pecapi.provision import ProvisionRequest
from tests.conftest import make_registration

WINDOW = 60.0
KEY = "late@testcert.legalmail.it"


class _RedisOnAnotherClock(aioredis.Redis):
    """A Redis whose host's clock is an hour behind this machine's."""

    async def time(self, **kwargs: Any) -> tuple[int, int]:
        seconds, micros = await super().time(**kwargs)
        return int(seconds) - 3600, int(micros)


@pytest.fixture
async def journal(redis_url: str) -> AsyncIterator[RedisJournal]:
    redis = _RedisOnAnotherClock.from_url(redis_url)
    try:
        yield RedisJournal(redis, "takeover")
    finally:
        await redis.aclose()


async def left(journal: RedisJournal, status: str, age: float) -> None:
    """A row journaled ``status`` by a worker that stopped: its record's time ``age``
    seconds ago (on Redis's clock, as written)."""
    await journal.write(ProvisionOutcome(key=KEY, status=status, line=2), final=False)  # type: ignore[arg-type]
    record = (await journal.read([KEY]))[KEY]
    at = await journal.now() - dt.timedelta(seconds=age)
    record["at"] = at.isoformat(timespec="milliseconds")
    await journal.redis.hset(journal.keys.journal("takeover"), KEY, json.dumps(record))


async def waits_of_takeover(journal: RedisJournal, client: PecClient) -> list[float]:
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = RetryPolicy(max_attempts=1, sleep=sleep, settle=WINDOW)
    run = QueueRun(
        client.with_options(retry=policy),
        journal,
        listing=AccountListing(client),
        lease=30,
        since=0,
    )
    await run.prepare(ProvisionRequest(make_registration(KEY)))
    return waits


async def test_a_row_left_registering_gets_a_whole_window_from_its_takeover(
    journal: RedisJournal, client: PecClient
) -> None:
    # First sent two windows ago, and sent again since (its worker then died): the
    # record's time says nothing of the last send.
    await left(journal, "registering", 2 * WINDOW)
    assert await waits_of_takeover(journal, client) == [WINDOW]


async def test_a_row_left_pending_is_waited_from_its_record(
    journal: RedisJournal, client: PecClient
) -> None:
    await left(journal, "pending", 2 * WINDOW)
    assert await waits_of_takeover(journal, client) == []  # its window is over


async def test_a_pending_row_s_window_runs_on_redis_clock(
    journal: RedisJournal, client: PecClient
) -> None:
    # Given up on a second ago, on a Redis whose clock is an hour behind this machine's.
    await left(journal, "pending", 1.0)
    (wait,) = await waits_of_takeover(journal, client)
    assert WINDOW - 30 < wait <= WINDOW - 1
