"""``pecapi demo``: provision sandbox mailboxes end to end on the embedded emulator.

Starts :mod:`pecapi.testing` in-process on loopback, then for each mailbox: checks that
the address is free, registers it, downloads the activation form, activates it with a
generated PDF, lets the emulated provider process it, and renews it. No account, no
network. Shows a progress bar on a terminal (plain lines otherwise, JSON lines with
``--json``: :mod:`pecapi.cli.events`) and a summary with the emulator's charge ledger.
SIGINT or SIGTERM starts no new mailbox and ends with a partial summary.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import attrs

from pecapi.client import PecClient
from pecapi.errors import PecError
from pecapi.models.enums import MailboxState
from pecapi.models.mailbox import MailboxRegistration
from pecapi.testing import DEFAULT_TOKEN, Emulator, make_pdf, samples

from . import events
from .connection import CONCURRENCY, positive_int
from .exits import ExitCode
from .output import Output
from .progress import progress
from .stopping import Stop

__all__ = ["Outcome", "Summary", "add_parser", "provision", "run"]

COUNT = 300
DONE = "done"
UNAVAILABLE = "unavailable"
FAILED = "failed"

DESCRIPTION = """\
Provision sandbox mailboxes end to end on an embedded emulator: no account, no network.

Starts the emulator of pecapi.testing in this process, on loopback, then for each
mailbox: checks that the address is free, registers it, downloads the activation form,
activates it with a generated PDF, lets the emulated provider process it, and renews
it. Shows a progress bar on a terminal (plain lines otherwise) and a summary with the
emulator's charge ledger. Ctrl-C or SIGTERM starts no new mailbox and prints a partial
summary (exit 130 or 143).

