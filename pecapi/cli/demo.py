"""``pecapi demo``: provision sandbox mailboxes end to end on the embedded emulator.

Starts :mod:`pecapi.testing` in-process on loopback, then for each mailbox: checks that
the address is free, registers it, downloads the activation form, activates it with a
generated PDF, lets the emulated provider process it, and renews it. No account, no
network. Shows a progress bar on a terminal (plain lines otherwise, JSON lines with
``--json``) and a summary with the emulator's charge ledger.
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

from .connection import positive_int
from .exits import ExitCode, error_line
from .output import Output
from .progress import progress

__all__ = ["Outcome", "Summary", "add_parser", "provision", "run"]

DONE = "done"


def registration(index: int) -> MailboxRegistration:
    return samples.registration(f"demo.user{index:05d}@testcert.legalmail.it")


@attrs.frozen
class Outcome:
    """What happened to one mailbox: ``outcome`` is "done", "taken" or an error's name."""

    index: int
    casella_pec: str
    outcome: str
    id: str | None = None
    stato: str | None = None
    error: str | None = None


async def _provision_one(
    client: PecClient, emulator: Emulator, index: int, document: bytes
) -> Outcome:
    reg = registration(index)
    box_id: str | None = None
    try:
        if not await client.mailboxes.is_available(reg.casella_pec):
            return Outcome(index, reg.casella_pec, "taken")
        box = await client.mailboxes.register(reg)
        box_id = box.id
        assert box_id is not None
        form = await client.mailboxes.activation_form(box_id)
        if not form.startswith(b"%PDF-"):
            return Outcome(index, reg.casella_pec, "bad form", box_id)
        await client.mailboxes.activate(box_id, [document, document])  # form + identity
        emulator.complete_activation(box_id)  # the provider checks the documents
        box = await client.mailboxes.renew(box_id)
    except PecError as exc:
        return Outcome(index, reg.casella_pec, type(exc).__name__, box_id, error=error_line(exc))
    stato = box.stato.value if box.stato is not None else None
    outcome = DONE if box.stato is MailboxState.EVASA else f"stato {stato}"
    return Outcome(index, reg.casella_pec, outcome, box_id, stato)


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


async def provision(count: int, concurrency: int, on_outcome: Callable[[Outcome], None]) -> Summary:
    """Provision ``count`` mailboxes on a fresh in-process emulator; ``on_outcome`` each."""
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
                outcome = await _provision_one(client, emulator, index, document)
            outcomes[outcome.outcome] += 1
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


def _summary_json(summary: Summary) -> dict[str, Any]:
    return {
        "event": "summary",
        "count": summary.count,
        "done": summary.done,
        "outcomes": summary.outcomes,
        "charges": {
            op: {"count": e["count"], "amount": f"{e['amount']:.2f}"}
            for op, e in summary.charges.items()
        },
        "total_charged": f"{summary.total_charged:.2f}",
        "wallet_before": f"{summary.wallet_before:.2f}",
        "wallet_after": f"{summary.wallet_after:.2f}",
        "requests": summary.requests,
        "mailboxes_on_account": summary.mailboxes_on_account,
        "seconds": round(summary.seconds, 3),
    }


def _print_summary(out: Output, summary: Summary) -> None:
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
    outcomes = Table("outcome", "mailboxes", box=box.SIMPLE_HEAD, title="outcomes")
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


async def run(count: int, concurrency: int, out: Output) -> int:
    """The demo, shown on ``out``; exit code 0 when every mailbox was provisioned."""
    if out.json_mode:
        summary = await provision(
            count, concurrency, lambda o: out.json({"event": "mailbox", **attrs.asdict(o)})
        )
        out.json(_summary_json(summary))
        return ExitCode.OK if summary.done == count else ExitCode.FAILURE

    out.line(
        f"pecapi demo: provisioning {count} sandbox mailboxes on the embedded emulator, "
        f"{concurrency} at a time"
    )
    failures = 0

    def report_failure(outcome: Outcome) -> None:
        nonlocal failures
        if outcome.outcome != DONE:
            failures += 1
            if failures <= 10:
                detail = outcome.error or outcome.outcome
                print(f"  {outcome.casella_pec}: {detail}", file=sys.stderr, flush=True)

    with progress(out, "mailboxes", count) as advance:

        def on_outcome(outcome: Outcome) -> None:
            report_failure(outcome)
            advance(outcome.outcome != DONE)

        summary = await provision(count, concurrency, on_outcome)
    _print_summary(out, summary)
    return ExitCode.OK if summary.done == count else ExitCode.FAILURE


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    parser = subparsers.add_parser(
        "demo",
        help="provision sandbox mailboxes end to end on the embedded emulator",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--count", type=positive_int, default=300, help="mailboxes (default 300)")
    parser.add_argument(
        "--concurrency", type=positive_int, default=50, help="at a time (default 50)"
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
