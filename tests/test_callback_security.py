"""The callback receiver under hostile input, over real HTTP on loopback: signed callback
URLs (the emulator delivering to ``handler(..., verify=signer)``), forged deliveries,
malformed, oversized and compressed bodies. The key and signatures kept secret:
test_callback_secrets.py."""

from __future__ import annotations

import gzip
import io
import json
import logging
import os
import pickle
import secrets
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from pecapi import (
    Callback,
    CallbackError,
    CallbackEvent,
    PecClient,
    ValidationError,
)
from pecapi.callbacks import (
    MAX_BODY,
    MAX_DEPTH,
    CallbackEncodingError,
    CallbackSigner,
    CallbackTooLargeError,
    handler,
    parse_body,
    parse_payload,
)
from pecapi.testing import DEFAULT_TOKEN, Emulator
from tests.conftest import PDF_BYTES, make_comunica_request, make_registration, serve_app

OnEvent = Callable[[CallbackEvent], Awaitable[None]]
ADDRESS = "mario.rossi@testcert.legalmail.it"
KEY = "canary-" + secrets.token_hex(24)  # unique: any appearance of it is a leak
OTHER_KEY = "another-" + secrets.token_hex(24)


@asynccontextmanager
async def receiver(
    on_event: OnEvent, *, client_max_size: int = 1024**2, **handler_kwargs: Any
) -> AsyncIterator[str]:
    """A user's service mounting ``handler(on_event, ...)`` on loopback; its URL."""
    app = web.Application(client_max_size=client_max_size)
    app.router.add_post("/pec-callback", handler(on_event, **handler_kwargs))
    async with serve_app(app) as url:
        yield f"{url}/pec-callback"


def collector() -> tuple[list[CallbackEvent], OnEvent]:
    events: list[CallbackEvent] = []

    async def on_event(event: CallbackEvent) -> None:
        events.append(event)

    return events, on_event


def mailbox(**overrides: Any) -> dict[str, Any]:
    return {"id": "a" * 24, "stato": "evasa", "casella_pec": ADDRESS, **overrides}


# -- signed URLs end to end ----------------------------------------------------------------


async def test_the_emulator_delivers_to_signed_urls_and_forgeries_get_403() -> None:
    signer = CallbackSigner(KEY)
    events, on_event = collector()
    emu = Emulator()
    async with (
        receiver(on_event, verify=signer) as url,
        emu.serve() as server,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url) as client,
    ):
        signed = signer.callback(url, ADDRESS, method="JSON", data={"order": 7})
        box = await client.mailboxes.register(make_registration(ADDRESS, callback=signed))
        await client.mailboxes.activate(box.id, PDF_BYTES)
        request = await client.comunica_pec.create(
            make_comunica_request(casella_pec=ADDRESS, callback=signer.callback(url, ADDRESS))
        )
        good = list(await emu.deliveries_settled())
        # Deliveries the receiver did not sign for: no signature, another key's, and the
        # signature of another address for a registration of this one.
        forged = [
            Callback(url=url),
            CallbackSigner(OTHER_KEY).callback(url, ADDRESS),
            signer.callback(url, "someone.else@testcert.legalmail.it"),
        ]
        for i, callback in enumerate(forged):
            await client.mailboxes.register(
                make_registration(f"forged{i}@testcert.legalmail.it", callback=callback)
            )
        deliveries = await emu.deliveries_settled()

    assert [(d.status, d.attempts) for d in good] == [(200, 1)] * len(good)
    assert len(good) == 3  # registrata, in_evasione; the request's codice_in_richiesta
    assert [e.id for e in events] == [box.id, box.id, request.id]
    assert events[0].data == {"order": 7}
    refused = deliveries[len(good) :]
    assert [(d.status, d.attempts, d.delivered) for d in refused] == [(403, 1, False)] * 3
    assert len(events) == 3  # on_event never saw a forged delivery


