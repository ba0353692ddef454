"""The request path's shortcuts keep every rule: the raw JSON without decoding
(``with_raw_json``), a fixed token set once on pecapi's own session (never on a user's,
never instead of a provider's), the first attempt of a read made outside the retry loop,
the throttle's synchronous gate, and ids that need no encoding."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

import aiohttp
import pytest

from pecapi import (
    AuthenticationError,
    Mailbox,
    NotFoundError,
    PecClient,
    PecTimeoutError,
    RetryPolicy,
    ServerError,
    ValidationError,
)
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator
from pecapi.transport import raw as raw_module
from pecapi.transport.endpoint import Effect, Endpoint, build_url
from pecapi.transport.raw import with_raw_json, with_raw_response
from pecapi.transport.retry import Attempt
from pecapi.transport.throttle import Throttle
from tests.conftest import no_sleep

ONCE = RetryPolicy.never()
MISSING = "0" * 24  # a well-formed id of no mailbox

# -- with_raw_json -----------------------------------------------------------------------


async def test_raw_json_is_the_answers_data_as_parsed(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    raw = await with_raw_json(client.mailboxes.get(box_id))
    assert isinstance(raw.value, dict) and raw.value["id"] == box_id
    assert raw.value["casella_pec"] == "m@testcert.legalmail.it"
    assert raw.status == 200 and raw.operation == "mailboxes.get"
    assert raw.responses == (raw.response,)
    assert raw_module._recorder.get() is None  # nothing left recording
    decoded = await client.mailboxes.get(box_id)  # and the next call decodes again
    assert isinstance(decoded, Mailbox) and decoded.id == box_id


async def test_raw_json_of_a_listing_and_of_an_empty_answer(
    client: PecClient, emulator: Emulator
) -> None:
    empty = await with_raw_json(client.mailboxes.list())
    assert empty.value is None and empty.status == 404  # empty_when: "nothing here"
    emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    listing = await with_raw_json(client.mailboxes.list())
    assert isinstance(listing.value, list) and isinstance(listing.value[0], dict)


async def test_raw_json_errors_stay_typed(client: PecClient, emulator: Emulator) -> None:
    with pytest.raises(NotFoundError):
        await with_raw_json(client.mailboxes.get(MISSING))
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(Fault.status(503), path="/pec/*")
    raw = await with_raw_json(client.mailboxes.get(box_id))  # retried, as ever
    assert [r.status for r in raw.responses] == [503, 200] and raw.value["id"] == box_id
    with pytest.raises(ValidationError, match="takes the call itself"):
        await with_raw_json(asyncio.ensure_future(client.mailboxes.get(box_id)))


async def test_raw_json_of_a_settled_write_is_the_read_that_found_it(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(Fault.late(0.2), path="/pec/*/rinnovo")  # 504, committed later
    settling = client.with_options(retry=RetryPolicy(settle=1.5, backoff=0.01, backoff_max=0.05))
    raw = await with_raw_json(settling.mailboxes.renew(box_id))
    await emulator.drain_late()
    # The reconciler still decoded its reads (it compares Mailboxes); the value is the
    # JSON of the read that found the change.
    assert isinstance(raw.value, dict) and raw.value["id"] == box_id
    assert raw.operation == "mailboxes.get"
    assert len(emulator.charges(operation="renewal")) == 1


async def test_raw_response_still_decodes(client: PecClient, emulator: Emulator) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    raw = await with_raw_response(client.mailboxes.get(box_id))
    assert isinstance(raw.value, Mailbox)


# -- the token: set once on pecapi's own session -----------------------------------------


async def test_a_fixed_token_is_a_header_of_pecapis_own_session(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    async with PecClient(DEFAULT_TOKEN, base_url=pec_server.url, retry=ONCE) as client:
        assert (await client.mailboxes.get(box_id)).id == box_id
        session = client._pipeline.session()
        assert session.headers["Authorization"] == f"Bearer {DEFAULT_TOKEN}"
        assert client._pipeline._session_auth
        assert DEFAULT_TOKEN not in repr(client) + repr(client._pipeline.auth)


async def test_a_wrong_fixed_token_is_refused_by_the_server(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    async with PecClient("not-the-token", base_url=pec_server.url, retry=ONCE) as client:
        with pytest.raises(AuthenticationError) as refused:
            await client.mailboxes.get(box_id)
        assert refused.value.status == 401


async def test_a_users_session_never_gets_the_token(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    async with aiohttp.ClientSession() as session:
        async with PecClient(
            DEFAULT_TOKEN, base_url=pec_server.url, session=session, retry=ONCE
        ) as client:
            assert (await client.mailboxes.get(box_id)).id == box_id  # sent per request
            assert not client._pipeline._session_auth
        assert "Authorization" not in session.headers
        assert not session.closed  # not ours to close


class CountingProvider:
    def __init__(self) -> None:
        self.calls = 0

    async def get_token(self) -> str:
        self.calls += 1
        return DEFAULT_TOKEN


async def test_a_token_provider_is_asked_before_every_request(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    provider = CountingProvider()
    async with PecClient(provider, base_url=pec_server.url, retry=ONCE) as client:
        for _ in range(3):
            await client.mailboxes.get(box_id)
        assert provider.calls == 3
        assert "Authorization" not in client._pipeline.session().headers


# -- the first attempt of a read, outside the loop ---------------------------------------


async def test_a_read_is_retried_as_the_policy_says(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    seen: list[Attempt] = []
    policy = RetryPolicy(max_attempts=3, sleep=no_sleep, on_attempt=seen.append)
    async with PecClient(DEFAULT_TOKEN, base_url=pec_server.url, retry=policy) as client:
        emulator.faults.once(Fault.status(503), path="/pec/*")
        emulator.faults.once(Fault.status(502), path="/pec/*")
        assert (await client.mailboxes.get(box_id)).id == box_id
        assert [(a.attempt, a.operation, a.reconcile) for a in seen] == [
            (1, "mailboxes.get", False),
            (2, "mailboxes.get", False),
        ]
        seen.clear()
        emulator.faults.next(3, Fault.status(503), path="/pec/*")
        with pytest.raises(ServerError):
            await client.mailboxes.get(box_id)
        assert [a.attempt for a in seen] == [1, 2]  # three attempts in all
        seen.clear()
        with pytest.raises(NotFoundError):  # not retried
            await client.mailboxes.get(MISSING)
        assert seen == []


async def test_a_read_past_its_deadline_is_not_sent(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    now = [0.0]

    def clock() -> float:
        now[0] += 1.0  # each reading of the clock takes the whole deadline
        return now[0]

    policy = RetryPolicy(deadline=1.0, clock=clock, sleep=no_sleep)
    before = emulator.count("GET", "/pec/*")
    async with PecClient(DEFAULT_TOKEN, base_url=pec_server.url, retry=policy) as client:
        with pytest.raises(PecTimeoutError, match="deadline has passed"):
            await client.mailboxes.get(MISSING)
    assert emulator.count("GET", "/pec/*") == before


# -- the throttle ------------------------------------------------------------------------


async def test_the_throttle_gate_is_first_come_first_served() -> None:
    throttle = Throttle(1)
    assert throttle.enter_now() and throttle.in_flight == 1
    assert not throttle.enter_now()  # full: nothing taken
    order: list[int] = []

    async def waiter(i: int) -> None:
        async with throttle:
            order.append(i)
            await asyncio.sleep(0)

    tasks = [asyncio.ensure_future(waiter(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert not throttle.enter_now()  # a newcomer does not pass the queue
    tasks[1].cancel()  # a cancelled waiter gives its turn on
    throttle.leave()
    await asyncio.gather(*tasks, return_exceptions=True)
    assert order == [0, 2] and throttle.in_flight == 0
    assert throttle.enter_now()  # free again, at once
    throttle.leave()


async def test_a_waiter_cancelled_after_being_handed_a_slot_passes_it_on() -> None:
    throttle = Throttle(1)
    assert throttle.enter_now()
    first = asyncio.ensure_future(throttle.__aenter__())
    second = asyncio.ensure_future(throttle.__aenter__())
    await asyncio.sleep(0)
    throttle.leave()  # handed to `first`...
    first.cancel()  # ...which is cancelled before it runs
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)
    assert throttle.in_flight == 1


async def test_a_rate_or_a_subclass_never_takes_the_synchronous_gate() -> None:
    assert not Throttle(5, rate=10.0).enter_now()

    class Gated(Throttle):
        async def __aenter__(self) -> None:
            await super().__aenter__()

    assert not Gated(5).enter_now()


# -- ids that need no encoding -----------------------------------------------------------

ENDPOINT: Endpoint[Any] = Endpoint(
    name="t.get", method="GET", path="/pec/{id}/x/{other}", effect=Effect.READ, decode=repr
)


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("8bde3319ce2007ca865f430a", "8bde3319ce2007ca865f430a"),
        ("a b", "a%20b"),
        ("a/b", "a%2Fb"),
        ("è", "%C3%A8"),
        ("a.b-c_d~e", "a.b-c_d~e"),
        ("x?y#z", "x%3Fy%23z"),
    ],
)
def test_path_segments(value: str, encoded: str) -> None:
    from yarl import URL

    url = build_url(URL("https://h.example/base/"), ENDPOINT, {"id": value, "other": "1"})
    assert url.raw_path == f"/base/pec/{encoded}/x/1"


@pytest.mark.parametrize("value", [".", "..", "", "  ", 7])
def test_bad_segments_are_refused(value: Any) -> None:
    from yarl import URL

    with pytest.raises(ValidationError):
        build_url(URL("https://h.example"), ENDPOINT, {"id": value, "other": "1"})


def test_a_missing_parameter_is_named() -> None:
    from yarl import URL

    with pytest.raises(ValidationError, match="id"):
        build_url(URL("https://h.example"), ENDPOINT, {"other": "1"})


class ContextCapturingProvider:
    """Copies the context of each request, as aiohttp's timers do (a kept-alive
    connection's timer holds its copy for seconds)."""

    def __init__(self) -> None:
        self.contexts: list[contextvars.Context] = []

    async def get_token(self) -> str:
        self.contexts.append(contextvars.copy_context())
        return DEFAULT_TOKEN


