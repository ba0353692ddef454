"""The token service through the one request pipeline (``pecapi.oauth_service``): its
endpoints on a second base URL, HTTP Basic credentials or a per-call bearer, the
pipeline's transport errors, retries, throttle and User-Agent, and the OAuth error rules.
Over loopback: the OAuth emulator, or a small server answering what a test needs."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from pecapi import (
    AuthenticationError,
    OAuthTokenProvider,
    PecApiError,
    PecClient,
    PecConnectionError,
    PecTimeoutError,
    RateLimitError,
    ResponseDecodeError,
    RetryPolicy,
    ServerError,
    Timeout,
    all_pec_scopes,
)
from pecapi._version import __version__
from pecapi.oauth_service import ONE_ATTEMPT, TokenService, UnusableAnswer
from pecapi.secret import Secret
from pecapi.testing import Emulator, OAuthEmulator
from pecapi.transport.auth import basic_auth, bearer_auth
from pecapi.transport.endpoint import Effect, Endpoint, Reply
from pecapi.transport.extras import USER_AGENT
from tests.conftest import FakeTime, no_sleep, serve_app, wait_until

EMAIL = "owner@example.org"
KEY = "canary-KEY-0f1e2d3c"
BASIC = "Basic " + base64.b64encode(f"{EMAIL}:{KEY}".encode()).decode()

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _data(reply: Reply) -> Any:
    return reply.data


LIST = Endpoint(name="test.list", method="GET", path="/token", effect=Effect.READ, decode=_data)
REFRESH = Endpoint(
    name="test.refresh", method="PATCH", path="/tokens/{id}", effect=Effect.READ, decode=_data
)


@dataclass
class Recorder:
    """What the server saw: every request's method, path, headers and body."""

    seen: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)

    @property
    def count(self) -> int:
        return len(self.seen)

    def header(self, name: str, index: int = -1) -> str | None:
        return self.seen[index][2].get(name)


def reply(status: int, payload: Any, **headers: str) -> Handler:
    async def answer(request: web.Request) -> web.Response:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        return web.Response(
            status=status, text=text, content_type="application/json", headers=headers
        )

    return answer


