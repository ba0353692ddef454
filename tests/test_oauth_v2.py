"""OAuth v2 tokens: the renewing provider (creation, refresh, refused refresh, revocation,
concurrency) and the choice of the service version, over real HTTP against the PEC
emulator and the OAuth v2 emulator (``pecapi.testing.OAuthV2Emulator``)."""

from __future__ import annotations

import asyncio
import logging
import pickle
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from pecapi import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    OAuthTokenProvider,
    OAuthV2TokenProvider,
    PecClient,
    PecConnectionError,
    RenewableTokenProvider,
    ServerError,
    StaticToken,
    Timeout,
    TokenProvider,
    UnexpectedStatusError,
    all_pec_scopes,
    oauth_provider,
    pec_scopes,
)
from pecapi.testing import Emulator, Fault, OAuthV2Emulator

EMAIL = "owner@example.org"
KEY = "canary-V2-API-KEY-7e3a91c4"
T0 = 1_700_000_000.0
TTL = 3600
RENEW_BEFORE = 300


@dataclass
class Env:
    emu: Emulator
    oauth: OAuthV2Emulator
    pec_url: str
    oauth_url: str

    def provider(self, **overrides: Any) -> OAuthV2TokenProvider:
        kwargs: dict[str, Any] = {
            "scopes": all_pec_scopes(sandbox=True),
            "sandbox": True,
            "base_url": self.oauth_url,
            "clock": self.emu.now,
            "ttl": TTL,
            "renew_before": RENEW_BEFORE,
        }
        kwargs.update(overrides)
        email = kwargs.pop("email", EMAIL)
        key = kwargs.pop("api_key", KEY)
        return OAuthV2TokenProvider(email, key, **kwargs)

    def client(self, provider: TokenProvider) -> PecClient:
        return PecClient(provider, sandbox=True, base_url=self.pec_url)

    def to_renewal(self) -> None:
        """Past the point where the provider renews (still before expiry)."""
        self.emu.advance_time(TTL - RENEW_BEFORE + 1)


@asynccontextmanager
async def oauth_env(**oauth_kwargs: Any) -> AsyncIterator[Env]:
    emu = Emulator(tokens={})  # no static token: only the ones the service issues work
    emu.set_time(T0)
    oauth = OAuthV2Emulator(emu, email=EMAIL, api_key=KEY, **oauth_kwargs)
    async with emu.serve() as pec, oauth.serve() as auth:
        yield Env(emu, oauth, pec.url, auth.url)


# -- creation --------------------------------------------------------------------------------


@pytest.mark.parametrize("bare", [False, True], ids=["data", "bare-TokenDetail"])
async def test_the_token_is_created_with_exactly_the_scopes_asked(bare: bool) -> None:
    scopes = pec_scopes("mailboxes.list", "domains.check", sandbox=True)
    async with oauth_env(bare_token_answers=bare) as env:
        async with env.provider(scopes=scopes) as p, env.client(p) as client:
            assert isinstance(p, RenewableTokenProvider)
            assert await client.mailboxes.list() == []
            assert p.scopes == tuple(scopes)
            [issued] = env.oauth.issued
            assert issued.scopes == tuple(scopes)
            assert issued.origin == "created"
            assert issued.name == "pecapi"
            assert issued.ttl == TTL
            assert env.emu.tokens[issued.token] == frozenset(scopes)
            assert p.expires_at == issued.expire_at == T0 + TTL
            assert await p.get_token() == issued.token
        assert env.oauth.count("POST", "/tokens") == 1


async def test_a_thousand_concurrent_first_calls_create_one_token() -> None:
    async with oauth_env() as env:
        env.oauth.faults.once(Fault.latency(0.3), method="POST", path="/tokens")
        async with env.provider() as p:
            tokens = await asyncio.gather(*(p.get_token() for _ in range(1000)))
        assert len(set(tokens)) == 1
        assert env.oauth.creations == 1
        assert env.oauth.count("POST", "/tokens") == 1


