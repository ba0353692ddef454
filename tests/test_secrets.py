"""Canaries: the token, the API key and the OAuth credential are unreachable from every
exception pecapi raises, as an error reporter would record it (message, attributes, the
whole ``__cause__``/``__context__`` chain, and the locals of every traceback frame), and
from every log record. Each failure is served over loopback: by the emulators, or by a
raw TCP server answering what no well-behaved server would."""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest

from pecapi import (
    ConfigurationError,
    OAuthTokenProvider,
    OutcomeUnknownError,
    PecClient,
    PecError,
    RetryPolicy,
    ScrubbedCause,
    TokenError,
    ValidationError,
    all_pec_scopes,
)
from pecapi.testing import Emulator, Fault, OAuthEmulator

from .conftest import FakeTime, make_registration
from .leaks import chain, secret_leaks

TOKEN = "canary-TOKEN-3b9f0c2a77"
EMAIL = "owner@example.org"
API_KEY = "canary-APIKEY-91d3e5f0aa"
CREDENTIAL = base64.b64encode(f"{EMAIL}:{API_KEY}".encode()).decode()
ISSUED = "canary-ISSUED-TOKEN-5e6f7a8b9c"  # a token the OAuth service answers with
CANARIES = (TOKEN, API_KEY, CREDENTIAL, ISSUED)

ONCE = RetryPolicy.never()

# What a server (or a gateway, or a proxy) can answer that no HTTP parser accepts.
BROKEN_ANSWERS = {
    "malformed status line": b"HTTP/1.1 two-hundred OK\r\nContent-Length: 2\r\n\r\n{}",
    "bad content-length": b"HTTP/1.1 200 OK\r\nContent-Length: twelve\r\n\r\n{}",
    "header garbage": b"HTTP/1.1 200 OK\r\nnot a header\x01\r\nContent-Length: 2\r\n\r\n{}",
    "truncated body": b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
    b'Content-Length: 500\r\n\r\n{"data": [',
    "dropped": b"",
}


@asynccontextmanager
async def raw_server(answer: bytes | None) -> AsyncIterator[str]:
    """A loopback server that reads a request and writes ``answer`` byte for byte, then
    closes (None: never answers)."""

    handlers: set[asyncio.Task[Any]] = set()

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        handlers.add(task)
        try:
            await reader.readuntil(b"\r\n\r\n")
            if answer is None:
                await asyncio.sleep(3600)
            writer.write(answer)
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            handlers.discard(task)

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        # Since Python 3.12.1 wait_closed() waits for every connection's handler: the
        # one that never answers would hold it for an hour.
        for handler in list(handlers):
            handler.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await server.wait_closed()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def caught(call: Callable[[], Awaitable[Any]]) -> PecError:
    with pytest.raises(PecError) as info:
        await call()
    # every case here is a failure of the exchange, never of the arguments
    assert not isinstance(info.value, (ValidationError, ConfigurationError)), info.value
    return info.value


