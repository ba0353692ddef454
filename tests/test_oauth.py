"""OAuth tokens: scopes, the renewing provider and its round trips, over real HTTP against the
PEC emulator and the OAuth emulator (``pecapi.testing.OAuthEmulator``)."""

from __future__ import annotations

import asyncio
import base64
import logging
import pickle
import socket
import traceback
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from pecapi import (
    AuthenticationError,
    ClientClosedError,
    ConfigurationError,
    NotAcceptableError,
    OAuthTokenProvider,
    PecClient,
    PecConnectionError,
    PermissionDeniedError,
    RenewableTokenProvider,
    ServerError,
    StaticToken,
    TokenProvider,
    all_pec_scopes,
    pec_scopes,
)
from pecapi.oauth import PEC_OPERATIONS
from pecapi.testing import Emulator, OAuthEmulator
from tests.conftest import make_registration, serve_app
from tests.leaks import secret_leaks

EMAIL = "owner@example.org"
KEY = "canary-API-KEY-5c1d0e77"
T0 = 1_700_000_000.0
SANDBOX = "test.pec.openapi.it"


@dataclass
class Env:
    emu: Emulator
    oauth: OAuthEmulator
    pec_url: str
    oauth_url: str

    def provider(self, **overrides: Any) -> OAuthTokenProvider:
        kwargs: dict[str, Any] = {
            "scopes": all_pec_scopes(sandbox=True),
            "sandbox": True,
            "base_url": self.oauth_url,
            "clock": self.emu.now,
            "ttl": 3600,
            "renew_before": 300,
        }
        kwargs.update(overrides)
        email = kwargs.pop("email", EMAIL)
        key = kwargs.pop("api_key", KEY)
        return OAuthTokenProvider(email, key, **kwargs)

    def client(self, provider: OAuthTokenProvider) -> PecClient:
        return PecClient(provider, sandbox=True, base_url=self.pec_url)


@asynccontextmanager
async def oauth_env(**emulator_kwargs: Any) -> AsyncIterator[Env]:
    emu = Emulator(tokens={}, **emulator_kwargs)  # no static token: only OAuth ones
    emu.set_time(T0)
    oauth = OAuthEmulator(emu, email=EMAIL, api_key=KEY)
    async with emu.serve() as pec, oauth.serve() as auth:
        yield Env(emu, oauth, pec.url, auth.url)


# -- scopes ------------------------------------------------------------------------------


def test_pec_scopes_from_operations_and_pairs() -> None:
    assert pec_scopes(
        "mailboxes.renew", "mailboxes.get", "mailboxes.register", ("get", "/pec"), sandbox=True
    ) == [f"GET:{SANDBOX}/pec", f"POST:{SANDBOX}/pec"]
    assert pec_scopes("comunica_pec.upload_documents", "domains.check", sandbox=False) == [
        "PATCH:pec.openapi.it/comunica_pec",
        "GET:pec.openapi.it/domini_pec",
    ]
    assert pec_scopes("mailboxes.is_available", ("*", "pec"), sandbox=True) == [
        f"GET:{SANDBOX}/verifica_pec",
        f"*:{SANDBOX}/pec",
    ]
    for bad in ("mailboxes.nope", ("GET", "pecx"), ("FETCH", "pec"), ("GET",), 3):
        with pytest.raises(ConfigurationError):
            pec_scopes(bad, sandbox=True)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        pec_scopes(sandbox=True)


def test_all_pec_scopes_match_every_operation_and_the_emulator() -> None:
    scopes = all_pec_scopes(sandbox=True)
    assert len(scopes) == len(set(scopes)) == 9
    needed = {f"{method}:{SANDBOX}/{segment}" for method, segment in PEC_OPERATIONS.values()}
    assert set(scopes) == needed
    # the emulator's routes need exactly these scopes: nothing missing, nothing extra
    assert set(scopes) == set(OAuthEmulator(Emulator()).pec_scopes)
    assert {s.replace(SANDBOX, "pec.openapi.it") for s in scopes} == set(
        all_pec_scopes(sandbox=False)
    )
    assert PEC_OPERATIONS["mailboxes.renew"] == ("GET", "pec")
    assert PEC_OPERATIONS["mailboxes.add_user"] == ("POST", "pec")