async def test_a_thousand_concurrent_renewals_send_one_patch() -> None:
    async with oauth_env() as env, env.provider() as p:
        first = await p.get_token()
        env.to_renewal()
        env.oauth.faults.once(Fault.latency(0.3), method="PATCH", path="/tokens/*")
        tokens = await asyncio.gather(*(p.get_token() for _ in range(1000)))
        assert len(set(tokens)) == 1 and tokens[0] != first
        assert env.oauth.count("PATCH", "/tokens/*") == 1
        assert (env.oauth.creations, env.oauth.renewals) == (1, 1)


async def test_a_cancelled_caller_does_not_cancel_the_shared_creation() -> None:
    async with oauth_env() as env:
        env.oauth.faults.once(Fault.latency(0.3), method="POST", path="/tokens")
        async with env.provider() as p:
            first = asyncio.ensure_future(p.get_token())
            second = asyncio.ensure_future(p.get_token())
            await asyncio.sleep(0.05)
            first.cancel()
            token = await second
            assert first.cancelled()
            assert token == env.oauth.issued[0].token
        assert env.oauth.creations == 1


# -- renewal through the refresh token ------------------------------------------------------


async def test_the_token_is_renewed_with_its_refresh_token_before_it_expires() -> None:
    async with oauth_env() as env, env.provider() as p, env.client(p) as client:
        await client.mailboxes.list()
        old = env.oauth.issued[0]
        env.emu.advance_time(TTL - RENEW_BEFORE - 1)  # not yet
        assert await p.get_token() == old.token
        env.emu.advance_time(2)
        await client.mailboxes.list()  # renewed first, then sent with the new token
        assert (env.oauth.creations, env.oauth.renewals) == (1, 1)
        new = env.oauth.issued[1]
        assert new.origin == "renewed" and new.token != old.token
        assert new.scopes == old.scopes
        assert old.state == "renewed" and old.token not in env.emu.tokens
        assert await p.get_token() == new.token
        assert p.expires_at == env.emu.now() + TTL
        # and the next one renews with the NEW refresh token
        env.to_renewal()
        await client.mailboxes.list()
        assert (env.oauth.creations, env.oauth.renewals) == (1, 2)
        assert env.oauth.refused_refreshes == 0


async def test_a_refused_refresh_makes_a_new_token() -> None:
    async with oauth_env() as env, env.provider() as p, env.client(p) as client:
        await client.mailboxes.list()
        first = env.oauth.issued[0].token
        env.oauth.refuse_refreshes(1)
        env.to_renewal()
        await client.mailboxes.list()
        assert env.oauth.refused_refreshes == 1
        assert (env.oauth.creations, env.oauth.renewals) == (2, 0)
        assert env.oauth.count("PATCH", "/tokens/*") == 1
        token = await p.get_token()
        assert token == env.oauth.issued[1].token != first


async def test_a_token_idle_past_its_expiry_is_replaced() -> None:
    """A refresh token is refused once its token expired (grace 0): a new token."""
    async with oauth_env() as env, env.provider() as p, env.client(p) as client:
        await client.mailboxes.list()
        env.emu.advance_time(TTL + 10)
        await client.mailboxes.list()
        assert env.oauth.refused_refreshes == 1
        assert env.oauth.creations == 2