def assert_clean(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    assert secret_leaks(error, *CANARIES) == []
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + repr(record.__dict__)
        assert not any(c in text for c in CANARIES), record.getMessage()


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


# -- the checker itself can fail -----------------------------------------------------------


def test_the_checker_finds_a_secret_in_frames_chains_and_attributes() -> None:
    # a frame of "library" code (not under tests/, whose frames the checker skips)
    library: dict[str, Any] = {}
    exec(compile("def leaky(headers):\n    raise ValueError('boom')\n", "<lib>", "exec"), library)
    leaky = library["leaky"]

    def wrapped() -> None:
        try:
            leaky({"Authorization": f"Bearer {TOKEN}"})
        except ValueError:
            raise PecError("wrapped") from None  # suppressed, yet still the __context__

    with pytest.raises(PecError) as info:
        wrapped()
    assert any("frame leaky local headers" in w for w in secret_leaks(info.value, TOKEN))
    holder = PecError("x")
    holder.body = {"nested": [f"key={API_KEY}"]}  # type: ignore[attr-defined]
    assert secret_leaks(holder, API_KEY)


# -- the PEC API client --------------------------------------------------------------------


@pytest.mark.parametrize("case", sorted(BROKEN_ANSWERS))
async def test_broken_http_answers_leak_nothing(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with raw_server(BROKEN_ANSWERS[case]) as url, PecClient(
        TOKEN, sandbox=True, base_url=url, retry=ONCE
    ) as client:  # fmt: skip
        read = await caught(client.mailboxes.list)
        write = await caught(lambda: client.mailboxes.renew("6489d7c8e4b0f1a2b3c4d5e6"))
    assert isinstance(write, OutcomeUnknownError)
    for error in (read, write):
        assert_clean(error, caplog)
        # aiohttp's exception is replaced by a scrubbed copy that still says what happened
        causes = [e for e in chain(error) if isinstance(e, ScrubbedCause)]
        assert causes and causes[0].type_name.startswith("aiohttp.")
        assert not any(type(e).__module__.startswith("aiohttp") for e in chain(error))


async def test_timeouts_and_refused_connections_leak_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with raw_server(None) as url, PecClient(
        TOKEN, sandbox=True, base_url=url, retry=ONCE, timeout=0.2
    ) as client:  # fmt: skip
        errors = [
            await caught(client.mailboxes.list),
            await caught(lambda: client.mailboxes.register(make_registration())),
        ]
    async with PecClient(
        TOKEN, sandbox=True, base_url=f"http://127.0.0.1:{closed_port()}", retry=ONCE
    ) as client:  # fmt: skip
        errors.append(await caught(client.mailboxes.list))
    for error in errors:
        assert_clean(error, caplog)


@pytest.mark.parametrize(
    "fault",
    [
        Fault.status(500),
        Fault.status(503),
        Fault.drop_before(),
        Fault.drop_after(),
        Fault.truncated_body(),
        Fault.malformed_json(),
        Fault.late(0.05, reply="504"),
    ],
    ids=["500", "503", "drop-before", "drop-after", "truncated", "malformed", "late-504"],
)
async def test_faults_of_the_emulator_leak_nothing(
    fault: Fault, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = Emulator(tokens={TOKEN: None})
    box_id = emulator.seed_mailbox("a@testcert.legalmail.it")
    emulator.faults.rate(1.0, fault)
    async with emulator.serve() as server, PecClient(
        TOKEN, sandbox=True, base_url=server.url, retry=ONCE
    ) as client:  # fmt: skip
        errors = [
            await caught(lambda: client.mailboxes.get(box_id)),
            await caught(lambda: client.mailboxes.renew(box_id)),
        ]
        emulator.faults.clear()
        await emulator.drain_late()
    for error in errors:
        assert_clean(error, caplog)


async def test_a_refused_token_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    emulator = Emulator(tokens={"some-other-token": None})
    async with emulator.serve() as server, PecClient(
        TOKEN, sandbox=True, base_url=server.url, retry=ONCE
    ) as client:  # fmt: skip
        errors = [
            await caught(client.mailboxes.list),
            await caught(lambda: client.mailboxes.register(make_registration())),
        ]
    for error in errors:
        assert error.status == 401  # type: ignore[attr-defined]
        assert_clean(error, caplog)


async def test_errors_of_a_settled_write_leak_nothing(caplog: pytest.LogCaptureFixture) -> None:
    emulator = Emulator(tokens={TOKEN: None})
    box_id = emulator.seed_mailbox("a@testcert.legalmail.it")
    emulator.faults.once(Fault.status(502), path="/pec/*/rinnovo")
    time = FakeTime()  # the deadline ends inside the settle window
    policy = RetryPolicy(sleep=time.sleep, clock=time.clock, settle=60, deadline=10)
    async with emulator.serve() as server, PecClient(
        TOKEN, sandbox=True, base_url=server.url, retry=policy
    ) as client:  # fmt: skip
        error = await caught(lambda: client.mailboxes.renew(box_id))
    assert isinstance(error, OutcomeUnknownError) and error.pending is not None
    assert_clean(error, caplog)


def test_bad_arguments_next_to_a_token_leak_nothing(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Callable[[], object]] = [
        lambda: PecClient(TOKEN + " with a space"),
        lambda: PecClient(TOKEN, base_url="ftp://example.org"),
        lambda: PecClient(TOKEN, max_in_flight=0),
        lambda: PecClient(TOKEN, session="not a session"),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(ConfigurationError) as info:
            call()
        assert_clean(info.value, caplog)


# -- the OAuth provider ---------------------------------------------------------------------


def _provider(url: str, **kwargs: Any) -> OAuthTokenProvider:
    return OAuthTokenProvider(
        EMAIL, API_KEY, scopes=all_pec_scopes(sandbox=True), sandbox=True, base_url=url, **kwargs
    )


def _http(status: str, body: bytes, length: int | None = None) -> bytes:
    size = len(body) if length is None else length
    head = f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {size}"
    return head.encode() + b"\r\n\r\n" + body


_ISSUED_JSON = b'{"token": "' + ISSUED.encode() + b'"'
TOKEN_ANSWERS = {
    **BROKEN_ANSWERS,
    "cut in the token": _http("200 OK", _ISSUED_JSON[:-6], length=300),
    "token in invalid JSON": _http("200 OK", _ISSUED_JSON + b",,}"),
    "token in nested JSON": _http("200 OK", b"[" * 50_000 + _ISSUED_JSON + b"]" * 50_000),
    "token beside an error": _http("500 Oops", _ISSUED_JSON + b', "success": false}'),
    "token after the body": _http("200 OK", b"{}", length=2) + _ISSUED_JSON,
    "token in a status line": b"HTTP/1.1 " + _ISSUED_JSON + b"\r\n\r\n",
}


@pytest.mark.parametrize("case", sorted(TOKEN_ANSWERS))
async def test_broken_token_service_answers_leak_nothing(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with raw_server(TOKEN_ANSWERS[case]) as url:
        async with _provider(url) as provider:
            direct = await caught(provider.get_token)
        emulator = Emulator(tokens={})
        async with _provider(url) as provider, emulator.serve() as server, PecClient(
            provider, sandbox=True, base_url=server.url, retry=ONCE
        ) as client:  # fmt: skip
            through = await caught(lambda: client.mailboxes.renew("6489d7c8e4b0f1a2b3c4d5e6"))
    assert isinstance(through, TokenError)
    for error in (direct, through):
        assert_clean(error, caplog)


async def test_token_service_refusals_and_timeouts_leak_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator = Emulator(tokens={})
    oauth = OAuthEmulator(emulator, email=EMAIL, api_key=API_KEY + "-not-this-one")
    errors = []
    async with oauth.serve() as auth, _provider(auth.url) as provider:
        errors.append(await caught(provider.get_token))  # 401
    oauth = OAuthEmulator(emulator, email=EMAIL, api_key=API_KEY)
    oauth.fail_next(503, times=2)
    async with oauth.serve() as auth, _provider(auth.url) as provider:
        errors.append(await caught(provider.get_token))  # 503
    async with raw_server(None) as url, _provider(url, timeout=0.2) as provider:
        errors.append(await caught(provider.get_token))
    async with _provider(f"http://127.0.0.1:{closed_port()}") as provider:
        errors.append(await caught(provider.get_token))
    for error in errors:
        assert_clean(error, caplog)


async def test_a_revoked_oauth_token_leaks_nothing(caplog: pytest.LogCaptureFixture) -> None:
    emulator = Emulator(tokens={})
    oauth = OAuthEmulator(emulator, email=EMAIL, api_key=API_KEY)
    async with oauth.serve() as auth, emulator.serve() as server, _provider(
        auth.url
    ) as provider, PecClient(
        provider, sandbox=True, base_url=server.url, retry=ONCE
    ) as client:  # fmt: skip
        await client.mailboxes.list()
        issued = oauth.created[0].token
        oauth.revoke(issued)
        oauth.fail_next(401, times=1)  # and the new token cannot be had
        error = await caught(client.mailboxes.list)
    assert secret_leaks(error, issued) == []
    assert_clean(error, caplog)


def test_bad_provider_arguments_leak_nothing(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[Callable[[], object]] = [
        lambda: _provider("https://oauth.example.org", ttl=5),
        lambda: _provider("ftp://oauth.example.org"),
        lambda: _provider("https://oauth.example.org", renew_before=-1),
        lambda: OAuthTokenProvider(EMAIL, API_KEY + "\x00", scopes=["GET:x/pec"]),
        lambda: OAuthTokenProvider(EMAIL, API_KEY, scopes="GET:pec.openapi.it/pec"),
        lambda: OAuthTokenProvider(EMAIL, API_KEY, scopes=[]),
    ]
    for call in calls:
        with pytest.raises(ConfigurationError) as info:
            call()
        assert_clean(info.value, caplog)


async def test_the_scrubbed_cause_keeps_what_is_needed_to_debug() -> None:
    async with raw_server(BROKEN_ANSWERS["malformed status line"]) as url, PecClient(
        TOKEN, sandbox=True, base_url=url, retry=ONCE
    ) as client:  # fmt: skip
        error = await caught(client.mailboxes.list)
    cause = error.__cause__
    assert isinstance(cause, ScrubbedCause)
    assert cause.type_name == "aiohttp.client_exceptions.ClientResponseError"
    assert "two-hundred" in cause.message or "status" in cause.message.lower()
    assert cause.__traceback__ is None and cause.__cause__ is None
    assert error.__context__ is None or not isinstance(error.__context__, aiohttp.ClientError)


class _Failing:
    """A provider of the user's that fails, its frames and message holding the token."""

    def __init__(self, where: str) -> None:
        self.where = where

    async def get_token(self) -> str:
        token = TOKEN
        if self.where == "get_token":
            raise RuntimeError(f"cannot refresh {token}")
        return token

    async def token_rejected(self, token: str) -> None:
        raise RuntimeError(f"cannot renew {token}")


@pytest.mark.parametrize("where", ["get_token", "token_rejected"])
async def test_a_failing_token_provider_of_the_users_leaks_nothing(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = Emulator(tokens={"some-other-token": None})  # TOKEN is refused: 401
    async with emulator.serve() as server, PecClient(
        _Failing(where), sandbox=True, base_url=server.url, retry=ONCE
    ) as client:  # fmt: skip
        errors = [
            await caught(client.mailboxes.list),
            await caught(lambda: client.mailboxes.register(make_registration())),
        ]
    for error in errors:
        assert isinstance(error, TokenError)
        assert isinstance(error.cause, ScrubbedCause) and error.cause.type_name.endswith("Error")
        assert_clean(error, caplog)
