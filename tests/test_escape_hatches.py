"""Escape hatches every call has: extra headers and query parameters (never the
credential), and the raw answer beside the value (``with_raw_response``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pecapi import (
    ComunicaPec,
    DomainCheck,
    Mailbox,
    MailboxSummary,
    MailboxUser,
    NotFoundError,
    PecClient,
    RequestOptions,
    ResponseLimits,
    RetryPolicy,
    ValidationError,
)
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator
from pecapi.transport import raw as raw_module
from pecapi.transport.options import PROTECTED_HEADERS
from pecapi.transport.raw import RawResult, with_raw_response
from tests.conftest import (
    P7M_BYTES,
    PDF_BYTES,
    make_comunica_request,
    make_registration,
    no_sleep,
    serve_app,
)

TOKEN = "token-of-the-recorder"


class Recorder:
    """A tiny PEC API on loopback: records every request's headers and query; answers
    with an ``X-Request-Id``. ``fail_first`` answers that many requests 503 first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.seen: list[web.Request] = []
        self.fail_first = fail_first

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/pec/{id}/modulo_attivazione", self.pdf)
        app.router.add_route("*", "/{tail:.*}", self.json)
        return app

    def _id(self) -> dict[str, str]:
        return {"X-Request-Id": f"req-{len(self.seen)}"}

    async def json(self, request: web.Request) -> web.Response:
        self.seen.append(request)
        if self.fail_first:
            self.fail_first -= 1
            return web.json_response({"success": False}, status=503, headers=self._id())
        parts = request.path.split("/")
        data: Any = {"id": parts[2]} if len(parts) > 2 else [{"id": "1"}]  # /pec: a list
        body = {"data": data, "success": True, "message": "", "error": None}
        return web.json_response(body, headers=self._id())

    async def pdf(self, request: web.Request) -> web.Response:
        self.seen.append(request)
        return web.Response(body=PDF_BYTES, content_type="application/pdf")


@asynccontextmanager
async def recorded(recorder: Recorder | None = None) -> AsyncIterator[tuple[PecClient, Recorder]]:
    recorder = recorder or Recorder()
    async with (
        serve_app(recorder.app()) as url,
        PecClient(TOKEN, base_url=url, retry=RetryPolicy(sleep=no_sleep)) as client,
    ):
        yield client, recorder


# -- extra headers and query parameters ------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [*PROTECTED_HEADERS, "AUTHORIZATION", "Authorization", "Content-Type", "Accept-Encoding"],
)
async def test_protected_headers_cannot_be_set_and_nothing_is_sent(name: str) -> None:
    with pytest.raises(ValidationError) as info:
        RequestOptions(extra_headers={name: "Bearer stolen"})
    assert info.value.field == f"extra_headers.{name}"
    assert "stolen" not in str(info.value)
    async with recorded() as (client, recorder):
        with pytest.raises(ValidationError):
            client.with_options(extra_headers={name: "x"})
        with pytest.raises(ValidationError):
            await client.mailboxes.get("1", options=RequestOptions(extra_headers={name: "x"}))
        assert recorder.seen == []


