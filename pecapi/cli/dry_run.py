"""``pecapi provision FILE.csv --dry-run``: what the run would do and cost, nothing sent.

The CSV is read and checked as a real run reads it (the whole file first; then, row by
row, the pipeline's own rules: the address's domain for the environment, a repeated
address, the journal's complete rows), the journal is read and never written, and the
rows left are counted per operation and mailbox type, priced with the user's price
list (``--prices``: pecapi has no prices of its own) and set against the wallet.

The wallet is read only when the environment holds the account's OAuth credentials:
the token service shows it to the e-mail and API key, not to a token. That read
(``GET /wallet``, v1 ``GET /credit``, HTTP Basic) is the only request a dry run may
send: no PEC API request, no token made, nothing registered or paid.

What it cannot know without asking the PEC API it counts high: an address the account
already has (a real run takes it over for free) and a ``pending`` registration (its
outcome was unknown; a real run looks at the account first) count as registrations.
The real charge can only be lower.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import attrs

from pecapi.errors import ConfigurationError, PecApiError, PecError, ValidationError
from pecapi.journal import Journal
from pecapi.models.rules import check_mailbox_domain
from pecapi.oauth_v2 import OAuthV2TokenProvider
from pecapi.pricing import CostEstimate, PriceList, estimate
from pecapi.provision import InvalidRow, ProvisionRequest

from . import events
from .connection import OAUTH_VERSION_HINT, missing_oauth_credentials, oauth_from_args
from .csvinput import read_csv
from .exits import ExitCode, error_text, exit_code_for
from .output import Output

__all__ = ["Plan", "WalletReading", "plan", "run"]

# a journal status of a mailbox an earlier run registered: what is left is free
_AWAITING = "awaiting_activation"


@attrs.frozen
class Problem:
    """A row a real run would report ``invalid`` or ``duplicate``, sending nothing."""

    key: str
    line: int | None
    status: str
    error: Exception


@attrs.define
class Plan:
    """What a real run would do with each row, as far as the CSV and the journal tell."""

    rows: int = 0
    register: list[ProvisionRequest] = attrs.Factory(list)  # paid: one registration each
    activate: Counter[str] = attrs.Factory(Counter)  # mailbox type -> activations (free)
    done: int = 0  # complete in the journal: skipped
    awaiting: int = 0  # registered by an earlier run (journal): only its activation left
    pending: int = 0  # of ``register``: the journal's outcome was unknown
    problems: list[Problem] = attrs.Factory(list)

    def status_count(self, status: str) -> int:
        return sum(p.status == status for p in self.problems)


def plan(
    requests: Iterable[ProvisionRequest | InvalidRow],
    previous: Mapping[str, Mapping[str, Any]],
    *,
    sandbox: bool,
) -> Plan:
    """Each row sorted as :func:`pecapi.provision.provision` would, in the same order of
    checks (domain, then repetition, then the journal), without the account's listing."""
    found = Plan()
    seen: set[str] = set()
    for item in requests:
        found.rows += 1
        if isinstance(item, InvalidRow):
            found.problems.append(Problem(item.key, item.line, "invalid", item.error))
            continue
        key, registration = item.key, item.registration
        try:
            check_mailbox_domain(
                registration.casella_pec, registration.tipo_casella, sandbox=sandbox
            )
        except ValidationError as exc:
            found.problems.append(Problem(key, item.line, "invalid", exc))
            continue
        if key in seen:
            error = ValidationError("casella_pec", f"{key} appears more than once in the input")
            found.problems.append(Problem(key, item.line, "duplicate", error))
            continue
        seen.add(key)
        before = previous.get(key) or {}
        if before.get("complete"):
            found.done += 1
            continue
        if before.get("status") == _AWAITING and before.get("mailbox_id"):
            found.awaiting += 1
        else:
            found.pending += before.get("status") == "pending"
            found.register.append(item)
        if item.documents is not None:
            found.activate[registration.tipo_casella.value] += 1
    return found


def _read_journal(path: Path) -> tuple[dict[str, dict[str, Any]], bool]:
    """The journal's latest record per key, and whether there is a journal."""
    try:
        return Journal(path).load(), path.exists()  # reads only: a dry run creates none
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigurationError(f"cannot read the journal {str(path)!r}: {reason}") from None


@attrs.frozen
class WalletReading:
    """The wallet's credit, or why it is unknown (``reason``; ``error`` if a read failed)."""

    credit: Decimal | None = None
    service: str | None = None
    reason: str | None = None
    error: PecError | None = None


def _refused(exc: PecError) -> bool:
    return isinstance(exc, PecApiError) and exc.status in (401, 403)