async def test_a_transient_renewal_failure_keeps_the_still_valid_token(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with oauth_env() as env, env.provider() as p:
        first = await p.get_token()
        env.to_renewal()
        env.oauth.faults.once(Fault.status(503), method="PATCH", path="/tokens/*")
        with caplog.at_level(logging.WARNING, logger="pecapi"):
            assert await p.get_token() == first  # kept
        assert "could not renew" in caplog.text
        assert (env.oauth.creations, env.oauth.renewals) == (1, 0)
        assert await p.get_token() == first  # no new attempt within the backoff
        env.emu.advance_time(31)
        renewed = await p.get_token()
        assert renewed != first
        assert (env.oauth.creations, env.oauth.renewals) == (1, 1)


async def test_a_renewal_that_fails_after_expiry_is_raised() -> None:
    async with oauth_env() as env, env.provider() as p:
        await p.get_token()
        env.emu.advance_time(TTL + 1)
        env.oauth.faults.once(Fault.drop_before(), method="PATCH", path="/tokens/*")
        with pytest.raises(PecConnectionError):
            await p.get_token()
        await p.get_token()  # the next call tries again: refused (expired), then created
        assert env.oauth.creations == 2


# -- rejection by the PEC API ---------------------------------------------------------------


async def test_token_rejected_drops_only_the_current_token_once() -> None:
    async with oauth_env() as env, env.provider() as p:
        first = await p.get_token()
        await p.token_rejected("some-other-token")
        assert await p.get_token() == first
        await asyncio.gather(*(p.token_rejected(first) for _ in range(50)))
        second = await p.get_token()
        assert second != first
        await p.token_rejected(first)  # a late report of the old token: nothing
        assert await p.get_token() == second
        assert env.oauth.creations == 2


async def test_a_revoked_token_is_replaced_and_the_request_retried_once() -> None:
    async with oauth_env() as env, env.provider() as p, env.client(p) as client:
        await client.mailboxes.list()
        env.oauth.revoke(env.oauth.issued[0].token)  # deleted behind the provider's back
        assert await client.mailboxes.list() == []
        assert env.oauth.creations == 2
        assert env.emu.count("GET", "/pec") == 2 + 1  # one 401 and its retry


# -- revocation -----------------------------------------------------------------------------


async def test_revoke_deletes_every_token_it_made_and_only_those() -> None:
    async with oauth_env() as env:
        other = env.oauth  # a token of someone else on the same account
        async with env.provider(scopes=["GET:test.pec.openapi.it/pec"]) as stranger:
            foreign = await stranger.get_token()
        async with env.provider() as p:
            first = await p.get_token()
            env.to_renewal()
            renewed = await p.get_token()  # the first is deleted by the renewal
            await p.token_rejected(renewed)  # dropped, but still valid at the service
            third = await p.get_token()
            assert await p.revoke() == 2
            for token in (first, renewed, third):
                record = other.record(token)
                assert record is not None and record.state != "active"
                assert token not in env.emu.tokens
            assert other.record(foreign) is not None
            assert foreign in env.emu.tokens
            assert p.expires_at is None
            assert other.count("DELETE", "/tokens/*") == 2
            # still usable: a new token, and revoke() deletes it in turn
            fourth = await p.get_token()
            assert fourth not in (first, renewed, third)
            assert await p.revoke() == 1
            assert await p.revoke() == 0  # nothing left
        assert env.oauth.count("DELETE", "/tokens/*") == 3


async def test_revoke_counts_a_token_gone_already_as_not_deleted() -> None:
    async with oauth_env() as env, env.provider() as p:
        token = await p.get_token()
        env.oauth.revoke(token)
        assert await p.revoke() == 0
        assert env.oauth.count("DELETE", "/tokens/*") == 1  # answered 404


async def test_a_failed_deletion_is_raised_and_kept_for_the_next_revoke() -> None:
    async with oauth_env() as env, env.provider() as p:
        token = await p.get_token()
        env.oauth.faults.once(Fault.status(400), method="DELETE", path="/tokens/*")
        with pytest.raises(BadRequestError) as failed:
            await p.revoke()
        assert "/tokens/<redacted>" in str(failed.value)
        assert token not in str(failed.value)
        assert token in env.emu.tokens
        assert await p.revoke() == 1
        assert token not in env.emu.tokens


async def test_revoke_waits_for_a_creation_in_flight() -> None:
    async with oauth_env() as env, env.provider() as p:
        env.oauth.faults.once(Fault.latency(0.3), method="POST", path="/tokens")
        getting = asyncio.ensure_future(p.get_token())
        await asyncio.sleep(0.05)
        assert await p.revoke() == 1
        token = await getting
        assert token not in env.emu.tokens


async def test_aclose_revokes_only_when_asked() -> None:
    async with oauth_env() as env:
        kept = env.provider()
        token = await kept.get_token()
        await kept.aclose()
        assert token in env.emu.tokens  # closing sends nothing by default
        assert env.oauth.count("DELETE", "/tokens/*") == 0
        revoked = env.provider()
        token = await revoked.get_token()
        await revoked.aclose(revoke=True)
        assert token not in env.emu.tokens
        with pytest.raises(ClientClosedError):
            await revoked.get_token()
        with pytest.raises(ClientClosedError):
            await revoked.revoke()
        await revoked.aclose(revoke=True)  # idempotent: closed, nothing sent
        assert env.oauth.count("DELETE", "/tokens/*") == 1


async def test_aclose_revoke_closes_even_when_the_deletion_fails() -> None:
    async with oauth_env() as env:
        p = env.provider()
        await p.get_token()
        env.oauth.faults.once(Fault.status(400), method="DELETE", path="/tokens/*")
        with pytest.raises(BadRequestError):
            await p.aclose(revoke=True)
        with pytest.raises(ClientClosedError):
            await p.get_token()


# -- the service's errors -------------------------------------------------------------------


async def test_a_wrong_api_key_is_an_authentication_error() -> None:
    async with oauth_env() as env, env.provider(api_key=KEY + "-wrong") as p:
        with pytest.raises(AuthenticationError) as info:
            await p.get_token()
        assert info.value.code == 140
        assert env.oauth.creations == 0


async def test_a_scope_the_service_refuses_is_a_422() -> None:
    async with oauth_env(scopes=["GET:test.pec.openapi.it/pec"]) as env:
        async with env.provider() as p:
            with pytest.raises(UnexpectedStatusError) as info:
                await p.get_token()
        assert (info.value.status, info.value.code) == (422, 90)


async def test_a_failing_service_is_a_server_error_and_not_cached() -> None:
    async with oauth_env() as env, env.provider() as p:
        env.oauth.fail_next(503)
        with pytest.raises(ServerError):
            await p.get_token()
        assert await p.get_token() == env.oauth.issued[0].token
        assert env.oauth.count("POST", "/tokens") == 2  # one attempt per creation


async def test_a_pec_call_retries_a_creation_that_met_a_5xx() -> None:
    async with oauth_env() as env, env.provider() as p, env.client(p) as client:
        env.oauth.fail_next(503)
        assert await client.mailboxes.list() == []
        assert env.oauth.count("POST", "/tokens") == 2


# -- configuration --------------------------------------------------------------------------


async def test_credentials_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAPI_EMAIL", EMAIL)
    monkeypatch.setenv("OPENAPI_SANDBOX_API_KEY", KEY)
    monkeypatch.delenv("OPENAPI_API_KEY", raising=False)
    async with oauth_env() as env:
        scopes = all_pec_scopes(sandbox=True)
        async with OAuthV2TokenProvider(scopes=scopes, sandbox=True, base_url=env.oauth_url) as p:
            assert await p.get_token() == env.oauth.issued[0].token
        with pytest.raises(ConfigurationError, match="OPENAPI_API_KEY"):
            OAuthV2TokenProvider(scopes=all_pec_scopes(sandbox=False), base_url=env.oauth_url)


async def test_the_timeout_may_be_a_timeout() -> None:
    async with oauth_env() as env, env.provider(timeout=Timeout(total=5, connect=1)) as p:
        assert await p.get_token() == env.oauth.issued[0].token


def test_the_default_urls_are_the_v2_service() -> None:
    prod = OAuthV2TokenProvider(EMAIL, KEY, scopes=all_pec_scopes(sandbox=False))
    sandbox = OAuthV2TokenProvider(EMAIL, KEY, scopes=all_pec_scopes(sandbox=True), sandbox=True)
    assert "https://oauth.openapi.com" in repr(prod)
    assert "https://test.oauth.openapi.com" in repr(sandbox)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"scopes": []}, "at least one scope"),
        ({"scopes": "GET:test.pec.openapi.it/pec"}, "not one string"),
        ({"scopes": ["GET:pec.openapi.it/pec"]}, "not for the sandbox"),
        ({"ttl": 10}, "ttl"),
        ({"ttl": 3600.0}, "ttl"),
        ({"ttl": 600, "renew_before": 600}, "renew_before"),
        ({"renew_before": "5"}, "renew_before"),
        ({"timeout": 0}, "timeout"),
        ({"timeout": "5"}, "timeout"),
        ({"session": object()}, "session"),
        ({"name": "a\nb"}, "name"),
        ({"email": "a:b@example.org"}, "':'"),
        ({"email": ""}, "email"),
        ({"api_key": "key\r\nX-Injected: 1"}, "control characters"),
        ({"base_url": "http://oauth.example.org"}, "plain http"),
    ],
)
def test_bad_configuration_is_refused(overrides: dict[str, Any], match: str) -> None:
    kwargs: dict[str, Any] = {"scopes": all_pec_scopes(sandbox=True), "sandbox": True}
    kwargs.update(overrides)
    email = kwargs.pop("email", EMAIL)
    key = kwargs.pop("api_key", KEY)
    with pytest.raises(ConfigurationError, match=match):
        OAuthV2TokenProvider(email, key, **kwargs)


