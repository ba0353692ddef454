"""Bounded answers: ResponseLimits, and the reader that enforces them while reading (bytes
counted after decompression). The memory a bomb can take: test_limits_memory.py."""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pecapi import (
    ConfigurationError,
    OAuthTokenProvider,
    OutcomeUnknownError,
    PecClient,
    ResponseDecodeError,
    ResponseLimits,
    ResponseTooLargeError,
    RetryPolicy,
    ServerError,
    ValidationError,
    all_pec_scopes,
)
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator
from pecapi.transport.limits import TOKEN_ANSWER_LIMIT, LimitedBody, read_head, read_limited
from tests.conftest import FAST_RETRY, PDF_BYTES, make_registration, no_sleep, serve_app

KiB = 1 << 10
MiB = 1 << 20
BOX = "6040e4613a716838dc4eee0e"
RETRY = RetryPolicy(max_attempts=4, sleep=no_sleep)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Server:
    """A tiny server on loopback: one handler per path, and how often each was asked."""

    def __init__(self, url: str, hits: Counter[str]) -> None:
        self.url = url
        self.hits = hits


@asynccontextmanager
async def serve(routes: dict[str, Handler]) -> AsyncIterator[Server]:
    hits: Counter[str] = Counter()

    async def dispatch(request: web.Request) -> web.StreamResponse:
        hits[request.path] += 1
        return await routes[request.path](request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    async with serve_app(app) as url:
        yield Server(url, hits)


def answer(body: bytes, *, encoding: str | None = None, chunked: bool = False) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        headers = {"Content-Encoding": encoding} if encoding else {}
        if not chunked:
            return web.Response(body=body, headers=headers, content_type="application/json")
        response = web.StreamResponse(headers=headers)
        response.content_type = "application/json"
        await response.prepare(request)
        for start in range(0, len(body), 4 * KiB):
            await response.write(body[start : start + 4 * KiB])
        await response.write_eof()
        return response

    return handle


def envelope(size: int) -> bytes:
    """An empty listing padded to exactly ``size`` bytes."""
    head = b'{"data":[],"success":true,"error":null,"message":"'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def client_for(url: str, **limits: int) -> PecClient:
    return PecClient("t0ken", base_url=url, retry=RETRY, limits=ResponseLimits(**limits))


# -- the settings ------------------------------------------------------------------------


def test_defaults_and_configuration() -> None:
    defaults = ResponseLimits()
    assert (defaults.json, defaults.form, defaults.form_to_file, defaults.error_body) == (
        64 * MiB,
        32 * MiB,
        512 * MiB,
        64 * KiB,
    )
    client = PecClient("t0ken", base_url="http://127.0.0.1:1", limits=ResponseLimits(json=10))
    assert client.limits == ResponseLimits(json=10)
    assert client.with_options(timeout=5).limits is client.limits
    assert PecClient("t0ken", base_url="http://127.0.0.1:1").limits == defaults


@pytest.mark.parametrize("field", ["json", "form", "form_to_file", "error_body"])
@pytest.mark.parametrize("value", [0, -1, True, 1.5, "1", None])
def test_bad_limits_are_refused(field: str, value: Any) -> None:
    with pytest.raises(ValidationError) as info:
        ResponseLimits(**{field: value})
    assert info.value.field == f"limits.{field}"


def test_limits_must_be_response_limits() -> None:
    with pytest.raises(ConfigurationError):
        PecClient("t0ken", base_url="http://127.0.0.1:1", limits=1024)  # type: ignore[arg-type]


# -- JSON answers --------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_an_oversize_json_answer_is_refused_and_not_retried(chunked: bool) -> None:
    async with (
        serve({"/pec": answer(envelope(5000), chunked=chunked)}) as server,
        client_for(server.url, json=4000) as client,
    ):
        with pytest.raises(ResponseTooLargeError) as info:
            await client.mailboxes.list()
    error = info.value
    assert (error.limit, error.status, error.method) == (4000, 200, "GET")
    assert error.url == f"{server.url}/pec"
    assert "ResponseLimits.json" in str(error)
    assert server.hits["/pec"] == 1  # the next answer would be as large


async def test_an_answer_at_the_limit_is_read() -> None:
    async with (
        serve({"/pec": answer(envelope(4000), chunked=True)}) as server,
        client_for(server.url, json=4000) as client,
    ):
        assert await client.mailboxes.list() == []


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_compressed_answers_are_read_and_counted_decompressed(encoding: str) -> None:
    pack = gzip.compress if encoding == "gzip" else zlib.compress
    small, large = pack(envelope(4000)), pack(envelope(40_000))
    assert len(large) < 4000  # the wire size alone would pass
    async with (
        serve({"/pec": answer(small, encoding=encoding)}) as server,
        client_for(server.url, json=4000) as client,
    ):
        assert await client.mailboxes.list() == []
    async with (
        serve({"/pec": answer(large, encoding=encoding, chunked=True)}) as server,
        client_for(server.url, json=4000) as client,
    ):
        with pytest.raises(ResponseTooLargeError):
            await client.mailboxes.list()


async def test_an_error_body_is_cut_not_refused() -> None:
    """The status decides the error (a 503 is retried); only the body is cut."""

    async def unavailable(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503, body=b"<html>" + b"busy " * 100_000)

    async with serve({"/pec": unavailable}) as server, client_for(server.url) as client:
        with pytest.raises(ServerError) as info:
            await client.mailboxes.list()
    assert server.hits["/pec"] == 4
    assert info.value.status == 503
    assert isinstance(info.value.body, str)
    assert len(info.value.body) <= ResponseLimits().error_body


# -- paid writes ---------------------------------------------------------------------------


async def _active_box(client: PecClient, emulator: Emulator) -> str:
    box = await client.mailboxes.register(make_registration())
    assert box.id is not None
    await client.mailboxes.activate(box.id, PDF_BYTES)
    emulator.complete_activation(box.id)
    return box.id


def _emulator_client(server: RunningEmulator, retry: RetryPolicy) -> PecClient:
    limits = ResponseLimits(json=64 * KiB)
    return PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url, retry=retry, limits=limits)