--json prints one JSON line per mailbox ("event": "outcome"), then one with "event":
"summary"."""


def registration(index: int) -> MailboxRegistration:
    return samples.registration(f"demo.user{index:05d}@testcert.legalmail.it")


class DemoCheckFailed(Exception):
    """A step answered, but not as the demo expects (the form is not a PDF...)."""


@attrs.frozen
class Outcome:
    """What happened to one mailbox: ``status`` is "done", "unavailable" or "failed"
    (``error`` says why)."""

    index: int
    casella_pec: str
    status: str
    id: str | None = None
    stato: str | None = None
    error: Exception | None = None

    def event(self) -> dict[str, Any]:
        """The JSON line of this outcome."""
        return events.outcome(
            self.casella_pec,
            self.status,
            complete=self.status == DONE,
            error=self.error,
            index=self.index,
            mailbox_id=self.id,
            stato=self.stato,
        )


async def _provision_one(
    client: PecClient, emulator: Emulator, index: int, document: bytes
) -> Outcome:
    reg = registration(index)
    box_id: str | None = None
    try:
        if not await client.mailboxes.is_available(reg.casella_pec):
            return Outcome(index, reg.casella_pec, UNAVAILABLE)
        box = await client.mailboxes.register(reg)
        box_id = box.id
        assert box_id is not None
        form = await client.mailboxes.activation_form(box_id)
        if not form.startswith(b"%PDF-"):
            bad = DemoCheckFailed("the activation form is not a PDF")
            return Outcome(index, reg.casella_pec, FAILED, box_id, error=bad)
        await client.mailboxes.activate(box_id, [document, document])  # form + identity
        emulator.complete_activation(box_id)  # the provider checks the documents
        box = await client.mailboxes.renew(box_id)
    except PecError as exc:
        return Outcome(index, reg.casella_pec, FAILED, box_id, error=exc)
    stato = box.stato.value if box.stato is not None else None
    if box.stato is MailboxState.EVASA:
        return Outcome(index, reg.casella_pec, DONE, box_id, stato)
    late = DemoCheckFailed(f"the mailbox ended in state {stato}, not evasa")
    return Outcome(index, reg.casella_pec, FAILED, box_id, stato, error=late)


@attrs.frozen
class Summary:
    count: int
    outcomes: dict[str, int]
    charges: dict[str, dict[str, Any]]
    total_charged: Decimal
    wallet_before: Decimal
    wallet_after: Decimal
    requests: int
    mailboxes_on_account: int
    seconds: float

    @property
    def done(self) -> int:
        return self.outcomes.get(DONE, 0)

    @property
    def remaining(self) -> int:
        """Mailboxes never started (a signal stopped the demo)."""
        return self.count - sum(self.outcomes.values())


async def provision(
    count: int,
    concurrency: int,
    on_outcome: Callable[[Outcome], None],
    *,
    stop: Stop | None = None,
) -> Summary:
    """Provision ``count`` mailboxes on a fresh in-process emulator; ``on_outcome`` each.
    Once ``stop`` is requested, no new mailbox is started."""
    credit = Decimal(100 * count)
    emulator = Emulator(seed=1, credit=credit)
    document = make_pdf("signed activation form", ["pecapi demo"])
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    async with (
        emulator.serve() as server,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url) as client,
    ):
        limit = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with limit:
                if stop is not None and stop.requested:
                    return  # not started: counted as remaining
                outcome = await _provision_one(client, emulator, index, document)
            outcomes[outcome.status] += 1
            on_outcome(outcome)

        await asyncio.gather(*(one(i) for i in range(count)))
        listed = await client.mailboxes.list()
    seconds = time.perf_counter() - started
    charges: dict[str, dict[str, Any]] = {}
    for charge in emulator.ledger:
        entry = charges.setdefault(charge.operation, {"count": 0, "amount": Decimal(0)})
        entry["count"] += 1
        entry["amount"] += charge.amount
    return Summary(
        count=count,
        outcomes=dict(outcomes),
        charges=charges,
        total_charged=sum((c.amount for c in emulator.ledger), start=Decimal(0)),
        wallet_before=credit,
        wallet_after=emulator.wallet,
        requests=len(emulator.requests),
        mailboxes_on_account=len(listed),
        seconds=seconds,
    )


# -- presentation ------------------------------------------------------------------------


def _summary_json(summary: Summary, stop: Stop, code: int) -> dict[str, Any]:
    return events.summary(
        total=summary.count,
        statuses=summary.outcomes,
        complete=summary.done,
        interrupted=stop.signal,
        exit_code=code,
        charges={
            op: {"count": e["count"], "amount": f"{e['amount']:.2f}"}
            for op, e in summary.charges.items()
        },
        total_charged=f"{summary.total_charged:.2f}",
        wallet_before=f"{summary.wallet_before:.2f}",
        wallet_after=f"{summary.wallet_after:.2f}",
        requests=summary.requests,
        mailboxes_on_account=summary.mailboxes_on_account,
        seconds=round(summary.seconds, 3),
    )


def _print_summary(out: Output, summary: Summary, stop: Stop) -> None:
    from rich import box  # the cli extra: Output already required it for people
    from rich.table import Table
    from rich.text import Text

    rate = summary.done / summary.seconds if summary.seconds > 0 else 0.0
    console = out.console
    out.line(
        f"provisioned {summary.done} of {summary.count} mailboxes in "
        f"{summary.seconds:.2f} s ({rate:.0f}/s), {summary.requests} requests, "
        f"{summary.mailboxes_on_account} mailboxes on the account"
    )
    if stop.requested:
        out.line(f"stopped by {stop.signal}: {summary.remaining} mailboxes not started")
    outcomes = Table("status", "mailboxes", box=box.SIMPLE_HEAD, title="outcomes")
    for name, n in sorted(summary.outcomes.items()):
        outcomes.add_row(Text(name), str(n))
    console.print(outcomes)
    charges = Table(
        "operation", "charges", "EUR", box=box.SIMPLE_HEAD, title="charges (emulator ledger)"
    )
    for op, entry in summary.charges.items():
        charges.add_row(Text(op), str(entry["count"]), f"{entry['amount']:.2f}")
    total = sum(e["count"] for e in summary.charges.values())
    charges.add_row("total", str(total), f"{summary.total_charged:.2f}", style="bold")
    console.print(charges)
    out.line(f"wallet: {summary.wallet_before:.2f} -> {summary.wallet_after:.2f} EUR")


def _exit_code(summary: Summary, stop: Stop) -> int:
    if stop.requested:
        return stop.exit_code
    return ExitCode.OK if summary.done == summary.count else ExitCode.FAILURE


async def run(count: int, concurrency: int, out: Output) -> int:
    """The demo, shown on ``out``; exit code 0 when every mailbox was provisioned."""
    result: list[Summary] = []
    seen: Counter[str] = Counter()  # for the summary of a demo cancelled in flight

    def stopping(name: str) -> None:
        if not out.json_mode:
            print(f"pecapi: {name}: finishing the mailboxes in flight, starting no new one",
                  file=sys.stderr, flush=True)  # fmt: skip

    stop = Stop(stopping)
    failures = 0

    def report_failure(outcome: Outcome) -> None:
        nonlocal failures
        if outcome.status != DONE:
            failures += 1
            if failures <= 10:
                detail = str(outcome.error) if outcome.error else outcome.status
                print(f"  {outcome.casella_pec}: {detail}", file=sys.stderr, flush=True)

    if not out.json_mode:
        out.line(
            f"pecapi demo: provisioning {count} sandbox mailboxes on the embedded emulator, "
            f"{concurrency} at a time"
        )
    with progress(out, "mailboxes", None if out.json_mode else count) as advance:

        def on_outcome(outcome: Outcome) -> None:
            seen[outcome.status] += 1
            if out.json_mode:
                out.json(outcome.event())
            else:
                report_failure(outcome)
                advance(outcome.status != DONE)

        async def work() -> None:
            result.append(await provision(count, concurrency, on_outcome, stop=stop))

        await stop.run(work())
    code: int
    if not result:  # a second signal cancelled it: counts, but no ledger to show
        code = stop.exit_code
        if out.json_mode:
            out.json(events.summary(total=count, statuses=seen, complete=seen[DONE],
                                    interrupted=stop.signal, exit_code=code))  # fmt: skip
        else:
            out.line(
                f"cancelled by {stop.signal}: {seen[DONE]} done, "
                f"{sum(seen.values()) - seen[DONE]} not done, "
                f"{count - sum(seen.values())} not finished of {count}"
            )
        return code
    code = _exit_code(result[0], stop)
    if out.json_mode:
        out.json(_summary_json(result[0], stop, code))
    else:
        _print_summary(out, result[0], stop)
    return code


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="provision sandbox mailboxes end to end on the embedded emulator",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--count", type=positive_int, default=COUNT, metavar="N",
        help=f"mailboxes (default {COUNT})",
    )  # fmt: skip
    parser.add_argument(
        "--concurrency",
        type=positive_int,
        default=CONCURRENCY,
        metavar="N",
        help=f"mailboxes at a time (default {CONCURRENCY})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS,
        help="JSON lines: one per mailbox, then the summary",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    out = Output(json_mode=getattr(args, "json", False))
    return asyncio.run(run(args.count, args.concurrency, out))
