"""What a parsed answer may take: JSON values counted before parsing
(``ResponseLimits.json_values``), decode errors that keep little, error statuses whose
body cannot be read still typed by their status. Memory itself: test_limits_memory.py."""

from __future__ import annotations

import gzip

import pytest
from aiohttp import web

from pecapi import (
    PecApiError,
    ResponseDecodeError,
    ResponseLimits,
    ResponseTooLargeError,
    ServerError,
)
from pecapi.jsontext import JsonError, TooManyValues, count_values, loads, whole_number
from tests.leaks import chain
from tests.test_limits import answer, client_for, serve

# -- the reader ----------------------------------------------------------------------------


def test_values_are_counted_before_parsing() -> None:
    assert count_values(b"1") == 1
    assert count_values(b'{"a": [1, 2, {}]}') == 6  # 5 values (and a key): a bound
    assert count_values('["a,b"]') == 3  # a comma in a string counts too
    assert loads(b"[[],[]]", max_values=5) == [[], []]
    with pytest.raises(TooManyValues) as info:
        loads(b"[[],[],[]]", max_values=5)
    assert (info.value.count, info.value.limit) == (7, 5)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than the parser"),
        (b'{"a": 1', "Expecting"),
        (b'["\xff"]', "not UTF-8"),
        (b"[NaN]", "NaN is not a JSON number"),
        (b"[1e999]", "out of range"),
    ],
    ids=["deep", "truncated", "not-utf8", "nan", "out-of-range"],
)
def test_unreadable_json_is_one_typed_error(text: bytes, problem: str) -> None:
    with pytest.raises(JsonError, match=problem):
        loads(text, constants=False)


def test_depth_is_checked_without_recursion() -> None:
    assert loads(b"[" * 129 + b"]" * 129) == loads(b"[" * 129 + b"]" * 129)  # no limit
    with pytest.raises(JsonError, match="deeper than 128"):
        loads(b"[" * 129 + b"]" * 129, max_depth=128)
    assert loads(b"[" * 128 + b"]" * 128, max_depth=128)


@pytest.mark.parametrize(
    ("text", "signed", "expected"),
    [
        ("42", False, 42),
        (" -7 ", True, -7),
        ("-7", False, None),
        ("²", False, None),
        ("٣", False, None),
        ("1_000", False, None),
        ("9" * 19, False, None),
        ("", False, None),
    ],
)
def test_whole_numbers_are_ascii_digits(text: str, signed: bool, expected: int | None) -> None:
    assert whole_number(text, signed=signed) == expected


# -- through the client ----------------------------------------------------------------------


def values(count: int) -> bytes:
    """A listing envelope whose ``data`` holds ``count`` empty lists."""
    return b'{"success":true,"data":[' + b",".join([b"[]"] * count) + b"]}"


async def test_an_answer_with_too_many_values_is_refused_before_parsing() -> None:
    async with (
        serve({"/pec": answer(values(1_000))}) as server,
        client_for(server.url, json_values=500) as client,
    ):
        with pytest.raises(ResponseTooLargeError) as info:
            await client.mailboxes.list()
    assert info.value.limit == 500
    assert "json_values" in str(info.value)
    assert server.hits["/pec"] == 1  # not retried: the next answer would be as large


async def test_a_compressed_answer_is_counted_inflated() -> None:
    packed = gzip.compress(values(10_000))  # some 100 bytes on the wire
    async with (
        serve({"/pec": answer(packed, encoding="gzip")}) as server,
        client_for(server.url, json_values=9_000) as client,
    ):
        with pytest.raises(ResponseTooLargeError):
            await client.mailboxes.list()


async def test_the_default_reads_a_large_real_listing() -> None:
    """30,000 summaries (the size the defaults are meant for) are read, not refused."""
    record = b'{"id":"6040e4613a716838dc4eee0e","casella_pec":"a@legalmail.it","stato":"ATTIVA"}'
    body = b'{"success":true,"data":[' + b",".join([record] * 30_000) + b"]}"
    async with serve({"/pec": answer(body)}) as server, client_for(server.url) as client:
        listing = await client.mailboxes.list()
    assert len(listing) == 30_000
    assert ResponseLimits().json_values >= count_values(body)


def parsed_data_held(error: BaseException, canary: str) -> list[str]:
    """The frames, anywhere in ``error``'s chain, with a local holding a parsed
    ``{canary: ...}`` object (directly, or in a list or a dict's values)."""
    found = []
    for exc in chain(error):
        tb = exc.__traceback__
        while tb is not None:
            for name, value in tb.tb_frame.f_locals.items():
                items = value if isinstance(value, list) else [value]
                if isinstance(value, dict):
                    items = [value, *value.values()]
                for item in items:
                    if isinstance(item, list) and item:
                        item = item[0]
                    if isinstance(item, dict) and canary in item:
                        found.append(f"{tb.tb_frame.f_code.co_name}: {name}")
                        break
            tb = tb.tb_next
    return found


