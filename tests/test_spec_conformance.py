"""The client against the specification itself: every documented answer of the spec,
served over real HTTP by the emulator (``Fault.answer``), is read as documented; and
every body the client puts on the wire validates against the spec's request schema.

What this proves is the client's side only. ``Fault.answer`` replays the spec's example
byte for byte and bypasses the emulator's logic, so nothing here says the emulator answers
as the spec documents: that is ``tests/testing/test_schema_conformance.py`` (every 2xx
answer of every operation against the response schemas, and the statuses of the errors),
and Schemathesis in ``.ci/schemathesis``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import aiohttp
import jsonschema
import pytest

from pecapi import (
    Callback,
    ComunicaPec,
    ComunicaPecSummary,
    DomainCheck,
    Mailbox,
    MailboxSummary,
    MailboxUser,
    PecApiError,
    PecClient,
    RetryPolicy,
)
from pecapi.errors import api_error_class
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator
from tests.conftest import (
    P7M_BYTES,
    PDF_BYTES,
    SPEC_PATH,
    make_comunica_request,
    make_registration,
)

ID = "6040e4613a716838dc4eee0e"
USER = MailboxUser(
    nome="luca", cognome="bianchi", descrizione="d", email_gestione_password="l@d.it"
)
COMUNICA = make_comunica_request()

Call = Callable[[PecClient], Awaitable[Any]]

# One client call per operation of the spec, with valid arguments.
CALLS: dict[tuple[str, str], Call] = {
    ("get", "/domini_pec/{dominio}"): lambda c: c.domains.check("legalmail.it"),
    ("get", "/verifica_pec/{pec}"): lambda c: c.mailboxes.is_available("a@legalmail.it"),
    ("get", "/pec"): lambda c: c.mailboxes.list(),
    ("post", "/pec"): lambda c: c.mailboxes.register(make_registration()),
    ("get", "/pec/{id}"): lambda c: c.mailboxes.get(ID),
    ("delete", "/pec/{id}"): lambda c: c.mailboxes.revoke(ID),
    ("patch", "/pec/{id}/attivazione"): lambda c: c.mailboxes.activate(ID, PDF_BYTES),
    ("patch", "/pec/{id}/modifica"): lambda c: c.mailboxes.change_space(ID, spazio_disco=3072),
    ("patch", "/pec/{id}/conservazione"): lambda c: c.mailboxes.activate_conservation(
        ID, PDF_BYTES
    ),
    ("patch", "/pec/{id}/trasformazione"): lambda c: c.mailboxes.change_type(ID, "GOLD"),
    ("get", "/pec/{id}/rinnovo"): lambda c: c.mailboxes.renew(ID, anni=2),
    ("post", "/pec/{id}/multiutenza"): lambda c: c.mailboxes.add_user(ID, USER),
    ("get", "/comunica_pec"): lambda c: c.comunica_pec.list(),
    ("post", "/comunica_pec"): lambda c: c.comunica_pec.create(COMUNICA),
    ("get", "/comunica_pec/{id}"): lambda c: c.comunica_pec.get(ID),
    ("patch", "/comunica_pec/{id}"): lambda c: c.comunica_pec.upload_documents(ID, P7M_BYTES),
    ("get", "/pec/{id}/modulo_attivazione"): lambda c: c.mailboxes.activation_form(ID),
    ("get", "/pec/{id}/modulo_conservazione"): lambda c: c.mailboxes.conservation_form(ID),
    ("get", "/comunica_pec/{id}/procura_registro_imprese"): lambda c: (
        c.comunica_pec.power_of_attorney(ID)
    ),
}

# What a success example decodes to.
SUCCESS_TYPES: dict[str, type[Any]] = {
    "/domini_pec/{dominio}": DomainCheck,
    "/verifica_pec/{pec}": bool,
    "/pec": list,
    "/comunica_pec": list,
}


def _spec() -> dict[str, Any]:
    with SPEC_PATH.open(encoding="utf-8") as fh:
        spec: dict[str, Any] = json.load(fh)
    return spec


def _answers() -> list[Any]:
    """(method, path, status, content type, example) for every documented answer."""
    found = []
    for path, item in _spec()["paths"].items():
        for method, op in item.items():
            for status, response in op["responses"].items():
                content = response.get("content") or {None: {}}
                for content_type, media in content.items():
                    example = media.get("example", media.get("schema", {}).get("example"))
                    case = (method, path, int(status), content_type, example)
                    found.append(pytest.param(*case, id=f"{method} {path} {status}"))
    return found


def test_every_operation_has_a_call() -> None:
    operations = {(m, p) for p, item in _spec()["paths"].items() for m in item}
    assert operations == set(CALLS)


@pytest.fixture
async def once_client(pec_server: RunningEmulator) -> AsyncIterator[PecClient]:
    async with PecClient(
        DEFAULT_TOKEN, sandbox=True, base_url=pec_server.url, retry=RetryPolicy.never()
    ) as client:
        yield client


@pytest.mark.parametrize(("method", "path", "status", "content_type", "example"), _answers())
async def test_every_documented_answer_is_read_as_documented(
    once_client: PecClient,
    emulator: Emulator,
    method: str,
    path: str,
    status: int,
    content_type: str | None,
    example: Any,
) -> None:
    if content_type == "application/pdf":
        body: Any = PDF_BYTES
    elif example is None:
        body = None
    else:
        body = example
    glob = path.replace("{id}", "*").replace("{dominio}", "*").replace("{pec}", "*")
    emulator.faults.once(
        Fault.answer(status, body, content_type or ""), method=method.upper(), path=glob
    )
    call = CALLS[(method, path)]
    code = example.get("error") if isinstance(example, dict) else None
    means_empty = (status, code) in {(404, 200), (404, 332)}  # "no mailboxes/requests"
    if status >= 300 and not means_empty:
        with pytest.raises(PecApiError) as info:
            await call(once_client)
        error = info.value
        assert type(error) is api_error_class(status)
        assert error.status == status
        if isinstance(example, dict):
            assert error.code == example["error"]
            assert error.api_message == example["message"]
        elif isinstance(example, str):
            assert error.api_message == example.strip()
        return
    result = await call(once_client)
    if status in (404, 204) or (method == "get" and path in ("/pec", "/comunica_pec")):
        expected = SUCCESS_TYPES[path]
        assert isinstance(result, expected)
        if status == 204:
            assert result == DomainCheck(dominio="legalmail.it", certified=False)
        if status == 404:
            assert result == []
        elif isinstance(result, list):
            assert result and all(
                isinstance(item, (MailboxSummary, ComunicaPecSummary)) for item in result
            )
            assert [item.id for item in result] == [item["id"] for item in example["data"]]
        return
    if content_type == "application/pdf":
        assert result == PDF_BYTES
    elif method == "get" and path in SUCCESS_TYPES:
        assert isinstance(result, SUCCESS_TYPES[path])
    else:
        assert isinstance(result, (Mailbox, ComunicaPec))
        assert result.id == example["data"]["id"]
        assert dict(result.extra) == {}


# -- what the client sends ---------------------------------------------------------------


def _request_schema(spec: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    body = spec["paths"][path][method].get("requestBody")
    if body is None:
        return None
    schema = body["content"]["application/json"]["schema"]
    return {**schema, "components": spec["components"]}


def _template(spec: dict[str, Any], method: str, raw_path: str) -> str:
    segments = raw_path.strip("/").split("/")
    for path in spec["paths"]:
        parts = path.strip("/").split("/")
        if (
            len(parts) == len(segments)
            and method in spec["paths"][path]
            and all(p == s or p.startswith("{") for p, s in zip(parts, segments, strict=True))
        ):
            return path
    raise AssertionError(f"no operation for {method} {raw_path}")


async def test_every_body_sent_validates_against_the_spec(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    spec = _spec()
    sent: list[dict[str, Any]] = []

    async def on_start(
        _: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestStartParams
    ) -> None:
        ctx.chunks = []
        sent.append(
            {"method": params.method.lower(), "path": params.url.raw_path, "body": ctx.chunks}
        )

    async def on_chunk(
        _: Any, ctx: SimpleNamespace, params: aiohttp.TraceRequestChunkSentParams
    ) -> None:
        ctx.chunks.append(params.chunk)

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_start)
    trace.on_request_chunk_sent.append(on_chunk)
    async with (
        aiohttp.ClientSession(trace_configs=[trace]) as session,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=pec_server.url, session=session) as client,
    ):
        full = make_registration(
            sottotipo_cliente="",
            cellulare="3400000000",
            callback=Callback(url="https://example.org/cb", method="json", data={"k": 1}),
            autorinnovo=True,
            tipo_documento="patente",
            numero_documento="AB123",
            data_scadenza_documento="01/01/2030",
            documento_rilasciato_da="MCTC",
            data_rilascio_documento="01/01/2020",
        )
        box = await client.mailboxes.register(full)
        assert box.id is not None
        await client.mailboxes.activate(box.id, [PDF_BYTES, PDF_BYTES])
        emulator.complete_activation(box.id)
        await client.mailboxes.change_space(box.id, spazio_disco="+1024", spazio_storico=2048)
        await client.mailboxes.activate_conservation(box.id, PDF_BYTES, spazio_conservazione=1024)
        await client.mailboxes.change_space(box.id, spazio_conservazione="+512")
        await client.mailboxes.change_type(box.id, "gold")
        await client.mailboxes.add_user(box.id, USER)
        request = await client.comunica_pec.create(COMUNICA)
        assert request.id is not None
        emulator.advance_comunica(request.id)
        await client.comunica_pec.upload_documents(request.id, P7M_BYTES)
    validated = 0
    for record in sent:
        schema = _request_schema(
            spec, record["method"], _template(spec, record["method"], record["path"])
        )
        raw = b"".join(record["body"])
        if schema is None:
            assert raw == b"", record
            continue
        jsonschema.validate(json.loads(raw), schema)
        validated += 1
    assert validated == 9  # register, activate, 2 space changes, conservation, type, user,
    # comunica_pec create and upload
