"""A provisioning worker: takes items (chunks of rows) of queued jobs off the saq queue
and does their rows, ``concurrency`` rows at a time, until it is stopped.

Per item: a heartbeat (every third of the lease) tells saq the item is alive and extends
the claims of its rows; each row is claimed, skipped when the job has it done already,
read against the journal (and the account when the journal says it may be there), then
done as one process would (:class:`~pecapi.fleet.queue_run.QueueRun`). A worker killed
mid-item stops heartbeating: saq's sweep puts the item back on the queue after the lease,
and the next worker finds each row's truth in the journal and on the account.

:meth:`ProvisionWorker.stop` drains: no new row is started and no check or registration
is sent after it; what is in flight finishes (a registration sent is journaled and
activated); the items with rows left go back on the queue for other workers, and the
worker ends. :meth:`ProvisionWorker.cancel` ends at once (a registration in flight is
journaled ``pending``, and settled by whoever takes its row).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING, Any

from pecapi.errors import ConfigurationError, ValidationError
from pecapi.fleet.journal_redis import (
    DEFAULT_NAMESPACE,
    ClaimLost,
    FleetKeys,
    RedisError,
    RedisJournal,
    connect,
    unreachable,
)
from pecapi.fleet.queue import DEFAULT_LEASE, ITEM_FUNCTION, CsvSource, saq_queue
from pecapi.fleet.queue_run import AccountListing, QueueRun
from pecapi.journal import ProvisionOutcome
from pecapi.provision_input import InvalidRow, ProvisionRequest

if TYPE_CHECKING:
    from pecapi.client import PecClient

__all__ = ["ItemInterrupted", "ProvisionWorker"]

logger: logging.Logger = logging.getLogger("pecapi")


class ItemInterrupted(Exception):
    """An item whose rows are not all done (the worker is stopping, or a row's claim was
    lost): raised to saq, which puts the item back on the queue."""


class _QuietInterruptions(logging.Filter):
    """saq logs a retried item with its traceback; an interrupted item is expected."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, ItemInterrupted)


