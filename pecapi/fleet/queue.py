"""Provisioning on a job queue: a CSV's rows split into items on a saq queue in Redis, done
by any number of workers (:mod:`pecapi.fleet.worker`), followed from anywhere.

A *job* is one run over a CSV file: its rows, in items of ``chunk`` rows (saq jobs keyed
``<job>:<n>``), and its journal (a :class:`~pecapi.fleet.journal_redis.RedisJournal`,
by name: running the same file again with the same journal skips what is complete). A
worker holding an item heartbeats it; a worker that dies (SIGKILL, a lost machine) stops
heartbeating, and saq's sweep puts its item back on the queue after the lease, for
another worker. Rows are not trusted to the item: each is claimed in Redis, journaled
``registering`` before its registration is sent, and a worker taking over a row that a
dead one left unsettled waits out the settle window and reads the account first.

Progress comes from Redis too: every final outcome is counted once per job (by input
line) and appended to the job's event stream, which :meth:`ProvisionQueue.follow` reads.

One job per journal at a time: submitting while a job of that journal is unfinished
follows that job instead of starting another.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs

from pecapi.errors import ConfigurationError
from pecapi.fleet.journal_redis import (
    DEFAULT_NAMESPACE,
    JOB_TTL,
    FleetKeys,
    RedisError,
    connect,
    unreachable,
)
from pecapi.journal import STATUSES
from pecapi.jsontext import JsonError, loads
from pecapi.provision_input import ProvisionRequest, RegistrationsCsv

if TYPE_CHECKING:
    from saq.queue import Queue

__all__ = [
    "DEFAULT_CHUNK",
    "DEFAULT_LEASE",
    "ITEM_FUNCTION",
    "CsvSource",
    "JobInfo",
    "JobState",
    "ProvisionQueue",
    "saq_queue",
]

#: The saq function name of one item (a chunk of rows).
ITEM_FUNCTION: Final = "pecapi_provision_item"
#: Rows per item.
DEFAULT_CHUNK: Final = 100
#: Seconds a dead worker keeps its item (and its rows' claims) before another takes them.
DEFAULT_LEASE: Final = 30.0
# An item is retried after each worker that died or stopped on it: never given up on.
_ITEM_RETRIES = 1_000_000
# How long a finished item's saq record stays in Redis.
_ITEM_TTL = 24 * 3600


def saq_queue(redis_url: str, namespace: str = DEFAULT_NAMESPACE) -> Queue:
    """The saq queue of provisioning items in ``namespace`` (its own Redis connection)."""
    try:
        from saq.queue.redis import RedisQueue
    except ImportError as exc:  # pragma: no cover - the fleet extra is missing
        raise ConfigurationError(
            "provisioning on a queue needs the fleet extra: pip install 'pecapi[fleet]'"
        ) from exc
    return RedisQueue.from_url(redis_url, name=f"{namespace}:provision")


@attrs.frozen
class CsvSource:
    """What a worker needs to read a job's rows as the CSV would: its header, delimiter,
    name (for messages) and folder (``documenti`` paths are relative to it, and must be
    readable by the workers)."""

    header: tuple[str, ...]
    delimiter: str
    name: str
    folder: str

    def as_json(self) -> dict[str, Any]:
        return {
            "header": list(self.header),
            "delimiter": self.delimiter,
            "name": self.name,
            "folder": self.folder,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CsvSource:
        return cls(
            header=tuple(str(c) for c in data["header"]),
            delimiter=str(data["delimiter"]),
            name=str(data["name"]),
            folder=str(data["folder"]),
        )

    def reader(self) -> RegistrationsCsv:
        """The rows' reader: ``reader().request(line, cells)``."""
        text = io.StringIO()
        csv.writer(text, delimiter=self.delimiter).writerow(self.header)
        return RegistrationsCsv(
            [text.getvalue()], name=self.name, folder=self.folder, delimiter=self.delimiter
        )


@attrs.frozen
class JobInfo:
    """A submitted job: ``attached`` when an unfinished job of the same journal was found
    and is followed instead of a new one."""

    id: str
    journal: str
    total: int
    items: int
    attached: bool


@attrs.frozen
class JobState:
    """Where a job stands: rows done (each counted once), per status, and whether all are."""

    id: str
    total: int
    statuses: Counter[str]
    finished: bool

    @property
    def done(self) -> int:
        return sum(self.statuses.values())

    @property
    def complete(self) -> int:
        return sum(n for status, n in self.statuses.items() if STATUSES.get(status, False))


def _duplicates(
    source: CsvSource, rows: Sequence[tuple[int, Sequence[str]]]
) -> tuple[set[int], list[str]]:
    """The lines whose address an earlier valid row already has (what one process finds
    by itself; rows of one job are spread over workers), and each row's key."""
    reader = source.reader()
    seen: set[str] = set()
    duplicates: set[int] = set()
    keys: list[str] = []
    for line, cells in rows:
        request = reader.request(line, list(cells))
        key = request.key
        keys.append(key)
        if not isinstance(request, ProvisionRequest):
            continue  # invalid: not a request, and the worker says why
        if key in seen:
            duplicates.add(line)
        seen.add(key)
    return duplicates, keys


