"""Retries that never charge twice: the policy, Retry-After, deadlines, cancellation, and
reconciliation of every paid operation under the emulator's fault plan."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from decimal import Decimal

import pytest

from pecapi import (
    Attempt,
    InsufficientCreditError,
    Mailbox,
    MailboxRegistration,
    MailboxUser,
    NotFoundError,
    OutcomeUnknownError,
    PecClient,
    PecConnectionError,
    PecError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TipoCasella,
)
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault
from tests.conftest import PDF_BYTES, FakeTime, make_comunica_request, make_registration, no_sleep

Registration = Callable[..., MailboxRegistration]
USER = MailboxUser(
    nome="luca", cognome="bianchi", descrizione="d", email_gestione_password="l@d.it"
)


def _policy(time: FakeTime, **kwargs: object) -> RetryPolicy:
    return RetryPolicy(sleep=time.sleep, clock=time.clock, **kwargs)  # type: ignore[arg-type]


async def _active(client: PecClient, emulator: Emulator, name: str = "mario") -> str:
    box = await client.mailboxes.register(make_registration(f"{name}@testcert.legalmail.it"))
    assert box.id is not None
    await client.mailboxes.activate(box.id, PDF_BYTES)
    emulator.complete_activation(box.id)
    return box.id


# -- reads -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(500),
        Fault.status(502, body="html"),
        Fault.status(503),
        Fault.status(504, body="empty"),
        Fault.status(429, retry_after=1),
        Fault.drop_before(),
        Fault.drop_after(),
        Fault.truncated_body(),
        Fault.malformed_json(),
    ],
)
async def test_reads_are_retried(client: PecClient, emulator: Emulator, fault: Fault) -> None:
    attempts: list[Attempt] = []
    retrying = client.with_options(
        retry=RetryPolicy(sleep=no_sleep, settle=0, on_attempt=attempts.append)
    )
    emulator.faults.next(2, fault, method="GET", path="/pec")
    assert await retrying.mailboxes.list() == []
    assert emulator.count("GET", "/pec") == 3
    assert [a.attempt for a in attempts] == [1, 2]
    assert all(a.operation == "mailboxes.list" and not a.reconcile for a in attempts)


async def test_retries_are_logged_without_the_token(
    client: PecClient, emulator: Emulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pecapi")
    emulator.faults.once(Fault.status(503))
    await client.mailboxes.list()
    retries = [r for r in caplog.records if r.getMessage().startswith("retrying mailboxes.list")]
    assert len(retries) == 1
    assert "ServerError" in retries[0].getMessage()
    assert DEFAULT_TOKEN not in caplog.text


@pytest.mark.parametrize(
    ("error_fault", "error_type"),
    [
        (Fault.status(404), NotFoundError),
        (Fault.status(402), InsufficientCreditError),
    ],
)
async def test_client_errors_are_never_retried(
    client: PecClient, emulator: Emulator, error_fault: Fault, error_type: type[PecError]
) -> None:
    emulator.faults.once(error_fault, method="GET", path="/pec")
    with pytest.raises(error_type):
        await client.mailboxes.list()
    assert emulator.count("GET", "/pec") == 1


async def test_api_refusals_of_writes_are_not_retried(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = await _active(client, emulator)
    sent = emulator.count("PATCH", "/pec/*/trasformazione")
    await client.mailboxes.change_type(box_id, "GOLD")
    with pytest.raises(PecError) as info:  # 406/276: a downgrade
        await client.mailboxes.change_type(box_id, "SILVER")
    assert getattr(info.value, "code", None) == 276
    assert emulator.count("PATCH", "/pec/*/trasformazione") == sent + 2


# -- Retry-After, deadlines, cancellation ------------------------------------------------


@pytest.mark.parametrize("retry_after", [7, "http-date"])
async def test_retry_after_is_obeyed(
    client: PecClient, emulator: Emulator, retry_after: int | str
) -> None:
    time = FakeTime()
    emulator.faults.once(Fault.status(429, retry_after=retry_after))
    assert await client.with_options(retry=_policy(time)).mailboxes.list() == []
    assert len(time.waits) == 1
    if retry_after == 7:
        assert time.waits == [7]
    else:  # an HTTP-date about a second ahead, rounded to whole seconds
        assert 0 <= time.waits[0] <= 2


async def test_retry_after_beyond_the_deadline_fails_at_once(
    client: PecClient, emulator: Emulator
) -> None:
    time = FakeTime()
    emulator.faults.once(Fault.status(429, retry_after=600))
    with pytest.raises(RateLimitError) as info:
        await client.with_options(retry=_policy(time, deadline=30)).mailboxes.list()
    assert info.value.retry_after == 600
    assert time.waits == []
    assert emulator.count("GET", "/pec") == 1


async def test_the_deadline_bounds_all_attempts(client: PecClient, emulator: Emulator) -> None:
    time = FakeTime()
    emulator.faults.next(50, Fault.status(503))
    policy = RetryPolicy(
        max_attempts=50,
        backoff=1.0,
        backoff_max=8.0,
        deadline=20.0,
        sleep=time.sleep,
        clock=time.clock,
        jitter=lambda cap: cap,  # no randomness: waits 1, 2, 4, 8, 8...
    )
    with pytest.raises(ServerError):
        await client.with_options(retry=policy).mailboxes.list()
    assert time.waits == [1.0, 2.0, 4.0, 8.0]  # the next 8 s would end past 20 s
    assert sum(time.waits) < 20.0
    assert emulator.count("GET", "/pec") == 5


async def test_backoff_is_capped_full_jitter() -> None:
    policy = RetryPolicy(backoff=0.5, backoff_max=4.0, jitter=lambda cap: cap)
    assert [policy.backoff_for(n) for n in range(1, 7)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    rng = random.Random(1)
    jittered = RetryPolicy(backoff=0.5, backoff_max=4.0, jitter=lambda cap: rng.uniform(0, cap))
    assert all(0 <= jittered.backoff_for(n) <= 4.0 for n in range(1, 50))


async def test_cancellation_stops_retrying(client: PecClient, emulator: Emulator) -> None:
    started = asyncio.Event()

    async def slow_sleep(seconds: float) -> None:
        started.set()
        await asyncio.sleep(3600)

    emulator.faults.next(5, Fault.status(503))
    task = asyncio.create_task(
        client.with_options(retry=RetryPolicy(sleep=slow_sleep)).mailboxes.list()
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert emulator.count("GET", "/pec") == 1


async def test_connection_refused_is_retried_then_typed() -> None:
    attempts: list[Attempt] = []
    policy = RetryPolicy(max_attempts=3, sleep=no_sleep, settle=0, on_attempt=attempts.append)
    async with PecClient("t", base_url="http://127.0.0.1:9", retry=policy) as client:
        with pytest.raises(PecConnectionError) as info:
            await client.mailboxes.list()
    assert info.value.request_sent is False
    assert [a.reason for a in attempts] == ["PecConnectionError", "PecConnectionError"]


# -- writes: exactly once ----------------------------------------------------------------

WRITE_FAULTS = [
    Fault.drop_after(),
    Fault.drop_before(),
    Fault.status(503, body="html"),
    Fault.status(500),
    Fault.status(429, retry_after=1),
    Fault.truncated_body(),
    Fault.malformed_json(),
]


@pytest.mark.parametrize("fault", WRITE_FAULTS)
async def test_register_exactly_once(client: PecClient, emulator: Emulator, fault: Fault) -> None:
    emulator.faults.once(fault, method="POST", path="/pec")
    box = await client.mailboxes.register(make_registration())
    assert box.casella_pec == "mario.rossi@testcert.legalmail.it"
    assert len(emulator.mailboxes) == 1
    assert [c.target_id for c in emulator.charges(operation="register")] == [box.id]


@pytest.mark.parametrize("fault", WRITE_FAULTS)
async def test_paid_mailbox_operations_exactly_once(
    client: PecClient, emulator: Emulator, fault: Fault
) -> None:
    box_id = await _active(client, emulator)
    before = await client.mailboxes.get(box_id)
    for path in ("/pec/*/rinnovo", "/pec/*/modifica", "/pec/*/trasformazione"):
        emulator.faults.once(fault, path=path)
    emulator.faults.once(fault, path="/pec/*/multiutenza")
    emulator.faults.once(fault, path="/pec/*/conservazione")
    renewed = await client.mailboxes.renew(box_id)
    spaced = await client.mailboxes.change_space(box_id, spazio_disco="+1024")
    typed = await client.mailboxes.change_type(box_id, "GOLD")
    with_user = await client.mailboxes.add_user(box_id, USER)
    conserved = await client.mailboxes.activate_conservation(box_id, PDF_BYTES)
    assert renewed.timestamp and before.timestamp
    assert (renewed.timestamp.scadenza or 0) > (before.timestamp.scadenza or 0)
    # the relative "+1024" was made absolute before sending: applied once whatever happened
    assert spaced.spazio_disco == (before.spazio_disco or 0) + 1024
    assert typed.tipo_casella is TipoCasella.GOLD
    assert len(with_user.multiutenza) == 1
    assert conserved.conservazione is True
    charges = Counter(c.operation for c in emulator.ledger if c.target_id == box_id)
    assert charges == {
        "register": 1,
        "renewal": 1,
        "space": 1,
        "trasformazione": 1,
        "multiutenza": 1,
        "conservazione": 1,
    }


@pytest.mark.parametrize("fault", [Fault.drop_after(), Fault.status(502)])
async def test_free_writes_are_reconciled(
    client: PecClient, emulator: Emulator, fault: Fault
) -> None:
    box = await client.mailboxes.register(make_registration())
    assert box.id is not None
    emulator.faults.once(fault, path="/pec/*/attivazione")
    activated = await client.mailboxes.activate(box.id, PDF_BYTES)
    assert activated.documenti_attivazione
    emulator.complete_activation(box.id)
    emulator.faults.once(fault, method="DELETE")
    revoked = await client.mailboxes.revoke(box.id)
    assert revoked.stato is not None and revoked.stato.value == "revocata"
    assert emulator.count("DELETE", "/pec/*") <= 2


@pytest.mark.parametrize("fault", [Fault.drop_after(), Fault.status(503), Fault.malformed_json()])
async def test_comunica_pec_create_exactly_once(
    client: PecClient, emulator: Emulator, fault: Fault
) -> None:
    emulator.faults.once(fault, method="POST", path="/comunica_pec")
    created = await client.comunica_pec.create(make_comunica_request())
    assert created.id in emulator.comunica_requests
    assert len(emulator.comunica_requests) == 1
    assert len(emulator.charges(operation="comunica_pec")) == 1


async def test_without_reconciliation_an_unknown_write_raises(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = await _active(client, emulator)
    emulator.faults.once(Fault.drop_after(), path="/pec/*/rinnovo")
    no_reconcile = client.with_options(retry=RetryPolicy(sleep=no_sleep, reconcile=False))
    with pytest.raises(OutcomeUnknownError) as info:
        await no_reconcile.mailboxes.renew(box_id)
    assert isinstance(info.value.cause, PecConnectionError)
    assert info.value.pending is None  # nothing to settle it with: not in the book either
    assert client.pending_outcomes() == []
    assert emulator.count("GET", "/pec/*/rinnovo") == 1
    assert len(emulator.charges(operation="renewal")) == 1


async def test_unverifiable_outcome_is_its_own_error(client: PecClient, emulator: Emulator) -> None:
    box_id = await _active(client, emulator)
    renewals = emulator.count("GET", "/pec/*/rinnovo")
    emulator.faults.once(Fault.drop_after(), path="/pec/*/rinnovo")

    def break_reads(attempt: Attempt) -> None:
        # the renewal was dropped after processing: from now on every read fails
        if attempt.operation == "mailboxes.renew" and attempt.reconcile:
            emulator.faults.next(100, Fault.status(503), method="GET")

    policy = RetryPolicy(sleep=no_sleep, settle=0, max_attempts=3, on_attempt=break_reads)
    with pytest.raises(OutcomeUnknownError) as info:
        await client.with_options(retry=policy).mailboxes.renew(box_id)
    assert "outcome" in str(info.value)
    assert emulator.count("GET", "/pec/*/rinnovo") == renewals + 1  # never resent blindly
    assert len(emulator.charges(operation="renewal")) == 1


# -- the proof: a large batch under heavy faults -----------------------------------------


async def test_batch_under_faults_charges_exactly_once() -> None:
    """1,000 registrations, then renewals, space and type changes and user additions,
    with 35% of all requests faulted (every kind, including "processed, then dropped"):
    every operation applies exactly once, and nothing is lost."""
    emulator = Emulator(credit=Decimal("1000000"), seed=11)
    kinds = [
        Fault.drop_after(),
        Fault.drop_before(),
        Fault.status(500, body="html"),
        Fault.status(502),
        Fault.status(503, body="html"),
        Fault.status(504, body="empty"),
        Fault.status(429, retry_after=1),
        Fault.truncated_body(),
        Fault.malformed_json(),
        Fault.slow_body(0.001, chunks=2),
        Fault.latency(0.001),
    ]
    emulator.faults.rate(0.35, kinds, seed=5)
    policy = RetryPolicy(max_attempts=15, deadline=None, sleep=no_sleep, settle=0)
    async with (
        emulator.serve() as server,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url, retry=policy) as client,
    ):
        limit = asyncio.Semaphore(64)

        async def guarded(coro: object) -> object:
            async with limit:
                return await coro  # type: ignore[misc]

        registrations = [
            make_registration(f"user{i:04d}@testcert.legalmail.it") for i in range(1000)
        ]
        results = await asyncio.gather(
            *(guarded(client.mailboxes.register(r)) for r in registrations), return_exceptions=True
        )
        boxes = [r for r in results if isinstance(r, Mailbox)]
        failures = [r for r in results if not isinstance(r, Mailbox)]
        assert all(isinstance(f, PecError) for f in failures), failures[:3]
        assert len(boxes) == 1000, Counter(type(f).__name__ for f in failures)

        # activation costs nothing; do it with the faults paused
        emulator.faults.clear()
        ids = [b.id for b in boxes if b.id]
        await asyncio.gather(*(guarded(client.mailboxes.activate(i, PDF_BYTES)) for i in ids[:800]))
        for box_id in ids[:800]:
            emulator.complete_activation(box_id)
        emulator.faults.rate(0.35, kinds, seed=6)

        renew_ids, space_ids, type_ids, user_ids = (
            ids[:200],
            ids[200:400],
            ids[400:600],
            ids[600:800],
        )
        ops = (
            [client.mailboxes.renew(i) for i in renew_ids]
            + [client.mailboxes.change_space(i, spazio_disco="+1024") for i in space_ids]
            + [client.mailboxes.change_type(i, "GOLD") for i in type_ids]
            + [client.mailboxes.add_user(i, USER) for i in user_ids]
        )
        outcomes = await asyncio.gather(*(guarded(op) for op in ops), return_exceptions=True)
        errors = [o for o in outcomes if not isinstance(o, Mailbox)]
        assert errors == [], Counter(type(e).__name__ for e in errors)
        final = {i: emulator.mailboxes[i] for i in ids}

    faulted = emulator.faults.counts
    assert sum(faulted.values()) > 1000
    assert faulted["drop_after"] > 20
    # no duplicate mailbox, one registration charge each
    assert len(emulator.mailboxes) == 1000
    assert len({m["casella_pec"] for m in emulator.mailboxes.values()}) == 1000
    per_op = Counter((c.operation, c.target_id) for c in emulator.ledger)
    assert all(n == 1 for n in per_op.values()), [k for k, n in per_op.items() if n > 1][:5]
    assert sum(1 for op, _ in per_op if op == "register") == 1000
    assert {t for op, t in per_op if op == "renewal"} == set(renew_ids)
    assert {t for op, t in per_op if op == "space"} == set(space_ids)
    assert {t for op, t in per_op if op == "trasformazione"} == set(type_ids)
    assert {t for op, t in per_op if op == "multiutenza"} == set(user_ids)
    assert all(len(final[i].get("multiutenza", [])) == 1 for i in user_ids)
    assert all(final[i]["tipo_casella"] == "GOLD" for i in type_ids)
