"""``pecapi provision FILE.csv --queue redis://...``: put the rows on the job queue and
follow the job's progress, aggregated over every worker (``pecapi worker``).

The file is read and checked whole first, as without ``--queue``; then the job is
submitted (or, when a job of the same journal is unfinished, that job is followed) and
each row's outcome is shown as a worker finishes it: a progress bar, or under ``--json``
the same ``"outcome"`` and ``"summary"`` lines as a run in one process. A signal stops
the following only: the job goes on in the workers, and the same command follows it
again. Nothing here talks to the API: the workers do.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pecapi.journal import STATUSES

from . import events
from .csvinput import CsvTable
from .output import Output
from .progress import progress
from .stopping import Stop

__all__ = ["redact", "run_queued"]


def _outcome_event(record: dict[str, Any]) -> dict[str, Any]:
    """A worker's journal record as the stream's outcome line (its error as journaled:
    ``type``, ``message``, ``field``, ``request_sent``)."""
    fields = {k: v for k, v in record.items() if k not in ("at", "key", "status", "complete")}
    error = fields.pop("error", None)
    status = str(record.get("status"))
    return {
        "event": events.OUTCOME,
        "key": record.get("key", ""),
        "status": status,
        "complete": STATUSES.get(status, False),
        **fields,
        "error": error,
    }


def redact(command: str) -> str:
    """``command`` with the password of any URL in it replaced by ``***`` (a Redis URL
    may carry one: ``redis://:password@host``); set it in ``PECAPI_QUEUE`` instead."""
    return _PASSWORD.sub(r"\1***@", command)


# Up to the last "@" of the authority: redis-py (urllib) reads "redis://:p@ss@host" as the
# password "p@ss", so a password may hold an "@".
_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/@\s:]*:)[^/\s]+@", re.IGNORECASE)


def _csv_source(source: Path, table: CsvTable) -> Any:
    from pecapi.fleet.queue import CsvSource

    folder = os.path.dirname(os.path.abspath(source))  # the workers read documents there
    return CsvSource(table.source.header, table.source.delimiter, source.name, folder)


async def run_queued(
    args: argparse.Namespace, out: Output, source: Path, table: CsvTable, resume: str
) -> int:
    """Submit ``table`` to the queue of ``args.queue`` and follow the job to its end."""
    from pecapi.fleet.queue import ProvisionQueue, default_journal_name

    journal = args.journal or default_journal_name(source)
    csv_source = _csv_source(source, table)
    statuses: Counter[str] = Counter()
    complete = 0
    total = len(table.rows)
    job_id = ""

    def stopping(name: str) -> None:
        if not out.json_mode:
            print(
                f"pecapi: {name}: no longer following; the job goes on in the workers "
                "(the same command follows it again)",
                file=sys.stderr,
                flush=True,
            )

    stop = Stop(stopping)

    async def work() -> None:
        nonlocal complete, total, job_id
        async with ProvisionQueue(args.queue, namespace=args.namespace) as queue:
            info = await queue.submit(
                csv_source, table.rows, journal=journal, chunk=args.chunk, lease=args.lease
            )
            job_id, total = info.id, info.total
            if not out.json_mode:
                what = "following the unfinished job" if info.attached else "job"
                print(
                    f"pecapi: {what} {info.id}: {info.total} rows in {info.items} items; "
                    f"journal {journal!r}",
                    file=sys.stderr,
                    flush=True,
                )
            with progress(out, "rows", None if out.json_mode else total) as advance:
                follow = queue.follow(info.id, until=lambda: stop.requested)
                async with contextlib.aclosing(follow):
                    async for record in follow:
                        status = str(record.get("status"))
                        done = STATUSES.get(status, False)
                        statuses[status] += 1
                        complete += done
                        if out.json_mode:
                            out.json(_outcome_event(record))
                        else:
                            advance(not done)
                            error = record.get("error") or {}
                            if not done and error.get("message"):
                                line = record.get("line")
                                where = f"line {line}: " if line else ""
                                print(f"  {where}{record.get('key')}: {status}: "
                                      f"{error['message']}", file=sys.stderr)  # fmt: skip
                        if stop.requested:
                            break

    await stop.run(work())
    finished = sum(statuses.values())
    incomplete = finished - complete
    code = stop.run_exit_code(incomplete)
    again = redact(resume) if incomplete > 0 or finished < total else None
    if out.json_mode:
        out.json(
            events.summary(
                total=total,
                statuses=statuses,
                complete=complete,
                interrupted=stop.signal,
                exit_code=code,
                journal=journal,
                job=job_id,
                resume=again,
            )
        )
        return code
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    out.line(f"{finished} rows: {counts or 'none'}")
    if stop.requested:
        out.line(
            f"stopped following by {stop.signal}: {finished} of {total} done so far; "
            "the job goes on in the workers"
        )
    out.line(f"job {job_id}, journal in Redis: {journal}")
    if again is not None:
        what = "follow it again" if stop.requested else "run again to resume"
        out.line(f"{what}: {again}")
    return code