@pytest.mark.parametrize(
    ("headers", "field"),
    [
        ({"X Bad": "1"}, "extra_headers"),
        ({"": "1"}, "extra_headers"),
        ({"X-A": "1\r\nAuthorization: Bearer x"}, "extra_headers.X-A"),
        ({"X-A": "\x00"}, "extra_headers.X-A"),
        ({"X-A": "€"}, "extra_headers.X-A"),
        ({"X-A": 5}, "extra_headers.X-A"),
        ({"X-A": "1", "x-a": "2"}, "extra_headers.x-a"),
        (["X-A"], "extra_headers"),
    ],
)
def test_bad_extra_headers_are_refused(headers: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RequestOptions(extra_headers=headers)
    assert info.value.field == field


@pytest.mark.parametrize(
    ("query", "field"),
    [({"": "1"}, "extra_query"), ({"a": 1}, "extra_query.a"), ("a=1", "extra_query")],
)
def test_bad_extra_query_is_refused(query: Any, field: str) -> None:
    with pytest.raises(ValidationError) as info:
        RequestOptions(extra_query=query)
    assert info.value.field == field


def test_header_values_stay_out_of_reprs() -> None:
    options = RequestOptions(extra_headers={"X-Api-Key": "s3cret"}, extra_query={"q": "1"})
    assert "s3cret" not in repr(options) and "X-Api-Key" in repr(options)
    assert hash(options) == hash(RequestOptions(extra_headers={"X-Api-Key": "other"}))


async def test_extra_headers_and_query_arrive_per_call_and_per_copy() -> None:
    async with recorded() as (client, recorder):
        copy = client.with_options(
            extra_headers={"X-Tenant": "acme", "X-Trace": "client"}, extra_query={"src": "copy"}
        )
        per_call = RequestOptions(extra_headers={"x-trace": "call"}, extra_query={"v": "2"})
        await copy.mailboxes.get("7", options=per_call)
        await copy.mailboxes.list()
        await client.mailboxes.list()  # the original is untouched
        first, second, third = recorder.seen
        assert first.headers["X-Tenant"] == "acme"
        assert first.headers.getall("X-Trace") == ["call"]  # the call's, once, any case
        assert dict(first.query) == {"src": "copy", "v": "2"}
        assert first.headers["Authorization"] == f"Bearer {TOKEN}"
        assert second.headers["X-Trace"] == "client" and dict(second.query) == {"src": "copy"}
        assert "X-Tenant" not in third.headers and not third.query


async def test_accept_may_be_negotiated_but_not_the_credential_or_encoding() -> None:
    async with recorded() as (client, recorder):
        options = RequestOptions(extra_headers={"accept": "application/json; v=2"})
        await client.mailboxes.get("1", options=options)
        (seen,) = recorder.seen
        assert seen.headers.getall("Accept") == ["application/json; v=2"]
        assert seen.headers.getall("Authorization") == [f"Bearer {TOKEN}"]
        assert seen.headers["Accept-Encoding"] == "gzip, deflate"


async def test_extra_query_cannot_change_the_operations_own() -> None:
    async with recorded() as (client, recorder):
        with pytest.raises(ValidationError) as info:
            await client.mailboxes.renew("1", options=RequestOptions(extra_query={"anni": "9"}))
        assert info.value.field == "extra_query.anni"
        assert recorder.seen == []  # a paid renewal: nothing sent
        await client.mailboxes.renew("1", anni=2, options=RequestOptions(extra_query={"x": "y"}))
        renewal = recorder.seen[-1]  # after the baseline read of the expiry
        assert renewal.path == "/pec/1/rinnovo"
        assert dict(renewal.query) == {"anni": "2", "x": "y"}


async def test_downloads_carry_them_too(tmp_path: Any) -> None:
    async with recorded() as (client, recorder):
        copy = client.with_options(extra_headers={"X-Tenant": "acme"}, extra_query={"a": "b"})
        assert await copy.mailboxes.activation_form("1") == PDF_BYTES
        (seen,) = recorder.seen
        assert seen.headers["X-Tenant"] == "acme" and seen.query["a"] == "b"


async def test_the_emulator_answers_calls_with_extras(
    client: PecClient, emulator: Emulator
) -> None:
    copy = client.with_options(extra_headers={"X-Tenant": "acme"}, extra_query={"a": "b"})
    assert await copy.mailboxes.list() == []
    assert emulator.count("GET", "/pec") == 1


# -- the raw answer --------------------------------------------------------------------


async def test_the_raw_answer_comes_with_the_value() -> None:
    async with recorded() as (client, _):
        raw: RawResult[Mailbox] = await with_raw_response(client.mailboxes.get("42"))
        assert isinstance(raw.value, Mailbox) and raw.value.id == "42"
        assert raw.status == 200 and raw.operation == "mailboxes.get"
        assert raw.request_id == "req-1"
        assert raw.headers["x-request-id"] == "req-1"  # any letter case
        assert raw.responses == (raw.response,)
    assert raw_module._recorder.get() is None  # nothing left recording


async def test_after_retries_the_answer_read_is_reported_and_every_answer_listed() -> None:
    async with recorded(Recorder(fail_first=2)) as (client, _):
        raw = await with_raw_response(client.mailboxes.list())
        assert isinstance(raw.value, list) and isinstance(raw.value[0], MailboxSummary)
        assert [r.status for r in raw.responses] == [503, 503, 200]
        assert raw.status == 200 and raw.request_id == "req-3"


async def test_concurrent_calls_each_see_their_own_answer() -> None:
    async with recorded() as (client, _):
        raws = await asyncio.gather(
            *(with_raw_response(client.mailboxes.get(str(i))) for i in range(10))
        )
        assert sorted(r.request_id or "" for r in raws) == sorted(f"req-{i}" for i in range(1, 11))
        assert all(len(r.responses) == 1 for r in raws)


Op = Callable[[PecClient, str], Awaitable[Any]]
USER = MailboxUser(nome="l", cognome="b", descrizione="d", email_gestione_password="l@d.it")
OPERATIONS: dict[str, tuple[Op, type[Any]]] = {
    "mailboxes.get": (lambda c, i: c.mailboxes.get(i), Mailbox),
    "mailboxes.list": (lambda c, i: c.mailboxes.list(), list),
    "mailboxes.is_available": (
        lambda c, i: c.mailboxes.is_available("nuova@testcert.legalmail.it"), bool,
    ),
    "mailboxes.register": (
        lambda c, i: c.mailboxes.register(make_registration("n@testcert.legalmail.it")), Mailbox,
    ),
    "mailboxes.renew": (lambda c, i: c.mailboxes.renew(i), Mailbox),
    "mailboxes.add_user": (lambda c, i: c.mailboxes.add_user(i, USER), Mailbox),
    "mailboxes.change_space": (
        lambda c, i: c.mailboxes.change_space(i, spazio_disco="+1024"), Mailbox,
    ),
    "mailboxes.change_type": (lambda c, i: c.mailboxes.change_type(i, "GOLD"), Mailbox),
    "mailboxes.activate_conservation": (
        lambda c, i: c.mailboxes.activate_conservation(i, PDF_BYTES), Mailbox,
    ),
    "mailboxes.activation_form": (lambda c, i: c.mailboxes.activation_form(i), bytes),
    "mailboxes.activate": (lambda c, i: c.mailboxes.activate(i, PDF_BYTES), Mailbox),
    "mailboxes.revoke": (lambda c, i: c.mailboxes.revoke(i), Mailbox),
    "comunica_pec.create": (
        lambda c, i: c.comunica_pec.create(make_comunica_request()), ComunicaPec,
    ),
    "comunica_pec.list": (lambda c, i: c.comunica_pec.list(), list),
    "domains.check": (lambda c, i: c.domains.check("testcert.legalmail.it"), DomainCheck),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(OPERATIONS))
async def test_every_operation_reports_its_answer(
    client: PecClient, emulator: Emulator, name: str
) -> None:
    op, kind = OPERATIONS[name]
    registered = name in ("mailboxes.activation_form", "mailboxes.activate")
    stato = "registrata" if registered else "evasa"
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato=stato)
    raw = await with_raw_response(op(client, box_id))
    assert isinstance(raw.value, kind)
    assert raw.operation == name
    # No comunica_pec request yet: the API says "nothing here" with a 404 (code 332).
    assert raw.status == (404 if name == "comunica_pec.list" else 200)
    assert raw.headers["Content-Type"].startswith(("application/json", "application/pdf"))


