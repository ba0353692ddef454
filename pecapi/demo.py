"""``python -m pecapi.demo``: provision sandbox mailboxes end to end on the embedded emulator.

Starts :mod:`pecapi.testing` in-process on loopback, then for each mailbox: checks the
address is free, registers it, downloads the activation form, activates it with a
generated PDF, lets the emulated provider process it, and renews it. No account, no
network. Prints a summary with the emulator's charge ledger.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
import time
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal

from pecapi.client import PecClient
from pecapi.errors import PecError
from pecapi.models.mailbox import MailboxRegistration
from pecapi.testing import DEFAULT_TOKEN, Emulator, make_pdf


def _registration(index: int) -> MailboxRegistration:
    return MailboxRegistration(
        casella_pec=f"demo.user{index:05d}@testcert.legalmail.it",
        tipo_casella="BRONZE",
        tipo_cliente="PV",
        nome_richiedente="Mario",
        cognome_richiedente=f"Rossi{index}",
        email=f"user{index}@example.org",
        telefono="0548798569",
        codice_fiscale_richiedente="RSSMRA82D11H501X",
        data_nascita_richiedente=dt.date(1982, 4, 11),
        sesso_richiedente="M",
        nazione_nascita_richiedente="IT",
        indirizzo_titolare="via Verdi 20",
        comune_titolare="Roma",
        cap_titolare="00042",
        nazione_titolare="IT",
        provincia_titolare="RM",
    )


async def _provision(client: PecClient, emulator: Emulator, index: int, document: bytes) -> str:
    registration = _registration(index)
    if not await client.mailboxes.is_available(registration.casella_pec):
        return "taken"
    box = await client.mailboxes.register(registration)
    assert box.id is not None
    form = await client.mailboxes.activation_form(box.id)
    if not form.startswith(b"%PDF-"):
        return "bad form"
    await client.mailboxes.activate(box.id, [document, document])
    emulator.complete_activation(box.id)
    await client.mailboxes.renew(box.id)
    return "done"


async def run(count: int, concurrency: int) -> int:
    emulator = Emulator(seed=1, credit=Decimal(100 * count))
    document = make_pdf("signed activation form")
    outcomes: Counter[str] = Counter()
    started = time.perf_counter()
    async with (
        emulator.serve() as server,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url) as client,
    ):
        print(f"emulator at {server.url}: provisioning {count} mailboxes, {concurrency} at a time")
        limit = asyncio.Semaphore(concurrency)

        async def one(index: int) -> None:
            async with limit:
                try:
                    outcomes[await _provision(client, emulator, index, document)] += 1
                except PecError as exc:
                    outcomes[type(exc).__name__] += 1
                    print(f"  mailbox {index}: {exc}", file=sys.stderr)

        await asyncio.gather(*(one(i) for i in range(count)))
        listed = await client.mailboxes.list()
    elapsed = time.perf_counter() - started
    spent = sum((charge.amount for charge in emulator.ledger), start=Decimal(0))
    by_operation = Counter(charge.operation for charge in emulator.ledger)
    print(f"done in {elapsed:.2f}s: {dict(outcomes)}")
    print(f"mailboxes on the account: {len(listed)}, {len(emulator.requests)} requests")
    print(f"charges: {dict(by_operation)}, total {spent}, wallet left {emulator.wallet}")
    return 0 if outcomes["done"] == count else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pecapi.demo", description=__doc__)
    parser.add_argument("--count", type=int, default=300, help="mailboxes to provision")
    parser.add_argument("--concurrency", type=int, default=50)
    args = parser.parse_args(argv)
    if args.count < 1 or args.concurrency < 1:
        parser.error("--count and --concurrency must be at least 1")
    return asyncio.run(run(args.count, args.concurrency))


if __name__ == "__main__":
    raise SystemExit(main())
