"""Exactly once when the API answers late: every paid write is settled, never resent
while the API may still be processing it.

The emulator's ``Fault.late`` reads a request in full, answers a gateway 504 (or drops
the connection, or never answers), and commits the write some time later whatever the
client did. These tests use real time for what the emulator commits late (fractions of
a second) and an injected clock where only pecapi's own windows are at stake.
"""

from __future__ import annotations

import asyncio
import base64
import copy
from collections import Counter
from collections.abc import Awaitable, Callable
from decimal import Decimal
from typing import Any

import aiohttp
import pytest

from pecapi import (
    Attempt,
    ComunicaPec,
    ConfigurationError,
    InsufficientCreditError,
    Mailbox,
    MailboxUser,
    NotFoundError,
    OAuthTokenProvider,
    OutcomeUnknownError,
    PecClient,
    PecConnectionError,
    PendingOutcome,
    RateLimitError,
    RetryPolicy,
    ServerError,
    Timeout,
    TokenError,
    all_pec_scopes,
)
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, OAuthEmulator, RunningEmulator
from tests.conftest import (
    PDF_BYTES,
    FakeTime,
    make_comunica_request,
    make_registration,
    no_sleep,
    wait_until,
)
from tests.leaks import secret_leaks

USER = MailboxUser(
    nome="luca", cognome="bianchi", descrizione="d", email_gestione_password="l@d.it"
)
LATE = 0.3  # seconds after which the emulator commits a late-faulted write
SETTLE = 1.5  # the settle window of these tests: longer than LATE


def settling(**kwargs: Any) -> RetryPolicy:
    """Real time, short waits, a settle window longer than the emulator's lateness."""
    base: dict[str, Any] = {"settle": SETTLE, "backoff": 0.01, "backoff_max": 0.05}
    base.update(kwargs)
    return RetryPolicy(**base)


def _active(emulator: Emulator, name: str = "mario") -> str:
    return emulator.seed_mailbox(f"{name}@testcert.legalmail.it", stato="evasa")


# Each paid operation: (fault path, ledger name, call) -- the call returns the result.
Op = Callable[[PecClient, str], Awaitable[Any]]
PAID: dict[str, tuple[str, str, str, Op]] = {
    "renew": ("GET", "/pec/*/rinnovo", "renewal", lambda c, i: c.mailboxes.renew(i)),
    "add_user": (
        "POST", "/pec/*/multiutenza", "multiutenza",
        lambda c, i: c.mailboxes.add_user(i, USER),
    ),
    "change_space": (
        "PATCH", "/pec/*/modifica", "space",
        lambda c, i: c.mailboxes.change_space(i, spazio_disco="+1024"),
    ),
    "change_type": (
        "PATCH", "/pec/*/trasformazione", "trasformazione",
        lambda c, i: c.mailboxes.change_type(i, "GOLD"),
    ),
    "activate_conservation": (
        "PATCH", "/pec/*/conservazione", "conservazione",
        lambda c, i: c.mailboxes.activate_conservation(i, PDF_BYTES),
    ),
}  # fmt: skip


# -- finding 1: late processing ----------------------------------------------------------


@pytest.mark.parametrize("reply", ["504", "drop", "hang"])
@pytest.mark.parametrize("name", sorted(PAID))
async def test_a_late_paid_write_is_settled_not_resent(
    client: PecClient, emulator: Emulator, name: str, reply: str
) -> None:
    method, path, ledger, op = PAID[name]
    box_id = _active(emulator)
    emulator.faults.once(Fault.late(LATE, reply=reply), method=method, path=path)  # type: ignore[arg-type]
    # "hang": the client's own timeout ends the attempt before the late commit
    late = client.with_options(retry=settling(), timeout=LATE / 2 if reply == "hang" else None)
    result = await op(late, box_id)
    await emulator.drain_late()
    assert isinstance(result, Mailbox) and result.id == box_id
    assert emulator.count(method, path) == 1  # never resent
    assert len(emulator.charges(operation=ledger, target_id=box_id)) == 1
    assert emulator.faults.counts["late"] == 1
    assert client.pending_outcomes() == []


@pytest.mark.parametrize("reply", ["504", "drop", "hang"])
async def test_a_late_registration_is_settled_not_resent(
    client: PecClient, emulator: Emulator, reply: str
) -> None:
    emulator.faults.once(Fault.late(LATE, reply=reply), method="POST", path="/pec")  # type: ignore[arg-type]
    late = client.with_options(retry=settling(), timeout=LATE / 2 if reply == "hang" else None)
    box = await late.mailboxes.register(make_registration())
    await emulator.drain_late()
    assert emulator.count("POST", "/pec") == 1
    assert list(emulator.mailboxes) == [box.id]
    assert len(emulator.charges(operation="register")) == 1