# -- the provider ------------------------------------------------------------------------


async def test_the_token_is_created_with_exactly_the_scopes_asked() -> None:
    async with (
        oauth_env() as env,
        env.provider(scopes=pec_scopes("mailboxes.list", sandbox=True)) as p,
    ):
        assert isinstance(p, TokenProvider)
        assert isinstance(p, RenewableTokenProvider)
        assert not isinstance(StaticToken("x"), RenewableTokenProvider)
        token = await p.get_token()
        assert [t.token for t in env.oauth.created] == [token]
        assert env.emu.tokens[token] == frozenset({f"GET:{SANDBOX}/pec"})
        assert env.oauth.created[0].ttl == 3600
        assert env.emu.token_expiry[token] == T0 + 3600
        assert p.expires_at == T0 + 3600
        assert await p.get_token() == token
        assert env.oauth.creations == 1


async def test_a_thousand_concurrent_first_calls_create_one_token() -> None:
    async with oauth_env() as env, env.provider() as p:
        tokens = await asyncio.gather(*(p.get_token() for _ in range(1000)))
        assert len(set(tokens)) == 1
        assert env.oauth.creations == 1
        assert env.oauth.requests == 1


async def test_a_cancelled_caller_does_not_cancel_the_shared_creation() -> None:
    async with oauth_env() as env, env.provider() as p:
        first = asyncio.ensure_future(p.get_token())
        await asyncio.sleep(0)  # let it start the creation
        second = asyncio.ensure_future(p.get_token())
        first.cancel()
        token = await second
        assert first.cancelled()
        assert env.oauth.created[0].token == token
        assert env.oauth.creations == 1


async def test_the_token_is_renewed_before_it_expires() -> None:
    async with oauth_env() as env, env.provider(ttl=3600, renew_before=300) as p:
        first = await p.get_token()
        env.emu.advance_time(3299)  # 301 s left: not yet
        assert await p.get_token() == first
        assert env.oauth.creations == 1
        env.emu.advance_time(2)  # 299 s left: renew now, while the old one still works
        second = await p.get_token()
        assert second != first
        assert env.oauth.creations == 2
        assert not env.emu.token_expired(first)
        assert p.expires_at == T0 + 3301 + 3600


async def test_an_expired_token_is_refused_by_the_api_and_replaced() -> None:
    async with oauth_env() as env, env.provider() as p:
        first = await p.get_token()
        env.emu.advance_time(3600)
        # the PEC emulator now refuses it...
        async with PecClient(first, sandbox=True, base_url=env.pec_url) as stale:
            with pytest.raises(AuthenticationError) as info:
                await stale.mailboxes.list()
        assert info.value.api_message == "Token expired"
        # ...and the provider creates another one
        second = await p.get_token()
        assert second != first
        async with env.client(p) as client:
            assert await client.mailboxes.list() == []
        assert env.oauth.creations == 2


async def test_token_rejected_drops_only_the_current_token_once() -> None:
    async with oauth_env() as env, env.provider() as p:
        first = await p.get_token()
        await p.token_rejected("not-the-current-token")
        assert await p.get_token() == first
        assert env.oauth.creations == 1

        await p.token_rejected(first)
        second = await p.get_token()
        assert second != first
        await p.token_rejected(first)  # a late 401 for the old token: nothing happens
        assert await p.get_token() == second
        assert env.oauth.creations == 2

        # a burst of 401s for the same token, then a burst of requests: one creation
        await asyncio.gather(*(p.token_rejected(second) for _ in range(200)))
        tokens = await asyncio.gather(*(p.get_token() for _ in range(200)))
        assert len(set(tokens)) == 1
        assert tokens[0] not in (first, second)
        assert env.oauth.creations == 3


async def test_a_revoked_token_is_renewed_and_the_request_retried_once() -> None:
    # Needs the pipeline's side: on a 401, token_rejected() then one retry with a new token.
    async with oauth_env() as env, env.provider() as p, env.client(p) as client:
        assert await client.mailboxes.list() == []
        first = env.oauth.created[0].token
        assert env.oauth.revoke(first)
        results = await asyncio.gather(*(client.mailboxes.list() for _ in range(20)))
        assert results == [[]] * 20
        assert env.oauth.creations == 2  # twenty 401s, one new token
        assert first not in env.emu.tokens
        statuses = [r.status for r in env.emu.requests if r.path == "/pec"]
        assert statuses.count(401) == 20
        assert statuses.count(404) == 21  # GET /pec of an empty account: 404/200 = []