@asynccontextmanager
async def server(*answers: Handler) -> AsyncIterator[tuple[str, Recorder]]:
    """Answers the n-th request with ``answers[n]`` (the last one from then on)."""
    recorder = Recorder()

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        recorder.seen.append((request.method, request.raw_path, dict(request.headers), body))
        return await answers[min(recorder.count, len(answers)) - 1](request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    async with serve_app(app) as url:
        yield url, recorder


def service(url: str, **kwargs: Any) -> TokenService:
    kwargs.setdefault("retry", RetryPolicy(sleep=no_sleep))
    return TokenService(
        URL(url),
        basic_auth(EMAIL, Secret(KEY)),
        owner="TestService",
        timeout=Timeout(total=5, connect=1),
        **kwargs,
    )


OK = reply(200, {"success": True, "message": "", "error": None, "data": [1, 2]})


# -- sending -------------------------------------------------------------------------------


async def test_basic_credentials_the_user_agent_and_a_bearer_for_one_call() -> None:
    async with server(OK) as (url, seen):
        tokens = service(url)
        try:
            assert await tokens.call(LIST) == {
                "success": True,
                "message": "",
                "error": None,
                "data": [1, 2],
            }
            await tokens.call(REFRESH, params={"id": "t/1"}, json={"ttl": 60},
                              auth=bearer_auth(Secret("refresh-9")))  # fmt: skip
            await tokens.call(LIST)
        finally:
            await tokens.aclose()
    assert [(m, p) for m, p, _, _ in seen.seen] == [
        ("GET", "/token"),
        ("PATCH", "/tokens/t%2F1"),  # a path parameter never changes the path
        ("GET", "/token"),
    ]
    assert [seen.header("Authorization", i) for i in range(3)] == [BASIC, "Bearer refresh-9", BASIC]
    assert seen.seen[1][3] == b'{"ttl":60}'
    assert seen.header("Content-Type", 1) == "application/json"
    assert seen.header("Accept") == "application/json"
    assert seen.header("User-Agent") == USER_AGENT
    assert f"pecapi/{__version__} " in USER_AGENT


async def test_the_pec_api_and_the_token_service_get_the_same_user_agent() -> None:
    issued = reply(200, {"token": "tok-1", "expire": 4_000_000_000, "success": True})
    empty = reply(200, {"success": True, "message": "", "error": None, "data": []})
    async with server(issued) as (auth, oauth), server(empty) as (pec, api):
        provider = OAuthTokenProvider(
            EMAIL, KEY, scopes=all_pec_scopes(sandbox=True), sandbox=True, base_url=auth
        )
        async with provider, PecClient(provider, sandbox=True, base_url=pec) as client:
            assert await client.mailboxes.list() == []
    assert (oauth.count, api.count) == (1, 1)
    assert oauth.header("User-Agent") == api.header("User-Agent") == USER_AGENT
    assert api.header("Authorization") == "Bearer tok-1"
    assert oauth.header("Authorization") == BASIC


# -- retries -------------------------------------------------------------------------------


async def test_a_read_is_retried_and_retry_after_obeyed() -> None:
    time = FakeTime()
    policy = RetryPolicy(sleep=time.sleep, clock=time.clock)
    answers = (reply(503, {"success": False}), reply(429, {}, **{"Retry-After": "7"}), OK)
    async with server(*answers) as (url, seen):
        tokens = service(url, retry=policy)
        try:
            assert (await tokens.call(LIST))["data"] == [1, 2]
        finally:
            await tokens.aclose()
    assert seen.count == 3
    assert time.waits[1] == 7


@pytest.mark.parametrize("status", [400, 401, 403, 404, 406, 422])
async def test_a_4xx_is_never_retried(status: int) -> None:
    async with server(reply(status, {"success": False, "message": "no", "error": 7})) as (
        url,
        seen,
    ):
        tokens = service(url)
        try:
            with pytest.raises(PecApiError) as info:
                await tokens.call(LIST)
        finally:
            await tokens.aclose()
    assert seen.count == 1
    assert info.value.status == status
    assert "the OAuth service refused GET /token: no" in str(info.value)


async def test_one_attempt_means_one_request_and_no_outcome_to_settle() -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()  # sent, and no answer
        return web.Response()

    for answer in (reply(503, {}), drop):
        async with server(answer) as (url, seen):
            tokens = service(url)
            try:
                with pytest.raises((ServerError, PecConnectionError)) as info:
                    await tokens.call(LIST, retry=ONE_ATTEMPT)
            finally:
                await tokens.aclose()
        assert seen.count == 1
        assert getattr(info.value, "request_sent", True) is True


async def test_a_connect_timeout_says_nothing_was_sent() -> None:
    # A listening socket whose accept queue is full: the kernel drops the next SYNs, so
    # the connection can never open.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        try:
            for filler in fillers:
                filler.setblocking(False)
                with suppress(BlockingIOError):
                    filler.connect(("127.0.0.1", port))
            provider = OAuthTokenProvider(
                EMAIL, KEY, scopes=all_pec_scopes(sandbox=True), sandbox=True,
                base_url=f"http://127.0.0.1:{port}", timeout=Timeout(total=5, connect=0.3),
            )  # fmt: skip
            async with provider:
                with pytest.raises(PecTimeoutError) as info:
                    await provider.get_token()
        finally:
            for filler in fillers:
                filler.close()
    assert info.value.request_sent is False
    assert str(info.value).startswith("OAuth service: timed out opening the connection")


async def test_at_most_eight_requests_at_once() -> None:
    gate = asyncio.Event()
    in_flight = [0, 0]  # now, most

    async def held(request: web.Request) -> web.StreamResponse:
        in_flight[0] += 1
        in_flight[1] = max(in_flight)
        await gate.wait()
        in_flight[0] -= 1
        return await OK(request)

    async with server(held) as (url, seen):
        tokens = service(url)
        try:
            calls = asyncio.gather(*(tokens.call(LIST) for _ in range(20)))
            await wait_until(lambda: in_flight[0] == 8)
            assert tokens.pipeline.throttle.in_flight == 8
            gate.set()
            await calls
        finally:
            await tokens.aclose()
    assert seen.count == 20
    assert in_flight[1] == 8


# -- answers -------------------------------------------------------------------------------


async def test_decode_sees_the_whole_answer_or_none_and_refusals_are_not_quoted() -> None:
    canary = "tok-5a5a5a5a5a"

    def picky(reply: Reply) -> Any:
        if reply.data is None:
            return "empty"
        if "refuse" in reply.data:
            raise UnusableAnswer("has no usable token")
        return int(reply.data["token"])  # ValueError quoting the token

    endpoint = Endpoint(
        name="test.picky", method="GET", path="/t", effect=Effect.READ, decode=picky
    )
    answers = (
        reply(204, ""),
        reply(200, {"refuse": canary}),
        reply(200, {"token": canary}),
        reply(200, f"<html>{canary}</html>"),
    )
    async with server(*answers) as (url, _):
        tokens = service(url, retry=ONE_ATTEMPT)
        try:
            assert await tokens.call(endpoint) == "empty"
            errors = []
            for _ in range(3):
                with pytest.raises(ResponseDecodeError) as info:
                    await tokens.call(endpoint)
                errors.append(info.value)
        finally:
            await tokens.aclose()
    assert [str(e).split(" [")[0] for e in errors] == [
        "the OAuth service's answer has no usable token",
        "the OAuth service's answer is not what GET /t answers (ValueError)",
        "the OAuth service answered something that is not JSON",
    ]
    for error in errors:
        assert canary not in repr(error) and error.body is None


async def test_an_error_keeps_the_envelope_only_and_429_its_retry_after() -> None:
    payload = {"success": False, "message": "slow down", "error": "42", "token": "tok-77"}
    async with server(reply(429, payload, **{"Retry-After": "120"})) as (url, _):
        tokens = service(url)
        try:
            with pytest.raises(RateLimitError) as info:
                await tokens.call(LIST)
        finally:
            await tokens.aclose()
    assert info.value.retry_after == 120
    assert info.value.code == 42
    assert info.value.body == {"success": False, "message": "slow down", "error": "42"}
    assert "tok-77" not in repr(info.value)


async def test_a_wrong_key_is_final_even_with_a_renewing_policy() -> None:
    emu = Emulator(tokens={})
    oauth = OAuthEmulator(emu, email=EMAIL, api_key="another-key")
    async with oauth.serve() as running:
        tokens = service(running.url)
        try:
            with pytest.raises(AuthenticationError):
                await tokens.call(LIST)
        finally:
            await tokens.aclose()