class ProvisionQueue:
    """Submits provisioning jobs and follows them: ``async with ProvisionQueue(url) as q``."""

    def __init__(self, url: str, *, namespace: str = DEFAULT_NAMESPACE) -> None:
        self.url: str = url
        self.keys: FleetKeys = FleetKeys(namespace)
        self.namespace: str = namespace
        self._redis: Any = None
        self._queue: Queue | None = None

    @property
    def redis(self) -> Any:
        """The ``redis.asyncio.Redis`` client."""
        if self._redis is None:
            self._redis = connect(self.url)
        return self._redis

    async def __aenter__(self) -> ProvisionQueue:
        try:
            await self.redis.ping()
        except (OSError, RedisError) as exc:
            await self.aclose()
            raise unreachable("the queue's Redis", exc) from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        queue, self._queue = self._queue, None
        if queue is not None:
            await queue.disconnect()
        redis, self._redis = self._redis, None
        if redis is not None:
            await redis.aclose()

    async def submit(
        self,
        source: CsvSource,
        rows: Sequence[tuple[int, Sequence[str]]],
        *,
        journal: str,
        chunk: int = DEFAULT_CHUNK,
        lease: float = DEFAULT_LEASE,
    ) -> JobInfo:
        """Put ``rows`` (each ``(line, cells)``) on the queue as one job journaled in
        ``journal``; or, when a job of that journal is unfinished, return that one."""
        if chunk < 1:
            raise ConfigurationError("chunk must be at least 1")
        if lease < 3:
            raise ConfigurationError("lease must be at least 3 seconds")
        current = await self.redis.get(self.keys.current(journal))
        if current is not None:
            running = current.decode()
            meta = await self.redis.hgetall(self.keys.job(running))
            if meta and meta.get(b"finished") != b"1":
                total, items = int(meta[b"total"]), int(meta[b"items"])
                return JobInfo(running, journal, total, items, attached=True)
        job_id = uuid.uuid4().hex[:16]
        parts = [rows[i : i + chunk] for i in range(0, len(rows), chunk)]
        duplicates, _ = _duplicates(source, rows)
        meta_key = self.keys.job(job_id)
        await self.redis.hset(
            meta_key,
            mapping={
                "journal": journal,
                "total": len(rows),
                "items": len(parts),
                "file": source.name,
                "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                # rows found taken are looked up in a listing of the account made after this
                "since": repr(time.time()),
                "finished": "0" if rows else "1",
            },
        )
        await self.redis.set(self.keys.current(journal), job_id)
        queue = await self._saq()
        from saq.job import Job

        limit = asyncio.Semaphore(16)

        async def put(number: int, part: Sequence[tuple[int, Sequence[str]]]) -> None:
            job = Job(
                function=ITEM_FUNCTION,
                kwargs={
                    "job": job_id,
                    "csv": source.as_json(),
                    "rows": [[line, list(cells)] for line, cells in part],
                    "duplicates": sorted(line for line, _ in part if line in duplicates),
                },
                key=f"{job_id}:{number}",
                timeout=0,  # an item takes what its rows take; the heartbeat tells it lives
                heartbeat=max(1, round(lease)),
                retries=_ITEM_RETRIES,
                ttl=_ITEM_TTL,
            )
            async with limit:
                await queue.enqueue(job)

        await asyncio.gather(*(put(n, part) for n, part in enumerate(parts)))
        return JobInfo(job_id, journal, len(rows), len(parts), attached=False)

    async def _saq(self) -> Queue:
        if self._queue is None:
            self._queue = saq_queue(self.url, self.namespace)
            await self._queue.connect()
        return self._queue

    async def state(self, job_id: str) -> JobState:
        """Rows done per status, from the job's counts in Redis."""
        meta = await self.redis.hgetall(self.keys.job(job_id))
        if not meta:
            raise ConfigurationError(f"no provisioning job {job_id!r} in this Redis")
        statuses: Counter[str] = Counter(
            value.decode() for value in await self.redis.hvals(self.keys.done(job_id))
        )
        total = int(meta[b"total"])
        finished = meta.get(b"finished") == b"1" or sum(statuses.values()) >= total
        return JobState(job_id, total, statuses, finished)

    async def follow(
        self, job_id: str, *, block: float = 1.0, until: Callable[[], bool] | None = None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Each row's outcome (its journal record, with ``line``) as workers finish it,
        from the first; ends when every row of the job is done, or when ``until()`` says
        so (checked at least every ``block`` seconds)."""
        stream = self.keys.events(job_id)
        last = b"0-0"
        while True:
            if until is not None and until():
                return
            found = await self.redis.xread({stream: last}, count=500, block=int(block * 1000))
            if not found:
                if (await self.state(job_id)).finished:
                    # finished is set with the last event: one more read empties the stream
                    found = await self.redis.xread({stream: last}, count=500)
                    if not found:
                        await self._expire(job_id)
                        return
                else:
                    continue
            for _, entries in found:
                for entry_id, fields in entries:
                    last = entry_id
                    try:
                        record = loads(fields[b"outcome"])
                    except (JsonError, KeyError):
                        continue
                    if isinstance(record, dict):
                        yield record

    async def _expire(self, job_id: str) -> None:
        for key in (self.keys.job(job_id), self.keys.done(job_id), self.keys.events(job_id)):
            await self.redis.expire(key, JOB_TTL)


def default_journal_name(path: str | os.PathLike[str]) -> str:
    """The journal of a CSV file when none is named: its absolute path (the same file
    submitted again resumes)."""
    return os.path.abspath(os.fspath(path))
