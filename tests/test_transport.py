"""The pipeline under faults: a typed error for every bad answer, never a double charge."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable

import pytest

from pecapi import (
    AuthenticationError,
    MailboxRegistration,
    OutcomeUnknownError,
    PecClient,
    PecConnectionError,
    PecTimeoutError,
    PermissionDeniedError,
    RateLimitError,
    RequestOptions,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    Timeout,
)
from pecapi.resources import comunica_pec, domains, mailboxes
from pecapi.testing import Emulator, Fault, RunningEmulator
from pecapi.transport.endpoint import PDF_ACCEPT, Answer, Effect, Endpoint
from pecapi.transport.pipeline import retry_after_seconds
from pecapi.transport.shared import FreshListing
from tests.conftest import PDF_BYTES

Registration = Callable[..., MailboxRegistration]


async def _active_id(client: PecClient, emulator: Emulator, registration: Registration) -> str:
    box = await client.mailboxes.register(registration())
    assert box.id is not None
    await client.mailboxes.activate(box.id, PDF_BYTES)
    emulator.complete_activation(box.id)
    return box.id


async def test_renewal_is_never_resent_silently(
    client: PecClient, emulator: Emulator, registration: Registration
) -> None:
    """A renewal is a paid GET. aiohttp by default re-sends a GET once when a kept-alive
    connection drops; the server below processes the renewal and then drops the
    connection, which with that default would renew (and charge) twice."""
    box_id = await _active_id(client, emulator, registration)
    emulator.faults.once(Fault.drop_after(), method="GET", path="/pec/*/rinnovo")
    with pytest.raises(OutcomeUnknownError) as info:
        await client.with_options(retry=RetryPolicy.never()).mailboxes.renew(box_id)
    assert isinstance(info.value.cause, PecConnectionError)
    assert info.value.cause.request_sent is True
    assert emulator.count("GET", "/pec/*/rinnovo") == 1
    assert len(emulator.charges(operation="renewal")) == 1
    assert emulator.faults.counts["drop_after"] == 1


async def test_a_dropped_renewal_is_reconciled_not_resent(
    client: PecClient, emulator: Emulator, registration: Registration
) -> None:
    box_id = await _active_id(client, emulator, registration)
    before = await client.mailboxes.get(box_id)
    emulator.faults.once(Fault.drop_after(), method="GET", path="/pec/*/rinnovo")
    renewed = await client.mailboxes.renew(box_id)
    assert renewed.timestamp is not None and before.timestamp is not None
    assert (renewed.timestamp.scadenza or 0) > (before.timestamp.scadenza or 0)
    assert emulator.count("GET", "/pec/*/rinnovo") == 1
    assert len(emulator.charges(operation="renewal")) == 1


async def test_html_error_page_is_a_server_error(raw_client: PecClient, emulator: Emulator) -> None:
    emulator.faults.once(Fault.status(503, body="html"))
    with pytest.raises(ServerError) as info:
        await raw_client.mailboxes.list()
    assert info.value.status == 503
    assert info.value.code is None
    assert "HTML error page" in str(info.value)


async def test_json_5xx_keeps_the_api_code(raw_client: PecClient, emulator: Emulator) -> None:
    emulator.faults.once(Fault.status(502, body="json"))
    with pytest.raises(ServerError) as info:
        await raw_client.mailboxes.list()
    assert info.value.status == 502


@pytest.mark.parametrize("form", ["seconds", "http-date"])
async def test_rate_limit_carries_retry_after(
    raw_client: PecClient, emulator: Emulator, form: str
) -> None:
    retry_after: int | str = 7 if form == "seconds" else "http-date"
    emulator.faults.once(Fault.status(429, retry_after=retry_after))
    with pytest.raises(RateLimitError) as info:
        await raw_client.mailboxes.list()
    assert info.value.status == 429
    assert info.value.retry_after is not None
    assert 0 <= info.value.retry_after <= 3600


def test_retry_after_parsing() -> None:
    now = time.time()
    assert retry_after_seconds({"Retry-After": "12"}) == 12
    date = email.utils.formatdate(now + 30, usegmt=True)
    parsed = retry_after_seconds({"Retry-After": date}, now=now)
    assert parsed is not None and 28 <= parsed <= 31
    assert retry_after_seconds({"Retry-After": "soon"}) is None
    assert retry_after_seconds({}) is None


async def test_malformed_json_is_a_decode_error(raw_client: PecClient, emulator: Emulator) -> None:
    emulator.faults.once(Fault.malformed_json())
    with pytest.raises(ResponseDecodeError) as info:
        await raw_client.mailboxes.list()
    assert info.value.status == 200
    assert info.value.body


async def test_truncated_body_is_a_connection_error(
    raw_client: PecClient, emulator: Emulator
) -> None:
    emulator.faults.once(Fault.truncated_body())
    with pytest.raises(PecConnectionError):
        await raw_client.mailboxes.list()


async def test_drop_before_is_a_connection_error(raw_client: PecClient, emulator: Emulator) -> None:
    emulator.faults.once(Fault.drop_before())
    with pytest.raises(PecConnectionError):
        await raw_client.mailboxes.list()
    assert emulator.faults.counts["drop_before"] == 1


async def test_slow_answer_times_out_per_call(raw_client: PecClient, emulator: Emulator) -> None:
    emulator.faults.once(Fault.latency(1.0))
    with pytest.raises(PecTimeoutError) as info:
        await raw_client.mailboxes.list(options=RequestOptions(timeout=0.05))
    assert isinstance(info.value, TimeoutError)
    # the client-level default still applies to the next call
    assert await raw_client.mailboxes.list() == []


async def test_with_options_shares_the_session(client: PecClient, emulator: Emulator) -> None:
    quick = client.with_options(
        timeout=Timeout(total=0.05, connect=0.05), retry=RetryPolicy.never()
    )
    emulator.faults.once(Fault.latency(1.0))
    with pytest.raises(PecTimeoutError):
        await quick.mailboxes.list()
    assert await quick.mailboxes.list() == []
    assert quick._pipeline is client._pipeline


async def test_connection_refused_is_typed_and_not_sent() -> None:
    async with PecClient("t", base_url="http://127.0.0.1:9") as client:
        with pytest.raises(PecConnectionError) as info:
            await client.mailboxes.list()
    assert info.value.request_sent is False


async def test_wrong_token_is_authentication_error(pec_server: RunningEmulator) -> None:
    async with PecClient("wrong-token", base_url=pec_server.url) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.mailboxes.list()
    assert info.value.status == 401


async def test_scopes_are_enforced() -> None:
    emulator = Emulator(tokens={"scoped": {"GET:test.pec.openapi.it/pec"}})
    async with (
        emulator.serve() as server,
        PecClient("scoped", sandbox=True, base_url=server.url) as client,
    ):
        assert await client.mailboxes.list() == []
        with pytest.raises(PermissionDeniedError) as info:
            await client.comunica_pec.list()
    assert info.value.status == 403


async def test_cancellation_propagates_untouched(client: PecClient, emulator: Emulator) -> None:
    emulator.faults.once(Fault.latency(5.0))
    task = asyncio.create_task(client.mailboxes.list())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await client.mailboxes.list() == []


async def test_many_concurrent_calls(
    client: PecClient, emulator: Emulator, registration: Registration
) -> None:
    boxes = await asyncio.gather(
        *(
            client.mailboxes.register(registration(f"user{i}@testcert.legalmail.it"))
            for i in range(100)
        )
    )
    assert len({box.id for box in boxes}) == 100
    assert len(emulator.charges(operation="register")) == 100


def test_every_endpoint_declares_what_it_answers() -> None:
    endpoints = (*domains.ENDPOINTS, *mailboxes.ENDPOINTS, *comunica_pec.ENDPOINTS)
    pdfs = {e.name for e in endpoints if e.answer is Answer.PDF}
    assert pdfs == {
        "mailboxes.activation_form",
        "mailboxes.conservation_form",
        "comunica_pec.power_of_attorney",
    }
    for endpoint in endpoints:
        if endpoint.answer is Answer.PDF:
            assert endpoint.decode is None and endpoint.accept == PDF_ACCEPT
            assert (endpoint.method, endpoint.effect) == ("GET", Effect.READ)
        else:
            assert endpoint.decode is not None and endpoint.accept == "application/json"
    with pytest.raises(TypeError, match="needs its decode"):
        Endpoint(name="x.get", method="GET", path="/x", effect=Effect.READ)
    with pytest.raises(TypeError, match="no decode"):
        Endpoint(
            name="x.pdf",
            method="GET",
            path="/x",
            effect=Effect.READ,
            answer=Answer.PDF,
            decode=lambda reply: b"",
        )


async def test_a_shared_listing_waiter_stops_at_its_deadline_and_the_listing_with_it() -> None:
    listing: FreshListing[int] = FreshListing()
    cancelled = asyncio.Event()

    async def never() -> int:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    with pytest.raises(PecTimeoutError, match=r"mailboxes\.list: the deadline has passed"):
        await listing.newer_than(0.0, "options", never, time_left=0.01, operation="mailboxes.list")
    await asyncio.wait_for(cancelled.wait(), 10)  # its only waiter left: nothing left running

    async def one() -> int:
        return 1

    assert await listing.newer_than(0.0, "options", one) == 1  # a new listing, not the failed