class ProvisionWorker:
    """``await ProvisionWorker(client, "redis://...").run()`` until :meth:`stop`.

    ``concurrency``: rows at a time (over all its items); ``items``: items held at a time
    (two or more keep rows flowing while an item finishes its last ones); ``lease``:
    seconds after which a dead worker's items and rows go to others (heartbeats every
    third of it); ``sweep``: how often this worker looks for items of dead ones (default:
    a third of the lease).
    """

    def __init__(
        self,
        client: PecClient,
        url: str,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        concurrency: int = 50,
        items: int = 4,
        lease: float = DEFAULT_LEASE,
        sweep: float | None = None,
    ) -> None:
        if concurrency < 1 or items < 1:
            raise ConfigurationError("concurrency and items must be at least 1")
        if lease < 3:
            raise ConfigurationError("lease must be at least 3 seconds")
        self.client: PecClient = client
        self.url: str = url
        self.namespace: str = namespace
        self.keys: FleetKeys = FleetKeys(namespace)
        self.concurrency: int = concurrency
        self.items: int = items
        self.lease: float = lease
        self.sweep: float = sweep if sweep is not None else max(1.0, lease / 3)
        self.draining: bool = False
        #: rows this worker finished (each once per job), items it ended
        self.rows_done: int = 0
        self.items_done: int = 0
        #: times taking an item off the queue failed (Redis unreachable)
        self.dequeue_failures: int = 0
        self._failing = 0
        self._running = 0
        self._redis: Any = None
        self._listings: dict[str, AccountListing] = {}
        self._rows: asyncio.Semaphore | None = None
        self._saq: Any = None

    # -- lifecycle ----------------------------------------------------------------------

    async def run(self) -> None:
        """Work until :meth:`stop` (then drain) or :meth:`cancel`."""
        from saq import Worker

        quiet = _QuietInterruptions()
        saq_logger = logging.getLogger("saq")
        saq_logger.addFilter(quiet)
        queue = saq_queue(self.url, self.namespace)
        self._patient(queue)
        self._redis = connect(self.url)
        self._rows = asyncio.Semaphore(self.concurrency)
        try:
            try:
                await queue.connect()
                await self._redis.ping()
            except (OSError, RedisError) as exc:
                raise unreachable("the queue's Redis", exc) from None
            timers: Any = {"sweep": max(1, round(self.sweep)), "abort": 1}
            self._saq = Worker(
                queue,
                [(ITEM_FUNCTION, self._item)],
                concurrency=self.items,
                timers=timers,
            )
            self._saq.SIGNALS = []  # the signals are the caller's (the command line's)
            if self.draining:  # stopped before it started
                return
            await self._saq.start()
        finally:
            saq_logger.removeFilter(quiet)
            with contextlib.suppress(Exception):
                # bounded: a pub/sub connection saq opened for a sweep may not close cleanly
                await asyncio.wait_for(queue.disconnect(), 5)
            queued: Any = getattr(queue, "redis", None)  # saq's RedisQueue: its client
            with contextlib.suppress(Exception):
                # saq's disconnect stops at its first failure (a Redis refusing the
                # pub/sub's goodbye): its connections are closed all the same
                if queued is not None:
                    await asyncio.wait_for(queued.connection_pool.disconnect(), 5)
            redis, self._redis = self._redis, None
            if redis is not None:
                await redis.aclose()

    def _patient(self, queue: Any) -> None:
        """saq's worker asks for the next item again at once when asking failed: with
        Redis down, a busy loop. Between failed asks, a pause growing to 2 s (and one
        warning per outage)."""
        dequeue = queue.dequeue

        async def patient(*args: Any, **kwargs: Any) -> Any:
            try:
                job = await dequeue(*args, **kwargs)
            except Exception as exc:
                self.dequeue_failures += 1
                self._failing += 1
                if self._failing == 1:
                    logger.warning(
                        "provisioning worker: cannot take items off the queue (%s); trying again",
                        type(exc).__name__,
                    )
                await asyncio.sleep(min(2.0, 0.05 * 2 ** min(self._failing, 6)))
                raise
            self._failing = 0
            return job

        queue.dequeue = patient

    def stop(self) -> None:
        """Drain (see the module doc); the worker ends once its items are put back or done."""
        self.draining = True
        if self._running == 0:
            self._end()

    def cancel(self) -> None:
        """End now: the items in flight are cancelled and put back on the queue."""
        self.draining = True
        self._end()

    def _end(self) -> None:
        if self._saq is not None:
            self._saq.event.set()

    # -- one item -----------------------------------------------------------------------

    async def _item(
        self,
        ctx: dict[str, Any],
        *,
        job: str,
        csv: dict[str, Any],
        rows: list[list[Any]],
        duplicates: list[int],
    ) -> dict[str, int]:
        if self.draining:
            raise ItemInterrupted("the worker is stopping")
        self._running += 1
        try:
            return await self._do_item(ctx["job"], job, CsvSource.from_json(csv), rows, duplicates)
        finally:
            self._running -= 1
            self.items_done += 1
            if self.draining and self._running == 0:
                self._end()

    async def _do_item(
        self,
        saq_job: Any,
        job: str,
        source: CsvSource,
        rows: list[list[Any]],
        duplicates: list[int],
    ) -> dict[str, int]:
        redis = self._redis
        assert redis is not None
        meta = await redis.hgetall(self.keys.job(job))
        if not meta:
            return {"rows": 0}  # the job's keys are gone (expired or deleted): nothing to do
        journal = RedisJournal(
            redis,
            meta[b"journal"].decode(),
            namespace=self.namespace,
            job=job,
            total=int(meta[b"total"]),
        )
        listing = self._listings.get(job)
        if listing is None:
            # one listing per job being worked on; those of jobs long done are let go
            while len(self._listings) >= 4:
                del self._listings[next(iter(self._listings))]
            listing = self._listings[job] = AccountListing(self.client)
        run = QueueRun(
            self.client,
            journal,
            listing=listing,
            lease=self.lease,
            since=float(meta.get(b"since", b"0")),
            stop=lambda: self.draining,
        )
        beating = asyncio.Event()
        beating.set()
        heart = asyncio.ensure_future(self._heartbeat(saq_job, journal, beating))
        try:
            lines = [str(line) for line, _ in rows]
            done = await redis.hmget(self.keys.done(job), lines)
            reader = source.reader()
            # Every row to its end before the item's error is raised (a lost Redis fails
            # them all): none is left running behind the item.
            results = await asyncio.gather(
                *(
                    self._row(run, journal, reader, int(line), cells, int(line) in duplicates)
                    for (line, cells), finished in zip(rows, done, strict=True)
                    if finished is None
                ),
                return_exceptions=True,
            )
            for result in results:
                if isinstance(result, BaseException):
                    raise result
            left = [bool(result) for result in results]
        finally:
            # Told to end, then cancelled, then waited for a moment only: a cancellation
            # swallowed inside the Redis client must not hold the item (seen under load).
            beating.clear()
            heart.cancel()
            await asyncio.wait({heart}, timeout=5)
            for key in list(journal.tokens):
                with contextlib.suppress(Exception):
                    await journal.release(key)
        undone = sum(1 for ok in left if not ok)
        if undone:
            raise ItemInterrupted(f"{undone} rows left for another worker")
        return {"rows": len(left)}

    async def _heartbeat(self, saq_job: Any, journal: RedisJournal, beating: asyncio.Event) -> None:
        while beating.is_set():
            await asyncio.sleep(self.lease / 3)
            if not beating.is_set():
                return
            try:
                await saq_job.update()  # "touched": saq's sweep sees the item alive
                lost = await journal.extend(self.lease)
            except Exception as exc:
                logger.warning("provisioning worker: cannot heartbeat an item (%s)", exc)
                continue
            if lost:
                logger.warning(
                    "provisioning worker: %d row claims expired while held (paused?): "
                    "those rows are left to the worker that took them",
                    len(lost),
                )

    async def _row(
        self,
        run: QueueRun,
        journal: RedisJournal,
        reader: Any,
        line: int,
        cells: list[str],
        duplicate: bool,
    ) -> bool:
        """Do one row; False when it is left for another worker."""
        assert self._rows is not None and self._redis is not None
        async with self._rows:
            if self.draining:
                return False
            item: ProvisionRequest | InvalidRow = reader.request(line, cells)
            if duplicate and isinstance(item, ProvisionRequest):
                error = ValidationError(
                    "casella_pec", f"{item.key} appears more than once in the input"
                )
                await journal.write(
                    ProvisionOutcome(key=item.key, status="duplicate", line=line, error=error),
                    final=True,
                )
                self.rows_done += 1
                return True
            if not isinstance(item, ProvisionRequest):
                await run(item)  # invalid: nothing sent, nothing claimed
                self.rows_done += 1
                return True
            done_key = self.keys.done(journal.job or "")
            while not await journal.claim(item.key, self.lease):
                # Another process has this address: this row's earlier holder (until its
                # claim expires) or a row of another job. Wait, or see it done.
                if await self._redis.hexists(done_key, str(line)):
                    return True
                if self.draining:
                    return False
                await asyncio.sleep(min(1.0, self.lease / 10))
            try:
                if await self._redis.hexists(done_key, str(line)):
                    return True  # done by the holder before us
                early = await run.prepare(item)
                if early is not None:
                    await run._record(early)
                    outcome = early
                else:
                    outcome = await run(item)
            except ClaimLost as exc:
                logger.warning("provisioning worker: %s", exc)
                return False
            finally:
                await journal.release(item.key)
            if outcome.status == "stopped":
                return False
            self.rows_done += 1
            return True
