"""Callbacks end to end over real HTTP: the emulator calls back a receiver built with
``pecapi.callbacks.handler`` on loopback; and the parser on its own."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web

from pecapi import (
    Callback,
    CallbackError,
    CallbackEvent,
    ComunicaPec,
    ComunicaPecState,
    Mailbox,
    MailboxState,
    PecClient,
)
from pecapi.callbacks import handler, parse_body, parse_payload
from pecapi.testing import DEFAULT_TOKEN, Emulator
from tests.conftest import (
    P7M_BYTES,
    PDF_BYTES,
    make_comunica_request,
    make_registration,
    serve_app,
)

OnEvent = Callable[[CallbackEvent], Awaitable[None]]


@asynccontextmanager
async def receiver(on_event: OnEvent, *, field: str = "data") -> AsyncIterator[str]:
    """A service of the user's: ``handler(on_event)`` mounted on its own app, on loopback."""
    app = web.Application()
    app.router.add_post("/pec-callback", handler(on_event, field=field))
    async with serve_app(app) as url:
        yield f"{url}/pec-callback"


@asynccontextmanager
async def setup(
    on_event: OnEvent, *, field: str = "data", **emulator_kwargs: Any
) -> AsyncIterator[tuple[str, Emulator, PecClient]]:
    emu = Emulator(**emulator_kwargs)
    async with (
        receiver(on_event, field=field) as url,
        emu.serve() as server,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url) as client,
    ):
        yield url, emu, client


@pytest.mark.parametrize(
    ("method", "field", "envelope"),
    [("POST", "payload", True), ("JSON", None, True), ("POST", None, False), ("JSON", None, False)],
)
async def test_mailbox_states_reach_the_handler(
    method: str, field: str | None, envelope: bool
) -> None:
    events: list[CallbackEvent] = []

    async def on_event(event: CallbackEvent) -> None:
        events.append(event)

    async with setup(on_event, field=field or "data", callback_envelope=envelope) as (
        url,
        emu,
        client,
    ):
        callback = Callback(url=url, method=method, field=field, data={"order": 42})
        box = await client.mailboxes.register(make_registration(callback=callback))
        await client.mailboxes.activate(box.id, PDF_BYTES)
        emu.reject_documents(box.id)
        await client.mailboxes.activate(box.id, PDF_BYTES)
        emu.complete_activation(box.id)
        await client.mailboxes.revoke(box.id)
        await client.mailboxes.renew(box.id)
        deliveries = await emu.deliveries_settled()

    assert [e.stato for e in events] == [
        MailboxState.REGISTRATA,
        MailboxState.IN_EVASIONE,
        MailboxState.DOCUMENTI_ERRATI,
        MailboxState.IN_EVASIONE,
        MailboxState.EVASA,
        MailboxState.REVOCATA,
        MailboxState.EVASA,
    ]
    for event in events:
        assert event.kind == "mailbox"
        assert isinstance(event.item, Mailbox)
        assert event.mailbox is event.item
        assert event.comunica_pec is None
        assert event.id == box.id
        assert event.data == {"order": 42}
    assert events[4].mailbox is not None
    assert events[4].mailbox.data_scadenza is not None  # the state as of that change
    assert events[0].mailbox is not None
    assert events[0].mailbox.data_scadenza is None
    assert len(deliveries) == 7
    for delivery in deliveries:
        assert (delivery.url, delivery.method, delivery.status) == (url, method, 200)
        assert delivery.attempts == 1
        assert delivery.delivered
    assert deliveries[0].field == (field or "data")


async def test_comunica_pec_states_reach_the_handler() -> None:
    events: list[CallbackEvent] = []

    async def on_event(event: CallbackEvent) -> None:
        events.append(event)

    async with setup(on_event) as (url, emu, client):
        created = await client.comunica_pec.create(
            make_comunica_request(callback=Callback(url=url, method="JSON", data={"ticket": "T-1"}))
        )
        emu.advance_comunica(created.id)
        await client.comunica_pec.upload_documents(created.id, P7M_BYTES)
        emu.advance_comunica(created.id)
        await emu.deliveries_settled()

    assert [e.stato for e in events] == list(ComunicaPecState)
    assert all(isinstance(e.item, ComunicaPec) and e.kind == "comunica_pec" for e in events)
    assert {e.id for e in events} == {created.id}
    assert all(e.data == {"ticket": "T-1"} for e in events)
    assert events[-1].comunica_pec is not None
    assert len(events[-1].comunica_pec.documenti_registro_imprese) == 1


