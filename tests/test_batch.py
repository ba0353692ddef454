"""Batches, client-wide limits and the resumable provisioning pipeline, against the emulator."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from pecapi import (
    BatchProgress,
    InsufficientCreditError,
    Mailbox,
    MailboxRegistration,
    NotFoundError,
    PecClient,
    PecError,
    RetryPolicy,
    ValidationError,
)
from pecapi.provision import (
    InvalidRow,
    Journal,
    ProvisionOutcome,
    ProvisionRequest,
    provision,
    read_registrations_csv,
)
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault
from pecapi.transport.throttle import Throttle
from tests.conftest import PDF_BYTES, make_registration, no_sleep

FAULTS = [
    Fault.drop_after(),
    Fault.drop_before(),
    Fault.status(503, body="html"),
    Fault.status(502),
    Fault.status(429, retry_after=1),
    Fault.truncated_body(),
    Fault.malformed_json(),
]


def _address(i: int) -> str:
    return f"user{i:05d}@testcert.legalmail.it"


# -- the generic batch -------------------------------------------------------------------


async def test_map_pairs_inputs_with_results_and_survives_failures(
    client: PecClient, emulator: Emulator
) -> None:
    ids = [emulator.seed_mailbox(_address(i)) for i in range(30)]
    inputs = [*ids[:10], "0123456789abcdef01234567", *ids[10:]]
    progress: list[BatchProgress] = []
    async with client.map(
        client.mailboxes.renew, inputs, concurrency=8, on_progress=progress.append
    ) as batch:
        results = [r async for r in batch]
    assert sorted(r.index for r in results) == list(range(31))
    failed = [r for r in results if not r.ok]
    assert [(r.input, type(r.error)) for r in failed] == [
        ("0123456789abcdef01234567", NotFoundError)
    ]
    assert all(isinstance(r.value, Mailbox) and r.value.id == r.input for r in results if r.ok)
    assert progress[-1] == BatchProgress(done=31, failed=1, total=31)
    assert len(emulator.charges(operation="renewal")) == 30


async def test_input_is_consumed_lazily(client: PecClient, emulator: Emulator) -> None:
    box_id = emulator.seed_mailbox(_address(1))
    pulled = 0

    def million() -> Iterator[str]:
        nonlocal pulled
        for _ in range(1_000_000):
            pulled += 1
            yield box_id

    async with client.map(client.mailboxes.get, million(), concurrency=20) as batch:
        got = 0
        async for result in batch:
            assert result.ok
            got += 1
            if got == 50:
                break
    assert pulled <= 50 + 20  # never more than `concurrency` ahead of what was consumed
    assert client._pipeline.throttle.in_flight == 0


async def test_cancelling_a_batch_leaves_nothing_running(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox(_address(1))
    emulator.faults.rate(1.0, [Fault.latency(0.2)], method="GET")
    started = asyncio.Event()

    async def consume() -> None:
        async with client.map(client.mailboxes.get, [box_id] * 100, concurrency=10) as batch:
            started.set()
            async for _ in batch:
                pass

    task = asyncio.create_task(consume())
    await started.wait()
    await asyncio.sleep(0.05)  # let the first requests go out
    assert client._pipeline.throttle.in_flight > 0
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client._pipeline.throttle.in_flight == 0
    others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert not [t for t in others if "Batch" in repr(t) or "_one" in repr(t)]
    emulator.faults.clear()
    assert (await client.mailboxes.get(box_id)).id == box_id


async def test_register_many_under_faults_registers_each_once() -> None:
    emulator = Emulator(credit=Decimal("1000000"), seed=3)
    emulator.faults.rate(0.3, FAULTS, seed=9)
    policy = RetryPolicy(max_attempts=15, deadline=None, sleep=no_sleep, settle=0)
    registrations = (make_registration(_address(i)) for i in range(5000))
    async with (
        emulator.serve() as server,
        PecClient(
            DEFAULT_TOKEN, sandbox=True, base_url=server.url, retry=policy, max_in_flight=64
        ) as client,
        client.mailboxes.register_many(registrations, concurrency=100) as batch,
    ):
        results = [r async for r in batch]
    assert len(results) == 5000
    assert [r.error for r in results if not r.ok] == []
    assert len(emulator.mailboxes) == 5000
    charged = Counter(c.target_id for c in emulator.charges(operation="register"))
    assert len(charged) == 5000 and set(charged.values()) == {1}
    assert emulator.faults.counts["drop_after"] > 50


# -- client-wide limits ------------------------------------------------------------------


async def test_max_in_flight_is_respected(pec_server: object, emulator: Emulator) -> None:
    emulator.faults.rate(1.0, [Fault.latency(0.01)])
    box_id = emulator.seed_mailbox(_address(1))
    async with PecClient(
        DEFAULT_TOKEN,
        sandbox=True,
        base_url=pec_server.url,
        max_in_flight=3,  # type: ignore[attr-defined]
    ) as client:
        peak = 0

        async def sample() -> None:
            nonlocal peak
            while True:
                peak = max(peak, client._pipeline.throttle.in_flight)
                await asyncio.sleep(0)

        sampler = asyncio.create_task(sample())
        await asyncio.gather(*(client.mailboxes.get(box_id) for _ in range(30)))
        sampler.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sampler
        connector = client._pipeline.session().connector
        assert connector is not None and connector.limit == 3
    assert peak == 3


async def test_rate_limit_token_bucket() -> None:
    now = 0.0
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        nonlocal now
        slept.append(seconds)
        now += seconds

    throttle = Throttle(10, rate=5.0, burst=1, clock=lambda: now, sleep=fake_sleep)
    for _ in range(10):
        async with throttle:
            pass
    # the first start is free (burst 1), then one every 0.2 s
    assert sum(slept) == pytest.approx(9 * 0.2)
    assert now == pytest.approx(1.8)


def test_bad_limits_are_refused() -> None:
    from pecapi import ConfigurationError

    for kwargs in ({"max_in_flight": 0}, {"max_in_flight": True}, {"rate_limit": 0}):
        with pytest.raises(ConfigurationError):
            PecClient("t", **kwargs)  # type: ignore[arg-type]


# -- provisioning ------------------------------------------------------------------------


def _requests(n: int, documents: bool = True) -> list[ProvisionRequest]:
    return [
        ProvisionRequest(
            registration=make_registration(_address(i)),
            documents=[PDF_BYTES] if documents else None,
            line=i + 2,
        )
        for i in range(n)
    ]


async def _run(
    client: PecClient, requests: object, journal: Path, **kw: object
) -> list[ProvisionOutcome]:
    outcomes = []
    async with provision(client, requests, journal=journal, **kw) as run:  # type: ignore[arg-type]
        async for result in run:
            assert result.value is not None, result.error
            outcomes.append(result.value)
    return outcomes


async def test_provision_checks_registers_and_activates(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    taken = emulator.seed_mailbox(_address(3), stato="evasa")
    requests = [*_requests(5), _requests(1)[0]]  # address 0 twice
    journal = tmp_path / "run.jsonl"
    outcomes = await _run(client, requests, journal, concurrency=1)
    status = {(o.key, o.status) for o in outcomes}
    assert (_address(0), "activated") in status
    assert (_address(0), "duplicate") in status
    assert (_address(3), "existing") in status
    by_key = {o.key: o for o in outcomes if o.status != "duplicate"}
    assert by_key[_address(3)].mailbox_id == taken
    assert by_key[_address(1)].steps == ("check: available", "register: ok", "activate: ok")
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    # each registration is journaled (awaiting_activation) before its activation is sent
    registered = [r for r in records if r["status"] == "awaiting_activation"]
    assert [r["key"] for r in registered] == [_address(i) for i in (0, 1, 2, 4)]
    assert all(r["mailbox_id"] and r["steps"][-1] == "register: ok" for r in registered)
    assert len(records) == 6 + len(registered)
    assert all(r["key"] and r["status"] for r in records)
    assert {r["status"] for r in Journal(journal).load().values()} == {
        "activated", "existing", "duplicate"
    }  # fmt: skip
    assert emulator.mailboxes[by_key[_address(1)].mailbox_id or ""]["stato"] == "in_evasione"


async def test_interrupted_provisioning_resumes_without_charging_twice(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    emulator.wallet = Decimal("1000000")
    emulator.faults.rate(0.2, FAULTS, seed=4)
    # 4 attempts under a 20 % fault rate leave some of 800 calls failed now and then (it
    # is what the result of that call then says); this test is about resuming, not that.
    client = client.with_options(retry=RetryPolicy(max_attempts=12, sleep=no_sleep, settle=0))
    journal = tmp_path / "run.jsonl"
    requests = _requests(400)
    seen = 0

    async def first_run() -> None:
        nonlocal seen
        async with provision(client, requests, journal=journal, concurrency=25) as run:
            async for _ in run:
                seen += 1
                if seen == 150:
                    asyncio.current_task().cancel()  # type: ignore[union-attr]  # Ctrl-C

    with pytest.raises(asyncio.CancelledError):
        await first_run()
    assert client._pipeline.throttle.in_flight == 0
    half = Journal(journal).load()
    assert 150 <= len(half) < 400

    outcomes = await _run(client, requests, journal, concurrency=25)
    statuses = Counter(o.status for o in outcomes)
    assert statuses["skipped"] >= 150
    assert set(statuses) <= {"skipped", "activated", "existing"}, statuses
    final = Journal(journal).load()
    assert len(final) == 400
    assert all(r["complete"] for r in final.values())
    # exactly one mailbox and one registration charge per address
    assert len(emulator.mailboxes) == 400
    charged = Counter(c.target_id for c in emulator.charges(operation="register"))
    assert len(charged) == 400 and set(charged.values()) == {1}
    # every mailbox got its documents
    assert all(m["stato"] == "in_evasione" for m in emulator.mailboxes.values())


def test_csv_rows_are_validated_with_line_numbers(tmp_path: Path) -> None:
    pdf = tmp_path / "form.pdf"
    pdf.write_bytes(PDF_BYTES)
    header = (
        "casella_pec,tipo_casella,tipo_cliente,nome_richiedente,cognome_richiedente,email,"
        "telefono,codice_fiscale_richiedente,data_nascita_richiedente,sesso_richiedente,"
        "nazione_nascita_richiedente,indirizzo_titolare,comune_titolare,cap_titolare,"
        "nazione_titolare,provincia_titolare,documenti"
    )
    good = (
        "a@testcert.legalmail.it,bronze,PV,M,R,m@d.it,1,CF,11/04/1982,M,IT,via,Roma,00100,IT,RM,"
        "form.pdf"
    )
    rows = [
        header,
        good,
        good.replace("bronze", "platinum").replace("a@", "b@"),
        good.replace("11/04/1982", "1982-04-11").replace("a@", "c@"),
        good.replace(",M,R,", ",,R,").replace("a@", "d@"),
        good.replace("form.pdf", "missing.pdf").replace("a@", "e@"),
    ]
    source = tmp_path / "people.csv"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    items = list(read_registrations_csv(source))
    assert isinstance(items[0], ProvisionRequest)
    assert items[0].line == 2 and items[0].documents == [pdf]
    bad = [(i.line, i.error.field) for i in items if isinstance(i, InvalidRow)]
    assert bad == [
        (3, "tipo_casella"),
        (4, "data_nascita_richiedente"),
        (5, "nome_richiedente"),
        (6, "documenti"),
    ]

    (tmp_path / "odd.csv").write_text(header + ",colore\n", encoding="utf-8")
    with pytest.raises(ValidationError) as info:
        list(read_registrations_csv(tmp_path / "odd.csv"))
    assert info.value.field == "colore"


async def test_invalid_rows_flow_through_as_outcomes(
    client: PecClient, emulator: Emulator, tmp_path: Path
) -> None:
    bad = InvalidRow(line=7, error=ValidationError("email", "is required"), key="x@y.it")
    outcomes = await _run(client, [bad, *_requests(1, documents=False)], tmp_path / "j.jsonl")
    invalid = [o for o in outcomes if o.status == "invalid"]
    assert invalid[0].line == 7
    assert isinstance(invalid[0].error, PecError)
    record = Journal(tmp_path / "j.jsonl").load()["x@y.it"]
    assert record["error"]["field"] == "email"
    assert len(emulator.mailboxes) == 1


async def test_a_402_while_an_async_source_is_suspended_skips_the_input_it_gives(
    client: PecClient, emulator: Emulator
) -> None:
    """The source gives the second input only once the first registration was answered
    402 (an event, not timing): that input, pulled after the stop, is skipped, not sent."""
    emulator.wallet = Decimal("0")
    answered = asyncio.Event()

    async def register(registration: MailboxRegistration) -> Mailbox:
        try:
            return await client.mailboxes.register(registration)
        finally:
            # the 402 stops the batch as this task ends, before the source resumes
            answered.set()

    async def source() -> AsyncIterator[MailboxRegistration]:
        yield make_registration("first@testcert.legalmail.it")
        await answered.wait()
        yield make_registration("second@testcert.legalmail.it")
        yield make_registration("third@testcert.legalmail.it")

    batch = client.map(register, source(), concurrency=4)
    results = sorted(await batch.collect(), key=lambda r: r.index)
    assert isinstance(results[0].error, InsufficientCreditError)
    assert [type(r).__name__ for r in results[1:]] == ["BatchSkipped", "BatchSkipped"]
    assert all(r.error.reason == "insufficient credit" for r in results[1:])  # type: ignore[union-attr]
    assert emulator.count("POST", "/pec") == 1
    assert batch.skipped == 2
