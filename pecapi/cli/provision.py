"""``pecapi provision FILE.csv``: check, register and activate every row, resumably."""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from pecapi.provision import ProvisionOutcome, provision

from . import dry_run, events
from .connection import (
    CONCURRENCY,
    add_connection_options,
    client_from_args,
    positive_int,
    seconds,
)
from .csvinput import delimiter, read_csv
from .exits import UsageError
from .output import Output
from .progress import progress
from .stopping import Stop

__all__ = ["add_parser"]

# The queue's defaults, without importing pecapi.fleet (and Redis) for every command.
DEFAULT_NAMESPACE = "pecapi"
DEFAULT_CHUNK = 100
DEFAULT_LEASE = 30.0
#: The queue's Redis URL when --queue is not given (keeps a password out of the command line).
QUEUE_ENV = "PECAPI_QUEUE"

DESCRIPTION = """\
Check, register and activate every row of a CSV file, resumably.

The header names the API's fields (casella_pec, tipo_casella, tipo_cliente,
nome_richiedente, ...), plus an optional 'documenti' column of activation PDFs separated
by ';' (paths relative to the CSV). Cells are separated by ',' ';' tab or '|': the
header tells which (or give --delimiter); a UTF-8 byte order mark, as Excel writes it,
is fine. The whole file is checked before anything is sent. A malformed row (a bad
value, too few or too many cells, an address of the wrong environment) is reported
with its line and skipped, nothing sent for it.

Each outcome goes to the journal as it arrives; the same command again skips what is
done, activates what was only registered and retries what failed, never registering a
mailbox twice. Ctrl-C or SIGTERM starts no new row, lets those in flight finish, and
prints what is left and the command to resume (exit 130 or 143); a second signal
cancels those in flight.

--dry-run reads and checks the whole file and the journal as a run would, and prints
what the run would register and activate, per mailbox type, and what it would cost
with your price list (--prices: a JSON or CSV file; pecapi has no prices of its own),
against the wallet when OPENAPI_EMAIL and OPENAPI_SANDBOX_API_KEY (OPENAPI_API_KEY in
production) are set: the wallet is read from the OAuth service (v2, or v1 with
OPENAPI_OAUTH_VERSION=1), and nothing else is sent, no token needed. It exits 0 when
the wallet can pay or its credit is unknown, 1 when it cannot pay.

--queue redis://HOST:PORT/DB puts the rows on a job queue in Redis for the workers
('pecapi worker --queue ...', any number, on any machine) and follows the job: a progress
bar over every worker's rows, or the same JSON lines. The journal is then in Redis
(--journal NAME; default: the CSV's absolute path). Ctrl-C stops following only: the job
goes on, and the same command follows it again (or, once it is finished, resumes it).

--json prints one JSON line per row ("event": "outcome"), then one with "event":
"summary" (with --dry-run: one "event": "estimate"); an error is one JSON object on
stderr ("event": "error")."""


def _resume_command(args: argparse.Namespace) -> str:
    argv = getattr(args, "argv", None)
    return shlex.join(["pecapi", *(sys.argv[1:] if argv is None else argv)])


def _outcome_event(outcome: ProvisionOutcome) -> dict[str, Any]:
    # The journal's record (every field of the outcome, whatever its status) as the
    # stream's outcome line; the error with the details of events.error_details.
    record = outcome.record()
    record.pop("at", None)
    for name in ("event", "key", "status", "complete", "error"):
        record.pop(name, None)
    return events.outcome(
        outcome.key, outcome.status, complete=outcome.complete, error=outcome.error, **record
    )


def _problem(outcome: ProvisionOutcome, record: dict[str, Any]) -> str | None:
    """What to tell a person about an incomplete outcome (its error, or its reason)."""
    if outcome.error is not None:
        return str(outcome.error)
    reason = record.get("reason")
    return str(reason) if reason else None


