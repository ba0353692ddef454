"""Hostile input is typed: deeply nested JSON (client, emulator, OAuth), Unicode digits in
user input, and a signed .p7m where the API wants the PDF itself (issue 12).

Everything goes over real HTTP on loopback: the emulator (its fault plan serves a fixed
answer), a small forwarding server that commits through the emulator but answers with
nested JSON, or a small aiohttp server standing in for the OAuth service.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from yarl import URL

from pecapi import (
    BadRequestError,
    Callback,
    ComunicaPec,
    Mailbox,
    NotFoundError,
    OAuthTokenProvider,
    OutcomeUnknownError,
    PecClient,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    ValidationError,
    all_pec_scopes,
)
from pecapi.cli import main as cli_main
from pecapi.cli.connection import positive_int
from pecapi.documents import HEAD_SIZE, DocumentKind, prepare_documents
from pecapi.models.converter import unstructure
from pecapi.models.mailbox import SpaceChange
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator
from pecapi.testing.oauth import RunningOAuth
from tests.conftest import PDF_BYTES, FakeTime, make_registration, serve_app

DEPTH = 100_000
NESTED = "[" * DEPTH + "]" * DEPTH
BOX = "mario@testcert.legalmail.it"


def _active(emulator: Emulator) -> str:
    return emulator.seed_mailbox(BOX, stato="evasa")


# -- deeply nested answers to the client ---------------------------------------------------

READS: dict[str, tuple[str, Callable[[PecClient, str], Awaitable[Any]]]] = {
    "list": ("/pec", lambda c, i: c.mailboxes.list()),
    "get": ("/pec/*", lambda c, i: c.mailboxes.get(i)),
}


@pytest.mark.parametrize("name", sorted(READS))
async def test_a_nested_answer_to_a_read_is_a_decode_error(
    client: PecClient, raw_client: PecClient, emulator: Emulator, name: str
) -> None:
    path, op = READS[name]
    box_id = _active(emulator)
    emulator.faults.once(Fault.answer(200, NESTED), method="GET", path=path)
    with pytest.raises(ResponseDecodeError) as info:
        await op(raw_client, box_id)
    assert info.value.status == 200
    # A read is retried like any unreadable answer.
    emulator.faults.once(Fault.answer(200, NESTED), method="GET", path=path)
    assert await op(client, box_id)
    assert emulator.count("GET", path) == 3


@pytest.mark.parametrize(("status", "error"), [(400, BadRequestError), (502, ServerError)])
async def test_a_nested_error_answer_is_the_statuss_typed_error(
    raw_client: PecClient, emulator: Emulator, status: int, error: type[Exception]
) -> None:
    emulator.faults.once(Fault.answer(status, NESTED), method="GET", path="/pec")
    with pytest.raises(error) as info:
        await raw_client.mailboxes.list()
    assert getattr(info.value, "status", None) == status


async def test_a_nested_error_answer_to_a_form_download_is_the_statuss_typed_error(
    raw_client: PecClient, emulator: Emulator
) -> None:
    body = '{"message": ' + NESTED + "}"  # looks like the JSON envelope to the reader
    emulator.faults.once(Fault.answer(404, body), path="/pec/*/modulo_attivazione")
    with pytest.raises(NotFoundError) as info:
        await raw_client.mailboxes.activation_form("6489d7c8e4b0f1a2b3c4d5e6")
    assert info.value.status == 404


async def test_an_error_code_in_unicode_digits_is_no_crash(
    raw_client: PecClient, emulator: Emulator
) -> None:
    """``"error": "²"``: str.isdigit says yes, int() says no; the code is just unknown."""
    body = {"data": None, "success": False, "message": "bad", "error": "²"}
    emulator.faults.once(Fault.answer(400, body), method="GET", path="/pec")
    with pytest.raises(BadRequestError) as info:
        await raw_client.mailboxes.list()
    assert info.value.code is None


PAID: dict[str, tuple[str, str, str, Callable[[PecClient, str], Awaitable[Mailbox]]]] = {
    "register": (
        "POST", "/pec", "register", lambda c, i: c.mailboxes.register(make_registration(BOX))
    ),
    "renew": ("GET", "/pec/*/rinnovo", "renewal", lambda c, i: c.mailboxes.renew(i)),
}  # fmt: skip


def _seed_for(name: str, emulator: Emulator) -> str:
    return "" if name == "register" else _active(emulator)


@pytest.mark.parametrize("name", sorted(PAID))
async def test_a_nested_answer_to_a_paid_write_is_an_unknown_outcome(
    client: PecClient, raw_client: PecClient, emulator: Emulator, name: str
) -> None:
    """The outcome is unknown, with the decode error as its cause: at once without
    settling, and at the deadline with a pending handle to reconcile."""
    method, path, ledger, op = PAID[name]
    box_id = _seed_for(name, emulator)
    emulator.faults.once(Fault.answer(200, NESTED), method=method, path=path)
    with pytest.raises(OutcomeUnknownError) as info:
        await op(raw_client, box_id)
    assert isinstance(info.value.cause, ResponseDecodeError)
    time = FakeTime()
    policy = RetryPolicy(sleep=time.sleep, clock=time.clock, settle=60, deadline=10)
    emulator.faults.once(Fault.answer(200, NESTED), method=method, path=path)
    with pytest.raises(OutcomeUnknownError) as info:
        await op(client.with_options(retry=policy), box_id)
    assert isinstance(info.value.cause, ResponseDecodeError)
    pending = info.value.pending
    assert pending is not None
    assert await client.reconcile(pending) is None  # a fixed answer: nothing was processed
    assert emulator.charges(operation=ledger) == []


@pytest.mark.parametrize("name", sorted(PAID))
async def test_a_nested_answer_to_an_unprocessed_paid_write_is_settled_then_resent(
    client: PecClient, emulator: Emulator, name: str
) -> None:
    method, path, ledger, op = PAID[name]
    box_id = _seed_for(name, emulator)
    emulator.faults.once(Fault.answer(200, NESTED), method=method, path=path)
    result = await op(client, box_id)
    assert isinstance(result, Mailbox)
    assert emulator.count(method, path) == 2  # the account showed no change
    assert len(emulator.charges(operation=ledger)) == 1


@asynccontextmanager
async def nested_after_commit(
    upstream: str, method: str, path_glob: str
) -> AsyncIterator[tuple[str, list[str]]]:
    """A forwarding server: every request goes to ``upstream`` (so a write commits), but
    the first answer to ``method path_glob`` is replaced by nested JSON. Yields its URL
    and the paths it replaced."""
    replaced: list[str] = []
    async with aiohttp.ClientSession() as session:

        async def forward(request: web.Request) -> web.Response:
            body = await request.read()
            headers = {
                k: v for k in ("Authorization", "Content-Type") if (v := request.headers.get(k))
            }
            url = URL(upstream + str(request.rel_url), encoded=True)
            async with session.request(request.method, url, data=body, headers=headers) as up:
                answer = await up.read()
                status, kind = up.status, up.headers.get("Content-Type", "application/json")
            path = request.rel_url.raw_path
            if not replaced and request.method == method and fnmatchcase(path, path_glob):
                replaced.append(path)
                return web.Response(status=200, text=NESTED, content_type="application/json")
            return web.Response(status=status, body=answer, headers={"Content-Type": kind})

        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", forward)
        async with serve_app(app) as url:
            yield url, replaced


@pytest.mark.parametrize("name", sorted(PAID))
async def test_a_nested_answer_to_a_processed_paid_write_is_settled_not_resent(
    pec_server: RunningEmulator, emulator: Emulator, name: str
) -> None:
    method, path, ledger, op = PAID[name]
    box_id = _seed_for(name, emulator)
    time = FakeTime()
    policy = RetryPolicy(sleep=time.sleep, clock=time.clock)
    async with (
        nested_after_commit(pec_server.url, method, path) as (url, replaced),
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=url, retry=policy) as client,
    ):
        result = await op(client, box_id)
    assert len(replaced) == 1
    assert isinstance(result, Mailbox)
    assert result.id == (box_id or next(iter(emulator.mailboxes)))
    assert emulator.count(method, path) == 1  # the account showed it: never resent
    assert len(emulator.charges(operation=ledger)) == 1


# -- deeply nested bodies to the emulators --------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/pec"), ("POST", "/comunica_pec"), ("PATCH", "/pec/{id}/attivazione")],
)
async def test_the_emulator_answers_400_to_a_nested_body(
    pec_server: RunningEmulator, emulator: Emulator, method: str, path: str
) -> None:
    box_id = emulator.seed_mailbox(BOX, stato="registrata")
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(
            method, pec_server.url + path.format(id=box_id), data=NESTED, headers=headers
        ) as resp,
    ):
        status, payload = resp.status, json.loads(await resp.read())
    assert status == 400
    assert payload["success"] is False and payload["error"] == 400
    assert payload["message"].startswith("invalid JSON body")
    assert list(emulator.mailboxes) == [box_id] and not emulator.comunica_requests
    assert emulator.mailboxes[box_id]["stato"] == "registrata"


@pytest.mark.parametrize("depth", [200, 985])
async def test_the_emulator_refuses_a_body_nested_just_under_the_parsers_limit(
    pec_server: RunningEmulator, emulator: Emulator, depth: int
) -> None:
    """Such a body parses, but what the emulator stores is encoded again recursively
    (answers, callbacks): it used to commit the registration, then answer 500."""
    body = unstructure(make_registration(BOX))
    body["callback"] = {"url": "https://example.org/cb", "data": {"x": "HERE"}}
    # Written as text: the test's own json.dumps would fail at this depth.
    text = json.dumps(body).replace('"HERE"', "[" * depth + "]" * depth)
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{pec_server.url}/pec", data=text, headers=headers) as resp,
    ):
        status, payload = resp.status, json.loads(await resp.read())
    assert status == 400 and payload["error"] == 400
    assert not emulator.mailboxes and emulator.charges() == []


async def test_the_oauth_emulator_answers_400_to_a_nested_body(
    pec_oauth_server: RunningOAuth,
) -> None:
    oauth = pec_oauth_server.oauth
    credentials = base64.b64encode(f"{oauth.email}:{oauth.api_key}".encode()).decode()
    headers = {"Authorization": f"Basic {credentials}", "Content-Type": "application/json"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{pec_oauth_server.url}/token", data=NESTED, headers=headers) as resp,
    ):
        status, payload = resp.status, json.loads(await resp.read())
    assert status == 400
    assert payload["success"] is False and payload["error"] == 400
    assert oauth.creations == 0


@asynccontextmanager
async def oauth_service(status: int, body: str) -> AsyncIterator[str]:
    """A token service that always answers ``status`` with ``body``."""

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=status, text=body, content_type="application/json")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    async with serve_app(app) as url:
        yield url


def _provider(url: str) -> OAuthTokenProvider:
    return OAuthTokenProvider(
        "owner@example.org",
        "key-123",
        scopes=all_pec_scopes(sandbox=True),
        sandbox=True,
        base_url=url,
    )


async def test_a_nested_answer_from_the_oauth_service_is_a_decode_error() -> None:
    async with oauth_service(200, NESTED) as url, _provider(url) as provider:
        with pytest.raises(ResponseDecodeError):
            await provider.get_token()


async def test_an_oauth_error_code_in_unicode_digits_is_no_crash() -> None:
    body = json.dumps({"success": False, "message": "no", "error": "²", "data": None})
    async with oauth_service(400, body) as url, _provider(url) as provider:
        with pytest.raises(BadRequestError) as info:
            await provider.get_token()
    assert info.value.code is None


# -- Unicode digits in user input ------------------------------------------------------------

UNICODE_NUMBERS = ["²", "٣", "①", "１０２４", "١٠٢٤", "+²", "+١٠٢٤", "1" * 5000]


@pytest.mark.parametrize("value", UNICODE_NUMBERS)
@pytest.mark.parametrize("field", ["spazio_disco", "spazio_storico", "spazio_conservazione"])
async def test_a_space_in_unicode_digits_is_a_validation_error(
    client: PecClient, emulator: Emulator, field: str, value: str
) -> None:
    box_id = _active(emulator)
    with pytest.raises(ValidationError) as info:
        await client.mailboxes.change_space(box_id, **{field: value})
    assert info.value.field == field
    assert "is not a number of MB" in info.value.message  # "٣" is not 3 (not a multiple)
    with pytest.raises(ValidationError) as info:
        SpaceChange(**{field: value})
    assert info.value.field == field
    assert emulator.count("PATCH", "/pec/*/modifica") == 0


@pytest.mark.parametrize("value", ["٠١/٠١/١٩٩٠", "０１/０１/１９９０"])
def test_a_date_in_unicode_digits_is_a_validation_error(value: str) -> None:
    with pytest.raises(ValidationError) as info:
        make_registration(BOX, data_nascita_richiedente=value)
    assert info.value.field == "data_nascita_richiedente"


@pytest.mark.parametrize("value", ["٣", "１２", "1_000"])  # int() takes them all
def test_a_cli_count_in_unicode_digits_is_refused(value: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="not a whole number"):
        positive_int(value)
    assert positive_int(" 12 ") == 12


def _deep(depth: int) -> dict[str, Any]:
    data: Any = []
    for _ in range(depth):
        data = [data]
    return {"x": data}


def test_deeply_nested_callback_data_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as info:
        Callback(url="https://example.org/cb", data=_deep(DEPTH)).check()
    assert info.value.field == "callback.data"
    with pytest.raises(ValidationError) as info:
        make_registration(BOX, callback=Callback(url="https://example.org/cb", data=_deep(500)))
    assert info.value.field == "callback.data"
    Callback(url="https://example.org/cb", data=_deep(50)).check()  # reasonable nesting


@pytest.mark.parametrize("flag", ["--from-json", "--callback-data"])
async def test_the_cli_refuses_nested_json_input(
    pec_server: RunningEmulator,
    emulator: Emulator,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    flag: str,
) -> None:
    monkeypatch.setenv("OPENAPI_SANDBOX_TOKEN", DEFAULT_TOKEN)
    path = tmp_path / "box.json"
    path.write_text(NESTED)
    value = str(path) if flag == "--from-json" else NESTED
    argv = ["--sandbox", "--base-url", pec_server.url, "mailboxes", "register", flag, value]
    argv += ["--callback-url", "https://example.org/cb"]
    code = await asyncio.to_thread(cli_main, argv)
    err = capsys.readouterr().err
    assert code == 5, err  # invalid input, nothing sent
    assert ("from_json" if flag == "--from-json" else "callback.data") in err
    assert "nested deeper than" in err
    assert emulator.count("POST", "/pec") == 0


# -- a signed .p7m where the API wants the PDF -----------------------------------------------


def _der(tag: int, content: bytes) -> bytes:
    size = len(content)
    if size < 0x80:
        return bytes([tag, size]) + content
    length = size.to_bytes((size.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(length)]) + length + content


SIGNED_DATA_OID = bytes.fromhex("06092a864886f70d010702")
DATA_OID = bytes.fromhex("06092a864886f70d010701")
SHA256 = _der(0x30, bytes.fromhex("0609608648016503040201") + b"\x05\x00")
INNER_PDF = b"%PDF-1.7\n" + b"1 0 obj<<>>endobj\n" * 20 + b"trailer<<>>\n%%EOF\n"
# ContentInfo{signedData, SignedData{version 1, {sha256}, {data, PDF}, signerInfos {}}}: the
# layout of a CAdES .p7m (certificates and signatures left out), the PDF near the start.
P7M_PDF = _der(
    0x30,
    SIGNED_DATA_OID
    + _der(
        0xA0,
        _der(
            0x30,
            b"\x02\x01\x01"
            + _der(0x31, SHA256)
            + _der(0x30, DATA_OID + _der(0xA0, _der(0x04, INNER_PDF)))
            + _der(0x31, b""),
        ),
    ),
)
B64 = base64.encodebytes(P7M_PDF)
SIGNED_FORMS: dict[str, bytes] = {
    "der": P7M_PDF,
    "pem-pkcs7": b"-----BEGIN PKCS7-----\n" + B64 + b"-----END PKCS7-----\n",
    "pem-cms": b"\n-----BEGIN CMS-----\n" + B64 + b"-----END CMS-----\n",
    "base64": B64,
}


def _assert_p7m_refused(exc: ValidationError, field: str = "documenti") -> None:
    assert exc.field == field
    assert ".p7m" in exc.message and "the PDF itself" in exc.message


@pytest.mark.parametrize("form", sorted(SIGNED_FORMS))
@pytest.mark.parametrize("given", ["bytes", "path", "file"])
def test_a_signed_p7m_is_not_a_pdf(tmp_path: Path, form: str, given: str) -> None:
    content = SIGNED_FORMS[form]
    item: Any = content
    if given == "path":
        item = tmp_path / "modulo.pdf.p7m"
        item.write_bytes(content)
    elif given == "file":
        item = io.BytesIO(content)
    assert not DocumentKind.PDF.matches(content)
    with pytest.raises(ValidationError) as info:
        prepare_documents([PDF_BYTES, item], DocumentKind.PDF, field="documents")
    _assert_p7m_refused(info.value, "documents")
    assert "document 2" in info.value.message


async def test_activation_refuses_a_p7m_and_nothing_is_sent(
    client: PecClient, emulator: Emulator
) -> None:
    # The handmade .p7m is laid out as a real one: the PDF's header in its first KB.
    assert P7M_PDF[:2] == b"\x30\x82" and P7M_PDF[4:15] == SIGNED_DATA_OID
    assert b"%PDF-" in P7M_PDF[:HEAD_SIZE] and B64.startswith(b"MII")
    box_id = emulator.seed_mailbox(BOX, stato="registrata")
    with pytest.raises(ValidationError) as info:
        await client.mailboxes.activate(box_id, [PDF_BYTES, P7M_PDF])
    _assert_p7m_refused(info.value)
    with pytest.raises(ValidationError) as info:
        await client.mailboxes.activate_conservation(_active(emulator), P7M_PDF)
    _assert_p7m_refused(info.value)
    assert emulator.count("PATCH", "/pec/*") == 0
    assert isinstance(await client.mailboxes.activate(box_id, INNER_PDF), Mailbox)
    # where the API wants the .p7m, it is still taken
    request_id = emulator.seed_comunica(BOX, stato="in_attesa_di_documenti")
    uploaded = await client.comunica_pec.upload_documents(request_id, P7M_PDF)
    assert isinstance(uploaded, ComunicaPec)
    assert emulator.comunica_requests[request_id]["stato"] == "documenti_caricati"


async def test_the_emulator_refuses_a_p7m_for_activation(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox(BOX, stato="registrata")
    body = {"documenti": [base64.b64encode(P7M_PDF).decode()]}
    headers = {"Authorization": f"Bearer {DEFAULT_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.patch(
            f"{pec_server.url}/pec/{box_id}/attivazione", json=body, headers=headers
        ) as resp,
    ):
        status, payload = resp.status, json.loads(await resp.read())
    assert status == 406 and payload["error"] == 296
    assert emulator.mailboxes[box_id]["stato"] == "registrata"