async def test_a_request_refused_twice_is_an_authentication_error() -> None:
    # The account itself refuses the new token too: the retry happens once, not forever.
    async with oauth_env() as env, env.provider() as p, env.client(p) as client:
        await p.get_token()
        env.emu.token_expiry.update(dict.fromkeys(env.emu.tokens, T0))  # every token expired

        original_add = env.emu.add_token

        def add_expired(token: str, scopes: Any = None, *, expires: float | None = None) -> None:
            original_add(token, scopes, expires=T0)

        env.emu.add_token = add_expired  # type: ignore[method-assign]
        with pytest.raises(AuthenticationError):
            await client.mailboxes.list()
        assert env.oauth.creations == 2
        assert env.emu.count("GET", "/pec") == 2


async def test_a_missing_scope_is_a_403_and_no_renewal() -> None:
    scopes = pec_scopes("mailboxes.list", "mailboxes.get", sandbox=True)
    async with oauth_env() as env, env.provider(scopes=scopes) as p, env.client(p) as client:
        assert await client.mailboxes.list() == []
        with pytest.raises(PermissionDeniedError) as info:
            await client.mailboxes.register(make_registration())
        assert f"POST:{SANDBOX}/pec" in info.value.api_message
        assert env.oauth.creations == 1
        assert env.emu.mailboxes == {}


# -- errors of the OAuth service ---------------------------------------------------------


async def test_a_wrong_api_key_is_an_authentication_error() -> None:
    async with oauth_env() as env, env.provider(api_key="wrong-key") as p:
        with pytest.raises(AuthenticationError) as info:
            await p.get_token()
        assert info.value.status == 401
        assert "OAuth" in str(info.value)
        assert env.oauth.creations == 0


async def test_a_scope_the_service_refuses_is_not_acceptable() -> None:
    async with oauth_env() as env, env.provider(scopes=[f"GET:{SANDBOX}/nothing"]) as p:
        with pytest.raises(NotAcceptableError) as info:
            await p.get_token()
        assert info.value.code == 120
        assert env.oauth.creations == 0


async def test_a_failing_service_is_a_server_error_and_not_cached() -> None:
    async with oauth_env() as env, env.provider() as p:
        env.oauth.fail_next(503)
        with pytest.raises(ServerError):
            await p.get_token()
        assert await p.get_token()
        assert env.oauth.creations == 1


async def test_a_failed_renewal_keeps_the_still_valid_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with oauth_env() as env, env.provider(ttl=3600, renew_before=300) as p:
        first = await p.get_token()
        env.emu.advance_time(3400)
        env.oauth.fail_next(503)
        with caplog.at_level(logging.WARNING, logger="pecapi"):
            assert await p.get_token() == first
        assert "could not renew" in caplog.text
        assert await p.get_token() == first  # no new attempt right away
        assert env.oauth.requests == 2
        env.emu.advance_time(31)
        assert await p.get_token() != first
        assert env.oauth.creations == 2


async def test_an_unreachable_service_is_a_connection_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with OAuthTokenProvider(
        EMAIL,
        KEY,
        scopes=all_pec_scopes(sandbox=True),
        sandbox=True,
        base_url=f"http://127.0.0.1:{port}",
    ) as p:
        with pytest.raises(PecConnectionError) as info:
            await p.get_token()
        assert info.value.request_sent is False


# -- configuration -----------------------------------------------------------------------