async def test_an_oversize_answer_to_a_paid_write_leaves_its_outcome_unknown(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    async with _emulator_client(pec_server, RetryPolicy(reconcile=False)) as client:
        box_id = await _active_box(client, emulator)
        oversize = Fault.answer(200, b" " * (128 * KiB))
        emulator.faults.once(oversize, method="GET", path="/pec/*/rinnovo")
        with pytest.raises(OutcomeUnknownError) as info:
            await client.mailboxes.renew(box_id)
    assert isinstance(info.value.cause, ResponseTooLargeError)
    assert emulator.count("GET", "/pec/*/rinnovo") == 1


async def test_an_oversize_answer_to_a_paid_write_is_settled(
    pec_server: RunningEmulator, emulator: Emulator
) -> None:
    """The faulted renewal was not processed: the settle read shows no change, so it is
    sent again, and charged once."""
    async with _emulator_client(pec_server, FAST_RETRY) as client:
        box_id = await _active_box(client, emulator)
        oversize = Fault.answer(200, b" " * (128 * KiB))
        emulator.faults.once(oversize, method="GET", path="/pec/*/rinnovo")
        renewed = await client.mailboxes.renew(box_id)
    assert renewed.id == box_id
    assert emulator.count("GET", "/pec/*/rinnovo") == 2
    assert len(emulator.charges(operation="renewal")) == 1


# -- forms -------------------------------------------------------------------------------

FORM = f"/pec/{BOX}/modulo_attivazione"
BIG_PDF = PDF_BYTES + b"%" * (100 * KiB)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_form_in_memory_is_capped(chunked: bool, tmp_path: Path) -> None:
    async with (
        serve({FORM: answer(BIG_PDF, chunked=chunked)}) as server,
        client_for(server.url, form=64 * KiB, form_to_file=MiB) as client,
    ):
        with pytest.raises(ResponseTooLargeError) as info:
            await client.mailboxes.activation_form(BOX)
        assert info.value.limit == 64 * KiB
        assert "ResponseLimits.form " in str(info.value)
        # The same form to a file is under its own, higher cap.
        written = await client.mailboxes.activation_form(BOX, tmp_path / "form.pdf")
    assert written.read_bytes() == BIG_PDF
    assert server.hits[FORM] == 2  # the refused one was not retried


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_form_to_a_file_is_capped_and_leaves_no_file(chunked: bool, tmp_path: Path) -> None:
    async with (
        serve({FORM: answer(BIG_PDF, chunked=chunked)}) as server,
        client_for(server.url, form_to_file=64 * KiB) as client,
    ):
        with pytest.raises(ResponseTooLargeError) as info:
            await client.mailboxes.activation_form(BOX, tmp_path / "form.pdf")
    assert "ResponseLimits.form_to_file" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # neither the form nor its .part file


async def test_a_form_within_the_caps_is_read_whole(tmp_path: Path) -> None:
    async with (
        serve({FORM: answer(BIG_PDF, chunked=True)}) as server,
        client_for(server.url, form=len(BIG_PDF), form_to_file=len(BIG_PDF)) as client,
    ):
        assert await client.mailboxes.activation_form(BOX) == BIG_PDF
        written = await client.mailboxes.activation_form(BOX, tmp_path / "form.pdf")
    assert written.read_bytes() == BIG_PDF


# -- the OAuth token service --------------------------------------------------------------


async def test_an_oversize_token_answer_is_refused() -> None:
    async with (
        serve({"/token": answer(b'{"data":"' + b"x" * (2 * MiB) + b'"}', chunked=True)}) as server,
        OAuthTokenProvider(
            "owner@example.org",
            "k3y",
            scopes=all_pec_scopes(sandbox=True),
            sandbox=True,
            base_url=server.url,
        ) as provider,
    ):
        with pytest.raises(ResponseTooLargeError) as info:
            await provider.get_token()
    assert info.value.limit == TOKEN_ANSWER_LIMIT
    assert server.hits["/token"] == 1


# -- the reader ----------------------------------------------------------------------------


@asynccontextmanager
async def raw_answer(handler: Handler) -> AsyncIterator[Any]:
    """The response to a GET, asked for the way a reader that inflates needs it."""
    async with (
        serve({"/": handler}) as server,
        aiohttp.ClientSession(auto_decompress=False) as session,
        session.get(server.url + "/", headers={"Accept-Encoding": "gzip, deflate"}) as response,
    ):
        yield response


TEXT = b"".join(b"line %d of a compressible answer\n" % i for i in range(40_000))  # ~1.3 MB


def raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        ("gzip", gzip.compress(TEXT)),
        ("x-gzip", gzip.compress(TEXT)),
        ("gzip", gzip.compress(TEXT[:1000]) + gzip.compress(TEXT[1000:])),  # two members
        ("deflate", zlib.compress(TEXT)),
        ("deflate", raw_deflate(TEXT)),  # what some servers send as "deflate"
        ("identity", TEXT),
    ],
    ids=["gzip", "x-gzip", "gzip-members", "deflate", "raw-deflate", "identity"],
)
async def test_the_reader_inflates_in_bounded_steps(encoding: str, packed: bytes) -> None:
    async with raw_answer(answer(packed, encoding=encoding, chunked=True)) as response:
        body = LimitedBody(response, len(TEXT))
        pieces = []
        while piece := await body.chunk():
            pieces.append(piece)
    assert b"".join(pieces) == TEXT
    if encoding != "identity":
        assert max(map(len, pieces)) <= 64 * KiB


