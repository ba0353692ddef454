"""The JSON parser of the request path: orjson when installed, the standard library
otherwise, with one result and one error either way (``pecapi.jsontext.FAST_LOADS`` is
the switch; each test runs both ways)."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

import pecapi.jsontext as jsontext
from pecapi import PecClient, ResponseDecodeError, RetryPolicy
from pecapi.jsontext import JsonError, loads
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, RunningEmulator

ONCE = RetryPolicy.never()


@pytest.fixture(params=["orjson", "json"])
def parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    fast = orjson.loads if request.param == "orjson" else None
    monkeypatch.setattr(jsontext, "FAST_LOADS", fast)
    name: str = request.param
    return name


TEXTS: list[bytes] = [
    b'{"data": {"id": "42", "n": 1, "f": 2.5, "ok": true, "none": null}, "success": true}',
    b'[1, -0, 1e308, 0.1, "\\u00e8", "\\ud83d\\ude00", {"a": 1, "a": 2}]',
    # Integers beyond 64 bits: orjson would read them as floats, json keeps them exact.
    b"[123456789012345678901234567890, -98765432109876543210]",
    b'{"big": 18446744073709551616}',
    # 19 digits below -2**63: orjson reads them as floats as well.
    b"[-9223372036854775809, -9999999999999999999, 9999999999999999999]",
    # What orjson refuses and json reads: NaN, a lone surrogate, UTF-16.
    b"[NaN, Infinity, -Infinity]",
    b'"\\ud800"',
    '{"a": 1}'.encode("utf-16"),
    b"  \n 7 \n",
]


@pytest.mark.parametrize("text", TEXTS)
def test_the_value_is_the_standard_librarys(parser: str, text: bytes) -> None:
    value = loads(text)
    expected = json.loads(text)
    assert repr(value) == repr(expected)  # repr: NaN != NaN, and 1 == 1.0
    assert _types(value) == _types(expected)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value)


BROKEN = [b"{bad", b"[1,]", b"\xff\xfe\x00", b"", b"[" * 100_000 + b"]" * 100_000, b"[" * 1100]


@pytest.mark.parametrize("text", BROKEN, ids=["key", "comma", "utf8", "empty", "deep", "open"])
def test_broken_text_gives_the_same_error_either_way(
    text: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsontext, "FAST_LOADS", None)
    with pytest.raises(JsonError) as standard:
        loads(text)
    monkeypatch.setattr(jsontext, "FAST_LOADS", orjson.loads)
    with pytest.raises(JsonError) as fast:
        loads(text)
    assert str(fast.value) == str(standard.value)
    assert fast.value.__context__ is None and fast.value.__cause__ is None


def test_deep_nesting_is_a_json_error_not_a_recursion_error(parser: str) -> None:
    # Deeper than orjson's 1024 levels and than json's recursion limit.
    with pytest.raises(JsonError, match="nested deeper than the parser's stack"):
        loads(b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(JsonError, match="nested deeper than 3 levels"):
        loads(b"[[[[]]]]", max_depth=3)


def test_the_first_parse_finds_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    # Not imported with pecapi: at the first parse, which then keeps it.
    monkeypatch.setattr(jsontext, "FAST_LOADS", jsontext._first_fast)
    assert loads(b'{"a": [1]}') == {"a": [1]}
    assert jsontext.FAST_LOADS is orjson.loads


def test_without_orjson_the_standard_library_parses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsontext, "FAST_LOADS", jsontext._first_fast)
    monkeypatch.setitem(__import__("sys").modules, "orjson", None)  # import fails
    assert loads(b'{"a": [1]}') == {"a": [1]}
    assert jsontext.FAST_LOADS is None


def test_constants_false_never_takes_the_fast_path(parser: str) -> None:
    with pytest.raises(JsonError):
        loads(b"[NaN]", constants=False)
    with pytest.raises(JsonError):
        loads(b"[1e999]", constants=False)


def test_text_shorter_than_the_value_limit_is_not_counted(parser: str) -> None:
    assert loads(b"[[],[]]", max_values=7) == [[], []]  # 5 values, 7 bytes: not counted
    with pytest.raises(jsontext.TooManyValues):
        loads(b"[[],[],[]]", max_values=5)


async def test_a_deeply_nested_answer_is_a_decode_error(
    parser: str, pec_server: RunningEmulator, emulator: Emulator
) -> None:
    box_id = emulator.seed_mailbox("m@testcert.legalmail.it", stato="evasa")
    deep = b'{"success": true, "data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    emulator.faults.once(Fault.answer(200, deep, "application/json"), path="/pec/*")
    async with PecClient(DEFAULT_TOKEN, base_url=pec_server.url, retry=ONCE) as client:
        with pytest.raises(ResponseDecodeError, match="not valid JSON: nested deeper"):
            await client.mailboxes.get(box_id)
        assert (await client.mailboxes.get(box_id)).id == box_id  # the next one is read


# -- request bodies: orjson's encoding when installed, the standard library's bytes --------


def _standard_dumps(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@pytest.mark.parametrize(
    "value",
    [
        {"casella_pec": "mario.rossi@testcert.legalmail.it", "anni": 2, "rinnovo": True},
        {"nome": 'Nicolò \u00e8 \u2028 \U0001f600 \x00\x1f\x7f "q" \\ /', "x": None},
        {"nested": [{"a": [1, -(2**63), 2**63 - 1]}, [], {}], "": ""},
        {"big": 2**70, "neg": -(2**64)},  # beyond 64 bits: orjson refuses, json writes
        {1: "a key that is not a string"},  # orjson refuses; json writes "1"
    ],
)
def test_a_body_is_the_standard_librarys_bytes(value: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsontext, "FAST_DUMPS", orjson.dumps)
    assert jsontext.dumps(value) == _standard_dumps(value)
    monkeypatch.setattr(jsontext, "FAST_DUMPS", None)
    assert jsontext.dumps(value) == _standard_dumps(value)


def test_the_first_body_finds_orjson(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(jsontext, "FAST_DUMPS", jsontext._first_dumps)
    assert jsontext.dumps({"a": "è"}) == '{"a":"è"}'.encode()
    assert jsontext.FAST_DUMPS is orjson.dumps
    monkeypatch.setattr(jsontext, "FAST_DUMPS", jsontext._first_dumps)
    monkeypatch.setitem(__import__("sys").modules, "orjson", None)  # import fails
    assert jsontext.dumps({"a": "è"}) == '{"a":"è"}'.encode()
    assert jsontext.FAST_DUMPS is None


async def test_a_registration_reaches_the_api_whole_either_way(
    parser: str, pec_server: RunningEmulator, emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from pecapi.testing import samples

    monkeypatch.setattr(jsontext, "FAST_DUMPS", None if parser == "json" else orjson.dumps)
    registration = samples.registration(
        f"nicolo.{parser}@testcert.legalmail.it", nome_richiedente='Nicolò "Çà" \U0001f600'
    )
    async with PecClient(
        DEFAULT_TOKEN, sandbox=True, base_url=pec_server.url, retry=ONCE
    ) as client:
        box = await client.mailboxes.register(registration)
    assert box.casella_pec == registration.casella_pec
    assert box.nome_richiedente == 'Nicolò "Çà" \U0001f600'


def test_the_models_bodies_are_the_same_bytes_either_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from pecapi.models.converter import unstructure
    from pecapi.testing import samples

    bodies = [
        unstructure(
            samples.registration("nicolo@testcert.legalmail.it", nome_richiedente="Nicolò")
        ),
        unstructure(samples.comunica_request("e@pec.com")),
    ]
    for body in bodies:
        monkeypatch.setattr(jsontext, "FAST_DUMPS", orjson.dumps)
        fast = jsontext.dumps(body)
        monkeypatch.setattr(jsontext, "FAST_DUMPS", None)
        assert fast == jsontext.dumps(body) == _standard_dumps(body)