def _wallet_exit(exc: PecError) -> ExitCode:
    # credentials the token service refuses are configuration, as for a token (exit 6)
    return ExitCode.CONFIGURATION if _refused(exc) else exit_code_for(exc)


async def read_wallet(args: argparse.Namespace) -> WalletReading:
    """The wallet through the account's OAuth credentials, if the environment has them."""
    missing = missing_oauth_credentials(args.sandbox)
    if missing:
        return WalletReading(
            reason=f"needs OAuth credentials: set {' and '.join(missing)}; "
            "a token cannot read the wallet"
        )
    try:
        provider = oauth_from_args(args)
        service = "v2" if isinstance(provider, OAuthV2TokenProvider) else "v1"
        async with provider:
            wallet = await provider.wallet()
    except PecError as exc:
        reason = f"could not read it: {error_text(exc)}"
        if _refused(exc):
            reason += f" (check the e-mail and API key, and {OAUTH_VERSION_HINT})"
        return WalletReading(reason=reason, error=exc)
    return WalletReading(credit=wallet.credit, service=service)


def _cost(found: Plan, prices: PriceList | None) -> CostEstimate | None:
    """The cost without the credit (a price the list lacks: ConfigurationError, before
    anything is sent); None when prices are needed and not given."""
    if prices is None and found.register:
        return None
    return estimate(found.register, prices or PriceList({}))


@attrs.frozen
class OperationLine:
    operation: str
    mailbox_type: str
    quantity: int
    paid: bool
    unit_price: Decimal | None
    subtotal: Decimal | None


def _operations(found: Plan, cost: CostEstimate | None) -> list[OperationLine]:
    unit = {line.mailbox_type: line.unit_price for line in cost.lines} if cost else {}
    lines = []
    registrations = Counter(item.registration.tipo_casella.value for item in found.register)
    for kind, n in registrations.items():
        price = unit.get(kind)
        subtotal = None if price is None else price * n
        lines.append(OperationLine("register", kind, n, True, price, subtotal))
    for kind, n in found.activate.items():
        lines.append(OperationLine("activate", kind, n, False, Decimal(0), Decimal(0)))
    return lines


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value)  # exact: never through a float


def _eur(value: Decimal) -> str:
    return f"{value:.2f} EUR"


@attrs.frozen
class Estimate:
    """Everything a dry run prints."""

    file: str
    journal: Path
    journal_found: bool
    prices: str | None
    plan: Plan
    cost: CostEstimate | None
    wallet: WalletReading
    exit_code: int

    def event(self) -> dict[str, Any]:
        """The ``"event": "estimate"`` object of ``--json`` (amounts as decimal strings)."""
        found, cost, wallet = self.plan, self.cost, self.wallet
        return {
            "event": events.ESTIMATE,
            "file": self.file,
            "rows": {
                "total": found.rows,
                "register": len(found.register),
                "activate": sum(found.activate.values()),
                "done": found.done,
                "awaiting_activation": found.awaiting,
                "pending": found.pending,
                "invalid": found.status_count("invalid"),
                "duplicate": found.status_count("duplicate"),
            },
            "journal": str(self.journal),
            "journal_found": self.journal_found,
            "operations": [
                {
                    "operation": line.operation,
                    "mailbox_type": line.mailbox_type,
                    "quantity": line.quantity,
                    "paid": line.paid,
                    "unit_price": _money(line.unit_price),
                    "subtotal": _money(line.subtotal),
                }
                for line in _operations(found, cost)
            ],
            "currency": "EUR",
            "prices": self.prices,
            "total": None if cost is None else str(cost.total),
            "per_operation": None
            if cost is None
            else {op: str(amount) for op, amount in cost.per_operation.items()},
            "wallet": {
                "credit": _money(wallet.credit),
                "service": wallet.service,
                "reason": wallet.reason,
                "error": None if wallet.error is None else events.error_details(wallet.error),
            },
            "enough": None if cost is None else cost.enough,
            "shortfall": None if cost is None or cost.enough is None else str(cost.shortfall),
            "problems": [
                {
                    "key": p.key,
                    "line": p.line,
                    "status": p.status,
                    "error": events.error_details(p.error),
                }
                for p in found.problems
            ],
            "exit_code": self.exit_code,
        }

    def show(self, out: Output) -> None:
        """The estimate for people: the rows, a table of operations, the total, the wallet."""
        found, cost, wallet = self.plan, self.cost, self.wallet
        for p in found.problems:  # as a real run reports them, on stderr
            where = f"line {p.line}: " if p.line else ""
            print(f"  {where}{p.key}: {p.status}: {p.error}", file=sys.stderr)
        out.line(f"dry run of {self.file}: nothing sent to the PEC API, nothing registered")
        counts = [f"{len(found.register)} to register"]
        for n, what in (
            (sum(found.activate.values()), "to activate (free)"),
            (found.done, "done in the journal"),
            (found.awaiting, "awaiting activation in the journal"),
            (found.status_count("invalid"), "invalid"),
            (found.status_count("duplicate"), "duplicate"),
        ):
            if n:
                counts.append(f"{n} {what}")
        out.line(f"{found.rows} rows: {', '.join(counts)}")
        if not self.journal_found:
            out.line(f"journal {self.journal}: none yet, every row counted")
        elif found.done or found.awaiting:
            out.line(
                f"journal {self.journal}: {found.done} done and {found.awaiting} already "
                "registered left out of the cost"
            )
        else:
            out.line(f"journal {self.journal}: nothing done yet")
        lines = _operations(found, cost)
        if lines:
            out.console.print(_table(lines))
        if cost is None:
            out.line("total: unknown (needs prices: --prices PRICES.json or PRICES.csv)")
        else:
            parts = ", ".join(f"{op} {amount:.2f}" for op, amount in cost.per_operation.items())
            out.line(f"total: {_eur(cost.total)}" + (f" ({parts})" if parts else ""))
        if wallet.credit is None:
            out.line(f"wallet: unknown ({wallet.reason})")
        else:
            verdict = ": whether it is enough needs prices"
            if cost is not None and cost.enough:
                verdict = f": enough, {_eur(wallet.credit - cost.total)} left after"
            elif cost is not None:
                verdict = f": NOT enough, {_eur(cost.shortfall)} short"
            out.line(f"wallet: {_eur(wallet.credit)} (OAuth {wallet.service}){verdict}")
        if found.pending:
            out.line(
                f"{found.pending} pending registration(s) counted: the real run looks at "
                "the account first and registers only those it does not list"
            )
        if found.register:
            out.line(
                "an upper bound: a real run also leaves out the addresses the account "
                "already has, which a dry run does not ask the PEC API about"
            )
        if cost is not None and cost.enough is False:
            out.line(
                f"top up the wallet by at least {_eur(cost.shortfall)} first: a run stops "
                "registering at the first refusal for credit (HTTP 402)"
            )