CANARY = "parsed-canary-7d1f"


def test_the_frame_check_can_fail() -> None:
    def hold(data: list[dict[str, int]]) -> None:
        raise ResponseDecodeError("held")

    with pytest.raises(ResponseDecodeError) as info:
        hold([{CANARY: 1}])
    assert parsed_data_held(info.value, CANARY) == ["hold: data"]


async def test_a_decode_error_keeps_neither_the_data_nor_the_whole_body() -> None:
    """A kept error (a batch's results) keeps its traceback's frames: none may hold the
    parsed answer, and the error's body is cut to ``error_body``."""
    # A mailbox must be an object: a list of 20,000 objects fails in the models.
    item = b'{"%s":1}' % CANARY.encode()
    body = b'{"success":true,"data":[' + b",".join([item] * 20_000) + b"]}"
    async with (
        serve({"/pec/6040e4613a716838dc4eee0e": answer(body)}) as server,
        client_for(server.url, error_body=1000) as client,
    ):
        with pytest.raises(ResponseDecodeError) as info:
            await client.mailboxes.get("6040e4613a716838dc4eee0e")
    error = info.value
    assert not isinstance(error, ResponseTooLargeError)
    assert error.body is not None and len(error.body) == 1000
    assert "unexpected data" in str(error)
    assert parsed_data_held(error, CANARY) == []


@pytest.mark.parametrize("encoding", ["br", "gzip"])
async def test_an_unreadable_error_body_keeps_the_status_type(encoding: str) -> None:
    """A 503 whose body cannot be inflated is still a ServerError (and retried)."""

    async def unavailable(request: web.Request) -> web.StreamResponse:
        body = b"\x0b\x00\x80busy\x03" if encoding == "br" else b"\x1f\x8b corrupt"
        return web.Response(status=503, body=body, headers={"Content-Encoding": encoding})

    async with serve({"/pec": unavailable}) as server, client_for(server.url) as client:
        with pytest.raises(ServerError) as info:
            await client.mailboxes.list()
    assert info.value.status == 503
    assert server.hits["/pec"] == 4


def held_text(error: BaseException) -> int:
    """The largest bytes or str reachable from ``error``'s chain: pecapi's frame locals
    (and a RawResponse's body among them), and chained exceptions' attributes (a
    JSONDecodeError keeps its whole document in ``.doc``)."""
    largest = 0
    for exc in chain(error):
        values = list(vars(exc).values())
        tb = exc.__traceback__
        while tb is not None:
            if "/pecapi/" in tb.tb_frame.f_code.co_filename:  # not the test's own frames
                values += tb.tb_frame.f_locals.values()
            tb = tb.tb_next
        for value in values:
            value = getattr(value, "body", value)
            if isinstance(value, (bytes, str)):
                largest = max(largest, len(value))
    return largest


async def test_a_kept_decode_error_holds_no_more_than_error_body() -> None:
    body = b'{"success":true,"data":"' + b"x" * 2_000_000 + b'" broken'
    async with (
        serve({"/pec/6040e4613a716838dc4eee0e": answer(body)}) as server,
        client_for(server.url, error_body=1000) as client,
    ):
        with pytest.raises(ResponseDecodeError) as info:
            await client.mailboxes.get("6040e4613a716838dc4eee0e")
    assert info.value.__context__ is None
    assert held_text(info.value) <= 1000


async def test_a_2xx_refusal_keeps_its_envelope_not_its_data() -> None:
    items = ",".join([f'{{"id":"{i}"}}' for i in range(10_000)])
    body = b'{"success":false,"message":"no","error":7,"data":[' + items.encode() + b"]}"
    async with serve({"/pec": answer(body)}) as server, client_for(server.url) as client:
        with pytest.raises(PecApiError) as info:
            await client.mailboxes.list()
    assert info.value.body == {"success": False, "message": "no", "error": 7}


async def test_an_error_status_is_not_refused_for_its_values() -> None:
    """An error body was cut at error_body: counted, a 503 would become a
    ResponseTooLargeError, and not be retried."""

    async def busy(request: web.Request) -> web.StreamResponse:
        return web.json_response({"success": False, "data": [[], [], [], []]}, status=503)

    async with serve({"/pec": busy}) as server, client_for(server.url, json_values=3) as client:
        with pytest.raises(ServerError):
            await client.mailboxes.list()
    assert server.hits["/pec"] == 4