@pytest.mark.parametrize("hatch", [with_raw_json, with_raw_response])
async def test_a_copied_context_keeps_no_answer_alive(
    hatch: Any, pec_server: RunningEmulator, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    provider = ContextCapturingProvider()
    async with PecClient(provider, base_url=pec_server.url, retry=ONCE) as client:
        raw = await hatch(client.mailboxes.get(box_id))
    assert raw.status == 200
    recorder = provider.contexts[0][raw_module._recorder]
    assert recorder is not None
    assert (recorder.answers, recorder.values, recorder.data, recorder.pending) == ([], [], [], {})


@pytest.mark.parametrize("hatch", [with_raw_json, with_raw_response])
async def test_a_copied_context_keeps_no_answer_alive_after_an_error(
    hatch: Any, pec_server: RunningEmulator, emulator: Emulator
) -> None:
    provider = ContextCapturingProvider()
    async with PecClient(provider, base_url=pec_server.url, retry=ONCE) as client:
        with pytest.raises(NotFoundError):
            await hatch(client.mailboxes.get(MISSING))
    recorder = provider.contexts[0][raw_module._recorder]
    assert recorder is not None
    assert (recorder.answers, recorder.values, recorder.data, recorder.pending) == ([], [], [], {})
    assert raw_module._recorder.get() is None


async def test_raw_json_of_an_answer_the_operation_makes_a_value_of(
    client: PecClient, emulator: Emulator
) -> None:
    emulator.seed_mailbox("preso@testcert.legalmail.it", stato="evasa")
    taken = await with_raw_json(client.mailboxes.is_available("preso@testcert.legalmail.it"))
    assert taken.value is False and taken.status == 406
    free = await with_raw_json(client.mailboxes.is_available("libero@testcert.legalmail.it"))
    assert free.value == {"available": True} and free.status == 200
