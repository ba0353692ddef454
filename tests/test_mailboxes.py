"""Every mailbox operation over real HTTP against the emulator: success and the spec's errors."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp import web

from pecapi import (
    BadRequestError,
    InsufficientCreditError,
    Mailbox,
    MailboxRegistration,
    MailboxState,
    MailboxUser,
    NotAcceptableError,
    NotFoundError,
    PecClient,
    PreconditionRequiredError,
    RequestOptions,
    RetryPolicy,
    TipoCasella,
    ValidationError,
)
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault
from tests.conftest import P7M_BYTES, PDF_BYTES, make_registration, serve_app

Registration = Callable[..., MailboxRegistration]
MISSING_ID = "0123456789abcdef01234567"


async def _registered(
    client: PecClient, registration: Registration, name: str = "mario"
) -> Mailbox:
    return await client.mailboxes.register(registration(f"{name}@testcert.legalmail.it"))


async def _active(
    client: PecClient, emulator: Emulator, registration: Registration, name: str = "mario"
) -> Mailbox:
    box = await _registered(client, registration, name)
    assert box.id is not None
    await client.mailboxes.activate(box.id, PDF_BYTES)
    emulator.complete_activation(box.id)
    return await client.mailboxes.get(box.id)


async def test_register_get_and_list(
    client: PecClient, emulator: Emulator, registration: Registration
) -> None:
    assert await client.mailboxes.list() == []  # the API's 404/200 "no pec linked" is []
    box = await _registered(client, registration)
    assert box.stato is MailboxState.REGISTRATA
    assert box.tipo_casella is TipoCasella.BRONZE
    assert box.casella_pec == "mario@testcert.legalmail.it"
    assert box.data_nascita_richiedente == dt.date(1982, 4, 11)
    assert box.id is not None and len(box.id) == 24
    assert box.timestamp is not None and box.timestamp.registered_at is not None
    fetched = await client.mailboxes.get(box.id)
    assert fetched.id == box.id and fetched.cod_attivazione == box.cod_attivazione
    listed = await client.mailboxes.list()
    assert [item.id for item in listed] == [box.id]
    assert listed[0].stato is MailboxState.REGISTRATA
    assert len(emulator.charges(operation="register")) == 1


async def test_register_rejects_wrong_domain_before_sending(
    client: PecClient, emulator: Emulator, registration: Registration
) -> None:
    with pytest.raises(ValidationError) as info:
        await client.mailboxes.register(registration("mario@legalmail.it"))
    assert info.value.field == "casella_pec"
    assert emulator.requests == []


async def test_register_insufficient_credit(registration: Registration) -> None:
    emulator = Emulator(credit=Decimal(0))
    async with (
        emulator.serve() as server,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url) as client,
    ):
        with pytest.raises(InsufficientCreditError) as info:
            await _registered(client, registration)
    assert info.value.status == 402
    assert info.value.code == 262
    assert emulator.ledger == []


async def test_register_taken_address(client: PecClient, registration: Registration) -> None:
    await _registered(client, registration)
    assert not await client.mailboxes.is_available("mario@testcert.legalmail.it")
    with pytest.raises(NotAcceptableError):
        await _registered(client, registration)


async def test_is_available(client: PecClient, emulator: Emulator) -> None:
    assert await client.mailboxes.is_available("nuova@testcert.legalmail.it") is True
    with pytest.raises(ValidationError) as info:
        await client.mailboxes.is_available("not an address")
    assert info.value.field == "pec"
    assert emulator.requests[-1].path.startswith("/verifica_pec/")


async def test_get_errors(client: PecClient) -> None:
    with pytest.raises(BadRequestError) as bad:
        await client.mailboxes.get("not-an-id")
    assert (bad.value.status, bad.value.code) == (400, 201)
    with pytest.raises(NotFoundError) as missing:
        await client.mailboxes.get(MISSING_ID)
    assert (missing.value.status, missing.value.code) == (404, 202)
    assert missing.value.api_message == "no pec found"
    assert missing.value.method == "GET"
    assert missing.value.url.endswith(f"/pec/{MISSING_ID}")
    assert "application/json" in missing.value.headers.get("Content-Type", "")


async def test_activate_and_lifecycle(
    client: PecClient, emulator: Emulator, registration: Registration, tmp_path: Path
) -> None:
    box = await _registered(client, registration)
    assert box.id is not None
    form = tmp_path / "form.pdf"
    form.write_bytes(PDF_BYTES)
    activated = await client.mailboxes.activate(box.id, [form, PDF_BYTES])
    assert activated.stato is MailboxState.IN_EVASIONE
    assert len(activated.documenti_attivazione) == 2
    with pytest.raises(PreconditionRequiredError) as again:
        await client.mailboxes.activate(box.id, PDF_BYTES)
    assert again.value.code == 267
    emulator.complete_activation(box.id)
    active = await client.mailboxes.get(box.id)
    assert active.stato is MailboxState.EVASA
    assert active.data_scadenza is not None
    revoked = await client.mailboxes.revoke(box.id)
    assert revoked.stato is MailboxState.REVOCATA
    with pytest.raises(NotAcceptableError) as twice:
        await client.mailboxes.revoke(box.id)
    assert twice.value.code == 303


async def test_activate_rejects_non_pdf_before_sending(
    client: PecClient, emulator: Emulator, registration: Registration
) -> None:
    box = await _registered(client, registration)
    assert box.id is not None
    sent = len(emulator.requests)
    with pytest.raises(ValidationError) as info:
        await client.mailboxes.activate(box.id, [PDF_BYTES, b"GIF89a not a pdf"])
    assert info.value.field == "documenti"
    assert len(emulator.requests) == sent


async def test_revoke_errors(client: PecClient, registration: Registration) -> None:
    box = await _registered(client, registration)
    assert box.id is not None
    with pytest.raises(PreconditionRequiredError) as inactive:
        await client.mailboxes.revoke(box.id)
    assert inactive.value.code == 304
    with pytest.raises(BadRequestError) as bad:
        await client.mailboxes.revoke("zz")
    assert bad.value.code == 301
    with pytest.raises(NotFoundError) as missing:
        await client.mailboxes.revoke(MISSING_ID)
    assert missing.value.code == 302


async def test_change_space(
    client: PecClient, emulator: Emulator, registration: Registration
) -> None:
    box = await _active(client, emulator, registration)
    assert box.id is not None and box.spazio_disco is not None
    changed = await client.mailboxes.change_space(box.id, spazio_disco=f"+{1024}")
    assert changed.spazio_disco == box.spazio_disco + 1024
    with pytest.raises(PreconditionRequiredError) as no_conservation:
        await client.mailboxes.change_space(box.id, spazio_conservazione=512)
    assert no_conservation.value.code == 282
    with pytest.raises(ValidationError) as bad:
        await client.mailboxes.change_space(box.id, spazio_storico=1000)
    assert bad.value.field == "spazio_storico"
    assert len(emulator.charges(operation="space")) == 1


async def test_conservation(
    client: PecClient, emulator: Emulator, registration: Registration
) -> None:
    box = await _active(client, emulator, registration)
    assert box.id is not None
    form = await client.mailboxes.conservation_form(box.id)
    assert form.startswith(b"%PDF-")
    with pytest.raises(ValidationError) as bad:
        await client.mailboxes.activate_conservation(box.id, PDF_BYTES, spazio_conservazione=700)
    assert bad.value.field == "spazio_conservazione"
    on = await client.mailboxes.activate_conservation(
        box.id, [PDF_BYTES], spazio_conservazione=1024
    )
    assert on.conservazione is True
    assert on.spazio_conservazione == 1024
    with pytest.raises(NotAcceptableError) as twice:
        await client.mailboxes.activate_conservation(box.id, PDF_BYTES)
    assert twice.value.code == 293
    more = await client.mailboxes.change_space(box.id, spazio_conservazione="+512")
    assert more.spazio_conservazione == 1536


async def test_change_type(
    client: PecClient, emulator: Emulator, registration: Registration
) -> None:
    box = await _active(client, emulator, registration)
    assert box.id is not None
    gold = await client.mailboxes.change_type(box.id, "gold")
    assert gold.tipo_casella is TipoCasella.GOLD
    with pytest.raises(NotAcceptableError) as down:
        await client.mailboxes.change_type(box.id, TipoCasella.SILVER)
    assert down.value.code == 276
    with pytest.raises(ValidationError) as bad:
        await client.mailboxes.change_type(box.id, "DOMICILIODIGITALE")
    assert bad.value.field == "tipo_casella"
    pending = await _registered(client, registration, "luigi")
    assert pending.id is not None
    with pytest.raises(PreconditionRequiredError) as not_active:
        await client.mailboxes.change_type(pending.id, "GOLD")
    assert not_active.value.code == 272


async def test_renew(client: PecClient, emulator: Emulator, registration: Registration) -> None:
    box = await _active(client, emulator, registration)
    assert box.id is not None and box.timestamp is not None and box.timestamp.scadenza is not None
    renewed = await client.mailboxes.renew(box.id, anni=2)
    assert renewed.timestamp is not None and renewed.timestamp.scadenza is not None
    assert renewed.timestamp.scadenza > box.timestamp.scadenza + 365 * 86400
    assert len(emulator.charges(operation="renewal")) == 1
    assert emulator.requests[-1].path == f"/pec/{box.id}/rinnovo"
    for anni in (0, -1, True, 1.5):
        with pytest.raises(ValidationError) as bad:
            await client.mailboxes.renew(box.id, anni=anni)  # type: ignore[arg-type]
        assert bad.value.field == "anni"
    pending = await _registered(client, registration, "luigi")
    assert pending.id is not None
    with pytest.raises(PreconditionRequiredError) as not_active:
        await client.mailboxes.renew(pending.id)
    assert not_active.value.code == 203
    with pytest.raises(NotFoundError) as missing:
        await client.mailboxes.renew(MISSING_ID)
    assert missing.value.code == 202


async def test_add_user(client: PecClient, emulator: Emulator, registration: Registration) -> None:
    box = await _active(client, emulator, registration)
    assert box.id is not None
    user = MailboxUser(
        nome="luca", cognome="bianchi", descrizione="prima utenza", email_gestione_password="l@d.it"
    )
    with_user = await client.mailboxes.add_user(box.id, user)
    assert [u.nome for u in with_user.multiutenza] == ["luca"]
    assert with_user.multiutenza[0].id_utenza
    for _ in range(24):
        await client.mailboxes.add_user(box.id, user)
    with pytest.raises(NotAcceptableError) as full:
        await client.mailboxes.add_user(box.id, user)
    assert full.value.code == 217
    assert len(emulator.charges(operation="multiutenza")) == 25


async def test_activation_form_bytes_and_file(
    client: PecClient, registration: Registration, tmp_path: Path
) -> None:
    box = await _registered(client, registration)
    assert box.id is not None
    pdf = await client.mailboxes.activation_form(box.id)
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    written = await client.mailboxes.activation_form(box.id, tmp_path / "form.pdf")
    assert written == tmp_path / "form.pdf"
    assert written.read_bytes() == pdf
    assert [p.name for p in tmp_path.iterdir()] == ["form.pdf"]


async def test_form_errors_are_typed(client: PecClient, tmp_path: Path) -> None:
    with pytest.raises(NotFoundError) as missing:
        await client.mailboxes.activation_form(MISSING_ID, tmp_path / "x.pdf")
    assert missing.value.status == 404
    assert MISSING_ID in missing.value.api_message  # the text/plain body, as the spec shows
    assert not (tmp_path / "x.pdf").exists()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(BadRequestError):
        await client.mailboxes.conservation_form("bad")
    with pytest.raises(ValidationError) as bad_dest:
        await client.mailboxes.activation_form(MISSING_ID, tmp_path)
    assert bad_dest.value.field == "dest"


async def test_p7m_is_refused_for_activation(client: PecClient, registration: Registration) -> None:
    box = await _registered(client, registration)
    assert box.id is not None
    with pytest.raises(ValidationError):
        await client.mailboxes.activate(box.id, P7M_BYTES)


async def test_the_settling_listing_is_read_with_the_calls_options() -> None:
    """A registration whose answer was lost finds itself in the account's listing: read
    with the registration's own options (extra headers and query), never with another
    call's, even when both settle at once and could share one listing."""
    emulator = Emulator()
    listings: list[tuple[str | None, dict[str, str]]] = []

    @web.middleware
    async def record(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.method == "GET" and request.path == "/pec":
            listings.append((request.headers.get("X-Tenant"), dict(request.query)))
        return await handler(request)

    app = emulator.app()
    app.middlewares.append(record)
    addresses = {"acme": "acme@testcert.legalmail.it", "other": "other@testcert.legalmail.it"}
    for _ in addresses:
        emulator.faults.once(Fault.late(0.1), method="POST", path="/pec")
    policy = RetryPolicy(settle=1.5, backoff=0.01, backoff_max=0.05)

    def options(tenant: str) -> RequestOptions:
        return RequestOptions(extra_headers={"X-Tenant": tenant}, extra_query={"t": tenant})

    async with (
        serve_app(app) as url,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=url, retry=policy) as client,
    ):
        boxes = await asyncio.gather(
            *(
                client.mailboxes.register(make_registration(address), options=options(tenant))
                for tenant, address in addresses.items()
            )
        )
        await emulator.drain_late()
    assert [box.casella_pec for box in boxes] == list(addresses.values())
    assert {tenant for tenant, _ in listings} == set(addresses)  # one listing each at least
    for tenant, query in listings:
        assert query == {"t": tenant}
    assert len(emulator.charges(operation="register")) == len(addresses)
