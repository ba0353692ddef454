"""comunica_pec and domains over real HTTP against the emulator."""

from __future__ import annotations

import pytest

from pecapi import (
    BadRequestError,
    ComunicaPecState,
    DomainCheck,
    NotAcceptableError,
    NotFoundError,
    PecClient,
    ValidationError,
)
from pecapi.testing import Emulator
from tests.conftest import P7M_BYTES, PDF_BYTES, make_comunica_request

MISSING_ID = "0123456789abcdef01234567"


async def test_comunica_pec_flow(client: PecClient, emulator: Emulator) -> None:
    assert await client.comunica_pec.list() == []  # 404/332 is []
    created = await client.comunica_pec.create(make_comunica_request())
    assert created.stato is ComunicaPecState.CODICE_IN_RICHIESTA
    assert created.callback is None  # the API answers callback: false
    assert created.id is not None
    assert len(emulator.charges(operation="comunica_pec")) == 1
    listed = await client.comunica_pec.list()
    assert [item.id for item in listed] == [created.id]
    with pytest.raises(NotAcceptableError) as early:
        await client.comunica_pec.upload_documents(created.id, P7M_BYTES)
    assert early.value.code == 355
    emulator.advance_comunica(created.id)
    form = await client.comunica_pec.power_of_attorney(created.id)
    assert form.startswith(b"%PDF-")
    uploaded = await client.comunica_pec.upload_documents(created.id, [P7M_BYTES])
    assert uploaded.stato is ComunicaPecState.DOCUMENTI_CARICATI
    assert len(uploaded.documenti_registro_imprese) == 1
    emulator.advance_comunica(created.id)
    done = await client.comunica_pec.get(created.id)
    assert done.stato is ComunicaPecState.COMUNICAZIONE_EVASA


async def test_comunica_pec_errors(client: PecClient, emulator: Emulator) -> None:
    with pytest.raises(BadRequestError) as bad:
        await client.comunica_pec.get("nope")
    assert bad.value.code == 333
    with pytest.raises(NotFoundError) as missing:
        await client.comunica_pec.get(MISSING_ID)
    assert missing.value.code == 334
    with pytest.raises(NotFoundError):
        await client.comunica_pec.power_of_attorney(MISSING_ID)
    sent = len(emulator.requests)
    with pytest.raises(ValidationError) as not_p7m:
        await client.comunica_pec.upload_documents(MISSING_ID, PDF_BYTES)
    assert not_p7m.value.field == "documenti"
    assert len(emulator.requests) == sent


async def test_domain_check(client: PecClient) -> None:
    certified = await client.domains.check("legalmail.it")
    assert certified == DomainCheck(
        dominio="legalmail.it", certified=True, message="legalmail.it found!"
    )
    plain = await client.domains.check("example.org")
    assert plain.certified is False  # the API's 204
    with pytest.raises(NotAcceptableError) as bad:
        await client.domains.check("not a domain!")
    assert bad.value.code == 401
    with pytest.raises(ValidationError):
        await client.domains.check("")