def _table(lines: list[OperationLine]) -> Any:
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAD)
    for name in ("operation", "mailbox type", "count", "unit price", "subtotal"):
        table.add_column(name, no_wrap=True, justify="right" if name[0] in "cus" else "left")
    for line in lines:
        unit, subtotal = "free", ""
        if line.paid:  # without a price list: "?", and no subtotal
            unit = "?" if line.unit_price is None else f"{line.unit_price:.2f}"
            subtotal = "" if line.subtotal is None else f"{line.subtotal:.2f}"
        table.add_row(*(Text(cell) for cell in (
            line.operation, line.mailbox_type, str(line.quantity), unit, subtotal,
        )))  # fmt: skip
    return table


def _report_wallet_error(exc: PecError, code: int, out: Output) -> None:
    """The failed wallet read as an error too (stderr, last): scripts look there."""
    message = f"could not read the wallet: {error_text(exc)}"
    if out.json_mode:
        line = json.dumps(events.error_event(exc, message, code), ensure_ascii=False)
    else:
        line = "pecapi: " + message
    print(line, file=sys.stderr, flush=True)


async def run(args: argparse.Namespace, out: Output, journal: Path) -> int:
    """The dry run: exit 0 when the wallet can pay or its credit is unknown, 1 when it
    cannot pay, the error's code when the wallet could not be read."""
    prices = PriceList.load(args.prices) if args.prices else None
    table = read_csv(Path(args.file), args.file, args.delimiter)
    previous, journal_found = _read_journal(journal)
    found = plan(table.requests(), previous, sandbox=args.sandbox)
    cost = _cost(found, prices)  # a price missing from the list stops it here: nothing sent
    wallet = await read_wallet(args)
    if cost is not None:
        cost = attrs.evolve(cost, credit=wallet.credit)
    if wallet.error is not None:
        code: int = _wallet_exit(wallet.error)
    elif cost is not None and cost.enough is False:
        code = ExitCode.FAILURE
    else:
        code = ExitCode.OK
    result = Estimate(
        file=args.file,
        journal=journal,
        journal_found=journal_found,
        prices=args.prices,
        plan=found,
        cost=cost,
        wallet=wallet,
        exit_code=code,
    )
    if out.json_mode:
        out.json(result.event())
    else:
        result.show(out)
    if wallet.error is not None:
        _report_wallet_error(wallet.error, code, out)
    return code