async def test_the_reader_stops_a_bomb_one_step_past_the_limit() -> None:
    bomb = gzip.compress(bytes(16 * MiB))  # about 16 KB
    async with raw_answer(answer(bomb, encoding="gzip")) as response:
        body = LimitedBody(response, MiB)
        with pytest.raises(ResponseTooLargeError) as info:
            await body.read()
    assert info.value.limit == MiB
    assert body.count <= MiB + 64 * KiB  # never more than one 64 KiB step inflated past it


@pytest.mark.parametrize(
    ("encoding", "packed", "problem"),
    [
        ("gzip", b"\x1f\x8b not really gzip", "corrupt"),
        ("gzip", gzip.compress(TEXT)[:-100], "ends early"),
        ("gzip", gzip.compress(b"{}") + b"trailing junk", "corrupt"),
        ("deflate", zlib.compress(b"{}") + b"junk", "after the end"),
        ("br", b"\x0b\x00\x80{}\x03", "cannot inflate"),
    ],
    ids=["corrupt", "truncated", "junk-after-gzip", "junk-after-deflate", "brotli"],
)
async def test_undecodable_compressed_answers_are_decode_errors(
    encoding: str, packed: bytes, problem: str
) -> None:
    async with raw_answer(answer(packed, encoding=encoding)) as response:
        with pytest.raises(ResponseDecodeError) as info:
            await read_limited(response, 10 * MiB)
    assert not isinstance(info.value, ResponseTooLargeError)
    assert problem in str(info.value)


async def test_the_error_does_not_keep_the_answer_alive() -> None:
    """Kept errors (a batch's results) must not keep what was read up to the limit."""
    async with raw_answer(answer(TEXT, chunked=True)) as response:
        with pytest.raises(ResponseTooLargeError) as info:
            await read_limited(response, MiB)
    held = 0
    tb = info.value.__traceback__
    while tb is not None:
        for value in tb.tb_frame.f_locals.values():
            items = value if isinstance(value, list) else [value]
            held += sum(len(item) for item in items if isinstance(item, (bytes, bytearray)))
        tb = tb.tb_next
    assert held <= 64 * KiB


async def test_head_reads_at_most_its_size_and_the_rest_follows() -> None:
    async with raw_answer(answer(gzip.compress(TEXT), encoding="gzip")) as response:
        body = LimitedBody(response, len(TEXT))
        assert await body.head(10) == TEXT[:10]
        assert await body.head(100_000) == TEXT[10:100_010]
        assert await body.read() == TEXT[100_010:]
    async with raw_answer(answer(TEXT, chunked=True)) as response:
        assert await read_head(response, 1000) == TEXT[:1000]


async def test_an_announced_length_over_the_limit_is_refused_before_reading() -> None:
    async with raw_answer(answer(TEXT)) as response:
        with pytest.raises(ResponseTooLargeError):
            LimitedBody(response, len(TEXT) - 1)
        assert response.content.total_bytes < len(TEXT)  # not read to the end