async def test_the_comunica_pec_upload_and_forms_report_theirs(
    client: PecClient, emulator: Emulator
) -> None:
    created = await client.comunica_pec.create(make_comunica_request())
    emulator.advance_comunica(created.id)
    form = await with_raw_response(client.comunica_pec.power_of_attorney(created.id))
    assert form.value.startswith(b"%PDF") and form.status == 200
    raw = await with_raw_response(client.comunica_pec.upload_documents(created.id, P7M_BYTES))
    assert isinstance(raw.value, ComunicaPec) and raw.operation == "comunica_pec.upload_documents"
    get = await with_raw_response(client.comunica_pec.get(created.id))
    assert get.value.id == created.id and get.operation == "comunica_pec.get"


async def test_a_reconciled_paid_write_reports_the_read_that_found_it(
    client: PecClient, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(Fault.late(0.2), path="/pec/*/rinnovo")  # 504, committed later
    settling = client.with_options(retry=RetryPolicy(settle=1.5, backoff=0.01, backoff_max=0.05))
    raw = await with_raw_response(settling.mailboxes.renew(box_id))
    await emulator.drain_late()
    assert isinstance(raw.value, Mailbox) and raw.value.id == box_id
    assert raw.operation == "mailboxes.get" and raw.status == 200  # the read that found it
    statuses = [(r.operation, r.status) for r in raw.responses]
    assert ("mailboxes.renew", 504) in statuses  # the write's own answer is listed
    assert statuses[-1] == ("mailboxes.get", 200)
    assert len(emulator.charges(operation="renewal")) == 1


async def test_an_answer_that_becomes_a_value_without_decoding_is_reported(
    client: PecClient, emulator: Emulator
) -> None:
    taken = emulator.seed_mailbox("preso@testcert.legalmail.it", stato="evasa")
    assert taken
    raw = await with_raw_response(client.mailboxes.is_available("preso@testcert.legalmail.it"))
    assert raw.value is False and raw.status == 406  # the API says "taken" with an error


# A renewal's first answer, 200 and committed or not, whose body cannot be read.
UNREADABLE = {
    "truncated": Fault.truncated_body(),
    "undecodable": Fault.malformed_json(),
    # Not processed: the settling read shows no change, and the renewal is sent again.
    "too large": Fault.answer(200, b"{" + b" " * 8192 + b"}"),
}


@pytest.mark.parametrize("kind", sorted(UNREADABLE))
async def test_an_answer_whose_body_cannot_be_read_is_reported(
    pec_server: RunningEmulator, emulator: Emulator, kind: str
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    emulator.faults.once(UNREADABLE[kind], path="/pec/*/rinnovo")
    async with PecClient(
        DEFAULT_TOKEN,
        sandbox=True,
        base_url=pec_server.url,
        retry=RetryPolicy(sleep=no_sleep, settle=0),
        limits=ResponseLimits(json=4096),
    ) as client:
        raw = await with_raw_response(client.mailboxes.renew(box_id))
    assert isinstance(raw.value, Mailbox) and len(emulator.charges(operation="renewal")) == 1
    renewals = [r for r in raw.responses if r.operation == "mailboxes.renew"]
    assert len(renewals) == emulator.count("GET", "/pec/*/rinnovo")  # every answer listed
    first = renewals[0]
    assert first.status == 200  # its status and headers, though its body was never read
    assert first.headers["Content-Type"].startswith("application/json")
    assert int(first.headers["Content-Length"]) > 0


async def test_a_shared_listing_is_in_no_callers_raw_result(
    client: PecClient, emulator: Emulator
) -> None:
    """Registrations settling at once share the account's listing; it is read in a task
    of its own: no caller's RawResult lists its answer, each lists only its own."""
    addresses = [f"r{i}@testcert.legalmail.it" for i in range(3)]
    for _ in addresses:
        emulator.faults.once(Fault.late(0.1), method="POST", path="/pec")
    settling = client.with_options(retry=RetryPolicy(settle=1.5, backoff=0.01, backoff_max=0.05))
    raws = await asyncio.gather(
        *(with_raw_response(settling.mailboxes.register(make_registration(a))) for a in addresses)
    )
    await emulator.drain_late()
    assert emulator.count("GET", "/pec") >= 1  # the listing was read
    for address, raw in zip(addresses, raws, strict=True):
        assert raw.value.casella_pec == address and raw.operation == "mailboxes.get"
        operations = {r.operation for r in raw.responses}
        assert operations <= {"mailboxes.register", "mailboxes.is_available", "mailboxes.get"}
        assert [r.status for r in raw.responses if r.operation == "mailboxes.register"] == [504]
    assert len(emulator.charges(operation="register")) == len(addresses)


async def test_errors_propagate_unchanged(client: PecClient) -> None:
    with pytest.raises(NotFoundError) as info:
        await with_raw_response(client.mailboxes.get("0" * 24))
    assert info.value.status == 404 and info.value.headers is not None


async def test_only_a_call_not_yet_running_is_taken(client: PecClient) -> None:
    task = asyncio.ensure_future(client.mailboxes.list())
    with pytest.raises(ValidationError):
        await with_raw_response(task)
    assert await task == []
    with pytest.raises(ValidationError):
        await with_raw_response([])  # type: ignore[arg-type]

    async def no_request() -> int:
        return 1

    with pytest.raises(ValidationError, match="no HTTP answer"):
        await with_raw_response(no_request())


def test_results_are_plain_data() -> None:
    info = raw_module.ResponseInfo("mailboxes.get", 200, {"X-Request-Id": "r"})
    result = RawResult(json.loads("[]"), info, (info,))
    assert result.request_id == "r" and result.value == []
    assert "X-Request-Id" not in repr(result)  # headers (a Set-Cookie...) stay out of reprs
    assert RawResult(DEFAULT_TOKEN, info, ()).response == info


@pytest.mark.parametrize(
    "session_kwargs",
    [{"headers": {"Content-Type": "text/plain"}}, {"skip_auto_headers": ["Content-Type"]}],
    ids=["session-default", "skip-auto-headers"],
)
async def test_a_json_body_says_so_whatever_the_users_session(
    session_kwargs: dict[str, Any],
) -> None:
    """A session passed in may carry a default Content-Type or skip the payload's: the
    body pecapi sends is JSON and says so (a paid write's body most of all)."""
    recorder = Recorder()
    async with (
        serve_app(recorder.app()) as url,
        aiohttp.ClientSession(**session_kwargs) as session,
        PecClient(TOKEN, base_url=url, session=session, retry=RetryPolicy.never()) as client,
    ):
        await client.mailboxes.add_user("6040e4613a716838dc4eee0e", USER)
    [request] = recorder.seen
    assert request.method == "POST"
    assert request.headers.get("Content-Type") == "application/json"


def test_a_str_subclass_cannot_pass_as_another_header() -> None:
    class Disguised(str):
        def lower(self) -> str:  # type: ignore[override]
            return "x-harmless"

    with pytest.raises(ValidationError):
        RequestOptions(extra_headers={Disguised("Host"): "elsewhere.example"})
