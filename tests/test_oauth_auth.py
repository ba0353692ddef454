"""The auth seam (``pecapi.transport.auth``): what a pipeline sends as ``Authorization``
(Bearer from a token provider, HTTP Basic, a per-call bearer such as a refresh token),
and canaries for the new paths: no credential in a repr, an error, its chain, the locals
of its frames, or a log record."""

from __future__ import annotations

import base64
import logging
import pickle
from typing import Any

import pytest
from aiohttp import web
from yarl import URL

from pecapi import (
    ConfigurationError,
    OAuthTokenProvider,
    PecClient,
    PecError,
    RetryPolicy,
    StaticToken,
    Timeout,
    TokenError,
    all_pec_scopes,
    with_raw_response,
)
from pecapi.oauth_service import TokenService
from pecapi.secret import Secret
from pecapi.testing import DEFAULT_TOKEN, Emulator, Fault, OAuthEmulator
from pecapi.transport.auth import BearerAuth, StaticAuth, basic_auth, bearer_auth
from pecapi.transport.endpoint import Effect, Endpoint, Reply
from pecapi.transport.pipeline import Pipeline
from tests.conftest import FakeTime, no_sleep
from tests.leaks import secret_leaks
from tests.test_oauth_service import reply, server
from tests.test_secrets import BROKEN_ANSWERS, raw_server

EMAIL = "owner@example.org"
KEY = "canary-APIKEY-7d6c5b4a"
CREDENTIAL = base64.b64encode(f"{EMAIL}:{KEY}".encode()).decode()
REFRESH = "canary-REFRESH-1a2b3c4d5e"
CANARIES = (KEY, CREDENTIAL, REFRESH)


def _data(reply: Reply) -> Any:
    return reply.data


PATCH = Endpoint(
    name="test.refresh", method="PATCH", path="/tokens/{id}", effect=Effect.READ, decode=_data
)


def service(url: str, policy: RetryPolicy | None = None) -> TokenService:
    return TokenService(
        URL(url),
        basic_auth(EMAIL, Secret(KEY)),
        owner="TestService",
        timeout=Timeout(total=2, connect=1),
        retry=policy or RetryPolicy.never(),
    )


def assert_clean(error: BaseException, caplog: pytest.LogCaptureFixture) -> None:
    assert secret_leaks(error, *CANARIES) == []
    for record in caplog.records:
        text = record.getMessage() + repr(record.args) + repr(record.__dict__)
        assert not any(c in text for c in CANARIES), record.getMessage()


@pytest.fixture(autouse=True)
def _debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


# -- the Auth objects ------------------------------------------------------------------------


async def test_the_authorization_values() -> None:
    basic = basic_auth(EMAIL, Secret(KEY))
    assert (await basic.authorization()).reveal() == f"Basic {CREDENTIAL}"
    assert await basic.refused(await basic.authorization()) is False
    refresh = bearer_auth(Secret(REFRESH))
    assert (await refresh.authorization()).reveal() == f"Bearer {REFRESH}"
    static = bearer_auth(StaticToken(REFRESH))
    assert isinstance(static, StaticAuth)  # the header is built once
    assert (await static.authorization()).reveal() == f"Bearer {REFRESH}"
    provider = OAuthTokenProvider(EMAIL, KEY, scopes=all_pec_scopes(sandbox=True), sandbox=True)
    assert isinstance(bearer_auth(provider), BearerAuth)
    for auth in (basic, refresh, static, bearer_auth(provider)):
        assert not any(c in repr(auth) + str(auth) for c in CANARIES)
    for auth in (basic, refresh):
        with pytest.raises(TypeError):
            pickle.dumps(auth)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: basic_auth("a:b", Secret(KEY)), "':'"),
        (lambda: basic_auth("", Secret(KEY)), "non-empty"),
        (lambda: basic_auth(EMAIL, Secret("")), "non-empty"),
        (lambda: basic_auth(EMAIL, Secret(KEY + "\n")), "control characters"),
        (lambda: basic_auth(EMAIL + ":", KEY), "':'"),  # a plain key: wrapped first
        (lambda: bearer_auth(Secret(REFRESH + " x")), "whitespace"),
        (lambda: bearer_auth(REFRESH + "\t"), "whitespace"),
        (lambda: bearer_auth(3), "not int"),  # type: ignore[arg-type]
        (lambda: StaticAuth(3), "must be a string"),  # type: ignore[arg-type]
        (lambda: Pipeline(base_url=URL("http://127.0.0.1")), "exactly one"),
        (
            lambda: Pipeline(
                base_url=URL("http://127.0.0.1"),
                token=StaticToken("t"),
                auth=bearer_auth(Secret("t")),
            ),
            "exactly one",
        ),
    ],
)
def test_bad_credentials_are_refused_without_being_quoted(make: Any, match: str) -> None:
    with pytest.raises(ConfigurationError, match=match) as info:
        make()
    assert secret_leaks(info.value, *CANARIES) == []


# -- the PEC pipeline's Bearer -----------------------------------------------------------------


class _Bytes:
    """A provider of the user's that hands out bytes, not a string."""

    async def get_token(self) -> bytes:
        return REFRESH.encode()