async def test_auto_processed_changes_are_delivered_in_order() -> None:
    events: list[CallbackEvent] = []

    async def on_event(event: CallbackEvent) -> None:
        await asyncio.sleep(0)  # let other deliveries interleave if they could
        events.append(event)

    async with setup(on_event, auto_process=True) as (url, emu, client):
        boxes = [
            await client.mailboxes.register(
                make_registration(f"user{i}@testcert.legalmail.it", callback=Callback(url=url))
            )
            for i in range(5)
        ]
        await asyncio.gather(*(client.mailboxes.activate(b.id, PDF_BYTES) for b in boxes))
        await emu.deliveries_settled()

    for box in boxes:
        assert [e.stato for e in events if e.id == box.id] == [
            MailboxState.REGISTRATA,
            MailboxState.IN_EVASIONE,
            MailboxState.EVASA,
        ]


async def test_a_failing_on_event_is_answered_500_logged_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    async def on_event(event: CallbackEvent) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("database down")

    with caplog.at_level(logging.ERROR, logger="pecapi"):
        async with setup(on_event) as (url, emu, client):
            await client.mailboxes.register(make_registration(callback=Callback(url=url)))
            (delivery,) = await emu.deliveries_settled()
    assert (delivery.status, delivery.attempts, delivery.delivered) == (500, 3, False)
    assert calls == 3
    failures = [r for r in caplog.records if r.name == "pecapi" and r.levelno == logging.ERROR]
    assert len(failures) == 3
    assert failures[0].exc_info is not None
    assert "database down" in caplog.text


async def test_malformed_deliveries_get_400_without_a_traceback() -> None:
    events: list[CallbackEvent] = []

    async def on_event(event: CallbackEvent) -> None:
        events.append(event)

    mailbox = {"id": "a" * 24, "stato": "evasa", "casella_pec": "x@testcert.legalmail.it"}
    bad: list[tuple[bytes, str]] = [
        (b"", "application/json"),
        (b"{not json", "application/json"),
        (b"[1, 2]", "application/json"),
        (b'{"hello": "world"}', "application/json"),  # neither a mailbox nor a request
        (b'{"data": 3, "success": true}', "application/json"),
        (b'{"data": {"foo": 1}, "success": true}', "application/json"),
        (urlencode({"other": json.dumps(mailbox)}).encode(), "application/x-www-form-urlencoded"),
        (urlencode({"data": "{oops"}).encode(), "application/x-www-form-urlencoded"),
        (b"\xff\xfe", "application/x-www-form-urlencoded"),
    ]
    async with receiver(on_event) as url, aiohttp.ClientSession() as session:
        for body, content_type in bad:
            async with session.post(url, data=body, headers={"Content-Type": content_type}) as r:
                text = await r.text()
                assert r.status == 400, (body, text)
                assert "Traceback" not in text
                assert json.loads(text)["success"] is False
        form = aiohttp.FormData()
        form.add_field("other", "x", filename="x.json")
        async with session.post(url, data=form) as r:
            assert r.status == 400
        # the same object, well formed, is accepted
        async with session.post(url, json={"data": mailbox, "success": True}) as r:
            assert r.status == 200
    assert len(events) == 1
    assert events[0].stato is MailboxState.EVASA


async def test_a_multipart_delivery_is_read() -> None:
    events: list[CallbackEvent] = []

    async def on_event(event: CallbackEvent) -> None:
        events.append(event)

    request = {"id": "b" * 24, "stato": "in_attesa_di_documenti", "callback": {"data": {"k": 1}}}
    async with receiver(on_event, field="payload") as url, aiohttp.ClientSession() as session:
        for as_file in (False, True):
            form = aiohttp.FormData()
            form.add_field(
                "payload", json.dumps({"data": request}), filename="p.json" if as_file else None
            )
            form.add_field("extra", "ignored")
            async with session.post(url, data=form) as r:
                assert r.status == 200
    assert [e.kind for e in events] == ["comunica_pec", "comunica_pec"]
    assert all(e.data == {"k": 1} for e in events)


async def test_cancellation_of_on_event_is_not_swallowed() -> None:
    started = asyncio.Event()
    finished = asyncio.Event()
    outcome: list[str] = []

    async def on_event(event: CallbackEvent) -> None:
        started.set()
        await asyncio.Event().wait()  # until cancelled

    inner = handler(on_event)

    async def outer(request: web.Request) -> web.StreamResponse:
        try:
            response = await inner(request)
        except asyncio.CancelledError:
            outcome.append("cancelled")
            raise
        else:
            outcome.append(f"answered {response.status}")
            return response
        finally:
            finished.set()

    app = web.Application()
    app.router.add_post("/cb", outer)
    # handler_cancellation: aiohttp cancels the handler when the client goes away
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True)
    await runner.setup()
    try:
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        host, port = runner.addresses[0][:2]
        mailbox = {"id": "c" * 24, "stato": "registrata", "tipo_casella": "BRONZE"}
        async with aiohttp.ClientSession() as session:
            post = asyncio.ensure_future(session.post(f"http://{host}:{port}/cb", json=mailbox))
            await started.wait()
            post.cancel()  # the sender hangs up
            with pytest.raises(asyncio.CancelledError):
                await post
            await asyncio.wait_for(finished.wait(), timeout=5)
    finally:
        await runner.cleanup()
    assert outcome == ["cancelled"]


