"""A wallet that runs out in the middle of a batch or a provisioning run: the first HTTP 402
stops the paid writes, the rest is reported not sent (never one 402 per item), and a rerun
after topping the wallet up does the rest, each item charged exactly once.

The emulator's wallet holds 40 EUR and a BRONZE registration costs 8: 5 of 20 are paid.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pecapi import (
    Batch,
    BatchFailure,
    BatchProgress,
    BatchSkipped,
    InsufficientCreditError,
    MailboxRegistration,
    NotSentError,
    OutcomeUnknownError,
    PecClient,
    RetryPolicy,
    ValidationError,
)
from pecapi.cli import main
from pecapi.cli.exits import ExitCode
from pecapi.provision import STATUSES, Journal, ProvisionOutcome, ProvisionRequest, provision
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator
from tests.conftest import PDF_BYTES, make_registration, wait_until

CREDIT = Decimal("40")  # 5 BRONZE registrations at 8 EUR
PAID = 5
ITEMS = 20


def _address(i: int) -> str:
    return f"credit{i:03d}@testcert.legalmail.it"


def _registrations(n: int = ITEMS) -> list[MailboxRegistration]:
    return [make_registration(_address(i)) for i in range(n)]


def _refused(emulator: Emulator) -> int:
    """The 402s the API answered (not those of late commits, which nobody saw)."""
    return sum(1 for r in emulator.requests if r.status == 402 and r.fault is None)


def _charged_once(emulator: Emulator, n: int) -> None:
    """``n`` registrations charged, one per mailbox, one mailbox per address."""
    charges = emulator.charges(operation="register")
    assert len(charges) == n
    assert len({c.target_id for c in charges}) == n
    assert len({c.detail for c in charges}) == n  # "BRONZE address": one per address
    assert len(emulator.mailboxes) == n


# -- batches -----------------------------------------------------------------------------


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_402_stops_the_batch_and_the_rest_is_skipped_not_sent(
    client: PecClient, emulator: Emulator, concurrency: int
) -> None:
    emulator.wallet = CREDIT
    progress: list[BatchProgress] = []
    async with client.mailboxes.register_many(
        _registrations(), concurrency=concurrency, on_progress=progress.append
    ) as batch:
        results = [r async for r in batch]

    assert sorted(r.index for r in results) == list(range(ITEMS))
    paid = [r for r in results if r.ok]
    refused = [r for r in results if isinstance(r.error, InsufficientCreditError)]
    skipped = [r for r in results if isinstance(r, BatchSkipped)]
    assert len(paid) == PAID
    # only the calls in flight when the wallet ran out were answered 402
    assert 1 <= len(refused) <= concurrency
    assert len(paid) + len(refused) + len(skipped) == ITEMS
    assert batch.stopped_by in [r.error for r in refused]
    # the skipped ones are the inputs after the stop, and none of them was sent
    assert [r.index for r in skipped] == list(range(ITEMS - len(skipped), ITEMS))
    for result in skipped:
        assert (result.ok, result.value, result.reason) == (False, None, "insufficient credit")
        assert isinstance(result, BatchFailure)  # a failure: the input was not done
        assert isinstance(result.error, NotSentError) and result.error.request_sent is False
        assert result.error.cause is batch.stopped_by
        assert str(result.error) == "not sent: insufficient credit"
    assert emulator.count("POST", "/pec") == PAID + len(refused)
    assert _refused(emulator) == len(refused)
    _charged_once(emulator, PAID)
    assert progress[-1] == BatchProgress(
        done=ITEMS, failed=ITEMS - PAID, skipped=len(skipped), total=ITEMS
    )
    assert (batch.done, batch.failed, batch.skipped) == (ITEMS, ITEMS - PAID, len(skipped))

    # topped up: the rerun of what was not done registers it, each address charged once
    emulator.wallet = Decimal("1000")
    rerun = client.mailboxes.register_many(
        [r.input for r in results if not r.ok], concurrency=concurrency
    )
    again = await rerun.collect()
    assert [r.error for r in again if not r.ok] == []
    assert rerun.stopped_by is None
    _charged_once(emulator, ITEMS)
    assert _refused(emulator) == len(refused)


async def test_the_stop_can_be_turned_off(client: PecClient, emulator: Emulator) -> None:
    emulator.wallet = CREDIT
    batch = client.map(
        client.mailboxes.register, _registrations(), stop_on_insufficient_credit=False
    )
    results = await batch.collect()
    assert batch.stopped_by is None and batch.skipped == 0
    assert [type(r.error) for r in results if not r.ok] == [InsufficientCreditError] * 15
    assert _refused(emulator) == ITEMS - PAID  # the old way: one 402 per item
    _charged_once(emulator, PAID)
    with pytest.raises(ValidationError) as info:
        Batch(client.mailboxes.register, [], stop_on_insufficient_credit=1)  # type: ignore[arg-type]
    assert info.value.field == "stop_on_insufficient_credit"


async def test_other_failures_do_not_stop_a_batch(client: PecClient, emulator: Emulator) -> None:
    """Only a 402 stops: a refusal of one input says nothing about the next."""
    taken = [_address(i) for i in range(0, ITEMS, 2)]
    for address in taken:
        emulator.seed_mailbox(address, stato="evasa")
    results = await client.mailboxes.register_many(_registrations(), concurrency=3).collect()
    assert sum(1 for r in results if r.ok) == ITEMS - len(taken)
    assert not [r for r in results if isinstance(r, BatchSkipped)]


async def test_the_input_after_the_stop_is_read_lazily(
    client: PecClient, emulator: Emulator
) -> None:
    emulator.wallet = CREDIT
    pulled = 0

    def registrations() -> Any:
        nonlocal pulled
        for i in range(100_000):
            pulled += 1
            yield make_registration(_address(i))

    seen = 0
    async with client.mailboxes.register_many(registrations(), concurrency=2) as batch:
        async for result in batch:
            seen += 1
            if isinstance(result, BatchSkipped):
                break
    assert pulled == seen  # what was started came out first; then one skipped, read alone
    assert emulator.count("POST", "/pec") <= PAID + 2


# Which comes first, the late commit of the registration whose outcome is unknown or the
# 402 that stops the batch, is made certain rather than left to timing:
# - "late-commit-first": the 2nd registration is answered 504 and committed 0.4 s later;
#   the input after it is held back until the commit, which is then paid;
# - "402-first": the 6th is, when the first 5 have emptied the wallet: its commit is
#   refused for credit, while the 7th (and those in flight with it) is answered 402.
ORDERS = {"late-commit-first": 2, "402-first": PAID + 1}


def _held(items: list[Any], emulator: Emulator, order: str) -> Any:
    async def source() -> Any:
        for i, item in enumerate(items):
            if order == "late-commit-first" and i == 2:
                await wait_until(lambda: len(emulator.mailboxes) == 2)
            yield item

    return source()


def _late(emulator: Emulator, client: PecClient, order: str) -> PecClient:
    emulator.wallet = CREDIT
    emulator.faults.nth(ORDERS[order], Fault.late(0.4), method="POST", path="/pec")
    # the deadline ends before the commit: the outcome is unknown to the call
    return client.with_options(retry=RetryPolicy(settle=1.0, deadline=0.2, backoff=0.01))


@pytest.mark.parametrize("order", ORDERS)
async def test_an_unknown_outcome_and_a_402_interleave(
    client: PecClient, emulator: Emulator, order: str
) -> None:
    unsure = _late(emulator, client, order)
    batch = unsure.mailboxes.register_many(_held(_registrations(), emulator, order), concurrency=3)
    results = await batch.collect()
    await emulator.drain_late()

    unknown = [r for r in results if isinstance(r.error, OutcomeUnknownError)]
    refused = [r for r in results if isinstance(r.error, InsufficientCreditError)]
    skipped = [r for r in results if isinstance(r, BatchSkipped)]
    assert len(unknown) == 1
    assert 1 <= len(refused) <= 3 and _refused(emulator) == len(refused)
    late_paid = order == "late-commit-first"
    assert sum(1 for r in results if r.ok) == PAID - late_paid
    assert len(skipped) == ITEMS - PAID + late_paid - 1 - len(refused)
    assert emulator.count("POST", "/pec") == ITEMS - len(skipped)
    _charged_once(emulator, PAID)  # the late commit paid, or was refused for credit

    error = unknown[0].error
    assert isinstance(error, OutcomeUnknownError) and error.pending is not None
    settled = await client.reconcile(error.pending)
    assert (settled is not None) is late_paid
    emulator.wallet = Decimal("1000")
    redo = [r.input for r in results if not r.ok and (r is not unknown[0] or settled is None)]
    again = await client.mailboxes.register_many(redo, concurrency=3).collect()
    assert all(r.ok for r in again)
    _charged_once(emulator, ITEMS)


# -- provisioning ------------------------------------------------------------------------


def _requests(n: int = ITEMS, documents: bool = True) -> list[ProvisionRequest]:
    return [
        ProvisionRequest(
            registration=make_registration(_address(i)),
            documents=[PDF_BYTES] if documents else None,
            line=i + 2,
        )
        for i in range(n)
    ]


async def _provision(
    client: PecClient, requests: Any, journal: Path, **kw: Any
) -> tuple[list[ProvisionOutcome], Any]:
    outcomes = []
    async with provision(client, requests, journal=journal, **kw) as run:
        async for result in run:
            assert result.value is not None, result.error
            outcomes.append(result.value)
    return outcomes, run.stopped_by


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_provisioning_stops_registering_on_a_402_and_a_rerun_finishes(
    client: PecClient, emulator: Emulator, tmp_path: Path, concurrency: int
) -> None:
    emulator.wallet = CREDIT
    journal = tmp_path / "run.jsonl"
    outcomes, stopped_by = await _provision(client, _requests(), journal, concurrency=concurrency)

    statuses = Counter(o.status for o in outcomes)
    assert statuses == {"activated": PAID, "no_credit": ITEMS - PAID}
    refused = [o for o in outcomes if isinstance(o.error, InsufficientCreditError)]
    not_sent = [o for o in outcomes if isinstance(o.error, NotSentError)]
    assert 1 <= len(refused) <= concurrency
    assert len(refused) + len(not_sent) == ITEMS - PAID
    assert stopped_by in [o.error for o in refused]
    assert all(o.steps[-1] == "register: InsufficientCreditError" for o in refused)
    for outcome in not_sent:
        assert outcome.steps[-1] == "not sent: insufficient credit"
        assert not outcome.complete and outcome.mailbox_id is None
    assert emulator.count("POST", "/pec") == PAID + len(refused)
    # a not-sent request was not even checked (GET /verifica_pec) unless its check was
    # already in flight when the 402 came
    assert emulator.count("GET", "/verifica_pec/*") <= PAID + len(refused) + concurrency
    assert _refused(emulator) == len(refused)
    _charged_once(emulator, PAID)
    assert emulator.count("PATCH", "/pec/*/attivazione") == PAID  # activations are free

    # every request is in the journal, the unpaid ones incomplete
    records = Journal(journal).load()
    assert len(records) == ITEMS
    no_credit = {k: r for k, r in records.items() if r["status"] == "no_credit"}
    assert len(no_credit) == ITEMS - PAID
    assert all(r["complete"] is False for r in no_credit.values())
    assert Counter(r["error"]["type"] for r in no_credit.values()) == {
        "InsufficientCreditError": len(refused),
        "NotSentError": len(not_sent),
    }

    emulator.wallet = Decimal("1000")
    again, stopped_by = await _provision(client, _requests(), journal, concurrency=concurrency)
    assert stopped_by is None
    assert Counter(o.status for o in again) == {"skipped": PAID, "activated": ITEMS - PAID}
    _charged_once(emulator, ITEMS)
    assert all(r["complete"] for r in Journal(journal).load().values())


async def test_provisioning_goes_on_with_what_is_free_after_a_402(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    """After the 402: a mailbox an earlier run registered is still activated (free), an
    invalid row is still reported; only the registrations stop."""
    box = emulator.seed_mailbox(_address(5), stato="registrata")
    journal = tmp_path / "run.jsonl"
    earlier = {"key": _address(5), "status": "awaiting_activation", "mailbox_id": box}
    journal.write_text(json.dumps({**earlier, "complete": False}) + "\n")
    emulator.wallet = Decimal("8")  # one registration
    # and last, an address of the other environment: invalid, not unpaid (never paid for)
    requests = [*_requests(7), ProvisionRequest(make_registration("late@legalmail.it"))]
    outcomes, stopped_by = await _provision(client, requests, journal, concurrency=1)
    by_key = {o.key: o for o in outcomes}
    assert isinstance(stopped_by, InsufficientCreditError)
    assert by_key[_address(0)].status == "activated"
    assert by_key[_address(1)].status == "no_credit"  # answered 402
    assert isinstance(by_key[_address(1)].error, InsufficientCreditError)
    for i in (2, 3, 4, 6):
        assert by_key[_address(i)].status == "no_credit"
        assert by_key[_address(i)].steps == ("not sent: insufficient credit",)
    assert by_key[_address(5)].status == "activated"
    assert by_key[_address(5)].steps == ("found on the account: registrata", "activate: ok")
    late = by_key["late@legalmail.it"]
    assert (late.status, late.steps) == ("invalid", ())
    assert isinstance(late.error, ValidationError) and late.error.field == "casella_pec"
    assert emulator.count("POST", "/pec") == 2
    assert emulator.count("GET", "/verifica_pec/*") == 2


async def test_a_check_in_flight_when_the_402_comes_registers_nothing(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    """One of the first two availability checks is slow (1 s): meanwhile the other request
    is paid and the third is answered 402. The slow one's registration is not sent."""
    emulator.wallet = Decimal("8")
    emulator.faults.nth(2, Fault.latency(1.0), method="GET", path="/verifica_pec/*")
    outcomes, _ = await _provision(client, _requests(3), tmp_path / "run.jsonl", concurrency=2)
    assert Counter(o.status for o in outcomes) == {"activated": 1, "no_credit": 2}
    late = [o for o in outcomes if o.steps == ("check: available", "not sent: insufficient credit")]
    assert len(late) == 1 and isinstance(late[0].error, NotSentError)
    assert _refused(emulator) == 1
    assert emulator.count("POST", "/pec") == 2