async def run(args: argparse.Namespace, out: Output) -> int:
    source = Path(args.file)
    journal = Path(args.journal) if args.journal else source.with_suffix(".journal.jsonl")
    if args.dry_run:
        return await dry_run.run(args, out, journal)
    table = read_csv(source, args.file, args.delimiter)  # whole, checked: nothing sent yet
    if args.queue:
        from .queued import run_queued

        return await run_queued(args, out, source, table, _resume_command(args))
    total = len(table.rows)
    statuses: Counter[str] = Counter()
    complete = 0

    def stopping(name: str) -> None:
        if not out.json_mode:
            print(
                f"pecapi: {name}: finishing the rows in flight, starting no new one "
                "(again to cancel them)",
                file=sys.stderr,
                flush=True,
            )

    stop = Stop(stopping)

    def items() -> Any:
        for item in table.requests():
            if stop.requested:
                return  # the batch starts no new row; those in flight finish
            yield item

    async def work() -> None:
        nonlocal complete
        async with client_from_args(args) as client:
            # stop: a row already started sends neither its check nor its registration
            # after the first signal (it comes out "stopped", done by the next run)
            batch = provision(client, items(), concurrency=args.concurrency, journal=journal,
                              total=total, stop=lambda: stop.requested)  # fmt: skip
            with progress(out, "rows", None if out.json_mode else total) as advance:
                async with batch:
                    async for result in batch:
                        found = result.value
                        if found is None:  # a bug, not an API failure: shown, counted
                            statuses["error"] += 1
                            if out.json_mode:
                                key = getattr(result.input, "key", "")
                                out.json(events.outcome(key, "error", complete=False,
                                                        error=result.error))  # fmt: skip
                            else:
                                print(f"pecapi: {result.error!r}", file=sys.stderr)
                            continue
                        statuses[found.status] += 1
                        complete += found.complete
                        if out.json_mode:
                            out.json(_outcome_event(found))
                            continue
                        advance(not found.complete)
                        problem = _problem(found, found.record())
                        if not found.complete and problem:
                            where = f"line {found.line}: " if found.line else ""
                            print(f"  {where}{found.key}: {found.status}: {problem}",
                                  file=sys.stderr)  # fmt: skip

    await stop.run(work())
    finished = sum(statuses.values())
    incomplete = finished - complete
    code = stop.run_exit_code(incomplete)
    left = incomplete > 0 or finished < total
    resume = _resume_command(args) if left else None
    if out.json_mode:
        out.json(
            events.summary(
                total=total,
                statuses=statuses,
                complete=complete,
                interrupted=stop.signal,
                exit_code=code,
                journal=str(journal),
                resume=resume,
            )
        )
        return code
    counts = ", ".join(f"{n} {status}" for status, n in sorted(statuses.items()))
    out.line(f"{finished} rows: {counts or 'none'}")
    if stop.requested:
        how = "cancelled in flight" if stop.forced else "stopped"
        out.line(
            f"{how} by {stop.signal}: {complete} done, {incomplete} not done, "
            f"{total - finished} not started of {total}"
        )
    out.line(f"journal: {journal}")
    if resume is not None:
        out.line(f"run again to resume: {resume}")
    return code


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "provision",
        help="register (and activate) every mailbox of a CSV file, resumably",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("file", metavar="FILE.csv", help="the registrations")
    parser.add_argument(
        "--journal",
        metavar="FILE.jsonl",
        help="the journal (default: FILE.journal.jsonl); with --queue, its name in Redis "
        "(default: the CSV's absolute path)",
    )
    parser.add_argument(
        "--delimiter",
        type=delimiter,
        metavar="SEP",
        help="the cells' separator: ',' ';' tab or '|' (default: found from the header)",
    )
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=CONCURRENCY,
        metavar="N",
        help=f"rows at a time (default {CONCURRENCY})",
    )
    queued = parser.add_argument_group("job queue (the fleet extra)")
    queued.add_argument(
        "--queue",
        metavar="REDIS_URL",
        default=os.environ.get(QUEUE_ENV) or None,
        help="put the rows on the job queue at this Redis URL for 'pecapi worker' processes, "
        f"and follow the job (default: ${QUEUE_ENV}, the place for a URL with a password)",
    )
    queued.add_argument(
        "--namespace",
        default=DEFAULT_NAMESPACE,
        metavar="NS",
        help=f"prefix of the Redis keys; the workers' own (default {DEFAULT_NAMESPACE})",
    )
    queued.add_argument(
        "--chunk",
        type=positive_int,
        default=DEFAULT_CHUNK,
        metavar="N",
        help=f"rows per queue item (default {DEFAULT_CHUNK})",
    )
    queued.add_argument(
        "--lease",
        type=seconds,
        default=DEFAULT_LEASE,
        metavar="SECONDS",
        help="how long a dead worker's items wait before other workers take them "
        f"(default {DEFAULT_LEASE:g}, at least 3)",
    )
    estimate = parser.add_argument_group("dry run")
    estimate.add_argument(
        "--dry-run",
        action="store_true",
        help="send nothing: print what the run would do and cost, and whether the "
        "wallet can pay (exit 1 when it cannot)",
    )
    estimate.add_argument(
        "--prices",
        metavar="PRICES.json|csv",
        help="your prices in EUR, for --dry-run's total (without it: counts only)",
    )
    estimate.add_argument(
        "--oauth-url",
        metavar="URL",
        help="for --dry-run: another address of the OAuth service that shows the wallet, "
        "e.g. a local emulator (default: Openapi's, v2 or v1)",
    )
    add_connection_options(parser, top=False)

    def handle(args: argparse.Namespace) -> int:
        if args.queue and args.dry_run:
            raise UsageError(parser.format_usage(), parser.prog, "--dry-run reads a journal "
                             "file: it does not go with --queue")  # fmt: skip
        if args.lease < 3:
            raise UsageError(parser.format_usage(), parser.prog, "--lease: at least 3 seconds")
        for flag in ("prices", "oauth_url"):
            if getattr(args, flag) is not None and not args.dry_run:
                option = "--" + flag.replace("_", "-")
                raise UsageError(
                    parser.format_usage(), parser.prog, f"{option} goes with --dry-run"
                )
        out = Output(json_mode=args.json)
        return asyncio.run(run(args, out))

    parser.set_defaults(handler=handle)