async def test_aclose_closes_only_its_own_session() -> None:
    async with oauth_env() as env, aiohttp.ClientSession() as session:
        shared = env.provider(session=session)
        await shared.get_token()
        await shared.aclose()
        assert not session.closed
        with pytest.raises(ClientClosedError):
            await shared.get_token()
        with pytest.raises(ClientClosedError):
            await shared.wallet()


def test_the_provider_is_not_picklable() -> None:
    p = OAuthV2TokenProvider(EMAIL, KEY, scopes=all_pec_scopes(sandbox=True), sandbox=True)
    with pytest.raises(TypeError):
        pickle.dumps(p)


# -- choosing the service's version -----------------------------------------------------------


def test_oauth_provider_picks_the_version(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAPI_OAUTH_VERSION", raising=False)
    scopes = all_pec_scopes(sandbox=True)
    assert type(oauth_provider(EMAIL, KEY, scopes=scopes, sandbox=True)) is OAuthV2TokenProvider
    assert (
        type(oauth_provider(EMAIL, KEY, scopes=scopes, sandbox=True, version=1))
        is OAuthTokenProvider
    )
    assert (
        type(oauth_provider(EMAIL, KEY, scopes=scopes, sandbox=True, version="v2"))
        is OAuthV2TokenProvider
    )
    monkeypatch.setenv("OPENAPI_OAUTH_VERSION", "1")
    v1 = oauth_provider(EMAIL, KEY, scopes=scopes, sandbox=True, ttl=600)
    assert type(v1) is OAuthTokenProvider and "test.oauth.openapi.it" in repr(v1)
    assert (
        type(oauth_provider(EMAIL, KEY, scopes=scopes, sandbox=True, version=2))
        is OAuthV2TokenProvider
    )
    monkeypatch.setenv("OPENAPI_OAUTH_VERSION", "3")
    with pytest.raises(ConfigurationError, match="OPENAPI_OAUTH_VERSION"):
        oauth_provider(EMAIL, KEY, scopes=scopes, sandbox=True)
    with pytest.raises(ConfigurationError, match="version"):
        oauth_provider(EMAIL, KEY, scopes=scopes, sandbox=True, version=True)


async def test_oauth_provider_reads_the_same_credentials_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAPI_EMAIL", EMAIL)
    monkeypatch.setenv("OPENAPI_SANDBOX_API_KEY", KEY)
    monkeypatch.delenv("OPENAPI_OAUTH_VERSION", raising=False)
    async with oauth_env() as env:
        scopes = all_pec_scopes(sandbox=True)
        async with oauth_provider(scopes=scopes, sandbox=True, base_url=env.oauth_url) as p:
            assert await p.get_token() == env.oauth.issued[0].token


async def test_a_static_token_from_the_v2_service_works_too() -> None:
    """The tokens are the PEC API's usual bearer tokens."""
    async with oauth_env() as env, env.provider() as p:
        client = env.client(StaticToken(await p.get_token()))
        async with client:
            assert await client.mailboxes.list() == []