@pytest.mark.parametrize("reply", ["504", "drop", "hang"])
async def test_a_late_comunica_pec_is_settled_not_resent(
    client: PecClient, emulator: Emulator, reply: str
) -> None:
    emulator.faults.once(Fault.late(LATE, reply=reply), method="POST", path="/comunica_pec")  # type: ignore[arg-type]
    late = client.with_options(retry=settling(), timeout=LATE / 2 if reply == "hang" else None)
    created = await late.comunica_pec.create(make_comunica_request())
    await emulator.drain_late()
    assert isinstance(created, ComunicaPec)
    assert emulator.count("POST", "/comunica_pec") == 1
    assert list(emulator.comunica_requests) == [created.id]
    assert len(emulator.charges(operation="comunica_pec")) == 1


async def test_a_write_unseen_after_the_window_is_resent_once(
    client: PecClient, emulator: Emulator
) -> None:
    """A 503 that was never processed: the account is watched for the whole window (the
    default, a minute, on an injected clock), and only then is the renewal sent again."""
    box_id = _active(emulator)
    time = FakeTime()
    emulator.faults.once(Fault.status(503), path="/pec/*/rinnovo")
    policy = RetryPolicy(sleep=time.sleep, clock=time.clock)
    reads_before = emulator.count("GET", f"/pec/{box_id}")
    renewed = await client.with_options(retry=policy).mailboxes.renew(box_id)
    assert renewed.id == box_id
    assert policy.settle == 60.0
    assert sum(time.waits) >= policy.settle  # the resend came after the whole window
    assert emulator.count("GET", "/pec/*/rinnovo") == 2
    checks = emulator.count("GET", f"/pec/{box_id}") - reads_before - 1  # less the baseline
    assert 3 <= checks <= 12  # checked during the window, cheaply
    assert len(emulator.charges(operation="renewal")) == 1