async def test_callback_data_as_deep_as_the_client_allows_is_delivered() -> None:
    """The receiver's depth limit leaves room for any ``callback.data`` a registration may
    carry: the user's own data never gets their deliveries refused."""

    def accepted(levels: int) -> bool:
        try:
            Callback(url="https://me.example/cb", data=nested(levels)).check()
        except ValidationError:
            return False
        return True

    # the deepest data Callback.check lets through (it refuses some: about 100 levels)
    deepest = nested(max(n for n in range(1, MAX_DEPTH) if accepted(n)))
    assert not accepted(MAX_DEPTH)
    signer = CallbackSigner(KEY)
    events, on_event = collector()
    emu = Emulator()
    async with (
        receiver(on_event, verify=signer) as url,
        emu.serve() as server,
        PecClient(DEFAULT_TOKEN, sandbox=True, base_url=server.url) as client,
    ):
        callback = signer.callback(url, ADDRESS, data=deepest)
        await client.mailboxes.register(make_registration(ADDRESS, callback=callback))
        (delivery,) = await emu.deliveries_settled()
    assert delivery.status == 200
    assert [e.data for e in events] == [deepest]


async def test_forged_requests_are_refused_before_on_event() -> None:
    signer = CallbackSigner(KEY)
    events, on_event = collector()
    body = json.dumps({"data": mailbox(), "success": True}).encode()
    async with receiver(on_event, verify=signer) as url, aiohttp.ClientSession() as session:
        base = URL(url)
        token = signer.sign(ADDRESS)
        for target in (
            base,  # unsigned
            base.with_query({"pecapi_sig": "A" * 43}),  # the right shape, made up
            base.with_query({"pecapi_sig": token[:-1]}),  # truncated
            base.with_query({"pecapi_sig": token + "="}),
            base.with_query({"other": token}),  # not the signer's parameter
            base.with_query([("pecapi_sig", token), ("pecapi_sig", token)]),
            URL(CallbackSigner(OTHER_KEY).url(url, ADDRESS)),
            URL(signer.url(url, "victim@testcert.legalmail.it")),
        ):
            headers = {"Content-Type": "application/json"}
            async with session.post(target, data=body, headers=headers) as r:
                assert r.status == 403, target
                assert (await r.json())["success"] is False
        # unsigned: refused before its body is read, so an oversized one is not a 413
        async with session.post(base, data=io.BytesIO(b"{" * (MAX_BODY + 1))) as r:
            assert r.status == 403
        # the address is compared as the API stores it: lowercased
        async with session.post(signer.url(url, ADDRESS.upper()), data=body) as r:
            assert r.status == 200
        # a signed URL for an object that names no address cannot be checked
        no_address = json.dumps(mailbox(casella_pec=None)).encode()
        async with session.post(signer.url(url, ADDRESS), data=no_address) as r:
            assert r.status == 403
    assert len(events) == 1


async def test_keys_rotate_new_first_old_still_accepted() -> None:
    old, new = CallbackSigner(OTHER_KEY), CallbackSigner([KEY, OTHER_KEY])
    assert new.sign(ADDRESS) == CallbackSigner(KEY).sign(ADDRESS) != old.sign(ADDRESS)
    events, on_event = collector()
    body = json.dumps(mailbox()).encode()
    async with aiohttp.ClientSession() as session:
        for verify, status in ((new, 200), (CallbackSigner(KEY), 403)):
            async with (
                receiver(on_event, verify=verify) as url,
                session.post(old.url(url, ADDRESS), data=body) as r,
            ):
                assert r.status == status
    assert len(events) == 1


def test_signed_urls_keep_their_query_and_are_checked() -> None:
    signer = CallbackSigner(KEY.encode(), param="sig")
    url = URL(signer.url("https://me.example/cb?tenant=4&sig=stale", ADDRESS))
    assert url.query.getall("sig") == [signer.sign(ADDRESS)]
    assert url.query["tenant"] == "4"
    assert signer.token_in(url.query) == signer.sign(ADDRESS)
    assert signer.verify(signer.sign(ADDRESS), ADDRESS)
    assert not signer.verify(signer.sign(ADDRESS), "x" + ADDRESS)
    assert not signer.verify(None, ADDRESS)
    assert not signer.verify("é" * 43, ADDRESS)  # not ASCII: False, not a TypeError
    assert signer.callback("https://me.example/cb", ADDRESS).url == str(
        URL("https://me.example/cb").with_query({"sig": signer.sign(ADDRESS)})
    )
    for bad_url in ("ftp://me.example/cb", "/relative"):
        with pytest.raises(ValueError, match="absolute http"):
            signer.url(bad_url, ADDRESS)
    with pytest.raises(TypeError):
        handler(lambda event: None, verify=KEY)  # type: ignore[arg-type, return-value]