async def test_a_provider_that_returns_no_string_is_a_token_error_and_nothing_is_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator = Emulator()
    async with emulator.serve() as running, PecClient(
        _Bytes(),  # type: ignore[arg-type]
        sandbox=True,
        base_url=running.url,
        retry=RetryPolicy.never(),
    ) as client:  # fmt: skip
        with pytest.raises(TokenError) as info:
            await client.mailboxes.list()
    assert "nothing was sent" in str(info.value)
    assert emulator.requests == []
    assert_clean(info.value, caplog)


async def test_the_shared_token_creation_is_no_answer_of_its_first_caller() -> None:
    emu = Emulator(tokens={})
    oauth = OAuthEmulator(emu, email=EMAIL, api_key=KEY)
    async with emu.serve() as pec, oauth.serve() as auth:
        provider = OAuthTokenProvider(
            EMAIL, KEY, scopes=all_pec_scopes(sandbox=True), sandbox=True, base_url=auth.url
        )
        async with provider, PecClient(provider, sandbox=True, base_url=pec.url) as client:
            raw = await with_raw_response(client.mailboxes.list())
    assert oauth.creations == 1
    assert [r.operation for r in raw.responses] == ["mailboxes.list"]


async def test_a_static_token_still_gets_one_attempt_on_a_401() -> None:
    emulator = Emulator(tokens={"another": None})
    async with emulator.serve() as running, PecClient(
        DEFAULT_TOKEN, sandbox=True, base_url=running.url, retry=RetryPolicy.never()
    ) as client:  # fmt: skip
        with pytest.raises(PecError) as info:
            await client.mailboxes.list()
    assert getattr(info.value, "status", None) == 401
    assert emulator.count("GET", "/pec") == 1


# -- a refresh token as Bearer, for one call ------------------------------------------------------


async def test_the_per_call_bearer_is_sent_by_every_attempt_and_only_by_that_call() -> None:
    policy = RetryPolicy(sleep=no_sleep)
    answers = (reply(503, {}), reply(200, {"token": "t", "success": True}))
    async with server(*answers) as (url, seen):
        tokens = service(url, policy)
        try:
            await tokens.call(PATCH, params={"id": "1"}, auth=bearer_auth(Secret(REFRESH)))
            await tokens.call(PATCH, params={"id": "1"})
        finally:
            await tokens.aclose()
    authorizations = [seen.header("Authorization", i) for i in range(seen.count)]
    assert authorizations == [f"Bearer {REFRESH}"] * 2 + [f"Basic {CREDENTIAL}"]


@pytest.mark.parametrize(
    "status", [401, 422, 500], ids=["refused", "unprocessable", "server-error"]
)
async def test_refusals_of_a_refresh_leak_nothing(
    status: int, caplog: pytest.LogCaptureFixture
) -> None:
    echoed = {"success": False, "message": "refused", "error": status, "refreshToken": REFRESH}

    async def page(request: web.Request) -> web.Response:
        text = f"<html>{request.headers.get('Authorization')} {REFRESH}</html>"
        return web.Response(status=status, text=text, content_type="text/html")

    errors = []
    for answer in (reply(status, echoed), page):
        async with server(answer) as (url, _):
            tokens = service(url)
            try:
                with pytest.raises(PecError) as info:
                    await tokens.call(PATCH, params={"id": "1"}, auth=bearer_auth(Secret(REFRESH)))
            finally:
                await tokens.aclose()
        errors.append(info.value)
    assert errors[0].body == {"success": False, "message": "refused", "error": status}  # type: ignore[attr-defined]
    assert "not shown" in str(errors[1])
    for error in errors:
        assert_clean(error, caplog)


@pytest.mark.parametrize("case", sorted(BROKEN_ANSWERS))
async def test_broken_answers_to_a_refresh_leak_nothing(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with raw_server(BROKEN_ANSWERS[case]) as url:
        tokens = service(url)
        try:
            with pytest.raises(PecError) as info:
                await tokens.call(PATCH, params={"id": "1"}, auth=bearer_auth(Secret(REFRESH)))
        finally:
            await tokens.aclose()
    assert str(info.value).startswith("OAuth service") or "OAuth service" in str(info.value)
    assert_clean(info.value, caplog)


async def test_a_429_of_the_token_service_is_waited_out_as_it_asks() -> None:
    """The PEC call that needed the token retries after the service's own Retry-After,
    not after its backoff (the TokenError carries the service's RateLimitError)."""
    time = FakeTime()
    emu = Emulator(tokens={})
    oauth = OAuthEmulator(emu, email=EMAIL, api_key=KEY)
    oauth.faults.once(Fault.status(429, retry_after=9), method="POST", path="/token")
    policy = RetryPolicy(sleep=time.sleep, clock=time.clock, backoff=0.5, backoff_max=20)
    async with emu.serve() as pec, oauth.serve() as auth:
        provider = OAuthTokenProvider(
            EMAIL, KEY, scopes=all_pec_scopes(sandbox=True), sandbox=True, base_url=auth.url
        )
        async with (
            provider,
            PecClient(provider, sandbox=True, base_url=pec.url, retry=policy) as client,
        ):
            assert await client.mailboxes.list() == []
    assert time.waits == [9]
    assert oauth.creations == 1
