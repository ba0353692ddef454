"""The pipeline under faults: a typed error for every bad answer, never a double charge."""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable

import pytest
from yarl import URL

from pecapi import (
    AuthenticationError,
    ConfigurationError,
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
from pecapi.transport.auth import bearer_auth
from pecapi.transport.decode import retry_after_seconds
from pecapi.transport.endpoint import PDF_ACCEPT, Answer, Effect, Endpoint
from pecapi.transport.pipeline import Pipeline
from pecapi.transport.requester import Requester
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


async def test_a_shared_listing_past_its_deadline_is_not_started() -> None:
    listing: FreshListing[int] = FreshListing()
    started: list[int] = []

    async def fetch() -> int:
        started.append(1)
        return 1

    with pytest.raises(PecTimeoutError, match="deadline has passed"):
        await listing.newer_than(0.0, "options", fetch, time_left=0.0)
    await asyncio.sleep(0)  # a task created anyway would have run by now
    assert started == []
    assert await listing.newer_than(0.0, "options", fetch) == 1 and started == [1]


async def test_a_waiter_leaving_does_not_cancel_a_listing_others_wait_for() -> None:
    listing: FreshListing[int] = FreshListing()
    release = asyncio.Event()
    calls: list[int] = []

    async def fetch() -> int:
        calls.append(1)
        await release.wait()
        return 7

    leaving = asyncio.ensure_future(listing.newer_than(0.0, "options", fetch))
    staying = asyncio.ensure_future(listing.newer_than(0.0, "options", fetch))
    await asyncio.sleep(0)
    leaving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await leaving
    release.set()
    assert await staying == 7
    assert calls == [1]  # one listing, shared, and not cancelled by the one that left


async def test_pipeline_aclose_cancels_running_listings() -> None:
    pipeline = Pipeline(base_url=URL("http://127.0.0.1:9"), auth=bearer_auth("t"))
    cancelled = asyncio.Event()
    running = asyncio.Event()

    async def never() -> int:
        running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return 1

    waiter = asyncio.ensure_future(
        pipeline.reads.listing("mailboxes.list").newer_than(0.0, "options", never)
    )
    await asyncio.wait_for(running.wait(), 10)
    await pipeline.aclose()
    assert cancelled.is_set()  # ended by aclose, not left running behind it
    await asyncio.gather(waiter, return_exceptions=True)


async def test_a_requester_sends_each_kind_of_answer_one_way_only(
    client: PecClient, emulator: Emulator
) -> None:
    requester = Requester(client._pipeline)
    before = len(emulator.requests)
    with pytest.raises(ConfigurationError, match="answers a PDF: use download"):
        await requester.call(mailboxes.ACTIVATION_FORM, params={"id": "x"})
    with pytest.raises(ConfigurationError, match="answers JSON: use call"):
        await requester.download(mailboxes.GET, params={"id": "x"})  # type: ignore[arg-type]
    assert len(emulator.requests) == before  # refused before anything was sent


async def test_copies_with_equal_options_share_one_listing(client: PecClient) -> None:
    """Two ``with_options`` copies made alike wait for one read of the listing; a copy
    with other options gets a read of its own."""
    from pecapi.transport.requester import _key

    def key_of(copy: PecClient) -> object:
        return _key(copy.mailboxes._requester.options())

    same = [client.with_options(timeout=7, extra_headers={"X-Tenant": "a"}) for _ in range(2)]
    other = client.with_options(timeout=7, extra_headers={"X-Tenant": "b"})
    listing: FreshListing[int] = FreshListing()
    release = asyncio.Event()
    fetches: list[object] = []

    def fetcher(key: object) -> Callable[[], Awaitable[int]]:
        async def fetch() -> int:
            fetches.append(key)
            await release.wait()
            return len(fetches)

        return fetch

    keys = [key_of(c) for c in (*same, other)]
    waiters = [asyncio.ensure_future(listing.newer_than(0.0, key, fetcher(key))) for key in keys]
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    release.set()
    await asyncio.gather(*waiters)
    assert keys[0] == keys[1] != keys[2]
    assert len(fetches) == 2  # one for the two alike, one for the other