# -- malformed and oversized deliveries ----------------------------------------------------


def nested(levels: int) -> Any:
    """``levels`` objects, one inside the other."""
    value: Any = 1
    for _ in range(levels):
        value = {"k": value}
    return value


MALFORMED: list[bytes] = [
    b'{"id": "1", "stato": "evasa", "spazio_disco": NaN}',
    b'{"id": "1", "stato": "evasa", "spazio_disco": Infinity}',
    b'{"id": "1", "stato": "evasa", "spazio_disco": -Infinity}',
    b'{"id": "1", "stato": "evasa", "spazio_disco": 1e999}',
    b'{"data": {"id": "1", "stato": "evasa", "extra": [NaN]}}',
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser's stack
    # the mailbox, its callback and MAX_DEPTH - 1 objects of data: one level too many
    json.dumps(mailbox(callback={"data": nested(MAX_DEPTH - 1)})).encode(),
    json.dumps({"data": "[" * 100_000 + "]" * 100_000}).encode(),  # JSON inside the JSON
    json.dumps(mailbox(id=None)).encode(),  # an event about nothing in particular
    json.dumps(mailbox(id="  ")).encode(),
    json.dumps({k: v for k, v in mailbox().items() if k != "id"}).encode(),
    urlencode({"x\nWARNING forged log line": "1"}).encode(),
]


def test_malformed_bodies_are_callback_errors() -> None:
    for body in MALFORMED:
        with pytest.raises(CallbackError):
            parse_body(body, "application/json")
    with pytest.raises(CallbackError, match="nested deeper"):
        parse_body(b'{"data": ' * 100_000, "application/json")
    with pytest.raises(CallbackError, match="nested deeper"):
        parse_payload({"data": "[" * 100_000 + "]" * 100_000})
    with pytest.raises(CallbackError, match="NaN is not a JSON number"):
        parse_body(b'{"a": NaN}')
    with pytest.raises(CallbackError, match=r"\\n"):  # a field name never breaks a line
        parse_body(MALFORMED[-1], "application/x-www-form-urlencoded")
    # nested exactly MAX_DEPTH deep is fine: the limit is not off by one
    at_limit = json.dumps(mailbox(callback={"data": nested(MAX_DEPTH - 2)})).encode()
    assert parse_body(at_limit).data is not None


async def test_malformed_deliveries_get_400_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events, on_event = collector()
    with caplog.at_level(logging.DEBUG):
        async with receiver(on_event) as url, aiohttp.ClientSession() as session:
            for body in MALFORMED:
                headers = {"Content-Type": "application/json"}
                async with session.post(url, data=body, headers=headers) as r:
                    assert r.status == 400, body[:80]
                    assert "Traceback" not in await r.text()
            form = aiohttp.FormData()
            form.add_field("data", json.dumps(mailbox(stato="evasa", extra=float("nan"))))
            async with session.post(url, data=form) as r:  # multipart, NaN in the field
                assert r.status == 400
    assert events == []
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert all("\n" not in r.getMessage() for r in caplog.records)  # no forged log line


async def test_bodies_over_the_limit_get_413() -> None:
    events, on_event = collector()
    small = json.dumps(mailbox()).encode()
    padded = json.dumps(mailbox(pad="x" * 2000)).encode()

    async def chunked(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 100):
            yield data[i : i + 100]

    async with receiver(on_event, max_body=1000) as url, aiohttp.ClientSession() as session:
        async with session.post(url, data=padded) as r:  # told by Content-Length
            assert r.status == 413
            assert "larger than 1000 bytes" in (await r.json())["message"]
        async with session.post(url, data=chunked(padded)) as r:  # no Content-Length
            assert r.status == 413
        form = aiohttp.FormData()
        form.add_field("data", small.decode())
        form.add_field("other", "y" * 2000, filename="big.bin")  # every part counts
        async with session.post(url, data=form) as r:
            assert r.status == 413
        async with session.post(url, data=small) as r:
            assert r.status == 200
    # the default limit holds even when the app's own allows more
    big = io.BytesIO(json.dumps(mailbox(pad="x" * MAX_BODY)).encode())
    async with (
        receiver(on_event, client_max_size=8 * MAX_BODY) as url,
        aiohttp.ClientSession() as session,
        session.post(url, data=big) as r,
    ):
        assert r.status == 413
    assert len(events) == 1
    assert CallbackTooLargeError(5).limit == 5
    assert pickle.loads(pickle.dumps(CallbackTooLargeError(5))).limit == 5


