"""A long-running worker that renews mailboxes shortly before they expire.

    export OPENAPI_SANDBOX_TOKEN=...        # production: OPENAPI_TOKEN and PECAPI_PRODUCTION=1
    python examples/worker_bot.py

A scanner lists the account every PECAPI_SCAN_INTERVAL seconds (default 3600) and queues
each active mailbox that expires within PECAPI_RENEW_WITHIN_DAYS days (default 30);
PECAPI_WORKERS tasks (default 4) take the jobs from the queue and renew them, all through
one PecClient. SIGTERM or Ctrl-C stops it gracefully: no new jobs are taken, the renewals
in flight finish, the client closes, exit status 0.

PECAPI_BASE_URL points the client at another server, e.g. ``pecapi emulator``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import signal

import pecapi

log = logging.getLogger("renewal-bot")


def make_client() -> pecapi.PecClient:
    return pecapi.PecClient(
        sandbox=os.environ.get("PECAPI_PRODUCTION") != "1",
        base_url=os.environ.get("PECAPI_BASE_URL") or None,
    )


async def scan(client: pecapi.PecClient, queue: asyncio.Queue[str | None], busy: set[str]) -> None:
    within = dt.timedelta(days=float(os.environ.get("PECAPI_RENEW_WITHIN_DAYS", "30")))
    interval = float(os.environ.get("PECAPI_SCAN_INTERVAL", "3600"))
    while True:
        try:
            boxes = await client.mailboxes.list()
        except pecapi.PecError as exc:  # retried by pecapi already: try again next round
            log.warning("cannot list the mailboxes: %s", exc)
            boxes = []
        horizon = dt.date.today() + within
        for box in boxes:
            due = box.data_scadenza is not None and box.data_scadenza <= horizon
            # `busy` holds the ids queued or being renewed: a mailbox found again by the
            # next scan while its renewal is still on the way must not be renewed twice.
            if box.id and due and box.stato is pecapi.MailboxState.EVASA and box.id not in busy:
                busy.add(box.id)
                await queue.put(box.id)
        await asyncio.sleep(interval)


async def work(client: pecapi.PecClient, queue: asyncio.Queue[str | None], busy: set[str]) -> None:
    while (box_id := await queue.get()) is not None:  # None: time to stop
        log.info("renewing %s", box_id)
        try:
            box = await client.mailboxes.renew(box_id)
        except pecapi.OutcomeUnknownError as exc:
            # It may have been renewed: never renew again blindly. The id stays busy, so
            # this process leaves it alone; a later scan by a new process sees the expiry
            # moved on if it did happen.
            log.error("renewal of %s: outcome unknown (%s); check the account", box_id, exc)
            continue
        except pecapi.PecError as exc:  # it did not happen: the next scan tries again
            log.warning("renewal of %s failed: %s", box_id, exc)
        else:
            log.info("renewed %s until %s", box_id, box.data_scadenza)
        busy.discard(box_id)


async def main() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    queue: asyncio.Queue[str | None] = asyncio.Queue()
    busy: set[str] = set()
    count = int(os.environ.get("PECAPI_WORKERS", "4"))
    # One client for every task: one connection pool, and the per-mailbox locks that keep
    # two paid writes on one mailbox apart.
    async with make_client() as client:
        scanner = asyncio.create_task(scan(client, queue, busy))
        workers = [asyncio.create_task(work(client, queue, busy)) for _ in range(count)]
        log.info("started: %d workers", count)
        await stop.wait()

        log.info("stopping: finishing the renewals in flight")
        # Listing is a read: cancelling it loses nothing.
        scanner.cancel()
        await asyncio.gather(scanner, return_exceptions=True)
        # Renewals are paid writes: cancelling one in flight would leave its outcome
        # unknown. Drop the jobs not started (the next run finds them again), then tell
        # each worker to stop once its current renewal is done. (Give the process a
        # shutdown grace period longer than RetryPolicy.deadline, 180 s by default.)
        while not queue.empty():
            queue.get_nowait()
        for _ in workers:
            queue.put_nowait(None)
        await asyncio.gather(*workers)
    log.info("stopped")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    asyncio.run(main())
