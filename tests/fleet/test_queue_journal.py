"""One journal interface, two backends: the JSON-lines file (one process) and Redis (a
fleet), each used by ``provision()`` the same way; and the claim that fences a Redis
journal's writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from pecapi import PecClient, RetryPolicy, ValidationError
from pecapi.fleet.journal_redis import ClaimLost, RedisJournal, connect
from pecapi.fleet.queue_run import AccountListing, QueueRun
from pecapi.journal import Journal, ProvisionJournal, ProvisionOutcome
from pecapi.provision import ProvisionRequest, provision
from pecapi.testing import Emulator
from tests.cli.conftest import closed_port
from tests.conftest import PDF_BYTES, make_registration

__all__ = ["closed_port"]  # the fixture


@pytest.fixture(params=["file", "redis"])
async def journal(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str
) -> AsyncIterator[ProvisionJournal]:
    if request.param == "file":
        yield Journal(tmp_path / "run.jsonl")
    else:
        yield RedisJournal(redis_url, "run")


def _outcome(key: str, status: str, line: int = 2, **fields: object) -> ProvisionOutcome:
    return ProvisionOutcome(key=key, status=status, line=line, **fields)  # type: ignore[arg-type]


async def test_the_latest_record_per_key_counts(journal: ProvisionJournal) -> None:
    await journal.start()
    try:
        await journal.write(_outcome("a@x.it", "awaiting_activation", mailbox_id="m1"), final=False)
        await journal.write(_outcome("a@x.it", "activated", mailbox_id="m1"), final=True)
        await journal.write(_outcome("b@x.it", "failed", line=3), final=True)
        await journal.write(_outcome("a@x.it", "skipped", line=4), final=True)  # changes nothing
        everything = await journal.read()
        some = await journal.read(["b@x.it", "missing@x.it"])
    finally:
        await journal.finish()
    assert {k: r["status"] for k, r in everything.items()} == {
        "a@x.it": "activated",
        "b@x.it": "failed",
    }
    assert everything["a@x.it"]["complete"] is True and everything["a@x.it"]["mailbox_id"] == "m1"
    assert list(some) == ["b@x.it"]


async def test_provision_runs_and_resumes_on_either_journal(
    journal: ProvisionJournal, client: PecClient, emulator: Emulator
) -> None:
    requests = [
        ProvisionRequest(make_registration(f"j{i}@testcert.legalmail.it"), documents=[PDF_BYTES])
        for i in range(5)
    ]

    async def run() -> dict[str, str]:
        found: dict[str, str] = {}
        async with provision(client, requests, journal=journal, concurrency=2) as batch:
            async for result in batch:
                assert result.value is not None, result.error
                found[result.value.key] = result.value.status
        return found

    assert set((await run()).values()) == {"activated"}
    assert set((await run()).values()) == {"skipped"}
    assert len(emulator.charges(operation="register")) == 5
    # a registration is journaled before it is sent only where other processes read it
    assert journal.intents is isinstance(journal, RedisJournal)


async def test_a_write_whose_claim_was_lost_writes_nothing(redis_url: str) -> None:
    mine, other = RedisJournal(redis_url, "fenced"), RedisJournal(redis_url, "fenced")
    redis = connect(redis_url)
    try:
        assert await mine.claim("c@x.it", lease=5)
        assert not await other.claim("c@x.it", lease=5)  # held
        await mine.write(_outcome("c@x.it", "registering"), final=False)
        # the claim expires (its holder paused past the lease) and another takes it
        await redis.delete(mine.keys.claim("c@x.it"))
        assert await other.claim("c@x.it", lease=5)
        assert not await mine.still_holds("c@x.it", lease=5)
        with pytest.raises(ClaimLost):
            await mine.write(_outcome("c@x.it", "failed"), final=True)
        assert (await other.read(["c@x.it"]))["c@x.it"]["status"] == "registering"
        await other.write(_outcome("c@x.it", "registered", mailbox_id="m9"), final=True)
        assert (await mine.read(["c@x.it"]))["c@x.it"]["status"] == "registered"
    finally:
        await redis.aclose()
        await mine.finish()
        await other.finish()


async def test_a_redis_journal_needs_a_name_and_a_reachable_redis(closed_port: int) -> None:
    with pytest.raises(Exception, match="name"):
        RedisJournal("redis://127.0.0.1:1/0", "")
    book = RedisJournal(f"redis://127.0.0.1:{closed_port}/0", "nowhere")
    with pytest.raises(Exception, match="cannot reach"):
        await book.start()
    await book.finish()


def test_outcome_statuses_are_checked() -> None:
    with pytest.raises((ValueError, ValidationError)):
        _outcome("d@x.it", "not-a-status")


class _RedisOnAnotherClock(aioredis.Redis):
    """A Redis whose host's clock is an hour behind this machine's (what a worker on
    another machine sees of this one's, with a badly set clock)."""

    async def time(self, **kwargs: Any) -> tuple[int, int]:
        seconds, micros = await super().time(**kwargs)
        return int(seconds) - 3600, int(micros)


async def test_the_settle_window_runs_on_redis_clock(redis_url: str, client: PecClient) -> None:
    # A worker journals "registering", then dies; another, whose clock differs from the
    # first one's, takes the row over at once: it must wait the whole window (the API may
    # still commit the registration), whatever the machines' clocks say.
    redis = _RedisOnAnotherClock.from_url(redis_url)
    journal = RedisJournal(redis, "clocks")
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    key = "late@testcert.legalmail.it"
    try:
        await journal.write(_outcome(key, "registering"), final=False)
        at = dt.datetime.fromisoformat((await journal.read([key]))[key]["at"])
        assert abs((at - await journal.now()).total_seconds()) < 600  # Redis's clock
        policy = RetryPolicy(max_attempts=1, sleep=sleep, settle=60)
        run = QueueRun(
            client.with_options(retry=policy),
            journal,
            listing=AccountListing(client),
            lease=30,
            since=0,
        )
        await run.prepare(ProvisionRequest(make_registration(key)))
        assert len(waits) == 1 and waits[0] > 50
    finally:
        await redis.aclose()
