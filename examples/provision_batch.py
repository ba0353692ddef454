"""Provision every mailbox listed in a CSV file: check, register, activate. Resumable.

    export OPENAPI_SANDBOX_TOKEN=...        # production: OPENAPI_TOKEN and PECAPI_PRODUCTION=1
    python examples/provision_batch.py people.csv [people.journal.jsonl]

The CSV's header names the API's fields (casella_pec, tipo_casella, tipo_cliente,
nome_richiedente, ...), plus an optional ``documenti`` column of activation PDFs separated
by ``;``. Each outcome is written to the journal as it arrives: run the same command again
after a crash or Ctrl-C and nothing is registered (or paid for) twice. Exit status 0 when
every row is done, 1 when some are not (they are retried by the next run), 2 when the file
cannot be read.

PECAPI_BASE_URL points the client at another server, e.g. ``pecapi emulator``.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sys
from collections import Counter
from pathlib import Path

import pecapi
from pecapi.provision import STATUSES, provision, read_registrations_csv


def make_client() -> pecapi.PecClient:
    return pecapi.PecClient(
        sandbox=os.environ.get("PECAPI_PRODUCTION") != "1",
        base_url=os.environ.get("PECAPI_BASE_URL") or None,
        # The API's own rate, whatever the batch's concurrency: a burst of 429s helps nobody.
        rate_limit=20,
    )


def count_rows(path: Path) -> int:
    # The rows are streamed to the batch, so it cannot know how many there are; counting
    # them costs one quick pass over the file and gives the progress line its total.
    with path.open(newline="", encoding="utf-8-sig") as fh:
        return max(sum(1 for _ in csv.reader(fh)) - 1, 0)


def show(progress: pecapi.BatchProgress) -> None:
    # Called in the event loop after each result: keep it quick, never block in it.
    if progress.done % 100 == 0 or progress.done == progress.total:
        print(f"{progress.done}/{progress.total} done, {progress.failed} failed", file=sys.stderr)


async def main(path: Path, journal: Path) -> int:
    statuses: Counter[str] = Counter()
    async with make_client() as client:
        run = provision(
            client,
            read_registrations_csv(path),  # read lazily: a million rows cost little memory
            journal=journal,
            concurrency=10,
            total=count_rows(path),
            on_progress=show,
        )
        # As a context manager, so that Ctrl-C or an error cancels what is in flight and
        # waits for it; the journal says which registrations may still be pending.
        async with run:
            async for result in run:
                if result.error is not None:  # outside the pipeline's steps (rare)
                    statuses["error"] += 1
                    print(f"row #{result.index}: {result.error!r}", file=sys.stderr)
                    continue
                outcome = result.value
                statuses[outcome.status] += 1
                detail = outcome.mailbox_id or (str(outcome.error) if outcome.error else "")
                print(f"{outcome.key or f'line {outcome.line}'}\t{outcome.status}\t{detail}")
    print(", ".join(f"{n} {status}" for status, n in sorted(statuses.items())), file=sys.stderr)
    complete = {status for status, done in STATUSES.items() if done}
    return 0 if set(statuses) <= complete else 1


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    csv_path = Path(sys.argv[1])
    journal_path = (
        Path(sys.argv[2]) if len(sys.argv) == 3 else csv_path.with_suffix(".journal.jsonl")
    )
    try:
        sys.exit(asyncio.run(main(csv_path, journal_path)))
    except (OSError, pecapi.ValidationError, pecapi.ConfigurationError) as exc:
        # an unreadable file, a bad header, a journal that cannot be written: nothing sent
        print(f"{csv_path}: {exc}", file=sys.stderr)
        sys.exit(2)