async def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAPI_EMAIL", EMAIL)
    monkeypatch.setenv("OPENAPI_SANDBOX_API_KEY", KEY)
    monkeypatch.delenv("OPENAPI_API_KEY", raising=False)
    async with oauth_env() as env:
        async with OAuthTokenProvider(
            scopes=all_pec_scopes(sandbox=True), sandbox=True, base_url=env.oauth_url
        ) as p:
            assert await p.get_token() == env.oauth.created[0].token
        # production reads OPENAPI_API_KEY, which is not set
        with pytest.raises(ConfigurationError) as info:
            OAuthTokenProvider(scopes=all_pec_scopes(sandbox=False))
        assert "OPENAPI_API_KEY" in str(info.value)
    monkeypatch.delenv("OPENAPI_EMAIL")
    with pytest.raises(ConfigurationError, match="OPENAPI_EMAIL"):
        OAuthTokenProvider(scopes=all_pec_scopes(sandbox=True), sandbox=True)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"scopes": []}, "at least one scope"),
        ({"scopes": "GET:test.pec.openapi.it/pec"}, "not one string"),
        ({"scopes": ["GET:pec.openapi.it/pec"]}, "not for the sandbox"),
        ({"scopes": ["pec"]}, "is not a scope"),
        ({"ttl": 10}, "ttl"),
        ({"ttl": 3600, "renew_before": 3600}, "renew_before"),
        ({"base_url": "http://oauth.example.org"}, "plain http"),
        ({"base_url": "https://u:p@oauth.example.org"}, "credentials"),
        ({"api_key": ""}, "api_key"),
        ({"email": "a:b@example.org"}, "':'"),
    ],
)
def test_bad_configuration_is_refused(overrides: dict[str, Any], match: str) -> None:
    kwargs: dict[str, Any] = {
        "email": EMAIL,
        "api_key": KEY,
        "scopes": all_pec_scopes(sandbox=True),
        "sandbox": True,
    }
    kwargs.update(overrides)
    with pytest.raises(ConfigurationError, match=match) as info:
        OAuthTokenProvider(**kwargs)
    assert KEY not in str(info.value)


async def test_aclose_closes_only_its_own_session() -> None:
    async with oauth_env() as env, aiohttp.ClientSession() as session:
        shared = env.provider(session=session)
        await shared.get_token()
        await shared.aclose()
        assert not session.closed
        with pytest.raises(ClientClosedError):
            await shared.get_token()
        await shared.aclose()  # idempotent
        assert env.oauth.creations == 1


# -- secrets -----------------------------------------------------------------------------


async def test_the_api_key_and_tokens_never_show(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    basic = base64.b64encode(f"{EMAIL}:{KEY}".encode()).decode()
    texts: list[str] = []
    async with oauth_env() as env:
        async with env.provider() as p, env.client(p) as client:
            await client.mailboxes.list()
            env.oauth.revoke(env.oauth.created[0].token)
            await client.mailboxes.list()  # 401, renewal, retry: all logged at DEBUG
            texts += [repr(p), str(p), repr(client), repr(p._current), repr(p._basic)]
            env.oauth.fail_next(500)
            await p.token_rejected(await p.get_token())
            with pytest.raises(ServerError) as failed:
                await p.get_token()
            texts += ["".join(traceback.format_exception(failed.value)), repr(failed.value)]
            texts += [repr(failed.value.body), repr(failed.value.headers)]
            with pytest.raises(TypeError):
                pickle.dumps(p)
        wrong_key = env.provider(api_key=KEY + "-wrong")
        async with wrong_key:
            with pytest.raises(AuthenticationError) as denied:
                await wrong_key.get_token()
        texts += ["".join(traceback.format_exception(denied.value)), repr(wrong_key)]
        tokens = [t.token for t in env.oauth.created]
    texts += [record.getMessage() for record in caplog.records]
    texts.append(caplog.text)
    assert len(tokens) == 2
    assert any("POST" in r.getMessage() and "/token" in r.getMessage() for r in caplog.records)
    for text in texts:
        for secret in (KEY, basic, *tokens):
            assert secret not in text


async def test_a_non_json_error_of_the_service_is_not_quoted() -> None:
    """A gateway's page in front of the token service may hold a token under any name:
    the error tells its type and size only."""
    canary = "b4c0ffee5ecret0a1b2c3d4e5f60718"

    async def gateway(request: web.Request) -> web.Response:
        page = f"<html>upstream said {canary}</html>"
        return web.Response(status=502, text=page, content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", gateway)
    async with serve_app(app) as url:
        provider = OAuthTokenProvider(EMAIL, KEY, scopes=["GET:x/pec"], base_url=url)
        async with provider:
            with pytest.raises(ServerError) as info:
                await provider.get_token()
    assert info.value.status == 502
    assert "bytes of text/html, not shown" in str(info.value)
    assert secret_leaks(info.value, canary) == []
