"""``pecapi provision FILE.csv``: check, register and activate every row, resumably.

The CSV's header names the API's fields (casella_pec, tipo_casella, tipo_cliente,
nome_richiedente, ...), plus an optional ``documenti`` column of activation PDFs
separated by ``;`` (paths relative to the CSV). Each outcome goes to the journal as it
arrives; running the same command again skips what is done, activates what was only
registered, and retries what failed, never registering a mailbox twice. A malformed
row is reported with its line number and field and skipped.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from pecapi.provision import STATUSES, ProvisionOutcome, provision, read_registrations_csv

from .connection import add_connection_options, client_from_args, positive_int
from .exits import ExitCode, InputFileError
from .output import Output
from .progress import progress

__all__ = ["add_parser"]


def _rows(path: Path, name: str) -> int:
    """How many rows follow the header, or an InputFileError naming ``name``.

    The whole file is read before anything is sent: a file that turns out unreadable
    halfway would otherwise stop the run after some mailboxes were registered and paid.
    """
    try:
        with path.open("rb") as fh:
            # counted as csv.DictReader yields them: a quoted cell may span lines
            return max(0, sum(1 for row in csv.reader(_utf8_lines(fh, name)) if row) - 1)
    except OSError as exc:
        raise InputFileError(name, exc.strerror or str(exc)) from None
    except csv.Error as exc:
        raise InputFileError(name, f"not a readable CSV file: {exc}") from None


def _utf8_lines(fh: IO[bytes], name: str) -> Iterator[str]:
    # decoded line by line (a newline byte is never inside a UTF-8 character) to say where
    for number, raw in enumerate(fh, 1):
        try:
            yield raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            reason = f"line {number} is not UTF-8 text: save the file as UTF-8"
            raise InputFileError(name, reason) from None


def _record(outcome: ProvisionOutcome) -> dict[str, Any]:
    record = outcome.record()
    record.pop("at", None)
    return record


async def run(args: argparse.Namespace, out: Output) -> int:
    source = Path(args.file)
    total = _rows(source, args.file)
    requests = read_registrations_csv(source)  # lazily; a bad header raises at once
    first = next(requests, None)
    journal = Path(args.journal) if args.journal else source.with_suffix(".journal.jsonl")
    statuses: Counter[str] = Counter()

    def items() -> Any:
        if first is not None:
            yield first
            yield from requests

    async with client_from_args(args) as client:
        batch = provision(
            client, items(), concurrency=args.concurrency, journal=journal, total=total
        )
        with progress(out, "rows", None if out.json_mode else total) as advance:
            async with batch:
                async for result in batch:
                    outcome = result.value
                    if outcome is None:  # a bug, not an API failure: shown, counted
                        statuses["error"] += 1
                        print(f"pecapi: {result.error!r}", file=sys.stderr)
                        continue
                    statuses[outcome.status] += 1
                    if out.json_mode:
                        out.json(_record(outcome))
                    else:
                        advance(not outcome.complete)
                        if not outcome.complete and outcome.error is not None:
                            where = f"line {outcome.line}: " if outcome.line else ""
                            print(
                                f"  {where}{outcome.key}: {outcome.status}: {outcome.error}",
                                file=sys.stderr,
                            )
    incomplete = sum(n for status, n in statuses.items() if not STATUSES.get(status, False))
    if out.json_mode:
        out.json({"event": "summary", "statuses": dict(statuses), "journal": str(journal)})
    else:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
        out.line(f"{sum(statuses.values())} rows: {counts or 'none'}")
        out.line(f"journal: {journal}" + (" (run again to retry)" if incomplete else ""))
    return ExitCode.OK if incomplete == 0 else ExitCode.FAILURE


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "provision",
        help="register (and activate) every mailbox of a CSV file, resumably",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE.csv", help="the registrations")
    parser.add_argument(
        "--journal", metavar="FILE.jsonl", help="the journal (default: FILE.journal.jsonl)"
    )
    parser.add_argument("--concurrency", type=positive_int, default=20, help="at a time (20)")
    add_connection_options(parser, top=False)
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    out = Output(json_mode=args.json)
    return asyncio.run(run(args, out))