async def test_an_unreachable_receiver_is_recorded() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    emu = Emulator()
    async with emu.serve() as server:
        async with PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url) as client:
            callback = Callback(url=f"http://127.0.0.1:{port}/cb")
            await client.mailboxes.register(make_registration(callback=callback))
        (delivery,) = await emu.deliveries_settled()
    assert (delivery.status, delivery.attempts, delivery.delivered) == (None, 3, False)
    assert delivery.error == "ClientConnectorError"


async def test_shutdown_cancels_deliveries_in_flight() -> None:
    started = asyncio.Event()

    async def on_event(event: CallbackEvent) -> None:
        started.set()
        await asyncio.Event().wait()  # never answers

    emu = Emulator()
    async with receiver(on_event) as url:
        async with emu.serve() as server:
            async with PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url) as client:
                await client.mailboxes.register(make_registration(callback=Callback(url=url)))
            await started.wait()
            assert emu.callbacks.pending == 1
        # the emulator's shutdown cancelled the delivery and awaited it
        assert emu.callbacks.pending == 0
        (delivery,) = emu.deliveries
        assert (delivery.error, delivery.delivered) == ("cancelled", False)


def test_changes_made_outside_a_loop_are_delivered_later() -> None:
    emu = Emulator()
    events: list[CallbackEvent] = []

    async def on_event(event: CallbackEvent) -> None:
        events.append(event)

    async def main() -> None:
        async with receiver(on_event) as url:
            box_id = emu.seed_mailbox(
                "late@testcert.legalmail.it",
                stato="in_evasione",
                callback={"url": url, "method": "POST", "field": "data", "data": {}},
            )
            loop = asyncio.get_running_loop()
            # a state change made in a thread with no event loop is queued...
            await loop.run_in_executor(None, emu.complete_activation, box_id)
            assert emu.callbacks.pending == 1
            assert events == []
            # ...and sent once someone waits for the deliveries
            await emu.deliveries_settled()
            await emu.aclose()

    asyncio.run(main())
    assert [e.stato for e in events] == [MailboxState.EVASA]


# -- the parser on its own ---------------------------------------------------------------


def test_parse_body_reads_forms_json_envelopes_and_bare_objects() -> None:
    mailbox = {
        "id": "d" * 24,
        "stato": "nuovo_stato",  # not in the schema: told apart by its fields
        "tipo_casella": "GOLD",
        "cod_attivazione": "123",
        "spazio_disco": "1024",
        "unknown_field": 1,
        "callback": {"url": "https://x", "data": {"a": 1}},
    }
    envelope = {"data": mailbox, "success": True, "message": "ok", "error": None}
    form = urlencode({"data": json.dumps(envelope)}).encode()
    for event in (
        parse_body(form, "application/x-www-form-urlencoded"),
        parse_body(form),  # sniffed
        parse_body(json.dumps(envelope).encode(), "application/json"),
        parse_body(json.dumps(mailbox).encode(), None),
        parse_payload({"data": json.dumps(mailbox)}),  # JSON inside the JSON
    ):
        assert event.kind == "mailbox"
        assert event.mailbox is not None
        assert event.mailbox.spazio_disco == 1024
        assert event.stato is not None
        assert not event.stato.known
        assert event.mailbox.extra["unknown_field"] == 1
        assert event.data == {"a": 1}
    assert parse_body(form).message == "ok"
    comunica = {
        "id": "e" * 24,
        "codice_registro_imprese": "x",
        "qualifica": "SOCIO",
        "cf_piva": "1",
    }
    assert parse_payload(comunica).kind == "comunica_pec"
    assert parse_payload(comunica).data is None
    with pytest.raises(CallbackError, match="field 'data'"):
        parse_body(urlencode({"payload": "{}"}).encode(), "application/x-www-form-urlencoded")
    with pytest.raises(CallbackError, match="cannot tell"):
        parse_payload({"id": "1"})
    with pytest.raises(CallbackError):
        parse_body(b"--x\r\n", "multipart/form-data; boundary=x")
    assert issubclass(CallbackError, ValueError)