async def test_provisioning_without_the_stop_sends_every_registration(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.wallet = CREDIT
    outcomes, stopped_by = await _provision(
        client, _requests(), tmp_path / "run.jsonl", stop_on_insufficient_credit=False
    )
    assert stopped_by is None
    assert Counter(type(o.error) for o in outcomes if o.status == "no_credit") == {
        InsufficientCreditError: ITEMS - PAID
    }
    assert _refused(emulator) == ITEMS - PAID
    with pytest.raises(ValidationError):
        provision(client, [], stop_on_insufficient_credit="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("order", ORDERS)
async def test_provisioning_with_an_unknown_outcome_and_a_402(
    client: PecClient, emulator: Emulator, tmp_path: Path, order: str
) -> None:
    """The registration whose outcome is unknown is journaled ``pending``, then settled
    within the run (found registered, or not: refused for credit at its late commit)
    while the others run into the 402. Nothing is left unjournaled, 5 are paid, and a
    rerun after topping up completes the rest, each paid once."""
    unsure = _late(emulator, client, order)
    journal = tmp_path / "run.jsonl"
    requests = _held(_requests(), emulator, order)
    outcomes, stopped_by = await _provision(unsure, requests, journal, concurrency=3)
    await emulator.drain_late()

    assert isinstance(stopped_by, InsufficientCreditError)
    unknown = [o for o in outcomes if "register: outcome unknown" in o.steps]
    assert len(unknown) == 1
    late_paid = order == "late-commit-first"
    if late_paid:
        assert unknown[0].status == "activated"
        assert unknown[0].steps[-3:] == ("settled: registered", "register: ok", "activate: ok")
    else:
        assert unknown[0].status == "failed"  # retried by the next run
        assert unknown[0].steps[-1] == "settled: not registered"
    refused = [o for o in outcomes if isinstance(o.error, InsufficientCreditError)]
    assert 1 <= len(refused) <= 3 and _refused(emulator) == len(refused)
    statuses = Counter(o.status for o in outcomes)
    assert statuses == {
        "activated": PAID,
        "no_credit": ITEMS - PAID - (not late_paid),
        **({} if late_paid else {"failed": 1}),
    }
    sent = PAID + len(refused) + (not late_paid)
    assert emulator.count("POST", "/pec") == sent
    _charged_once(emulator, PAID)
    records = Journal(journal).load()
    assert len(records) == ITEMS
    assert Counter(r["status"] for r in records.values()) == statuses  # none left pending

    emulator.wallet = Decimal("1000")
    again, _ = await _provision(client, _requests(), journal, concurrency=3)
    assert Counter(o.status for o in again) == {"skipped": PAID, "activated": ITEMS - PAID}
    _charged_once(emulator, ITEMS)
    assert emulator.count("POST", "/pec") == sent + ITEMS - PAID
    assert all(r["complete"] for r in Journal(journal).load().values())


async def test_the_cli_counts_the_unpaid_rows_and_says_run_again(
    pec_server: RunningEmulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", DEFAULT_TOKEN)
    emulator = pec_server.emulator
    emulator.wallet = Decimal("16")  # two registrations
    header = (
        "casella_pec,tipo_casella,tipo_cliente,nome_richiedente,cognome_richiedente,email,"
        "telefono,codice_fiscale_richiedente,data_nascita_richiedente,sesso_richiedente,"
        "nazione_nascita_richiedente,indirizzo_titolare,comune_titolare,cap_titolare,"
        "nazione_titolare,provincia_titolare"
    )
    row = (
        ",bronze,PV,Mario,Rossi,m@d.it,0548,RSSMRA82D11H501X,11/04/1982,M,IT,via Verdi 20,"
        "Roma,00042,IT,RM"
    )
    source = tmp_path / "people.csv"
    source.write_text(
        "\n".join([header, *(_address(i) + row for i in range(6))]) + "\n", encoding="utf-8"
    )
    argv = ["--sandbox", "--base-url", pec_server.url, "provision", str(source)]
    code = await asyncio.to_thread(main, [*argv, "--concurrency", "1"])
    out, err = capsys.readouterr()
    assert code == ExitCode.FAILURE
    assert "2 registered" in out and "4 no_credit" in out and "run again" in out
    assert "not sent: insufficient credit" in err
    assert _refused(emulator) == 1
    assert emulator.count("POST", "/pec") == 3

    emulator.wallet = Decimal("1000")
    code = await asyncio.to_thread(main, [*argv, "--concurrency", "1"])
    out, _ = capsys.readouterr()
    assert code == ExitCode.OK
    assert "2 skipped" in out and "4 registered" in out
    _charged_once(emulator, 6)


def test_no_credit_is_an_incomplete_status() -> None:
    assert STATUSES["no_credit"] is False
    outcome = ProvisionOutcome(key="a", status="no_credit", error=NotSentError("r"))
    assert not outcome.complete
    assert outcome.record()["error"] == {
        "type": "NotSentError",
        "message": "not sent: r",
        "request_sent": False,
    }


# -- the run asked to stop (provision's ``stop``, the CLI's first signal) ----------------
# Tested with the 402 stop: the same two places keep a request from being paid for.


async def test_a_stop_during_the_startup_listing_sends_no_request(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    """The listing of the account (``GET /pec``) is held; the run is stopped meanwhile.
    No request was started before the listing ended, so none sends anything after it."""
    emulator.faults.once(Fault.latency(0.5), method="GET", path="/pec")
    stop = asyncio.Event()
    journal = tmp_path / "run.jsonl"

    async def stop_during_the_listing() -> None:
        await wait_until(lambda: emulator.count("GET", "/pec") == 1)
        stop.set()

    stopper = asyncio.create_task(stop_during_the_listing())
    outcomes, _ = await _provision(client, _requests(8), journal, concurrency=4, stop=stop)
    await stopper
    assert outcomes == []
    assert [(r.method, r.path) for r in emulator.requests] == [("GET", "/pec")]
    assert emulator.ledger == []
    assert Journal(journal).load() == {}

    again, _ = await _provision(client, _requests(8), journal, concurrency=4)
    assert Counter(o.status for o in again) == {"activated": 8}
    _charged_once(emulator, 8)


@pytest.mark.parametrize("held", ["check", "register"])
async def test_a_stop_while_a_check_is_in_flight_sends_no_registration(
    client: PecClient, emulator: Emulator, tmp_path: Path, held: str
) -> None:
    """The run is stopped while a request's availability check is in flight (held): its
    registration is not sent, the request is ``stopped`` (not sent, not complete) and no
    other one is read. ``register``: the first request's registration is in flight too
    (held, shorter): it finishes (registered and activated, paid once)."""
    emulator.faults.nth(2 if held == "register" else 1, Fault.latency(1.0), method="GET",
                        path="/verifica_pec/*")  # fmt: skip
    if held == "register":
        emulator.faults.once(Fault.latency(0.3), method="POST", path="/pec")
    # stopped once what is held is in flight
    method, path = ("GET", "/verifica_pec/*") if held == "check" else ("POST", "/pec")
    stopped = False
    journal = tmp_path / "run.jsonl"

    async def stop_when_held() -> None:
        nonlocal stopped
        await wait_until(lambda: emulator.count(method, path) == 1)
        stopped = True

    stopper = asyncio.create_task(stop_when_held())
    concurrency = 1 if held == "check" else 2
    outcomes, _ = await _provision(
        client, _requests(6), journal, concurrency=concurrency, stop=lambda: stopped
    )
    await stopper
    by_status = Counter(o.status for o in outcomes)
    if held == "check":
        assert by_status == {"stopped": 1}
        assert emulator.count("POST", "/pec") == 0
    else:
        assert by_status == {"activated": 1, "stopped": 1}
        assert emulator.count("POST", "/pec") == 1
    [late] = [o for o in outcomes if o.status == "stopped"]
    assert late.steps == ("check: available", "not sent: stopped")
    assert isinstance(late.error, NotSentError) and late.error.reason == "stopped"
    assert not late.complete and late.mailbox_id is None
    record = Journal(journal).load()[late.key]
    assert (record["status"], record["complete"]) == ("stopped", False)
    assert record["error"]["request_sent"] is False
    paid = 0 if held == "check" else 1
    _charged_once(emulator, paid)

    again, _ = await _provision(client, _requests(6), journal, concurrency=2)
    assert Counter(o.status for o in again) == {
        "activated": 6 - paid,
        **({"skipped": 1} if paid else {}),
    }
    _charged_once(emulator, 6)


async def test_a_stop_that_is_not_a_function_or_an_event_is_refused(client: PecClient) -> None:
    with pytest.raises(ValidationError) as info:
        provision(client, [], stop=True)  # type: ignore[arg-type]
    assert info.value.field == "stop"