async def test_the_deadline_ends_the_window_with_a_pending_handle(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = _active(emulator)
    time = FakeTime()
    emulator.faults.once(Fault.late(LATE), path="/pec/*/rinnovo")
    policy = RetryPolicy(sleep=time.sleep, clock=time.clock, settle=60, deadline=20)
    with pytest.raises(OutcomeUnknownError) as info:
        await client.with_options(retry=policy).mailboxes.renew(box_id)
    error = info.value
    assert isinstance(error.cause, ServerError) and error.cause.status == 504  # the write's own
    assert secret_leaks(error, DEFAULT_TOKEN) == []
    pending = error.pending
    assert isinstance(pending, PendingOutcome)
    assert pending.operation == "mailboxes.renew" and pending.target == f"pec/{box_id}"
    assert client.pending_outcomes() == [pending]
    assert emulator.count("GET", "/pec/*/rinnovo") == 1  # never resent blindly
    await emulator.drain_late()
    renewed = await client.reconcile(pending)
    assert isinstance(renewed, Mailbox) and renewed.id == box_id
    assert client.pending_outcomes() == []
    assert len(emulator.charges(operation="renewal")) == 1


async def test_reconcile_says_none_when_the_write_never_happened(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = _active(emulator)
    time = FakeTime()
    emulator.faults.once(Fault.status(502), path="/pec/*/rinnovo")  # not processed
    policy = RetryPolicy(sleep=time.sleep, clock=time.clock, settle=60, deadline=10)
    with pytest.raises(OutcomeUnknownError) as info:
        await client.with_options(retry=policy).mailboxes.renew(box_id)
    pending = info.value.pending
    assert pending is not None
    assert await client.reconcile(pending) is None  # waited out the window: not applied
    assert time.now >= pending.settle_until
    assert emulator.charges(operation="renewal") == []
    await client.mailboxes.renew(box_id)  # now safe to send again
    assert len(emulator.charges(operation="renewal")) == 1


# -- finding 3: the cause is the write's own error ----------------------------------------


async def test_an_unverifiable_outcome_carries_the_writes_error(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = _active(emulator)
    time = FakeTime()
    emulator.faults.once(Fault.drop_after(), path="/pec/*/rinnovo")

    def break_reads(attempt: Attempt) -> None:
        if attempt.reconcile:
            emulator.faults.rate(1.0, Fault.status(503), method="GET", path=f"/pec/{box_id}")

    policy = RetryPolicy(
        sleep=time.sleep, clock=time.clock, settle=30, max_attempts=2, on_attempt=break_reads
    )
    with pytest.raises(OutcomeUnknownError) as info:
        await client.with_options(retry=policy).mailboxes.renew(box_id)
    assert isinstance(info.value.cause, PecConnectionError)
    assert not isinstance(info.value.cause, OutcomeUnknownError)
    assert emulator.count("GET", "/pec/*/rinnovo") == 1
    emulator.faults.clear()
    pending = info.value.pending
    assert pending is not None
    assert isinstance(await client.reconcile(pending), Mailbox)
    assert len(emulator.charges(operation="renewal")) == 1


# -- finding 4: the token first -----------------------------------------------------------


async def _oauth_env() -> tuple[Emulator, OAuthEmulator]:
    emu = Emulator(tokens={})
    return emu, OAuthEmulator(emu, email="owner@example.org", api_key="key-123")


async def test_a_token_failure_is_typed_and_nothing_is_sent() -> None:
    emu, oauth = await _oauth_env()
    oauth.fail_next(503, times=3)  # one per attempt
    async with emu.serve() as pec, oauth.serve() as auth:
        provider = OAuthTokenProvider(
            "owner@example.org",
            "key-123",
            scopes=all_pec_scopes(sandbox=True),
            sandbox=True,
            base_url=auth.url,
        )
        policy = RetryPolicy(max_attempts=3, sleep=no_sleep, settle=0)
        async with provider, PecClient(provider, sandbox=True, base_url=pec.url, retry=policy) as c:
            with pytest.raises(TokenError) as info:
                await c.mailboxes.register(make_registration())
            assert info.value.request_sent is False
            assert info.value.retryable is True
            assert isinstance(info.value.cause, ServerError)
            assert "nothing was sent" in str(info.value)
            assert emu.requests == []  # not one request reached the PEC API
            assert c.pending_outcomes() == []
            credential = base64.b64encode(b"owner@example.org:key-123").decode()
            assert secret_leaks(info.value, "key-123", credential) == []
            # a passing failure of the token service is retried, the paid write included
            oauth.fail_next(503, times=1)
            box = await c.mailboxes.register(make_registration())
    assert [ch.target_id for ch in emu.charges(operation="register")] == [box.id]


# -- finding 5: the user's session settings ------------------------------------------------


async def test_a_raise_for_status_session_keeps_pecapi_errors(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    box_id = _active(emulator)
    async with (
        aiohttp.ClientSession(raise_for_status=True, auto_decompress=False) as session,
        PecClient(
            DEFAULT_TOKEN,
            sandbox=True,
            base_url=pec_server.url,
            session=session,
            retry=RetryPolicy(sleep=no_sleep, settle=0),
        ) as client,
    ):
        with pytest.raises(NotFoundError):
            await client.mailboxes.get("0" * 24)
        emulator.wallet = Decimal("0")
        with pytest.raises(InsufficientCreditError):
            await client.mailboxes.renew(box_id)
        assert emulator.count("GET", "/pec/*/rinnovo") == 1
        emulator.wallet = Decimal("1000")
        assert (await client.mailboxes.get(box_id)).id == box_id  # decompressed all the same


def test_an_aiohttp_that_cannot_stop_silent_resends_is_refused() -> None:
    async def check() -> None:
        async with aiohttp.ClientSession() as session:
            del session._retry_connection  # what aiohttp before 3.11 looks like
            with pytest.raises(ConfigurationError, match=r"3\.11"):
                PecClient(DEFAULT_TOKEN, base_url="http://127.0.0.1:9", session=session)

    asyncio.run(check())


# -- finding 6: Retry-After beyond what the policy allows ----------------------------------


@pytest.mark.parametrize("retry_after", ["1000000000000", "Thu, 01 Jan 2099 00:00:00 GMT"])
async def test_an_endless_retry_after_fails_at_once(
    client: PecClient, emulator: Emulator, retry_after: str
) -> None:
    time = FakeTime()
    emulator.faults.once(Fault.status(429, retry_after=retry_after))
    policy = RetryPolicy(sleep=time.sleep, clock=time.clock, deadline=None)
    with pytest.raises(RateLimitError) as info:
        await client.with_options(retry=policy).mailboxes.list()
    assert (info.value.retry_after or 0) > policy.backoff_max
    assert time.waits == []
    assert emulator.count("GET", "/pec") == 1


# -- finding 7: two paid writes on one mailbox ---------------------------------------------


@pytest.mark.parametrize("name", ["renew", "change_space", "add_user"])
async def test_two_paid_writes_on_one_mailbox_are_both_true(
    client: PecClient, emulator: Emulator, name: str
) -> None:
    method, path, ledger, op = PAID[name]
    box_id = _active(emulator)
    before = copy.deepcopy(emulator.mailboxes[box_id])
    emulator.faults.once(Fault.late(LATE), method=method, path=path)
    late = client.with_options(retry=settling())
    first, second = await asyncio.gather(op(late, box_id), op(late, box_id))
    await emulator.drain_late()
    assert isinstance(first, Mailbox) and isinstance(second, Mailbox)
    assert len(emulator.charges(operation=ledger, target_id=box_id)) == 2
    after = emulator.mailboxes[box_id]
    if name == "renew":
        year = 365 * 86400
        moved = after["timestamp"]["scadenza"] - before["timestamp"]["scadenza"]
        assert moved >= 2 * year - 2 * 86400
    elif name == "change_space":
        assert int(after["spazio_disco"]) == int(before["spazio_disco"]) + 2048
    else:
        assert len(after["multiutenza"]) == 2
    assert emulator.count(method, path) == 2  # one each, none resent


async def test_two_comunica_pec_for_one_address_are_both_true(
    client: PecClient, emulator: Emulator
) -> None:
    emulator.faults.once(Fault.late(LATE), method="POST", path="/comunica_pec")
    late = client.with_options(retry=settling())
    first, second = await asyncio.gather(
        late.comunica_pec.create(make_comunica_request()),
        late.comunica_pec.create(make_comunica_request()),
    )
    await emulator.drain_late()
    assert first.id != second.id
    assert set(emulator.comunica_requests) == {first.id, second.id}
    assert len(emulator.charges(operation="comunica_pec")) == 2


# -- finding 8: cancellation ---------------------------------------------------------------


async def test_cancelled_while_settling_the_outcome_is_not_forgotten(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = _active(emulator)
    settling_now = asyncio.Event()
    emulator.faults.once(Fault.late(LATE), path="/pec/*/rinnovo")
    policy = settling(on_attempt=lambda attempt: settling_now.set())
    task = asyncio.create_task(client.with_options(retry=policy).mailboxes.renew(box_id))
    await settling_now.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (pending,) = client.pending_outcomes()
    assert pending.operation == "mailboxes.renew" and isinstance(pending.cause, ServerError)
    assert pending.cancelled
    renewed = await client.reconcile(pending)
    assert isinstance(renewed, Mailbox)
    assert client.pending_outcomes() == []
    assert emulator.count("GET", "/pec/*/rinnovo") == 1
    assert len(emulator.charges(operation="renewal")) == 1


async def test_cancelled_in_flight_the_outcome_is_not_forgotten(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = _active(emulator)
    emulator.faults.once(Fault.late(LATE, reply="hang"), path="/pec/*/rinnovo")
    policy = settling()
    task = asyncio.create_task(client.with_options(retry=policy).mailboxes.renew(box_id))
    await wait_until(lambda: emulator.count("GET", "/pec/*/rinnovo") == 1)  # reached the API
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    (pending,) = client.pending_outcomes()
    assert pending.cancelled and pending.cause is None
    assert isinstance(await client.reconcile(pending), Mailbox)
    assert len(emulator.charges(operation="renewal")) == 1


# -- the proof: every paid kind under late faults ------------------------------------------

PER_KIND = 200
FAULT_MIX = [
    Fault.late(0.2),
    Fault.late(0.3, reply="drop"),
    Fault.late(0.8, reply="hang"),
    Fault.drop_after(),
    Fault.drop_before(),
    Fault.status(500),
    Fault.status(502, body="html"),
    Fault.status(503, body="html"),
    Fault.status(504, body="empty"),
    Fault.status(429, retry_after=0),
    Fault.truncated_body(),
    Fault.malformed_json(),
    Fault.latency(0.01),
]


async def test_every_paid_kind_under_late_faults_is_charged_exactly_once() -> None:
    """200 calls of each paid kind, 30 % of all requests faulted (late commits among
    them): each operation is applied and charged exactly once, no mailbox is doubled,
    at least 90 % report success and the rest settle through their pending handle."""
    emulator = Emulator(credit=Decimal("10000000"), seed=3)
    kinds = ["register", "comunica_pec", *sorted(PAID)]
    boxes = {name: [_active(emulator, f"{name}{i:03d}") for i in range(PER_KIND)] for name in PAID}
    policy = RetryPolicy(
        max_attempts=12, settle=SETTLE, backoff=0.01, backoff_max=0.05, deadline=None
    )
    outcomes: dict[str, list[Any]] = {}
    async with (
        emulator.serve() as server,
        PecClient(
            DEFAULT_TOKEN,
            sandbox=True,
            base_url=server.url,
            retry=policy,
            timeout=Timeout(total=0.5, connect=0.5),
        ) as client,
    ):
        calls: list[tuple[str, int, Callable[[], Awaitable[Any]]]] = []
        for i in range(PER_KIND):
            address = f"new{i:03d}@testcert.legalmail.it"
            calls.append(
                ("register", i, lambda a=address: client.mailboxes.register(make_registration(a)))
            )  # type: ignore[misc]
            comunica = make_comunica_request(casella_pec=f"com{i:03d}@pec.com")
            calls.append(("comunica_pec", i, lambda r=comunica: client.comunica_pec.create(r)))  # type: ignore[misc]
            for name, (_, _, _, op) in PAID.items():
                box_id = boxes[name][i]
                calls.append((name, i, lambda op=op, b=box_id: op(client, b)))  # type: ignore[misc]
        emulator.faults.rate(0.3, FAULT_MIX, seed=9)
        limit = asyncio.Semaphore(48)

        async def guarded(call: Callable[[], Awaitable[Any]]) -> Any:
            async with limit:
                return await call()

        results = await asyncio.gather(*(guarded(c) for _, _, c in calls), return_exceptions=True)
        for (name, _, _), result in zip(calls, results, strict=True):
            outcomes.setdefault(name, []).append(result)
        await emulator.drain_late()
        emulator.faults.clear()
        # whatever was left unknown settles through its handle, and is sent again only
        # when the account shows it never happened
        for (_, _, call), result in zip(calls, results, strict=True):
            if isinstance(result, OutcomeUnknownError):
                assert result.pending is not None
                if await client.reconcile(result.pending) is None:
                    await call()
        assert client.pending_outcomes() == []

    faulted = emulator.faults.counts
    assert faulted["late"] >= 50 and faulted["drop_after"] >= 10, faulted
    for name in kinds:
        kind_results = outcomes[name]
        errors = [r for r in kind_results if isinstance(r, BaseException)]
        assert all(isinstance(e, OutcomeUnknownError) for e in errors), Counter(
            type(e).__name__ for e in errors
        )
        assert len(errors) <= PER_KIND // 10, (name, len(errors))
    per_op = Counter((c.operation, c.target_id) for c in emulator.ledger)
    doubled = [key for key, n in per_op.items() if n > 1]
    assert doubled == [], doubled[:5]
    charged = Counter(op for op, _ in per_op)
    assert charged == {
        "register": PER_KIND,
        "comunica_pec": PER_KIND,
        "renewal": PER_KIND,
        "multiutenza": PER_KIND,
        "space": PER_KIND,
        "trasformazione": PER_KIND,
        "conservazione": PER_KIND,
    }, charged
    addresses = [m["casella_pec"] for m in emulator.mailboxes.values()]
    assert len(addresses) == len(set(addresses)) == len(PAID) * PER_KIND + PER_KIND
    for name, ids in boxes.items():
        for box_id in ids:
            box = emulator.mailboxes[box_id]
            if name == "add_user":
                assert len(box["multiutenza"]) == 1
            elif name == "change_type":
                assert box["tipo_casella"] == "GOLD"
            elif name == "activate_conservation":
                assert box["conservazione"] in (True, "true", 1)


async def test_a_batch_left_early_records_what_it_cut_short(
    client: PecClient, emulator: Emulator
) -> None:
    ids = [_active(emulator, f"box{i}") for i in range(6)]
    emulator.faults.next(6, Fault.late(LATE, reply="hang"), path="/pec/*/rinnovo")
    late = client.with_options(retry=settling())
    async with late.map(late.mailboxes.renew, ids, concurrency=6) as batch:
        first = asyncio.ensure_future(anext(aiter(batch)))  # starts the six calls
        await wait_until(lambda: emulator.count("GET", "/pec/*/rinnovo") == 6)  # all reached it
        first.cancel()  # leave early: the block's exit cancels what is in flight
        with pytest.raises(asyncio.CancelledError):
            await first
    assert sorted(batch.interrupted) == sorted(ids)
    pending = client.pending_outcomes()
    assert sorted(p.target or "" for p in pending) == sorted(f"pec/{i}" for i in ids)
    settled = await asyncio.gather(*(client.reconcile(p) for p in pending))
    assert all(isinstance(box, Mailbox) for box in settled)
    assert sorted(c.target_id for c in emulator.charges(operation="renewal")) == sorted(ids)
    assert client.pending_outcomes() == []


# -- what a review of the first version found ----------------------------------------------


async def test_two_renewals_one_never_processed_are_both_charged(
    client: PecClient, emulator: Emulator
) -> None:
    """The first renewal's 503 was never processed; without the per-mailbox lock its
    settling would see the second renewal's change and report it as its own."""
    box_id = _active(emulator)
    emulator.faults.once(Fault.status(503), path="/pec/*/rinnovo")
    late = client.with_options(retry=settling(settle=0.3))
    await asyncio.gather(late.mailboxes.renew(box_id), late.mailboxes.renew(box_id))
    assert len(emulator.charges(operation="renewal", target_id=box_id)) == 2
    assert emulator.count("GET", "/pec/*/rinnovo") == 3  # one resent after its window


async def test_a_write_in_progress_is_not_in_the_book(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = _active(emulator)
    seen: list[list[PendingOutcome[Any]]] = []
    emulator.faults.once(Fault.late(LATE), path="/pec/*/rinnovo")
    policy = settling(on_attempt=lambda _: seen.append(client.pending_outcomes()))
    await client.with_options(retry=policy).mailboxes.renew(box_id)
    assert seen == [[]]  # settled by its own call: nobody else may settle it meanwhile
    assert client.pending_outcomes() == []


async def test_an_unsettled_write_is_settled_before_the_next_on_its_mailbox(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = _active(emulator)
    emulator.faults.once(Fault.status(503), path="/pec/*/rinnovo")  # never processed
    hasty = client.with_options(retry=settling(settle=0.4, deadline=0.1))
    with pytest.raises(OutcomeUnknownError) as info:
        await hasty.mailboxes.renew(box_id)
    first = info.value.pending
    assert first is not None and client.pending_outcomes() == [first]
    await client.with_options(retry=settling(settle=0.4)).mailboxes.renew(box_id)
    assert first.settled and first.result is None  # settled before the second was sent
    assert await client.reconcile(first) is None  # not the second renewal's change
    assert len(emulator.charges(operation="renewal")) == 1


async def test_a_resend_refused_because_the_first_landed_returns_the_first(
    client: PecClient, emulator: Emulator
) -> None:
    """The registration commits after its (too short) window, just before the resend is
    processed: the resend is refused as taken, and the first registration is returned."""
    emulator.faults.once(Fault.late(0.3), method="POST", path="/pec")
    emulator.faults.once(Fault.latency(0.4), method="POST", path="/pec")
    box = await client.with_options(retry=settling(settle=0.1)).mailboxes.register(
        make_registration()
    )
    await emulator.drain_late()
    assert list(emulator.mailboxes) == [box.id]
    assert len(emulator.charges(operation="register")) == 1


async def test_each_check_reads_once(client: PecClient, emulator: Emulator) -> None:
    box_id = _active(emulator)
    emulator.faults.once(Fault.status(503), path="/pec/*/rinnovo")
    await client.with_options(retry=settling(settle=0)).mailboxes.renew(box_id)
    # the baseline, one check (no change), then the resend
    assert emulator.count("GET", f"/pec/{box_id}") == 2
    assert emulator.count("GET", "/pec/*/rinnovo") == 2


async def test_closing_the_client_ends_settling_at_once(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    box_id = _active(emulator)
    settling_now = asyncio.Event()
    emulator.faults.once(Fault.status(503), path="/pec/*/rinnovo")
    policy = settling(settle=30, on_attempt=lambda _: settling_now.set())
    client = PecClient(DEFAULT_TOKEN, sandbox=True, base_url=pec_server.url, retry=policy)
    task = asyncio.create_task(client.mailboxes.renew(box_id))
    await settling_now.wait()
    await client.aclose()
    with pytest.raises(OutcomeUnknownError, match="cannot be checked"):
        await task


def test_an_old_aiohttp_is_refused_for_a_session_of_pecapis_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import pecapi.transport.pipeline as pipeline

    monkeypatch.setattr(pipeline, "_CAN_STOP_RESEND", False)
    with pytest.raises(ConfigurationError, match=r"3\.11"):
        PecClient(DEFAULT_TOKEN, base_url="http://127.0.0.1:9")