# -- compressed deliveries -------------------------------------------------------------------

BOMB = gzip.compress(bytes(10 * 1024 * 1024))  # 10 MiB of zeros in about 10 KiB


@asynccontextmanager
async def uninflating_receiver(on_event: OnEvent, **handler_kwargs: Any) -> AsyncIterator[str]:
    """``receiver`` served as the README advises: aiohttp's server told not to inflate
    request bodies itself (before 3.14 it inflates each network read whole, before the
    handler runs)."""
    app = web.Application()
    app.router.add_post("/pec-callback", handler(on_event, **handler_kwargs))
    async with serve_app(app, inflate=False) as url:
        yield f"{url}/pec-callback"


async def test_compressed_deliveries_get_415_and_never_reach_on_event() -> None:
    signer = CallbackSigner(KEY)
    events, on_event = collector()
    body = json.dumps(mailbox()).encode()
    async with receiver(on_event, verify=signer) as url, aiohttp.ClientSession() as session:
        signed = signer.url(url, ADDRESS)
        for encoding, data in (
            ("gzip", BOMB),
            ("deflate", zlib.compress(body)),  # small and valid: refused all the same
            ("GZIP", gzip.compress(body)),
            ("identity, gzip", gzip.compress(body)),
        ):
            headers = {"Content-Encoding": encoding, "Content-Type": "application/json"}
            async with session.post(signed, data=data, headers=headers) as r:
                assert r.status == 415, encoding
                assert r.headers["Accept-Encoding"] == "identity"  # what would be read
                answer = await r.json()
            assert answer == {
                "success": False,
                "message": f"the callback's body is encoded ({encoding.split(', ')[-1]!r}): "
                "only an uncompressed body is read",
            }
        two = CIMultiDict([("Content-Encoding", "identity"), ("Content-Encoding", "gzip")])
        async with session.post(signed, data=gzip.compress(body), headers=two) as r:
            assert r.status == 415  # the second header counts too
        async with session.post(url, data=BOMB, headers={"Content-Encoding": "gzip"}) as r:
            assert r.status == 403  # unsigned: refused as such, first
        for identity in ("identity", " Identity ", ""):
            headers = {"Content-Encoding": identity}
            async with session.post(signed, data=body, headers=headers) as r:
                assert r.status == 200, identity
    assert len(events) == 3


async def test_compressed_bodies_are_never_inflated() -> None:
    """With aiohttp not inflating either, any coding is refused before a byte is read:
    a body that is not even valid gzip gets 415, not the 400 inflating it would give, and
    one over max_body 415, not the 413 reading it would give."""
    events, on_event = collector()
    body = json.dumps(mailbox()).encode()
    assert len(body) < 1000 < len(BOMB)
    form = aiohttp.FormData({"data": body.decode()})
    async with (
        uninflating_receiver(on_event, max_body=1000) as url,
        aiohttp.ClientSession() as session,
    ):
        for encoding, data in (
            ("gzip", BOMB),
            ("gzip", b"not gzip at all"),
            ("br", os.urandom(64)),
            ("zstd", os.urandom(64)),
            ("x-gzip", gzip.compress(body)),
            ("y" * 1000, body),
            ("gzip", form),  # multipart: the whole body is compressed, not a part
        ):
            async with session.post(url, data=data, headers={"Content-Encoding": encoding}) as r:
                assert r.status == 415, encoding[:10]
                assert len((await r.json())["message"]) < 120  # a coding is shown cut short
        async with session.post(url, data=body) as r:
            assert r.status == 200
    assert len(events) == 1
    refused = pickle.loads(pickle.dumps(CallbackEncodingError("br")))
    assert isinstance(refused, CallbackEncodingError) and refused.encoding == "br"
    assert issubclass(CallbackEncodingError, CallbackError)  # a 4xx, like the others
